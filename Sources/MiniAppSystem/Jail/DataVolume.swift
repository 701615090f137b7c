import CJail
import Glibc

/// One program's `/data` as a filesystem of its own: an ext4 image file (`image`) of fixed size
/// and inode count, mounted through a loop device on the program's data directory. The kernel
/// enforces both numbers: a program that fills its /data gets ENOSPC there and nowhere else.
///
/// The image is preallocated (`fallocate`), so its bytes are taken from the state filesystem
/// when it is made, never while the program writes: a program can neither fill the state
/// filesystem nor see its own writes fail because a neighbour filled it (a sparse image would
/// turn a full host disk into I/O errors inside every program's filesystem). ext4's journal
/// keeps what was written across a crash of the daemon or the machine.
///
/// Creating the image needs no privilege (`mkfs.ext4` on a regular file, the root directory's
/// owner set by `root_owner`); mounting it does (`cjail_volume_mount`, C, descriptors only).
public struct DataVolume: Sendable, Equatable {
    /// The image file (`STATE/volumes/<program>.ext4`).
    public let image: String
    /// Where it is mounted (`STATE/data/<program>`).
    public let directory: String

    /// What the mounted filesystem reports (statvfs): used and total bytes and inodes.
    public struct Usage: Sendable, Equatable {
        public var usedBytes: UInt64, capacityBytes: UInt64, usedInodes: UInt64, capacityInodes: UInt64
        public init(usedBytes: UInt64, capacityBytes: UInt64, usedInodes: UInt64, capacityInodes: UInt64) {
            self.usedBytes = usedBytes; self.capacityBytes = capacityBytes; self.usedInodes = usedInodes; self.capacityInodes = capacityInodes
        }
    }

    /// Added to the program's count so it gets at least `inodes` files of its own: ext4 keeps
    /// inodes 1…10 for itself (the root directory among them), and mke2fs rounds the count
    /// down to whole inode-table blocks and bitmap bytes (up to 32 per block group here).
    public static let reservedInodes: UInt64 = 48

    /// The image exists.
    public var exists: Bool { access(image, F_OK) == 0 }

    /// Whether something is mounted on `directory` (its device differs from its parent's).
    /// The parent is named by its path, not `directory/..`: a daemon that dropped its
    /// privileges may not search the program's 0700 directory.
    public var isMounted: Bool { Self.isMounted(directory) }

    /// Whether something is mounted on `directory` (see `isMounted`).
    public static func isMounted(_ directory: String) -> Bool {
        var d = stat(), p = stat()
        let parent = directory.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        guard stat(directory, &d) == 0, stat(parent.isEmpty ? "/" : parent, &p) == 0 else { return false }
        return d.st_dev != p.st_dev
    }

