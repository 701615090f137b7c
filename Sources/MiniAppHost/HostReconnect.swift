import MiniAppJSON

#if canImport(Glibc)
import Glibc
#endif

/// Losing the connection, and getting it back.
extension HostClient {
    /// Ends connection `sock` with `error`: calls in flight fail (with `UNAUTHORIZED` when the
    /// daemon refused this peer), handlers are cancelled, `connection.lost` is delivered. Without
    /// `reconnect`, or after a refusal, the client is done.
    func lost(_ sock: LineSocket, _ error: HostError) {
        let calls: [Pending]? = lock.withLock {
            guard socket === sock else { return nil }
            socket = nil
            generation += 1
            if closed || !options.reconnect || terminal != nil {
                closed = true
                if terminal == nil { terminal = error }
            }
            defer { pending = [:] }
            return Array(pending.values)
        }
        guard let calls else { return }
        sock.shutdownBoth()
        cancelAllServing()
        let reported = lock.withLock { terminal } ?? error
        for p in calls { p.complete(.failure(reported)) }
        notify("connection.lost", ["code": .string(reported.code), "message": .string(reported.message)])
    }

    /// Reconnects with exponential backoff; false when closed or out of attempts (the client is
    /// then done: later calls fail `HOST_UNAVAILABLE`).
    func reconnect() -> Bool {
        var delay = options.reconnectInitialMillis
        var last = HostError(HostError.Code.hostUnavailable, "not connected")
        for _ in 0..<options.maxReconnectAttempts {
            if !pause(millis: delay) { return false }
            delay = min(delay * 2, options.reconnectMaxMillis)
            do {
                let sock = try LineSocket(path: path, maxLine: options.maxLineBytes, sendTimeoutMillis: options.sendTimeoutMillis)
                lock.withLock {
                    socket = sock
                    generation += 1
                }
                register()
                return true
            } catch {
                last = error
            }
        }
        lock.withLock {
            closed = true
            terminal = HostError(
                HostError.Code.hostUnavailable,
                "gave up reconnecting to miniappd at \(path) after \(options.maxReconnectAttempts) attempts: \(last.message)")
        }
        return false
    }

    /// Waits `millis` (woken early only by `close()`); false when closed. The wake pipe is
    /// drained on every wake-up: a byte left in it would make every wait return at once and
    /// spend all the attempts in a few milliseconds.
    private func pause(millis: Int) -> Bool {
        let deadline = monotonicNanos() + UInt64(millis) * 1_000_000
        while true {
            if lock.withLock({ closed }) { return false }
            let now = monotonicNanos()
            guard now < deadline else { return true }
            var fd = pollfd(fd: wakeFd, events: Int16(POLLIN), revents: 0)
            if poll(&fd, 1, Int32((deadline - now) / 1_000_000) + 1) > 0 { drainWake() }
        }
    }

    /// Registers providers and subscriptions again on a new connection, then delivers
    /// `connection.restored` (with the first refusal as `error`, if any).
    private func register() {
        let (methods, subs) = lock.withLock { (providers.keys.sorted(), subscriptions) }
        var requests: [(String, JSONObject)] = subs.map { ("inspector.subscribe", $0) }
        if !methods.isEmpty { requests.append(("bridge.provide", ["methods": .array(methods.map { .string($0) })])) }
        lock.withLock { subscriptions = [] }  // each is recorded again when its call succeeds
        let tracker = RegistrationTracker(count: requests.count) { [self] error in
            var params: JSONObject = [:]
            if let error { params["error"] = ["code": .string(error.code), "message": .string(error.message)] }
            notify("connection.restored", params)
        }
        for (method, params) in requests { start(method, params, timeoutMillis: nil) { tracker.done($0) } }
    }
}

/// Counts the registrations of a reconnection down to zero.
final class RegistrationTracker: @unchecked Sendable {
    private let lock = Lock()
    private var left: Int
    private var firstError: HostError?
    private let finish: (HostError?) -> Void

    init(count: Int, finish: @escaping (HostError?) -> Void) {
        left = count
        self.finish = finish
        if count == 0 { finish(nil) }
    }

    func done(_ r: Result<JSONValue, HostError>) {
        let end: Bool = lock.withLock {
            if case .failure(let e) = r, firstError == nil { firstError = e }
            left -= 1
            return left == 0
        }
        if end { finish(firstError) }
    }
}
