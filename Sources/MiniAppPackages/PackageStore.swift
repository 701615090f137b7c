public import MiniAppModel
internal import MiniAppSystem
#if canImport(Glibc)
import Glibc
#endif

/// The version store in the daemon's state directory.
///
/// Layout (`<root>` = `<state-dir>/packages`):
///
///     <root>/.lock                           flock: one writer at a time, across processes
///     <root>/<id>/state.json                 ProgramState: active / previous / pending
///     <root>/<id>/versions/<version>/        one read-only (0555/0444) tree per version
///     <root>/<id>/versions/.tmp-<random>/    an extraction in progress (never referenced)
///
/// Crash safety: a version directory appears only by `renameat` of a complete, fsynced tree,
/// and becomes active only by the atomic replacement of `state.json`. `kill -9` at any instant
/// leaves the previous `state.json` (previous version active) or the new one (new version
/// active and complete). `recover()` — run by `init` — deletes `.tmp-*` trees and version
/// directories no state references.
///
/// Running programs: the store does not know what runs. The daemon calls `stage` when the
/// program is running and `install` when it is not, and `activatePending` before each launch.
public final class PackageStore: Sendable {
    /// The store directory.
    public let root: String
    private let options: VerifierOptions
    private let partners: @Sendable () -> PartnerSet

    /// Opens (creating) the store at `root` and garbage-collects interrupted installs.
    /// `partners` is asked for the current snapshot at each operation (grants change).
    public init(root: String, options: VerifierOptions, partners: @escaping @Sendable () -> PartnerSet) throws(MiniAppError) {
        self.root = root
        self.options = options
        self.partners = partners
        if mkdir(root, 0o755) != 0 && errno != EEXIST { throw FileTree.fail("mkdir", root) }
        try withLock { rootFD throws(MiniAppError) in recover(rootFD) }
    }

    /// Verifies and installs the package at `path`, making it active now (program not running).
    public func install(path: String, allowDowngrade: Bool = false) throws(MiniAppError) -> InstallOutcome {
        try add(path: path, allowDowngrade: allowDowngrade, stageIf: { _ in false }).outcome
    }

    /// Verifies and adds the package at `path`: staged when `isRunning(id)` says its program
    /// runs (active at its next `activatePending`), else active now. The decision is taken under
    /// the store lock, after verification, so a package never becomes active under a running
    /// program. Returns the program id with the outcome.
    public func add(path: String, allowDowngrade: Bool = false, isRunning: (String) -> Bool) throws(MiniAppError)
        -> (id: String, outcome: InstallOutcome)
    {
        try add(path: path, allowDowngrade: allowDowngrade, stageIf: isRunning)
    }

    /// Verifies and stages the package at `path` (program running): it becomes active at the
    /// next `activatePending`.
    public func stage(path: String, allowDowngrade: Bool = false) throws(MiniAppError) -> InstallOutcome {
        try add(path: path, allowDowngrade: allowDowngrade, stageIf: { _ in true }).outcome
    }

    /// Makes a staged version active (call before launching `id`). Returns it, or nil if none.
    @discardableResult
    public func activatePending(_ id: String) throws(MiniAppError) -> SemVer? {
        try withLock { rootFD throws(MiniAppError) in
            let dir = try programDir(rootFD, id, create: false)
            var state = try readState(dir.raw)
            guard let pending = state.pending else { return nil }
            state = ProgramState(active: pending, previous: state.active, pending: nil)
            try commit(dir.raw, state)
            return pending.version
        }
    }

    /// Swaps the active and previous versions (a second rollback rolls forward); drops any
    /// pending version. Returns the version now active.
    @discardableResult
    public func rollback(_ id: String) throws(MiniAppError) -> SemVer {
        try withLock { rootFD throws(MiniAppError) in
            let dir = try programDir(rootFD, id, create: false)
            let state = try readState(dir.raw)
            guard let prev = state.previous else {
                throw MiniAppError(.packageNotInstalled, "\(id) has no previous version to roll back to", data: ["id": id])
            }
            try commit(dir.raw, ProgramState(active: prev, previous: state.active, pending: nil))
            return prev.version
        }
    }

