#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims

/// Opens a file named by a control peer exactly as that peer could, so the daemon (root) never
/// reads on a caller's behalf what the caller could not read itself (the confused deputy).
///
/// As root, the opening thread takes the peer's filesystem uid, gid and supplementary groups
/// (`SO_PEERCRED`/`SO_PEERGROUPS`) for the one `open(2)`: the kernel's own permission checks —
/// mode bits, ACLs, search permission on every directory — decide, and dropping fsuid from 0
/// drops `CAP_DAC_OVERRIDE` with it. Only the calling thread changes (raw syscalls; glibc's
/// `setgroups` would change every thread of the daemon). A daemon that is not root can do this
/// only for its own uid and for root (opening as itself gives root nothing it lacks); any other
/// peer is refused (it passes a descriptor instead).
///
/// Every failure reads the same (`notOpenable`): whether the file is missing, unreadable or
/// behind a directory the peer cannot search, so the answer is no oracle on files the peer may
/// not see. The open never blocks (`O_NONBLOCK`: a FIFO without a writer) and never follows a
/// final symlink.
public enum PeerFileOpener {
    /// Opens `path` read-only as `peer` would; throws `SystemError` with `EACCES` for any failure.
    public static func open(_ path: String, as peer: PeerCredentials) throws(SystemError) -> OwnedFD {
        let flags = O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC
        let fd: Int32
        if geteuid() == 0 {
            fd = asPeer(peer) { Glibc.open(path, flags) }
        } else if peer.uid == geteuid() || peer.uid == 0 {
            // Our own uid, or root, who may read anything we can: opening as ourselves gives
            // such a peer no file it could not open itself (a daemon that dropped from root).
            fd = Glibc.open(path, flags)
        } else {
            fd = -1
        }
        guard fd >= 0 else { throw SystemError("open", errno: EACCES, detail: path) }
        return OwnedFD(adopting: fd)
    }

    /// Runs `body` on this thread with the peer's filesystem identity, then restores the daemon's.
    /// A failed switch runs nothing (-1); a failed restore stops the daemon rather than let a
    /// thread go on with someone else's identity.
    private static func asPeer(_ peer: PeerCredentials, _ body: () -> Int32) -> Int32 {
        let ownGroups = currentGroups()
        let uid = geteuid(), gid = getegid()
        let switched = peer.groups.withUnsafeBufferPointer { g in
            clinux_thread_fs_identity(peer.uid, peer.gid, g.baseAddress, Int32(g.count))
        }
        let result = switched == 0 ? body() : -1
        let restored = ownGroups.withUnsafeBufferPointer { g in
            clinux_thread_fs_identity(uid, gid, g.baseAddress, Int32(g.count))
        }
        precondition(restored == 0, "cannot restore the daemon's filesystem identity after opening a file as a peer")
        return result
    }

    private static func currentGroups() -> [UInt32] {
        let n = getgroups(0, nil)
        guard n > 0 else { return [] }
        var groups = [gid_t](repeating: 0, count: Int(n))
        let got = getgroups(n, &groups)
        return Array(groups.prefix(Int(max(0, got))))
    }
}
