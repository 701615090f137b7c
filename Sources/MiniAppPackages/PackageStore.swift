public import MiniAppModel
internal import MiniAppSystem
import Synchronization

/// The version store in the daemon's state directory.
///
/// Layout (`<root>` = `<state-dir>/packages`):
///
///     <root>/.lock                           flock: one writer at a time, across processes
///     <root>/<id>/state.json                 ProgramState: active / previous / pending
///     <root>/<id>/versions/<version>/        one read-only (0555/0444) tree per version
///     <root>/.staging/<random>/tree          an extraction in progress (flocked by its installer)
///
/// Locking: verification and extraction run without the store lock (they take as long as a
/// package is big, and every launch takes the lock to read and activate); the lock is held
/// only to re-check the state and commit: one rename of the extracted tree, one atomic
/// replacement of `state.json`.
///
/// Crash safety: a version directory appears only by `renameat` of a complete, fsynced tree,
/// and becomes active only by the atomic replacement of `state.json`. `kill -9` at any instant
/// leaves the previous `state.json` (previous version active) or the new one (new version
/// active and complete). `recover()` — run by `init` — deletes staging entries no live
/// installer holds, `.tmp-*` trees and version directories no state references.
///
/// Running programs: the store does not know what runs. The daemon calls `stage` when the
/// program is running and `install` when it is not, and `activatePending` before each launch.
public final class PackageStore: Sendable {
    /// The store directory.
    public let root: String
    private let settings: Mutex<VerifierOptions>
    private let partners: @Sendable () -> PartnerSet
    /// Inflates in a helper process when set (the daemon's store); in this process otherwise
    /// (the CLI's offline store, library users).
    public let extractionHelper: ExtractionHelper?

    /// The verifier options now (host version, known permissions, limits).
    public var options: VerifierOptions { settings.withLock { $0 } }

    /// Opens (creating) the store at `root` and garbage-collects interrupted installs.
    /// `partners` is asked for the current snapshot at each operation (grants change).
    public init(root: String, options: VerifierOptions, extractionHelper: ExtractionHelper? = nil,
                partners: @escaping @Sendable () -> PartnerSet) throws(MiniAppError) {
        self.root = root
        self.settings = Mutex(options)
        self.partners = partners
        self.extractionHelper = extractionHelper
        do { try FileSystem.makeDirectory(root, mode: 0o755) } catch { throw FileTree.fail(error) }
        try withLock { rootFD throws(MiniAppError) in recover(rootFD) }
    }

    /// Replaces the permission names installs accept (the method catalogue was reloaded, SIGHUP).
    /// Installed versions are not re-checked: the broker's permission table still decides
    /// every call.
    public func setKnownPermissions(_ names: Set<String>) { settings.withLock { $0.knownPermissions = names } }

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

    /// Like `add(path:…)` for an archive already read (from a descriptor a control client
    /// passed). `deadline` (monotonic nanoseconds, `monotonicNanos()`) bounds the install: it is
    /// checked before extraction and again before the commit, so an install that overran never
    /// commits and is answered with TIMEOUT.
    public func add(archive: ZipArchive, allowDowngrade: Bool = false, deadline: UInt64? = nil, isRunning: (String) -> Bool)
        throws(MiniAppError) -> (id: String, outcome: InstallOutcome)
    {
        try add(archive: archive, simulated: false, allowDowngrade: allowDowngrade, deadline: deadline, stageIf: isRunning)
    }

    /// Verifies and stages the package at `path` (program running): it becomes active at the
    /// next `activatePending`.
    public func stage(path: String, allowDowngrade: Bool = false) throws(MiniAppError) -> InstallOutcome {
        try add(path: path, allowDowngrade: allowDowngrade, stageIf: { _ in true }).outcome
    }

    /// Makes a staged version active (call before launching `id`). Returns it, or nil if none.
    @discardableResult
    public func activatePending(_ id: String) throws(MiniAppError) -> SemVer? {
        try activateStaged(id)?.activated
    }