    /// Removes every version of `id` (rename to a trash name first, so it disappears atomically).
    public func remove(_ id: String) throws(MiniAppError) {
        try withLock { rootFD throws(MiniAppError) in
            _ = try programDir(rootFD, id, create: false)
            let trash = ".trash-" + FileTree.randomSuffix()
            guard renameat(rootFD, id, rootFD, trash) == 0 else { throw FileTree.fail("renameat", id) }
            try FileTree.fsyncFD(rootFD, root)
            FileTree.remove(rootFD, trash)
        }
    }

    /// Every installed program.
    public func list() throws(MiniAppError) -> [InstalledProgram] {
        try withLock { rootFD throws(MiniAppError) in
            var out: [InstalledProgram] = []
            for id in FileTree.list(rootFD).sorted() where Manifest.isValidId(id) {
                let dir = try FileTree.openDir(rootFD, id)
                out.append(InstalledProgram(id: id, state: try readState(dir.raw)))
            }
            return out
        }
    }

    /// The active version of `id`: manifest, read-only directory and current partner. Fails with
    /// `HOST_UPDATE_REQUIRED` if it needs a newer host, `UNKNOWN_PARTNER` if its partner is gone.
    public func active(_ id: String) throws(MiniAppError) -> ActiveProgram {
        let version: SemVer = try withLock { rootFD throws(MiniAppError) in
            let dir = try programDir(rootFD, id, create: false)
            guard let a = try readState(dir.raw).active else {
                throw MiniAppError(.packageNotInstalled, "\(id) has no active version; install it", data: ["id": id])
            }
            return a.version
        }
        let directory = "\(root)/\(id)/versions/\(version.text)"
        let bytes: [UInt8]
        do {
            bytes = try OwnedFD.open(directory + "/manifest.json", O_RDONLY | O_NOFOLLOW).readAll(limit: Manifest.maxBytes)
        } catch {
            throw MiniAppError(.storeFailure, "cannot read the manifest of \(id) \(version): \(error); reinstall it", cause: error)
        }
        let manifest = try Manifest.parse(bytes, requireSignature: !options.allowUnsigned)
        guard manifest.minHostVersion <= options.hostVersion else {
            throw MiniAppError(.hostUpdateRequired, "\(id) \(version) needs host version \(manifest.minHostVersion); this host is \(options.hostVersion). Update the host.", data: ["required": manifest.minHostVersion.text])
        }
        return ActiveProgram(manifest: manifest, directory: directory, partner: try partners().partner(for: id))
    }

    // MARK: internals

    private func add(path: String, allowDowngrade: Bool, stageIf: (String) -> Bool) throws(MiniAppError)
        -> (id: String, outcome: InstallOutcome)
    {
        let archive = try ZipArchive.open(path: path, limits: options.limits)
        let verifier = PackageVerifier(partners: partners(), options: options)
        return try withLock { rootFD throws(MiniAppError) in
            // Verify under the lock so step 8 sees the state we are about to change.
            let pre = try verifier.verify(archive: archive, installedVersion: nil, allowDowngrade: true)
            let id = pre.manifest.id
            let stage = stageIf(id)
            let dir = try programDir(rootFD, id, create: true)
            var state = try readState(dir.raw)
            if let active = state.active, pre.manifest.version < active.version, !allowDowngrade {
                throw MiniAppError(.downgrade, "\(pre.manifest.id) \(pre.manifest.version) is older than the active \(active.version); pass --allow-downgrade to install it anyway", data: ["active": active.version.text])
            }
            CrashPoint.hit("verified")
            let new = StoredVersion(version: pre.manifest.version, digest: pre.contentDigest)
            if let outcome = try reuse(dir.raw, &state, new, stage: stage) { return (id, outcome) }
            let versions = try FileTree.openDir(dir.raw, "versions")
            FileTree.remove(versions.raw, new.version.text)  // an unreferenced leftover, if any
            try PackageExtractor.extract(pre, parentFD: versions.raw, name: new.version.text)
            if stage {
                state.pending = new
            } else {
                state = ProgramState(active: new, previous: state.active, pending: nil)
            }
            try commit(dir.raw, state)
            return (id, stage ? .staged(new.version) : .activated(new.version))
        }
    }

