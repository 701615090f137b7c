import CJail
import Foundation
@testable import MiniAppJail
import MiniAppModel
@testable import MiniAppSystem
import Testing

/// The spawner as the privileged part: requests sent straight to its socket, as a compromised
/// daemon would send them, are each refused, and the spawner goes on serving.
@Suite("spawner requests from a compromised daemon (privileged mode)", .serialized)
struct SpawnerRequestTests {
    static let base = "\(JailHarness.base)/spawner-requests"
    static let uid = UInt32(2130706432 + 7)

    /// A spawner started here (the test process is its parent, like the daemon), with one
    /// template registered and the set locked.
    final class Spawner {
        let pid: Int32
        let socket: Int32
        let jailer: Jailer
        let template: SpawnerTemplate

        init() throws {
            for d in ["pkgs/p1/versions/1", "data/p1", "outside"] {
                try FileManager.default.createDirectory(atPath: "\(base)/\(d)", withIntermediateDirectories: true)
            }
            _ = FileManager.default.createFile(atPath: "\(base)/pkgs/p1/versions/1/marker", contents: Data("app".utf8))
            _ = try? FileManager.default.removeItem(atPath: "\(base)/pkgs/link")
            try FileManager.default.createSymbolicLink(atPath: "\(base)/pkgs/link", withDestinationPath: "/")
            jailer = try Jailer(configuration: try JailHarness.configuration(), stateDir: "\(base)/state", mode: .privileged,
                                spawner: SpawnerSlot(), appRoot: "\(base)/pkgs", dataRoot: "\(base)/data")
            template = jailer.template(binds: [], limits: jailer.configuration.policy.limits)
            var p: Int32 = 0, s: Int32 = -1
            #expect(cjail_spawner_start(SpawnerProcess.executablePath(), &p, &s) == 0)
            pid = p
            socket = s
            #expect(template.register(id: 1, on: socket) == 0)
            #expect(SpawnerProcess.control(socket, kind: CJAIL_CTL_LOCK) == 0)
        }

        deinit {
            close(socket)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
        }

        var alive: Bool { kill(pid, 0) == 0 && !(((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? "Z").contains(") Z")) }

        /// A valid launch of `argv` for program p1.
        func plan(_ argv: [String]) -> JailSpawnPlan {
            var l = JailLaunch(programId: "p1", argv: argv)
            l.appDir = "\(base)/pkgs/p1/versions/1"
            l.dataDir = "\(base)/data/p1"
            var plan = jailer.makePlan(l, limits: jailer.configuration.policy.limits, uid: uid, gid: uid, pipes: nil)
            let null = open("/dev/null", O_RDWR | O_CLOEXEC)
            plan.stdinFD = null; plan.stdoutFD = null; plan.stderrFD = null
            return plan
        }

        /// Sends a spawn request; returns the reply (nil: no reply, the reply socket read EOF).
        func spawn(_ plan: JailSpawnPlan, template: UInt32 = 1, netns: Int32 = -1, edit: (inout cjail_spawn_request) -> Void = { _ in })
            throws -> (cjail_spawn_reply, cjail_child)?
        {
            var p = plan
            p.netnsFD = netns
            let req = try SpawnRequest(p, template: template, cgroupProcs: [], cgroupName: nil, traceFD: -1, warm: false)
            edit(&req.header)
            #expect(req.send(to: socket) == 0)
            var pfd = pollfd(fd: req.replyFD, events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 10_000)
            var rep = cjail_spawn_reply(), child = cjail_child()
            var exitFD: Int32 = -1 // a started spawner's workers are our children: none
            guard cjail_spawner_read_reply(req.replyFD, &rep, &child, &exitFD) == 0 else { return nil }
            return (rep, child)
        }

        func control(_ kind: cjail_control_kind, pid: Int32 = 0, sig: Int32 = 0, name: String = "", uid: UInt32 = 0) -> Int32 {
            var r = cjail_control_request()
            r.kind = kind.rawValue
            r.template_id = 1
            r.pid = pid
            r.sig = sig
            r.uid = uid
            withUnsafeMutableBytes(of: &r.name) { b in
                for (i, c) in name.utf8.prefix(b.count).enumerated() { b[i] = c }
            }
            return cjail_spawner_control(socket, &r)
        }

        /// The same request with `fd` beside its reply socket.
        func control(_ kind: cjail_control_kind, name: String, fd: Int32) -> Int32 {
            var r = cjail_control_request()
            r.kind = kind.rawValue
            r.template_id = 1
            withUnsafeMutableBytes(of: &r.name) { b in
                for (i, c) in name.utf8.prefix(b.count).enumerated() { b[i] = c }
            }
            return cjail_spawner_control_fd(socket, &r, fd)
        }

        /// Sends raw bytes with one reply socket; true when the spawner answered nothing (EOF).
        func raw(_ bytes: [UInt8]) -> Bool {
            var pair: [Int32] = [-1, -1]
            _ = cjail_seqpacket_pair(&pair)
            defer { close(pair[0]) }
            var fd = pair[1]
            let r = bytes.withUnsafeBytes { b in withUnsafePointer(to: &fd) { cjail_send_message(socket, b.baseAddress, b.count, $0, 1) } }
            close(pair[1])
            #expect(r == 0)
            var buf = [UInt8](repeating: 0, count: 64)
            var pfd = pollfd(fd: pair[0], events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, 5000)
            return recv(pair[0], &buf, buf.count, Int32(MSG_DONTWAIT)) == 0
        }
    }

