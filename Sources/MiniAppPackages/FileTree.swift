internal import MiniAppSystem
import MiniAppModel

/// The store's view of `DirectoryTree` (MiniAppSystem): the same fd-relative calls, with a
/// failure reported as STORE_FAILURE and a hint to the operator.
enum FileTree {
    static func fail(_ e: SystemError) -> MiniAppError {
        MiniAppError(.storeFailure, "\(e); check free space and permissions of the state directory", cause: e)
    }

    /// Opens (never follows) a directory relative to `dirFD`.
    static func openDir(_ dirFD: Int32, _ name: String) throws(MiniAppError) -> OwnedFD {
        do { return try DirectoryTree.openDirectory(at: dirFD, name) } catch { throw fail(error) }
    }

    /// Creates a directory; `exclusive` makes an existing one an error (the O_EXCL of mkdir).
    static func makeDir(_ dirFD: Int32, _ name: String, mode: UInt32 = 0o700, exclusive: Bool) throws(MiniAppError) {
        do { try DirectoryTree.makeDirectory(at: dirFD, name, mode: mode, exclusive: exclusive) } catch { throw fail(error) }
    }

    static func fsyncFD(_ fd: Int32, _ what: String) throws(MiniAppError) {
        do { try FileSystem.sync(descriptor: fd, what) } catch { throw fail(error) }
    }

    static func rename(_ fromDir: Int32, _ from: String, to toDir: Int32, _ to: String) throws(MiniAppError) {
        do { try DirectoryTree.rename(at: fromDir, from, to: toDir, to) } catch { throw fail(error) }
    }

    /// Creates file `name` (0600, exclusively: nothing pre-existing, no link) for writing.
    static func createFile(_ dirFD: Int32, _ name: String) throws(MiniAppError) -> OwnedFD {
        do { return try DirectoryTree.openFile(at: dirFD, name, options: [.writeOnly, .create, .exclusive], mode: 0o600) } catch { throw fail(error) }
    }

    /// Opens (creating) lock file `name` and takes its exclusive `flock`, waiting for it; the
    /// lock goes with the returned descriptor.
    static func lockFile(_ dirFD: Int32, _ name: String) throws(MiniAppError) -> OwnedFD {
        do {
            let lock = try DirectoryTree.openFile(at: dirFD, name, options: [.readWrite, .create], mode: 0o600)
            _ = try DirectoryTree.lockExclusive(lock.raw)
            return lock
        } catch {
            throw fail(error)
        }
    }

    /// A random hex suffix for temporary names (the system CSPRNG).
    static func randomSuffix() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<8).map { _ in String(UInt8.random(in: 0...255, using: &rng), radix: 16).leftPad(2) }.joined()
    }

    /// Names in a directory (except `.` and `..`).
    static func list(_ dirFD: Int32) -> [String] { DirectoryTree.list(dirFD) }

    /// Removes `name` under `dirFD` recursively (never following symlinks).
    static func remove(_ dirFD: Int32, _ name: String) { DirectoryTree.remove(at: dirFD, name) }

    /// Writes `bytes` to `name` atomically: temp file, fsync, rename, fsync of the directory.
    static func writeAtomically(_ dirFD: Int32, _ name: String, _ bytes: [UInt8]) throws(MiniAppError) {
        let tmp = name + ".tmp"
        do {
            try DirectoryTree.unlink(at: dirFD, tmp)
            let file = try DirectoryTree.openFile(at: dirFD, tmp, options: [.writeOnly, .create, .exclusive], mode: 0o644)
            try file.writeAll(bytes)
            try FileSystem.sync(descriptor: file.raw, tmp)
        } catch {
            throw fail(error)
        }
        CrashPoint.hit("state-tmp-written")
        try rename(dirFD, tmp, to: dirFD, name)
        try fsyncFD(dirFD, name)
    }

    static func readFile(_ dirFD: Int32, _ name: String, limit: Int) throws(MiniAppError) -> [UInt8]? {
        do {
            return try DirectoryTree.openFile(at: dirFD, name).readAll(limit: limit)
        } catch {
            if error.isNoSuchEntry { return nil }
            throw MiniAppError(.storeFailure, "reading \(name): \(error)", cause: error)
        }
    }
}

/// Test hook for crash-safety tests: when the environment variable `MINIAPP_CRASH_AT` names a
/// point, the process SIGKILLs itself there (like `kill -9` at that instant); when
/// `MINIAPP_PAUSE_AT` names it, the process SIGSTOPs itself there (a test then checks what the
/// store allows meanwhile, and SIGCONTs it). Points: `verified`, `tmpdir-created`,
/// `file-written`, `extracted`, `renamed`, `state-tmp-written`, `activated`. Unset in
/// production; reading them costs two getenvs per point.
public enum CrashPoint {
    /// Kills (or stops) the process if `MINIAPP_CRASH_AT` (or `MINIAPP_PAUSE_AT`) equals `name`.
    public static func hit(_ name: String) {
        if CurrentProcess.environment("MINIAPP_CRASH_AT") == name { Processes.signal(CurrentProcess.pid, Signal.kill) }
        if CurrentProcess.environment("MINIAPP_PAUSE_AT") == name { Processes.signal(CurrentProcess.pid, Signal.stop) }
    }
}