    /// Same version already present: identical content is reused, different content refused.
    private func reuse(_ dirFD: Int32, _ state: inout ProgramState, _ new: StoredVersion, stage: Bool) throws(MiniAppError) -> InstallOutcome? {
        let slots = [state.active, state.pending, state.previous].compactMap { $0 }
        guard let same = slots.first(where: { $0.version == new.version }),
            faccessat(dirFD, "versions/" + same.version.text + "/manifest.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0
        else { return nil }
        guard same.digest == new.digest else {
            throw MiniAppError(.alreadyInstalled, "version \(new.version) is already installed with different content; publish a new version number", data: ["version": new.version.text])
        }
        if state.active == same { return .unchanged(new.version) }
        if stage {
            state.pending = same
        } else {
            state = ProgramState(active: same, previous: state.active, pending: nil)
        }
        try commit(dirFD, state)
        return stage ? .staged(new.version) : .activated(new.version)
    }

    private func commit(_ dirFD: Int32, _ state: ProgramState) throws(MiniAppError) {
        try FileTree.writeAtomically(dirFD, "state.json", state.serialized())
        CrashPoint.hit("activated")
        collect(dirFD, keep: state.referenced)
    }

    private func readState(_ dirFD: Int32) throws(MiniAppError) -> ProgramState {
        guard let bytes = try FileTree.readFile(dirFD, "state.json", limit: 1 << 16) else { return ProgramState() }
        guard let s = ProgramState.parse(bytes) else {
            throw MiniAppError(.storeFailure, "state.json of a program is corrupt; remove and reinstall the program")
        }
        return s
    }

    private func programDir(_ rootFD: Int32, _ id: String, create: Bool) throws(MiniAppError) -> OwnedFD {
        guard Manifest.isValidId(id) else { throw MiniAppError(.packageNotInstalled, "\"\(id)\" is not a program id", data: ["id": id]) }
        if create {
            try FileTree.makeDir(rootFD, id, mode: 0o755, exclusive: false)
            let dir = try FileTree.openDir(rootFD, id)
            try FileTree.makeDir(dir.raw, "versions", mode: 0o755, exclusive: false)
            return dir
        }
        let fd = openat(rootFD, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw MiniAppError(.packageNotInstalled, "\(id) is not installed", data: ["id": id]) }
        return OwnedFD(adopting: fd)
    }

    /// Deletes version directories not in `keep`, and `.tmp-*` extractions.
    private func collect(_ dirFD: Int32, keep: Set<String>) {
        guard let versions = try? FileTree.openDir(dirFD, "versions") else { return }
        for name in FileTree.list(versions.raw) where !keep.contains(name) {
            FileTree.remove(versions.raw, name)
        }
        _ = fsync(versions.raw)
    }

    /// Startup garbage collection of interrupted installs and removals.
    private func recover(_ rootFD: Int32) {
        for name in FileTree.list(rootFD) {
            if name.hasPrefix(".trash-") { FileTree.remove(rootFD, name); continue }
            guard Manifest.isValidId(name), let dir = try? FileTree.openDir(rootFD, name) else { continue }
            _ = unlinkat(dir.raw, "state.json.tmp", 0)
            let state = (try? readState(dir.raw)) ?? ProgramState()
            collect(dir.raw, keep: state.referenced)
        }
    }

    private func withLock<T>(_ body: (Int32) throws(MiniAppError) -> T) throws(MiniAppError) -> T {
        let rootFD = try FileTree.openDir(AT_FDCWD, root)
        let lockFD = openat(rootFD.raw, ".lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw FileTree.fail("openat", root + "/.lock") }
        let lock = OwnedFD(adopting: lockFD)
        while flock(lock.raw, LOCK_EX) != 0 {
            if errno != EINTR { throw FileTree.fail("flock", root + "/.lock") }
        }
        return try body(rootFD.raw)
    }
}
