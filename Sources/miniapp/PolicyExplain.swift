import Foundation
import MiniAppBroker
import MiniAppDaemon
import MiniAppJSON
import MiniAppJail
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// The program `policy explain` describes: from a package (verified as an install would) or
/// from the package store of a state directory (what the next launch runs).
struct ExplainSubject {
    var id: String
    var version: String
    var partnerId: String
    var declared: Set<String>
    var allowedDomains: [String]
    /// Where the package is (the /app bind).
    var appDir: String
    var origin: String

    static func load(_ arg: String, policies: LoadedPolicies, stateDir: String, catalogue: MethodCatalogue) throws(MiniAppError) -> ExplainSubject {
        let options = VerifierOptions(hostVersion: SemVer(PackageCommands.defaultHostVersion)!, knownPermissions: catalogue.knownPermissions)
        if arg.hasSuffix(".zip") || FileSystem.exists(arg) && !Manifest.isValidId(arg) {
            let (v, install) = try verify(arg, policies: policies, options: options)
            return ExplainSubject(
                id: v.manifest.id, version: v.manifest.version.text, partnerId: v.partner.id, declared: Set(v.manifest.permissions),
                allowedDomains: v.manifest.allowedDomains, appDir: "\(StateLayout(root: stateDir).packages)/\(v.manifest.id)/versions/\(v.manifest.version.text)",
                origin: "package \(arg) (verified; install: \(install))")
        }
        let store = try PackageStore(root: StateLayout(root: stateDir).packages, options: options, partners: { policies.merge.set })
        let a = try store.runnable(arg)
        return ExplainSubject(
            id: a.manifest.id, version: a.manifest.version.text, partnerId: a.partner.id, declared: Set(a.manifest.permissions),
            allowedDomains: a.manifest.allowedDomains, appDir: a.directory, origin: "installed in \(stateDir)")
    }
}

extension ExplainSubject {
    /// Verifies as an install would. A package whose only fault is a permission its partner is
    /// not granted (now) is still explained — its methods show the missing grant — with the
    /// install verdict saying it would be refused; every other fault (signature, partner,
    /// manifest) is the error.
    static func verify(_ path: String, policies: LoadedPolicies, options: VerifierOptions) throws(MiniAppError) -> (VerifiedPackage, String) {
        do {
            return (try PackageVerifier(partners: policies.merge.set, options: options).verify(path: path), "would be accepted")
        } catch where error.code == .permissionNotGranted {
            let all = options.knownPermissions
            let widened = try PartnerSet(policies.merge.set.partners.values.map {
                PartnerRegistration(id: $0.id, idPrefixes: $0.idPrefixes, publicKeys: $0.publicKeys, permissions: all, overrides: $0.overrides)
            })
            let v = try PackageVerifier(partners: widened, options: options).verify(path: path)
            return (v, "refused now, \(error.code.rawValue): \(error.message)")
        }
    }
}

/// `miniapp policy explain`: the effective jail and Bridge of one program, computed by the
/// daemon's own code — the mount planner, the override resolution, and the permission table's
/// decision for every method of the catalogue.
struct PolicyExplain {
    let policies: LoadedPolicies
    let subject: ExplainSubject
    let stateDir: String
    let rootless: Bool

    func build() throws(MiniAppError) -> JSONObject {
        let (jail, profile, catalogue) = try policies.valid()
        var out: JSONObject = [
            "program": .string(subject.id), "version": .string(subject.version), "partner": .string(subject.partnerId),
            "source": .string(subject.origin), "policyDir": .string(policies.source.label),
        ]
        out["jail"] = .object(try jailSection(jail, profile))
        out["bridge"] = .object(try bridgeSection(catalogue))
        return out
    }

    // MARK: jail

    private var launch: JailLaunch {
        var l = JailLaunch(programId: subject.id, argv: [])
        let layout = StateLayout(root: stateDir)
        l.appDir = subject.appDir
        l.dataDir = "\(layout.data)/\(subject.id)"
        l.extraReadOnlyBinds = [JailBind(hostPath: layout.sdk, jailPath: "/sdk")]
        return l
    }