    /// Makes a staged version active, like `activatePending`, and says which version it replaced.
    public func activateStaged(_ id: String) throws(MiniAppError) -> (activated: SemVer, previous: SemVer?)? {
        try withLock { rootFD throws(MiniAppError) in
            let dir = try programDir(rootFD, id, create: false)
            let state = try readState(dir.raw)
            guard let pending = state.pending else { return nil }
            try refuseSimulated(pending, id)
            try commit(dir.raw, ProgramState(active: pending, previous: state.active, pending: nil, rejected: state.rejected))
            return (pending.version, state.active?.version)
        }
    }

    /// Crash-loop rollback: when `version` is still the active version of `id` and a previous
    /// one is kept, makes the previous one active and records `version` as rejected (the update
    /// checker will not offer it again). Returns the version now active, or nil when the state
    /// moved on meanwhile (another version active, nothing to go back to): nothing is changed.
    public func rollbackRejecting(_ id: String, version: SemVer, reason: String) throws(MiniAppError) -> SemVer? {
        try withLock { rootFD throws(MiniAppError) in
            let dir = try programDir(rootFD, id, create: false)
            let state = try readState(dir.raw)
            guard let active = state.active, active.version == version, let prev = state.previous else { return nil }
            try commit(dir.raw, ProgramState(active: prev, previous: active, pending: nil, rejected: RejectedVersion(version: version, reason: reason)))
            return prev.version
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
            try refuseSimulated(prev, id)
            try commit(dir.raw, ProgramState(active: prev, previous: state.active, pending: nil))
            return prev.version
        }
    }

    /// Removes every version of `id` (rename to a trash name under the lock, so it disappears
    /// atomically; the tree itself is deleted after the lock is released).
    public func remove(_ id: String) throws(MiniAppError) {
        let rootFD = try FileTree.openDir(DirectoryTree.workingDirectory, root)
        let trash = ".trash-" + FileTree.randomSuffix()
        try withLock { rootFD throws(MiniAppError) in
            _ = try programDir(rootFD, id, create: false)
            try FileTree.rename(rootFD, id, to: rootFD, trash)
            try FileTree.fsyncFD(rootFD, root)
        }
        FileTree.remove(rootFD.raw, trash)
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
        let state = try installedState(id)
        guard let a = state.active else {
            throw MiniAppError(.packageNotInstalled, "\(id) has no active version; install it", data: ["id": id])
        }
        try refuseSimulated(a, id)
        let manifest = try manifest(id, a)
        let host = options.hostVersion
        guard manifest.minHostVersion <= host else { throw Self.hostTooOld(id, needs: [manifest.minHostVersion], host: host) }
        return ActiveProgram(
            manifest: manifest, directory: directory(id, a.version), partner: try partner(manifest, a), simulated: a.simulated)
    }

    /// What a launch of `id` runs: the active version when this host can run it, else the
    /// newest other installed version that it can (spec: launch is refused only when "no
    /// installed version runs on this host"). The state is not changed: the active version
    /// stays the one the operator chose and runs again once the host is updated.
    /// `HOST_UPDATE_REQUIRED` when none fits, `data.required` = the lowest host version that
    /// would run one of them.
    public func runnable(_ id: String) throws(MiniAppError) -> ActiveProgram {
        let state = try installedState(id)
        guard let active = state.active else {
            throw MiniAppError(.packageNotInstalled, "\(id) has no active version; install it", data: ["id": id])
        }
        let others = [state.previous, state.pending].compactMap { $0 }.filter { $0.version != active.version }
        let host = options.hostVersion
        var needs: [SemVer] = []
        try refuseSimulated(active, id)
        for (i, candidate) in ([active] + others.sorted { $0.version > $1.version }).enumerated() {
            if candidate.simulated && !options.allowSimulated { continue }
            // The active version must be readable; a damaged fallback is merely skipped.
            guard let m = i == 0 ? try manifest(id, candidate) : try? manifest(id, candidate) else { continue }
            if m.minHostVersion <= host {
                return ActiveProgram(
                    manifest: m, directory: directory(id, candidate.version), partner: try partner(m, candidate),
                    simulated: candidate.simulated)
            }
            needs.append(m.minHostVersion)
        }
        throw Self.hostTooOld(id, needs: needs, host: host)
    }

    private func installedState(_ id: String) throws(MiniAppError) -> ProgramState {
        try withLock { rootFD throws(MiniAppError) in
            let dir = try programDir(rootFD, id, create: false)  // bound: its fd must outlive readState
            return try readState(dir.raw)
        }
    }

