import HeatGateCore
import HeatGateStore
import ZeroMQ

/// One decision as published (SPEC §4), from the live stream or recovered from the journal.
public struct PublishedDecision: Sendable, Equatable {
    /// Where the subscriber got it.
    public enum Source: Sendable, Equatable {
        /// The PUB stream.
        case live
        /// The store's journal, filling a gap in the stream.
        case journal
    }

    /// The decision's `seq`.
    public var seq: UInt64
    /// The decision's `symbol`.
    public var symbol: String
    /// The decision's JSON, byte for byte as published and journaled.
    public var json: [UInt8]
    public var source: Source

    public init(seq: UInt64, symbol: String, json: [UInt8], source: Source) {
        self.seq = seq
        self.symbol = symbol
        self.json = json
        self.source = source
    }

    /// The JSON as text.
    public var text: String { String(decoding: json, as: UTF8.self) }

    /// The JSON as a tree.
    /// - Throws: ``JSONScanError`` (never for a decision the daemon wrote).
    public func parsed() throws -> JSON {
        try json.withUnsafeBytes { try JSON.parse($0) }
    }
}

/// What ``DecisionSubscriber/next(timeout:)`` reports.
public enum SubscriberEvent: Sendable, Equatable {
    /// The next decision in `seq` order.
    case decision(PublishedDecision)
    /// A heartbeat arrived after none had (start) or after the gate was reported down.
    case gateUp(lastSeq: UInt64)
    /// No heartbeat for ``SubscriberOptions/missedHeartbeats`` × ``SubscriberOptions/heartbeatInterval``:
    /// the daemon is down, stalled or unreachable. The Apply Layer keeps executing original proposals
    /// (SPEC §5); nothing waits for the gate.
    case gateDown(silentFor: Duration)
    /// Decisions that were published but are no longer in the journal (swept after
    /// `P26_JOURNAL_RETENTION_SEC`) or could not be read from it: they cannot be delivered.
    case missed(ClosedRange<UInt64>)
}

/// How a ``DecisionSubscriber`` behaves.
public struct SubscriberOptions: Sendable {
    /// The gate's `P26_HEARTBEAT_SEC`.
    public var heartbeatInterval: Duration = .seconds(1)
    /// Report the gate down after this many heartbeat intervals without one; 0 never does (for a gate
    /// with heartbeats off).
    public var missedHeartbeats = 3
    /// Read the journal's tail as soon as the socket (re)connects, rather than waiting for the next
    /// decision or heartbeat to reveal the gap.
    public var catchUpOnConnect = true
    /// Journal entries read per transaction while filling a gap (bounds memory and reader time).
    public var journalChunk = 1024
    /// `ZMQ_RCVHWM` of the SUB socket; what overflows it is recovered from the journal.
    public var receiveHighWaterMark: Int32 = 100_000

    public init() {}
}

/// Errors of the subscriber itself.
public struct SubscriberError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }

    /// ``DecisionSubscriber/next(timeout:)`` after ``DecisionSubscriber/disconnect()`` or
    /// ``DecisionSubscriber/close()``.
    public static let disconnected = SubscriberError("the subscriber is disconnected; call reconnect()")
}

