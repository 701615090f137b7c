#if canImport(Glibc)
import Glibc
#endif

/// What `stat(2)` says a path or descriptor is.
public enum FileKind: Sendable, Equatable {
    case regular, directory, symlink
    /// A FIFO, device node or socket: never read as a file (a FIFO would block the reader).
    case other
}

/// The fields of `struct stat` the project reads.
public struct FileStatus: Sendable, Equatable {
    public var kind: FileKind
    /// Permission bits (`st_mode & 07777`).
    public var permissions: UInt32
    public var size: Int
    public var inode: UInt64
    public var device: UInt64

    init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        default: kind = .other
        }
        permissions = UInt32(st.st_mode & 0o7777)
        size = Int(st.st_size)
        inode = UInt64(st.st_ino)
        device = UInt64(st.st_dev)
    }

    /// Whether two statuses name the same inode (a rename or a swap between them shows here).
    public func isSameFile(as other: FileStatus) -> Bool { inode == other.inode && device == other.device }
}

/// Path-based file-system calls for the layers above (typed results, `SystemError` on failure).
/// Where a path may be raced (the state directory), prefer `DirectoryTree`'s fd-relative calls.
public enum FileSystem {
    /// `stat(2)` (or `lstat(2)` when `followSymlinks` is false).
    public static func status(_ path: String, followSymlinks: Bool = true) throws(SystemError) -> FileStatus {
        var st = stat()
        let rc = followSymlinks ? stat(path, &st) : lstat(path, &st)
        guard rc == 0 else { throw SystemError.current(followSymlinks ? "stat" : "lstat", detail: path) }
        return FileStatus(st)
    }

    /// `fstat(2)` of an open descriptor.
    public static func status(descriptor fd: Int32) throws(SystemError) -> FileStatus {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError.current("fstat") }
        return FileStatus(st)
    }

    /// `fstatat(2)` of `name` under `dirFD`, never following a final symlink.
    public static func status(at dirFD: Int32, _ name: String) throws(SystemError) -> FileStatus {
        var st = stat()
        guard fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw SystemError.current("fstatat", detail: name) }
        return FileStatus(st)
    }

    /// Whether `path` exists (`access(F_OK)`; a dangling symlink does not).
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Whether this process may execute `path` (`access(X_OK)`).
    public static func isExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

    /// `rename(2)` (atomic within a file system; replaces `to`).
    public static func rename(_ from: String, to: String) throws(SystemError) {
        guard Glibc.rename(from, to) == 0 else { throw SystemError.current("rename", detail: to) }
    }

    /// `link(2)`: a second name for `from`; fails (EEXIST) if `to` exists, which makes it the
    /// way to publish a file only when no one else did.
    public static func link(_ from: String, to: String) throws(SystemError) {
        guard Glibc.link(from, to) == 0 else { throw SystemError.current("link", detail: to) }
    }

    /// Whether `path` is (or links to) a directory.
    public static func isDirectory(_ path: String) -> Bool { (try? status(path))?.kind == .directory }

    /// `mkdir(2)`; an existing entry is fine when `existingOK`.
    public static func makeDirectory(_ path: String, mode: UInt32 = 0o755, existingOK: Bool = true) throws(SystemError) {
        if mkdir(path, mode_t(mode)) != 0 && !(existingOK && errno == EEXIST) { throw SystemError.current("mkdir", detail: path) }
    }

    /// `chmod(2)`.
    public static func setPermissions(_ path: String, _ mode: UInt32) throws(SystemError) {
        guard chmod(path, mode_t(mode)) == 0 else { throw SystemError.current("chmod", detail: path) }
    }

    /// `chown(2)`.
    public static func setOwner(_ path: String, uid: UInt32, gid: UInt32) throws(SystemError) {
        guard chown(path, uid, gid) == 0 else { throw SystemError.current("chown", detail: path) }
    }

    /// `readlink(2)`, or nil when `path` is not a symlink or cannot be read.
    public static func symlinkTarget(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `unlink(2)`; a missing file is not an error.
    public static func removeFile(_ path: String) throws(SystemError) {
        if unlink(path) != 0 && errno != ENOENT { throw SystemError.current("unlink", detail: path) }
    }

    /// The names in directory `path` (without `.` and `..`).
    public static func list(_ path: String) throws(SystemError) -> [String] {
        let dir = try OwnedFD.open(path, O_RDONLY | O_DIRECTORY)
        return DirectoryTree.list(dir.raw)
    }

    /// `mkdtemp(3)`: a new private (0700) directory named `prefix` plus six random characters.
    public static func makeTemporaryDirectory(prefix: String) throws(SystemError) -> String {
        var template = Array((prefix + "XXXXXX").utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw SystemError.current("mkdtemp", detail: prefix)
        }
        return String(cString: p)
    }

    /// `fsync(2)`.
    public static func sync(descriptor fd: Int32, _ what: String? = nil) throws(SystemError) {
        guard fsync(fd) == 0 else { throw SystemError.current("fsync", detail: what) }
    }

    /// `fchmod(2)`.
    public static func setPermissions(descriptor fd: Int32, _ mode: UInt32) throws(SystemError) {
        guard fchmod(fd, mode_t(mode)) == 0 else { throw SystemError.current("fchmod") }
    }

    /// `pread(2)` until `buffer` is full or EOF, from `offset`; returns the bytes read (fewer
    /// than asked only at EOF). EINTR is retried.
    public static func read(descriptor fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try retryingEINTR("pread") { pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done)) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// One `read(2)` from `fd` into `buffer` (EINTR retried); 0 at EOF.
    public static func read(descriptor fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try retryingEINTR("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Whether `fd` is an open descriptor of this process (`fcntl(F_GETFD)`).
    public static func isOpenDescriptor(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }
}
