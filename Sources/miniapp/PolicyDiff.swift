import MiniAppJSON
import MiniAppModel
import MiniAppPackages

/// One difference, and whether it gives programs more (widening) or less (narrowing).
struct DiffLine {
    var widening: Bool
    /// What it is about: `limits.pids`, `syscall ptrace`, `method net.request`, …
    var subject: String
    var change: String

    var json: JSONValue {
        ["kind": .string(widening ? "widening" : "narrowing"), "subject": .string(subject), "change": .string(change)]
    }
}

/// `miniapp policy diff`: what changed between two policy directories, or two versions of one
/// program's package, each line marked as widening or narrowing.
struct PolicyDiff {
    private(set) var lines: [DiffLine] = []

    var hasWidening: Bool { lines.contains { $0.widening } }

    private mutating func add(_ widening: Bool, _ subject: String, _ change: String) {
        lines.append(DiffLine(widening: widening, subject: subject, change: change))
    }

    /// Members of a set added (widening when `addedWidens`) and removed.
    private mutating func sets(_ subject: String, _ old: Set<String>, _ new: Set<String>, addedWidens: Bool = true) {
        for x in new.subtracting(old).sorted() { add(addedWidens, subject, "+ \(x)") }
        for x in old.subtracting(new).sorted() { add(!addedWidens, subject, "- \(x)") }
    }

    private mutating func flag(_ subject: String, _ old: Bool, _ new: Bool, trueIsSafer: Bool = true) {
        guard old != new else { return }
        add(new != trueIsSafer, subject, "\(old) -> \(new)")
    }

    private mutating func number(_ subject: String, _ old: Double, _ new: Double) {
        guard old != new else { return }
        add(new > old, subject, "\(old) -> \(new)")
    }

    // MARK: policy directories

    init(old: LoadedPolicies, new: LoadedPolicies) throws(MiniAppError) {
        let (oj, op, oc) = try old.valid()
        let (nj, np, nc) = try new.valid()
        jail(oj, nj)
        seccomp(SeccompView(op), SeccompView(np))
        catalogue(oc, nc)
        partners(old.merge.set, new.merge.set)
        overrides(old, new, platformOld: oj.limits, platformNew: nj.limits, catalogues: (oc, nc))
    }

    private mutating func jail(_ o: JailPolicy, _ n: JailPolicy) {
        for (name, a, b) in [("mount", o.namespaces.mount, n.namespaces.mount), ("pid", o.namespaces.pid, n.namespaces.pid),
                             ("net", o.namespaces.net, n.namespaces.net), ("ipc", o.namespaces.ipc, n.namespaces.ipc),
                             ("uts", o.namespaces.uts, n.namespaces.uts), ("cgroup", o.namespaces.cgroup, n.namespaces.cgroup)] {
            flag("namespaces.\(name)", a, b)
        }
        limits("limits", o.limits, n.limits)
        sets("mount (read-only host path)", Set(o.filesystem.readOnlyHostPaths), Set(n.filesystem.readOnlyHostPaths))
        sets("mount (/etc file)", Set(o.filesystem.etc), Set(n.filesystem.etc))
        sets("mount (device)", Set(o.filesystem.devices), Set(n.filesystem.devices))
        sets("symlink", Set(o.filesystem.symlinks.map { "\($0.path) -> \($0.target)" }), Set(n.filesystem.symlinks.map { "\($0.path) -> \($0.target)" }))
        number("filesystem.tmpSizeBytes", Double(o.filesystem.tmpSizeBytes), Double(n.filesystem.tmpSizeBytes))
        number("filesystem.tmpInodes", Double(o.filesystem.tmpInodes), Double(n.filesystem.tmpInodes))
        number("filesystem.rootSizeBytes", Double(o.filesystem.rootSizeBytes), Double(n.filesystem.rootSizeBytes))
        let rank: [JailPolicy.LandlockMode: Int] = [.off: 0, .bestEffort: 1, .required: 2]
        if o.landlock.mode != n.landlock.mode {
            add(rank[n.landlock.mode]! < rank[o.landlock.mode]!, "landlock.mode", "\(o.landlock.mode.rawValue) -> \(n.landlock.mode.rawValue)")
        }
        flag("landlock.denyTCP", o.landlock.denyTCP, n.landlock.denyTCP)
        flag("landlock.scopeSignalsAndAbstractSockets", o.landlock.scopeSignalsAndAbstractSockets, n.landlock.scopeSignalsAndAbstractSockets)
        if (o.cgroup.version == .none) != (n.cgroup.version == .none) {
            add(n.cgroup.version == .none, "cgroup.version", "\(o.cgroup.version.rawValue) -> \(n.cgroup.version.rawValue)")
        }
        if o.identity != n.identity { add(true, "identity", "the uid range or rootless ids changed: programs' files change owner (review)") }
        if o.env != n.env { add(true, "env", "the base environment changed (review)") }
    }

