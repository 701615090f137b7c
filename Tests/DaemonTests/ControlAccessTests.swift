import Glibc
@testable import MiniAppDaemon
import MiniAppModel
import MiniAppSystem
import Testing

/// Who may use the control socket, decided from the kernel's record of the peer only.
@Suite struct ControlAccessTests {
    static func access(uids: [UInt32] = [], gids: [UInt32] = [], groups: [String] = ["miniappd"]) -> ControlAccess {
        var c = DaemonConfig()
        c.controlAllowedUIDs = uids
        c.controlAllowedGIDs = gids
        c.controlAllowedGroups = groups
        // A fixed group database: the test must not depend on the host's /etc/group.
        return ControlAccess(config: c) { ["miniappd": 990, "ops": 1200][$0] }
    }

    @Test(arguments: [
        // (allowed uids, gids, group names, peer uid, primary gid, supplementary groups, allowed?)
        ([UInt32](), [UInt32](), ["miniappd"], UInt32(0), UInt32(0), [UInt32](), true),  // root
        ([], [], ["miniappd"], 1000, 1000, [990], true),  // member of the default group
        ([], [], ["miniappd"], 1000, 990, [], true),  // the group as primary gid
        ([], [], ["miniappd"], 1000, 1000, [27, 100], false),  // other groups only
        ([], [], [], 1000, 1000, [990], false),  // default group switched off
        ([], [1200], [], 1000, 1000, [5, 1200], true),  // configured gid as supplementary
        ([], [], ["ops"], 1000, 1000, [1200], true),  // configured group by name
        ([], [], ["no-such-group"], 1000, 1000, [990], false),  // unknown name admits nobody
        ([1000], [], [], 1000, 1000, [], true),  // configured uid
        ([1001], [], [], 1000, 1000, [], false),
    ])
    func decides(
        _ uids: [UInt32], _ gids: [UInt32], _ groups: [String], _ uid: UInt32, _ gid: UInt32, _ supplementary: [UInt32],
        _ allowed: Bool
    ) {
        let a = Self.access(uids: uids, gids: gids, groups: groups)
        #expect(a.allows(PeerCredentials(pid: 42, uid: uid, gid: gid, groups: supplementary)) == allowed)
    }

    @Test func unknownGroupsAreReported() {
        #expect(Self.access(groups: ["miniappd", "no-such-group"]).unknownGroups == ["no-such-group"])
    }

    /// SO_PEERGROUPS of a real socket pair: our own supplementary groups.
    @Test func peerGroupsOfARealSocket() throws {
        let pair = try UnixSocket.pair()
        let count = getgroups(0, nil)
        var mine = [gid_t](repeating: 0, count: Int(max(count, 0)))
        _ = getgroups(count, &mine)
        #expect(Set(UnixSocket.peerGroups(pair.daemonSide.raw)) == Set(mine))
        #expect(try UnixSocket.peerCredentials(pair.workerSide.raw).uid == geteuid())
    }
}
