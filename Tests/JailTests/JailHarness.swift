import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Synchronization

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
        chmod(out, 0o755) // readable and executable by the rootless (nobody) runs whatever the umask
        _ = run("/bin/cp", [out, "\(base)/app/probe-suid"])
        chmod("\(base)/app/probe-suid", 0o4755)
        return true
    }()

    /// Runs `exe args` through popen (not Foundation's Process: its fd handling in the parent
    /// races with spawns on other threads) and returns (exit status, stdout+stderr).
    static func capture(_ exe: String, _ args: [String]) -> (Int32, String) {
        let quoted = ([exe] + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        guard let f = popen(quoted + " </dev/null 2>&1", "re") else { return (-1, "popen failed") }
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

    /// The seccomp denial errno of the test policies (probe.c's SECCOMP_ERRNO): EHWPOISON, which
    /// none of the probed syscalls returns by itself, so a probe seeing it knows the filter (and
    /// no other layer) refused the call.
    static let seccompErrno: Int32 = 133

    /// A copy of policies/ under `base` with textual edits applied to jail.json and the default
    /// seccomp profile; nil when an edit does not apply (the policy changed under the test), so
    /// the tests using it fail with "no fixture" instead of testing the wrong thing.
    static func policyVariant(_ name: String, jail: [(String, String)], seccomp: [(String, String)]) -> String? {
        let dir = "\(base)/policies-\(name)"
        try? FileManager.default.createDirectory(atPath: "\(dir)/seccomp", withIntermediateDirectories: true)
        chmod(dir, 0o755)
        chmod("\(dir)/seccomp", 0o755)
        for (file, edits) in [("jail.json", jail), ("seccomp/default.json", seccomp)] {
            guard var text = try? String(contentsOfFile: "\(policyDir)/\(file)", encoding: .utf8) else { return nil }
            for (from, to) in edits {
                guard text.components(separatedBy: from).count == 2 else { return nil }
                text = text.replacingOccurrences(of: from, with: to)
            }
            // Modes set explicitly: another test's listener changes the process umask around bind.
            guard FileManager.default.createFile(atPath: "\(dir)/\(file)", contents: Data(text.utf8)),
                  chmod("\(dir)/\(file)", 0o644) == 0 else { return nil }
        }
        return dir
    }

    static let tmpSmall = ("\"tmpSizeBytes\": 67108864,", "\"tmpSizeBytes\": 8388608,")
    static let marked = ("\"defaultErrnoRet\": 1,", "\"defaultErrnoRet\": \(seccompErrno),")

    /// The test policy: the default one with a small /tmp (to fill it quickly) and the seccomp
    /// denial errno set to `seccompErrno`. Everything else is the shipped policy.
    static let testPolicyDir = policyVariant("test", jail: [tmpSmall], seccomp: [marked])
    /// The same with Landlock off: shows what the other layers hold alone.
    static let noLandlockPolicyDir = policyVariant("no-landlock", jail: [tmpSmall, ("\"mode\": \"bestEffort\"", "\"mode\": \"off\"")], seccomp: [marked])

    static func configuration(_ dir: String? = testPolicyDir) throws -> JailConfiguration {
        guard let dir else { throw MiniAppError(.internal, "test policy variant could not be made") }
        return try JailPolicy.load(policyDir: dir)
    }

    /// The privileged jailer of most tests (test policy).
    static let jailer: Jailer? = {
        guard let c = try? configuration() else { return nil }
        // Warm jails, as the daemon runs privileged: every attack after the first spawn runs in
        // a jail whose namespaces and shared mounts were made ahead (JailSpawnPathTests covers
        // the cold path).
        return try? Jailer(configuration: c, stateDir: "\(base)/state", mode: .privileged, warmJails: true)
    }()

    /// A privileged jailer without Landlock.
    static let noLandlockJailer: Jailer? = {
        guard let c = try? configuration(noLandlockPolicyDir) else { return nil }
        return try? Jailer(configuration: c, stateDir: "\(base)/state-no-landlock", mode: .privileged)
    }()

    static func newDataDir(_ name: String) -> String {
        let d = "\(base)/data-\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Spawns the probe with `args` (or any argv when `argv` is given) and waits for its exit.
    static func runWorker(_ args: [String], argv: [String]? = nil, programId: String = "test.probe", jailer: Jailer? = JailHarness.jailer,
                          configure: (inout JailLaunch) -> Void = { _ in }) async throws -> (WorkerExit, [String]) {
        guard probeBuilt, let jailer else { throw MiniAppError(.internal, "fixture setup failed (cc or policy)") }
        let lines = Locked<[String]>([])
        var launch = JailLaunch(programId: programId, argv: argv ?? (["/app/probe"] + args))
        launch.appDir = "\(base)/app"
        launch.dataDir = newDataDir(programId)
        launch.output = { l in lines.withLock { $0.append(l.text) } }
        configure(&launch)
        let worker = try jailer.spawn(launch)
        let exit = await worker.exit
        return (exit, lines.withLock { $0 })
    }
}

extension JailHarness {
    /// Whether this kernel runs i386 code (int 0x80): the probe, run on the host, asks it.
    static let hostHasIA32: Bool = {
        guard probeBuilt else { return false }
        return capture("\(base)/app/probe", ["ia32_available"]).1.hasPrefix("IA32 yes")
    }()
}

/// Test state shared with the jail's callbacks: a `Mutex` in a class, so escaping closures
/// (output sinks, exit observers) can capture it.
final class Locked<State: Sendable>: Sendable {
    private let mutex: Mutex<State>
    init(_ state: State) { mutex = Mutex(state) }
    func withLock<R: Sendable, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        try mutex.withLock { (s: inout State) throws(E) -> R in try body(&s) }
    }
}