    /// Makes the image: created exclusively (0600), `bytes` preallocated, then formatted with
    /// room for `inodes` files, no blocks reserved for root, its root directory owned by
    /// `uid:gid`. A failure removes the partial image.
    public func create(bytes: UInt64, inodes: UInt64, uid: UInt32, gid: UInt32) throws(SystemError) {
        let fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemError.current("open", detail: image) }
        let r = posix_fallocate(fd, 0, off_t(bytes))
        close(fd)
        do throws(SystemError) {
            guard r == 0 else { throw SystemError("posix_fallocate", errno: r, detail: image) }
            try Self.mkfs(image, inodes: inodes + Self.reservedInodes, uid: uid, gid: gid)
        } catch {
            unlink(image)
            throw error
        }
    }

    /// Mounts the image on `directory` (the directory must exist). The first mount of a fresh
    /// image removes its empty lost+found, so /data starts empty.
    public func mount() throws(SystemError) {
        let img = try openBacked()
        defer { close(img) }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        guard dir >= 0 else { throw SystemError.current("open", detail: directory) }
        defer { close(dir) }
        var loop: CInt = -1
        let e = cjail_volume_mount(img, dir, &loop)
        guard e == 0 else { throw SystemError("mount", errno: e, detail: "\(image) on \(directory)") }
        _ = rmdir(directory + "/lost+found") // fails harmlessly once the program has used it
    }

    /// Mounts the image through `mounter` (a privileged process, given the opened image):
    /// for a daemon that dropped its privileges. 0 or -errno from the mounter.
    public func mount(through mounter: (Int32) -> Int32) throws(SystemError) {
        let img = try openBacked()
        defer { close(img) }
        let r = mounter(img)
        guard r == 0 else { throw SystemError("mount", errno: -r, detail: "\(image) on \(directory) (through the spawner)") }
    }

    /// The image opened for mounting, every byte of it backed by the state filesystem first.
    /// A hole in the image (a zero-out the kernel turned into a punched hole, an image made by
    /// an older mkfs, a copy) would take a block only when the program writes there: on a full
    /// state filesystem that write fails inside the kernel, the loop device reports an I/O
    /// error, ext4 aborts its journal and the volume turns read-only under the program.
    /// Allocating again is a no-op for allocated ranges; a state filesystem that cannot back
    /// the volume refuses the launch here, with ENOSPC, instead.
    private func openBacked() throws(SystemError) -> Int32 {
        let img = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard img >= 0 else { throw SystemError.current("open", detail: image) }
        var st = stat()
        guard fstat(img, &st) == 0 else {
            let e = SystemError.current("fstat", detail: image)
            close(img)
            throw e
        }
        let r = st.st_size > 0 ? posix_fallocate(img, 0, st.st_size) : 0
        guard r == 0 else {
            close(img)
            throw SystemError("posix_fallocate", errno: r, detail: "\(image): the state filesystem cannot back the whole /data volume")
        }
        return img
    }

    /// Detaches the mount (workers still holding it keep it until they end; the loop device
    /// goes with the last of them).
    public func unmount() { Self.unmount(directory) }

    /// Detaches whatever is mounted on `directory` (see `unmount()`).
    public static func unmount(_ directory: String) { _ = umount2(directory, Int32(MNT_DETACH)) }

    /// The mounted filesystem's usage, or nil when nothing is mounted.
    public func usage() -> Usage? {
        guard isMounted else { return nil }
        var s = statvfs()
        guard statvfs(directory, &s) == 0 else { return nil }
        let block = UInt64(s.f_frsize)
        return Usage(usedBytes: (UInt64(s.f_blocks) - UInt64(s.f_bfree)) * block, capacityBytes: UInt64(s.f_blocks) * block,
                     usedInodes: UInt64(s.f_files) - UInt64(s.f_ffree), capacityInodes: UInt64(s.f_files))
    }

    /// Free bytes and inodes an unprivileged writer has on the filesystem holding `path`.
    public static func available(_ path: String) -> (bytes: UInt64, inodes: UInt64)? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return (UInt64(s.f_bavail) * UInt64(s.f_frsize), UInt64(s.f_favail))
    }

    /// mkfs.ext4 from e2fsprogs (scripts/install-deps), looked up in the usual places.
    public static let mkfsPath: String? = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].first { access($0, X_OK) == 0 }

    /// `-m 0`: the program gets every block (it never runs as root there); `nodiscard`: a
    /// discard would punch the preallocated blocks back out of the image; inode tables and
    /// journal written now (`lazy_itable_init=0,lazy_journal_init=0`): left to the kernel's
    /// lazy init, they are zeroed through the loop device as punched holes, which a full state
    /// filesystem then cannot fill; no resize inode.
    private static func mkfs(_ image: String, inodes: UInt64, uid: UInt32, gid: UInt32) throws(SystemError) {
        guard let mkfs = mkfsPath else { throw SystemError("mkfs.ext4", errno: ENOENT, detail: "install e2fsprogs") }
        let args = [mkfs, "-q", "-F", "-t", "ext4", "-m", "0", "-N", String(inodes), "-O", "^resize_inode",
                    "-E", "root_owner=\(uid):\(gid),nodiscard,lazy_itable_init=0,lazy_journal_init=0", "-L", "miniapp-data", image]
        let status = try Processes.run(args, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], files: [.devNull(0), .devNull(1), .devNull(2)])
        guard status == 0 else { throw SystemError("mkfs.ext4", errno: EIO, detail: "\(image): exit status \(status)") }
    }
}

extension DataVolume {
    /// `programId`'s volume: the image `<imageDirectory>/<programId>.ext4`, mounted on `directory`.
    public init(programId: String, imagesIn imageDirectory: String, mountedOn directory: String) {
        self.init(image: "\(imageDirectory)/\(programId).ext4", directory: directory)
    }
}