/// Follows the gate's PUB stream and delivers every decision once, in `seq` order, filling any gap from the
/// store's journal — the ZeroMQ Guide's Clone pattern, with the journal as the snapshot.
///
/// PUB/SUB loses messages by design: while a subscriber is not connected (its process restarted, the
/// daemon restarted, a reconnect is in flight) and when its queue overflows. `seq` is gap-free and every
/// published decision is committed to the journal first (SPEC §4), so a gap is detected from the next
/// decision's `seq` or from a heartbeat's `last_seq` (when nothing else flows) and filled by reading the
/// journal read-only. Decisions already delivered (a republished duplicate `plan_id`, or a live message
/// that a journal read already delivered) are dropped.
///
/// Pull-style: ``next(timeout:)`` waits in `zmq_poll` (no busy polling), on the caller's thread. The
/// instance owns a SUB socket, so it belongs to one thread at a time (it is not `Sendable`); run it on a
/// thread of its own and hand decisions on, or call it from the Apply Layer's loop.
///
/// ```swift
/// let store = try DecisionLookup(
///     stateDir: "/var/lib/quantum-portfolio-heat-gate", runDir: "/run/quantum-portfolio-heat-gate", opening: .lazily)
/// let sub = try DecisionSubscriber(publishEndpoint: "tcp://127.0.0.1:5557", store: store, start: .after(saved))
/// while running {
///     switch try sub.next(timeout: .seconds(1)) {
///     case .decision(let d)?: record(d); saved = d.seq
///     case .gateDown?: alert()   // keep executing proposals as they stand
///     default: break
///     }
/// }
/// ```
public final class DecisionSubscriber {
    /// Where delivery starts.
    public enum Start: Sendable, Equatable {
        /// Every decision with a `seq` above this one (0: all the journal still holds). Pass the last
        /// `seq` handled before a restart to miss nothing.
        case after(UInt64)
        /// Decisions after the journal's last `seq` at start (or, with no readable store, after the first
        /// heartbeat's `last_seq` or before the first decision received).
        case latest
    }

    /// The gate's liveness as the heartbeats tell it.
    public enum Health: Sendable, Equatable {
        /// No heartbeat yet, and not yet silent long enough to say down.
        case unknown
        case up
        case down
    }

    public let publishEndpoint: String
    public let store: DecisionLookup
    public let options: SubscriberOptions
    let context: Context
    var socket: Socket?
    let message = Message()
    let clock = ContinuousClock()

    /// Highest `seq` queued or delivered; `nil` until known (``Start/latest`` with no store yet).
    var lastQueued: UInt64?
    /// Highest `seq` known to exist (from a decision or a heartbeat); beyond `lastQueued` it is a gap.
    var target: UInt64 = 0
    var queue: [SubscriberEvent] = []
    var queueHead = 0
    var lastHeartbeat: ContinuousClock.Instant?
    var connectedAt: ContinuousClock.Instant

    /// The `seq` of the last decision delivered (or the position delivery started after).
    public private(set) var lastSeq: UInt64?
    /// The gate's liveness, as last reported.
    public private(set) var health: Health = .unknown
    /// Decisions delivered from the live stream and from the journal, for metrics and tests.
    public private(set) var deliveredLive = 0
    public private(set) var deliveredFromJournal = 0
    /// Duplicates dropped (republished `plan_id`s, or live copies of decisions the journal delivered).
    public private(set) var duplicatesDropped = 0
    /// The last error reading the journal (the gap was then reported as ``SubscriberEvent/missed(_:)``).
    public private(set) var lastJournalError: (any Error)?

    /// Connects a SUB socket to `publishEndpoint` (topics `calibrated.` and `heartbeat`).
    ///
    /// - Parameters:
    ///   - publishEndpoint: the gate's `P26_PUBLISH_ENDPOINT`.
    ///   - store: the gate's store, read-only; share the process's one ``DecisionLookup``.
    ///   - start: ``Start/latest`` or ``Start/after(_:)``.
    ///   - options: ``SubscriberOptions``.
    /// - Throws: `ZMQError` for a bad endpoint.
    public init(
        publishEndpoint: String, store: DecisionLookup, start: Start = .latest, options: SubscriberOptions = .init()
    ) throws {
        self.publishEndpoint = publishEndpoint
        self.store = store
        self.options = options
        context = try Context(ioThreads: 1, blocky: false)
        connectedAt = clock.now
        switch start {
        case .after(let seq):
            lastQueued = seq
            lastSeq = seq
        case .latest:
            // With no readable store yet, the first heartbeat or decision sets the position.
            do {
                lastQueued = try store.lastSeq() ?? 0
                lastSeq = lastQueued
            } catch {
                lastJournalError = error
            }
        }
        try connect()
    }

