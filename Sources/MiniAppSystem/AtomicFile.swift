public import Glibc

/// Crash-safe whole-file replacement: write a temp file in the same directory, fsync it, rename
/// it over the target, fsync the directory. After a crash the file holds either the old or the
/// new content, never a torn mix (the ext4 "zero-length file after crash" problem).
public enum AtomicFile {
    /// Replaces `path` with `bytes`.
    public static func write(path: String, bytes: [UInt8], mode: mode_t = 0o644) throws(SystemError) {
        let dir = parentDirectory(of: path)
        let tmp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try OwnedFD.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: mode)
        do {
            try fd.writeAll(bytes)
            _ = try retryingEINTR("fsync", detail: tmp) { fsync(fd.raw) }
        } catch {
            unlink(tmp)
            throw error
        }
        fd.close()
        guard rename(tmp, path) == 0 else {
            let e = SystemError.current("rename", detail: path)
            unlink(tmp)
            throw e
        }
        try syncDirectory(dir)
    }

    /// fsync(2) on a directory, so a rename or create in it is durable.
    public static func syncDirectory(_ dir: String) throws(SystemError) {
        let d = try OwnedFD.open(dir, O_RDONLY | O_DIRECTORY)
        _ = try retryingEINTR("fsync", detail: dir) { fsync(d.raw) }
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