    enum Hostile: String, CaseIterable, CustomTestStringConvertible {
        case bindHostRootReadWrite, bindOutsideDataRoot, appDotDot, appThroughSymlink, extraHostBind, mapUidZero, uidOutsideRange,
             idMapToRoot, rlimitRaised, seccompDropped, staticMountWritable, noPidNamespace, landlockRuleAdded, noPdeathsig,
             unknownTemplate, hostNetworkNamespace, cgroupDotDot, cgroupPath, cgroupNotThere,
             pooledDotDot, pooledSpareDotDot, pooledSpareSameAsCgroup, pooledWithoutWarm
        var testDescription: String { rawValue }
    }

    /// The worker's cgroup by name (attach by name, as a dropped daemon asks): a path or a
    /// name that is no cgroup of the template's directories.
    static func cgroupName(_ h: Hostile) -> String? {
        switch h {
        case .cgroupDotDot: ".."
        case .cgroupPath: "../../../init.scope"
        case .cgroupNotThere: "no-such-cgroup"
        case .pooledDotDot: ".."
        case .pooledSpareDotDot, .pooledSpareSameAsCgroup, .pooledWithoutWarm: "no-such-cgroup"
        default: nil
        }
    }

    /// Pooled cgroups (CJAIL_SPAWN_WARM_CGROUP: names only, opened by the spawner when it needs
    /// them): the flags and the spare cgroup lent for the next warm jail.
    static func pooled(_ h: Hostile) -> (flags: UInt32, spare: String)? {
        let both = CJAIL_SPAWN_WARM | CJAIL_SPAWN_WARM_CGROUP
        switch h {
        case .pooledDotDot: return (both, "")
        case .pooledSpareDotDot: return (both, "../init.scope")
        case .pooledSpareSameAsCgroup: return (both, "no-such-cgroup") // one cgroup lent twice: two jails in it
        case .pooledWithoutWarm: return (CJAIL_SPAWN_WARM_CGROUP, "")
        default: return nil
        }
    }

