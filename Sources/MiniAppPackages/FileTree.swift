internal import MiniAppSystem
import MiniAppModel
#if canImport(Glibc)
import Glibc
#endif

/// fd-relative file-system helpers for extraction and the store. Every path is resolved
/// relative to a directory fd with `O_NOFOLLOW`, never as a string from `/`, so a symlink or a
/// rename planted in the state directory cannot redirect a write (the extraction half of the
/// zip-slip defence).
enum FileTree {
    static func fail(_ call: String, _ detail: String) -> MiniAppError {
        let e = SystemError.current(call, detail: detail)
        return MiniAppError(.storeFailure, "\(e); check free space and permissions of the state directory", cause: e)
    }

    /// Opens (never follows) a directory relative to `dirFD`.
    static func openDir(_ dirFD: Int32, _ name: String) throws(MiniAppError) -> OwnedFD {
        let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw fail("openat", name) }
        return OwnedFD(adopting: fd)
    }

    /// Creates a directory; `exclusive` makes an existing one an error (the O_EXCL of mkdir).
    static func makeDir(_ dirFD: Int32, _ name: String, mode: mode_t = 0o700, exclusive: Bool) throws(MiniAppError) {
        if mkdirat(dirFD, name, mode) != 0 && !(errno == EEXIST && !exclusive) { throw fail("mkdirat", name) }
    }

    static func fsyncFD(_ fd: Int32, _ what: String) throws(MiniAppError) {
        if fsync(fd) != 0 { throw fail("fsync", what) }
    }

    /// A random hex suffix for temporary names (getentropy).
    static func randomSuffix() -> String {
        var b = [UInt8](repeating: 0, count: 8)
        _ = getentropy(&b, b.count)
        return b.map { String($0, radix: 16).leftPad(2) }.joined()
    }

    /// Names in a directory (except `.` and `..`).
    static func list(_ dirFD: Int32) -> [String] {
        let dup = fcntl(dirFD, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0, let d = fdopendir(dup) else { return [] }
        defer { closedir(d) }
        rewinddir(d)
        var names: [String] = []
        while let ent = readdir(d) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes `name` under `dirFD` recursively, making read-only directories writable first.
    /// Never follows symlinks (it unlinks them).
    static func remove(_ dirFD: Int32, _ name: String) {
        if unlinkat(dirFD, name, 0) == 0 || errno == ENOENT { return }
        let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        let sub = OwnedFD(adopting: fd)
        _ = fchmod(sub.raw, 0o700)
        for child in list(sub.raw) { remove(sub.raw, child) }
        _ = unlinkat(dirFD, name, AT_REMOVEDIR)
    }

    /// Writes `bytes` to `name` atomically: temp file, fsync, rename, fsync of the directory.
    static func writeAtomically(_ dirFD: Int32, _ name: String, _ bytes: [UInt8]) throws(MiniAppError) {
        let tmp = name + ".tmp"
        _ = unlinkat(dirFD, tmp, 0)
        let fd = openat(dirFD, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("openat", tmp) }
        let file = OwnedFD(adopting: fd)
        do { try file.writeAll(bytes) } catch { throw MiniAppError(.storeFailure, "writing \(tmp): \(error)", cause: error) }
        try fsyncFD(file.raw, tmp)
        CrashPoint.hit("state-tmp-written")
        guard renameat(dirFD, tmp, dirFD, name) == 0 else { throw fail("renameat", name) }
        try fsyncFD(dirFD, name)
    }

    static func readFile(_ dirFD: Int32, _ name: String, limit: Int) throws(MiniAppError) -> [UInt8]? {
        let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw fail("openat", name)
        }
        let file = OwnedFD(adopting: fd)
        do { return try file.readAll(limit: limit) } catch { throw MiniAppError(.storeFailure, "reading \(name): \(error)", cause: error) }
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
        if let v = getenv("MINIAPP_CRASH_AT"), String(cString: v) == name { raise(SIGKILL) }
        if let v = getenv("MINIAPP_PAUSE_AT"), String(cString: v) == name { raise(SIGSTOP) }
    }
}