    private func directory(_ id: String, _ version: SemVer) -> String { "\(root)/\(id)/versions/\(version.text)" }

    /// A simulated version in a daemon that is not a simulator: refused, whatever the
    /// operation (launch, activation, rollback). It was never signed: only the simulator that
    /// installed it may run it.
    private func refuseSimulated(_ v: StoredVersion, _ id: String) throws(MiniAppError) {
        guard v.simulated, !options.allowSimulated else { return }
        throw MiniAppError(
            .simulatedPackage,
            "\(id) \(v.version) was installed unsigned by a simulator daemon (miniappd --simulator); this daemon never runs it: install a signed package (miniapp pack) or remove it",
            data: ["id": id, "version": v.version.text])
    }

    /// The partner of an installed version now; a simulated one no partner file claims has its
    /// simulator partner (granted what its manifest declares).
    private func partner(_ m: Manifest, _ v: StoredVersion) throws(MiniAppError) -> PartnerRegistration {
        do { return try partners().partner(for: m.id) } catch {
            guard v.simulated, error.code == .unknownPartner else { throw error }
            return PartnerRegistration.simulator(for: m)
        }
    }

    /// The manifest of an installed version, read back from its read-only directory (unsigned
    /// only for a simulated version).
    private func manifest(_ id: String, _ stored: StoredVersion) throws(MiniAppError) -> Manifest {
        let version = stored.version
        let bytes: [UInt8]
        do {
            bytes = try OwnedFD.open(directory(id, version) + "/manifest.json", options: .noFollow).readAll(limit: Manifest.maxBytes)
        } catch {
            throw MiniAppError(.storeFailure, "cannot read the manifest of \(id) \(version): \(error); reinstall it", cause: error)
        }
        return try Manifest.parse(bytes, requireSignature: !(options.allowUnsigned || stored.simulated))
    }

    private static func hostTooOld(_ id: String, needs: [SemVer], host: SemVer) -> MiniAppError {
        let required = needs.min() ?? host
        return MiniAppError(
            .hostUpdateRequired,
            "no installed version of \(id) runs on this host (\(host)); it needs host version \(required). Update the host.",
            data: ["required": required.text])
    }

    // MARK: internals

    private func add(path: String, allowDowngrade: Bool, stageIf: (String) -> Bool) throws(MiniAppError)
        -> (id: String, outcome: InstallOutcome)
    {
        try add(archive: ZipArchive.open(path: path, limits: options.limits), simulated: false, allowDowngrade: allowDowngrade, deadline: nil, stageIf: stageIf)
    }

    /// Installs an **unsigned** program (a simulator daemon only, else `SIMULATED_PACKAGE`): a
    /// directory read directly, or the zip a loopback dev server sent. Every other check of
    /// verification still runs (archive structure and limits, paths, manifest schema, known
    /// and granted permissions, entry point); a program no partner file claims is granted what
    /// its manifest declares (`PartnerRegistration.simulator`). The version is stored as
    /// simulated: a daemon without simulator mode refuses to launch or activate it.
    public func addSimulated(_ source: SimulatedSource, allowDowngrade: Bool = true, isRunning: (String) -> Bool) throws(MiniAppError)
        -> (id: String, outcome: InstallOutcome)
    {
        guard options.allowSimulated else {
            throw MiniAppError(.simulatedPackage, "unsigned programs are installed only by a simulator daemon (miniappd --simulator, debug builds); pack and sign the program (miniapp pack) and install the zip")
        }
        let bytes: [UInt8]
        switch source {
        case .directory(let dir): bytes = try PackagePacker.packUnsigned(directory: dir, limits: options.limits)
        case .zip(let zip): bytes = zip
        }
        return try add(archive: ZipArchive(bytes: bytes, limits: options.limits), simulated: true, allowDowngrade: allowDowngrade, deadline: nil, stageIf: isRunning)
    }

