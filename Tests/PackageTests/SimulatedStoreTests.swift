import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Testing

/// Unsigned programs in the store (a simulator daemon's `packages.install {dir}`): checked like
/// packages, stored as simulated, refused by any store that is not a simulator's.
@Suite("Simulated versions")
struct SimulatedStoreTests {
    static func openSimulator(_ dir: String, simulator: Bool = true) throws -> PackageStore {
        var options = VerifierOptions(hostVersion: SemVer("3.0.0")!)
        options.allowSimulated = simulator
        return try PackageStore(root: dir + "/store", options: options) { partnerSet() }
    }

    static func programDir(_ dir: String, id: String = "com.example.sim", manifest extra: JSONObject = [:], files: [String: String] = ["main.js": "x"]) throws -> String {
        let app = dir + "/app-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
        var m: JSONObject = ["id": .string(id), "version": "1.0.0", "minHostVersion": "1.0.0", "entryPoint": "main.js", "permissions": ["payment"]]
        for (k, v) in extra { m[k] = v }
        try JSONValue.object(m).jsonString.write(toFile: app + "/manifest.json", atomically: true, encoding: .utf8)
        for (name, text) in files {
            try FileManager.default.createDirectory(atPath: (app + "/" + name as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: app + "/" + name, atomically: true, encoding: .utf8)
        }
        return app
    }

    @Test func unclaimedProgramGetsItsManifestGrantsAndIsMarked() throws {
        let dir = tempDir("sim1")
        defer { cleanup(dir) }
        let store = try Self.openSimulator(dir)
        let app = try Self.programDir(dir, files: ["main.js": "x", ".git/HEAD": "ref", "lib/a.js": "y"])
        let (id, outcome) = try store.addSimulated(.directory(app)) { _ in false }
        #expect(id == "com.example.sim" && outcome == .activated(SemVer("1.0.0")!))
        let a = try store.runnable(id)
        #expect(a.simulated && a.partner.id == "simulator:com.example.sim" && a.partner.permissions == ["payment"])
        #expect(FileManager.default.fileExists(atPath: a.directory + "/lib/a.js"))
        #expect(!FileManager.default.fileExists(atPath: a.directory + "/.git"), "dot files are not installed")
        let state = try String(contentsOfFile: dir + "/store/com.example.sim/state.json", encoding: .utf8)
        #expect(state.contains(#""simulated":true"#) && state.contains(#""digest":"sim-"#))
    }

    /// A partner file that claims the program caps it, as in production.
    @Test func claimingPartnerCapsTheGrants() throws {
        let dir = tempDir("sim2")
        defer { cleanup(dir) }
        let store = try Self.openSimulator(dir)
        let app = try Self.programDir(dir, id: "com.partner.dev", manifest: ["permissions": ["geolocation"]])
        #expect { try store.addSimulated(.directory(app)) { _ in false } } throws: { ($0 as? MiniAppError)?.code == .permissionNotGranted }
    }

    /// Every other check of verification still runs on an unsigned program.
    static let invalid: [(JSONObject, ErrorCode)] = [
        (["entryPoint": "missing.js"], .entryPointMissing),
        (["permissions": ["teleport"]], .unknownPermission),
        (["id": "Bad.Id"], .manifestInvalid),
        (["extra": 1], .manifestInvalid),
        (["minHostVersion": "9.0.0"], .hostUpdateRequired),
    ]

    @Test(arguments: 0..<5)
    func checksStillRun(index: Int) throws {
        let (manifest, code) = Self.invalid[index]
        let dir = tempDir("sim3")
        defer { cleanup(dir) }
        let store = try Self.openSimulator(dir)
        let app = try Self.programDir(dir, manifest: manifest)
        #expect { try store.addSimulated(.directory(app)) { _ in false } } throws: { ($0 as? MiniAppError)?.code == code }
    }

    @Test func symlinksAndHostileZipsAreRefused() throws {
        let dir = tempDir("sim4")
        defer { cleanup(dir) }
        let store = try Self.openSimulator(dir)
        let app = try Self.programDir(dir)
        symlink("/etc/passwd", app + "/passwd")
        #expect { try store.addSimulated(.directory(app)) { _ in false } } throws: { ($0 as? MiniAppError)?.code == .badEntryType }
        #expect { try store.addSimulated(.zip(Array("not a zip".utf8))) { _ in false } } throws: { ($0 as? MiniAppError) != nil }
    }

    /// The same store opened without simulator mode: no launch, no activation, no rollback to
    /// a simulated version, and no new simulated install.
    @Test func nonSimulatorStoreRefusesSimulatedVersions() throws {
        let dir = tempDir("sim5")
        defer { cleanup(dir) }
        let sim = try Self.openSimulator(dir)
        _ = try sim.addSimulated(.directory(try Self.programDir(dir, manifest: ["version": "1.0.0"]))) { _ in false }
        _ = try sim.addSimulated(.directory(try Self.programDir(dir, manifest: ["version": "1.1.0"]))) { _ in true }  // staged
        let plain = try Self.openSimulator(dir, simulator: false)
        func refused(_ body: () throws -> Void) -> Bool {
            do { try body() } catch { return (error as? MiniAppError)?.code == .simulatedPackage }
            return false
        }
        #expect(refused { _ = try plain.runnable("com.example.sim") })
        #expect(refused { _ = try plain.active("com.example.sim") })
        #expect(refused { _ = try plain.activatePending("com.example.sim") })
        #expect(refused { _ = try plain.addSimulated(.directory(try Self.programDir(dir))) { _ in false } })
        #expect(try sim.activatePending("com.example.sim") == SemVer("1.1.0"))
        #expect(refused { _ = try plain.rollback("com.example.sim") })
    }
}
