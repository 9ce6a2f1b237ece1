import HeatGateCore
import HeatGateStore
import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// Where the configuration comes from, so `SIGHUP` can read it again.
public struct ConfigSource: Sendable {
    public var path: String?
    public var environment: [String: String]
    public var overrides: [(String, String)]

    public init(path: String?, environment: [String: String], overrides: [(String, String)]) {
        self.path = path
        self.environment = environment
        self.overrides = overrides
    }

    /// Reads and validates the configuration.
    /// - Throws: ``ConfigError`` or ``ServerError`` when the file cannot be read.
    public func load() throws -> GateConfig {
        var text: String?
        if let path {
            guard let t = readFile(path) else { throw ServerError("cannot read config file \(path)") }
            text = t
        }
        return try ConfigLoader.load(
            fileText: text, fileName: path ?? "config", environment: environment, overrides: overrides)
    }
}

/// Reads a whole small file.
func readFile(_ path: String) -> String? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n > 0 { out.append(contentsOf: buf[0..<n]) }
        if n < buf.count { break }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Flags the signal thread and the control path raise for the loop.
final class LoopSignals: Sendable {
    let stop = Atomic<Bool>(false)
    /// Set once the decision loop has committed its last batch: the replicator then copies the rest and ends.
    let loopDone = Atomic<Bool>(false)
    let reload = Atomic<Bool>(false)
    let ready = Atomic<Bool>(false)
    /// The parts of readiness, each named by `/readyz?verbose`.
    let storeOpen = Atomic<Bool>(false)
    let socketsBound = Atomic<Bool>(false)
    /// Monotonic ns of the loop's last turn: `/healthz` answers 200 while it is recent.
    let lastTurn = Atomic<UInt64>(0)

    /// How old the loop's last turn may be for the daemon to count as healthy.
    static let stallNanos: UInt64 = 5_000_000_000

    /// The loop turned within ``stallNanos``: what `/healthz` answers and what drives `WATCHDOG=1`.
    var loopHealthy: Bool { monotonicNanos() &- lastTurn.load(ordering: .relaxed) < Self.stallNanos }

    /// Seconds since the loop's last turn.
    var loopAge: Double { Double(monotonicNanos() &- lastTurn.load(ordering: .relaxed)) / 1e9 }

    /// `/livez` and `/healthz`: the loop turned within 5 s. `/readyz`: the store is open, the sockets are
    /// bound, the daemon said it is ready and the loop turns. With `verbose` in the query each check is
    /// named, `[+]` passed or `[-]` failed; `inputs` is shown too but is not a condition (the gate decides
    /// fail-closed or fail-open while inputs are unusable, which is its job, not a reason to stop sending).
    func probe(_ path: String, query: String, inputsUsable: Bool) -> (status: Int, body: String) {
        let verbose = query.split(separator: "&").contains { $0 == "verbose" || $0.hasPrefix("verbose=") }
        let loop = (name: "loop", ok: loopHealthy, detail: "last turn \((loopAge * 1000).rounded() / 1000) s ago")
        var checks: [(name: String, ok: Bool, detail: String)] = [loop]
        if path == "/readyz" {
            let bound = socketsBound.load(ordering: .relaxed)
            checks = [
                ("store", storeOpen.load(ordering: .relaxed), "LMDB store open"),
                ("sockets", bound, "ingest, publish and control bound"),
                ("started", ready.load(ordering: .relaxed), "READY=1 sent, decisions flowing"), loop,
            ]
        }
        let ok = checks.allSatisfy(\.ok)
        guard verbose else {
            if path == "/readyz" { return ok ? (200, "ready\n") : (503, loopHealthy ? "starting\n" : "loop stalled\n") }
            return ok ? (200, "ok\n") : (503, "loop stalled\n")
        }
        var body = ""
        for c in checks { body += "[\(c.ok ? "+" : "-")]\(c.name) \(c.ok ? "ok" : "failed"): \(c.detail)\n" }
        if path == "/readyz" {
            body += "[\(inputsUsable ? "+" : "?")]inputs \(inputsUsable ? "usable" : "not usable (heat unknown)"): "
            body += "informational, not a readiness condition\n"
        }
        body += "\(path.dropFirst()) check \(ok ? "passed" : "failed")\n"
        return (ok ? 200 : 503, body)
    }
}

/// `heatgate run`: PULL in, engine, LMDB, PUB out, with control, metrics, heartbeats and sweeps.
///
/// One thread owns the engine, the store's write transactions and every ZeroMQ socket but the signal
/// thread's wake-up socket: the decision path is a single writer of the hot store and takes no lock. The
/// replicator thread (`hg-durable`) copies the hot store into the durable one within milliseconds; the
/// HTTP thread reads atomics only.
public final class Daemon {
    public static let batchLimit = 512
    public static let wakeEndpoint = "inproc://heatgate-wake"

