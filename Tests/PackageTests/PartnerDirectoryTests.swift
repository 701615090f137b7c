import Foundation
import Glibc
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import Testing

/// `partners/*.json` read file by file, and `PartnerMerge`'s rules: a bad file costs only its
/// own partner (granted nothing, fail closed), every other partner is updated.
@Suite struct PartnerDirectoryTests {
    static func registration(_ id: String, _ permissions: [String], prefix: String? = nil) -> PartnerRegistration {
        PartnerRegistration(id: id, idPrefixes: [prefix ?? id + "."], publicKeys: [TestKeys.partnerPub], permissions: Set(permissions))
    }

    /// A policy dir with `partners/<name>` files.
    final class PolicyDir {
        let path = tempDir("partners")
        init() { try! FileManager.default.createDirectory(atPath: path + "/partners", withIntermediateDirectories: true) }
        deinit { cleanup(path) }
        func put(_ name: String, _ text: String) { write(path + "/partners/" + name, bytes(text)) }
        func put(_ name: String, _ r: PartnerRegistration) { write(path + "/partners/" + name, r.json.serialized()) }
        func remove(_ name: String) { unlink(path + "/partners/" + name) }
        func merge(previous: PartnerMerge? = nil, registry: [PartnerEntry] = []) -> PartnerMerge {
            let scan = PartnerDirectory.scan(policyDir: path)
            return PartnerMerge.merge(local: scan.entries, localUnreadable: scan.unreadable, registry: registry, previous: previous)
        }
    }

    static let key = TestKeys.partnerPub.replacingOccurrences(of: "\n", with: "\\n")

