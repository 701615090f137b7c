import MiniAppJSON
import MiniAppJail
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Synchronization

/// Binds the supervisor's `ProgramResolver`, the control API's `PackageControl` and the update
/// checker's `UpdateStaging` to MiniAppPackages' `PackageStore`.
///
/// Running programs: the store does not know what runs, so this binding asks `isRunning` (the
/// supervisor, wired after construction). A package for a running program is staged and
/// becomes active at its next launch; otherwise it is active at once.
final class StoreBinding: ProgramResolver, PackageControl, UpdateStaging {
    let store: PackageStore
    private let dataRoot: String
    private let running = Mutex<(@Sendable (String) -> Bool)?>(nil)
    private let changed = Mutex<(@Sendable (String) -> Void)?>(nil)
    private let updates = Mutex<UpdateService?>(nil)
    /// A simulator daemon's grants of simulated programs (nil: not a simulator).
    let simulatorGrants: SimulatorGrants?
    /// What an install may never take from the state filesystem (nil: not checked).
    private let reserve: StateReserve?

    init(store: PackageStore, dataRoot: String, simulatorGrants: SimulatorGrants? = nil, reserve: StateReserve? = nil) {
        self.store = store
        self.reserve = reserve
        self.simulatorGrants = simulatorGrants
        self.dataRoot = dataRoot
    }

    /// Wires the supervisor's running check, what a package change of a program must drop (its
    /// prewarmed worker), and the update flow.
    func connect(
        isRunning: @escaping @Sendable (String) -> Bool, packageChanged: @escaping @Sendable (String) -> Void = { _ in },
        updates service: UpdateService
    ) {
        running.withLock { $0 = isRunning }
        changed.withLock { $0 = packageChanged }
        updates.withLock { $0 = service }
    }

    private func isRunning(_ id: String) -> Bool { running.withLock { $0 }?(id) ?? false }

    /// A package of `id` was added, staged, rolled back or removed (rollback and removal: before
    /// and after the change). A prewarm racing the change is caught when its worker is
    /// released: the release compares the program it was made from with the one resolved then.
    private func packageChanged(_ id: String) { changed.withLock { $0 }?(id) }

    // MARK: ProgramResolver

    func launchable(_ id: String) throws(MiniAppError) -> LaunchableProgram {
        guard Manifest.isValidId(id) else {
            throw MiniAppError(.invalidParams, "'\(id)' is not a valid program id (reverse-DNS, e.g. com.partner.app)")
        }
        do {
            // The supervisor asks only when it starts a worker (none runs): a staged update
            // becomes active now.
            if let (activated, previous) = try store.activateStaged(id) {
                updates.withLock { $0 }?.activated(id, version: activated.text, previous: previous?.text)
            }
            let a = try store.runnable(id)
            let m = a.manifest
            if a.simulated { simulatorGrants?.launched(a.partner) }
            var p = LaunchableProgram(
                id: m.id, version: m.version.text, partnerId: a.partner.id, appDir: a.directory, entryPoint: m.entryPoint,
                runtime: m.runtime, permissions: m.permissions, allowedDomains: m.allowedDomains)
            p.simulated = a.simulated
            return p
        } catch {
            throw Self.controlError(error, id: id)
        }
    }

    func dataDirectory(_ id: String) throws(MiniAppError) -> String {
        let dir = dataRoot + "/" + id
        do { try FileSystem.makeDirectory(dir, mode: 0o700) } catch {
            throw MiniAppError(.internal, "cannot create \(dir): \(error); check the state directory")
        }
        return dir
    }

    // MARK: PackageControl

    func install(path: String, allowDowngrade: Bool) throws(MiniAppError) -> InstalledPackage {
        guard path.hasPrefix("/") else {
            throw MiniAppError(.invalidParams, "params.path must be an absolute path to a package zip on the daemon's host")
        }
        let added: (id: String, outcome: InstallOutcome)
        do {
            added = try store.add(path: path, allowDowngrade: allowDowngrade) { [self] id in isRunning(id) }
        } catch {
            throw Self.installError(error)
        }
        return installed(added)
    }

