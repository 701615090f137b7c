#if canImport(Glibc)
import Glibc
#endif

/// Flags for `OwnedFD.open(_:options:)`; no flag opens read-only. `O_CLOEXEC` is always added.
public struct OpenOptions: OptionSet, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public static let writeOnly = OpenOptions(rawValue: O_WRONLY)
    public static let readWrite = OpenOptions(rawValue: O_RDWR)
    public static let create = OpenOptions(rawValue: O_CREAT)
    /// With `.create`: fail if the name exists (nothing pre-existing can be written through).
    public static let exclusive = OpenOptions(rawValue: O_EXCL)
    public static let truncate = OpenOptions(rawValue: O_TRUNC)
    public static let append = OpenOptions(rawValue: O_APPEND)
    /// Fail (ELOOP) rather than follow a final symlink.
    public static let noFollow = OpenOptions(rawValue: O_NOFOLLOW)
    /// Do not block on a FIFO at open (its type is then checked with `FileSystem.status`).
    public static let nonBlocking = OpenOptions(rawValue: O_NONBLOCK)
    public static let noControllingTerminal = OpenOptions(rawValue: O_NOCTTY)
    public static let directory = OpenOptions(rawValue: O_DIRECTORY)
}

extension OwnedFD {
    /// `open(2)` with typed options (and O_CLOEXEC).
    public static func open(_ path: String, options: OpenOptions = [], mode: UInt32 = 0o600) throws(SystemError) -> OwnedFD {
        try open(path, options.rawValue, mode: mode_t(mode))
    }
}

/// fd-relative file-system calls. Every path is resolved relative to a directory descriptor,
/// one component at a time with `O_NOFOLLOW`, never as a string from `/`, so a symlink or a
/// rename planted in the tree cannot redirect a write (the extraction half of the zip-slip
/// defence, and how the package store touches the state directory).
public enum DirectoryTree {
    /// The working directory as a `dirFD` (`AT_FDCWD`): a path given with it is taken as is.
    public static let workingDirectory: Int32 = AT_FDCWD

    /// Whether `name` under `dirFD` exists (`faccessat(F_OK)`, a final symlink not followed).
    public static func exists(at dirFD: Int32, _ name: String) -> Bool { faccessat(dirFD, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 }

    /// Opens (never follows) directory `name` under `dirFD`.
    public static func openDirectory(at dirFD: Int32, _ name: String) throws(SystemError) -> OwnedFD {
        let fd = try retryingEINTR("openat", detail: name) { openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        return OwnedFD(adopting: fd)
    }

    /// Like `openDirectory`, but nil when `name` does not exist (or a component is not a directory).
    public static func openDirectoryIfPresent(at dirFD: Int32, _ name: String) throws(SystemError) -> OwnedFD? {
        do { return try openDirectory(at: dirFD, name) } catch where error.errno == ENOENT || error.errno == ENOTDIR { return nil }
    }

    /// Opens file `name` under `dirFD` without following a final symlink.
    public static func openFile(at dirFD: Int32, _ name: String, options: OpenOptions = [], mode: UInt32 = 0o600) throws(SystemError) -> OwnedFD {
        let flags = options.rawValue | O_NOFOLLOW | O_CLOEXEC
        let fd = try retryingEINTR("openat", detail: name) { openat(dirFD, name, flags, mode_t(mode)) }
        return OwnedFD(adopting: fd)
    }

    /// Creates directory `name`; `exclusive` makes an existing one an error (the O_EXCL of mkdir).
    public static func makeDirectory(at dirFD: Int32, _ name: String, mode: UInt32 = 0o700, exclusive: Bool) throws(SystemError) {
        if mkdirat(dirFD, name, mode_t(mode)) != 0 && !(errno == EEXIST && !exclusive) { throw SystemError.current("mkdirat", detail: name) }
    }

    /// One `renameat(2)` (atomic within a file system).
    public static func rename(at fromDir: Int32, _ from: String, to toDir: Int32, _ to: String) throws(SystemError) {
        guard renameat(fromDir, from, toDir, to) == 0 else { throw SystemError.current("renameat", detail: to) }
    }

    /// `unlinkat(2)` of a file (or an empty directory when `directory`); a missing name is fine.
    public static func unlink(at dirFD: Int32, _ name: String, directory: Bool = false) throws(SystemError) {
        if unlinkat(dirFD, name, directory ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT { throw SystemError.current("unlinkat", detail: name) }
    }

    /// Whether `fd` is still the entry `name` under `dirFD` (same inode, not a symlink swapped in).
    public static func isEntry(_ fd: Int32, named name: String, in dirFD: Int32) -> Bool {
        guard let own = try? FileSystem.status(descriptor: fd), let linked = try? FileSystem.status(at: dirFD, name) else { return false }
        return own.isSameFile(as: linked)
    }

    /// `flock(2)` exclusive on `fd`: blocking (EINTR retried) or, with `wait: false`, false
    /// when another holder has it. The kernel drops the lock with the descriptor.
    public static func lockExclusive(_ fd: Int32, wait: Bool = true) throws(SystemError) -> Bool {
        while flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return false }
            throw SystemError.current("flock")
        }
        return true
    }

    /// Names in a directory (except `.` and `..`); empty when it cannot be read.
    public static func list(_ dirFD: Int32) -> [String] {
        let dup = fcntl(dirFD, F_DUPFD_CLOEXEC, 0)
        guard dup >= 0 else { return [] }
        guard let d = fdopendir(dup) else {
            _ = Glibc.close(dup)
            return []
        }
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
    /// Never follows symlinks (it unlinks them). Best effort: what cannot be removed stays.
    public static func remove(at dirFD: Int32, _ name: String) {
        if unlinkat(dirFD, name, 0) == 0 || errno == ENOENT { return }
        guard let sub = try? openDirectory(at: dirFD, name) else { return }
        _ = fchmod(sub.raw, 0o700)
        for child in list(sub.raw) { remove(at: sub.raw, child) }
        _ = unlinkat(dirFD, name, AT_REMOVEDIR)
    }
}
