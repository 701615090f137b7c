import Foundation
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// One thing lint found.
struct LintFinding {
    enum Severity: String { case invalid, risky }
    var severity: Severity
    /// The file, relative to the policy directory.
    var file: String
    /// A stable code (README "miniapp policy lint").
    var code: String
    var message: String

    var json: JSONValue {
        ["severity": .string(severity.rawValue), "file": .string(file), "code": .string(code), "message": .string(message)]
    }
}

/// `miniapp policy lint`: every file of a policy directory read with the daemon's parsers,
/// then the allowances a reviewer must know about flagged with their reason.
struct PolicyLint {
    let policies: LoadedPolicies
    private(set) var findings: [LintFinding] = []

    init(_ policies: LoadedPolicies) {
        self.policies = policies
        checkJail()
        checkProfiles()
        checkCatalogue()
        checkPartners()
        checkPrograms()
        checkDocs()
    }

    /// 2 invalid, 1 risky, 0 clean.
    var exitCode: Int32 { findings.contains { $0.severity == .invalid } ? 2 : findings.isEmpty ? 0 : 1 }

    private mutating func invalid(_ file: String, _ code: String, _ message: String) {
        findings.append(LintFinding(severity: .invalid, file: file, code: code, message: message))
    }

    private mutating func risky(_ file: String, _ code: String, _ message: String) {
        findings.append(LintFinding(severity: .risky, file: file, code: code, message: message))
    }

    private var catalogue: MethodCatalogue? { try? policies.catalogue.get() }

    // MARK: jail.json

    /// Host trees that hold secrets or the host's live state: none belongs in a worker.
    static let secretHostPaths = ["/etc", "/root", "/home", "/var/lib", "/var/log", "/var/backups", "/run", "/var/run", "/proc", "/sys", "/dev", "/boot", "/srv", "/tmp", "/var/tmp", "/mnt", "/media"]

    private mutating func checkJail() {
        let j: JailPolicy
        switch policies.jail {
        case .failure(let e): return invalid("jail.json", "JAIL_INVALID", e.message)
        case .success(let p): j = p
        }
        if !j.namespaces.net { risky("jail.json", "JAIL_NO_NET_NAMESPACE", "namespaces.net is false: workers share the host's network (every interface, every listening socket, no egress control)") }
        for (on, name) in [(j.namespaces.ipc, "ipc"), (j.namespaces.uts, "uts"), (j.namespaces.cgroup, "cgroup")] where !on {
            risky("jail.json", "JAIL_NAMESPACE_OFF", "namespaces.\(name) is false: workers share the host's \(name) namespace")
        }
        if j.landlock.mode == .off { risky("jail.json", "JAIL_NO_LANDLOCK", "landlock.mode is off: no filesystem or TCP rules under the mounts (one layer of defense in depth gone)") }
        if j.landlock.mode != .off && !j.landlock.denyTCP { risky("jail.json", "JAIL_LANDLOCK_TCP", "landlock.denyTCP is false: TCP bind/connect is left to the network namespace alone") }
        if j.landlock.mode != .off && !j.landlock.scopeSignalsAndAbstractSockets {
            risky("jail.json", "JAIL_LANDLOCK_SCOPE", "landlock.scopeSignalsAndAbstractSockets is false: signals and abstract sockets may leave the worker's domain")
        }
        if j.cgroup.version == .none { risky("jail.json", "JAIL_LIMITS_OFF", "cgroup.version is none: no memory, pids or CPU limit (fork bombs and memory hogs reach the host)") }
        for p in j.filesystem.readOnlyHostPaths {
            let n = JailPathRules.normalized(p)
            if let s = Self.secretHostPaths.first(where: { n == "/" || n == $0 || $0.hasPrefix(n + "/") || n.hasPrefix($0 + "/") }) {
                risky("jail.json", "JAIL_SECRET_BIND", "filesystem.readOnlyHostPaths binds \(p), which holds or is \(s): host secrets or live state become readable by every program")
            }
        }
        if j.seccompProfile.isEmpty { invalid("jail.json", "JAIL_INVALID", "seccompProfile is empty") }
    }

    // MARK: seccomp

    private mutating func checkProfiles() {
        let dir = policies.dir + "/seccomp"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let used = (try? policies.jail.get())?.seccompProfile
        for name in names {
            let file = "seccomp/" + name
            let profile: SeccompProfile
            do { profile = try SeccompProfile.parse(try LoadedPolicies.readFile(dir + "/" + name), source: file) } catch {
                invalid(file, "SECCOMP_INVALID", error.message)
                continue
            }
            let arches = profile.architectures + profile.archMap.flatMap { [$0.architecture] + $0.subArchitectures }
            for n in Set(profile.syscalls.flatMap(\.names)).sorted() where !SeccompCompiler.isKnownSyscall(n, architectures: arches) {
                invalid(file, "SECCOMP_UNKNOWN_SYSCALL", "syscall \"\(n)\" is unknown to libseccomp on every architecture the profile lists (\(arches.isEmpty ? "x86_64" : arches.joined(separator: ", "))): a typo or a stale name")
            }
            do { _ = try SeccompCompiler.compile(profile, source: file) } catch { invalid(file, "SECCOMP_INVALID", error.message) }
            if file == used { checkRisk(SeccompView(profile), file: file) }
        }
        if let used, !names.contains(where: { "seccomp/" + $0 == used }), case .failure(let e)? = policies.profile {
            invalid(used, "SECCOMP_INVALID", e.message)
        }
    }