    let source: ConfigSource
    var config: GateConfig
    var logger: Logger
    public let metrics = Metrics()
    let signals = LoopSignals()
    let startedAt: Double
    let startedMono: UInt64
    var rejectLog = RateLimiter(perSecond: 20)
    var loggedUnreadableSwitch = false
    /// The run directory's lock (one hot store per daemon), held for the life of the process.
    var runOwnership: DirectoryLock?
    var loggedEvictions: UInt64 = 0
    var lastEvictionLog: UInt64 = 0
    /// systemd's `$NOTIFY_SOCKET` (Type=notify): readiness, reload, stop, status and the watchdog.
    let notifier: Notifier
    var lastStatusLine = ""
    /// The guard trip already logged and recorded.
    var handledTrip: GuardTrip?
    /// Records a guard trip in the ops ledger (set by `heatgate run`); returns the entry's id. Called on
    /// the loop's housekeeping turn after the trip, never on the decision path.
    public var guardRecorder: ((GuardTrip, GateConfig) throws -> String)?
    /// Records an applied reload in the ops ledger (set by `heatgate run`): the live keys it changed
    /// (`KEY old -> new`) and the keys that wait for a restart; returns the entry's id. Reloads are rare and
    /// already read a file on this thread, between two messages.
    public var reloadRecorder: ((_ changed: [String], _ restartNeeded: [String], GateConfig) throws -> String)?

    public init(source: ConfigSource) throws {
        self.source = source
        notifier = Notifier(environment: source.environment)
        config = try source.load()
        logger = Logger(level: config.logLevel, format: config.logFormat)
        startedAt = wallClock()
        startedMono = monotonicNanos()
    }

    /// Runs until `SIGTERM`/`SIGINT`; returns the process exit code.
    public func run() -> Int32 {
        do {
            try serve()
            return 0
        } catch {
            logger.error("heatgate stopped", ["error": "\(error)"])
            return 1
        }
    }

