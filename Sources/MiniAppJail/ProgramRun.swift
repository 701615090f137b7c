public import MiniAppModel

/// A mini-program's worker, as the jail starts it: who it is and how its runtime starts it
/// (spec/package-format.md `runtime`). From `programs.launch` to the spawner's blob a launch is
/// one `JailLaunch` carrying this value; the command line is derived from it when the launch is
/// made, the environment once, in the jail plan (`JailLaunch.environment`).
///
/// The SDKs are mounted read-only at /sdk: node programs get `MiniAppBridge` as a global through
/// `--require` (as a WebView host injects its bridge), Python programs can `import miniapp_bridge`.
///
/// A prewarmed worker has `MINIAPP_PREWARM=1` and runs the SDK's loader as its main script
/// (node: /sdk/js/loader.js, after the preload, with the Bridge's socket open; Python:
/// /sdk/python/miniapp_loader.py, which imports the SDK and compiles the entry first): it waits
/// on the Bridge for the daemon's `lifecycle.launch` event, then runs the entry point as the
/// main module with that event's args appended to the program's argv.
public struct ProgramRun: Sendable, Equatable {
    /// The worker's id (`MINIAPP_WORKER_ID`).
    public var workerId: String
    /// The version it runs (`MINIAPP_PROGRAM_VERSION`).
    public var version: String
    public var runtime: Runtime
    /// Manifest `entryPoint`, relative to /app.
    public var entryPoint: String
    /// The `programs.launch` args.
    public var args: [String]
    /// Held before the entry point until the launch releases it.
    public var prewarm: Bool
    /// The Bridge's message limit, announced to the SDKs (`MINIAPP_BRIDGE_MAX_BYTES`): they
    /// refuse an oversized request themselves (MESSAGE_TOO_LARGE) instead of sending it, since
    /// the daemon's answer to one has id null and closes the connection.
    public var bridgeMaxBytes: Int

    public init(workerId: String, version: String, runtime: Runtime, entryPoint: String, args: [String], prewarm: Bool, bridgeMaxBytes: Int) {
        self.workerId = workerId
        self.version = version
        self.runtime = runtime
        self.entryPoint = entryPoint
        self.args = args
        self.prewarm = prewarm
        self.bridgeMaxBytes = bridgeMaxBytes
    }

    /// argv inside the jail.
    public var argv: [String] {
        let entry = "/app/" + entryPoint
        switch runtime {
        case .node where prewarm: return ["/usr/bin/node", "--require", "/sdk/js/preload.js", "/sdk/js/loader.js", entry]
        case .node: return ["/usr/bin/node", "--require", "/sdk/js/preload.js", entry] + args
        // -s: no user site-packages; -B: nothing written next to /app (read-only anyway).
        case .python where prewarm: return ["/usr/bin/python3", "-s", "-B", "/sdk/python/miniapp_loader.py", entry]
        case .python: return ["/usr/bin/python3", "-s", "-B", entry] + args
        case .native: return [entry] + args
        }
    }

    /// What the program's environment adds to the policy's (the jail adds the program id and
    /// the Bridge descriptor itself).
    var environment: [String: String] {
        var env = [
            "MINIAPP_PROGRAM_VERSION": version, "MINIAPP_WORKER_ID": workerId, "MINIAPP_BRIDGE_MAX_BYTES": String(bridgeMaxBytes),
            "HOME": "/data", "TMPDIR": "/tmp", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
        ]
        switch runtime {
        case .python: env["PYTHONPATH"] = "/sdk/python"
        case .node: env["NODE_PATH"] = "/sdk/js"
        case .native: break
        }
        if prewarm { env["MINIAPP_PREWARM"] = "1" }
        return env
    }
}

extension Runtime {
    /// It has a runtime to start ahead (a native program has nothing to prewarm).
    public var canPrewarm: Bool { self != .native }
}
