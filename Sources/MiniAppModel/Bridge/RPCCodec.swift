public import MiniAppJSON

/// Decoding and encoding of JSON-RPC 2.0 lines (spec/bridge-protocol.md).
///
/// Decoding is strict and fails closed:
/// - the line is parsed by the strict parser (UTF-8 only, no duplicate keys — two parsers
///   disagreeing on `{"method":"a","method":"b"}` is how request smuggling starts, cf.
///   CVE-2017-12635 — bounded depth);
/// - only the members JSON-RPC defines are accepted: an unknown member such as `"caller"` or
///   `"program"` is refused rather than ignored, so nobody can come to believe it is honoured
///   (the caller's identity is the connection, never a field);
/// - **batches are refused** with one `INVALID_REQUEST` answer (id null). Why: one line is one
///   call, one audit record and one rate-limit token; a batch would let one line fan out into
///   thousands of calls (amplification) and complicates per-call accounting, and no SDK needs it.
public enum RPCCodec {
    /// Longest accepted method name and string id, in bytes (bounded echo in answers).
    public static let maxMethodBytes = 256
    /// Longest accepted string id.
    public static let maxIdBytes = 256

    /// Parses one line into a JSON value; `PARSE_ERROR` if it is not JSON.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>, maxDepth: Int = 64) -> Result<JSONValue, RPCDecodeError> {
        do {
            let v = try JSONValue.parse(buffer: line, options: JSONParseOptions(maxDepth: maxDepth, maxBytes: Int.max))
            return .success(v)
        } catch {
            return .failure(RPCDecodeError(.parseError, "not valid JSON: \(error.description)"))
        }
    }

    /// Decodes a request or notification sent to the daemon (the Bridge direction: a worker
    /// never answers requests, so a response-shaped message is `INVALID_REQUEST`).
    public static func decodeRequest(_ value: JSONValue) -> Result<RPCRequest, RPCDecodeError> {
        switch decodeMessage(value) {
        case .success(.request(let r)): return .success(r)
        case .success(.response(let r)):
            return .failure(RPCDecodeError(.invalidRequest, "a response was sent but no request is pending", id: r.id))
        case .failure(let e): return .failure(e)
        }
    }

    /// Decodes any message of a bidirectional connection: a request, a notification or a response.
    public static func decodeMessage(_ value: JSONValue) -> Result<RPCMessage, RPCDecodeError> {
        guard case .object(let obj) = value else {
            if case .array = value {
                return .failure(RPCDecodeError(.invalidRequest, "batches are not supported: send one request per line"))
            }
            return .failure(RPCDecodeError(.invalidRequest, "a JSON-RPC message must be an object, got \(value.typeName)"))
        }
        var version: JSONValue?, idValue: JSONValue?, method: JSONValue?, params: JSONValue?
        var result: JSONValue?, error: JSONValue?
        var unknown: String?
        // Every member is read before anything is judged: refusing at the first unknown member
        // would answer `{"x":1,"id":5,…}` with id null, and a pipelining caller could not tell
        // which of its calls failed (it would hang on id 5 forever).
        for m in obj.members {
            switch m.key {
            case "jsonrpc": version = m.value
            case "id": idValue = m.value
            case "method": method = m.value
            case "params": params = m.value
            case "result": result = m.value
            case "error": error = m.value
            default: if unknown == nil { unknown = m.key }
            }
        }
        if let unknown {
            return .failure(RPCDecodeError(.invalidRequest, "unknown member '\(truncated(unknown))'", id: validId(idValue)))
        }
        let id: RPCId?
        switch decodeId(idValue) {
        case .success(let i): id = i
        case .failure(let e): return .failure(e)
        }
        guard version == .string("2.0") else {
            return .failure(RPCDecodeError(.invalidRequest, "\"jsonrpc\" must be \"2.0\"", id: id ?? .null))
        }
        if method == nil && (result != nil || error != nil) {
            return decodeResponse(id: id, result: result, error: error, params: params)
        }
        return decodeCall(id: id, method: method, params: params, hasResponseMembers: result != nil || error != nil)
    }

    private static func decodeCall(id: RPCId?, method: JSONValue?, params: JSONValue?, hasResponseMembers: Bool)
        -> Result<RPCMessage, RPCDecodeError>
    {
        let answerId = id ?? .null
        guard !hasResponseMembers else {
            return .failure(RPCDecodeError(.invalidRequest, "a request cannot carry \"result\" or \"error\"", id: answerId))
        }
        guard case .string(let name)? = method else {
            let what = method.map { "\"method\" must be a string, got \($0.typeName)" } ?? "\"method\" is missing"
            return .failure(RPCDecodeError(.invalidRequest, what, id: answerId))
        }
        guard !name.isEmpty, name.utf8.count <= maxMethodBytes else {
            return .failure(RPCDecodeError(.invalidRequest, "\"method\" must be 1 to \(maxMethodBytes) bytes", id: answerId))
        }
        switch params {
        case nil, .object?, .array?: break
        case let p?:
            return .failure(RPCDecodeError(.invalidRequest, "\"params\" must be an object or an array, got \(p.typeName)", id: answerId))
        }
        return .success(.request(RPCRequest(id: id, method: name, params: params)))
    }

    private static func decodeResponse(id: RPCId?, result: JSONValue?, error: JSONValue?, params: JSONValue?)
        -> Result<RPCMessage, RPCDecodeError>
    {
        guard let id, params == nil, (result == nil) != (error == nil) else {
            return .failure(RPCDecodeError(.invalidRequest, "a response needs an id and exactly one of \"result\" and \"error\""))
        }
        if let result { return .success(.response(RPCResponse(id: id, outcome: .success(result)))) }
        guard case .object(let e)? = error, let code = e["code"]?.intValue, case .string(let msg)? = e["message"] else {
            return .failure(RPCDecodeError(.invalidRequest, "\"error\" must be an object with an integer code and a string message", id: id))
        }
        let obj = RPCErrorObject(code: code, message: msg, data: e["data"])
        return .success(.response(RPCResponse(id: id, outcome: .failure(RPCErrorObjectBox(obj)))))
    }

    private static func decodeId(_ v: JSONValue?) -> Result<RPCId?, RPCDecodeError> {
        switch v {
        case nil: return .success(nil)
        case .null?: return .success(.null)
        case .int(let i)?: return .success(.int(i))
        case .double(let d)?: return .success(.double(d))
        case .string(let s)? where s.utf8.count <= maxIdBytes: return .success(.string(s))
        case .string?: return .failure(RPCDecodeError(.invalidRequest, "\"id\" longer than \(maxIdBytes) bytes"))
        case let other?:
            return .failure(RPCDecodeError(.invalidRequest, "\"id\" must be a string, a number or null, got \(other.typeName)"))
        }
    }

    private static func validId(_ v: JSONValue?) -> RPCId {
        if case .success(let id?) = decodeId(v) { return id }
        return .null
    }

    static func truncated(_ s: String, max: Int = 64) -> String {
        s.utf8.count <= max ? s : String(decoding: s.utf8.prefix(max), as: UTF8.self) + "…"
    }
}

