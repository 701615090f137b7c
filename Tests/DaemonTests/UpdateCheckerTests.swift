@testable import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Synchronization
import Testing

/// A registry in memory: answers by URL, records every URL asked for.
final class FakeRegistry: RegistryTransport, Sendable {
    let responses: [String: (Int, [UInt8])]
    let asked = Mutex<[String]>([])
    init(_ responses: [String: (Int, [UInt8])]) { self.responses = responses }
    func get(_ url: String, maxBytes: Int, timeoutMillis: Int) throws(MiniAppError) -> (status: Int, body: [UInt8]) {
        asked.withLock { $0.append(url) }
        return responses[url] ?? (404, [])
    }
}

/// One installed program, com.p.app 1.0.0, on host 2.0.0.
final class FakeStaging: UpdateStaging, Sendable {
    let staged = Mutex<[String]>([])
    let rejected: String?
    init(rejected: String? = nil) { self.rejected = rejected }
    func rejectedVersion(_ id: String) -> String? { rejected }
    func installedIDs() -> [String] { ["com.p.app"] }
    func newestKnownVersion(_ id: String) -> String? { id == "com.p.app" ? "1.0.0" : nil }
    func isNewer(_ candidate: String, than current: String) -> Bool { (SemVer(candidate) ?? SemVer("0.0.0")!) > SemVer(current)! }
    func runsOnHost(minHostVersion: String) -> Bool { SemVer(minHostVersion).map { $0 <= SemVer("2.0.0")! } ?? false }
    func stageUpdate(path: String) throws(MiniAppError) -> Bool {
        staged.withLock { $0.append(path) }
        return true
    }
    func sha256Hex(_ bytes: [UInt8]) -> String { SHA256Hasher.hex(SHA256Hasher.digest(bytes)) }
}

@Suite struct UpdateCheckerTests {
    static let base = "https://registry.test"
    static let zip: [UInt8] = Array("PK fake package".utf8)

    static func versionDoc(
        _ version: String, minHost: String, sha: String = SHA256Hasher.hex(SHA256Hasher.digest(zip)), rollout: Double? = nil
    ) -> [UInt8] {
        var doc: JSONObject = [
            "id": "com.p.app", "version": .string(version), "minHostVersion": .string(minHost), "url": "/pkg/app.zip",
            "sha256": .string(sha), "size": .int(Int64(zip.count)),
        ]
        if let rollout { doc["rollout"] = .double(rollout) }
        return JSONValue.object(doc).serialized()
    }

    func check(_ doc: [UInt8], staging: FakeStaging = FakeStaging()) throws -> (entry: JSONValue?, registry: FakeRegistry, staging: FakeStaging) {
        let registry = FakeRegistry([
            "\(Self.base)/mini-programs/com.p.app/version": (200, doc), "\(Self.base)/pkg/app.zip": (200, Self.zip),
        ])
        let downloads = try TempDir("upd")
        let checker = UpdateChecker(
            registry: Self.base, transport: registry, staging: staging, downloadsDir: downloads.path, timeoutMillis: 1000,
            deviceId: "0123456789abcdef0123456789abcdef")
        return (try checker.check(id: nil).json["updates"]?.arrayValue?.first, registry, staging)
    }

    /// A version this host cannot run is reported (with `to` and `required`) and never downloaded.
    @Test func tooNewForTheHostIsNotDownloaded() throws {
        let (entry, registry, staging) = try check(Self.versionDoc("1.1.0", minHost: "3.0.0"))
        #expect(entry?["to"] == "1.1.0")
        #expect(entry?["from"] == "1.0.0")
        #expect(entry?["staged"] == false)
        #expect(entry?["code"] == "HOST_UPDATE_REQUIRED")
        #expect(entry?["required"] == "3.0.0")
        #expect(registry.asked.withLock { $0 } == ["\(Self.base)/mini-programs/com.p.app/version"], "only the version document")
        #expect(staging.staged.withLock { $0.isEmpty })
    }

    @Test func failureEntriesNameTheTargetVersion() throws {
        let (entry, _, staging) = try check(Self.versionDoc("1.1.0", minHost: "1.0.0", sha: String(repeating: "0", count: 64)))
        #expect(entry?["to"] == "1.1.0")
        #expect(entry?["staged"] == false)
        #expect(entry?["reason"] == "DOWNLOAD_MISMATCH")
        #expect(staging.staged.withLock { $0.isEmpty })
    }

    @Test func fittingUpdateIsStaged() throws {
        let (entry, registry, staging) = try check(Self.versionDoc("1.1.0", minHost: "2.0.0"))
        #expect(entry == ["id": "com.p.app", "from": "1.0.0", "to": "1.1.0", "active": true, "staged": true, "outcome": "activated"])
        #expect(registry.asked.withLock { $0.last } == "\(Self.base)/pkg/app.zip")
        #expect(staging.staged.withLock { $0.count } == 1)
    }

    @Test func noNewerVersionNoEntry() throws {
        #expect(try check(Self.versionDoc("1.0.0", minHost: "1.0.0")).entry == nil)
    }

    /// Rollout 0 and a device outside the fraction: reported, never downloaded.
    @Test(arguments: [0.0, 0.000001])
    func outsideTheRolloutIsNotDownloaded(_ fraction: Double) throws {
        let (entry, registry, staging) = try check(Self.versionDoc("1.1.0", minHost: "1.0.0", rollout: fraction))
        #expect(entry?["outcome"] == "notInRollout")
        #expect(entry?["staged"] == false)
        #expect(entry?["code"] == nil)
        #expect(registry.asked.withLock { $0.count } == 1, "only the version document")
        #expect(staging.staged.withLock { $0.isEmpty })
    }

    @Test func fullRolloutIsTaken() throws {
        #expect(try check(Self.versionDoc("1.1.0", minHost: "1.0.0", rollout: 1)).entry?["outcome"] == "activated")
    }

    /// A version rolled back here (and anything older) is not offered again; a newer one is.
    @Test func rejectedVersionIsNotOfferedAgain() throws {
        let (entry, registry, staging) = try check(Self.versionDoc("1.1.0", minHost: "1.0.0"), staging: FakeStaging(rejected: "1.1.0"))
        #expect(entry?["outcome"] == "rejected")
        #expect(registry.asked.withLock { $0.count } == 1)
        #expect(staging.staged.withLock { $0.isEmpty })
        let newer = try check(Self.versionDoc("1.2.0", minHost: "1.0.0"), staging: FakeStaging(rejected: "1.1.0"))
        #expect(newer.entry?["outcome"] == "activated")
    }
}
