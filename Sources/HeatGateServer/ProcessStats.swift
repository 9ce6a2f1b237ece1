#if canImport(Glibc)
    import Glibc
#endif

/// The standard `process_*` metrics of the Prometheus client libraries, read from `/proc/self` when
/// `/metrics` is scraped (on the HTTP thread, never on the decision path). A value that cannot be read
/// is nil and its metric is left out.
struct ProcessStats {
    var cpuSeconds: Double?
    var residentBytes: Int?
    var openFDs: Int?

    static func read() -> ProcessStats {
        var s = ProcessStats()
        // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks, counted after the ")" that ends
        // the command name (which may itself hold spaces or parentheses).
        if let stat = readFile("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // fields[0] is field 3 (state): utime is field 14, so fields[11]; stime fields[12].
            if fields.count > 12, let u = Double(fields[11]), let k = Double(fields[12]) {
                let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
                if ticks > 0 { s.cpuSeconds = (u + k) / ticks }
            }
        }
        // /proc/self/statm: size resident shared ... in pages.
        if let statm = readFile("/proc/self/statm") {
            let f = statm.split(separator: " ")
            if f.count > 1, let pages = Int(f[1]) { s.residentBytes = pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        if let dir = opendir("/proc/self/fd") {
            var n = 0
            while let e = readdir(dir) {
                if e.pointee.d_name.0 != 46 { n += 1 }  // not "." or ".."
            }
            closedir(dir)
            s.openFDs = n - 1  // the directory stream's own descriptor
        }
        return s
    }
}
