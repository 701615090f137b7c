// MiniAppBridge for Swift mini-programs: JSON-RPC 2.0 over the Bridge socket (fd 3,
// newline-delimited JSON; spec/bridge-protocol.md).
//
// Depends only on the standard library, Glibc, Synchronization and MiniAppJSON (pure Swift, no
// Foundation), so a mini-program links it statically (`-static-stdlib`) and the jail needs no
// shared Swift runtime. MiniAppJSON is the daemon's own strict parser: both ends of the Bridge
// agree on what a valid message is.
#if canImport(Glibc)
internal import Glibc
#endif
public import MiniAppJSON
internal import Synchronization

/// A JSON value as the Bridge carries it (`MiniAppJSON.JSONValue`): build params with
/// literals, e.g. `["key": "k", "value": 1]`.
public typealias BridgeValue = JSONValue

/// A failed call, the same shape in every SDK: `code` is the stable string of the spec's error
/// table (`error.data.code`, e.g. `PERMISSION_DENIED`), `message` the daemon's explanation.
/// `BRIDGE_CLOSED` is the SDK's own code for a connection that closed.
public struct BridgeError: Error, Sendable, CustomStringConvertible {
    /// The stable code (`INVALID_PARAMS`, `QUOTA_EXCEEDED`, …, or `BRIDGE_CLOSED`).
    public let code: String
    /// What went wrong and what to do.
    public let message: String
    /// The JSON-RPC `error.code` number.
    public let rpcCode: Int64
    /// The whole `error.data` object, if any.
    public let data: JSONValue?

    public init(code: String, message: String, rpcCode: Int64 = -32603, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.rpcCode = rpcCode
        self.data = data
    }

    static let closed = BridgeError(code: "BRIDGE_CLOSED", message: "the Bridge connection is closed")

    static func tooLarge(_ method: String, size: Int, limit: Int) -> BridgeError {
        BridgeError(
            code: "MESSAGE_TOO_LARGE",
            message: "\(method): the request is \(size) bytes; the Bridge limit is \(limit) (MINIAPP_BRIDGE_MAX_BYTES): send less per call",
            rpcCode: -32007, data: ["code": "MESSAGE_TOO_LARGE", "limit": .int(Int64(limit))])
    }

    /// A `data.code` that is missing, empty or not a string counts as absent (the number's code,
    /// else `INTERNAL`): a program branching on `code` never sees `""`.
    static func fromWire(_ error: JSONValue) -> BridgeError {
        let number = error["code"]?.intValue ?? -32603
        let sent = error["data"]?["code"]?.stringValue ?? ""
        let code = sent.isEmpty ? byNumber[number] ?? "INTERNAL" : sent
        return BridgeError(
            code: code, message: error["message"]?.stringValue ?? "bridge call failed", rpcCode: number, data: error["data"])
    }

    static let byNumber: [Int64: String] = [
        -32700: "PARSE_ERROR", -32600: "INVALID_REQUEST", -32601: "METHOD_NOT_FOUND", -32602: "INVALID_PARAMS",
        -32603: "INTERNAL", -32001: "PERMISSION_DENIED", -32002: "RATE_LIMITED", -32003: "QUOTA_EXCEEDED",
        -32004: "TIMEOUT", -32005: "HOST_UNAVAILABLE", -32006: "DOMAIN_NOT_ALLOWED", -32007: "MESSAGE_TOO_LARGE",
    ]

    public var description: String { "\(code): \(message)" }
}

/// A connection to the daemon's Bridge.
///
/// ```swift
/// let info = try await MiniAppBridge.call("system.info")
/// do { _ = try await MiniAppBridge.call("payment.pay", ["orderId": "o-1"]) }
/// catch { print(error.code) }   // "PERMISSION_DENIED"
/// MiniAppBridge.shared.onEvent { name, data in … }
/// ```
///
/// Calls may run concurrently; they are pipelined on the one socket and matched by id. One
/// reader thread (a plain pthread, started on first use, so no Swift concurrency thread ever
/// blocks in read(2)) resolves calls and delivers `event` notifications to the handlers.
///
/// A request over the Bridge's message limit throws `MESSAGE_TOO_LARGE` here, before it is
/// sent (the daemon would answer with an error it cannot match to the call, and close the
/// connection); the limit is `MINIAPP_BRIDGE_MAX_BYTES`, which the daemon sets in every worker
/// (default 1 MiB, newline excluded). An error answer with id null — one the daemon could not
/// match to a call — fails every call in flight with its code: the SDK cannot tell which call
/// it answers, and failing them beats leaving one waiting forever.
public final class MiniAppBridge: Sendable {
    /// The Bridge on `MINIAPP_BRIDGE_FD` (default 3).
    public static let shared = MiniAppBridge(fd: {
        if let env = getenv("MINIAPP_BRIDGE_FD"), let fd = Int32(String(cString: env)), fd >= 0 { return fd }
        return 3
    }())

    /// The limit the daemon announced in `MINIAPP_BRIDGE_MAX_BYTES`, else the spec's 1 MiB.
    public static var environmentMaxBytes: Int {
        if let env = getenv("MINIAPP_BRIDGE_MAX_BYTES"), let n = Int(String(cString: env)), n > 0 { return n }
        return 1 << 20
    }

    /// The largest request line this bridge sends, newline excluded.
    public let maxBytes: Int