    static func apply(_ h: Hostile, _ p: inout JailSpawnPlan, root: String) -> (template: UInt32, netns: Int32, idmap: Bool) {
        func replace(_ target: String, with op: JailSpawnPlan.MountOp) {
            p.mounts = p.mounts.map { m in
                if case .bind(_, let t, _, _) = m, t == root + target { return op }
                return m
            }
        }
        switch h {
        case .bindHostRootReadWrite: replace("/data", with: .bind(source: "/", target: root + "/data", isDir: true, attrs: 0x6))
        case .bindOutsideDataRoot: replace("/data", with: .bind(source: "\(base)/outside", target: root + "/data", isDir: true, attrs: 0x6))
        case .appDotDot: replace("/app", with: .bind(source: "\(base)/pkgs/p1/../../outside", target: root + "/app", isDir: true, attrs: 0x7))
        case .appThroughSymlink: replace("/app", with: .bind(source: "\(base)/pkgs/link", target: root + "/app", isDir: true, attrs: 0x7))
        case .extraHostBind: p.mounts.append(.bind(source: "/etc", target: root + "/hostetc", isDir: true, attrs: 0))
        case .mapUidZero: p.uid = 0; p.gid = 0
        case .uidOutsideRange: p.uid = 1000; p.gid = 1000
        case .idMapToRoot: return (1, -1, true)
        case .rlimitRaised: p.rlimits = p.rlimits.map { ($0.0, UInt64.max, UInt64.max) }
        case .seccompDropped: p.filters = []
        case .staticMountWritable:
            p.mounts = p.mounts.enumerated().map { i, m in
                if i < p.staticMountCount, case .bind(let s, let t, let d, _) = m { return .bind(source: s, target: t, isDir: d, attrs: 0) }
                return m
            }
        case .noPidNamespace: p.cloneFlags &= ~Jailer.cloneNewPID
        case .landlockRuleAdded: p.landlockRules.append(("/", ~0))
        case .noPdeathsig: p.pdeathsig = 0
        case .unknownTemplate: return (99, -1, false)
        case .hostNetworkNamespace:
            p.cloneFlags &= ~Jailer.cloneNewNet
            return (1, open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), false)
        case .cgroupDotDot, .cgroupPath, .cgroupNotThere, .pooledDotDot, .pooledSpareDotDot, .pooledSpareSameAsCgroup, .pooledWithoutWarm:
            break // the request's cgroup names (cgroupName, pooled)
        }
        return (1, -1, false)
    }

    @Test("a launch that differs from the template is refused, each with its reason; the spawner keeps serving", arguments: Hostile.allCases)
    func hostileSpawn(_ h: Hostile) throws {
        let s = try Spawner()
        var plan = s.plan(["/bin/true"])
        let (template, netns, idmap) = Self.apply(h, &plan, root: s.jailer.rootDir)
        defer { if netns >= 0 { close(netns) } }
        let got = try s.spawn(plan, template: template, netns: netns) { r in
            if idmap {
                r.flags |= CJAIL_SPAWN_IDMAP
                r.inside_uid = 0; r.outside_uid = 0; r.inside_gid = 0; r.outside_gid = 0
            }
            if let name = Self.cgroupName(h) { _ = SpawnerProcess.copyName(name, into: &r.cgroup) }
            if let (flags, spare) = Self.pooled(h) {
                r.flags |= flags
                _ = SpawnerProcess.copyName(spare, into: &r.spare_cgroup)
            }
        }
        let (rep, child) = try #require(got)
        #expect(rep.result == -EPERM || rep.failed_step == Int32(CJAIL_SPAWN_REFUSED.rawValue), "\(h): \(rep)")
        #expect(rep.failed_step == Int32(CJAIL_SPAWN_REFUSED.rawValue), "\(h) refused at step \(rep.failed_step)")
        #expect(rep.pid == 0 && child.pidfd < 0, "\(h): nothing was cloned")
        let expected: [Hostile: cjail_refusal] = [
            .bindHostRootReadWrite: CJAIL_REFUSE_MOUNT, .bindOutsideDataRoot: CJAIL_REFUSE_MOUNT, .appDotDot: CJAIL_REFUSE_MOUNT,
            .appThroughSymlink: CJAIL_REFUSE_SOURCE, .extraHostBind: CJAIL_REFUSE_MOUNT, .mapUidZero: CJAIL_REFUSE_IDENTITY,
            .uidOutsideRange: CJAIL_REFUSE_IDENTITY, .idMapToRoot: CJAIL_REFUSE_IDENTITY, .rlimitRaised: CJAIL_REFUSE_RLIMIT,
            .seccompDropped: CJAIL_REFUSE_SECCOMP, .staticMountWritable: CJAIL_REFUSE_STATIC, .noPidNamespace: CJAIL_REFUSE_NAMESPACES,
            .landlockRuleAdded: CJAIL_REFUSE_LANDLOCK, .noPdeathsig: CJAIL_REFUSE_LIFETIME, .unknownTemplate: CJAIL_REFUSE_TEMPLATE,
            .hostNetworkNamespace: CJAIL_REFUSE_NAMESPACES, .cgroupDotDot: CJAIL_REFUSE_CGROUP, .cgroupPath: CJAIL_REFUSE_CGROUP,
            .cgroupNotThere: CJAIL_REFUSE_CGROUP, .pooledDotDot: CJAIL_REFUSE_CGROUP, .pooledSpareDotDot: CJAIL_REFUSE_CGROUP,
            .pooledSpareSameAsCgroup: CJAIL_REFUSE_CGROUP, .pooledWithoutWarm: CJAIL_REFUSE_CGROUP,
        ]
        #expect(rep.refused == Int32(expected[h]!.rawValue), "\(h): refused as \(SpawnerTemplate.refusalName(rep.refused))")
        #expect(s.alive)
        try Self.expectServes(s)
    }