    private func add(archive: ZipArchive, simulated: Bool, allowDowngrade: Bool, deadline: UInt64?, stageIf: (String) -> Bool) throws(MiniAppError)
        -> (id: String, outcome: InstallOutcome)
    {
        var options = self.options
        options.allowUnsigned = simulated
        if let helper = extractionHelper {
            return try addThroughHelper(helper, archive, options, simulated, allowDowngrade, deadline, stageIf)
        }
        // A downgrade or a reinstall of present content is settled before extracting anything.
        let (pre, new, settled) = try verifyAndSettle(archive, nil, options, simulated, allowDowngrade, stageIf)
        let id = pre.manifest.id
        if let settled { return (id, settled) }
        try Self.check(deadline, before: "extracting")
        let rootFD = try FileTree.openDir(DirectoryTree.workingDirectory, root)
        let tree = try StagingArea.extract(pre, rootFD: rootFD.raw)
        return try publish(tree, id: id, new, allowDowngrade: allowDowngrade, deadline: deadline, stageIf: stageIf)
    }

    /// `add` with the zlib work in the extraction helper: the helper inflates and writes the
    /// tree first (the daemon cannot hash what it does not inflate), then the daemon verifies
    /// the signature over the digests it reported, settles, and re-hashes and seals the tree
    /// against the signed statement before publishing it.
    private func addThroughHelper(
        _ helper: ExtractionHelper, _ archive: ZipArchive, _ options: VerifierOptions, _ simulated: Bool, _ allowDowngrade: Bool,
        _ deadline: UInt64?, _ stageIf: (String) -> Bool
    ) throws(MiniAppError) -> (id: String, outcome: InstallOutcome) {
        let rootFD = try FileTree.openDir(DirectoryTree.workingDirectory, root)
        let tree = try StagingArea.claimEntry(rootFD: rootFD.raw)
        let left = deadline.map { $0 > monotonicNanos() ? Int(($0 - monotonicNanos()) / 1_000_000) : 1 } ?? 600_000
        let inflated = try helper.extract(archive, into: tree, timeoutMillis: left)
        let (pre, new, settled) = try verifyAndSettle(archive, inflated, options, simulated, allowDowngrade, stageIf)
        let id = pre.manifest.id
        if let settled { return (id, settled) }
        try Self.check(deadline, before: "sealing")
        try StagedTreeCheck.checkAndSeal(entryFD: tree.entryFD, expected: StagedTreeCheck.expected(pre, manifest: inflated.manifest ?? []))
        return try publish(tree, id: id, new, allowDowngrade: allowDowngrade, deadline: deadline, stageIf: stageIf)
    }

    /// Verifies (no lock: verification does not depend on the store; step 8 is re-checked at
    /// commit), then under the lock settles a downgrade or a reinstall of present content.
    private func verifyAndSettle(
        _ archive: ZipArchive, _ inflated: InflatedContent?, _ options: VerifierOptions, _ simulated: Bool, _ allowDowngrade: Bool,
        _ stageIf: (String) -> Bool
    ) throws(MiniAppError) -> (VerifiedPackage, StoredVersion, InstallOutcome?) {
        let pre = try PackageVerifier(partners: partners(), options: options)
            .verify(archive: archive, inflated: inflated, installedVersion: nil, allowDowngrade: true)
        let new = StoredVersion(version: pre.manifest.version, digest: (simulated ? "sim-" : "") + pre.contentDigest, simulated: simulated)
        CrashPoint.hit("verified")
        let settled = try withLock { rootFD throws(MiniAppError) in
            try settle(rootFD, pre.manifest.id, new, allowDowngrade: allowDowngrade, stageIf: stageIf, create: false)
        }
        return (pre, new, settled)
    }

    /// Under the lock: publishes the extracted `tree` as version `new` of `id` (or settles on
    /// what another install committed meanwhile).
    private func publish(
        _ tree: StagedTree, id: String, _ new: StoredVersion, allowDowngrade: Bool, deadline: UInt64?, stageIf: (String) -> Bool
    ) throws(MiniAppError) -> (id: String, outcome: InstallOutcome) {
        try Self.check(deadline, before: "committing")
        let outcome = try withLock { rootFD throws(MiniAppError) -> InstallOutcome in
            // Another install may have committed meanwhile: decide on the state as it is now.
            if let outcome = try settle(rootFD, id, new, allowDowngrade: allowDowngrade, stageIf: stageIf, create: true) {
                return outcome
            }
            let dir = try programDir(rootFD, id, create: false)
            var state = try readState(dir.raw)
            let stage = stageIf(id)
            let versions = try FileTree.openDir(dir.raw, "versions")
            FileTree.remove(versions.raw, new.version.text)  // an unreferenced leftover, if any
            try tree.publish(into: versions.raw, name: new.version.text)
            if stage {
                state.pending = new
            } else {
                state = ProgramState(active: new, previous: state.active, pending: nil)
            }
            try commit(dir.raw, state)
            return stage ? .staged(new.version) : .activated(new.version)
        }
        return (id, outcome)
    }

