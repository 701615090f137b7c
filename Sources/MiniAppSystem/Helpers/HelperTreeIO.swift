import Glibc

/// The descriptor-relative file calls of the daemon's check of a helper-written tree
/// (MiniAppPackages' `StagedTreeCheck`) and of handing a staging directory to a helper.
public enum HelperTreeIO {
    /// True when this process runs as root (a helper then runs as another uid).
    public static var runsAsRoot: Bool { geteuid() == 0 }

    /// fchown(2).
    public static func setOwner(descriptor fd: Int32, uid: UInt32, gid: UInt32) throws(SystemError) {
        if fchown(fd, uid, gid) != 0 { throw SystemError.current("fchown") }
    }

    /// Makes `fd` this process's own (effective uid/gid), when it is root.
    public static func takeOwnership(descriptor fd: Int32) throws(SystemError) {
        if runsAsRoot { try setOwner(descriptor: fd, uid: geteuid(), gid: getegid()) }
    }

    /// Opens `name` under `dirFD` read-only, never following a symlink, never blocking (a FIFO).
    public static func openFile(at dirFD: Int32, _ name: String) -> OwnedFD? {
        let fd = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        return fd >= 0 ? OwnedFD(adopting: fd) : nil
    }

    /// Opens the directory `name` under `dirFD`, never following a symlink.
    public static func openDirectory(at dirFD: Int32, _ name: String) -> OwnedFD? {
        let fd = openat(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        return fd >= 0 ? OwnedFD(adopting: fd) : nil
    }

    /// Size of `fd` when it is a regular file with exactly one link; nil otherwise.
    public static func singleLinkRegularFileSize(_ fd: Int32) -> UInt64? {
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_nlink == 1 else { return nil }
        return UInt64(st.st_size)
    }

    /// Ends the helper process (after the daemon closed its socket).
    public static func exitHelper() -> Never { exit(0) }
}
