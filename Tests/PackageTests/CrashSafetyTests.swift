import Foundation
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Testing

/// kill -9 of a real `miniapp store install` process at every named point of an install
/// (`MINIAPP_CRASH_AT`, see `CrashPoint`) and at random instants: the previous version stays
/// active, no partial directory is ever visible under a version name, and reopening the store
/// garbage-collects the leftovers.
@Suite("Crash safety of installs", .serialized)
struct CrashSafetyTests {
    static let points = ["verified", "tmpdir-created", "file-written", "extracted", "renamed", "state-tmp-written", "activated"]

    /// 1.0.0 installed; returns (dir, policy, path of a 1.1.0 package with many files).
    func setUp(_ tag: String) throws -> (String, String, String) {
        let dir = tempDir(tag)
        let policy = policyDir(in: dir)
        _ = try openStore(dir).install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        var f = versionFixture("1.1.0")
        for i in 0..<150 { f.files.append(("assets/f\(i).bin", (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* (i + 7)) })) }
        return (dir, policy, writePackage(dir, f, name: "b.zip"))
    }

    func installProcess(_ dir: String, _ policy: String, _ pkg: String, crashAt: String?, pauseAt: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Paths.miniapp)
        p.arguments = ["store", "--root", dir + "/store", "--policy-dir", policy, "--host-version", "3.0.0", "install", pkg]
        var env = ProcessInfo.processInfo.environment
        if let crashAt { env["MINIAPP_CRASH_AT"] = crashAt }
        if let pauseAt { env["MINIAPP_PAUSE_AT"] = pauseAt }
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Invariants right after the crash (before any recovery) and after reopening.
    func check(_ dir: String, committed: Bool?) throws {
        let versions = dir + "/store/com.partner.loans/versions"
        for name in try FileManager.default.contentsOfDirectory(atPath: versions) where !name.hasPrefix(".") {
            // Anything visible under a version name is complete.
            let count = FileManager.default.enumerator(atPath: versions + "/" + name)!.allObjects.count
            #expect(count == (name == "1.0.0" ? 4 : 155), "partial directory \(name) visible (\(count) entries)")
        }
        let store = try openStore(dir)
        let active = try store.active("com.partner.loans").manifest.version.text
        if let committed { #expect(active == (committed ? "1.1.0" : "1.0.0")) } else { #expect(["1.0.0", "1.1.0"].contains(active)) }
        let left = try FileManager.default.contentsOfDirectory(atPath: versions)
        #expect(!left.contains { $0.hasPrefix(".") }, "leftovers after recovery: \(left)")
        let state = try store.list()[0].state
        #expect(Set(left) == Set([state.active, state.previous, state.pending].compactMap { $0?.version.text }))
    }

    @Test("kill -9 at each install step", arguments: points)
    func killAtPoint(_ point: String) throws {
        let (dir, policy, pkg) = try setUp("crash-\(point)")
        defer { cleanup(dir) }
        let p = try installProcess(dir, policy, pkg, crashAt: point)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal && p.terminationStatus == SIGKILL, "\(point) was not reached")
        try check(dir, committed: point == "activated")
        // The interrupted install can simply be retried.
        _ = try openStore(dir).install(path: pkg)
        #expect(try openStore(dir).active("com.partner.loans").manifest.version.text == "1.1.0")
    }

    @Test("kill -9 at random instants during installs")
    func killAtRandom() throws {
        let (dir, policy, pkg) = try setUp("crash-random")
        defer { cleanup(dir) }
        var g = SystemRandomNumberGenerator()
        for _ in 0..<12 {
            // Reset: only 1.0.0 installed.
            let store = try openStore(dir)
            try store.remove("com.partner.loans")
            _ = try store.install(path: dir + "/a.zip")
            let p = try installProcess(dir, policy, pkg, crashAt: nil)
            usleep(UInt32.random(in: 2_000...120_000, using: &g))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            try check(dir, committed: nil)
        }
    }

    /// An install stopped (SIGSTOP) as its extraction begins holds no store lock:
    /// another process opens the store (running its recovery), reads, activates and lists —
    /// what every launch does — without waiting; and the install still completes when resumed
    /// (recovery left its flocked staging tree alone).
    @Test("launches do not wait for an install's extraction")
    func extractionHoldsNoLock() throws {
        let (dir, policy, pkg) = try setUp("nolock")
        defer { cleanup(dir) }
        // tmpdir-created: hit once, when the staging tree exists and before any file is written.
        let p = try installProcess(dir, policy, pkg, crashAt: nil, pauseAt: "tmpdir-created")
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        #expect(waitUntilStopped(p.processIdentifier), "the install never reached tmpdir-created")
        let store = ["store", "--root", dir + "/store", "--policy-dir", policy, "--host-version", "3.0.0"]
        for verb in [["active", "com.partner.loans"], ["activate", "com.partner.loans"], ["list"]] {
            // In a child with a deadline: while the install held the lock, this blocked for good.
            let (status, out) = try runBounded(Paths.miniapp, store + verb, seconds: 20)
            #expect(status == 0, "\(verb): \(out)")
            #expect(out.contains("1.0.0") || out.contains("nothing pending"), "\(verb): \(out)")
        }
        kill(p.processIdentifier, SIGCONT)
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 0, "the resumed install did not complete")
        try check(dir, committed: true)
    }

    /// Polls /proc until `pid` is stopped (state T), for at most 20 s.
    func waitUntilStopped(_ pid: Int32) -> Bool {
        for _ in 0..<2000 {
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
                stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first == "T"
            {
                return true
            }
            usleep(10_000)
        }
        return false
    }

    /// Runs `exe` and returns (status, output); SIGKILLs it after `seconds` (status -9 then).
    func runBounded(_ exe: String, _ args: [String], seconds: Double) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out) }
        let handle = try FileHandle(forWritingTo: out)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        try handle.close()
        let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        return (p.terminationReason == .uncaughtSignal ? -p.terminationStatus : p.terminationStatus, text)
    }
}