    /// `packages.install {dir}` / `{url}` (simulator mode): an unsigned program, checked as a
    /// package is, stored as simulated. A URL must be `http://` on a loopback address (a dev
    /// server on this machine): the daemon never fetches unsigned code from elsewhere.
    func installSimulated(dir: String?, url: String?) throws(MiniAppError) -> InstalledPackage {
        let source: SimulatedSource
        if let dir {
            guard dir.hasPrefix("/") else { throw MiniAppError(.invalidParams, "params.dir must be an absolute path to a program directory") }
            source = .directory(dir)
        } else if let url {
            source = .zip(try Self.fetchLoopback(url, maxBytes: store.options.limits.maxArchiveBytes))
        } else {
            throw MiniAppError(.invalidParams, "packages.install needs params.path (a signed zip), or in simulator mode params.dir or params.url")
        }
        do {
            return installed(try store.addSimulated(source) { [self] id in isRunning(id) })
        } catch {
            throw Self.installError(error)
        }
    }

    static func fetchLoopback(_ url: String, maxBytes: Int) throws(MiniAppError) -> [UInt8] {
        guard let parsed = try? HTTPURL.parse(url), parsed.scheme == "http",
            ["127.0.0.1", "localhost", "[::1]", "::1"].contains(parsed.host)
        else {
            throw MiniAppError(.invalidParams, "params.url must be http://127.0.0.1:PORT/… (a dev server on this machine, loopback only), got \(url)")
        }
        let r = try CurlRegistryTransport().get(url, maxBytes: maxBytes, timeoutMillis: 10_000)
        guard r.status == 200 else {
            throw MiniAppError(.hostUnavailable, "\(url) answered HTTP \(r.status); it must serve the program's zip (miniapp pack --unsigned)")
        }
        return r.body
    }

    func install(from source: PackageSource, allowDowngrade: Bool, deadline: UInt64) throws(MiniAppError) -> InstalledPackage {
        let added: (id: String, outcome: InstallOutcome)
        do {
            let archive = try Self.archive(source, limits: store.options.limits)
            // Refused before anything is written: the extracted tree (and its directory
            // entries) must fit above the daemon's reserve.
            try reserve?.check(
                needBytes: archive.entries.reduce(UInt64(4096) * UInt64(archive.entries.count)) { $0 &+ $1.uncompressedSize },
                needInodes: UInt64(archive.entries.count) + 16, what: "this install")
            added = try store.add(archive: archive, allowDowngrade: allowDowngrade, deadline: deadline) { [self] id in isRunning(id) }
        } catch {
            throw Self.installError(error)
        }
        return installed(added)
    }

    /// Reads the package of `source`. A path is opened as the peer would open it; every reason
    /// it cannot be (missing, unreadable, a directory on the way it may not search, a daemon
    /// that cannot act as the peer) answers the same, so the answer says nothing of files the
    /// peer could not see for itself.
    private static func archive(_ source: PackageSource, limits: ZipLimits) throws(MiniAppError) -> ZipArchive {
        switch source {
        case .descriptor(let d):
            return try ZipArchive.read(descriptor: d.raw, name: "the package passed as a descriptor", limits: limits)
        case .path(let path, let peer):
            guard path.hasPrefix("/") else {
                throw MiniAppError(.invalidParams, "params.path must be an absolute path to a package zip on the daemon's host")
            }
            let unopenable = MiniAppError(
                .archiveInvalid,
                "cannot open \(path) as uid \(peer.map { String($0.uid) } ?? "?"): no such file, or you may not read it; pass the package as a descriptor instead (miniapp install does)")
            guard let peer else { throw unopenable }
            let fd: OwnedFD
            do { fd = try PeerFileOpener.open(path, as: peer) } catch { throw unopenable }
            return try ZipArchive.read(descriptor: fd.raw, name: path, limits: limits)
        }
    }

    private func installed(_ added: (id: String, outcome: InstallOutcome)) -> InstalledPackage {
        let (id, outcome) = added
        packageChanged(id)
        switch outcome {
        case .activated(let v), .unchanged(let v): return InstalledPackage(id: id, version: v.text, active: true)
        case .staged(let v): return InstalledPackage(id: id, version: v.text, active: false)
        }
    }

