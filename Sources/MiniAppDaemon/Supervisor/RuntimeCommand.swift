/// The command line and environment of a worker, per runtime (spec/package-format.md `runtime`).
///
/// The SDKs are mounted read-only at /sdk: node programs get `MiniAppBridge` as a global through
/// `--require` (as a WebView host injects its bridge), Python programs can `import miniapp_bridge`.
///
/// A prewarmed worker (Supervisor+Prewarm.swift) has `MINIAPP_PREWARM=1` and runs the SDK's
/// loader as its main script (node: /sdk/js/loader.js, after the preload, with the Bridge's
/// socket open; Python: /sdk/python/miniapp_loader.py, which imports the SDK and compiles the
/// entry first): it waits on the Bridge for the daemon's `lifecycle.launch` event, then runs the
/// entry point as the main module with that event's args appended to the program's argv.
enum RuntimeCommand {
    static func argv(_ p: LaunchableProgram, args: [String], prewarm: Bool = false) -> [String] {
        let entry = "/app/" + p.entryPoint
        switch p.runtime {
        case "node" where prewarm: return ["/usr/bin/node", "--require", "/sdk/js/preload.js", "/sdk/js/loader.js", entry]
        case "node": return ["/usr/bin/node", "--require", "/sdk/js/preload.js", entry] + args
        // -s: no user site-packages; -B: nothing written next to /app (read-only anyway).
        case "python" where prewarm: return ["/usr/bin/python3", "-s", "-B", "/sdk/python/miniapp_loader.py", entry]
        case "python": return ["/usr/bin/python3", "-s", "-B", entry] + args
        default: return [entry] + args
        }
    }

    static func env(_ p: LaunchableProgram, workerId: String, prewarm: Bool = false) -> [String] {
        var env = [
            "MINIAPP_BRIDGE_FD=3", "MINIAPP_PROGRAM_ID=\(p.id)", "MINIAPP_PROGRAM_VERSION=\(p.version)",
            "MINIAPP_WORKER_ID=\(workerId)", "HOME=/data", "TMPDIR=/tmp", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
        ]
        if p.runtime == "python" { env.append("PYTHONPATH=/sdk/python") }
        if p.runtime == "node" { env.append("NODE_PATH=/sdk/js") }
        if prewarm { env.append("MINIAPP_PREWARM=1") }
        return env
    }

    /// Programs with a runtime to start ahead (a native program has nothing to prewarm).
    static func canPrewarm(_ p: LaunchableProgram) -> Bool { p.runtime == "node" || p.runtime == "python" }
}
