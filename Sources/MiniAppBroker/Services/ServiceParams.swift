internal import MiniAppJSON
internal import MiniAppModel

/// Reads a method's `params` strictly: an object (or absent when every member is optional),
/// only the documented members (an unknown member is refused rather than ignored, so a typo
/// such as `{"scopes":…}` fails loudly instead of silently getting the default), each of the
/// documented type. Every failure is INVALID_PARAMS with a message naming the member.
struct ServiceParams {
    let method: String
    let object: JSONObject

    init(_ params: JSONValue?, method: String, allowed: Set<String>) throws(MiniAppError) {
        self.method = method
        switch params {
        case nil, .null?:
            object = JSONObject()
        case .object(let o)?:
            for key in o.keys where !allowed.contains(key) {
                let list = allowed.sorted().joined(separator: ", ")
                throw MiniAppError(
                    .invalidParams, "\(method): unknown member '\(key)' in params (allowed: \(list))")
            }
            object = o
        case let other?:
            throw MiniAppError(.invalidParams, "\(method): params must be an object, not \(other.typeName)")
        }
    }

    /// A string member; nil when absent and not required.
    func string(_ name: String, required: Bool = false) throws(MiniAppError) -> String? {
        guard let v = object[name], !v.isNull else {
            if required { throw missing(name, "a string") }
            return nil
        }
        guard let s = v.stringValue else { throw wrongType(name, "a string", v) }
        return s
    }

    /// Any JSON member, present (possibly `null`) or nil when absent.
    func value(_ name: String, required: Bool = false) throws(MiniAppError) -> JSONValue? {
        guard let v = object[name] else {
            if required { throw missing(name, "a JSON value") }
            return nil
        }
        return v
    }

    /// An object member whose values are all strings (headers); nil when absent.
    func stringMap(_ name: String) throws(MiniAppError) -> [(String, String)]? {
        guard let v = object[name], !v.isNull else { return nil }
        guard let o = v.objectValue else { throw wrongType(name, "an object of strings", v) }
        var out: [(String, String)] = []
        for (k, value) in o {
            guard let s = value.stringValue else {
                throw MiniAppError(.invalidParams, "\(method): '\(name).\(k)' must be a string")
            }
            out.append((k, s))
        }
        return out
    }

    private func missing(_ name: String, _ what: String) -> MiniAppError {
        MiniAppError(.invalidParams, "\(method): params.\(name) is required (\(what))")
    }

    private func wrongType(_ name: String, _ what: String, _ v: JSONValue) -> MiniAppError {
        MiniAppError(.invalidParams, "\(method): params.\(name) must be \(what), not \(v.typeName)")
    }
}

extension MiniAppError {
    /// A method the service does not serve reached it: the broker's catalogue and the service
    /// disagree, which is the daemon's fault.
    static func unservedMethod(_ method: String, service: String) -> MiniAppError {
        MiniAppError(.internal, "\(service) service does not serve '\(method)'")
    }
}