    private mutating func limits(_ prefix: String, _ o: JailLimits, _ n: JailLimits) {
        for f in JailLimitField.allCases {
            let a = f.value(in: o), b = f.value(in: n)
            guard a != b else { continue }
            let narrower = f.isNarrowing(b, from: a)
            add(!narrower, "\(prefix).\(f.rawValue)", "\(EffectiveLimits.show(a, f)) -> \(EffectiveLimits.show(b, f)) (\(narrower ? "tightened" : "loosened"))")
        }
    }

    private mutating func seccomp(_ o: SeccompView, _ n: SeccompView) {
        if o.profile.defaultAction != n.profile.defaultAction {
            add(n.profile.defaultAction == .allow || n.profile.defaultAction == .log, "seccomp.defaultAction", "\(o.actionText(o.profile.defaultAction, errnoRet: o.profile.defaultErrnoRet)) -> \(n.actionText(n.profile.defaultAction, errnoRet: n.profile.defaultErrnoRet))")
        }
        for name in o.mentionedNames.union(n.mentionedNames).sorted() {
            let a = o.verdict(name), b = n.verdict(name)
            if a != b {
                add(b > a, "syscall \(name)", "\(a) -> \(b)\(b > a ? " (newly allowed)" : "")")
            } else if a != .denied && a != .allowed && o.conditions(name) != n.conditions(name) {
                add(true, "syscall \(name)", "its argument rules changed (review): \(n.conditions(name).sorted().joined(separator: "; "))")
            }
        }
    }

    private mutating func catalogue(_ o: MethodCatalogue, _ n: MethodCatalogue) {
        sets("method", Set(o.methods.keys), Set(n.methods.keys))
        for name in Set(o.methods.keys).intersection(n.methods.keys).sorted() {
            guard let a = o.methods[name], let b = n.methods[name] else { continue }
            // A permission a method no longer needs widens; a new requirement narrows.
            sets("method \(name) needs", Set(a.permissions), Set(b.permissions), addedWidens: false)
            if a.rateClass != b.rateClass { add(true, "method \(name) class", "\(a.rateClass) -> \(b.rateClass) (review)") }
        }
        sets("permission defined", Set(o.knownPermissions), Set(n.knownPermissions))
        for c in Set(o.classes.keys).union(n.classes.keys).sorted() {
            guard let a = o.classes[c], let b = n.classes[c] else {
                if o.classes[c] == nil { add(true, "rate class \(c)", "added") } else { add(false, "rate class \(c)", "removed") }
                continue
            }
            number("rate class \(c).perSecond", a.perSecond, b.perSecond)
            number("rate class \(c).burst", a.burst, b.burst)
        }
        number("programBudget.perSecond", o.programBudget.perSecond, n.programBudget.perSecond)
        number("programBudget.burst", o.programBudget.burst, n.programBudget.burst)
    }

    private mutating func partners(_ o: PartnerSet, _ n: PartnerSet) {
        sets("partner", Set(o.partners.keys), Set(n.partners.keys))
        for id in Set(o.partners.keys).intersection(n.partners.keys).sorted() {
            guard let a = o.partners[id], let b = n.partners[id] else { continue }
            sets("partner \(id) granted", a.permissions, b.permissions)
            sets("partner \(id) idPrefixes", Set(a.idPrefixes), Set(b.idPrefixes))
            sets("partner \(id) publicKeys", Set(a.publicKeys.map(Self.keyLabel)), Set(b.publicKeys.map(Self.keyLabel)))
        }
    }

