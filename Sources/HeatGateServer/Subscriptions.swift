/// What the XPUB socket says about the gate's subscribers, counted from its subscription notices.
///
/// With `ZMQ_XPUB_VERBOSER` libzmq hands every subscribe (`0x01` ‖ prefix) and unsubscribe (`0x00` ‖
/// prefix) up to the daemon, including the unsubscribes it generates when a subscriber disconnects. So a
/// prefix that can match a decision topic counts one live subscriber of the stream; a subscriber with a
/// filter per symbol counts once per symbol. This is all a PUB socket can tell: it never names a peer nor
/// reports what it dropped for one (see docs/operations.md).
///
/// Pure and allocation-free: it runs in the decision loop on the notice's bytes in place.
struct SubscriptionBook {
    /// Live subscriptions that match `calibrated.<SYMBOL>` topics: `p26_subscribers`.
    private(set) var decisionSubscriptions = 0
    /// Live subscriptions that match the `heartbeat` topic.
    private(set) var heartbeatSubscriptions = 0
    /// Subscribe notices to decision topics since start (reconnects included).
    private(set) var decisionJoins: UInt64 = 0

    static let decisionTopic: StaticString = "calibrated."
    static let heartbeatTopic: StaticString = "heartbeat"

    /// Applies one notice.
    ///
    /// - Returns: `true` when it is a new subscription that receives heartbeats: the daemon answers it
    ///   with a heartbeat at once, so a subscriber that (re)connected learns `last_seq` without waiting
    ///   for the next regular one and fills from the journal what was published before its subscription
    ///   took effect.
    mutating func apply(_ notice: UnsafeRawBufferPointer) -> Bool {
        guard let kind = notice.first, kind <= 1 else { return false }
        let prefix = UnsafeRawBufferPointer(rebasing: notice[1...])
        let delta = kind == 1 ? 1 : -1
        if Self.matchesDecisions(prefix) {
            decisionSubscriptions = max(0, decisionSubscriptions + delta)
            if kind == 1 { decisionJoins &+= 1 }
        }
        guard Self.matches(prefix, topic: Self.heartbeatTopic) else { return false }
        heartbeatSubscriptions = max(0, heartbeatSubscriptions + delta)
        return kind == 1
    }

    /// A prefix filter receives a topic when the topic starts with it.
    static func matches(_ prefix: UnsafeRawBufferPointer, topic: StaticString) -> Bool {
        guard prefix.count <= topic.utf8CodeUnitCount else { return false }
        let t = UnsafeRawBufferPointer(start: topic.utf8Start, count: topic.utf8CodeUnitCount)
        return prefix.elementsEqual(t.prefix(prefix.count))
    }

    /// Some `calibrated.<SYMBOL>` topic starts with `prefix`: it is a prefix of `calibrated.`, or it is
    /// `calibrated.` followed by (the start of) a symbol.
    static func matchesDecisions(_ prefix: UnsafeRawBufferPointer) -> Bool {
        let t = UnsafeRawBufferPointer(start: decisionTopic.utf8Start, count: decisionTopic.utf8CodeUnitCount)
        if prefix.count <= t.count { return prefix.elementsEqual(t.prefix(prefix.count)) }
        return prefix.prefix(t.count).elementsEqual(t)
    }
}