    func serve() throws {
        try checkExposure(config)
        // Sockets and store files: owner and group only (the Apply Layer reads through the group).
        umask(0o007)
        var sigs = sigset_t()
        sigemptyset(&sigs)
        for s in [SIGHUP, SIGTERM, SIGINT, SIGUSR1] { sigaddset(&sigs, s) }
        // Blocked before any thread starts, so every thread (libzmq's too) inherits the mask and only the
        // signal thread ever takes them.
        pthread_sigmask(SIG_BLOCK, &sigs, nil)
        signal(SIGPIPE, SIG_IGN)

        // Before the store opens: a second daemon on the same directory would take the same seqs.
        let ownership: DirectoryLock
        do {
            ownership = try DirectoryLock(directory: config.stateDir)
        } catch {
            throw ServerError("\(error)")
        }
        defer { withExtendedLifetime(ownership) {} }
        let gate = try openStores()
        if let trip = gate.engine.guardTrip {
            // Tripped before the restart and not cleared: shadow, whatever the config file says.
            handledTrip = trip
            config.mode = .shadow
            gate.apply(Policy(config))
            logger.warning(
                "the rollback guard tripped before this start: shadow until `heatgate mode enforce`",
                [
                    "reason": trip.reason.label, "tripped_at": "\(trip.ts)",
                    "last_enforced_seq": "\(trip.lastEnforcedSeq)",
                ])
        }
        signals.storeOpen.store(true, ordering: .relaxed)
        let ctx = try Context(ioThreads: 1)
        let pull = try Socket(ctx, type: .pull)
        // XPUB rather than PUB: the same stream, plus the subscription notices the loop reads (below).
        let pub = try Socket(ctx, type: .xpub)
        let control = try Socket(ctx, type: .rep)
        let wake = try Socket(ctx, type: .pull)
        try pull.set(.receiveHighWaterMark, 100_000)
        // Frames over 64 KiB are counted as rejected; only absurd ones are cut off by libzmq itself.
        try pull.set(.maxMessageSize, Int64(16 << 20))
        try pub.set(.sendHighWaterMark, 100_000)
        // No XPUB_NODROP: with it a send fails as soon as any one matching subscriber's queue is full, so
        // one stalled reader (a forgotten `heatgate tail | less`) cost every subscriber 150 000 of 250 000
        // decisions (issue 13). Without it libzmq drops at each subscriber's own high-water mark and the
        // others get everything; the one that fell behind sees the gap in `seq` and fills it from the
        // journal. VERBOSER hands every subscribe and unsubscribe up to the loop: it counts
        // `p26_subscribers` and answers each new subscription with a heartbeat.
        try pub.set(.xpubVerboser, true)
        try pub.set(.linger, 1000)
        for s in [pull, control, wake] { try s.set(.linger, 0) }
        // The ZAP handler must be bound before the CURVE sockets, so no handshake can slip past it.
        let zap =
            config.curveSecretKey == nil
            ? nil : try ZAPHandler(ctx, allowedKeys: config.curveAllowedClients, logger: logger, metrics: metrics)
        try applyCurve(config, server: [pull, pub])
        try bind(pull, config.ingestEndpoint, "P26_INGEST_ENDPOINT")
        try bind(pub, config.publishEndpoint, "P26_PUBLISH_ENDPOINT")
        if config.controlEndpoint.hasPrefix("ipc://") { unlinkStaleIPC(config.controlEndpoint) }
        try bind(control, config.controlEndpoint, "P26_CONTROL_ENDPOINT")
        // The control socket switches modes: owner only (root passes anyway). The ingest and publish
        // sockets stay open to the group, for the producer and the Apply Layer.
        if config.controlEndpoint.hasPrefix("ipc://") {
            chmod(String(config.controlEndpoint.dropFirst("ipc://".count)), 0o700)
        }
        try wake.bind(Self.wakeEndpoint)
        signals.socketsBound.store(true, ordering: .relaxed)

        let signals = self.signals
        let metrics = self.metrics
        metrics.processStartTime.set(startedAt)
        let http = try HTTPServer(host: config.metricsBind, port: config.metricsPort) { path, query in
            switch path {
            case "/metrics": return (200, "text/plain; version=0.0.4; charset=utf-8", metrics.render())
            case "/healthz", "/livez", "/readyz":
                let (status, body) = signals.probe(path, query: query, inputsUsable: !metrics.heat.load.isNaN)
                return (status, "text/plain", body)
            default: return (404, "text/plain", "not found\n")
            }
        }
        http.start()
        let signalThread = startSignalThread(ctx)
        let replicator = gate.replicator!
        metrics.replicator.withLock { $0 = replicator }
        let logger = self.logger
        let durableThread = startThread(name: "hg-durable") {
            var failing = false
            replicator.run(
                stop: { signals.loopDone.load(ordering: .acquiring) }, now: wallClock,
                failed: { error in
                    // Once per outage, and once when it ends: decisions keep flowing meanwhile.
                    if !failing {
                        logger.error(
                            "durable store write failed; decisions go on from the hot store, which keeps what the disk lacks",
                            ["error": error, "state_dir": replicator.durable.directory])
                    }
                    failing = true
                },
                recovered: {
                    if failing {
                        logger.notice("durable store written again", ["lag_sec": "\(replicator.lagSeconds)"])
                    }
                    failing = false
                })
        }
        metrics.observe(gate.engine, now: wallClock())
        logger.notice(
            "heatgate started",
            [
                "version": HeatGateVersion.current, "mode": config.mode.label, "ingest": config.ingestEndpoint,
                "publish": config.publishEndpoint, "control": config.controlEndpoint,
                "metrics": "\(config.metricsBind):\(http.port)", "state_dir": config.stateDir, "run_dir": config.runDir,
                "curve": zap == nil ? "off" : "on (\(config.curveAllowedClients.count) client keys)",
                "next_seq": "\(gate.engine.nextSeq)", "kill_switch": "\(gate.engine.killSwitch)",
                "repeat_window": "\(gate.repeatCapacity)", "repeats_restored": "\(gate.restoredRepeats)",
            ])
        signals.ready.store(true, ordering: .relaxed)
        // The same moment /readyz turns 200: store open, sockets bound, metrics listening.
        signals.lastTurn.store(monotonicNanos(), ordering: .relaxed)
        lastStatusLine = statusLine(gate)
        notifier.ready(status: lastStatusLine)
        let watchdog = startWatchdog()

        // The replicator copies what the loop committed last, then ends, before anything else stops.
        func finishDurable() {
            signals.loopDone.store(true, ordering: .releasing)
            pthread_join(durableThread, nil)
        }
        do {
            try loop(gate: gate, pull: pull, pub: pub, control: control, wake: wake, metricsPort: http.port)
        } catch {
            finishDurable()
            throw error
        }
        finishDurable()

        signals.ready.store(false, ordering: .relaxed)
        signals.socketsBound.store(false, ordering: .relaxed)
        try? pull.close(linger: 0)
        try? control.close(linger: 0)
        try? wake.close(linger: 0)
        try? pub.close(linger: 1000)
        http.stop()
        zap?.stop()
        pthread_kill(signalThread, SIGUSR1)
        pthread_join(signalThread, nil)
        if let watchdog { pthread_join(watchdog, nil) }
        logger.notice("heatgate stopped", ["last_seq": "\(gate.engine.nextSeq - 1)"])
    }

    /// Opens the durable store (`P26_STATE_DIR`) and the hot one (`P26_RUN_DIR`), rebuilding the hot store
    /// from the durable one when it is missing, from another boot, or made for another state directory
    /// (SPEC §5); after a crash of the daemon alone the hot store is used as it is, and the replicator's
    /// first round copies to the durable store what it lacks.
    func openStores() throws -> Gate {
        let durable: GateStore
        do {
            durable = try GateStore(directory: config.stateDir, mapSizeMB: config.mapSizeMB, durable: true)
        } catch {
            throw ServerError("cannot open the durable store in \(config.stateDir): \(error)")
        }
        // After the state directory exists: the default run dir is named after its real path.
        let runDir = config.runDir
        let stateDir = StorePaths.absolutePath(config.stateDir)
        // Two daemons with different state directories but one run dir would overwrite one hot store.
        do {
            runOwnership = try DirectoryLock(directory: runDir)
        } catch {
            throw ServerError("\(error) (P26_RUN_DIR)")
        }
        // Readers that know only the state directory find the hot store through this file.
        writePointer(runDir, in: config.stateDir)
        let boot = StorePaths.bootId()
        var why: String?
        if access(runDir + "/data.mdb", F_OK) != 0 {
            why = "no hot store in \(runDir)"
        } else {
            do {
                let probe = try GateStore(directory: runDir, readOnly: true)
                let id = try probe.identity()
                if id.stateDir != stateDir {
                    why = "the hot store in \(runDir) was made for \(id.stateDir ?? "another state directory")"
                } else if id.bootId != boot {
                    why = "the hot store in \(runDir) is from another boot"
                }
            } catch {
                why = "the hot store in \(runDir) does not open (\(error))"
            }
            if why != nil {
                for f in ["data.mdb", "lock.mdb"] { unlink(runDir + "/" + f) }
            }
        }
        let hot: GateStore
        do {
            hot = try GateStore(
                directory: runDir, mapSizeMB: min(config.mapSizeMB, Self.hotMapMB), durable: false, hot: true)
            if let why {
                let started = monotonicNanos()
                let r = try hot.rebuild(
                    from: durable, bootId: boot, stateDir: stateDir, now: wallClock(), tailRows: Gate.hotJournalRows)
                logger.notice(
                    "hot store rebuilt from the durable store",
                    [
                        "why": why, "run_dir": runDir, "journal_read": "\(r.journal)", "latest": "\(r.latest)",
                        "ms": "\(Double(monotonicNanos() - started) / 1e6)",
                    ])
            }
        } catch {
            throw ServerError("cannot open the hot store in \(runDir) (P26_RUN_DIR): \(error)")
        }
        do {
            return try Gate(config: config, store: hot, durableStore: durable, metrics: metrics, now: wallClock())
        } catch {
            throw ServerError("cannot restore from the stores in \(runDir) and \(config.stateDir): \(error)")
        }
    }

