import Foundation
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import MiniAppTestSupport
import Synchronization
import Testing

/// Installs with zlib in `miniappd-helper extract` (the daemon's store): same outcomes as in
/// process, a tree the daemon re-hashed and owns, a helper that holds nothing, and a kill -9 of
/// the helper mid-install that leaves the store as it was.
@Suite("Extraction helper", .serialized)
struct ExtractionHelperTests {
    func helperStore(_ dir: String, limits: ZipLimits = ZipLimits(), environment: [String] = [],
                     partners: @escaping @Sendable () -> PartnerSet = { partnerSet() }) throws -> PackageStore {
        var settings = HelperSettings()
        settings.environment = environment
        return try PackageStore(root: dir + "/store", options: VerifierOptions(hostVersion: SemVer("3.0.0")!, limits: limits),
                                extractionHelper: ExtractionHelper(settings: settings), partners: partners)
    }

    @Test func installsASealedTreeTheDaemonOwns() throws {
        let dir = tempDir("xh")
        defer { cleanup(dir) }
        let store = try helperStore(dir)
        _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        let tree = dir + "/store/com.partner.loans/versions/1.0.0"
        #expect(try String(contentsOfFile: tree + "/main.js", encoding: .utf8) == "console.log('1.0.0 v')\n")
        for (path, mode) in [("", 0o555), ("/lib", 0o555), ("/main.js", 0o444), ("/lib/util.js", 0o444), ("/manifest.json", 0o444)] {
            var st = stat()
            #expect(lstat(tree + path, &st) == 0)
            #expect(st.st_uid == geteuid() && st.st_gid == getegid(), "\(path) owned by \(st.st_uid)")
            #expect(Int(st.st_mode & 0o7777) == mode, "\(path) mode \(String(st.st_mode & 0o7777, radix: 8))")
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/.staging")) ?? []).isEmpty)
        // A reinstall of the same content is settled; a newer version installs.
        _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a2.zip"))
        _ = try store.install(path: writePackage(dir, versionFixture("1.1.0"), name: "b.zip"))
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.1.0")
    }

    /// The hostile corpus through the helper: every case fails with its stable code.
    @Test(arguments: hostileCases.filter { $0.installed == nil })
    func hostileCasesKeepTheirCodes(_ c: HostileCase) throws {
        let dir = tempDir("xh-hostile")
        defer { cleanup(dir) }
        let store = try helperStore(dir, limits: c.limits, partners: c.partners)
        write(dir + "/h.zip", c.build())
        do {
            _ = try store.install(path: dir + "/h.zip", allowDowngrade: true)
            Issue.record("\(c.name): accepted")
        } catch {
            #expect(error.code == c.code, "\(c.name): \(error)")
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/.staging")) ?? []).isEmpty)
    }

    func waitStopped(_ helper: ExtractionHelper) throws -> Int32 {
        for _ in 0..<2000 {
            if let pid = helper.currentPID, ProcStatus(pid: pid)?.state == "T" { return pid }
            usleep(5000)
        }
        throw MiniAppError(.internal, "the extraction helper never paused")
    }

    /// kill -9 of the helper mid-install (paused after its first file): the install fails with
    /// INTERNAL, the previous version stays active, no staging entry is left, and the next
    /// install succeeds. While paused, its /proc status shows what it holds.
    @Test func killingTheHelperMidInstall() throws {
        let dir = tempDir("xh-kill")
        defer { cleanup(dir) }
        _ = try helperStore(dir).install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        var f = versionFixture("1.1.0")
        for i in 0..<20 { f.files.append(("assets/f\(i).bin", [UInt8](repeating: UInt8(i), count: 5000))) }
        let pkg = writePackage(dir, f, name: "b.zip")
        let paused = try helperStore(dir, environment: ["MINIAPP_PAUSE_AT=file-written"])
        let outcome = Mutex<Result<InstallOutcome, MiniAppError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread {
            outcome.withLock { o in o = Result { () throws(MiniAppError) in try paused.install(path: pkg) } }
            done.signal()
        }.start()
        let pid = try waitStopped(try #require(paused.extractionHelper))
        let status = try #require(ProcStatus(pid: pid))
        #expect(status.holdsNoCapability, "\(status.fields.filter { $0.key.hasPrefix("Cap") })")
        #expect(status.fields["NoNewPrivs"] == "1" && status.fields["Seccomp"] == "2")
        if geteuid() == 0 { #expect(status.uids.allSatisfy { $0 == 65534 }, "uids \(status.uids)") }
        // Its own network (none), IPC and UTS namespaces.
        for ns in ["net", "ipc", "uts"] {
            let mine = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/\(ns)")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(ns)") != mine, "\(ns)")
        }
        #expect(kill(pid, SIGKILL) == 0)
        #expect(done.wait(timeout: .now() + 20) == .success)
        let result = try #require(outcome.withLock { $0 })
        guard case .failure(let e) = result else { Issue.record("the install survived its helper"); return }
        #expect(e.code == .internal, "\(e)")
        let store = try helperStore(dir)
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.0.0")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/.staging")) ?? []).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/store/com.partner.loans/versions") == ["1.0.0"])
        _ = try store.install(path: pkg)
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.1.0")
    }

    /// A compromised helper (Fixtures/fake_extract_helper.py) reports the signed digests and
    /// writes something else: the daemon's re-hash of the tree refuses it, nothing is published.
    @Test(arguments: ["tamper", "symlink", "extra", "hardlink"])
    func aLyingHelperIsCaught(_ mode: String) throws {
        let dir = tempDir("xh-lie")
        defer { cleanup(dir) }
        var settings = HelperSettings()
        settings.executable = Paths.fixtures + "/fake_extract_helper.py"
        settings.environment = ["FAKE_MODE=\(mode)"]
        let store = try PackageStore(root: dir + "/store", options: VerifierOptions(hostVersion: SemVer("3.0.0")!),
                                     extractionHelper: ExtractionHelper(settings: settings)) { partnerSet() }
        #expect(throws: MiniAppError.self) { _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip")) }
        do { _ = try store.install(path: dir + "/a.zip") } catch {
            #expect(error.code == .internal && error.message.contains("was refused"), "\(mode): \(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/store/com.partner.loans/versions/1.0.0"))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/store/.staging")) ?? []).isEmpty)
    }
}
