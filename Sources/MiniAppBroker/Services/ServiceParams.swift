internal import MiniAppJSON
internal import MiniAppModel

/// Reads a method's `params` strictly, through the one JSON-field reader: an object (or absent
/// when every member is optional), only the documented members (an unknown member is refused
/// rather than ignored, so a typo such as `{"scopes":…}` fails loudly instead of silently getting
/// the default), each of the documented type. Every failure is INVALID_PARAMS with a message
/// naming the member (`storage.get: params.key must be a string, not number`).
struct ServiceParams {
    let method: String
    private let reader: JSONFieldReader<MiniAppError>

    init(_ params: JSONValue?, method: String, allowed: Set<String>) throws(MiniAppError) {
        self.method = method
        let errors: @Sendable (JSONFieldError) -> MiniAppError = { e in
            guard e.kind == .unknownMember else { return MiniAppError(.invalidParams, "\(method): \(e.path) \(e.problem)") }
            let key = e.path.dropFirst("params.".count)
            return MiniAppError(.invalidParams, "\(method): unknown member '\(key)' in params (allowed: \(allowed.sorted().joined(separator: ", ")))")
        }
        reader = try JSONFieldReader(params.flatMap { $0.isNull ? nil : $0 } ?? .object([:]), path: "params", errors: errors)
        try reader.rejectUnknown(allowed)
    }

    /// A string member; nil when absent (or null) and not required.
    func string(_ name: String, required: Bool = false) throws(MiniAppError) -> String? {
        try (required ? reader.require(name) : reader.member(name))?.string()
    }

    /// Any JSON member, present (possibly `null`) or nil when absent.
    func value(_ name: String, required: Bool = false) throws(MiniAppError) -> JSONValue? {
        if required, reader.object[name] == nil { _ = try reader.require(name) }
        return reader.object[name]
    }

    /// An object member whose values are all strings (headers); nil when absent.
    func stringMap(_ name: String) throws(MiniAppError) -> [(String, String)]? { try reader.member(name)?.stringMap() }
}

extension MiniAppError {
    /// A method the service does not serve reached it: the broker's catalogue and the service
    /// disagree, which is the daemon's fault.
    static func unservedMethod(_ method: String, service: String) -> MiniAppError {
        MiniAppError(.internal, "\(service) service does not serve '\(method)'")
    }
}
