import MiniAppJSON
import MiniAppJail
import MiniAppModel
import MiniAppPackages
import MiniAppSystem
import Synchronization

/// Binds the control API's package operations and the update checker's `UpdateStaging` to
/// MiniAppPackages' `PackageStore`. Built after the supervisor, which it is given at
/// construction: the store does not know what runs, so this binding asks `isRunning`. A
/// package for a running program is staged and becomes active at its next launch; otherwise it
/// is active at once. Every change of a program's package (added, staged, rolled back,
/// removed) drops its prewarmed worker (`packageChanged`). Launches resolve programs through
/// `LaunchResolver`, built before the supervisor.
final class StoreBinding: UpdateStaging {
    let store: PackageStore
    private let isRunning: @Sendable (String) -> Bool
    private let changed: @Sendable (String) -> Void
    /// A simulator daemon's grants of simulated programs (nil: not a simulator).
    let simulatorGrants: SimulatorGrants?
    /// What an install may never take from the state filesystem (nil: not checked).
    private let reserve: StateReserve?

    /// `isRunning(id)`: whether the program has a worker, or one being started (the
    /// supervisor's); `packageChanged(id)`: what a package change of the program drops.
    init(
        store: PackageStore, simulatorGrants: SimulatorGrants? = nil, reserve: StateReserve? = nil,
        isRunning: @escaping @Sendable (String) -> Bool = { _ in false }, packageChanged: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.store = store
        self.reserve = reserve
        self.simulatorGrants = simulatorGrants
        self.isRunning = isRunning
        changed = packageChanged
    }

    /// A package of `id` was added, staged, rolled back or removed (rollback and removal: before
    /// and after the change). A prewarm racing the change is caught when its worker is
    /// released: the release compares the program it was made from with the one resolved then.
    private func packageChanged(_ id: String) { changed(id) }

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

/// The control API's `PackageControl`: the package operations of the store binding, the update
/// operations of the update service (built after the store binding, through which it stages).
struct PackageControlBinding: PackageControl {
    let packages: StoreBinding
    let updates: UpdateService

    func install(path: String, allowDowngrade: Bool) throws(MiniAppError) -> InstalledPackage {
        try packages.install(path: path, allowDowngrade: allowDowngrade)
    }

    func install(from source: PackageSource, allowDowngrade: Bool, deadline: UInt64) throws(MiniAppError) -> InstalledPackage {
        try packages.install(from: source, allowDowngrade: allowDowngrade, deadline: deadline)
    }

    func installSimulated(dir: String?, url: String?) throws(MiniAppError) -> InstalledPackage {
        try packages.installSimulated(dir: dir, url: url)
    }

    func list() throws(MiniAppError) -> [PackageListing] { try packages.list() }

    func rollback(id: String) throws(MiniAppError) -> RolledBackPackage { try packages.rollback(id: id) }

    func remove(id: String) throws(MiniAppError) { try packages.remove(id: id) }

    func checkUpdates(id: String?) throws(MiniAppError) -> UpdateCheckReport { try updates.checkNow(id: id) }

    func launchRequested(id: String) { updates.launchRequested(id) }

    func updateStatus(id: String?) throws(MiniAppError) -> [ProgramUpdateStatus] { try updates.status(id: id) }
}
