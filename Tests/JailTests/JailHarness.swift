import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem

/// Shared fixtures of the jail tests: the escape probe compiled with the system cc into an app
/// dir, a state dir, and a privileged `Jailer` on the repository's default policies.
enum JailHarness {
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var policyDir: String { "\(packageRoot)/policies" }

    /// /tmp/jailtests-PID/{app,state,…}; world-traversable so the rootless (nobody) runs can read it.
    static let base: String = {
        let b = "/tmp/jailtests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: "\(b)/app", withIntermediateDirectories: true)
        chmod(b, 0o755)
        chmod("\(b)/app", 0o755)
        return b
    }()

    /// Compiles Fixtures/probe.c once; also installs a root-owned setuid copy (probe-suid).
    static let probeBuilt: Bool = {
        let src = "\(packageRoot)/Tests/JailTests/Fixtures/probe.c"
        let out = "\(base)/app/probe"
        guard run("/usr/bin/cc", ["-O1", "-o", out, src]) == 0 else { return false }
        _ = run("/bin/cp", [out, "\(base)/app/probe-suid"])
        chmod("\(base)/app/probe-suid", 0o4755)
        return true
    }()

    /// Runs `exe args` through popen (not Foundation's Process: its fd handling in the parent
    /// races with spawns on other threads) and returns (exit status, stdout+stderr).
    static func capture(_ exe: String, _ args: [String]) -> (Int32, String) {
        let quoted = ([exe] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        guard let f = popen(quoted + " 2>&1", "re") else { return (-1, "popen failed") }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n == 0 { break }
            out += buf[0..<n]
        }
        let st = pclose(f)
        let status = (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
        return (status, String(decoding: out, as: UTF8.self))
    }

    static func run(_ exe: String, _ args: [String]) -> Int32 { capture(exe, args).0 }

    /// The test policy: the default one with a small /tmp (to fill it quickly).
    static func configuration() throws -> JailConfiguration {
        var policy = try JailPolicy.parse(Array(FileManager.default.contents(atPath: "\(policyDir)/jail.json") ?? Data()))
        policy.filesystem.tmpSizeBytes = 8 << 20
        return try JailPolicy.configure(policy, policyDir: policyDir)
    }

    static let jailer: Jailer? = {
        guard let c = try? configuration() else { return nil }
        return try? Jailer(configuration: c, stateDir: "\(base)/state", mode: .privileged)
    }()

    static func newDataDir(_ name: String) -> String {
        let d = "\(base)/data-\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Spawns the probe with `args` (or any argv when `argv` is given) and waits for its exit.
    static func runWorker(_ args: [String], argv: [String]? = nil, programId: String = "test.probe",
                          configure: (inout JailLaunch) -> Void = { _ in }) async throws -> (WorkerExit, [String]) {
        guard probeBuilt, let jailer else { throw MiniAppError(.internal, "fixture setup failed (cc or policy)") }
        let lines = JailLock<[String]>([])
        var launch = JailLaunch(programId: programId, argv: argv ?? (["/app/probe"] + args))
        launch.appDir = "\(base)/app"
        launch.dataDir = newDataDir(programId)
        launch.output = { l in lines.withLock { $0.append(l.text) } }
        configure(&launch)
        let worker = try await jailer.spawn(launch)
        let exit = await worker.exit
        return (exit, lines.withLock { $0 })
    }
}
