import Glibc

/// e2fsprogs on a program's /data image while no loop device holds it: check it (`e2fsck`),
/// read its geometry (`dumpe2fs -h`), estimate the smallest size its data fits in and resize
/// it (`resize2fs`). None of it needs a privilege: the image is a regular file the daemon owns.
///
/// Why check before mounting: the program decides every byte of its filesystem's contents, a
/// crash can leave the filesystem half-written, and the image is mounted by the kernel's ext4
/// driver, whose parser has had memory-safety bugs reachable from a crafted image (the class of
/// CVE-2018-10840, CVE-2018-10880, CVE-2019-19037: a corrupted inode, xattr or directory block
/// turns into an out-of-bounds write in the kernel at mount or first access). A full `e2fsck -f`
/// in user space walks all of that metadata first; what preen mode cannot repair is refused.
///
/// Every tool gets the image as its fd 3 (`/proc/self/fd/3`), opened here with `O_NOFOLLOW` and
/// checked to be a regular file with one link, so no path is resolved twice and no device, FIFO
/// or link reaches them; each runs under a deadline (a crafted image must not stall a launch
/// forever) with a fixed environment.
public enum VolumeImage {
    /// What `dumpe2fs -h` reports of the filesystem's layout.
    public struct Geometry: Sendable, Equatable {
        public var blockSize: UInt64, blockCount: UInt64, blocksPerGroup: UInt64
        public var inodeCount: UInt64, inodesPerGroup: UInt64, freeInodes: UInt64
        /// Block groups for `blocks` blocks (what a resize to it leaves).
        public func groups(forBlocks blocks: UInt64) -> UInt64 { (blocks + blocksPerGroup - 1) / max(1, blocksPerGroup) }
    }

    /// The outcome of `check`.
    public enum Check: Sendable, Equatable {
        /// Nothing to repair.
        case clean
        /// Repaired in preen mode (a journal replayed, counters fixed, orphans released).
        case repaired
        /// Left unrepaired: e2fsck's exit status (4: errors preen mode may not fix) and its report.
        case uncorrected(status: Int32, report: String)
    }

    /// Deadlines: a check or a read walks metadata only; a resize may move every data block.
    public static let checkMillis = 120_000, readMillis = 30_000, resizeMillis = 600_000

    /// What holds an image: nothing, a mounted filesystem (a worker's mount namespace can
    /// still hold the volume after the daemon's own mount went: the kernel has it mounted, no
    /// tool may touch it, and mounting it again reuses that superblock), or a loop device whose
    /// last mount has just gone (autoclear detaches it a moment later; mounting through it
    /// would read its cached blocks, not the file a check just repaired).
    public enum Attachment: Sendable, Equatable { case none, mounted, detaching }

    /// The loop device backed by `image` (`/sys/block/loop*/loop/backing_file`) and whether an
    /// ext4 filesystem is mounted from it (`/sys/fs/ext4/loopN`, in any mount namespace).
    public static func attachment(_ image: String) -> Attachment {
        guard let real = realpath(image, nil) else { return .none }
        let path = String(cString: real)
        free(real)
        let names = ((try? FileSystem.list("/sys/block")) ?? []).filter { $0.hasPrefix("loop") }
        let device = names.first { name in
            guard var backing = firstLine("/sys/block/\(name)/loop/backing_file") else { return false }
            if backing.hasSuffix(" (deleted)") { backing = String(backing.dropLast(10)) }
            return backing == path
        }
        guard let device else { return .none }
        return access("/sys/fs/ext4/\(device)", F_OK) == 0 ? .mounted : .detaching
    }

    /// `attachment`, after waiting up to `millis` for the image to be let go: the mounts of
    /// workers that have just ended (a daemon's restart stops them) go with their mount
    /// namespaces, then the loop device, a moment after the processes are reaped.
    public static func settledAttachment(_ image: String, millis: Int = 10_000) -> Attachment {
        let deadline = monotonicNanos() + UInt64(millis) * 1_000_000
        while true {
            let a = attachment(image)
            guard a != .none, monotonicNanos() < deadline else { return a }
            CurrentProcess.sleep(micros: 20_000)
        }
    }

