import CBenchShims

#if canImport(Glibc)
    import Glibc
#endif

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so a generator and a
/// receiver in different processes can subtract each other's times.
@inline(__always)
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// The wall clock, epoch seconds with fraction (the proposal and decision times of SPEC §3–§4).
public func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Sleeps until `deadline` (CLOCK_MONOTONIC ns) with `clock_nanosleep(TIMER_ABSTIME)`: no drift, no spin.
public func sleepUntil(_ deadline: UInt64) {
    var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nil) == EINTR {}
}

/// Sleeps for `nanos`.
public func sleepFor(_ nanos: UInt64) { sleepUntil(monotonicNanos() &+ nanos) }

/// Asks the kernel for 1 µs timer slack instead of the default 50 µs, so sleeps wake on schedule.
public func tightenTimerSlack() {
    _ = hgbench_set_timer_slack(1)
}
