import MiniAppJSON
import MiniAppModel

/// Request params, read by the one JSON-field reader: INVALID_PARAMS naming the member
/// (`params.graceMillis is -1, outside 0…600000`).
typealias ParamsReader = JSONFieldReader<MiniAppError>

extension JSONFieldReader where Failure == MiniAppError {
    init(params p: JSONObject) { self.init(object: p, path: "params", errors: Self.paramsError) }

    @Sendable static func paramsError(_ e: JSONFieldError) -> MiniAppError { MiniAppError(.invalidParams, "\(e.path) \(e.problem)") }
}

// MARK: the params of each method (decoded before anything is done; INVALID_PARAMS names the member)

/// A method without params (any members are ignored, as before).
struct NoParams: Sendable {
    init(_ p: JSONObject) throws(MiniAppError) {}
}

/// `{id}`: a program id.
struct ProgramParams: Sendable {
    let id: String
    init(_ p: JSONObject) throws(MiniAppError) { id = try ParamsReader(params: p).require("id").string(nonEmpty: true) }
}

/// `{id?}`: a program id, or all programs.
struct OptionalProgramParams: Sendable {
    let id: String?
    init(_ p: JSONObject) throws(MiniAppError) { id = try ParamsReader(params: p).member("id")?.string(nonEmpty: true) }
}

/// `{workerId}`.
struct WorkerParams: Sendable {
    let workerId: String
    init(_ p: JSONObject) throws(MiniAppError) { workerId = try ParamsReader(params: p).require("workerId").string(nonEmpty: true) }
}

/// `programs.launch {id, args?}`.
struct LaunchParams: Sendable {
    let id: String
    let args: [String]
    init(_ p: JSONObject) throws(MiniAppError) {
        let r = ParamsReader(params: p)
        id = try r.require("id").string(nonEmpty: true)
        args = try r.strings("args", default: [])
    }
}

/// `programs.stop {workerId, graceMillis?}`.
struct StopParams: Sendable {
    let workerId: String
    let graceMillis: Int?
    init(_ p: JSONObject) throws(MiniAppError) {
        let r = ParamsReader(params: p)
        workerId = try r.require("workerId").string(nonEmpty: true)
        graceMillis = try r.member("graceMillis")?.int(in: 0...600_000)
    }
}

/// `programs.send {workerId, name, data?}`.
struct SendParams: Sendable {
    let workerId: String
    let name: String
    let data: JSONValue
    init(_ p: JSONObject) throws(MiniAppError) {
        let r = ParamsReader(params: p)
        workerId = try r.require("workerId").string(nonEmpty: true)
        name = try r.require("name").string(nonEmpty: true)
        data = p["data"] ?? [:]
    }
}

/// `bridge.provide {methods}`.
struct ProvideParams: Sendable {
    let methods: [String]
    init(_ p: JSONObject) throws(MiniAppError) {
        let methods = try ParamsReader(params: p).require("methods").strings()
        guard !methods.isEmpty else { throw MiniAppError(.invalidParams, "params.methods must be a non-empty array of method names") }
        self.methods = methods
    }
}

/// `session.set {userId, claims?}`.
struct SessionParams: Sendable {
    let userId: String
    let claims: JSONObject
    init(_ p: JSONObject) throws(MiniAppError) {
        let r = ParamsReader(params: p)
        claims = try r.child("claims")?.object ?? [:]
        userId = try r.require("userId").string(nonEmpty: true)
    }
}

/// `inspector.subscribe {programId?}`.
struct InspectorParams: Sendable {
    let programId: String?
    init(_ p: JSONObject) throws(MiniAppError) { programId = try ParamsReader(params: p).member("programId")?.string(nonEmpty: true) }
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
        let r = ParamsReader(params: p)
        if p["dir"] != nil || p["url"] != nil {
            source = .simulated(dir: try r.member("dir")?.string(nonEmpty: true), url: try r.member("url")?.string(nonEmpty: true))
            allowDowngrade = false
            return
        }
        allowDowngrade = try r.bool("allowDowngrade", default: false)
        if try r.bool("fd", default: false) {
            guard r.member("path") == nil else { throw MiniAppError(.invalidParams, "pass either params.path or params.fd, not both") }
            source = .descriptor
        } else {
            source = .path(try r.require("path").string(nonEmpty: true))
        }
    }

    /// Only `{fd: true}` claims the descriptor passed with the request.
    static func takesDescriptor(_ p: JSONObject) -> Bool { p["fd"]?.boolValue == true }
}