    /// The first line of a small sysfs file (nil: absent, as for a loop device with no backing).
    private static func firstLine(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4097)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
    }

    /// `e2fsck -f -p`: a full check in preen mode (repairs only what is safe without a human).
    public static func check(_ image: String) throws(SystemError) -> Check {
        let out = try run(tool: "e2fsck", ["-f", "-p"], image, writable: true, timeoutMillis: checkMillis)
        switch out.status {
        case 0: return .clean
        case 1, 2: return .repaired
        default: return .uncorrected(status: out.status ?? -1, report: String(out.output.suffix(2000)))
        }
    }

    /// The filesystem's layout (`dumpe2fs -h`).
    public static func geometry(_ image: String) throws(SystemError) -> Geometry {
        let out = try run(tool: "dumpe2fs", ["-h"], image, writable: false, timeoutMillis: readMillis)
        guard out.status == 0, let g = parseGeometry(out.output) else {
            throw SystemError("dumpe2fs", errno: EIO, detail: "\(image): exit status \(out.status.map(String.init) ?? "timeout")")
        }
        return g
    }

    /// Reads the fields of `dumpe2fs -h` output; nil when one is missing, not a number or zero.
    static func parseGeometry(_ text: String) -> Geometry? {
        var fields: [Substring: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            if let n = UInt64(value) { fields[line[..<colon]] = n }
        }
        guard let bs = fields["Block size"], let bc = fields["Block count"], let bpg = fields["Blocks per group"],
              let ic = fields["Inode count"], let ipg = fields["Inodes per group"], let fi = fields["Free inodes"],
              bs > 0, bc > 0, bpg > 0, ic > 0, ipg > 0 else { return nil }
        return Geometry(blockSize: bs, blockCount: bc, blocksPerGroup: bpg, inodeCount: ic, inodesPerGroup: ipg, freeInodes: fi)
    }

    /// `resize2fs -P`: the fewest blocks the filesystem's data fits in (an estimate that errs
    /// on the large side). Needs a freshly checked filesystem (`check` first).
    public static func minimumBlocks(_ image: String) throws(SystemError) -> UInt64 {
        let out = try run(tool: "resize2fs", ["-P"], image, writable: false, timeoutMillis: readMillis)
        let marker = "minimum size of the filesystem:"
        guard out.status == 0, let line = out.output.split(separator: "\n").first(where: { $0.contains(marker) }),
              let n = UInt64(line.split(separator: ":").last?.trimmingPrefix(" ") ?? "") else {
            throw SystemError("resize2fs -P", errno: EIO, detail: "\(image): \(out.output.suffix(300))")
        }
        return n
    }

    /// `resize2fs` to `blocks` filesystem blocks; the image file is truncated to the new size
    /// when it shrinks (a growth goes through `grow`, which preallocates first). Never forced (`-f`):
    /// resize2fs refuses a size the data does not fit in before changing anything.
    public static func resize(_ image: String, blocks: UInt64) throws(SystemError) {
        let out = try run(tool: "resize2fs", [], image, writable: true, timeoutMillis: resizeMillis, trailing: [String(blocks)])
        guard out.status == 0 else {
            throw SystemError("resize2fs", errno: out.status == nil ? ETIMEDOUT : EIO, detail: "\(image): \(out.output.suffix(300))")
        }
    }

    /// Grows the filesystem of `g` to `blocks` blocks: the image is preallocated to the new
    /// size first (a sparse tail would let the state filesystem fill up under the program's
    /// feet), then `resize2fs`; on failure the image is truncated back to its old size.
    public static func grow(_ image: String, from g: Geometry, to blocks: UInt64) throws(SystemError) {
        let fd = open(image, O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.current("open", detail: image) }
        defer { close(fd) }
        let r = posix_fallocate(fd, 0, off_t(blocks * g.blockSize))
        do throws(SystemError) {
            guard r == 0 else { throw SystemError("posix_fallocate", errno: r, detail: image) }
            try resize(image, blocks: blocks)
        } catch {
            _ = ftruncate(fd, off_t(g.blockCount * g.blockSize))
            throw error
        }
    }

    /// e2fsprogs' tools, looked up in the usual places.
    static func toolPath(_ name: String) -> String? { ["/usr/sbin/", "/sbin/"].map { $0 + name }.first { access($0, X_OK) == 0 } }

    /// Runs `tool args /proc/self/fd/3 trailing` with the image opened and checked as fd 3.
    private static func run(tool: String, _ args: [String], _ image: String, writable: Bool, timeoutMillis: Int,
                            trailing: [String] = []) throws(SystemError) -> Processes.Outcome {
        guard let path = toolPath(tool) else { throw SystemError(tool, errno: ENOENT, detail: "install e2fsprogs") }
        let fd = open(image, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SystemError.current("open", detail: image) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else {
            throw SystemError(tool, errno: EINVAL, detail: "\(image) is not a regular file with one link")
        }
        return try Processes.run([path] + args + ["/proc/self/fd/3"] + trailing, environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"],
                                 files: [.duplicate(fd, to: 3)], timeoutMillis: timeoutMillis)
    }
}
