import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// Which policy directory a command reads: `--policy-dir` when given, else the system directory
/// the units use (/etc/miniappd/policies) when it holds a jail.json, else the policies built
/// into the binary — the same fallback as the daemon, so `miniapp jail` and the policy commands
/// see what a daemon started the same way would enforce.
struct PolicySource {
    /// The directory to read.
    let dir: String
    /// How to name it in output: the path, or "built-in".
    let label: String
    /// A temporary copy of the built-in files, removed by `cleanup()`.
    private let temporary: Bool

    static func resolve(_ explicit: String?) throws(MiniAppError) -> PolicySource {
        if let explicit { return PolicySource(dir: explicit, label: explicit, temporary: false) }
        let system = BuiltInPolicies.systemDirectory
        if FileSystem.exists(system + "/jail.json") { return PolicySource(dir: system, label: system, temporary: false) }
        let dir = NSTemporaryDirectory() + "/miniapp-policies-\(CurrentProcess.pid)-\(UInt32.random(in: 0...UInt32.max))"
        return PolicySource(dir: try BuiltInPolicies.write(to: dir), label: "built-in", temporary: true)
    }

    /// Removes the temporary copy of the built-in policies, if one was written.
    func cleanup() {
        if temporary { try? FileManager.default.removeItem(atPath: dir) }
    }
}

/// A policy directory read with the daemon's own parsers, part by part: a part that does not
/// parse keeps its error (lint reports every one; explain and diff need the parts valid).
struct LoadedPolicies {
    let source: PolicySource
    var jail: Result<JailPolicy, MiniAppError>
    /// The profile jail.json names (nil when jail.json itself is invalid).
    var profile: Result<SeccompProfile, MiniAppError>?
    var catalogue: Result<MethodCatalogue, CatalogueError>
    var partners: PartnerDirectoryScan
    /// The partners as the daemon merges them (local files only: no registry is asked).
    var merge: PartnerMerge
    /// `programs/*.json`: (program id, file name, parsed).
    var programs: [(id: String, file: String, result: Result<PolicyOverride, MiniAppError>)]

    var dir: String { source.dir }

    static func load(_ source: PolicySource) -> LoadedPolicies {
        let dir = source.dir
        let jail = Result { () throws(MiniAppError) in try JailPolicy.parse(try readFile(dir + "/jail.json")) }
        var profile: Result<SeccompProfile, MiniAppError>?
        if case .success(let j) = jail {
            profile = Result { () throws(MiniAppError) in
                try SeccompProfile.parse(try readFile(dir + "/" + j.seccompProfile), source: j.seccompProfile)
            }
        }
        let catalogue = Result { () throws(CatalogueError) in
            let bytes: [UInt8]
            do throws(MiniAppError) { bytes = try readFile(dir + "/methods.json") } catch { throw CatalogueError(.notJSON, at: "$", error.message) }
            return try MethodCatalogue.parse(bytes)
        }
        let scan = PartnerDirectory.scan(policyDir: dir)
        let merge = PartnerMerge.merge(local: scan.entries, localUnreadable: scan.unreadable, registry: [], previous: nil)
        return LoadedPolicies(source: source, jail: jail, profile: profile, catalogue: catalogue, partners: scan, merge: merge,
                              programs: programFiles(dir))
    }

    /// Every `programs/*.json` (not hidden), parsed as the daemon does at a launch.
    static func programFiles(_ dir: String) -> [(id: String, file: String, result: Result<PolicyOverride, MiniAppError>)] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/programs")) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        return names.map { name in
            let id = String(name.dropLast(5))
            let result = Result { () throws(MiniAppError) in
                guard Manifest.isValidId(id) else {
                    throw MiniAppError(.policyInvalid, "programs/\(name): the file name must be a program id followed by .json", data: ["file": name])
                }
                guard let o = try ProgramOverrides.programFile(policyDir: dir, programId: id) else {
                    throw MiniAppError(.policyInvalid, "programs/\(name) cannot be read", data: ["file": name])
                }
                return o
            }
            return (id, "programs/" + name, result)
        }
    }

    /// A policy file's bytes (at most 16 MiB, like the daemon's reader).
    static func readFile(_ path: String) throws(MiniAppError) -> [UInt8] {
        do { return try OwnedFD.open(path).readAll(limit: 16 << 20) } catch {
            throw MiniAppError(.policyInvalid, "cannot read \(path): \(error)", data: ["file": path])
        }
    }

    /// The parts explain and diff need, or the first error (exit 2: run lint for all of them).
    func valid() throws(MiniAppError) -> (JailPolicy, SeccompProfile, MethodCatalogue) {
        let j = try jail.get()
        guard let profile else { throw MiniAppError(.policyInvalid, "no seccomp profile") }
        let p = try profile.get()
        switch catalogue {
        case .success(let c): return (j, p, c)
        case .failure(let e): throw MiniAppError(.policyInvalid, "methods.json: \(e)")
        }
    }
}

/// Writes `value` as one JSON document on stdout.
func printJSON(_ value: JSONValue) {
    print(value.jsonString)
}