    private static func check(_ deadline: UInt64?, before step: String) throws(MiniAppError) {
        guard let deadline, monotonicNanos() > deadline else { return }
        throw MiniAppError(.timeout, "the install ran past its deadline before \(step); nothing was installed. Try again when the host is less busy")
    }

    /// Under the lock: refuses a downgrade, and settles an install whose version is already
    /// present (`reuse`). nil = the tree must be extracted and published.
    private func settle(
        _ rootFD: Int32, _ id: String, _ new: StoredVersion, allowDowngrade: Bool, stageIf: (String) -> Bool, create: Bool
    ) throws(MiniAppError) -> InstallOutcome? {
        guard create || DirectoryTree.exists(at: rootFD, id) else { return nil }
        let dir = try programDir(rootFD, id, create: create)
        var state = try readState(dir.raw)
        if let active = state.active, new.version < active.version, !allowDowngrade {
            throw MiniAppError(.downgrade, "\(id) \(new.version) is older than the active \(active.version); pass --allow-downgrade to install it anyway", data: ["active": active.version.text])
        }
        return try reuse(dir.raw, &state, new, stage: stageIf(id))
    }

    /// Same version already present: identical content is reused, different content refused.
    private func reuse(_ dirFD: Int32, _ state: inout ProgramState, _ new: StoredVersion, stage: Bool) throws(MiniAppError) -> InstallOutcome? {
        let slots = [state.active, state.pending, state.previous].compactMap { $0 }
        guard let same = slots.first(where: { $0.version == new.version }),
            DirectoryTree.exists(at: dirFD, "versions/" + same.version.text + "/manifest.json")
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
        do { return try DirectoryTree.openDirectory(at: rootFD, id) } catch {
            // Only a missing directory means "not installed": out of descriptors (EMFILE) or an
            // I/O error is the daemon's problem and must say so, never pass for NOT_FOUND.
            if error.isNotFound { throw MiniAppError(.packageNotInstalled, "\(id) is not installed", data: ["id": id]) }
            throw MiniAppError(.storeFailure, "cannot open the store directory of \(id): \(error); check the daemon's file descriptor limit and the state directory", data: ["id": id])
        }
    }

    /// Deletes version directories not in `keep`, and `.tmp-*` extractions.
    private func collect(_ dirFD: Int32, keep: Set<String>) {
        guard let versions = try? FileTree.openDir(dirFD, "versions") else { return }
        for name in FileTree.list(versions.raw) where !keep.contains(name) {
            FileTree.remove(versions.raw, name)
        }
        try? FileSystem.sync(descriptor: versions.raw)
    }

    /// Startup garbage collection of interrupted installs and removals.
    private func recover(_ rootFD: Int32) {
        StagingArea.sweep(rootFD)
        for name in FileTree.list(rootFD) {
            if name.hasPrefix(".trash-") { FileTree.remove(rootFD, name); continue }
            guard Manifest.isValidId(name), let dir = try? FileTree.openDir(rootFD, name) else { continue }
            try? DirectoryTree.unlink(at: dir.raw, "state.json.tmp")
            let state = (try? readState(dir.raw)) ?? ProgramState()
            collect(dir.raw, keep: state.referenced)
        }
    }

    private func withLock<T>(_ body: (Int32) throws(MiniAppError) -> T) throws(MiniAppError) -> T {
        let rootFD = try FileTree.openDir(DirectoryTree.workingDirectory, root)
        let lock = try FileTree.lockFile(rootFD.raw, ".lock")
        defer { _ = lock.raw }  // held until the body is done
        return try body(rootFD.raw)
    }
}
