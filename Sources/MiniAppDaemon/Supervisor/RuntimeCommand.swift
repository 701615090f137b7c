/// The command line and environment of a worker, per runtime (spec/package-format.md `runtime`).
///
/// The SDKs are mounted read-only at /sdk: node programs get `MiniAppBridge` as a global through
/// `--require` (as a WebView host injects its bridge), Python programs can `import miniapp_bridge`.
enum RuntimeCommand {
    static func argv(_ p: LaunchableProgram, args: [String]) -> [String] {
        let entry = "/app/" + p.entryPoint
        switch p.runtime {
        case "node": return ["/usr/bin/node", "--require", "/sdk/js/preload.js", entry] + args
        // -s: no user site-packages; -B: nothing written next to /app (read-only anyway).
        case "python": return ["/usr/bin/python3", "-s", "-B", entry] + args
        default: return [entry] + args
        }
    }

    static func env(_ p: LaunchableProgram, workerId: String) -> [String] {
        var env = [
            "MINIAPP_BRIDGE_FD=3", "MINIAPP_PROGRAM_ID=\(p.id)", "MINIAPP_PROGRAM_VERSION=\(p.version)",
            "MINIAPP_WORKER_ID=\(workerId)", "HOME=/data", "TMPDIR=/tmp", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
        ]
        if p.runtime == "python" { env.append("PYTHONPATH=/sdk/python") }
        if p.runtime == "node" { env.append("NODE_PATH=/sdk/js") }
        return env
    }
}
