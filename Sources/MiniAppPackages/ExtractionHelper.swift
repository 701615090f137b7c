internal import MiniAppModel
public import MiniAppSystem
internal import Synchronization

/// Package extraction in a `miniappd-helper extract` process: zlib inflates the partner's bytes
/// there, under the helper's jail (SECURITY.md, "Helpers for untrusted bytes"), never in the
/// daemon. One process per install: the daemon passes the archive (a sealed memfd) and the
/// install's staging entry (a directory fd, the only tree Landlock lets it write), the helper
/// writes the tree and reports each file's digest, and the daemon ends it — so no descriptor it
/// opened outlives the install — before it re-hashes and seals what was written
/// (`StagedTreeCheck`). A helper death fails the install with INTERNAL; the next install
/// starts a new helper after a backoff that grows with consecutive deaths.
public final class ExtractionHelper: Sendable {
    /// Settings (executable, ids, profile override, test environment).
    public let settings: HelperSettings
    private let deaths = Mutex<(count: Int, last: UInt64)>((0, 0))
    private let running = Mutex<Int32?>(nil)

    public init(settings: HelperSettings) {
        self.settings = settings
    }

    /// The pid of an extraction helper running now, if any (tests).
    public var currentPID: Int32? { running.withLock { $0 } }

    /// Extracts `archive` into `tree` (its `tree` leaf) in a helper; returns what it reported.
    func extract(_ archive: ZipArchive, into tree: StagedTree, timeoutMillis: Int) throws(MiniAppError) -> InflatedContent {
        waitBackoff()
        let memfd = try HelperLaunch.sealedMemfd(archive.bytes, name: "miniapp-package")
        let ids = settings.effectiveIDs
        // The entry is the daemon's (0700); the helper's uid must be able to fill it.
        if HelperTreeIO.runsAsRoot {
            do throws(SystemError) { try HelperTreeIO.setOwner(descriptor: tree.entryFD, uid: ids.uid, gid: ids.gid) } catch { throw FileTree.fail(error) }
        }
        let hello = HelperHello(uid: ids.uid, gid: ids.gid, seccompFilters: try settings.seccomp(role: "extract"), readPaths: [],
                                connectPorts: [], caBundle: nil, isolateNetwork: true)
        var launch = HelperLaunch(executable: settings.executable, role: "extract", hello: hello, maxReplyPayload: 16 << 20)
        launch.fds = [memfd.raw, tree.entryFD]
        launch.environment = settings.environment
        let connection: HelperConnection
        do { connection = try HelperConnection.start(launch) } catch {
            noteDeath()
            throw MiniAppError(.internal, "cannot start the extraction helper: \(error.message)", cause: error)
        }
        running.withLock { $0 = connection.pid }
        let result = connection.call(HelperExtractRequest(limits: archive.limits.wire).frame(id: 0), timeoutMillis: timeoutMillis)
        connection.endAndWait("the install is done")
        running.withLock { $0 = nil }
        return try content(of: result, limits: archive.limits)
    }

    private func content(of result: Result<HelperFrame, HelperCallError>, limits: ZipLimits) throws(MiniAppError) -> InflatedContent {
        let frame: HelperFrame
        switch result {
        case .failure(let e):
            noteDeath()
            let why = if case .died(let m) = e { m } else { "it did not finish in time" }
            throw MiniAppError(.internal, "the extraction helper stopped (\(why)); nothing was installed. Retry the install")
        case .success(let f): frame = f
        }
        deaths.withLock { $0.count = 0 }
        if frame.kind == .failure, let f = try? HelperFailure(frame) { throw Self.error(f) }
        do throws(HelperWireError) {
            let r = try HelperExtractResponse(frame, maxManifest: Manifest.maxBytes, maxPath: limits.maxPathBytes)
            var files: [String: (sha256Hex: String, size: UInt64)] = [:]
            for f in r.files { files[f.path] = (SHA256Hasher.hex(f.sha256), f.size) }
            return InflatedContent(manifest: r.manifest, files: files)
        } catch {
            throw MiniAppError(.internal, "the extraction helper's reply was refused (\(error)); nothing was installed")
        }
    }

