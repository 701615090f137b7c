// Fuzz target: the policy-file parsers that read operator- or registry-supplied documents —
// program override files (policies/programs/ID.json), partner registrations with their
// `overrides` member (the registry's partners document carries the same), jail.json, seccomp
// profiles and the method catalogue. Property: no trap; an accepted override or registration
// serializes to JSON that parses back to the same value, and resolving an accepted override
// against the platform's limits either refuses it or yields limits no looser than the platform's.
import FuzzSupport
import MiniAppJSON
import MiniAppModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let o = try? PolicyOverride.parseFile(bytes, source: "fuzz.json") {
        let again = try? PolicyOverride.parse(o.json, source: "again")
        precondition(again == o, "override does not round-trip through its JSON")
        let platform = JailLimits()
        if let e = try? EffectiveLimits.resolve(platform: platform, layers: [(PolicyOrigin("fuzz"), o)]) {
            for f in JailLimitField.allCases {
                precondition(f.isNarrowing(f.value(in: e.limits), from: f.value(in: platform)), "an override loosened \(f.rawValue)")
            }
        }
    }
    if let r = try? PartnerRegistration.parse(bytes, source: "fuzz.json") {
        let again = try? PartnerRegistration(object: r.json.objectValue ?? [:], source: "again")
        precondition(again == r, "registration does not round-trip through its JSON")
    }
    _ = try? JailPolicy.parse(bytes)
    _ = try? SeccompProfile.parse(bytes, source: "fuzz.json")
    _ = try? MethodCatalogue.parse(bytes)
    return 0
}

runFuzzer(fuzzOne)
