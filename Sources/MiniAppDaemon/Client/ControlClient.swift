public import MiniAppJSON
public import MiniAppModel
import MiniAppSystem

/// A JSON-RPC client for the control socket (spec/control-api.md), for `miniapp` and tests.
/// Calls are sequential; notifications that arrive meanwhile are queued for `nextNotification`.
public final class ControlClient {
    private let conn: UnixLineClient
    private var nextID: Int64 = 1
    private var pending: [JSONObject] = []

    /// Connects to the daemon's control socket.
    public init(socketPath: String) throws(MiniAppError) {
        do {
            conn = try UnixLineClient(path: socketPath)
        } catch {
            throw MiniAppError(
                .hostUnavailable,
                "cannot connect to miniappd at \(socketPath): \(error). Is the daemon running? Pass --socket PATH.")
        }
    }

    /// Calls `method` and returns its `result`, or throws the daemon's error (code from `error.data.code`).
    /// With `passing`, that descriptor is attached to the request (`SCM_RIGHTS`, same `sendmsg`):
    /// `packages.install {fd: true}` reads the package from it.
    public func call(_ method: String, _ params: JSONObject = [:], passing descriptor: Int32? = nil, timeoutMillis: Int32 = 120_000)
        throws(MiniAppError) -> JSONValue
    {
        let id = nextID
        nextID += 1
        let request: JSONValue = ["jsonrpc": "2.0", "id": .int(id), "method": .string(method), "params": .object(params)]
        do {
            if let descriptor {
                try conn.send(line: request.serialized(), passing: descriptor)
            } else {
                try conn.send(line: request.serialized())
            }
        } catch {
            // A refused peer is told why before the daemon closes; that answer may already be
            // here even though our request could not be sent.
            if let refusal = try? readMessage(timeoutMillis: 1000), let err = Self.unattributedError(refusal) {
                throw Self.decodeError(err)
            }
            throw MiniAppError(.hostUnavailable, "lost the connection to miniappd: \(error)")
        }
        while true {
            let msg = try readMessage(timeoutMillis: timeoutMillis)
            if msg["id"] == nil || msg["method"] != nil {
                pending.append(msg)
                continue
            }
            // An error with id null is the daemon's answer to something it could not tie to a
            // request id: UNAUTHORIZED at connect, or a line it could not parse. Calls are
            // sequential, so it is the answer to this one.
            if let err = Self.unattributedError(msg) { throw Self.decodeError(err) }
            guard msg["id"]?.intValue == id else { continue }
            if let err = msg["error"]?.objectValue { throw Self.decodeError(err) }
            return msg["result"] ?? .null
        }
    }

    /// The `error` of a response whose id is null (JSON-RPC 2.0 §5: the id could not be determined).
    static func unattributedError(_ msg: JSONObject) -> JSONObject? {
        guard msg["method"] == nil, let id = msg["id"], id.isNull else { return nil }
        return msg["error"]?.objectValue
    }

    /// The next notification or server-to-client request (e.g. `inspector.event`, `program.exited`,
    /// `bridge.call`), waiting up to `timeoutMillis`; nil at EOF.
    public func nextNotification(timeoutMillis: Int32 = -1) throws(MiniAppError) -> JSONObject? {
        if !pending.isEmpty { return pending.removeFirst() }
        do {
            return try readMessage(timeoutMillis: timeoutMillis)
        } catch let e where e.message.contains("closed the connection") {
            return nil
        }
    }

    /// Sends a raw JSON-RPC message (e.g. a provider's reply to `bridge.call`).
    public func send(_ message: JSONValue) throws(MiniAppError) {
        do {
            try conn.send(line: message.serialized())
        } catch {
            throw MiniAppError(.hostUnavailable, "lost the connection to miniappd: \(error)")
        }
    }

    private func readMessage(timeoutMillis: Int32) throws(MiniAppError) -> JSONObject {
        let line: [UInt8]?
        do {
            line = try conn.readLine(timeoutMillis: timeoutMillis)
        } catch {
            throw MiniAppError(.timeout, "no answer from miniappd: \(error)")
        }
        guard let line else { throw MiniAppError(.hostUnavailable, "miniappd closed the connection") }
        guard let obj = (try? JSONValue.parse(line, options: .init(maxBytes: 64 << 20)))?.objectValue else {
            throw MiniAppError(.internal, "miniappd sent a line that is not a JSON object")
        }
        return obj
    }

    static func decodeError(_ err: JSONObject) -> MiniAppError {
        let code = err["data"]?["code"]?.stringValue ?? "INTERNAL"
        var data: [String: String] = [:]
        for m in err["data"]?.objectValue ?? [:] where m.key != "code" {
            data[m.key] = m.value.stringValue ?? m.value.jsonString
        }
        return MiniAppError(ErrorCode(rawValue: code), err["message"]?.stringValue ?? "error", data: data)
    }
}