    /// The archive codes a helper may report; any other code from it is INTERNAL (a compromised
    /// helper does not choose what the host is told).
    static let archiveCodes: Set<ErrorCode> = [
        .archiveInvalid, .archiveTooLarge, .zipBomb, .tooManyEntries, .badPath, .duplicateEntry, .badEntryType, .storeFailure,
    ]

    static func error(_ f: HelperFailure) -> MiniAppError {
        let code = ErrorCode(rawValue: f.kind)
        guard archiveCodes.contains(code) else { return MiniAppError(.internal, "the extraction helper failed: \(f.message)") }
        return MiniAppError(code, f.message, data: f.entry.map { ["entry": $0] } ?? [:])
    }

    private func noteDeath() {
        deaths.withLock { d in
            d.count += 1
            d.last = monotonicNanos()
        }
    }

    private func waitBackoff() {
        let (count, last) = deaths.withLock { ($0.count, $0.last) }
        let due = last + HelperSupervisor.backoffNanos(afterDeaths: count)
        let now = monotonicNanos()
        if due > now { HelperSupervisor.sleep(nanos: due - now) }
    }
}

extension ZipLimits {
    /// The bounds as `HelperExtractRequest` carries them.
    var wire: [UInt64] {
        [UInt64(maxArchiveBytes), maxInflatedBytes, UInt64(maxEntries), maxRatio, ratioExemptBytes, UInt64(maxPathBytes), UInt64(maxDepth),
         UInt64(maxEntriesPerDirectory)]
    }

    init(wire w: [UInt64]) {
        self.init()
        maxArchiveBytes = Int(w[0])
        maxInflatedBytes = w[1]
        maxEntries = Int(w[2])
        maxRatio = w[3]
        ratioExemptBytes = w[4]
        maxPathBytes = Int(w[5])
        maxDepth = Int(w[6])
        maxEntriesPerDirectory = Int(w[7])
    }
}

/// The extraction helper's side (runs in `miniappd-helper extract`).
public enum ExtractHelperRole {
    static let archiveFD: Int32 = 4
    static let stagingFD: Int32 = 5

    /// Confines itself (Landlock: only beneath the staging entry), serves the one request.
    public static func run() -> Never {
        _ = HelperServer.helloAndConfine(trees: [(stagingFD, true)])
        HelperServer.serve(concurrent: false) { handle($0) }
        HelperTreeIO.exitHelper()
    }

    static func handle(_ frame: HelperFrame) -> HelperFrame {
        do throws(MiniAppError) {
            let request: HelperExtractRequest
            do { request = try HelperExtractRequest(frame) } catch {
                throw MiniAppError(.internal, "bad extract request: \(error)")
            }
            let archive = try ZipArchive.read(descriptor: archiveFD, name: "the package", limits: ZipLimits(wire: request.limits))
            try FileTree.makeDir(stagingFD, StagedTree.leaf, exclusive: true)
            let root = try FileTree.openDir(stagingFD, StagedTree.leaf)
            let written = try PackageExtractor.write(archive, into: root.raw, seal: false, expected: nil) { _ in false }
            let manifest = archive.entry("manifest.json").flatMap { $0.uncompressedSize <= UInt64(Manifest.maxBytes) ? $0 : nil } != nil
                ? try FileTree.readFile(root.raw, "manifest.json", limit: Manifest.maxBytes) : nil
            let files = written.map { HelperExtractedFile(path: $0.path, sha256: $0.sha256, size: $0.size) }
            return HelperExtractResponse(manifest: manifest, files: files).frame(id: frame.id)
        } catch {
            return HelperFailure(kind: error.code.rawValue, message: error.message, entry: error.data["entry"]).frame(id: frame.id)
        }
    }
}
