public import MiniAppModel
public import MiniAppSystem
import Synchronization

/// The daemon's reserve on the state filesystem: what a new /data volume or an install may never
/// take, so that storage, the audit trail, package state and the next launch's bookkeeping
/// always have room (a full state filesystem would fail every one of them at once).
public struct StateReserve: Sendable, Equatable {
    /// The directory whose filesystem is checked (the state directory).
    public var directory: String
    /// Bytes kept free (`dataReserveBytes`).
    public var bytes: UInt64
    /// Inodes kept free (`dataReserveInodes`).
    public var inodes: UInt64

    /// The reserve `config` asks for, on the filesystem of `directory`.
    public init(directory: String, config: DaemonConfig) {
        self.directory = directory
        bytes = UInt64(config.dataReserveBytes)
        inodes = UInt64(config.dataReserveInodes)
    }

    /// Throws `QUOTA_EXCEEDED` (`data.reason: STATE_RESERVE`) when taking `needBytes` and
    /// `needInodes` would leave less than the reserve free; `what` names the taker.
    public func check(needBytes: UInt64, needInodes: UInt64 = 1, what: String) throws(MiniAppError) {
        guard let free = DataVolume.available(directory) else {
            throw MiniAppError(.internal, "cannot read the free space of \(directory); check the state directory")
        }
        guard free.bytes >= needBytes &+ bytes, free.bytes >= needBytes, free.inodes >= needInodes &+ inodes else {
            throw MiniAppError(
                .quotaExceeded,
                "the state filesystem (\(directory)) has \(Self.mib(free.bytes)) and \(free.inodes) inodes free; \(what) needs \(Self.mib(needBytes)) and would leave less than the daemon's reserve (dataReserveBytes \(Self.mib(bytes)), dataReserveInodes \(inodes)); free space on it, remove programs or lower limits.dataBytes",
                data: ["reason": "STATE_RESERVE"])
        }
    }

    static func mib(_ n: UInt64) -> String { "\(n >> 20) MiB" }
}

/// Every program's /data as a volume of its own (`DataVolume`), in privileged mode: made at
/// the program's first launch with its effective `limits.dataBytes`/`dataInodes`, checked and
/// brought to them again whenever it is mounted later (`JailDataVolumeFit.swift`), kept under
/// `STATE/volumes/<program>.ext4`, mounted on `STATE/data/<program>` when a worker needs it and left mounted until
/// `unmountAll` (shutdown). A daemon killed with -9 leaves them mounted; the next start finds
/// them mounted and uses them as they are.
public final class JailDataVolumes: Sendable {
    /// Where the images live (0700).
    public let imageDirectory: String
    /// Checked before a volume is made.
    public let reserve: StateReserve
    /// Data directories this process mounted (unmounted at shutdown).
    private let mounted = Mutex<Set<String>>([])
    /// Once the daemon has dropped its privileges: the spawner and template that mount and
    /// unmount for it (MOUNT_VOLUME, UNMOUNT_VOLUME).
    private let spawnerMounts = Mutex<(SpawnerSlot, UInt32)?>(nil)
    /// One lock per program's volume.
    private let programLocks = Mutex<[String: ProgramLock]>([:])

    /// Held while a volume is checked, resized and mounted.
    final class ProgramLock: Sendable {
        private let mutex = Mutex<Void>(())
        func withLock<E: Error>(_ body: () throws(E) -> Void) throws(E) {
            try mutex.withLock { (_: inout Void) throws(E) in try body() }
        }
    }

    /// Throws `JAIL_UNAVAILABLE` when mkfs.ext4 is missing or the image directory cannot be made.
    public init(stateDir: String, reserve: StateReserve) throws(MiniAppError) {
        imageDirectory = stateDir + "/volumes"
        self.reserve = reserve
        guard DataVolume.mkfsPath != nil else {
            throw MiniAppError(.jailUnavailable, "per-program /data limits need mkfs.ext4: install e2fsprogs (scripts/install-deps)")
        }
        do throws(SystemError) { try FileSystem.makeDirectory(imageDirectory, mode: 0o700) } catch {
            throw MiniAppError(.jailUnavailable, "cannot create \(imageDirectory): \(error)")
        }
        adoptMounted(dataRoot: stateDir + "/data")
    }

    /// Volumes a killed daemon left mounted are this one's to report and unmount.
    private func adoptMounted(dataRoot: String) {
        let found = Self.names(in: dataRoot).filter(Self.isSafeName).map { dataRoot + "/" + $0 }
            .filter(DataVolume.isMounted)
        mounted.withLock { $0.formUnion(found) }
    }

    /// The volume of `programId` mounted on `dataDir`.
    public func volume(programId: String, dataDir: String) -> DataVolume {
        DataVolume(programId: programId, imagesIn: imageDirectory, mountedOn: dataDir)
    }