    private func jailSection(_ jail: JailPolicy, _ profile: SeccompProfile) throws(MiniAppError) -> JSONObject {
        let ns = jail.namespaces
        var names = [("mount", ns.mount), ("pid", ns.pid), ("net", ns.net), ("ipc", ns.ipc), ("uts", ns.uts), ("cgroup", ns.cgroup)].filter(\.1).map(\.0)
        if rootless { names.append("user") }
        let (uid, uidText) = self.uid(jail)
        let effective = try ProgramOverrides.effectiveLimits(platform: jail.limits, policyDir: policies.dir, programId: subject.id, partners: policies.merge.set)
        let limits: [JSONValue] = JailLimitField.allCases.map { f in
            ["name": .string(f.rawValue), "value": .string(EffectiveLimits.show(f.value(in: effective.limits), f)),
             "from": .string(effective.origins[f]?.label ?? "jail.json")]
        }
        let mounts: [JSONValue] = jail.describeMounts(launch: launch, uid: uid, gid: uid).map { m in
            ["kind": .string(m.kind), "source": .string(m.source), "target": .string(m.target),
             "mode": .string(m.readOnly ? "ro" : "rw"), "flags": .array(m.flags.map { .string($0) })]
        }
        let abi = JailSpawner.landlockABI
        let landlock: [JSONValue] = jail.describeLandlock(abi: abi, launch: launch).map { ["path": .string($0.path), "access": .string($0.access)] }
        return [
            "namespaces": .array(names.map { .string($0) }), "hostname": .string(jail.hostname), "uid": .string(uidText),
            "limits": .array(limits), "mounts": .array(mounts), "seccomp": .object(seccompSection(jail.seccompProfile, profile)),
            "landlock": [
                "mode": .string(jail.landlock.mode.rawValue), "kernelABI": .int(Int64(abi)), "denyTCP": .bool(jail.landlock.denyTCP && abi >= 4),
                "rules": .array(landlock),
            ],
        ]
    }

    /// The program's uid: the one allocated (uids.json) or how it will be.
    private func uid(_ jail: JailPolicy) -> (UInt32, String) {
        if rootless { return (jail.identity.rootlessUid, "\(jail.identity.rootlessUid) inside a user namespace, mapped to the daemon's uid") }
        if let bytes = try? LoadedPolicies.readFile(stateDir + "/jail/uids.json"), let doc = try? JSONValue.parse(bytes),
           let n = doc[subject.id]?.intValue {
            return (UInt32(n), "\(n) (allocated to \(subject.id), \(stateDir)/jail/uids.json)")
        }
        let start = jail.identity.uidRangeStart
        return (start, "allocated at first launch from \(start)..<\(UInt64(start) + UInt64(jail.identity.uidRangeCount)), never shared")
    }

    private func seccompSection(_ file: String, _ profile: SeccompProfile) -> JSONObject {
        let view = SeccompView(profile)
        let groups: [JSONValue] = view.rules.map { r in
            [
                "action": .string(view.actionText(r.action, errnoRet: r.errnoRet)), "names": .array(r.names.map { .string($0) }),
                "when": .string(view.describe(r.args)), "comment": .string(r.comment ?? ""),
            ]
        }
        let deniedRisky = SeccompView.risky.flatMap(\.names).filter { view.verdict($0) == .denied }
        return [
            "profile": .string(file), "default": .string(view.actionText(profile.defaultAction, errnoRet: profile.defaultErrnoRet)),
            "comment": .string(profile.comment ?? ""), "rules": .array(groups),
            "deniedNotable": .array(deniedRisky.map { .string($0) }),
        ]
    }

    // MARK: bridge

