public import MiniAppJSON

// Typed results of the control methods (spec/control-api.md and the README's additions). Each
// keeps the whole answer in `raw`: the daemon may add members.

/// `daemon.info`.
public struct DaemonInfo: Sendable {
    public let version: String
    public let hostVersion: String
    public let mode: String
    public let cgroups: String
    public let workers: Int64
    public let raw: JSONObject

    init(_ v: JSONValue) throws(HostError) {
        let f = try HostFields(v, "the answer to daemon.info")
        version = try f.string("version")
        hostVersion = try f.string("hostVersion")
        mode = try f.string("mode")
        cgroups = f.object["cgroups"]?.stringValue ?? f.object["cgroups"]?.jsonString ?? ""
        workers = try f.int("workers")
        raw = f.object
    }
}

/// `packages.install`.
public struct InstallResult: Sendable {
    public let id: String
    public let version: String
    /// False when the package was staged (its program runs; it is activated at the next launch).
    public let active: Bool
    public let raw: JSONObject

    init(_ v: JSONValue) throws(HostError) {
        let f = try HostFields(v, "the answer to packages.install")
        id = try f.string("id")
        version = try f.string("version")
        active = try f.bool("active")
        raw = f.object
    }
}

/// One entry of `packages.list`.
public struct PackageInfo: Sendable {
    public let id: String
    public let active: String?
    public let versions: [String]
    public let pending: String?
    public let raw: JSONObject

    init(_ o: JSONObject) throws(HostError) {
        let f = HostFields(object: o, "a packages.list entry")
        id = try f.string("id")
        active = try f.optionalString("active")
        versions = try f.strings("versions")
        pending = try f.optionalString("pending")
        raw = o
    }
}

/// `programs.launch`.
public struct LaunchResult: Sendable {
    public let workerId: String
    public let id: String
    public let version: String
    public let pid: Int64
    public let startMicros: Int64
    /// Whether a warm jail took the launch.
    public let warm: Bool
    public let raw: JSONObject

    init(_ v: JSONValue) throws(HostError) {
        let f = try HostFields(v, "the answer to programs.launch")
        workerId = try f.string("workerId")
        id = try f.string("id")
        version = try f.string("version")
        pid = try f.int("pid")
        startMicros = try f.optionalInt("startMicros") ?? 0
        warm = f.object["warm"]?.boolValue ?? false
        raw = f.object
    }
}

/// One entry of `programs.list`.
public struct WorkerInfo: Sendable {
    public let workerId: String
    public let id: String
    public let version: String
    public let state: String
    public let pid: Int64
    public let raw: JSONObject

    init(_ o: JSONObject) throws(HostError) {
        let f = HostFields(object: o, "a programs.list entry")
        workerId = try f.string("workerId")
        id = try f.string("id")
        version = try f.string("version")
        state = try f.string("state")
        pid = try f.optionalInt("pid") ?? 0
        raw = o
    }
}

/// One entry of `updates.check`.
public struct UpdateInfo: Sendable {
    public let id: String
    public let from: String?
    public let to: String?
    public let staged: Bool
    /// Set when this program's check failed (`HOST_UPDATE_REQUIRED`, …).
    public let code: String?
    public let raw: JSONObject

    init(_ o: JSONObject) throws(HostError) {
        let f = HostFields(object: o, "an updates.check entry")
        id = try f.string("id")
        from = try f.optionalString("from")
        to = try f.optionalString("to")
        staged = o["staged"]?.boolValue ?? false
        code = try f.optionalString("code")
        raw = o
    }
}