    /// Writes `<state dir>/run_dir` (the run dir and a newline) by rename, mode 0640, when it changed.
    func writePointer(_ runDir: String, in stateDir: String) {
        let path = stateDir + "/" + StorePaths.pointerFile
        guard StorePaths.readerRunDir(stateDir: stateDir) != runDir || access(path, F_OK) != 0 else { return }
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            logger.warning("cannot write \(path): readers without P26_RUN_DIR derive the run dir", [:])
            return
        }
        let bytes = Array((runDir + "\n").utf8)
        let ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count && fsync(fd) == 0
        close(fd)
        if !ok || rename(tmp, path) != 0 {
            unlink(tmp)
            logger.warning("cannot write \(path): readers without P26_RUN_DIR derive the run dir", [:])
        }
    }

    /// The hot store's first map (MiB), allocated on the tmpfs at start; it doubles when full, up to
    /// `P26_MAP_SIZE_MB`.
    static let hotMapMB = 64

    /// With `$WATCHDOG_USEC` set, a thread that sends `WATCHDOG=1` four times per interval while the loop
    /// is healthy (the `/healthz` check), so a stalled or stopped loop lets systemd's watchdog fire.
    /// Ends once the loop is told to stop.
    func startWatchdog() -> pthread_t? {
        guard let interval = notifier.watchdogNanos else { return nil }
        let signals = self.signals
        let notifier = self.notifier
        let tick = max(interval / 4, 10_000_000)
        return startThread(name: "hg-watchdog") {
            var next = monotonicNanos()
            while !signals.stop.load(ordering: .relaxed) {
                let now = monotonicNanos()
                if now >= next {
                    if signals.loopHealthy { notifier.watchdog() }
                    next = now &+ tick
                }
                // Short sleeps, so the thread sees the stop flag within 50 ms.
                usleep(UInt32(min(tick, 50_000_000) / 1_000))
            }
        }
    }

    /// `STATUS=` for systemd: mode, heat and bucket, last seq, kill switch.
    func statusLine(_ gate: Gate) -> String {
        let e = gate.engine
        let (heat, bucket, problem) = e.heatState(now: wallClock())
        let heatText = heat.isNaN ? "unknown" : "\((heat * 1e6).rounded() / 1e6)"
        return "mode=\(e.policy.mode.label) heat=\(heatText) bucket=\(bucket.label)"
            + (problem.map { " problem=\($0.label)" } ?? "") + " last_seq=\(e.nextSeq - 1)"
            + (e.killSwitch ? " kill_switch=on" : "")
    }

    func bind(_ s: Socket, _ endpoint: String, _ key: String) throws {
        do {
            try s.bind(endpoint)
        } catch {
            throw ServerError("cannot bind \(key)=\(endpoint): \(error)")
        }
    }

    func startSignalThread(_ ctx: Context) -> pthread_t {
        let signals = self.signals
        let pushBox = UncheckedBox(try? Socket(ctx, type: .push))
        try? pushBox.value?.set(.linger, 0)
        try? pushBox.value?.connect(Self.wakeEndpoint)
        return startThread(name: "hg-signals") {
            var set = sigset_t()
            sigemptyset(&set)
            for s in [SIGHUP, SIGTERM, SIGINT, SIGUSR1] { sigaddset(&set, s) }
            while true {
                var sig: Int32 = 0
                guard sigwait(&set, &sig) == 0 else { continue }
                switch sig {
                case SIGHUP: signals.reload.store(true, ordering: .relaxed)
                case SIGTERM, SIGINT: signals.stop.store(true, ordering: .relaxed)
                default:
                    try? pushBox.value?.close(linger: 0)
                    return
                }
                _ = try? pushBox.value?.send("wake", flags: .dontWait)
            }
        }
    }

    // MARK: - The loop

    func loop(gate: Gate, pull: Socket, pub: Socket, control: Socket, wake: Socket, metricsPort: Int) throws {
        // The XPUB is polled too, for its subscription notices: polling also makes libzmq apply a new
        // subscription as soon as it arrives rather than at the socket's next send.
        var items = [PollItem(pull), PollItem(control), PollItem(wake), PollItem(pub)]
        var subscriptions = SubscriptionBook()
        let message = Message()
        var topic: [UInt8] = Array("calibrated.".utf8)
        let topicPrefix = topic.count
        var heartbeat = JSONWriter(capacity: 512)
        var nextHeartbeat = monotonicNanos()
        var nextSweep = monotonicNanos() + 1_000_000_000
        var nextObserve = monotonicNanos()
        while true {
            let turn = monotonicNanos()
            signals.lastTurn.store(turn, ordering: .relaxed)
            if signals.stop.load(ordering: .relaxed) {
                notifier.stopping()
                break
            }
            if signals.reload.exchange(false, ordering: .relaxed) { reload(gate) }
            var wait: UInt64 = 100_000_000
            if config.heartbeatSec > 0 { wait = min(wait, nextHeartbeat > turn ? nextHeartbeat - turn : 0) }
            // While a sweep is due, its chunks ride in the batches' commits; a turn without a batch runs one
            // alone after waiting at most 1 ms.
            if gate.sweeper.due { wait = min(wait, 1_000_000) }
            _ = try ZMQ.poll(&items, timeout: .nanoseconds(Int64(wait)))
            let sweptBefore = gate.sweepChunks
            if items[3].returnedEvents.contains(.in) {
                // Before the batch: the welcome heartbeat's last_seq then precedes the decisions that follow.
                if readSubscriptions(pub, message, &subscriptions) && config.heartbeatSec > 0 {
                    publishHeartbeat(gate, pub, &heartbeat)
                }
            }
            if items[0].returnedEvents.contains(.in) {
                try drainBatch(gate, pull, pub, message, &topic, topicPrefix)
            }
            if items[1].returnedEvents.contains(.in) {
                serveControl(gate, control, message, metricsPort: metricsPort)
            }
            if items[2].returnedEvents.contains(.in) {
                while (try? wake.receive(into: message, flags: .dontWait)) == true {}
            }
            if gate.engine.guardTrip != handledTrip {
                handleGuardTrip(gate)
                // Every subscriber learns of the rollback at once, not at the next interval.
                if config.heartbeatSec > 0 { publishHeartbeat(gate, pub, &heartbeat) }
            }
            let now = monotonicNanos()
            if now >= nextObserve {
                // The switch is read here too, not only when a batch begins, so `status`, the heartbeat and
                // p26_kill_switch show `heatgate kill on` within 100 ms while no proposal comes.
                refreshKillSwitch(gate)
                metrics.observe(gate.engine, now: wallClock())
                warnOfEvictions(gate)
                nextObserve = now + 100_000_000
                if notifier.enabled {
                    let line = statusLine(gate)
                    if line != lastStatusLine {
                        lastStatusLine = line
                        notifier.status(line)
                    }
                }
            }
            if config.heartbeatSec > 0 && now >= nextHeartbeat {
                publishHeartbeat(gate, pub, &heartbeat)
                nextHeartbeat = now &+ UInt64(min(config.heartbeatSec, 3_600) * 1e9)
            }
            // Sweeps start once a second and go on, one bounded chunk per batch (see Sweeper), until nothing
            // expired is left; never skipped under load, so the TTL table cannot outgrow what is removed.
            if now >= nextSweep {
                gate.sweeper.due = true
                nextSweep = now + 1_000_000_000
            }
            if gate.sweeper.due && gate.sweepChunks == sweptBefore { gate.sweepAlone(now: wallClock()) }
            if let error = gate.takeSweepError() {
                logger.warning("sweep chunk failed; retried in a second", ["error": error])
            }
        }
        // Stop intake but finish what is already queued, within a bound.
        let deadline = monotonicNanos() + 2_000_000_000
        var drained = 0
        while monotonicNanos() < deadline, drained < 1_000_000 {
            let before = metrics.processed.load + metrics.rejected.load
            try drainBatch(gate, pull, pub, message, &topic, topicPrefix)
            let handled = metrics.processed.load + metrics.rejected.load - before
            if handled == 0 && gate.published.isEmpty { break }
            drained += Int(handled)
        }
        publishHeartbeat(gate, pub, &heartbeat)
    }

    /// Logs a new guard trip, shows it in the metrics and records it in the ops ledger (file I/O, here on
    /// the housekeeping turn after the batch that tripped it was published).
    func handleGuardTrip(_ gate: Gate) {
        handledTrip = gate.engine.guardTrip
        // Stored, so a restart stays in shadow until `mode enforce` (which clears it, here too).
        do {
            try gate.store.setGuardTrip(handledTrip)
        } catch {
            logger.error("cannot store the guard trip; a restart would not keep shadow", ["error": "\(error)"])
        }
        guard let trip = handledTrip else { return }
        config.mode = .shadow
        metrics.observe(gate.engine, now: wallClock())
        let g = config.guardSettings
        let share = trip.fullCloses == 0 ? 0 : Double(trip.downgraded) / Double(trip.fullCloses)
        var ledger = "not recorded"
        if let recorder = guardRecorder {
            do {
                ledger = try recorder(trip, config)
            } catch {
                ledger = "FAILED: \(error)"
            }
        }
        logger.error(
            "GUARD ROLLBACK enforce -> shadow: \(trip.reason.label)",
            [
                "reason": trip.reason.label, "from": "enforce", "to": "shadow",
                "last_enforced_seq": "\(trip.lastEnforcedSeq)", "full_closes": "\(trip.fullCloses)",
                "downgraded": "\(trip.downgraded)", "share": "\(share)", "max_share": "\(g.maxDowngradeShare)",
                "inputs_bad_sec": "\(trip.inputsBadSec)", "max_inputs_bad_sec": "\(g.maxInputsBadSec)",
                "kept_pnl_usd": "\(trip.keptPnLUSD)", "max_kept_loss_usd": "\(g.maxKeptLossUSD)",
                "window_sec": "\(g.windowSec)", "ledger": ledger,
                "fix": "heatgate mode enforce --reason R (after its preflight)",
            ])
    }

    /// Reads the stored kill switch; an unreadable record counts as on and is logged once per change.
    func refreshKillSwitch(_ gate: Gate) {
        let unreadable = gate.refreshKillSwitch()
        if unreadable != loggedUnreadableSwitch {
            loggedUnreadableSwitch = unreadable
            if unreadable {
                logger.error(
                    "kill switch record unreadable; holding every proposal until it is rewritten",
                    ["fix": "heatgate kill on|off --reason R"])
            } else {
                logger.notice("kill switch record readable again", ["on": "\(gate.engine.killSwitch)"])
            }
        }
    }

    /// Logs, at most every 10 s, that the repeat window forgot decisions within their TTL.
    func warnOfEvictions(_ gate: Gate) {
        let evictions = gate.engine.repeats.evictions
        guard evictions > loggedEvictions, monotonicNanos() &- lastEvictionLog > 10_000_000_000 else { return }
        logger.warning(
            "repeat window full: decisions forgotten before their TTL are decided again if re-sent",
            [
                "evictions": "\(evictions)", "capacity": "\(gate.engine.repeats.capacity)",
                "fix": "raise P26_REPEAT_PEAK_RATE (restart needed)",
            ])
        loggedEvictions = evictions
        lastEvictionLog = monotonicNanos()
    }

    /// Reads the XPUB's pending subscription notices into `book` and the metrics.
    ///
    /// - Returns: whether one of them is a new subscriber of heartbeats, to be welcomed with one now.
    func readSubscriptions(_ pub: Socket, _ message: Message, _ book: inout SubscriptionBook) -> Bool {
        var welcome = false
        var n = 0
        while n < Self.batchLimit, (try? pub.receive(into: message, flags: .dontWait)) == true {
            n += 1
            if message.withUnsafeBytes({ book.apply($0) }) { welcome = true }
        }
        metrics.subscribers.set(Double(book.decisionSubscriptions))
        metrics.subscriberJoins.value.store(book.decisionJoins, ordering: .relaxed)
        return welcome
    }

    /// Receives up to ``batchLimit`` queued messages, decides them, commits once, then publishes.
    func drainBatch(
        _ gate: Gate, _ pull: Socket, _ pub: Socket, _ message: Message, _ topic: inout [UInt8], _ prefix: Int
    )
        throws
    {
        let t0 = monotonicNanos()
        let now = wallClock()
        gate.beginBatch()
        var received = 0
        while received < Self.batchLimit, try pull.receive(into: message, flags: .dontWait) {
            received += 1
            message.withUnsafeBytes { bytes in
                let handled = gate.handle(bytes, now: now)
                log(handled, gate)
            }
        }
        if received == 0 { return }
        let mapBefore = gate.mapBytes
        defer {
            if gate.mapBytes != mapBefore {
                logger.notice("store map grown", ["from_mb": "\(mapBefore >> 20)", "to_mb": "\(gate.mapBytes >> 20)"])
            }
        }
        guard try gate.commit(now: now) else {
            logger.error(
                "store write failed; batch not published", ["error": gate.lastStoreError, "messages": "\(received)"])
            return
        }
        for p in gate.published {
            topic.removeSubrange(prefix...)
            gate.symbol(p).withBytes { topic.append(contentsOf: $0) }
            let sent = gate.withPayload(p) { payload -> Bool in
                guard (try? pub.send(topic, flags: [.sendMore, .dontWait])) == true else { return false }
                return (try? pub.send(payload, flags: .dontWait)) == true
            }
            if !sent { metrics.publishDropped.add() }
        }
        let elapsed = monotonicNanos() &- t0
        for p in gate.published where !p.duplicate { metrics.latency.record(nanoseconds: elapsed) }
    }

    func log(_ handled: Gate.Handled, _ gate: Gate) {
        switch handled {
        case .decision(let d):
            let level: LogLevel = d.downgraded || d.killSwitch || d.failClosed ? .info : .debug
            guard logger.enabled(level) else { return }
            let msg =
                d.mode == .shadow
                ? (d.downgraded ? "SHADOW-COMPARE DOWNGRADE" : "SHADOW-COMPARE")
                : (d.downgraded ? "DOWNGRADE" : "PASS")
            logger.log(
                level, msg,
                [
                    "seq": "\(d.seq)", "symbol": "\(gate.engine.symbol(d.symbolId))",
                    "from": d.original?.token ?? "UNKNOWN", "to": d.calibrated?.token ?? "UNCHANGED",
                    "effective": d.effective?.token ?? "ORIGINAL", "reason": d.reason.label,
                    "heat": d.heat.isNaN ? "null" : "\(d.heat)", "bucket": d.bucket.label, "mode": d.mode.label,
                ])
        case .duplicate(let seq):
            logger.debug("duplicate plan_id; republishing", ["seq": "\(seq)"])
        case .state:
            break
        case .rejected(let r):
            if rejectLog.allow(now: monotonicNanos()) {
                logger.warning(
                    "rejected message",
                    [
                        "reason": r.reason.label, "field": r.field, "detail": r.detail,
                        "suppressed": "\(rejectLog.takeSuppressed())",
                    ])
            }
        }
    }

    func publishHeartbeat(_ gate: Gate, _ pub: Socket, _ w: inout JSONWriter) {
        refreshKillSwitch(gate)
        let now = wallClock()
        var hb = Heartbeat()
        let e = gate.engine
        hb.lastSeq = e.nextSeq - 1
        hb.mode = e.policy.mode
        hb.killSwitch = e.killSwitch
        (hb.heat, hb.bucket, _) = e.heatState(now: now)
        hb.equityAge = e.equityAge(now: now)
        hb.positions = e.openPositions
        hb.processed = metrics.processed.load
        hb.downgraded = metrics.downgraded.load
        hb.rejected = metrics.rejected.load
        hb.uptime = now - startedAt
        hb.guardTripped = e.guardTrip?.reason
        hb.ts = now
        w.reset()
        hb.encode(into: &w)
        let ok = (try? pub.send("heartbeat", flags: [.sendMore, .dontWait])) == true
        if !ok || (try? pub.send(w.bytes, flags: .dontWait)) != true { metrics.publishDropped.add() }
    }

    // MARK: - Reload and control

    func reload(_ gate: Gate) {
        // Reloading, then ready again whether the file was taken or refused (sd_notify(3)).
        notifier.reloading()
        defer {
            lastStatusLine = statusLine(gate)
            notifier.ready(status: lastStatusLine)
        }
        do {
            let fresh = try source.load()
            let old = config
            config = GateConfig.reloaded(running: old, file: fresh)
            gate.sweeper.retention = config.journalRetentionSec
            gate.replicator?.retention = config.journalRetentionSec
            // A tripped guard keeps shadow through reloads: only `mode enforce` switches back.
            if gate.engine.guardTrip != nil { config.mode = .shadow }
            gate.apply(Policy(config))
            logger = Logger(level: config.logLevel, format: config.logFormat)
            var restartOnly = GateConfig.restartNeeded(running: old, file: fresh)
            if RepeatWindow.capacity(ttl: fresh.calibratedTTLSec, peakRate: old.repeatPeakRate) > gate.repeatCapacity {
                // The window was sized at start for the TTL then; a longer one needs a bigger window.
                restartOnly.append("P26_CALIBRATED_TTL_SEC (repeat window size)")
            }
            let changed = GateConfig.table.filter { $0.applies == .reload && old.text($0.key) != config.text($0.key) }
                .map { "\($0.key) \(old.text($0.key)) -> \(config.text($0.key))" }
            var ledger = "not recorded"
            if let recorder = reloadRecorder {
                do {
                    ledger = try recorder(changed, restartOnly, config)
                } catch {
                    ledger = "FAILED: \(error)"
                }
            }
            logger.notice(
                "configuration reloaded",
                [
                    "mode": config.mode.label, "heat_min": "\(config.heatMin)", "heat_max": "\(config.heatMax)",
                    "guard": config.guardSettings.enabled ? "on" : "off",
                    "guard_tripped": gate.engine.guardTrip?.reason.label ?? "",
                    "changed": changed.joined(separator: "; "),
                    "restart_needed_for": restartOnly.joined(separator: ","), "ledger": ledger,
                ])
            metrics.observe(gate.engine, now: wallClock())
        } catch {
            logger.error("configuration reload refused; keeping the running configuration", ["error": "\(error)"])
        }
    }

    func serveControl(_ gate: Gate, _ control: Socket, _ message: Message, metricsPort: Int) {
        guard (try? control.receive(into: message, flags: .dontWait)) == true else { return }
        var more = message.more
        let request = message.withUnsafeBytes { try? JSON.parse($0) }
        while more, (try? control.receive(into: message, flags: .dontWait)) == true { more = message.more }
        var reply = JSONWriter(capacity: 1024)
        let cmd = request?["cmd"]?.string ?? ""
        switch cmd {
        case "status":
            refreshKillSwitch(gate)
            statusJSON(gate, metricsPort: metricsPort, into: &reply)
        case "mode":
            let wanted = request?["mode"]?.string?.lowercased()
            if wanted == "shadow" || wanted == "enforce" {
                let previous = gate.engine.policy.mode
                var policy = gate.engine.policy
                policy.mode = wanted == "enforce" ? .enforce : .shadow
                config.mode = policy.mode
                gate.apply(policy)
                metrics.observe(gate.engine, now: wallClock())
                logger.notice(
                    "mode switched",
                    ["from": previous.label, "to": policy.mode.label, "reason": request?["reason"]?.string ?? ""])
                reply.raw("{\"ok\":true,\"mode\":")
                reply.string(policy.mode.label)
                reply.raw(",\"previous\":")
                reply.string(previous.label)
                reply.raw("}")
            } else {
                reply.raw("{\"ok\":false,\"error\":\"mode must be shadow or enforce\"}")
            }
        case "reload":
            signals.reload.store(false, ordering: .relaxed)
            reload(gate)
            reply.raw("{\"ok\":true,\"mode\":")
            reply.string(config.mode.label)
            reply.raw("}")
        case "ping":
            reply.raw("{\"ok\":true}")
        default:
            reply.raw("{\"ok\":false,\"error\":\"unknown command; use status, mode, reload, ping\"}")
        }
        _ = try? control.send(reply.bytes)
    }

    func statusJSON(_ gate: Gate, metricsPort: Int, into w: inout JSONWriter) {
        let now = wallClock()
        let e = gate.engine
        let (heat, bucket, problem) = e.heatState(now: now)
        w.raw("{\"ok\":true,\"version\":")
        w.string(HeatGateVersion.current)
        w.raw(",\"pid\":")
        w.int(Int(getpid()))
        w.raw(",\"mode\":")
        w.string(e.policy.mode.label)
        w.raw(",\"kill_switch\":")
        w.bool(e.killSwitch)
        w.raw(",\"heat_value\":")
        w.double(heat)
        w.raw(",\"heat_bucket\":")
        w.string(bucket.label)
        w.raw(",\"inputs_problem\":")
        if let problem { w.string(problem.label) } else { w.raw("null") }
        w.raw(",\"equity_usd\":")
        w.double(e.equity ?? .nan)
        w.raw(",\"equity_age_sec\":")
        w.double(e.equityAge(now: now))
        w.raw(",\"positions\":")
        w.int(e.openPositions)
        w.raw(",\"total_risk_usd\":")
        w.double(e.totalRiskUSD)
        w.raw(",\"last_seq\":")
        w.uint(e.nextSeq - 1)
        w.raw(",\"processed\":")
        w.uint(metrics.processed.load)
        w.raw(",\"downgraded\":")
        w.uint(metrics.downgraded.load)
        w.raw(",\"rejected\":")
        w.uint(metrics.rejected.load)
        w.raw(",\"publish_dropped\":")
        w.uint(metrics.publishDropped.load)
        w.raw(",\"subscribers\":")
        w.int(Int(metrics.subscribers.load))
        w.raw(",\"store_write_failures\":")
        w.uint(metrics.storeWriteFailures.load)
        w.raw(",\"uptime_sec\":")
        w.fixed(now - startedAt, decimals: 3)
        w.raw(",\"guard_enabled\":")
        w.bool(e.policy.guardSettings.enabled)
        w.raw(",\"guard_tripped\":")
        if let t = e.guardTrip { w.string(t.reason.label) } else { w.raw("null") }
        w.raw(",\"heat_min\":")
        w.double(e.policy.heatMin)
        w.raw(",\"heat_max\":")
        w.double(e.policy.heatMax)
        w.raw(",\"state_dir\":")
        w.string(config.stateDir)
        w.raw(",\"run_dir\":")
        w.string(gate.store.directory)
        if let r = gate.replicator {
            w.raw(",\"durable_seq\":")
            w.uint(r.durableLastSeq)
            w.raw(",\"durable_lag_sec\":")
            w.double(r.lagSeconds)
        }
        w.raw(",\"config_file\":")
        if let p = source.path { w.string(p) } else { w.raw("null") }
        w.raw(",\"ingest_endpoint\":")
        w.string(config.ingestEndpoint)
        w.raw(",\"publish_endpoint\":")
        w.string(config.publishEndpoint)
        w.raw(",\"metrics\":")
        w.string("\(config.metricsBind):\(metricsPort)")
        w.raw(",\"ts\":")
        w.fixed(now, decimals: 6)
        w.raw("}")
    }
}

/// Holds a non-Sendable value handed to exactly one other thread.
final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// Lets through at most `perSecond` events a second and counts the rest.
struct RateLimiter {
    let perSecond: Int
    var windowStart: UInt64 = 0
    var count = 0
    var suppressed = 0

    init(perSecond: Int) { self.perSecond = perSecond }

    mutating func allow(now: UInt64) -> Bool {
        if now &- windowStart >= 1_000_000_000 {
            windowStart = now
            count = 0
        }
        count += 1
        if count > perSecond {
            suppressed += 1
            return false
        }
        return true
    }

    mutating func takeSuppressed() -> Int {
        defer { suppressed = 0 }
        return suppressed
    }
}

/// Removes a socket file left by a daemon that was killed, so `bind` does not fail; a live daemon still
/// answers on it, which the control client detects.
func unlinkStaleIPC(_ endpoint: String) {
    let path = String(endpoint.dropFirst("ipc://".count))
    unlink(path)
}
