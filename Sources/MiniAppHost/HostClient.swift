import Foundation
public import MiniAppJSON

#if canImport(Glibc)
import Glibc
#endif

/// A host runtime's client of the daemon's control socket (spec/control-api.md): pipelined
/// calls matched by id, each with a timeout; notifications as `AsyncStream`s; host-provided
/// Bridge methods served by `provide`; reconnection with backoff after the daemon restarts,
/// registering providers and inspector subscriptions again.
///
/// One reader thread per client reads the socket, matches replies, expires timeouts and runs
/// handlers (each starts on that thread and continues on the global executor once it suspends).
/// Bad input from the daemon never hangs a caller: a line that is not JSON-RPC, or a reply to a
/// request this host never sent, drops the connection (every call in flight fails
/// `PARSE_ERROR`/`INVALID_REQUEST`; then it reconnects); a lost connection fails calls in flight
/// `HOST_UNAVAILABLE`; a call without an answer fails `TIMEOUT`. Call `close()` when done.
public final class HostClient: @unchecked Sendable {
    struct Pending {
        var deadline: UInt64
        var method: String
        var complete: @Sendable (Result<JSONValue, HostError>) -> Void
    }

    struct Serving {
        var generation: Int
        var task: Task<Void, Never>?
        var cancelled = false
    }

    /// The control socket path.
    public let path: String
    let options: HostOptions
    let lock = Lock()
    /// A self-pipe (a socket pair) that wakes the reader's poll (a new earlier deadline, `close()`).
    let wakeFd: Int32
    private let wakeWriteFd: Int32
    // Guarded by `lock`.
    var socket: LineSocket?
    var generation = 0
    var closed = false
    var terminal: HostError?
    var nextId: Int64 = 0
    var pending: [Int64: Pending] = [:]
    var providers: [String: HostHandler] = [:]
    var subscriptions: [JSONObject] = []
    var serving: [String: Serving] = [:]
    var streams: [Int: AsyncStream<HostNotification>.Continuation] = [:]
    var nextStream = 0
    var wakeAt: UInt64 = .max

    /// Connects to the control socket at `path` (throws `HOST_UNAVAILABLE` when nobody listens).
    public init(path: String, options: HostOptions = HostOptions()) throws(HostError) {
        self.path = path
        self.options = options
        socket = try LineSocket(path: path, maxLine: options.maxLineBytes, sendTimeoutMillis: options.sendTimeoutMillis)
        var fds: [Int32] = [0, 0]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        guard socketpair(AF_UNIX, type, 0, &fds) == 0 else {
            throw HostError(HostError.Code.internalError, "socketpair: \(LineSocket.errnoText())")
        }
        (wakeFd, wakeWriteFd) = (fds[0], fds[1])
        let reader = Thread { [self] in runReader() }
        reader.name = "miniapp-host-reader"
        reader.start()
    }

    deinit {
        Glibc.close(wakeFd)
        Glibc.close(wakeWriteFd)
    }

    /// Connects to the control socket at `path`.
    public static func connect(_ path: String, options: HostOptions = HostOptions()) async throws(HostError) -> HostClient {
        try HostClient(path: path, options: options)
    }

    // MARK: calls

    /// Calls a control method and returns its `result`; throws the daemon's error, `TIMEOUT`
    /// after `timeoutMillis` (default `options.callTimeoutMillis`), or `HOST_UNAVAILABLE` when
    /// the connection is lost first. Any number of calls may be in flight.
    public func call(_ method: String, _ params: JSONObject = [:], timeoutMillis: Int? = nil) async throws(HostError) -> JSONValue {
        let result: Result<JSONValue, HostError> = await withCheckedContinuation { c in
            start(method, params, timeoutMillis: timeoutMillis) { c.resume(returning: $0) }
        }
        return try result.get()
    }

    /// `call` for synchronous code (threads, the CLI). Must not run on the reader thread
    /// (inside a handler before its first suspension).
    /// With `descriptor`, an open file goes with the request (`SCM_RIGHTS`), as
    /// `packages.install {fd: true}` wants; the caller keeps (and closes) its own.
    public func callBlocking(_ method: String, _ params: JSONObject = [:], timeoutMillis: Int? = nil, passing descriptor: Int32? = nil)
        throws(HostError) -> JSONValue
    {
        let box = ResultBox()
        start(method, params, timeoutMillis: timeoutMillis, passing: descriptor) { box.put($0) }
        return try box.take().get()
    }