    private func bridgeSection(_ catalogue: MethodCatalogue) throws(MiniAppError) -> JSONObject {
        let merge = policies.merge
        let rates = try ProgramOverrides.effectiveRates(catalogue: catalogue, policyDir: policies.dir, programId: subject.id, partners: merge.set)
        let table = PermissionTable(catalogue: catalogue, grants: merge.set.partners.mapValues(\.permissions))
        let caller = CallerIdentity(
            workerId: "explain", programId: subject.id, version: subject.version, partnerId: subject.partnerId,
            declaredPermissions: subject.declared, allowedDomains: subject.allowedDomains)
        let granted = merge.set.partners[subject.partnerId]?.permissions ?? []
        let grantSource = partnerSource()
        var methods: [JSONValue] = []
        for name in catalogue.methods.keys.sorted() {
            guard let spec = catalogue.spec(for: name) else { continue }
            let decision = table.decide(method: name, caller: caller)
            var reasons: [JSONValue] = spec.permissions.map { p in
                [
                    "permission": .string(p), "declared": .bool(subject.declared.contains(p)), "granted": .bool(granted.contains(p)),
                    "grantedBy": granted.contains(p) ? .string(grantSource) : .null,
                ]
            }
            if spec.permissions.isEmpty { reasons = [] }
            let (allowed, why): (Bool, String)
            switch decision {
            case .allowed: (allowed, why) = (true, spec.permissions.isEmpty ? "needs no permission" : "every permission declared and granted")
            case .methodNotFound: (allowed, why) = (false, "not in the catalogue")
            case .notDeclared(let p): (allowed, why) = (false, "needs \(p), which the manifest does not declare")
            case .notGranted(let p): (allowed, why) = (false, "needs \(p), which partner \(subject.partnerId) is not granted now")
            }
            let rate = rates.classes[spec.rateClass]
            methods.append([
                "method": .string(name), "allowed": .bool(allowed), "why": .string(why), "permissions": .array(reasons),
                "provider": .string(spec.provider.rawValue), "class": .string(spec.rateClass),
                "perSecond": .double(rate?.perSecond ?? 0), "burst": .double(rate?.burst ?? 0),
            ])
        }
        let blocked = merge.blocked.first { $0.id == subject.partnerId }
        let layers = try ProgramOverrides.layers(policyDir: policies.dir, programId: subject.id, partners: merge.set)
        let quota: JSONValue = PolicyOverride.storageQuota(layers).map {
            ["bytes": .int(Int64($0.0)), "from": .string("\($0.1.label) (the lower of it and the daemon's quotaBytesPerProgram)")]
        } ?? ["bytes": .null, "from": "the daemon's services.storage.quotaBytesPerProgram"]
        return [
            "declared": .array(subject.declared.sorted().map { .string($0) }),
            "granted": .array(granted.sorted().map { .string($0) }), "grantedBy": .string(grantSource),
            "partnerBlocked": blocked.map { .array($0.problems.map { .string($0) }) } ?? .null,
            "methods": .array(methods), "netRequestDomains": .array(subject.allowedDomains.map { .string($0) }),
            "storageQuotaBytes": quota,
            "privateNetworks": .array(try ProgramOverrides.privateCIDRs(policyDir: policies.dir, programId: subject.id, partners: merge.set).map {
                ["cidr": .string($0.0), "from": .string($0.1.label)]
            }),
            "programBudget": ["perSecond": .double(catalogue.programBudget.perSecond), "burst": .double(catalogue.programBudget.burst)],
            "rateClasses": .array(rates.classes.keys.sorted().map { name in
                [
                    "class": .string(name), "perSecond": .double(rates.classes[name]?.perSecond ?? 0), "burst": .double(rates.classes[name]?.burst ?? 0),
                    "from": .string(rates.origins[name]?.label ?? "methods.json"),
                ]
            }),
        ]
    }

    /// Which source the partner's grants come from.
    private func partnerSource() -> String {
        let file = policies.partners.entries.first { $0.registration?.id == subject.partnerId }?.source
        return file.map { "local file \($0.hasPrefix(policies.dir + "/") ? String($0.dropFirst(policies.dir.count + 1)) : $0)" }
            ?? "partner \(subject.partnerId) (no local file)"
    }
}