    private mutating func overrides(
        _ old: LoadedPolicies, _ new: LoadedPolicies, platformOld: JailLimits, platformNew: JailLimits, catalogues: (MethodCatalogue, MethodCatalogue)
    ) {
        var subjects: [(String, PolicyOverride?, PolicyOverride?)] = []
        for id in Set(old.merge.set.partners.keys).union(new.merge.set.partners.keys).sorted() {
            subjects.append(("partner \(id) overrides", old.merge.set.partners[id]?.overrides, new.merge.set.partners[id]?.overrides))
        }
        let oldPrograms = Dictionary(old.programs.compactMap { p in (try? p.result.get()).map { (p.id, $0) } }, uniquingKeysWith: { a, _ in a })
        let newPrograms = Dictionary(new.programs.compactMap { p in (try? p.result.get()).map { (p.id, $0) } }, uniquingKeysWith: { a, _ in a })
        for id in Set(oldPrograms.keys).union(newPrograms.keys).sorted() {
            subjects.append(("programs/\(id).json", oldPrograms[id], newPrograms[id]))
        }
        for (subject, a, b) in subjects where a != b {
            // Compared as applied: each over its own platform limits.
            let ea = (try? EffectiveLimits.resolve(platform: platformOld, layers: a.map { [(PolicyOrigin(subject), $0)] } ?? []))?.limits ?? platformOld
            let eb = (try? EffectiveLimits.resolve(platform: platformNew, layers: b.map { [(PolicyOrigin(subject), $0)] } ?? []))?.limits ?? platformNew
            limits(subject + " limits", ea, eb)
            if a?.storageQuotaBytes != b?.storageQuotaBytes {
                let (x, y) = (a?.storageQuotaBytes, b?.storageQuotaBytes)
                let loosened = y == nil || (x != nil && y! > x!)
                add(loosened, subject + " storageQuotaBytes", "\(x.map(String.init) ?? "daemon's") -> \(y.map(String.init) ?? "daemon's")")
            }
            sets(subject + " allowedPrivateCIDRs", Set(a?.allowedPrivateCIDRs ?? []), Set(b?.allowedPrivateCIDRs ?? []))
            let ra = (try? EffectiveRates.resolve(catalogue: catalogues.0, layers: a.map { [(PolicyOrigin(subject), $0)] } ?? []))?.lowered ?? [:]
            let rb = (try? EffectiveRates.resolve(catalogue: catalogues.1, layers: b.map { [(PolicyOrigin(subject), $0)] } ?? []))?.lowered ?? [:]
            for c in Set(ra.keys).union(rb.keys).sorted() {
                let (x, y) = (ra[c] ?? catalogues.0.classes[c], rb[c] ?? catalogues.1.classes[c])
                guard let x, let y else { continue }
                number("\(subject) class \(c).perSecond", x.perSecond, y.perSecond)
                number("\(subject) class \(c).burst", x.burst, y.burst)
            }
        }
    }

    /// A short label for a PEM key (its base64 body's last characters).
    static func keyLabel(_ pem: String) -> String {
        let body = pem.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return "key …" + String(body.suffix(16))
    }

    // MARK: packages

    init(old: VerifiedPackage, new: VerifiedPackage) {
        let (a, b) = (old.manifest, new.manifest)
        if a.id != b.id { add(true, "program", "\(a.id) -> \(b.id) (not the same program)") }
        sets("permission declared", Set(a.permissions), Set(b.permissions))
        sets("net.request domain", Set(a.allowedDomains), Set(b.allowedDomains))
        if a.runtime != b.runtime { add(true, "runtime", "\(a.runtime.rawValue) -> \(b.runtime.rawValue) (review)") }
        if old.partner.id != new.partner.id { add(true, "partner", "\(old.partner.id) -> \(new.partner.id)") }
    }

    // MARK: output

    func printText(old: String, new: String) {
        print("--- \(old)\n+++ \(new)")
        for l in lines { print("\(l.widening ? "WIDENING " : "narrowing") \(l.subject): \(l.change)") }
        let w = lines.filter(\.widening).count
        print("\(lines.count) change(s): \(w) widening, \(lines.count - w) narrowing")
    }

    var json: JSONValue {
        ["widening": .bool(hasWidening), "changes": .array(lines.map(\.json))]
    }
}
