public import MiniAppJSON

/// A JSON-RPC 2.0 id: a string, a number or null (JSON-RPC 2.0 §4). Kept as received so the
/// answer echoes exactly what the caller sent.
public enum RPCId: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case double(Double)
    case null

    /// The id as a JSON value.
    public var jsonValue: JSONValue {
        switch self {
        case .string(let s): .string(s)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .null: .null
        }
    }

    /// Appends the JSON form.
    public func write(into out: inout [UInt8]) {
        switch self {
        case .int(let i): FastJSONWriter.writeInt(i, into: &out)
        case .string(let s): FastJSONWriter.writeString(s, into: &out)
        default: jsonValue.write(into: &out)
        }
    }

    public var description: String { jsonValue.jsonString }
}

/// A request (or, without id, a notification) from a Bridge or control peer.
public struct RPCRequest: Sendable {
    /// nil for a notification: it gets no answer, not even an error (JSON-RPC 2.0 §4.1).
    public var id: RPCId?
    /// The method name.
    public var method: String
    /// `params`: an object or an array, nil when absent.
    public var params: JSONValue?

    public init(id: RPCId?, method: String, params: JSONValue?) {
        self.id = id
        self.method = method
        self.params = params
    }
}

/// The `error` member of an answer.
public struct RPCErrorObject: Sendable, Equatable {
    /// `error.code`.
    public var code: Int64
    /// `error.message`.
    public var message: String
    /// `error.data`, if any (its `code` member is the stable string).
    public var data: JSONValue?

    /// `error.data.code`, the stable string (`PERMISSION_DENIED`), if present.
    public var dataCode: String? { data?["code"]?.stringValue }

    public init(code: Int64, message: String, data: JSONValue?) {
        self.code = code
        self.message = message
        self.data = data
    }
}

/// An answer to a request the daemon sent (a host provider's reply to `bridge.call`).
public struct RPCResponse: Sendable {
    /// The id of the request answered.
    public var id: RPCId
    /// `result` or `error`.
    public var outcome: Result<JSONValue, RPCErrorObjectBox>

    public init(id: RPCId, outcome: Result<JSONValue, RPCErrorObjectBox>) {
        self.id = id
        self.outcome = outcome
    }
}

/// `RPCErrorObject` as an `Error`, so it can sit in a `Result`.
public struct RPCErrorObjectBox: Error, Sendable, Equatable {
    /// The error object.
    public var object: RPCErrorObject
    public init(_ object: RPCErrorObject) { self.object = object }
}

/// Any message on a bidirectional connection (the control socket).
public enum RPCMessage: Sendable {
    case request(RPCRequest)
    case response(RPCResponse)
}

/// Why a line is not an acceptable JSON-RPC message: the code to answer with, a message for
/// the peer, and the id to answer (null when it could not be read).
public struct RPCDecodeError: Error, Sendable, Equatable {
    /// `PARSE_ERROR` or `INVALID_REQUEST`.
    public var code: ErrorCode
    /// What was wrong, for the peer.
    public var message: String
    /// The id to answer with.
    public var id: RPCId

    public init(_ code: ErrorCode, _ message: String, id: RPCId = .null) {
        self.code = code
        self.message = message
        self.id = id
    }

    /// As a `MiniAppError` for the wire.
    public var error: MiniAppError { MiniAppError(code, message) }
}
