public import MiniAppJSON

/// Typed helpers: one per control method of spec/control-api.md and the README's additions,
/// each a `call` with typed params and result.
extension HostClient {
    public func daemonInfo() async throws(HostError) -> DaemonInfo { try DaemonInfo(await call("daemon.info")) }

    /// Installs the package at `path` (absolute, on the daemon's host); verified first.
    public func install(path: String, allowDowngrade: Bool = false) async throws(HostError) -> InstallResult {
        var params: JSONObject = ["path": .string(path)]
        if allowDowngrade { params["allowDowngrade"] = true }
        return try InstallResult(await call("packages.install", params))
    }

    public func packages() async throws(HostError) -> [PackageInfo] {
        let f = try HostFields(await call("packages.list"), "the answer to packages.list")
        var out: [PackageInfo] = []
        for o in try f.objects("packages") { out.append(try PackageInfo(o)) }
        return out
    }

    /// Rolls `id` back to its previous version; returns the now active version.
    public func rollback(id: String) async throws(HostError) -> String {
        try HostFields(await call("packages.rollback", ["id": .string(id)]), "the answer to packages.rollback").string("active")
    }

    public func remove(id: String) async throws(HostError) { _ = try await call("packages.remove", ["id": .string(id)]) }

    /// Launches program `id`; `args` follow the entry point in its argv.
    public func launch(id: String, args: [String] = []) async throws(HostError) -> LaunchResult {
        var params: JSONObject = ["id": .string(id)]
        if !args.isEmpty { params["args"] = .array(args.map { .string($0) }) }
        return try LaunchResult(await call("programs.launch", params))
    }

    public func suspend(workerId: String) async throws(HostError) { _ = try await call("programs.suspend", ["workerId": .string(workerId)]) }

    public func resume(workerId: String) async throws(HostError) { _ = try await call("programs.resume", ["workerId": .string(workerId)]) }

    /// Stops a worker (SIGTERM, SIGKILL after `graceMillis`); answers with its exit status once
    /// it has exited. Give a `timeoutMillis` longer than the grace.
    public func stop(workerId: String, graceMillis: Int? = nil, timeoutMillis: Int? = nil) async throws(HostError) -> Int64 {
        var params: JSONObject = ["workerId": .string(workerId)]
        if let graceMillis { params["graceMillis"] = .int(Int64(graceMillis)) }
        let r = try await call("programs.stop", params, timeoutMillis: timeoutMillis)
        return try HostFields(r, "the answer to programs.stop").int("status")
    }

    public func workers() async throws(HostError) -> [WorkerInfo] {
        let f = try HostFields(await call("programs.list"), "the answer to programs.list")
        var out: [WorkerInfo] = []
        for o in try f.objects("workers") { out.append(try WorkerInfo(o)) }
        return out
    }

    /// Delivers the event `name` to a worker (an `event` notification on its Bridge).
    public func send(workerId: String, name: String, data: JSONValue? = nil) async throws(HostError) {
        var params: JSONObject = ["workerId": .string(workerId), "name": .string(name)]
        if let data { params["data"] = data }
        _ = try await call("programs.send", params)
    }

    /// Sets the user session `auth.getToken` derives from.
    public func setSession(userId: String, claims: JSONObject = [:]) async throws(HostError) {
        _ = try await call("session.set", ["userId": .string(userId), "claims": .object(claims)])
    }

    /// Subscribes to `inspector.event` notifications (of `programId`, or of every program);
    /// subscribed again after a reconnection.
    public func subscribeInspector(programId: String? = nil) async throws(HostError) {
        var params: JSONObject = [:]
        if let programId { params["programId"] = .string(programId) }
        _ = try await call("inspector.subscribe", params)
    }

    /// Re-reads the partner grants now; answers with what is in effect (README "Partners and grants").
    public func refreshPermissions() async throws(HostError) -> JSONObject {
        try HostFields(await call("permissions.refresh"), "the answer to permissions.refresh").object
    }

    public func checkUpdates(id: String? = nil) async throws(HostError) -> [UpdateInfo] {
        var params: JSONObject = [:]
        if let id { params["id"] = .string(id) }
        let f = try HostFields(await call("updates.check", params), "the answer to updates.check")
        var out: [UpdateInfo] = []
        for o in try f.objects("updates") { out.append(try UpdateInfo(o)) }
        return out
    }

    /// Builds a worker for `id` ahead (held before its code runs); returns its worker id.
    public func prewarm(id: String) async throws(HostError) -> String {
        try HostFields(await call("programs.prewarm", ["id": .string(id)]), "the answer to programs.prewarm").string("workerId")
    }

    /// Stops and launches `id` again, applying a staged version; returns (workerId, version).
    public func restart(id: String) async throws(HostError) -> (workerId: String, version: String) {
        let f = try HostFields(await call("programs.restart", ["id": .string(id)]), "the answer to programs.restart")
        return (try f.string("workerId"), try f.string("version"))
    }

    /// The JWKS of the daemon's `auth.getToken` key.
    public func authKeys() async throws(HostError) -> JSONObject {
        try HostFields(await call("auth.keys"), "the answer to auth.keys").object
    }
}