    func list() throws(MiniAppError) -> [PackageListing] {
        let programs: [InstalledProgram]
        do { programs = try store.list() } catch { throw Self.controlError(error, id: nil) }
        return programs.map { p in
            let versions = [p.state.previous, p.state.active, p.state.pending].compactMap { $0?.version }
            return PackageListing(
                id: p.id, active: p.state.active?.version.text, versions: Array(Set(versions)).sorted().map(\.text),
                pending: p.state.pending?.version.text)
        }
    }

    func rollback(id: String) throws(MiniAppError) -> RolledBackPackage {
        packageChanged(id)
        defer { packageChanged(id) }
        do {
            let v = try store.rollback(id)
            return RolledBackPackage(id: id, active: v.text)
        } catch {
            throw Self.controlError(error, id: id)
        }
    }

    func remove(id: String) throws(MiniAppError) {
        packageChanged(id)
        defer { packageChanged(id) }
        do { try store.remove(id) } catch { throw Self.controlError(error, id: id) }
    }

    func checkUpdates(id: String?) throws(MiniAppError) -> UpdateCheckReport {
        guard let service = updates.withLock({ $0 }) else {
            throw MiniAppError(.hostUnavailable, "updates are off: start miniappd with --registry URL (and --platform-key) to use updates.check")
        }
        return try service.checkNow(id: id)
    }

    func launchRequested(id: String) { updates.withLock { $0 }?.launchRequested(id) }

    func updateStatus(id: String?) throws(MiniAppError) -> [ProgramUpdateStatus] {
        guard let service = updates.withLock({ $0 }) else { throw MiniAppError(.internal, "the update service is not wired yet") }
        return try service.status(id: id)
    }

    // MARK: UpdateStaging

    func installedIDs() -> [String] { ((try? store.list()) ?? []).map(\.id) }

    func newestKnownVersion(_ id: String) -> String? {
        guard let p = ((try? store.list()) ?? []).first(where: { $0.id == id }) else { return nil }
        return [p.state.active, p.state.pending].compactMap { $0?.version }.max()?.text
    }

    func isNewer(_ candidate: String, than current: String) -> Bool {
        guard let c = SemVer(candidate), let cur = SemVer(current) else { return false }
        return c > cur
    }

    func runsOnHost(minHostVersion: String) -> Bool {
        guard let v = SemVer(minHostVersion) else { return false }
        return v <= store.options.hostVersion
    }

    func stageUpdate(path: String) throws(MiniAppError) -> Bool {
        try install(path: path, allowDowngrade: false).active
    }

    func sha256Hex(_ bytes: [UInt8]) -> String { SHA256Hasher.hex(SHA256Hasher.digest(bytes)) }

    func rejectedVersion(_ id: String) -> String? {
        ((try? store.list()) ?? []).first { $0.id == id }?.state.rejected?.version.text
    }

    // MARK: error mapping

    /// Package verification codes travel as `INVALID_PACKAGE` with `data.reason` (spec); store
    /// I/O failures stay `INTERNAL`.
    static func installError(_ e: MiniAppError) -> MiniAppError {
        switch e.code {
        case .timeout, .invalidParams, .quotaExceeded:
            return e
        case .internal, .storeFailure:
            return MiniAppError(.internal, e.message, data: e.data.merging(["reason": e.code.rawValue]) { a, _ in a })
        default:
            var data = e.data
            data["reason"] = e.code.rawValue
            return MiniAppError(.invalidPackage, e.message, data: data)
        }
    }

    /// Store codes → control API codes for launch/rollback/remove/list.
    static func controlError(_ e: MiniAppError, id: String?) -> MiniAppError {
        switch e.code {
        case .packageNotInstalled:
            return MiniAppError(.notFound, e.message, data: e.data)
        case .unknownPartner:
            return MiniAppError(.notFound, "\(id ?? "the program")'s partner is not registered any more; \(e.message)", data: ["reason": e.code.rawValue])
        case .hostUpdateRequired, .invalidParams, .notFound, .alreadyRunning:
            return e
        case .simulatedPackage:
            return MiniAppError(.invalidPackage, e.message, data: e.data.merging(["reason": e.code.rawValue]) { a, _ in a })
        default:
            return MiniAppError(.internal, e.message, data: e.data.merging(["reason": e.code.rawValue]) { a, _ in a })
        }
    }
}