    /// Malformed files (untrusted bytes; negative table): each is refused on its own with
    /// PARTNER_INVALID naming the file, its partner (named by the file) is granted nothing, and
    /// the good partner next to it is unaffected.
    @Test(arguments: [
        ("not json", "{\"id\": \"com.bad\","),
        ("not an object", "[\"com.bad\"]"),
        ("empty file", ""),
        ("unknown member", #"{"id":"com.bad","idPrefixes":["com.bad."],"publicKeys":["-----BEGIN PUBLIC KEY-----\nx"],"permissions":[],"extra":1}"#),
        ("duplicate member", #"{"id":"com.bad","id":"com.bad","idPrefixes":["com.bad."],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[]}"#),
        ("missing id", #"{"idPrefixes":["com.bad."],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[]}"#),
        ("prefix without dot", #"{"id":"com.bad","idPrefixes":["com.bad"],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[]}"#),
        ("no prefixes", #"{"id":"com.bad","idPrefixes":[],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[]}"#),
        ("no keys", #"{"id":"com.bad","idPrefixes":["com.bad."],"publicKeys":[],"permissions":["payment"]}"#),
        ("key not PEM", #"{"id":"com.bad","idPrefixes":["com.bad."],"publicKeys":["ssh-rsa AAAA"],"permissions":[]}"#),
        ("permission not a string", #"{"id":"com.bad","idPrefixes":["com.bad."],"publicKeys":["-----BEGIN PUBLIC KEY-----"],"permissions":[1]}"#),
        ("permissions missing", #"{"id":"com.bad","idPrefixes":["com.bad."],"publicKeys":["-----BEGIN PUBLIC KEY-----"]}"#),
        ("comments", "// a comment\n{\"id\":\"com.bad\"}"),
        ("over 1 MiB", "{\"id\":\"com.bad\",\"pad\":\"" + String(repeating: "x", count: (1 << 20) + 10) + "\"}"),
    ])
    func malformedFileBlocksOnlyItsPartner(_ name: String, _ text: String) throws {
        let dir = PolicyDir()
        dir.put("com.good.json", Self.registration("com.good", ["payment"]))
        dir.put("com.bad.json", Self.registration("com.bad", ["payment"]))
        let before = dir.merge()
        #expect(before.blocked.isEmpty)
        dir.put("com.bad.json", text)
        let after = dir.merge(previous: before)
        #expect(after.set.partners["com.good"]?.permissions == ["payment"], "\(name)")
        let blocked = try #require(after.blocked.first, "\(name)")
        #expect(after.blocked.count == 1)
        #expect(blocked.id == "com.bad")
        #expect(blocked.problems.first?.contains(dir.path + "/partners/com.bad.json: PARTNER_INVALID") == true, "\(blocked.problems)")
        #expect(after.set.partners["com.bad"]?.permissions == [], "fail closed: no grants at all")
        #expect(try after.set.partner(for: "com.bad.app").id == "com.bad", "the identity it had is kept")
    }

    /// Symlinks are not followed, FIFOs are not opened for blocking reads, directories are not files.
    @Test(arguments: ["symlink", "fifo", "directory"])
    func nonRegularFilesAreRefused(_ kind: String) throws {
        let dir = PolicyDir()
        dir.put("com.good.json", Self.registration("com.good", ["payment"]))
        let target = dir.path + "/partners/com.bad.json"
        switch kind {
        case "symlink":
            write(dir.path + "/elsewhere.json", Self.registration("com.bad", ["payment"]).json.serialized())
            #expect(symlink(dir.path + "/elsewhere.json", target) == 0)
        case "fifo": #expect(mkfifo(target, 0o644) == 0)
        default: #expect(mkdir(target, 0o755) == 0)
        }
        let m = dir.merge()
        #expect(m.set.partners["com.good"]?.permissions == ["payment"])
        #expect(m.blocked.map(\.id) == ["com.bad"])
        #expect(m.set.partners["com.bad"] == nil, "never valid: no identity to keep")
        #expect(throws: (any Error).self) { try PartnerDirectory.load(policyDir: dir.path) }
    }

    /// The issue's case: one partner revokes a permission while another's file is broken. The
    /// revocation applies; the broken one loses everything; the log line names the file.
    @Test func revocationIsNotHeldBackByAnotherPartnersTypo() throws {
        let dir = PolicyDir()
        dir.put("com.good.json", Self.registration("com.good", ["payment", "ui"]))
        dir.put("com.bad.json", Self.registration("com.bad", ["payment", "ui"]))
        let before = dir.merge()
        dir.put("com.good.json", Self.registration("com.good", ["ui"]))
        dir.put("com.bad.json", "{ oops")
        let after = dir.merge(previous: before)
        #expect(after.set.partners["com.good"]?.permissions == ["ui"])
        #expect(after.set.partners["com.bad"]?.permissions == [])
        // Fixed again: back to what the file says.
        dir.put("com.bad.json", Self.registration("com.bad", ["ui"]))
        let fixed = dir.merge(previous: after)
        #expect(fixed.blocked.isEmpty)
        #expect(fixed.set.partners["com.bad"]?.permissions == ["ui"])
    }

    /// A file whose name is not a partner id and whose content is garbage is still attributed
    /// to the partner it registered at the previous read.
    @Test func brokenFileIsAttributedByThePreviousRead() throws {
        let dir = PolicyDir()
        dir.put("x_1.json", Self.registration("com.x", ["payment"]))
        let before = dir.merge()
        dir.put("x_1.json", "\u{0}\u{1}garbage")
        let after = dir.merge(previous: before)
        #expect(after.blocked.map(\.id) == ["com.x"])
        #expect(after.set.partners["com.x"]?.permissions == [])
        // With no previous read there is nobody to attribute it to: reported, nothing granted.
        let cold = dir.merge()
        #expect(cold.blocked.isEmpty)
        #expect(cold.unattributed.map(\.source) == [dir.path + "/partners/x_1.json"])
        #expect(cold.set.partners.isEmpty)
    }

    /// Two files registering one id: that partner is blocked (which one is meant is unknowable).
    @Test func duplicateIdBlocksThatPartner() {
        let dir = PolicyDir()
        dir.put("a.json", Self.registration("com.dup", ["payment"]))
        dir.put("b.json", Self.registration("com.dup", ["ui"]))
        dir.put("com.good.json", Self.registration("com.good", ["ui"]))
        let m = dir.merge()
        #expect(m.blocked.map(\.id) == ["com.dup"])
        #expect(m.blocked.first?.problems.first?.contains("registered more than once") == true)
        #expect(m.set.partners["com.good"]?.permissions == ["ui"])
        #expect(m.set.partners["com.dup"] == nil)
    }

    /// `partners` exists but cannot be listed: every partner that came from it is blocked.
    @Test func unreadableDirectoryBlocksItsPartners() {
        let dir = PolicyDir()
        dir.put("com.a.json", Self.registration("com.a", ["payment"]))
        let before = dir.merge(registry: [.valid(Self.registration("com.r", ["ui"]), source: "registry partners[0]")])
        _ = try? FileManager.default.removeItem(atPath: dir.path + "/partners")
        write(dir.path + "/partners", bytes("not a directory"))
        let after = dir.merge(previous: before, registry: [.valid(Self.registration("com.r", ["ui"]), source: "registry partners[0]")])
        #expect(after.blocked.map(\.id) == ["com.a"])
        #expect(after.set.partners["com.a"]?.permissions == [])
        #expect(after.set.partners["com.r"]?.permissions == ["ui"], "registry partners are not affected")
    }

    /// Local files win per partner id; the registry adds the partners it alone knows; a bad
    /// registry entry blocks its partner unless a local file decides for it.
    @Test func localFilesWinPerPartnerId() throws {
        let dir = PolicyDir()
        dir.put("com.both.json", Self.registration("com.both", ["ui"]))
        dir.put("com.fixed.json", Self.registration("com.fixed", ["payment"]))
        let bad = MiniAppError(.partnerInvalid, "registry entry is bad")
        let registry: [PartnerEntry] = [
            .valid(Self.registration("com.both", ["payment", "ui", "geolocation"]), source: "registry partners[0]"),
            .valid(Self.registration("com.remote", ["geolocation"]), source: "registry partners[1]"),
            .invalid(bad, source: "registry partners[2]", claimedIds: ["com.broken"]),
            .invalid(bad, source: "registry partners[3]", claimedIds: ["com.fixed"]),
            .invalid(bad, source: "registry partners[4]", claimedIds: []),
        ]
        let m = dir.merge(registry: registry)
        #expect(m.set.partners["com.both"]?.permissions == ["ui"], "the local file pins the partner")
        #expect(m.origins["com.both"] == .local)
        #expect(m.set.partners["com.remote"]?.permissions == ["geolocation"])
        #expect(m.origins["com.remote"] == .registry)
        #expect(m.set.partners["com.fixed"]?.permissions == ["payment"])
        #expect(m.blocked == [BlockedPartner(id: "com.broken", origin: .registry, problems: ["registry partners[2]: PARTNER_INVALID: registry entry is bad"])])
        #expect(m.unattributed.map(\.source) == ["registry partners[4]"])
        // Removing the local file hands the partner to the registry.
        dir.remove("com.both.json")
        #expect(dir.merge(previous: m, registry: registry).set.partners["com.both"]?.permissions == ["geolocation", "payment", "ui"])
    }

    /// A registry partner whose prefix overlaps a local partner's (either way round) is blocked
    /// and dropped, so every local program keeps exactly one partner; one with its own prefixes
    /// is untouched.
    @Test(arguments: ["com.local.", "com.", "com.local.games."])
    func registryPrefixOverlappingALocalOneIsBlocked(_ prefix: String) throws {
        let dir = PolicyDir()
        dir.put("com.local.json", Self.registration("com.local", ["ui"]))
        let registry: [PartnerEntry] = [
            .valid(Self.registration("com.evil", ["payment"], prefix: prefix), source: "registry partners[0]"),
            .valid(Self.registration("com.remote", ["ui"]), source: "registry partners[1]"),
        ]
        let m = dir.merge(registry: registry)
        #expect(m.set.partners["com.evil"] == nil)
        let b = try #require(m.blocked.first)
        #expect(m.blocked.count == 1 && b.id == "com.evil" && b.origin == .registry)
        #expect(b.problems.first?.contains("overlaps local partner \"com.local\"") == true)
        #expect(try m.set.partner(for: "com.local.games.chess").id == "com.local")
        #expect(try m.set.partner(for: "com.remote.app").id == "com.remote")
    }

    /// The CLI keeps the strict reading: the first bad file is the error.
    @Test func strictLoadNamesTheBadFile() {
        let dir = PolicyDir()
        dir.put("com.good.json", Self.registration("com.good", []))
        dir.put("com.bad.json", "{}")
        #expect {
            try PartnerDirectory.load(policyDir: dir.path)
        } throws: { e in
            (e as? MiniAppError)?.code == .partnerInvalid && (e as? MiniAppError)?.message.contains("com.bad.json") == true
        }
        #expect(PartnerDirectory.scan(policyDir: dir.path + "/nonexistent").entries.isEmpty)
    }
}
