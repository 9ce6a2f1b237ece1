#if canImport(Glibc)
    import Glibc
#endif

/// Starts a POSIX thread running `body` (the benchmark programs own their threads, as the daemon does).
public func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            let box = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue() as! Box
            box.body()
            return nil
        }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}

/// Holds a value handed to exactly one other thread, read back after `pthread_join`.
public final class Handoff<T>: @unchecked Sendable {
    public var value: T
    public init(_ value: T) { self.value = value }
}