    /// Sends a request; `complete` runs once with its outcome (on the reader thread, or here).
    func start(
        _ method: String, _ params: JSONObject, timeoutMillis: Int?, passing descriptor: Int32? = nil,
        complete: @escaping @Sendable (Result<JSONValue, HostError>) -> Void
    ) {
        let ms = max(1, timeoutMillis ?? options.callTimeoutMillis)
        lock.lock()
        guard let sock = socket, terminal == nil else {
            let e = terminal ?? HostError(HostError.Code.hostUnavailable, "not connected to miniappd at \(path) (reconnecting); try again")
            lock.unlock()
            return complete(.failure(e))
        }
        nextId += 1
        let id = nextId
        let deadline = monotonicNanos() + UInt64(ms) * 1_000_000
        let record = method == "inspector.subscribe"
        pending[id] = Pending(deadline: deadline, method: method) { [self] r in
            if record, case .success = r { lock.withLock { subscriptions.append(params) } }
            complete(r)
        }
        let wake = deadline < wakeAt
        if wake { wakeAt = deadline }
        lock.unlock()
        if wake { signalReader() }
        let request: JSONValue = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": .object(params)]
        do {
            try sock.send(request.serialized(), passing: descriptor)
        } catch {
            // The socket is shut down: the reader fails every call in flight, this one included.
            signalReader()
        }
    }

    /// Sends a raw JSON-RPC message (e.g. an answer to a request delivered by `onMessage`).
    public func send(_ message: JSONValue) throws(HostError) {
        let sock = lock.withLock { terminal == nil ? socket : nil }
        guard let sock else { throw terminalError() }
        try sock.send(message.serialized())
    }

    // MARK: providers and notifications

    /// Serves the host-provided Bridge `methods` with `handler` (`bridge.provide`), now and after
    /// every reconnection. A later `provide` of the same method replaces the handler.
    public func provide(_ methods: [String], _ handler: @escaping HostHandler) async throws(HostError) {
        let all = register(methods, handler)
        do {
            _ = try await call("bridge.provide", ["methods": .array(all.map { .string($0) })])
        } catch {
            lock.withLock { for m in methods { providers[m] = nil } }
            throw error
        }
    }

    /// `provide` for synchronous code (same rules as `callBlocking`).
    public func provideBlocking(_ methods: [String], _ handler: @escaping HostHandler) throws(HostError) {
        let all = register(methods, handler)
        do {
            _ = try callBlocking("bridge.provide", ["methods": .array(all.map { .string($0) })])
        } catch {
            lock.withLock { for m in methods { providers[m] = nil } }
            throw error
        }
    }

    /// Records the handler; returns every method this host now provides.
    private func register(_ methods: [String], _ handler: @escaping HostHandler) -> [String] {
        lock.withLock {
            for m in methods { providers[m] = handler }
            return providers.keys.sorted()
        }
    }

    /// The notifications that arrive from now on, in order (subscribe before launching a
    /// program whose `program.exited` you want). Ends when the client is closed or gives up
    /// reconnecting.
    public func notifications() -> AsyncStream<HostNotification> {
        let (stream, continuation) = AsyncStream.makeStream(of: HostNotification.self)
        let key: Int? = lock.withLock {
            guard !closed else { return nil }
            nextStream += 1
            streams[nextStream] = continuation
            return nextStream
        }
        guard let key else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.streams.removeValue(forKey: key) } }
        return stream
    }

    /// Closes the connection: calls in flight fail `HOST_UNAVAILABLE`, handlers are cancelled,
    /// notification streams end. Idempotent.
    public func close() {
        let (sock, calls) = lock.withLock { () -> (LineSocket?, [Pending]) in
            closed = true
            if terminal == nil { terminal = HostError(HostError.Code.hostUnavailable, "the host closed its connection to miniappd") }
            defer { pending = [:] }
            return (socket, Array(pending.values))
        }
        sock?.shutdownBoth()
        signalReader()
        for p in calls { p.complete(.failure(terminalError())) }
    }

    /// Whether the client is done: `close()` was called, the connection was lost without
    /// `reconnect`, or reconnecting gave up.
    public var isClosed: Bool { lock.withLock { closed } }

    func terminalError() -> HostError {
        lock.withLock { terminal } ?? HostError(HostError.Code.hostUnavailable, "not connected to miniappd at \(path)")
    }

    func signalReader() {
        var one: UInt8 = 1
        _ = Glibc.write(wakeWriteFd, &one, 1)
    }
}

/// A one-shot slot a blocking caller waits on.
final class ResultBox: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var value: Result<JSONValue, HostError>?

    func put(_ r: Result<JSONValue, HostError>) {
        value = r
        done.signal()
    }

    func take() -> Result<JSONValue, HostError> {
        done.wait()
        return value!
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
