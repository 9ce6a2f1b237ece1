print("heatgate")