    /// Risky allowances of the profile the jail uses.
    private mutating func checkRisk(_ v: SeccompView, file: String) {
        if v.profile.defaultAction == .allow || v.profile.defaultAction == .log {
            risky(file, "SECCOMP_DEFAULT_ALLOW", "defaultAction allows every syscall the rules do not name: a denylist misses every new syscall")
        }
        for (names, why) in SeccompView.risky {
            for n in names where v.verdict(n) > .denied {
                if n == "clone3" {
                    risky(file, "SECCOMP_CLONE3", "clone3 is allowed: \(why); answer it with errno 38 (ENOSYS) so libc falls back to clone")
                } else {
                    risky(file, "SECCOMP_RISKY_SYSCALL", "\(n) is \(v.verdict(n)): \(why)")
                }
            }
        }
        if !v.cloneNamespacesChecked {
            risky(file, "SECCOMP_CLONE_NAMESPACES", "clone is allowed without a masked compare keeping the namespace flags (0x7e020000) at 0: a program can create namespaces")
        }
        if !v.tiocstiRefused {
            risky(file, "SECCOMP_IOCTL_TIOCSTI", "ioctl is allowed without refusing TIOCSTI (0x5412) on the low 32 bits: terminal input injection (CVE-2017-5226)")
        }
    }

    // MARK: methods.json

    private mutating func checkCatalogue() {
        if case .failure(let e) = policies.catalogue { invalid("methods.json", e.reason.rawValue, "\(e.path): \(e.message)") }
    }

    // MARK: partners

    private mutating func checkPartners() {
        if let e = policies.partners.unreadable { invalid("partners", "PARTNER_INVALID", e.message) }
        var valid: [(String, PartnerRegistration)] = []
        for entry in policies.partners.entries {
            let file = relative(entry.source)
            guard let r = entry.registration else {
                invalid(file, "PARTNER_INVALID", entry.error?.message ?? "invalid")
                continue
            }
            valid.append((file, r))
            checkPartner(r, file: file)
        }
        for (i, (fa, a)) in valid.enumerated() {
            for (fb, b) in valid[(i + 1)...] {
                for pa in a.idPrefixes {
                    if let pb = b.idPrefixes.first(where: { pa.hasPrefix($0) || $0.hasPrefix(pa) }) {
                        invalid(fa, "PARTNER_PREFIX_OVERLAP", "partner \(a.id) prefix \"\(pa)\" overlaps partner \(b.id) prefix \"\(pb)\" (\(fb)): their overlapping programs are AMBIGUOUS_PARTNER (no install, no launch)")
                    }
                }
            }
        }
    }

    private mutating func checkPartner(_ r: PartnerRegistration, file: String) {
        for (i, pem) in r.publicKeys.enumerated() {
            do { _ = try RSAKey.publicKey(pem: pem) } catch {
                invalid(file, "PARTNER_KEY_INVALID", "publicKeys[\(i)] is not a usable RSA public key (PEM, at least 2048 bits): \(error)")
            }
        }
        if let c = catalogue {
            for p in r.permissions.sorted() where !c.knownPermissions.contains(p) {
                invalid(file, "PARTNER_UNKNOWN_PERMISSION", "permission \"\(p)\" is not defined in methods.json (defined: \(c.knownPermissions.sorted().joined(separator: ", ")))")
            }
        }
        if let o = r.overrides { checkOverride(o, file: file, origin: "partner \(r.id)") }
    }

    // MARK: programs/*.json

    private mutating func checkPrograms() {
        for p in policies.programs {
            switch p.result {
            case .failure(let e): invalid(p.file, "OVERRIDE_INVALID", e.message)
            case .success(let o): checkOverride(o, file: p.file, origin: "program \(p.id)")
            }
        }
    }

