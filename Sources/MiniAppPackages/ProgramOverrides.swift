public import MiniAppModel
internal import MiniAppSystem

/// The operator's overrides that apply to one program: its partner's (`overrides` in the
/// partner registration) and its own (`<policy-dir>/programs/<program-id>.json`), in that
/// order. Read when a worker is about to start, so a changed file reaches the next worker
/// without a restart. The daemon and `miniapp policy explain` both use this, so what explain
/// shows is what the next launch gets.
public enum ProgramOverrides {
    /// The override file of `programId`, or nil when there is none. A file that exists but is
    /// unreadable, a symlink, or invalid is POLICY_INVALID: the launch is refused rather than
    /// run with the platform's looser limits (fail closed).
    public static func programFile(policyDir: String, programId: String) throws(MiniAppError) -> PolicyOverride? {
        guard Manifest.isValidId(programId) else { return nil }
        let path = "\(policyDir)/programs/\(programId).json"
        do { _ = try FileSystem.status(path, followSymlinks: false) } catch {
            if error.isNotFound { return nil }
            throw MiniAppError(.policyInvalid, "cannot read \(path): \(error)", data: ["file": path])
        }
        let bytes: [UInt8]
        do { bytes = try PartnerDirectory.readRegularFile(path) } catch {
            throw MiniAppError(.policyInvalid, "\(path): \(error.message)", data: ["file": path])
        }
        return try PolicyOverride.parseFile(bytes, source: "programs/\(programId).json")
    }

    /// The override layers of `programId` under `partners`, in the order they apply.
    public static func layers(policyDir: String, programId: String, partners: PartnerSet) throws(MiniAppError) -> [(PolicyOrigin, PolicyOverride)] {
        var out: [(PolicyOrigin, PolicyOverride)] = []
        // An unknown or ambiguous partner fails the launch elsewhere; here it has no layer.
        if let partner = try? partners.partner(for: programId), let o = partner.overrides, !o.isEmpty {
            out.append((PolicyOrigin("partner \(partner.id) (its registration's overrides)"), o))
        }
        if let o = try programFile(policyDir: policyDir, programId: programId), !o.isEmpty {
            out.append((PolicyOrigin("program (programs/\(programId).json)"), o))
        }
        return out
    }

    /// The limits the next worker of `programId` gets under `platform`.
    public static func effectiveLimits(platform: JailLimits, policyDir: String, programId: String, partners: PartnerSet) throws(MiniAppError) -> EffectiveLimits {
        try EffectiveLimits.resolve(platform: platform, layers: try layers(policyDir: policyDir, programId: programId, partners: partners))
    }

    /// The extra private networks of `programId` (its partner's, then its own), with their origin.
    public static func privateCIDRs(policyDir: String, programId: String, partners: PartnerSet) throws(MiniAppError) -> [(String, PolicyOrigin)] {
        try layers(policyDir: policyDir, programId: programId, partners: partners).flatMap { origin, o in o.allowedPrivateCIDRs.map { ($0, origin) } }
    }

    /// The rate classes the next worker of `programId` gets under `catalogue`.
    public static func effectiveRates(catalogue: MethodCatalogue, policyDir: String, programId: String, partners: PartnerSet) throws(MiniAppError) -> EffectiveRates {
        try EffectiveRates.resolve(catalogue: catalogue, layers: try layers(policyDir: policyDir, programId: programId, partners: partners))
    }
}
