public import MiniAppJSON

/// An error of the control API, as a host sees it: the spec's stable code string
/// (`NOT_FOUND`, `TIMEOUT`, `HOST_UNAVAILABLE`, … from `error.data.code`), the daemon's message,
/// and the rest of `error.data` (`reason`, `required`, …).
///
/// Raised by every call of `HostClient`, and thrown by a provider's handler to answer a
/// `bridge.call` with an error (the daemon relays `code` and a bounded `message` to the program).
public struct HostError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stable code, e.g. `NOT_FOUND`; a host-defined code must match `[A-Z0-9_]{1,64}`.
    public var code: String
    /// What went wrong and what to do about it.
    public var message: String
    /// `error.data` without `code`.
    public var data: JSONObject
    /// The JSON-RPC `error.code` number when the daemon sent one.
    public var rpcCode: Int64?

    /// An error with `code` and `message`.
    public init(_ code: String, _ message: String, data: JSONObject = [:], rpcCode: Int64? = nil) {
        self.code = code
        self.message = message
        self.data = data
        self.rpcCode = rpcCode
    }

    public var description: String { "\(code) \(message)" }

    /// The error of a JSON-RPC `error` object (code from `data.code`, else from the number). An
    /// empty `data.code` counts as absent: every error a caller sees has a code to branch on
    /// (a daemon answering `"code": ""` once reached callers as an error without one).
    init(rpcError e: JSONObject) {
        let number = e["code"]?.intValue
        var data = e["data"]?.objectValue ?? [:]
        let named = data["code"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let code = named ?? number.flatMap(Self.codeByNumber) ?? Code.internalError
        data = JSONObject(data.filter { $0.key != "code" }.map { ($0.key, $0.value) })
        self.init(code, e["message"]?.stringValue ?? "error", data: data, rpcCode: number)
    }

    /// The JSON-RPC `error` object answering a `bridge.call` with this error.
    var rpcObject: JSONValue {
        var data = data
        data["code"] = .string(code)
        return ["code": .int(rpcCode ?? Self.numbers[code] ?? -32000), "message": .string(message), "data": .object(data)]
    }

    /// The spec's codes (spec/bridge-protocol.md and spec/control-api.md error tables).
    public enum Code {
        public static let parseError = "PARSE_ERROR"
        public static let invalidRequest = "INVALID_REQUEST"
        public static let methodNotFound = "METHOD_NOT_FOUND"
        public static let invalidParams = "INVALID_PARAMS"
        public static let internalError = "INTERNAL"
        public static let permissionDenied = "PERMISSION_DENIED"
        public static let timeout = "TIMEOUT"
        public static let hostUnavailable = "HOST_UNAVAILABLE"
        public static let messageTooLarge = "MESSAGE_TOO_LARGE"
        public static let notFound = "NOT_FOUND"
        public static let alreadyRunning = "ALREADY_RUNNING"
        public static let invalidPackage = "INVALID_PACKAGE"
        public static let hostUpdateRequired = "HOST_UPDATE_REQUIRED"
        public static let unauthorized = "UNAUTHORIZED"
    }

    /// The spec's table: code → JSON-RPC number.
    static let numbers: [String: Int64] = [
        "PARSE_ERROR": -32700, "INVALID_REQUEST": -32600, "METHOD_NOT_FOUND": -32601, "INVALID_PARAMS": -32602,
        "INTERNAL": -32603, "PERMISSION_DENIED": -32001, "RATE_LIMITED": -32002, "QUOTA_EXCEEDED": -32003, "TIMEOUT": -32004,
        "HOST_UNAVAILABLE": -32005, "DOMAIN_NOT_ALLOWED": -32006, "MESSAGE_TOO_LARGE": -32007, "NOT_FOUND": -32010,
        "ALREADY_RUNNING": -32011, "INVALID_PACKAGE": -32012, "HOST_UPDATE_REQUIRED": -32013, "UNAUTHORIZED": -32014,
    ]

    static func codeByNumber(_ n: Int64) -> String? { numbers.first { $0.value == n }?.key }
}