    private mutating func checkOverride(_ o: PolicyOverride, file: String, origin: String) {
        if let platform = (try? policies.jail.get())?.limits {
            do { _ = try EffectiveLimits.resolve(platform: platform, layers: [(PolicyOrigin(origin), o)]) } catch {
                invalid(file, "OVERRIDE_WIDENS", error.message)
            }
        }
        if let c = catalogue {
            do { _ = try EffectiveRates.resolve(catalogue: c, layers: [(PolicyOrigin(origin), o)]) } catch {
                invalid(file, "OVERRIDE_WIDENS", error.message)
            }
        }
        // Allowed by design (an operator's decision per partner or program), but a reviewer
        // must see every private network a program can reach.
        for cidr in o.allowedPrivateCIDRs {
            if isValidCIDR(cidr) {
                risky(file, "OVERRIDE_PRIVATE_NETWORK", "\(origin) may reach private network \(cidr) through net.request (an SSRF path into that network; metadata addresses stay refused)")
            } else {
                invalid(file, "OVERRIDE_INVALID", "allowedPrivateCIDRs entry '\(cidr)' is not a CIDR")
            }
        }
    }

    // MARK: Markdown next to the policies

    /// The docs in the directory must not drift from the files: a partner or catalogue example
    /// is parsed like a file, and "`methods.json` (`a`, `b`)" must name defined permissions.
    private mutating func checkDocs() {
        guard let c = catalogue else { return }
        let enumerator = FileManager.default.enumerator(atPath: policies.dir)
        while let rel = enumerator?.nextObject() as? String {
            guard rel.hasSuffix(".md"), let text = try? String(contentsOfFile: policies.dir + "/" + rel, encoding: .utf8) else { continue }
            for name in Self.permissionLists(text) where !c.knownPermissions.contains(name) {
                invalid(rel, "DOC_UNKNOWN_PERMISSION", "names permission \"\(name)\", which methods.json does not define (defined: \(c.knownPermissions.sorted().joined(separator: ", ")))")
            }
            for (i, block) in Self.jsonBlocks(text).enumerated() { checkExample(block, file: rel, index: i, catalogue: c) }
        }
    }

    private mutating func checkExample(_ block: String, file: String, index: Int, catalogue c: MethodCatalogue) {
        let where_ = "\(file) json example \(index + 1)"
        guard let v = try? JSONValue.parse(block), let o = v.objectValue else {
            return invalid(file, "DOC_EXAMPLE_INVALID", "\(where_) is not plain JSON")
        }
        do {
            if o["idPrefixes"] != nil {
                let r = try PartnerRegistration(object: o, source: where_)
                for p in r.permissions.sorted() where !c.knownPermissions.contains(p) {
                    invalid(file, "DOC_UNKNOWN_PERMISSION", "\(where_) grants \"\(p)\", which methods.json does not define")
                }
            } else if o["methods"] != nil {
                do { _ = try MethodCatalogue.parse(Array(block.utf8)) } catch { invalid(file, "DOC_EXAMPLE_INVALID", "\(where_): \(error)") }
            } else if o["limits"] != nil {
                _ = try PolicyOverride.parse(v, source: where_)
            }
        } catch {
            invalid(file, "DOC_EXAMPLE_INVALID", error.message)
        }
    }

    /// Backticked names in "`methods.json` (`a`, `b`, …)".
    static func permissionLists(_ text: String) -> [String] {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        var out: [String] = []
        var rest = flat[...]
        while let r = rest.range(of: "`methods.json` (") {
            let after = rest[r.upperBound...]
            guard let close = after.firstIndex(of: ")") else { break }
            let parts = after[..<close].split(separator: "`", omittingEmptySubsequences: false)
            out += stride(from: 1, to: parts.count, by: 2).map { String(parts[$0]) }.filter { !$0.isEmpty && !$0.contains(" ") }
            rest = after[close...]
        }
        return out
    }

    /// The bodies of ```json fenced blocks.
    static func jsonBlocks(_ text: String) -> [String] {
        var out: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let t = line.trimmingCharacters(in: .whitespaces)
            if current == nil, t == "```json" { current = [] } else if current != nil, t == "```" {
                out.append(current!.joined(separator: "\n"))
                current = nil
            } else if current != nil { current!.append(line) }
        }
        return out
    }

    private func relative(_ path: String) -> String {
        path.hasPrefix(policies.dir + "/") ? String(path.dropFirst(policies.dir.count + 1)) : path
    }

    // MARK: output

    func printText() {
        for f in findings { print("\(f.severity.rawValue.uppercased()) \(f.file): \(f.code): \(f.message)") }
        let n = (invalid: findings.filter { $0.severity == .invalid }.count, risky: findings.filter { $0.severity == .risky }.count)
        let verdict = n.invalid > 0 ? "invalid" : n.risky > 0 ? "risky" : "clean"
        print("\(policies.source.label): \(verdict) (\(n.invalid) invalid, \(n.risky) risky)")
    }

    var json: JSONValue {
        let verdict = exitCode == 2 ? "invalid" : exitCode == 1 ? "risky" : "clean"
        return ["policyDir": .string(policies.source.label), "result": .string(verdict), "findings": .array(findings.map(\.json))]
    }
}