    /// Makes `dataDir` the program's volume before a worker binds it: made at `limits` when
    /// absent (refused when the state filesystem would drop below the reserve), mounted when
    /// not. The spawner then attaches the mounted volume to the worker as a detached mount tree
    /// (opened beneath the data root), so a warm jail cloned before the volume was mounted gets
    /// it too, and the worker's mountinfo shows the volume's own root, not the host's path.
    /// Throws `QUOTA_EXCEEDED` (reserve) or `JAIL_SETUP_FAILED` (`step: data_volume`).
    /// After the drop the mount is the spawner's (`spawner`, `template`): it checks the image
    /// and resolves the directory beneath its own /data root.
    func prepare(programId: String, dataDir: String, limits: JailLimits, uid: UInt32, gid: UInt32, spawner: SpawnerSlot,
                 template: UInt32) throws(MiniAppError) {
        guard Self.isSafeName(programId) else {
            throw MiniAppError(.policyInvalid, "program id '\(programId)' cannot name a /data volume", data: ["field": "programId"])
        }
        let v = volume(programId: programId, dataDir: dataDir)
        if PrivilegeDrop.isDropped { spawnerMounts.withLock { $0 = (spawner, template) } }
        // One program at a time per volume (two launches must never check or resize one image
        // at once), other programs never wait for this one's check or resize.
        try lock(for: programId).withLock { () throws(MiniAppError) in
            if v.isMounted {
                mounted.withLock { _ = $0.insert(dataDir) }
                return
            }
            if !v.exists {
                try Self.refuseUnmigrated(dataDir)
                try reserve.check(needBytes: limits.dataBytes, what: "the /data volume of \(programId) (limits.dataBytes)")
                do throws(SystemError) { try v.create(bytes: limits.dataBytes, inodes: limits.dataInodes, uid: uid, gid: gid) } catch {
                    throw Self.failed("cannot make the /data volume \(v.image)", error)
                }
            } else {
                switch VolumeImage.settledAttachment(v.image) {
                case .none:
                    try check(v, programId: programId)
                    try fit(v, programId: programId, limits: limits)
                case .mounted: try refuseChangedWhileHeld(v, programId: programId, limits: limits)
                case .detaching:
                    throw MiniAppError(.jailSetupFailed, "the loop device of the /data volume \(v.image) is still detaching; launch the program again",
                                       data: ["step": "data_volume", "reason": "VOLUME_BUSY"])
                }
            }
            do throws(SystemError) {
                if PrivilegeDrop.isDropped {
                    let name = String(dataDir.split(separator: "/").last ?? "")
                    try v.mount { spawner.mountVolume(name, imageFD: $0, template: template) }
                } else {
                    try v.mount()
                }
            } catch { throw Self.failed("cannot mount the /data volume \(v.image)", error) }
            mounted.withLock { _ = $0.insert(dataDir) }
        }
    }

    /// The lock of `programId`'s volume.
    private func lock(for programId: String) -> ProgramLock {
        programLocks.withLock { locks in
            if let l = locks[programId] { return l }
            let l = ProgramLock()
            locks[programId] = l
            return l
        }
    }

    /// The program's /data usage (nil: not mounted now).
    public func usage(programId: String, dataDir: String) -> DataVolume.Usage? {
        guard Self.isSafeName(programId) else { return nil }
        return volume(programId: programId, dataDir: dataDir).usage()
    }

    /// Usage of every volume this process mounted, by program id (metrics).
    public func allUsage() -> [(programId: String, usage: DataVolume.Usage)] {
        let dirs = mounted.withLock { $0 }
        return dirs.sorted().compactMap { d in
            let id = String(d.split(separator: "/").last ?? "")
            return usage(programId: id, dataDir: d).map { (id, $0) }
        }
    }

    /// Detaches every volume this process mounted (workers still running keep theirs until
    /// they end).
    public func unmountAll() {
        let dirs = mounted.withLock { s in
            let d = s
            s.removeAll()
            return d
        }
        let through = spawnerMounts.withLock { $0 }
        for d in dirs {
            if let (slot, template) = through {
                _ = slot.unmountVolume(String(d.split(separator: "/").last ?? ""), template: template)
            } else {
                DataVolume.unmount(d)
            }
        }
    }

    /// A data directory that already holds files from before volumes existed would be hidden
    /// under the new mount (the files would seem lost to the program): refused until the
    /// operator moves them (README, "/data limits").
    static func refuseUnmigrated(_ dataDir: String) throws(MiniAppError) {
        guard Self.names(in: dataDir).isEmpty else {
            throw MiniAppError(
                .jailSetupFailed,
                "\(dataDir) holds files written before /data had a size limit; move them aside (the daemon stopped), launch the program once, then copy them into \(dataDir)",
                data: ["step": "data_volume"])
        }
    }

    /// The entries of `dir` (none when it cannot be read).
    static func names(in dir: String) -> [String] { (try? FileSystem.list(dir)) ?? [] }

    static func failed(_ what: String, _ error: SystemError) -> MiniAppError {
        MiniAppError(.jailSetupFailed, "\(what): \(error)", data: ["step": "data_volume", "errno": "\(error.errno)"])
    }

    /// Program ids are checked by the manifest rules; this only keeps the file name plain.
    static func isSafeName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 200 && s.first != "." && s.utf8.allSatisfy { c in
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 46 || c == 45 || c == 95
        }
    }
}
