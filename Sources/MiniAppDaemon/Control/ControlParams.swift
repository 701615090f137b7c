import MiniAppJSON
import MiniAppModel

/// Typed access to request params, with INVALID_PARAMS messages that name the member.
enum Params {
    static func string(_ p: JSONObject, _ key: String) throws(MiniAppError) -> String {
        guard let s = p[key]?.stringValue, !s.isEmpty else {
            throw MiniAppError(.invalidParams, "params.\(key) must be a non-empty string")
        }
        return s
    }

    static func optionalString(_ p: JSONObject, _ key: String) throws(MiniAppError) -> String? {
        guard let v = p[key], !v.isNull else { return nil }
        return try string(p, key)
    }

    static func bool(_ p: JSONObject, _ key: String) throws(MiniAppError) -> Bool? {
        guard let v = p[key], !v.isNull else { return nil }
        guard let b = v.boolValue else { throw MiniAppError(.invalidParams, "params.\(key) must be true or false") }
        return b
    }

    static func int(_ p: JSONObject, _ key: String, _ range: ClosedRange<Int>) throws(MiniAppError) -> Int? {
        guard let v = p[key], !v.isNull else { return nil }
        guard let i = v.intValue, let n = Int(exactly: i), range.contains(n) else {
            throw MiniAppError(.invalidParams, "params.\(key) must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return n
    }

    static func strings(_ p: JSONObject, _ key: String) throws(MiniAppError) -> [String]? {
        guard let v = p[key], !v.isNull else { return nil }
        guard let a = v.arrayValue else { throw MiniAppError(.invalidParams, "params.\(key) must be an array of strings") }
        var out: [String] = []
        for x in a {
            guard let s = x.stringValue else { throw MiniAppError(.invalidParams, "params.\(key) must be an array of strings") }
            out.append(s)
        }
        return out
    }
}

// MARK: the params of each method (decoded before anything is done; INVALID_PARAMS names the member)

/// A method without params (any members are ignored, as before).
struct NoParams: Sendable {
    init(_ p: JSONObject) throws(MiniAppError) {}
}

/// `{id}`: a program id.
struct ProgramParams: Sendable {
    let id: String
    init(_ p: JSONObject) throws(MiniAppError) { id = try Params.string(p, "id") }
}

/// `{id?}`: a program id, or all programs.
struct OptionalProgramParams: Sendable {
    let id: String?
    init(_ p: JSONObject) throws(MiniAppError) { id = try Params.optionalString(p, "id") }
}

/// `{workerId}`.
struct WorkerParams: Sendable {
    let workerId: String
    init(_ p: JSONObject) throws(MiniAppError) { workerId = try Params.string(p, "workerId") }
}

/// `programs.launch {id, args?}`.
struct LaunchParams: Sendable {
    let id: String
    let args: [String]
    init(_ p: JSONObject) throws(MiniAppError) {
        id = try Params.string(p, "id")
        args = try Params.strings(p, "args") ?? []
    }
}

/// `programs.stop {workerId, graceMillis?}`.
struct StopParams: Sendable {
    let workerId: String
    let graceMillis: Int?
    init(_ p: JSONObject) throws(MiniAppError) {
        workerId = try Params.string(p, "workerId")
        graceMillis = try Params.int(p, "graceMillis", 0...600_000)
    }
}

/// `programs.send {workerId, name, data?}`.
struct SendParams: Sendable {
    let workerId: String
    let name: String
    let data: JSONValue
    init(_ p: JSONObject) throws(MiniAppError) {
        workerId = try Params.string(p, "workerId")
        name = try Params.string(p, "name")
        data = p["data"] ?? [:]
    }
}

/// `bridge.provide {methods}`.
struct ProvideParams: Sendable {
    let methods: [String]
    init(_ p: JSONObject) throws(MiniAppError) {
        guard let methods = try Params.strings(p, "methods"), !methods.isEmpty else {
            throw MiniAppError(.invalidParams, "methods must be a non-empty array of method names")
        }
        self.methods = methods
    }
}

/// `session.set {userId, claims?}`.
struct SessionParams: Sendable {
    let userId: String
    let claims: JSONObject
    init(_ p: JSONObject) throws(MiniAppError) {
        let claims = p["claims"]
        if let claims, claims.objectValue == nil, !claims.isNull {
            throw MiniAppError(.invalidParams, "claims must be an object")
        }
        userId = try Params.string(p, "userId")
        self.claims = claims?.objectValue ?? [:]
    }
}

/// `inspector.subscribe {programId?}`.
struct InspectorParams: Sendable {
    let programId: String?
    init(_ p: JSONObject) throws(MiniAppError) { programId = try Params.optionalString(p, "programId") }
}

/// `packages.install {path | fd: true | dir | url, allowDowngrade?}`.
struct InstallParams: Sendable {
    enum Source: Sendable {
        /// A path, opened with the peer's own permissions.
        case path(String)
        /// The descriptor passed with the request.
        case descriptor
        /// An unsigned program (simulator mode only).
        case simulated(dir: String?, url: String?)
    }

    let source: Source
    let allowDowngrade: Bool

    init(_ p: JSONObject) throws(MiniAppError) {
        if p["dir"] != nil || p["url"] != nil {
            source = .simulated(dir: try Params.optionalString(p, "dir"), url: try Params.optionalString(p, "url"))
            allowDowngrade = false
            return
        }
        allowDowngrade = try Params.bool(p, "allowDowngrade") ?? false
        if try Params.bool(p, "fd") ?? false {
            guard p["path"] == nil || p["path"]!.isNull else {
                throw MiniAppError(.invalidParams, "pass either params.path or params.fd, not both")
            }
            source = .descriptor
        } else {
            source = .path(try Params.string(p, "path"))
        }
    }

    /// Only `{fd: true}` claims the descriptor passed with the request.
    static func takesDescriptor(_ p: JSONObject) -> Bool { p["fd"]?.boolValue == true }
}
