import Foundation
@testable import MiniAppSystem
import Testing

/// e2fsprogs on real ext4 images (mkfs.ext4 on a regular file, no mount needed): the check
/// before mounting tells clean, repaired and unrepairable images apart, resizes keep the data,
/// the tools never run on anything but a regular file with one link, and a tool that hangs is
/// killed at its deadline.
@Suite("/data volume images: e2fsck, geometry, resize", .serialized)
struct VolumeImageTests {
    static let base = "/tmp/ma-volume-image-tests"

    /// A fresh 8 MiB volume image (64 files) at `base/name`.
    static func image(_ name: String) throws -> DataVolume {
        try FileSystem.makeDirectory(base, mode: 0o700)
        let v = DataVolume(image: "\(base)/\(name).ext4", directory: "\(base)/\(name)")
        unlink(v.image)
        try v.create(bytes: 8 << 20, inodes: 64, uid: 4242, gid: 4242)
        return v
    }

    /// debugfs -w on the image (what a crafted or damaged image looks like).
    static func debugfs(_ image: String, _ request: String) throws {
        let status = try Processes.run(["/usr/sbin/debugfs", "-w", "-R", request, image], files: [.devNull(0), .devNull(1), .devNull(2)])
        #expect(status == 0, "debugfs \(request)")
    }

    @Test func aFreshImageIsCleanAndReportsItsGeometry() throws {
        let v = try Self.image("fresh")
        #expect(try VolumeImage.check(v.image) == .clean)
        let g = try VolumeImage.geometry(v.image)
        #expect(g.blockSize * g.blockCount == 8 << 20, "\(g)")
        #expect(g.inodeCount >= 64 + DataVolume.reservedInodes && g.inodeCount <= 64 + DataVolume.reservedInodes + 32, "\(g)")
    }

    @Test func preenModeRepairsWhatIsSafeAndRefusesTheRest() throws {
        let repairable = try Self.image("repairable")
        try Self.debugfs(repairable.image, "sif <2> links_count 9")
        #expect(try VolumeImage.check(repairable.image) == .repaired)
        #expect(try VolumeImage.check(repairable.image) == .clean)

        let broken = try Self.image("broken")
        try Self.debugfs(broken.image, "clri <2>") // no root directory
        guard case .uncorrected(let status, let report) = try VolumeImage.check(broken.image) else {
            Issue.record("a filesystem without a root directory passed the check")
            return
        }
        #expect(status == 4 && report.contains("UNEXPECTED INCONSISTENCY"), "\(status) \(report)")

        // Garbage over the group descriptors and inode table: never passes as clean.
        let garbage = try Self.image("garbage")
        let fd = open(garbage.image, O_WRONLY)
        let junk = [UInt8](repeating: 0xA5, count: 64 << 10)
        #expect(pwrite(fd, junk, junk.count, 2048) == junk.count)
        close(fd)
        #expect(try VolumeImage.check(garbage.image) != .clean)
    }

