import MiniAppJail
import MiniAppModel
import Testing

/// A mini-program's launch is one typed value: argv comes from its `Runtime`, the whole
/// environment from the jail plan's one builder.
@Suite struct ProgramRunTests {
    static func run(_ runtime: Runtime, prewarm: Bool = false) -> ProgramRun {
        ProgramRun(workerId: "w-7", version: "1.2.0", runtime: runtime, entryPoint: "main", args: ["a"], prewarm: prewarm, bridgeMaxBytes: 4096)
    }

    @Test(arguments: [
        (Runtime.native, false, ["/app/main", "a"]),
        (.node, false, ["/usr/bin/node", "--require", "/sdk/js/preload.js", "/app/main", "a"]),
        // A prewarmed worker runs the SDK's loader; the launch's args come with its release.
        (.node, true, ["/usr/bin/node", "--require", "/sdk/js/preload.js", "/sdk/js/loader.js", "/app/main"]),
        (.python, false, ["/usr/bin/python3", "-s", "-B", "/app/main", "a"]),
        (.python, true, ["/usr/bin/python3", "-s", "-B", "/sdk/python/miniapp_loader.py", "/app/main"]),
    ])
    func argvFollowsTheRuntime(runtime: Runtime, prewarm: Bool, argv: [String]) {
        let launch = JailLaunch(programId: "com.p.app", program: Self.run(runtime, prewarm: prewarm))
        #expect(launch.argv == argv)
        #expect(launch.workdir == "/app")
    }

    @Test(arguments: [(Runtime.native, nil as String?), (.node, "NODE_PATH=/sdk/js"), (.python, "PYTHONPATH=/sdk/python")])
    func environmentIsBuiltOnceFromThePolicyAndTheProgram(runtime: Runtime, runtimeVar: String?) {
        var launch = JailLaunch(programId: "com.p.app", program: Self.run(runtime))
        launch.bridgeFD = 9
        // The program's own values win over the policy's; the jail's own win over both.
        let env = launch.environment(policy: ["PATH": "/opt/bin", "TZ": "UTC", "MINIAPP_PROGRAM_ID": "forged"]).map { "\($0.0)=\($0.1)" }
        #expect(env == env.sorted())
        for v in ["MINIAPP_PROGRAM_ID=com.p.app", "MINIAPP_BRIDGE_FD=3", "MINIAPP_WORKER_ID=w-7", "MINIAPP_PROGRAM_VERSION=1.2.0",
                  "MINIAPP_BRIDGE_MAX_BYTES=4096", "PATH=/usr/bin:/bin", "TZ=UTC", "HOME=/data"] {
            #expect(env.contains(v), "\(v) missing from \(env)")
        }
        #expect(!env.contains("MINIAPP_PREWARM=1"))
        #expect(env.filter { $0.hasPrefix("NODE_PATH=") || $0.hasPrefix("PYTHONPATH=") } == (runtimeVar.map { [$0] } ?? []))
        #expect(JailLaunch(programId: "com.p.app", program: Self.run(runtime, prewarm: true)).environment(policy: [:])
            .contains { $0 == ("MINIAPP_PREWARM", "1") })
    }

    /// A plain command (no program) has no Bridge variable unless it is given a Bridge.
    @Test func plainCommandKeepsItsOwnEnvironment() {
        var launch = JailLaunch(programId: "tool", argv: ["/bin/true"])
        launch.env = ["X": "1"]
        let env = launch.environment(policy: ["PATH": "/usr/bin"])
        #expect(env.map(\.0) == ["MINIAPP_PROGRAM_ID", "PATH", "X"])
    }
}
