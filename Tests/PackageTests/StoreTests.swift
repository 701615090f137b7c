import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Testing

func versionFixture(_ version: String, content: String = "v") -> Fixture {
    var f = Fixture()
    f.manifest["version"] = .string(version)
    f.files[0].1 = bytes("console.log('\(version) \(content)')\n")
    return f
}

func openStore(_ dir: String, host: String = "3.0.0") throws -> PackageStore {
    try PackageStore(root: dir + "/store", options: VerifierOptions(hostVersion: SemVer(host)!)) { partnerSet() }
}

func writePackage(_ dir: String, _ f: Fixture, name: String) -> String {
    let p = dir + "/" + name
    write(p, f.zip())
    return p
}

@Suite("Version store")
struct StoreTests {
    @Test("install activates, keeps the previous version, extracts read-only")
    func installAndActivate() throws {
        let dir = tempDir("store1")
        defer { cleanup(dir) }
        let store = try openStore(dir)
        #expect(try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip")) == .activated(SemVer("1.0.0")!))
        #expect(try store.install(path: writePackage(dir, versionFixture("1.1.0"), name: "b.zip")) == .activated(SemVer("1.1.0")!))
        let active = try store.active("com.partner.loans")
        #expect(active.manifest.version.text == "1.1.0")
        #expect(active.partner.id == "com.partner")
        let main = String(decoding: FileManager.default.contents(atPath: active.directory + "/main.js")!, as: UTF8.self)
        #expect(main.contains("1.1.0"))
        var st = stat()
        #expect(stat(active.directory + "/main.js", &st) == 0 && st.st_mode & 0o777 == 0o444)
        #expect(stat(active.directory + "/lib", &st) == 0 && st.st_mode & 0o777 == 0o555)
        #expect(stat(active.directory, &st) == 0 && st.st_mode & 0o777 == 0o555)
        let list = try store.list()
        #expect(list.count == 1 && list[0].state.previous?.version.text == "1.0.0")
        // A third install drops the oldest directory.
        _ = try store.install(path: writePackage(dir, versionFixture("1.2.0"), name: "c.zip"))
        let versions = try FileManager.default.contentsOfDirectory(atPath: dir + "/store/com.partner.loans/versions").sorted()
        #expect(versions == ["1.1.0", "1.2.0"])
    }

    @Test("rollback swaps active and previous; removal deletes everything")
    func rollbackAndRemove() throws {
        let dir = tempDir("store2")
        defer { cleanup(dir) }
        let store = try openStore(dir)
        _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        _ = try store.install(path: writePackage(dir, versionFixture("2.0.0"), name: "b.zip"))
        #expect(try store.rollback("com.partner.loans").text == "1.0.0")
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.0.0")
        #expect(try store.rollback("com.partner.loans").text == "2.0.0")
        try store.remove("com.partner.loans")
        #expect(try store.list().isEmpty)
        #expect(throws: MiniAppError.self) { try store.active("com.partner.loans") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/store/com.partner.loans"))
    }

    @Test("rollback without a previous version fails")
    func rollbackNothing() throws {
        let dir = tempDir("store3")
        defer { cleanup(dir) }
        let store = try openStore(dir)
        _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        #expect { try store.rollback("com.partner.loans") } throws: { ($0 as? MiniAppError)?.code == .packageNotInstalled }
    }

    @Test("staging keeps the running version active until activatePending")
    func staging() throws {
        let dir = tempDir("store4")
        defer { cleanup(dir) }
        let store = try openStore(dir)
        _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        #expect(try store.stage(path: writePackage(dir, versionFixture("1.1.0"), name: "b.zip")) == .staged(SemVer("1.1.0")!))
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.0.0")
        #expect(try store.activatePending("com.partner.loans")?.text == "1.1.0")
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.1.0")
        #expect(try store.activatePending("com.partner.loans") == nil)
        #expect(try store.list()[0].state.previous?.version.text == "1.0.0")
    }

    @Test("downgrade refused unless asked; same version: identical is a no-op, different is ALREADY_INSTALLED")
    func downgradeAndSameVersion() throws {
        let dir = tempDir("store5")
        defer { cleanup(dir) }
        let store = try openStore(dir)
        _ = try store.install(path: writePackage(dir, versionFixture("2.0.0"), name: "a.zip"))
        let old = writePackage(dir, versionFixture("1.0.0"), name: "old.zip")
        #expect { try store.install(path: old) } throws: { ($0 as? MiniAppError)?.code == .downgrade }
        #expect(try store.active("com.partner.loans").manifest.version.text == "2.0.0")
        // Re-signing gives a different signature but the same content digest.
        #expect(try store.install(path: writePackage(dir, versionFixture("2.0.0"), name: "same.zip")) == .unchanged(SemVer("2.0.0")!))
        let other = writePackage(dir, versionFixture("2.0.0", content: "different"), name: "other.zip")
        #expect { try store.install(path: other) } throws: { ($0 as? MiniAppError)?.code == .alreadyInstalled }
        #expect(try store.install(path: old, allowDowngrade: true) == .activated(SemVer("1.0.0")!))
    }

    @Test("a failed verification changes nothing")
    func failedInstall() throws {
        let dir = tempDir("store6")
        defer { cleanup(dir) }
        let store = try openStore(dir)
        _ = try store.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        var bad = versionFixture("1.1.0")
        bad.key = TestKeys.other
        #expect { try store.install(path: writePackage(dir, bad, name: "b.zip")) } throws: { ($0 as? MiniAppError)?.code == .badSignature }
        #expect(try store.active("com.partner.loans").manifest.version.text == "1.0.0")
        let versions = try FileManager.default.contentsOfDirectory(atPath: dir + "/store/com.partner.loans/versions")
        #expect(versions == ["1.0.0"])
    }

    @Test("active() refuses a version needing a newer host")
    func hostUpdate() throws {
        let dir = tempDir("store7")
        defer { cleanup(dir) }
        _ = try openStore(dir).install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))
        let older = try openStore(dir, host: "2.0.0")
        #expect { try older.active("com.partner.loans") } throws: { ($0 as? MiniAppError)?.code == .hostUpdateRequired }
    }

    /// Launches run the newest installed version this host can run (the active one first);
    /// HOST_UPDATE_REQUIRED only when none fits, naming the lowest host version that would do.
    @Test("runnable falls back to an installed version the host runs")
    func runnableFallsBack() throws {
        let dir = tempDir("store-fit")
        defer { cleanup(dir) }
        let newer = try openStore(dir, host: "5.0.0")
        _ = try newer.install(path: writePackage(dir, versionFixture("1.0.0"), name: "a.zip"))  // needs 3.0.0
        var f = versionFixture("2.0.0")
        f.manifest["minHostVersion"] = "4.2.0"
        _ = try newer.install(path: writePackage(dir, f, name: "b.zip"))
        #expect(try newer.runnable("com.partner.loans").manifest.version.text == "2.0.0")

        let older = try openStore(dir, host: "4.0.0")
        let r = try older.runnable("com.partner.loans")
        #expect(r.manifest.version.text == "1.0.0")
        #expect(r.directory.hasSuffix("/versions/1.0.0"))
        #expect(try older.list()[0].state.active?.version.text == "2.0.0", "the state is not changed")
        #expect(throws: MiniAppError.self) { try older.active("com.partner.loans") }

        let ancient = try openStore(dir, host: "2.0.0")
        do {
            _ = try ancient.runnable("com.partner.loans")
            Issue.record("a host older than every version launched one")
        } catch {
            #expect(error.code == .hostUpdateRequired)
            #expect(error.data["required"] == "3.0.0")
        }
    }
}
