import MiniAppModel
import MiniAppSystem

/// Before a volume the daemon did not just make is mounted: it is checked (`e2fsck -f -p`) and
/// brought to the program's effective limits, so that the limit the operator set is the one
/// the kernel enforces (an override lowered after the volume was made would otherwise never
/// apply). Runs only while no loop device holds the image (`VolumeImage.attachment`).
///
/// - bytes: grown (preallocated first, then `resize2fs`; the growth is checked against the
///   daemon's reserve), or shrunk when the data fits (`resize2fs -P`, then `resize2fs`, which
///   truncates the image); when it does not fit the launch is refused, `QUOTA_EXCEEDED`
///   (`data.reason: DATA_LIMIT`), and the image is left as it was.
/// - inodes: ext4 fixes the inodes of each block group when the filesystem is made; resize2fs
///   adds or removes whole groups with theirs. An image that has (or a resize would give it)
///   more inodes than `limits.dataInodes` allows is refused, `QUOTA_EXCEEDED`
///   (`data.reason: DATA_INODES`), before anything changes: lowering an inode count takes
///   making the volume again (README, "/data limits"). Fewer inodes than allowed (after a
///   shrink) is kept: it only makes the limit stricter.
extension JailDataVolumes {
    /// Inodes mke2fs may add over a requested count by rounding each group's inode table up.
    static let inodeRoundingPerGroup: UInt64 = 32

    /// The inodes the filesystem has at `blocks` blocks (whole groups, each with its fixed
    /// share) and whether that is more than `limits.dataInodes` allows.
    static func inodes(_ g: VolumeImage.Geometry, blocks: UInt64, limits: JailLimits) -> (count: UInt64, tooMany: Bool) {
        let groups = g.groups(forBlocks: blocks)
        let count = g.inodesPerGroup * groups
        return (count, count > limits.dataInodes + DataVolume.reservedInodes + inodeRoundingPerGroup * groups)
    }

    /// `e2fsck -f -p`; what preen mode cannot repair (or a check that fails or times out) is
    /// refused, `JAIL_SETUP_FAILED` (`step: data_volume`, `check: failed`): never mounted.
    func check(_ v: DataVolume, programId: String) throws(MiniAppError) {
        let result: VolumeImage.Check
        do throws(SystemError) { result = try VolumeImage.check(v.image) } catch {
            throw refusedCheck(v, programId: programId, why: "\(error)")
        }
        if case .uncorrected(let status, let report) = result {
            let firstLines = report.split(separator: "\n").prefix(3).joined(separator: "; ")
            throw refusedCheck(v, programId: programId, why: "e2fsck exit status \(status): \(TerminalText.escape(firstLines))")
        }
    }

    private func refusedCheck(_ v: DataVolume, programId: String, why: String) -> MiniAppError {
        MiniAppError(
            .jailSetupFailed,
            "the /data volume \(v.image) of \(programId) failed its check before mounting (\(why)); it is not mounted. With the daemon stopped, repair it by hand (e2fsck -f \(v.image)) or remove it (its data is lost)",
            data: ["step": "data_volume", "check": "failed"])
    }

    /// Brings the image's size to `limits.dataBytes` when it differs; refuses an inode count
    /// over `limits.dataInodes` (see the type's comment).
    func fit(_ v: DataVolume, programId: String, limits: JailLimits) throws(MiniAppError) {
        let g: VolumeImage.Geometry
        do throws(SystemError) { g = try VolumeImage.geometry(v.image) } catch {
            throw Self.failed("cannot read the /data volume \(v.image)", error)
        }
        let target = limits.dataBytes / g.blockSize
        let inodes = Self.inodes(g, blocks: target, limits: limits)
        guard !inodes.tooMany else { throw tooManyInodes(v, programId: programId, inodes: inodes.count, limits: limits) }
        guard target != g.blockCount else { return }
        if target > g.blockCount {
            try grow(v, programId: programId, from: g, to: target)
        } else {
            try shrink(v, programId: programId, from: g, to: target)
        }
    }

    /// An image the kernel still has mounted (a worker's namespace that has not gone yet) is
    /// shared as it is, not parsed again; but when the limits changed it cannot be resized
    /// now (a mounted ext4 does not shrink), and a launch that kept the old size would leave
    /// the operator's limit unenforced: refused, to be launched again once it is let go.
    /// (`dumpe2fs -h` only reads the superblock: safe on a mounted filesystem.)
    func refuseChangedWhileHeld(_ v: DataVolume, programId: String, limits: JailLimits) throws(MiniAppError) {
        let g: VolumeImage.Geometry
        do throws(SystemError) { g = try VolumeImage.geometry(v.image) } catch {
            throw Self.failed("cannot read the /data volume \(v.image)", error)
        }
        let target = limits.dataBytes / g.blockSize
        guard target != g.blockCount || Self.inodes(g, blocks: target, limits: limits).tooMany else { return }
        throw MiniAppError(
            .jailSetupFailed,
            "the /data volume \(v.image) of \(programId) must be brought to changed limits (dataBytes, dataInodes) but is still mounted by workers that are ending; launch the program again in a moment",
            data: ["step": "data_volume", "reason": "VOLUME_BUSY"])
    }

    private func grow(_ v: DataVolume, programId: String, from g: VolumeImage.Geometry, to target: UInt64) throws(MiniAppError) {
        try reserve.check(needBytes: (target - g.blockCount) * g.blockSize, what: "growing the /data volume of \(programId) to limits.dataBytes")
        do throws(SystemError) { try VolumeImage.grow(v.image, from: g, to: target) } catch {
            throw Self.failed("cannot grow the /data volume \(v.image)", error)
        }
    }

    private func shrink(_ v: DataVolume, programId: String, from g: VolumeImage.Geometry, to target: UInt64) throws(MiniAppError) {
        let minimum: UInt64
        do throws(SystemError) { minimum = try VolumeImage.minimumBlocks(v.image) } catch {
            throw Self.failed("cannot size the data of the /data volume \(v.image)", error)
        }
        guard target >= minimum else {
            let need = StateReserve.mib(minimum * g.blockSize + (1 << 20) - 1), now = StateReserve.mib(g.blockCount * g.blockSize)
            throw MiniAppError(
                .quotaExceeded,
                "the /data volume of \(programId) needs at least \(need) for its data, journal and tables but limits.dataBytes is now \(StateReserve.mib(target * g.blockSize)); its volume stays at \(now) and the program is not launched. Raise limits.dataBytes to at least \(need) (or back to \(now)), launch it and delete data from /data, then lower the limit again",
                data: ["reason": "DATA_LIMIT", "field": "limits.dataBytes"])
        }
        do throws(SystemError) { try VolumeImage.resize(v.image, blocks: target) } catch {
            throw Self.failed("cannot shrink the /data volume \(v.image)", error)
        }
    }

    private func tooManyInodes(_ v: DataVolume, programId: String, inodes: UInt64, limits: JailLimits) -> MiniAppError {
        let files = inodes - min(inodes, DataVolume.reservedInodes)
        return MiniAppError(
            .quotaExceeded,
            "the /data volume of \(programId) would have room for \(files) files at limits.dataBytes \(StateReserve.mib(limits.dataBytes)) but limits.dataInodes is \(limits.dataInodes); an ext4 volume's inode count cannot be lowered in place. Raise limits.dataInodes to at least \(files), or make the volume again: stop the daemon, copy the data out of the image (mount -o loop,ro \(v.image) on a directory of yours), remove \(v.image), launch the program once and copy the data back into its /data",
            data: ["reason": "DATA_INODES", "field": "limits.dataInodes"])
    }
}