    /// Opens the stores lazily: the hot one in `runDir` (`nil`: derived from `stateDir` as the gate does),
    /// the durable one in `stateDir`; see ``init(publishEndpoint:store:start:options:)``.
    public convenience init(
        publishEndpoint: String, stateDir: String, runDir: String? = nil, start: Start = .latest,
        options: SubscriberOptions = .init()
    ) throws {
        try self.init(
            publishEndpoint: publishEndpoint,
            store: DecisionLookup(stateDir: stateDir, runDir: runDir, opening: .lazily),
            start: start, options: options)
    }

    deinit {
        try? socket?.close(linger: 0)
    }

    func connect() throws {
        let s = try Socket(context, type: .sub)
        try s.set(.linger, 0)
        try s.set(.receiveHighWaterMark, options.receiveHighWaterMark)
        try s.subscribe("calibrated.")
        try s.subscribe("heartbeat")
        try s.connect(publishEndpoint)
        socket = s
        connectedAt = clock.now
        if options.catchUpOnConnect, let last = try? store.lastSeq() {
            target = max(target, last)
        }
    }

    /// Closes the socket, keeping the position: decisions published meanwhile are recovered after
    /// ``reconnect()``.
    public func disconnect() {
        try? socket?.close(linger: 0)
        socket = nil
    }

    /// Connects a new socket and carries on from ``lastSeq``.
    /// - Throws: `ZMQError`.
    public func reconnect() throws {
        disconnect()
        try connect()
    }

    /// Closes the socket for good (the instance may still ``reconnect()``).
    public func close() {
        disconnect()
    }