// MARK: Encoding

extension RPCCodec {
    private static let head: [UInt8] = Array(#"{"jsonrpc":"2.0","id":"#.utf8)

    /// Appends `{"jsonrpc":"2.0","id":…,"result":…}\n`.
    public static func writeResult(id: RPCId, result: JSONValue, into out: inout [UInt8]) {
        out.append(contentsOf: head)
        id.write(into: &out)
        out.append(contentsOf: #","result":"#.utf8)
        FastJSONWriter.write(result, into: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    /// Appends `{"jsonrpc":"2.0","id":…,"error":{"code":N,"message":…,"data":{"code":"…",…}}}\n`.
    /// Only `code`, `message` and `data` of the error go out; its `cause` stays in the daemon's
    /// log (spec: INTERNAL details only in the daemon's log).
    public static func writeError(id: RPCId, error: MiniAppError, into out: inout [UInt8]) {
        var data = JSONObject()
        data["code"] = .string(error.code.rawValue)
        for (k, v) in error.data.sorted(by: { $0.key < $1.key }) where k != "code" { data[k] = .string(v) }
        writeError(id: id, code: Int64(error.code.rpcNumber), message: error.message, data: .object(data), into: &out)
    }

    /// Appends an error answer with an explicit error object (relaying a host provider's error).
    public static func writeError(id: RPCId, code: Int64, message: String, data: JSONValue?, into out: inout [UInt8]) {
        out.append(contentsOf: head)
        id.write(into: &out)
        out.append(contentsOf: #","error":{"code":"#.utf8)
        FastJSONWriter.writeInt(code, into: &out)
        out.append(contentsOf: #","message":"#.utf8)
        FastJSONWriter.writeString(message, into: &out)
        writeMember(#","data":"#, data, into: &out)
        out.append(contentsOf: "}}\n".utf8)
    }

    /// Appends a request `{"jsonrpc":"2.0","id":…,"method":…,"params":…}\n`.
    public static func writeRequest(id: RPCId, method: String, params: JSONValue?, into out: inout [UInt8]) {
        out.append(contentsOf: head)
        id.write(into: &out)
        writeMethodAndParams(method, params, into: &out)
    }

    /// Appends a notification `{"jsonrpc":"2.0","method":…,"params":…}\n`.
    public static func writeNotification(method: String, params: JSONValue?, into out: inout [UInt8]) {
        out.append(contentsOf: #"{"jsonrpc":"2.0""#.utf8)
        writeMethodAndParams(method, params, into: &out)
    }

    private static func writeMethodAndParams(_ method: String, _ params: JSONValue?, into out: inout [UInt8]) {
        out.append(contentsOf: #","method":"#.utf8)
        FastJSONWriter.writeString(method, into: &out)
        writeMember(#","params":"#, params, into: &out)
        out.append(contentsOf: "}\n".utf8)
    }

    /// Appends `key` (its comma, quotes and colon included) and `value`, when there is a value.
    @inline(__always)
    private static func writeMember(_ key: StaticString, _ value: JSONValue?, into out: inout [UInt8]) {
        guard let value else { return }
        out.append(contentsOf: UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        FastJSONWriter.write(value, into: &out)
    }
}
