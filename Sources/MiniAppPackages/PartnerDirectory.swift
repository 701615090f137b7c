public import MiniAppModel
import MiniAppJSON
internal import MiniAppSystem

/// What one read of `<policy-dir>/partners` found: one entry per `*.json` file, each valid or
/// not on its own.
public struct PartnerDirectoryScan: Sendable {
    /// One entry per `*.json` file (hidden files skipped), sorted by file name.
    public var entries: [PartnerEntry]
    /// Set when the directory exists but cannot be listed: then nothing in it can be trusted,
    /// and `PartnerMerge` blocks every partner that came from it.
    public var unreadable: MiniAppError?
}

/// Reads partner registrations from `<policy-dir>/partners/*.json` (one partner per file,
/// spec/cli-and-config.md).
public enum PartnerDirectory {
    /// The largest registration file read (a handful of PEM keys is a few KiB).
    public static let maxFileBytes = 1 << 20

    /// Reads every file on its own (the daemon: a bad file must cost only its own partner, see
    /// `PartnerMerge`). A missing directory is no partners.
    public static func scan(policyDir: String) -> PartnerDirectoryScan {
        let dir = policyDir + "/partners"
        let names: [String]
        do { names = try listJSON(dir) } catch { return PartnerDirectoryScan(entries: [], unreadable: error) }
        return PartnerDirectoryScan(entries: names.map { entry(dir + "/" + $0, name: $0) }, unreadable: nil)
    }

    /// All registrations of `policyDir/partners` as a `PartnerSet`, strictly: the first bad file
    /// is an error (the CLI: `miniapp verify` must say what is wrong, not skip it). A missing
    /// directory is an empty set (every package then fails with `UNKNOWN_PARTNER`).
    public static func load(policyDir: String) throws(MiniAppError) -> PartnerSet {
        let scan = scan(policyDir: policyDir)
        if let e = scan.unreadable { throw e }
        var regs: [PartnerRegistration] = []
        for e in scan.entries {
            if let error = e.error { throw error }
            if let r = e.registration { regs.append(r) }
        }
        return try PartnerSet(regs)
    }

    /// One file, judged on its own.
    static func entry(_ path: String, name: String) -> PartnerEntry {
        let bytes: [UInt8]
        do { bytes = try readRegularFile(path) } catch {
            return .invalid(error, source: path, claimedIds: claimedIds(name: name, bytes: nil))
        }
        do {
            return .valid(try PartnerRegistration.parse(bytes, source: path), source: path)
        } catch {
            return .invalid(error, source: path, claimedIds: claimedIds(name: name, bytes: bytes))
        }
    }

    /// Reads a regular file without following a symlink, and without blocking on a FIFO
    /// (`O_NONBLOCK` at open, then the type is checked).
    static func readRegularFile(_ path: String) throws(MiniAppError) -> [UInt8] {
        do {
            let fd = try OwnedFD.open(path, options: [.noFollow, .nonBlocking])
            guard (try? FileSystem.status(descriptor: fd.raw))?.kind == .regular else {
                throw MiniAppError(.partnerInvalid, "\(path) is not a regular file; a registration must be a plain JSON file", data: ["file": path])
            }
            return try fd.readAll(limit: maxFileBytes)
        } catch let e as MiniAppError {
            throw e
        } catch {
            let why = (error as? SystemError)?.isSymlink == true ? "is a symlink (not followed)" : "cannot be read: \(error)"
            throw MiniAppError(.partnerInvalid, "partner registration \(path) \(why)", data: ["file": path])
        }
    }

    /// Whom a broken file speaks for: its `id` member if the JSON gets that far, and its name
    /// without `.json` when that is a partner id.
    static func claimedIds(name: String, bytes: [UInt8]?) -> Set<String> {
        var ids = Set<String>()
        let stem = String(name.dropLast(".json".count))
        if Manifest.isValidId(stem) { ids.insert(stem) }
        if let bytes, let v = try? JSONValue.parse(bytes, options: .strict), let id = v["id"]?.stringValue, !id.isEmpty {
            ids.insert(id)
        }
        return ids
    }

    static func listJSON(_ dir: String) throws(MiniAppError) -> [String] {
        let names: [String]
        do { names = try FileSystem.list(dir) } catch {
            if error.isNoSuchEntry { return [] }
            throw MiniAppError(.partnerInvalid, "cannot list the partners directory \(dir): \(error); fix its permissions", data: ["file": dir])
        }
        return names.filter(isRegistrationFile).sorted()
    }

    /// Whether a file name in `partners/` is read as a registration: `*.json`, not hidden (an
    /// editor's or `mv`'s temporary `.x.json` is not a partner). The directory watch uses the
    /// same rule, so it wakes for exactly the files the scan reads.
    public static func isRegistrationFile(_ name: String) -> Bool { name.hasSuffix(".json") && !name.hasPrefix(".") }
}
