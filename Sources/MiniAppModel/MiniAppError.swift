/// A stable, documented error code. The string is what clients see in `error.data.code` (Bridge
/// and control API), what `miniapp verify` prints first on its line, and what tests assert on.
/// Codes are never renamed once shipped.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    // Bridge protocol (spec/bridge-protocol.md)
    public static let parseError: ErrorCode = "PARSE_ERROR"
    public static let invalidRequest: ErrorCode = "INVALID_REQUEST"
    public static let methodNotFound: ErrorCode = "METHOD_NOT_FOUND"
    public static let invalidParams: ErrorCode = "INVALID_PARAMS"
    public static let `internal`: ErrorCode = "INTERNAL"
    public static let permissionDenied: ErrorCode = "PERMISSION_DENIED"
    public static let rateLimited: ErrorCode = "RATE_LIMITED"
    public static let quotaExceeded: ErrorCode = "QUOTA_EXCEEDED"
    public static let timeout: ErrorCode = "TIMEOUT"
    public static let hostUnavailable: ErrorCode = "HOST_UNAVAILABLE"
    public static let domainNotAllowed: ErrorCode = "DOMAIN_NOT_ALLOWED"
    public static let messageTooLarge: ErrorCode = "MESSAGE_TOO_LARGE"
    // Control API (spec/control-api.md)
    public static let notFound: ErrorCode = "NOT_FOUND"
    public static let alreadyRunning: ErrorCode = "ALREADY_RUNNING"
    public static let invalidPackage: ErrorCode = "INVALID_PACKAGE"
    public static let hostUpdateRequired: ErrorCode = "HOST_UPDATE_REQUIRED"
    public static let unauthorized: ErrorCode = "UNAUTHORIZED"

    /// Every code that has a number of its own in the spec's error tables.
    public static let wireCodes: [ErrorCode] = [
        .parseError, .invalidRequest, .methodNotFound, .invalidParams, .internal, .permissionDenied, .rateLimited,
        .quotaExceeded, .timeout, .hostUnavailable, .domainNotAllowed, .messageTooLarge, .notFound, .alreadyRunning,
        .invalidPackage, .hostUpdateRequired, .unauthorized,
    ]

    /// The table code whose number is `rpcNumber`, if any.
    public init?(rpcNumber: Int64) {
        guard let c = Self.wireCodes.first(where: { Int64($0.rpcNumber) == rpcNumber }) else { return nil }
        self = c
    }

    /// The JSON-RPC `error.code` number for this code (spec tables); -32603 for codes that are
    /// not wire errors (package and policy codes travel inside `INVALID_PACKAGE`/`INTERNAL`).
    public var rpcNumber: Int {
        switch self {
        case .parseError: -32700
        case .invalidRequest: -32600
        case .methodNotFound: -32601
        case .invalidParams: -32602
        case .internal: -32603
        case .permissionDenied: -32001
        case .rateLimited: -32002
        case .quotaExceeded: -32003
        case .timeout: -32004
        case .hostUnavailable: -32005
        case .domainNotAllowed: -32006
        case .messageTooLarge: -32007
        case .notFound: -32010
        case .alreadyRunning: -32011
        case .invalidPackage: -32012
        case .hostUpdateRequired: -32013
        case .unauthorized: -32014
        default: -32603
        }
    }
}

/// An error with a stable code, a message that tells the user what to do, optional structured
/// data for the wire, the underlying cause, and where it was raised (swift-nio style).
public struct MiniAppError: Error, Sendable, CustomStringConvertible {
    /// The stable code.
    public var code: ErrorCode
    /// What went wrong and what to do about it.
    public var message: String
    /// Extra members for `error.data` besides `code` (e.g. `reason`, `required`).
    public var data: [String: String]
    /// The lower-level cause, for logs only (never sent to untrusted peers).
    public var cause: String?
    /// Source location, for logs.
    public var location: String

    public init(
        _ code: ErrorCode, _ message: String, data: [String: String] = [:], cause: (any Error)? = nil,
        file: StaticString = #fileID, line: UInt = #line
    ) {
        self.code = code
        self.message = message
        self.data = data
        self.cause = cause.map { String(describing: $0) }
        self.location = "\(file):\(line)"
    }

    public var description: String {
        var s = "\(code.rawValue): \(message)"
        if let cause { s += " (cause: \(cause))" }
        return s
    }
}
