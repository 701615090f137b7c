import Foundation
public import MiniAppModel
import MiniAppSystem

/// Where everything lives under `--state-dir` (README "State directory"). Created 0700: the
/// directory holds signing keys, every program's data and the audit log.
public struct StateLayout: Sendable {
    /// The state directory.
    public let root: String

    public init(root: String) { self.root = root }

    public var packages: String { root + "/packages" }
    public var data: String { root + "/data" }
    /// The built-in services' state: `storage.sqlite` (+ WAL) and `auth-ed25519.pem`.
    public var services: String { root + "/services" }
    public var audit: String { root + "/audit" }
    public var workerSequence: String { root + "/workers.seq" }
    public var downloads: String { root + "/downloads" }
    /// The last verified registry partners document, exactly as received (offline start).
    public var partnersCache: String { root + "/partners.json" }
    /// The device's random id for staged rollouts (`DeviceIdentity`).
    public var deviceId: String { root + "/device-id" }
    public var embeddedPolicies: String { root + "/policies-embedded" }
    public var sdk: String { root + "/sdk" }

    /// Creates the directories (0700) that do not exist yet.
    public func create() throws(MiniAppError) {
        for dir in [root, packages, data, services, audit, downloads] {
            try Self.mkdir(dir, mode: 0o700)
        }
    }

    static func mkdir(_ path: String, mode: UInt32) throws(MiniAppError) {
        do { try FileSystem.makeDirectory(path, mode: mode) } catch {
            throw MiniAppError(.internal, "cannot create \(path): \(error). Check --state-dir and its permissions.")
        }
    }

    /// Writes `files` under `dir` afresh (a stale file from an older binary must not linger)
    /// and returns `dir`. Used for the embedded policies and SDKs.
    public func materialize(_ files: [(String, String)], into dir: String) throws(MiniAppError) -> String {
        let staging = dir + ".new-\(CurrentProcess.pid)"
        _ = try? removeTree(staging)
        try Self.mkdir(staging, mode: 0o755)
        for (rel, text) in files {
            let full = staging + "/" + rel
            try makeParents(of: full, under: staging)
            do {
                try AtomicFile.write(path: full, bytes: Array(text.utf8), mode: 0o644)
            } catch {
                throw MiniAppError(.internal, "cannot write \(full): \(error)")
            }
        }
        _ = try? removeTree(dir)
        do { try FileSystem.rename(staging, to: dir) } catch {
            throw MiniAppError(.internal, "cannot install \(dir): \(error)")
        }
        return dir
    }

    private func makeParents(of file: String, under base: String) throws(MiniAppError) {
        let rel = file.dropFirst(base.count + 1)
        var path = base
        for part in rel.split(separator: "/").dropLast() {
            path += "/" + part
            try Self.mkdir(path, mode: 0o755)
        }
    }

    /// rm -rf; FileManager removes symlinks themselves, never what they point to.
    func removeTree(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
    }
}