    /// `shared.call(method, params)`.
    public static func call(_ method: String, _ params: JSONValue? = nil) async throws(BridgeError) -> JSONValue {
        try await shared.call(method, params)
    }

    private struct State {
        var nextId: Int64 = 1
        var pending: [Int64: CheckedContinuation<JSONValue, any Error>] = [:]
        var handlers: [@Sendable (String, JSONValue) -> Void] = []
        var readerStarted = false
        var closed = false
    }

    private let fd: Int32
    private let state = Mutex(State())
    private let writeLock = Mutex(())

    /// A bridge over the connected stream socket `fd` (not closed by this object); `maxBytes`
    /// defaults to `environmentMaxBytes`.
    public init(fd: Int32, maxBytes: Int? = nil) {
        self.fd = fd
        self.maxBytes = maxBytes ?? Self.environmentMaxBytes
    }

    /// Calls `method`; returns its `result`, or throws `BridgeError`.
    public func call(_ method: String, _ params: JSONValue? = nil) async throws(BridgeError) -> JSONValue {
        let id: Int64 = state.withLock { s in
            defer { s.nextId += 1 }
            return s.nextId
        }
        var request: JSONObject = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method)]
        if let params { request["params"] = params }
        var line = JSONValue.object(request).serialized()
        if line.count > maxBytes { throw BridgeError.tooLarge(method, size: line.count, limit: maxBytes) }
        line.append(UInt8(ascii: "\n"))
        do {
            return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<JSONValue, any Error>) in
                let open = state.withLock { s in
                    if s.closed { return false }
                    s.pending[id] = cont
                    return true
                }
                guard open else { return cont.resume(throwing: BridgeError.closed) }
                startReader()
                if !send(line) { fail(id, BridgeError.closed) }
            }
        } catch let error as BridgeError {
            throw error
        } catch {
            throw BridgeError(code: "INTERNAL", message: "\(error)")
        }
    }

    /// Adds a handler for host `event` notifications: `(name, data)`. Runs on the reader thread.
    public func onEvent(_ handler: @escaping @Sendable (_ name: String, _ data: JSONValue) -> Void) {
        state.withLock { $0.handlers.append(handler) }
        startReader()
    }

    /// Calls `handler(version)` when the daemon staged a newer version of this program (the
    /// `update.ready` event; it runs from the next launch). WeChat's `onUpdateReady` shape.
    public func onUpdateReady(_ handler: @escaping @Sendable (_ version: String) -> Void) {
        onEvent { name, data in
            guard name == "update.ready", let version = data["version"]?.stringValue else { return }
            handler(version)
        }
    }

    /// `shared.onUpdateReady(handler)`.
    public static func onUpdateReady(_ handler: @escaping @Sendable (_ version: String) -> Void) {
        shared.onUpdateReady(handler)
    }

    private func fail(_ id: Int64, _ error: BridgeError) {
        state.withLock { $0.pending.removeValue(forKey: id) }?.resume(throwing: error)
    }

    private func send(_ bytes: [UInt8]) -> Bool {
        writeLock.withLock { _ in
            var off = 0
            while off < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                off += n
            }
            return true
        }
    }

    private func startReader() {
        let start = state.withLock { s in
            if s.readerStarted { return false }
            s.readerStarted = true
            return true
        }
        guard start else { return }
        let box = Unmanaged.passRetained(ReaderBox(self))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let reader = Unmanaged<ReaderBox>.fromOpaque(raw!).takeRetainedValue()
            reader.bridge.readLoop()
            return nil
        }, box.toOpaque())
        if rc == 0 {
            pthread_detach(thread)
        } else {
            box.release()
            closeAll()
        }
    }

    /// Reads lines until EOF; every complete line is one message.
    fileprivate func readLoop() {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer.append(contentsOf: chunk[0..<n])
            while let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<nl])
                buffer.removeSubrange(...nl)
                if !line.isEmpty { handle(line) }
            }
        }
        closeAll()
    }

    private func handle(_ line: [UInt8]) {
        guard let message = try? JSONValue.parse(line, options: JSONParseOptions(maxDepth: 128, maxBytes: 64 << 20)) else {
            return
        }
        if message["id"] == .null, let error = message["error"] {
            let pending = state.withLock { s in
                defer { s.pending = [:] }
                return s.pending
            }
            for (_, cont) in pending { cont.resume(throwing: BridgeError.fromWire(error)) }
        } else if let id = message["id"]?.intValue {
            guard let cont = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
            if let error = message["error"] {
                cont.resume(throwing: BridgeError.fromWire(error))
            } else {
                cont.resume(returning: message["result"] ?? .null)
            }
        } else if message["method"] == "event", let name = message["params"]?["name"]?.stringValue {
            let handlers = state.withLock { $0.handlers }
            for h in handlers { h(name, message["params"]?["data"] ?? .null) }
        }
    }

    private func closeAll() {
        let pending = state.withLock { s in
            s.closed = true
            let p = s.pending
            s.pending = [:]
            return p
        }
        for (_, cont) in pending { cont.resume(throwing: BridgeError.closed) }
    }
}

/// Carries the bridge into the reader pthread.
private final class ReaderBox {
    let bridge: MiniAppBridge
    init(_ bridge: MiniAppBridge) { self.bridge = bridge }
}