/// Plain text of an explanation (the JSON's fields, for a reviewer's terminal).
enum ExplainText {
    static func print(_ o: JSONObject) {
        let s = { (v: JSONValue?) in v?.stringValue ?? "" }
        Swift.print("program \(s(o["program"])) \(s(o["version"])) — partner \(s(o["partner"])) — \(s(o["source"])); policies: \(s(o["policyDir"]))")
        guard let j = o["jail"]?.objectValue, let b = o["bridge"]?.objectValue else { return }
        Swift.print("\nJAIL")
        Swift.print("  namespaces: \((j["namespaces"]?.arrayValue ?? []).map { s($0) }.joined(separator: " "))   hostname: \(s(j["hostname"]))")
        Swift.print("  uid: \(s(j["uid"]))")
        Swift.print("  limits:")
        for l in j["limits"]?.arrayValue ?? [] { Swift.print("    \(s(l["name"])) = \(s(l["value"]))   (from \(s(l["from"])))") }
        Swift.print("  mounts (in order):")
        for m in j["mounts"]?.arrayValue ?? [] {
            let flags = (m["flags"]?.arrayValue ?? []).map { s($0) }.joined(separator: ",")
            Swift.print("    \(s(m["kind"])) \(s(m["source"])) -> \(s(m["target"])) \(s(m["mode"]))\(flags.isEmpty ? "" : " [\(flags)]")")
        }
        if let sc = j["seccomp"]?.objectValue {
            Swift.print("  seccomp: \(s(sc["profile"])); everything not listed: \(s(sc["default"]))")
            for r in sc["rules"]?.arrayValue ?? [] {
                let names = (r["names"]?.arrayValue ?? []).map { s($0) }
                let when = s(r["when"]).isEmpty ? "" : " when \(s(r["when"]))"
                Swift.print("    \(s(r["action"]))\(when): \(names.count > 12 ? "\(names.count) syscalls (\(names.prefix(12).joined(separator: " ")) …)" : names.joined(separator: " "))")
                if !s(r["comment"]).isEmpty { Swift.print("      why: \(s(r["comment"]))") }
            }
            Swift.print("    denied (notable): \((sc["deniedNotable"]?.arrayValue ?? []).map { s($0) }.joined(separator: " "))")
        }
        if let ll = j["landlock"]?.objectValue {
            Swift.print("  landlock: mode \(s(ll["mode"])), kernel ABI \(ll["kernelABI"]?.intValue ?? 0)")
            for r in ll["rules"]?.arrayValue ?? [] { Swift.print("    \(s(r["path"])): \(s(r["access"]))") }
        }
        Swift.print("\nBRIDGE (declared: \((b["declared"]?.arrayValue ?? []).map { s($0) }.joined(separator: ", ")); granted: \((b["granted"]?.arrayValue ?? []).map { s($0) }.joined(separator: ", ")) by \(s(b["grantedBy"])))")
        for m in b["methods"]?.arrayValue ?? [] {
            let mark = m["allowed"]?.boolValue == true ? "✓" : "✗"
            let perms = (m["permissions"]?.arrayValue ?? []).map { p in
                "\(s(p["permission"])): declared \(p["declared"]?.boolValue == true ? "✓" : "✗"), granted \(p["granted"]?.boolValue == true ? "✓ (\(s(p["grantedBy"])))" : "✗")"
            }
            Swift.print("  \(mark) \(s(m["method"])) — \(s(m["why"]))\(perms.isEmpty ? "" : "; " + perms.joined(separator: "; ")) [class \(s(m["class"])): \(m["perSecond"]?.doubleValue ?? 0)/s, burst \(m["burst"]?.doubleValue ?? 0)]")
        }
        Swift.print("  net.request domains: \((b["netRequestDomains"]?.arrayValue ?? []).map { s($0) }.joined(separator: ", "))")
        let nets = (b["privateNetworks"]?.arrayValue ?? []).map { "\(s($0["cidr"])) (\(s($0["from"])))" }
        if !nets.isEmpty { Swift.print("  private networks reachable (operator override): \(nets.joined(separator: ", "))") }
        if let q = b["storageQuotaBytes"]?["bytes"]?.intValue { Swift.print("  storage quota: \(q) bytes (\(s(b["storageQuotaBytes"]?["from"])))") }
        let classes = (b["rateClasses"]?.arrayValue ?? []).map { c in
            "\(s(c["class"])) \(c["perSecond"]?.doubleValue ?? 0)/s burst \(c["burst"]?.doubleValue ?? 0) (\(s(c["from"])))"
        }
        Swift.print("  rate classes: \(classes.joined(separator: "; "))")
        if let blocked = b["partnerBlocked"]?.arrayValue { Swift.print("  partner blocked: \(blocked.map { s($0) }.joined(separator: "; "))") }
    }
}
