import MiniAppJSON
import MiniAppModel
import Testing

/// Operator override documents (`programs/ID.json`, a partner's `overrides`): parsed strictly,
/// and only ever lower than the platform's limits.
@Suite struct PolicyOverrideTests {
    /// Hostile or mistaken documents, each refused as POLICY_INVALID naming the field.
    static let bad: [(String, String)] = [
        ("", ""),
        ("// note\n{}", ""),
        ("[]", ""),
        (#"{"limits": []}"#, "limits"),
        (#"{"limit": {"pids": 8}}"#, "limit"),
        (#"{"limits": {"pid": 8}}"#, "limits.pid"),
        (#"{"limits": {"pids": 1}}"#, "limits.pids"),
        (#"{"limits": {"pids": "8"}}"#, "limits.pids"),
        (#"{"limits": {"pids": -8}}"#, "limits.pids"),
        (#"{"limits": {"memoryBytes": 1e400}}"#, ""),
        (#"{"limits": {"memoryBytes": 1024}}"#, "limits.memoryBytes"),
        (#"{"limits": {"wallClockSeconds": 1e9}}"#, "limits.wallClockSeconds"),
        (#"{"limits": {"cpuPercent": 100001}}"#, "limits.cpuPercent"),
        (#"{"comment": 5}"#, "comment"),
        (#"{"limits": {"pids": 8}, "limits": {"pids": 9}}"#, ""),
        (#"{"limits": {"comment": ["x"]}}"#, "limits.comment"),
        (#"{"allowedPrivateCIDRs": ["10.0.0.0"]}"#, "allowedPrivateCIDRs[0]"),
        (#"{"allowedPrivateCIDRs": ["10.0.0.0/33"]}"#, "allowedPrivateCIDRs[0]"),
        (#"{"allowedPrivateCIDRs": ["fd00::/129"]}"#, "allowedPrivateCIDRs[0]"),
        (#"{"allowedPrivateCIDRs": ["example.com/8"]}"#, "allowedPrivateCIDRs[0]"),
        (#"{"allowedPrivateCIDRs": "10.0.0.0/8"}"#, "allowedPrivateCIDRs"),
        (#"{"storageQuotaBytes": -1}"#, "storageQuotaBytes"),
        (#"{"storageQuotaBytes": "1M"}"#, "storageQuotaBytes"),
        (#"{"storageQuotaBytes": 2199023255553}"#, "storageQuotaBytes"),
    ]

    @Test("malformed override files are refused", arguments: bad)
    func refused(_ text: String, _ field: String) {
        do {
            _ = try PolicyOverride.parseFile(Array(text.utf8), source: "programs/p.json")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .policyInvalid, "\(error)")
            #expect(error.data["field"] == field, "\(text): \(error)")
            #expect(error.message.contains("programs/p.json"), "\(error)")
        }
    }

    @Test func onlyTheGivenMembersAreOverridden() throws {
        let o = try PolicyOverride.parseFile(Array(#"{"comment": "why", "limits": {"pids": 16, "wallClockSeconds": 30}}"#.utf8), source: "p")
        #expect(o.limits == [.pids: 16, .wallClockSeconds: 30])
    }

    static let widening: [(String, String)] = [
        (#"{"limits": {"pids": 65}}"#, "pids"),
        (#"{"limits": {"memoryBytes": 536870912}}"#, "memoryBytes"),
        (#"{"limits": {"cpuPercent": 0}}"#, "cpuPercent"),
        (#"{"limits": {"cpuPercent": 200}}"#, "cpuPercent"),
        (#"{"limits": {"openFiles": 1024}}"#, "openFiles"),
    ]

    @Test("an override that would loosen the platform is refused, not clamped", arguments: widening)
    func wideningRefused(_ text: String, _ member: String) throws {
        let o = try PolicyOverride.parseFile(Array(text.utf8), source: "p")
        #expect(throws: MiniAppError.self) { try EffectiveLimits.resolve(platform: JailLimits(), layers: [(PolicyOrigin("p"), o)]) }
        do {
            _ = try EffectiveLimits.resolve(platform: JailLimits(), layers: [(PolicyOrigin("p"), o)])
        } catch {
            #expect(error.code == .policyInvalid && error.data["field"] == "limits.\(member)", "\(error)")
        }
    }

    @Test func theStrictestLayerWinsAndNamesItsOrigin() throws {
        var platform = JailLimits()
        platform.wallClockSeconds = 0
        let partner = PolicyOverride(limits: [.pids: 32, .memoryBytes: Double(128 << 20), .wallClockSeconds: 600])
        let program = PolicyOverride(limits: [.pids: 16, .memoryBytes: Double(192 << 20)])
        let e = try EffectiveLimits.resolve(platform: platform, layers: [(PolicyOrigin("partner"), partner), (PolicyOrigin("program"), program)])
        #expect(e.limits.pids == 16 && e.origins[JailLimitField.pids] == PolicyOrigin("program"))
        #expect(e.limits.memoryBytes == 128 << 20 && e.origins[JailLimitField.memoryBytes] == PolicyOrigin("partner"))
        #expect(e.limits.wallClockSeconds == 600, "any wall-clock limit narrows an unlimited one")
        #expect(e.limits.openFiles == 256 && e.origins[JailLimitField.openFiles] == PolicyOrigin.platform)
    }

    @Test func partnerRegistrationsCarryOverridesAndRoundTrip() throws {
        let text = #"{"id": "com.p", "idPrefixes": ["com.p."], "publicKeys": ["-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----\n"], "permissions": [], "description": "Partner P", "overrides": {"limits": {"pids": 8}}}"#
        let r = try PartnerRegistration.parse(Array(text.utf8), source: "p.json")
        #expect(r.overrides?.limits == [.pids: 8])
        #expect(try PartnerRegistration(object: r.json.objectValue ?? [:], source: "again") == r)
        for bad in [#""overrides": {"limits": {"pids": 0}}"#, #""overrides": 3"#, #""overrides": {"grants": []}"#, #""description": 3"#] {
            let doc = #"{"id": "com.p", "idPrefixes": ["com.p."], "publicKeys": ["-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----\n"], "permissions": [], "# + bad + "}"
            #expect(throws: MiniAppError.self, "\(bad)") { try PartnerRegistration.parse(Array(doc.utf8), source: "p.json") }
        }
    }

    static let catalogue: MethodCatalogue = try! MethodCatalogue.parse(Array("""
        {"version": 1, "permissions": {}, "programBudget": {"perSecond": 100, "burst": 100},
         "classes": {"net": {"perSecond": 20, "burst": 40}, "log": {"perSecond": 100, "burst": 500}}, "methods": {}}
        """.utf8))

    static let badClasses: [(String, String)] = [
        (#"{"classes": {"net": {"perSecond": 5}}}"#, "classes.net"),
        (#"{"classes": {"net": {"perSecond": 0, "burst": 1}}}"#, "classes.net.perSecond"),
        (#"{"classes": {"net": {"perSecond": 1, "burst": 0.5}}}"#, "classes.net.burst"),
        (#"{"classes": {"net": {"perSecond": 1, "burst": 2, "max": 3}}}"#, "classes.net.max"),
        (#"{"classes": {"net": 5}}"#, "classes.net"),
        (#"{"classes": []}"#, "classes"),
    ]

    @Test("malformed rate class overrides are refused", arguments: badClasses)
    func badClass(_ text: String, _ field: String) {
        do {
            _ = try PolicyOverride.parseFile(Array(text.utf8), source: "p")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .policyInvalid && error.data["field"] == field, "\(text): \(error)")
        }
    }

    @Test func rateClassesOnlyNarrowAndNameTheirOrigin() throws {
        let partner = try PolicyOverride.parseFile(Array(#"{"classes": {"net": {"perSecond": 5, "burst": 40}}}"#.utf8), source: "p")
        let program = try PolicyOverride.parseFile(Array(#"{"classes": {"net": {"perSecond": 10, "burst": 10}}}"#.utf8), source: "q")
        let e = try EffectiveRates.resolve(catalogue: Self.catalogue, layers: [(PolicyOrigin("partner"), partner), (PolicyOrigin("program"), program)])
        #expect(e.classes["net"] == RateLimit(perSecond: 5, burst: 10))
        #expect(e.origins["net"] == PolicyOrigin("program") && e.origins["log"] == nil)
        #expect(e.lowered.keys.sorted() == ["net"])
        for bad in [#"{"classes": {"net": {"perSecond": 21, "burst": 1}}}"#, #"{"classes": {"net": {"perSecond": 1, "burst": 41}}}"#, #"{"classes": {"ui": {"perSecond": 1, "burst": 1}}}"#] {
            let o = try PolicyOverride.parseFile(Array(bad.utf8), source: "p")
            #expect(throws: MiniAppError.self, "\(bad)") { try EffectiveRates.resolve(catalogue: Self.catalogue, layers: [(PolicyOrigin("p"), o)]) }
        }
    }

    @Test func aRegistryEntryCannotOpenPrivateNetworksButALocalFileCan() {
        let o = PolicyOverride(limits: [.pids: 8], allowedPrivateCIDRs: ["10.0.0.0/8"])
        let key = "-----BEGIN PUBLIC KEY-----\nAA\n-----END PUBLIC KEY-----\n"
        let reg = PartnerRegistration(id: "com.r", idPrefixes: ["com.r."], publicKeys: [key], permissions: [], overrides: o)
        let loc = PartnerRegistration(id: "com.l", idPrefixes: ["com.l."], publicKeys: [key], permissions: [], overrides: o)
        let m = PartnerMerge.merge(local: [.valid(loc, source: "l.json")], registry: [.valid(reg, source: "registry partners[0]")], previous: nil)
        #expect(m.set.partners["com.r"]?.overrides?.allowedPrivateCIDRs == [])
        #expect(m.set.partners["com.r"]?.overrides?.limits == [.pids: 8], "the narrowing part stays")
        #expect(m.set.partners["com.l"]?.overrides?.allowedPrivateCIDRs == ["10.0.0.0/8"])
    }
}
