import ArgumentParser
import HeatGateCore

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file; exits non-zero and names the key when it is invalid.")

    @OptionGroup var options: ConfigOptions

    @Argument(help: "The config file (same as --config).")
    var file: String?

    func run() throws {
        var options = options
        if let file { options.config = file }
        let c = try options.load()
        print("ok: \(options.path() ?? "defaults")")
        print(
            "mode=\(c.mode.label) heat_min=\(c.heatMin) heat_max=\(c.heatMax) cold=\(c.coldAction.token) "
                + "warm=\(c.warmAction.token) hot=\(c.hotAction.token) fail_mode=\(c.failMode.label)")
        print(
            "state_dir=\(c.stateDir) run_dir=\(c.runDir) ingest=\(c.ingestEndpoint) publish=\(c.publishEndpoint) "
                + "control=\(c.controlEndpoint)")
        print("metrics=\(c.metricsBind):\(c.metricsPort)")
    }
}