    @Test func aResizeGrowsAndShrinksAndResize2fsSaysWhenTheDataDoesNotFit() throws {
        let v = try Self.image("resize")
        let payload = "\(Self.base)/payload"
        try Data(repeating: 7, count: 3 << 20).write(to: URL(fileURLWithPath: payload))
        try Self.debugfs(v.image, "write \(payload) big")
        #expect(try VolumeImage.check(v.image) == .clean)
        let g = try VolumeImage.geometry(v.image)
        let minimum = try VolumeImage.minimumBlocks(v.image)
        #expect(minimum * g.blockSize > 3 << 20 && minimum < g.blockCount, "\(minimum)")

        try VolumeImage.resize(v.image, blocks: (5 << 20) / g.blockSize)
        #expect(try FileSystem.status(v.image).size == 5 << 20)
        #expect(try VolumeImage.geometry(v.image).blockCount == (5 << 20) / g.blockSize)
        #expect(throws: SystemError.self) { try VolumeImage.resize(v.image, blocks: minimum / 2) }
        #expect(try VolumeImage.check(v.image) == .clean)

        try VolumeImage.grow(v.image, from: try VolumeImage.geometry(v.image), to: (12 << 20) / g.blockSize)
        #expect(try VolumeImage.geometry(v.image).blockCount == (12 << 20) / g.blockSize)
        var st = stat()
        #expect(stat(v.image, &st) == 0 && st.st_size == 12 << 20 && Int(st.st_blocks) * 512 >= 12 << 20, "preallocated")
        #expect(try VolumeImage.check(v.image) == .clean)
        let dump = "\(Self.base)/dumped"
        unlink(dump)
        try Self.debugfs(v.image, "dump big \(dump)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dump)) == Data(repeating: 7, count: 3 << 20))
    }

    /// A mounted image is the kernel's: reported as mounted (the launch then shares that
    /// superblock and runs no tool on it); once unmounted its loop device goes.
    @Test(.enabled(if: CurrentProcess.isRoot)) func aMountedImageIsSeenAsMounted() throws {
        let v = try Self.image("mounted")
        #expect(VolumeImage.attachment(v.image) == .none)
        try FileSystem.makeDirectory(v.directory, mode: 0o700)
        try v.mount()
        defer { v.unmount() }
        #expect(VolumeImage.attachment(v.image) == .mounted)
        v.unmount()
        #expect(VolumeImage.settledAttachment(v.image) == .none)
    }

    /// A hole in an image (what a zero-out through the loop device leaves) is allocated again
    /// before the mount: a write into it must never wait for a block a full state filesystem
    /// no longer has (the loop device's I/O error aborts ext4's journal: read-only /data).
    @Test(.enabled(if: CurrentProcess.isRoot)) func aHoleInTheImageIsBackedAgainBeforeTheMount() throws {
        let v = try Self.image("holes")
        func allocated() throws -> Int {
            var st = stat()
            try #require(stat(v.image, &st) == 0)
            return Int(st.st_blocks) * 512
        }
        #expect(try allocated() >= 8 << 20, "mkfs left the image preallocated")
        let punch = try Processes.run(["/usr/bin/fallocate", "--punch-hole", "--offset", "2MiB", "--length", "4MiB", v.image],
                                      files: [.devNull(0), .devNull(1), .devNull(2)])
        try #require(punch == 0)
        #expect(try allocated() < 8 << 20, "the hole is punched")
        try FileSystem.makeDirectory(v.directory, mode: 0o700)
        try v.mount()
        defer { v.unmount() }
        #expect(try allocated() >= 8 << 20, "every byte backed again before the kernel writes through it")
        v.unmount()
        _ = VolumeImage.settledAttachment(v.image)
    }

    @Test(arguments: ["symlink", "fifo", "directory", "hardlink"])
    func theToolsRunOnARegularFileWithOneLinkOnly(kind: String) throws {
        let target = try Self.image("target-\(kind)")
        let path = "\(Self.base)/hostile-\(kind)"
        unlink(path)
        rmdir(path)
        switch kind {
        case "symlink": symlink(target.image, path)
        case "fifo": mkfifo(path, 0o600)
        case "directory": mkdir(path, 0o700)
        default: link(target.image, path)
        }
        #expect(throws: SystemError.self) { _ = try VolumeImage.check(path) }
        #expect(throws: SystemError.self) { try VolumeImage.resize(path, blocks: 4096) }
    }

    /// dumpe2fs output the geometry reader must refuse (a field missing, not a number, zero).
    @Test(arguments: [
        "", "Block size: 1024", "garbage\n:::\n",
        "Block size: 1024\nBlock count: 8192\nBlocks per group: 8192\nInode count: 112\nInodes per group: 112",
        "Block size: 0\nBlock count: 8192\nBlocks per group: 8192\nInode count: 112\nInodes per group: 112\nFree inodes: 1",
        "Block size: -1024\nBlock count: 8192\nBlocks per group: 8192\nInode count: 112\nInodes per group: 112\nFree inodes: 1",
        "Block size: 1024\nBlock count: 99999999999999999999999\nBlocks per group: 8192\nInode count: 112\nInodes per group: 112\nFree inodes: 1",
        "Block size: 1k\nBlock count: 8192\nBlocks per group: 8192\nInode count: 112\nInodes per group: 112\nFree inodes: 1",
    ])
    func theGeometryReaderRefusesIncompleteOutput(text: String) {
        #expect(VolumeImage.parseGeometry(text) == nil)
    }

    @Test func aToolThatHangsIsKilledAtItsDeadline() throws {
        let out = try Processes.run(["/bin/sleep", "30"], timeoutMillis: 200)
        #expect(out.status == nil)
        let chatty = try Processes.run(["/bin/sh", "-c", "head -c 1000000 /dev/zero; echo done >&2; exit 3"], timeoutMillis: 20_000, outputLimit: 100)
        #expect(chatty.status == 3 && chatty.output.utf8.count == 100)
    }
}