    /// The next decision in `seq` order, or a change in the gate's health, waiting at most `timeout`.
    ///
    /// Decisions come from the stream when they follow the last one delivered, and from the journal
    /// when a gap shows (read in chunks of ``SubscriberOptions/journalChunk``). A decision is never
    /// delivered twice and never out of order.
    /// - Returns: the event, or `nil` when `timeout` passed with nothing to report.
    /// - Throws: ``SubscriberError/disconnected``, or `ZMQError` from the socket.
    public func next(timeout: Duration) throws -> SubscriberEvent? {
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let e = dequeue() { return e }
            if let q = lastQueued, target > q {
                fillFromJournal(after: q)
                continue
            }
            let now = clock.now
            checkHealth(now)
            if queueHead < queue.count { continue }
            guard let socket else { throw SubscriberError.disconnected }
            if now >= deadline { return nil }
            var wait = deadline - now
            if let downAt = downDeadline, health != .down { wait = min(wait, max(.zero, downAt - now)) }
            var items = [PollItem(socket)]
            if try ZMQ.poll(&items, timeout: wait) > 0 { try drain(socket) }
        }
    }

    func dequeue() -> SubscriberEvent? {
        guard queueHead < queue.count else { return nil }
        let e = queue[queueHead]
        queueHead += 1
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        }
        if case .decision(let d) = e {
            lastSeq = d.seq
            if d.source == .live { deliveredLive += 1 } else { deliveredFromJournal += 1 }
        }
        return e
    }

    // MARK: - The stream

    /// Handles what the socket holds now, a bounded number of messages per call.
    func drain(_ socket: Socket) throws {
        var handled = 0
        while handled < 1024, try socket.receive(into: message, flags: .dontWait) {
            handled += 1
            guard message.more else { continue }  // not a message of ours
            let kind: TopicKind = message.withUnsafeBytes { topic in
                if topic.elementsEqual("heartbeat".utf8) { return .heartbeat }
                let prefix = "calibrated.".utf8
                guard topic.starts(with: prefix) else { return .other }
                return .decision(String(decoding: topic.dropFirst(prefix.count), as: UTF8.self))
            }
            _ = try socket.receive(into: message)
            var more = message.more
            let body = message.bytes
            while more, try socket.receive(into: message) { more = message.more }
            switch kind {
            case .heartbeat: heartbeat(body)
            case .decision(let symbol): live(body, symbol: symbol)
            case .other: break
            }
        }
    }

    enum TopicKind {
        case heartbeat
        case decision(String)
        case other
    }

    func heartbeat(_ body: [UInt8]) {
        let now = clock.now
        lastHeartbeat = now
        let last = body.withUnsafeBytes { topLevelUInt($0, "last_seq") }
        if let last {
            if lastQueued == nil {
                lastQueued = last
                lastSeq = last
            }
            target = max(target, last)
        }
        if health != .up {
            health = .up
            enqueue(.gateUp(lastSeq: last ?? 0))
        }
    }

    func live(_ body: [UInt8], symbol: String) {
        guard let seq = body.withUnsafeBytes({ topLevelUInt($0, "seq") }), seq > 0 else { return }
        if lastQueued == nil {
            lastQueued = seq - 1
            lastSeq = seq - 1
        }
        let q = lastQueued ?? 0
        if seq <= q {
            duplicatesDropped += 1
        } else if seq == q + 1 && target <= q {
            enqueue(.decision(PublishedDecision(seq: seq, symbol: symbol, json: body, source: .live)))
            lastQueued = seq
            target = seq
        } else {
            // A gap (or one already being filled): the journal holds this one too.
            target = max(target, seq)
        }
    }

    func enqueue(_ e: SubscriberEvent) {
        queue.append(e)
    }

    // MARK: - The journal

    /// Queues the next chunk of decisions after `after` (up to `target`) from the journal.
    func fillFromJournal(after: UInt64) {
        let want = Int(min(UInt64(options.journalChunk), target - after))
        let rows: [(seq: UInt64, json: [UInt8])]
        do {
            rows = try store.decisions(from: after + 1, limit: want)
        } catch {
            lastJournalError = error
            enqueue(.missed((after + 1)...target))
            lastQueued = target
            return
        }
        var expected = after + 1
        for row in rows {
            if row.seq > expected { enqueue(.missed(expected...(row.seq - 1))) }
            let symbol = row.json.withUnsafeBytes { topLevelString($0, "symbol") } ?? ""
            enqueue(.decision(PublishedDecision(seq: row.seq, symbol: symbol, json: row.json, source: .journal)))
            expected = row.seq + 1
        }
        if rows.isEmpty || (rows.count < want && expected <= target) {
            // The journal ends before the target: swept by retention (or the store is not the gate's).
            enqueue(.missed(expected...target))
            expected = target + 1
        }
        lastQueued = expected - 1
        target = max(target, expected - 1)
    }

    // MARK: - Health

    var downAfter: Duration? {
        options.missedHeartbeats > 0 ? options.heartbeatInterval * options.missedHeartbeats : nil
    }

    var downDeadline: ContinuousClock.Instant? {
        guard let downAfter else { return nil }
        let since = lastHeartbeat.map { max($0, connectedAt) } ?? connectedAt
        return since.advanced(by: downAfter)
    }

    func checkHealth(_ now: ContinuousClock.Instant) {
        guard health != .down, let downAt = downDeadline, now >= downAt else { return }
        health = .down
        let since = lastHeartbeat.map { max($0, connectedAt) } ?? connectedAt
        enqueue(.gateDown(silentFor: now - since))
    }
}

/// A top-level unsigned integer field of a JSON object, scanned in place.
func topLevelUInt(_ bytes: UnsafeRawBufferPointer, _ key: StaticString) -> UInt64? {
    guard var it = try? JSONObjectIterator(bytes) else { return nil }
    while let m = try? it.next() {
        guard bytes.equals(m.key, key) else { continue }
        guard m.value.kind == .number, let d = parseDouble(bytes, m.value.range), d >= 0, d < 1.8e19 else {
            return nil
        }
        return UInt64(d)
    }
    return nil
}

/// A top-level string field of a JSON object.
func topLevelString(_ bytes: UnsafeRawBufferPointer, _ key: StaticString) -> String? {
    guard var it = try? JSONObjectIterator(bytes) else { return nil }
    while let m = try? it.next() {
        guard bytes.equals(m.key, key) else { continue }
        return m.value.kind == .string ? decodeString(bytes, m.value) : nil
    }
    return nil
}
