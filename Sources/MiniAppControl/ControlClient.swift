import Foundation
public import MiniAppHost
public import MiniAppJSON
public import MiniAppModel

/// The blocking control client of `miniapp` and the tests: a facade over `MiniAppHost`'s
/// `HostClient` that speaks raw JSON-RPC (requests the caller does not serve and answers to
/// requests it sent with `send` are handed to `nextNotification`), never reconnects, and
/// throws `MiniAppError` with the daemon's code.
public final class ControlClient {
    private let host: HostClient
    private let inbox = Inbox()

    /// Connects to the daemon's control socket.
    public init(socketPath: String) throws(MiniAppError) {
        var options = HostOptions()
        options.reconnect = false
        options.deliverUnhandled = true
        options.callTimeoutMillis = 120_000
        let inbox = inbox
        options.onMessage = { inbox.put($0) }
        do {
            host = try HostClient(path: socketPath, options: options)
        } catch {
            throw Self.convert(error)
        }
    }

    deinit { host.close() }

    /// The library client underneath (for async code: `provide`, `notifications`, …).
    public var hostClient: HostClient { host }

    /// Calls `method` and returns its `result`, or throws the daemon's error (code from `error.data.code`).
    /// With `descriptor`, an open file goes with the request (`SCM_RIGHTS`; the caller keeps its own).
    public func call(_ method: String, _ params: JSONObject = [:], timeoutMillis: Int32 = 120_000, passing descriptor: Int32? = nil)
        throws(MiniAppError) -> JSONValue
    {
        do {
            return try host.callBlocking(method, params, timeoutMillis: Int(timeoutMillis), passing: descriptor)
        } catch {
            throw Self.convert(error)
        }
    }

    /// The next notification or server-to-client request (e.g. `inspector.event`, `program.exited`,
    /// `bridge.call`), waiting up to `timeoutMillis` (< 0: forever); nil once the connection is closed.
    public func nextNotification(timeoutMillis: Int32 = -1) throws(MiniAppError) -> JSONObject? {
        switch inbox.take(timeoutMillis: timeoutMillis) {
        case .message(let m): return m
        case .closed: return nil
        case .timedOut: throw MiniAppError(.timeout, "no message from miniappd in \(timeoutMillis) ms")
        }
    }

    /// Sends a raw JSON-RPC message (e.g. a provider's reply to `bridge.call`).
    public func send(_ message: JSONValue) throws(MiniAppError) {
        do {
            try host.send(message)
        } catch {
            throw Self.convert(error)
        }
    }

    static func convert(_ e: HostError) -> MiniAppError {
        var data: [String: String] = [:]
        for m in e.data { data[m.key] = m.value.stringValue ?? m.value.jsonString }
        return MiniAppError(ErrorCode(rawValue: e.code), e.message, data: data)
    }
}

/// Messages for `nextNotification`, in arrival order; closed at `connection.lost`.
final class Inbox: @unchecked Sendable {
    enum Item { case message(JSONObject), closed, timedOut }
    private let cond = NSCondition()
    private var queue: [JSONObject] = []
    private var head = 0
    private var closed = false

    func put(_ m: JSONObject) {
        cond.lock()
        if m["method"]?.stringValue == "connection.lost" { closed = true } else { queue.append(m) }
        cond.broadcast()
        cond.unlock()
    }

    func take(timeoutMillis: Int32) -> Item {
        let deadline = Date().addingTimeInterval(Double(max(0, timeoutMillis)) / 1000)
        cond.lock()
        defer { cond.unlock() }
        while head == queue.count && !closed {
            // (`wait(until: .distantFuture)` traps on Linux: it overflows converting the date.)
            if timeoutMillis < 0 {
                cond.wait()
            } else if !cond.wait(until: deadline) && head == queue.count {
                return closed ? .closed : .timedOut
            }
        }
        guard head < queue.count else { return .closed }
        let m = queue[head]
        head += 1
        if head > 1024 {
            queue.removeFirst(head)
            head = 0
        }
        return .message(m)
    }
}