    /// A valid launch still runs: it sees its /app, writes its /data, runs as its uid.
    static func expectServes(_ s: Spawner) throws {
        let out = "\(base)/data/p1/out"
        unlink(out)
        #expect(s.control(CJAIL_CTL_CHOWN_DATA, name: "p1", uid: uid) == 0)
        let got = try s.spawn(s.plan(["/bin/sh", "-c", "test \"$(cat /app/marker)\" = app && id -u > /data/out"]))
        var (rep, child) = try #require(got)
        #expect(rep.result == 0, "\(rep)")
        guard rep.result == 0 else { return }
        var rec = cjail_error()
        #expect(cjail_wait_exec(child.err_fd, &rec) == 0, "setup failed at step \(JailStep.name(rec.step)) errno \(rec.err) index \(rec.index)")
        var code: Int32 = 0, status: Int32 = 0
        while cjail_waitid_pidfd(child.pidfd, WEXITED, &code, &status) < 0 && errno == EINTR {}
        for fd in [child.pidfd, child.status_fd] where fd >= 0 { close(fd) }
        child.pidfd = -1
        #expect(status == 0)
        #expect((try? String(contentsOfFile: out, encoding: .utf8)) == "\(uid)\n")
    }

    /// An image file under the test's volumes dir: `mode`, optionally hard-linked.
    static func image(_ name: String, mode: mode_t = 0o600, bytes: Int = 8 << 20) -> String {
        let dir = "\(base)/volumes"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = "\(dir)/\(name)"
        unlink(path)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode)
        _ = ftruncate(fd, off_t(bytes))
        fchmod(fd, mode)
        close(fd)
        return path
    }

    @Test("MOUNT_VOLUME: only a plain name under the data root, only a 0600 single-link regular file opened read-write, only with that request")
    func hostileMountVolume() throws {
        let s = try Spawner()
        let good = Self.image("good.ext4")
        let goodFD = open(good, O_RDWR | O_CLOEXEC)
        defer { close(goodFD) }
        for name in ["..", "../x", "a/b", ".hidden", "", "x\u{1}", String(repeating: "a", count: 200)] {
            #expect(s.control(CJAIL_CTL_MOUNT_VOLUME, name: name, fd: goodFD) == -EPERM, "data dir \(name)")
        }
        let dirFD = open("\(Self.base)/outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        let fifo = "\(Self.base)/volumes/fifo"
        unlink(fifo)
        mkfifo(fifo, 0o600)
        let fifoFD = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        let linked = Self.image("linked.ext4")
        unlink("\(Self.base)/volumes/linked-2")
        link(linked, "\(Self.base)/volumes/linked-2")
        let linkedFD = open(linked, O_RDWR | O_CLOEXEC)
        let readOnlyFD = open(good, O_RDONLY | O_CLOEXEC)
        let groupFD = open(Self.image("group.ext4", mode: 0o640), O_RDWR | O_CLOEXEC)
        let emptyFD = open(Self.image("empty.ext4", bytes: 0), O_RDWR | O_CLOEXEC)
        let hostile: [(String, Int32)] = [("a directory", dirFD), ("a FIFO", fifoFD), ("a hard-linked file", linkedFD),
                                          ("a read-only descriptor", readOnlyFD), ("a group-readable image", groupFD), ("an empty file", emptyFD)]
        for (what, fd) in hostile {
            #expect(fd >= 0, "\(what) opened")
            #expect(s.control(CJAIL_CTL_MOUNT_VOLUME, name: "p1", fd: fd) == -EPERM, "\(what)")
            close(fd)
        }
        #expect(s.control(CJAIL_CTL_MOUNT_VOLUME, name: "p1") == -EPERM, "no image descriptor")
        #expect(s.control(CJAIL_CTL_CHOWN_DATA, name: "p1", fd: goodFD) == -EPERM, "a descriptor on another request")
        #expect(s.control(CJAIL_CTL_UNMOUNT_VOLUME, name: "p1") == -EINVAL, "p1 is no mount: nothing is unmounted")
        for name in ["..", "a/b", ""] { #expect(s.control(CJAIL_CTL_UNMOUNT_VOLUME, name: name) == -EPERM, "unmount \(name)") }
        // A real volume mounts, and unmounts.
        if DataVolume.mkfsPath != nil {
            let v = DataVolume(image: "\(Self.base)/volumes/real.ext4", directory: "\(Self.base)/data/p1")
            unlink(v.image)
            try v.create(bytes: 8 << 20, inodes: 64, uid: Self.uid, gid: Self.uid)
            try v.mount { s.control(CJAIL_CTL_MOUNT_VOLUME, name: "p1", fd: $0) }
            #expect(v.isMounted)
            #expect(access("\(Self.base)/data/p1/lost+found", F_OK) != 0, "the spawner removed lost+found")
            #expect(s.control(CJAIL_CTL_UNMOUNT_VOLUME, name: "p1") == 0)
            #expect(!v.isMounted)
        }
        #expect(s.alive)
        try Self.expectServes(s)
    }

    @Test("control requests: only a worker of ours gets a signal, only a plain name is a cgroup or a data dir, no template after the lock")
    func hostileControl() throws {
        let s = try Spawner()
        #expect(s.control(CJAIL_CTL_SIGNAL, pid: 1, sig: SIGKILL) == -EPERM)
        #expect(s.control(CJAIL_CTL_SIGNAL, pid: getpid(), sig: SIGTERM) == -ESRCH)
        #expect(s.control(CJAIL_CTL_SIGNAL, pid: s.pid, sig: SIGKILL) == -ESRCH)
        for name in ["..", "../x", "a/b", ".hidden", "", "x\u{1}", String(repeating: "a", count: 200)] {
            #expect(s.control(CJAIL_CTL_KILL_CGROUP, name: name) == -EPERM, "cgroup \(name)")
            #expect(s.control(CJAIL_CTL_CHOWN_DATA, name: name, uid: Self.uid) == -EPERM, "data dir \(name)")
        }
        #expect(s.control(CJAIL_CTL_CHOWN_DATA, name: "p1", uid: 0) == -EPERM)
        #expect(s.control(CJAIL_CTL_CHOWN_DATA, name: "p1", uid: 1000) == -EPERM)
        #expect(s.control(cjail_control_kind(rawValue: 77), name: "p1") == -EPROTO)
        #expect(s.jailer.template(binds: [], limits: s.jailer.configuration.policy.limits).register(id: 2, on: s.socket) == -EPERM)
        // The allowed ones act.
        #expect(s.control(CJAIL_CTL_CHOWN_DATA, name: "p1", uid: Self.uid) == 0)
        var st = stat()
        #expect(stat("\(Self.base)/data/p1", &st) == 0 && st.st_uid == Self.uid && st.st_mode & 0o777 == 0o700)
        #expect(s.control(CJAIL_CTL_KILL_CGROUP, name: "no-such-cgroup") == -ENOENT)
        let got = try s.spawn(s.plan(["/bin/sleep", "30"]))
        let (rep, child) = try #require(got)
        #expect(rep.result == 0)
        var rec = cjail_error()
        #expect(cjail_wait_exec(child.err_fd, &rec) == 0)
        #expect(s.control(CJAIL_CTL_SIGNAL, pid: rep.pid, sig: SIGSEGV) == -EPERM)
        #expect(s.control(CJAIL_CTL_SIGNAL, pid: rep.pid, sig: SIGKILL) == 0)
        var code: Int32 = 0, status: Int32 = 0
        while cjail_waitid_pidfd(child.pidfd, WEXITED, &code, &status) < 0 && errno == EINTR {}
        #expect(status == SIGKILL)
        #expect(s.control(CJAIL_CTL_SIGNAL, pid: rep.pid, sig: SIGKILL) == -ESRCH, "a reaped worker is no longer signalable")
        for fd in [child.pidfd, child.status_fd] where fd >= 0 { close(fd) }
        #expect(s.alive)
        try Self.expectServes(s)
    }

    @Test("malformed messages (truncated, oversized, unknown, descriptors not matching) are dropped; the spawner keeps serving")
    func malformed() throws {
        let s = try Spawner()
        var spawn = cjail_spawn_request()
        spawn.magic = UInt32(CJAIL_SPAWN_MAGIC)
        spawn.fd_mask = UInt32(1) << CJAIL_SPAWN_FD_REPLY.rawValue
        let header = withUnsafeBytes(of: spawn) { Array($0) }
        var control = cjail_control_request()
        control.magic = UInt32(CJAIL_CONTROL_MAGIC)
        control.kind = CJAIL_CTL_LOCK.rawValue
        let ctl = withUnsafeBytes(of: control) { Array($0) }
        let cases: [(String, [UInt8])] = [
            ("truncated spawn", Array(header.dropLast(4))),
            ("oversized spawn", header + [UInt8](repeating: 0, count: 4096)),
            ("oversized control", ctl + [0]),
            ("truncated control", Array(ctl.prefix(8))),
            ("unknown magic", [UInt8](repeating: 0x41, count: header.count)),
            ("empty", []),
        ]
        for (name, bytes) in cases {
            #expect(s.raw(bytes), "\(name): answered nothing")
            #expect(s.alive, "\(name)")
        }
        // Well-formed but without its blob: answered, refused as a malformed request.
        #expect(!s.raw(header))
        // A blob that is not a spec, and one whose length overstates the memfd.
        let bad = try s.spawn(s.plan(["/bin/true"])) { $0.blob_len = 7 }
        #expect(bad?.0.failed_step == Int32(CJAIL_SPAWN_REQUEST.rawValue))
        let long = try s.spawn(s.plan(["/bin/true"])) { $0.blob_len = 1 << 40 }
        #expect(long?.0.failed_step == Int32(CJAIL_SPAWN_REQUEST.rawValue))
        try Self.expectServes(s)
    }
}

/// The fuzz target's seed (Tests/Fixtures/fuzz/spawnrequest): a real template and a launch that
/// matches it, in the target's input format. Regenerated when MINIAPP_WRITE_FUZZ_SEED is set.
@Test("the spawn-request fuzz seed is a template and a launch that passes its check")
func spawnRequestSeed() throws {
    let s = try SpawnerRequestTests.Spawner()
    let (tr, tblob) = s.template.encoded(id: 1)
    let launch = CSpecBlob.make(s.plan(["/bin/true"]))
    var rq = cjail_spawn_request()
    rq.template_id = 1
    var bytes = withUnsafeBytes(of: UInt32(tblob.count)) { Array($0) } + tblob
    bytes += withUnsafeBytes(of: tr) { Array($0) } + withUnsafeBytes(of: rq) { Array($0) } + [0] + launch
    // The same check the target runs: the seed must get past it.
    func unpack(_ b: [UInt8], _ out: inout cjail_spec) -> Int32 {
        let p = UnsafeMutableRawPointer.allocate(byteCount: b.count, alignment: 8)
        b.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: b.count) }
        return cjail_spec_unpack(p, b.count, &out) // leaked on purpose: the spec points into it
    }
    var t = cjail_spec(), l = cjail_spec(), ck = cjail_check()
    var trv = tr
    #expect(unpack(tblob, &t) == 0 && unpack(launch, &l) == 0)
    #expect(cjail_template_check(&t, &trv, &rq, &l, 0, &ck) == 0, "refused: \(SpawnerTemplate.refusalName(ck.refused)) \(ck.index)")
    if getenv("MINIAPP_WRITE_FUZZ_SEED") != nil {
        let dir = "\(JailHarness.packageRoot)/Tests/Fixtures/fuzz/spawnrequest"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/seed-template-and-launch"))
    }
}
