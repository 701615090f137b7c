public import MiniAppModel
import CJail
import Glibc
import Synchronization

/// The `miniappd-spawner` process that clones every jailed worker (Sources/CJail/
/// spawner_server.c explains why the daemon never clones them itself). Started on first use
/// and replaced when it is found gone, always on `JailSpawner.thread`: that thread must be its
/// parent (workers are cloned with CLONE_PARENT, and PR_SET_PDEATHSIG follows the parent
/// *thread*). Requests are sent from any thread; each carries its own reply socket.
final class SpawnerProcess: Sendable {

    /// 0 for a spawner service we connected to (not our child).
    let pid: Int32
    let socket: Int32

    private init(pid: Int32, socket: Int32) {
        self.pid = pid
        self.socket = socket
    }

    /// Connects to the spawner service listening at `path` (`miniappd-spawner --listen`). It
    /// admits only our uid (SO_PEERCRED): a refusal shows as the connection closing.
    static func connect(_ path: String) throws(MiniAppError) -> SpawnerProcess {
        var fd = cjail_spawner_connect(path)
        // Started together (systemd starts the service's process, not its socket, before us):
        // a socket not there yet, or not listening yet, is waited for a little.
        for _ in 0..<100 where fd == -ENOENT || fd == -ECONNREFUSED {
            usleep(50_000)
            fd = cjail_spawner_connect(path)
        }
        guard fd >= 0 else {
            throw MiniAppError(.jailUnavailable, "cannot connect to the worker spawner at \(path): \(SystemError("connect", errno: -fd)); start miniappd-spawner.service (or miniappd-spawner --listen \(path) --uid UID:GID) first",
                               data: ["step": "spawner", "errno": "\(-fd)"])
        }
        // A request every spawner refuses (a signal to pid 0) tells an admitted connection from
        // one it closed unread: another uid than the one it serves, or another daemon connected.
        let probe = control(fd, kind: CJAIL_CTL_SIGNAL, pid: 0, sig: 0)
        guard probe == -EPERM else {
            close(fd)
            throw MiniAppError(.jailUnavailable, "the worker spawner at \(path) closed our connection: it serves another uid than ours (\(getuid())), or another daemon is connected; start it with --uid of this daemon's user",
                               data: ["step": "spawner", "errno": "\(-probe)"])
        }
        return SpawnerProcess(pid: 0, socket: fd)
    }

    /// The socket is closed only here, once nobody holds this spawner any more: another thread
    /// may be sending on it (`trySend`) or the event loop reading it when it is discarded, and a
    /// closed number can be reused at once, so a request and its descriptors (stdio, the Bridge
    /// socket, cgroup.procs) could otherwise go to an unrelated file.
    deinit { close(socket) }

    /// Where the spawner executable is: `$MINIAPP_SPAWNER`, else beside this executable.
    static func executablePath() -> String {
        if let p = getenv("MINIAPP_SPAWNER"), p.pointee != 0 { return String(cString: p) }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return dir + "/miniappd-spawner"
    }

    /// The running spawner of `slot`, if any.
    static func running(_ slot: SpawnerSlot) -> SpawnerProcess? { slot.current.withLock { $0 } }

    /// The running spawner of `slot`, started if needed. Only on `JailSpawner.thread`.
    static func shared(_ slot: SpawnerSlot) throws(MiniAppError) -> SpawnerProcess {
        if let s = running(slot) { return s }
        if let path = slot.servicePath { return try connectOnce(path, slot) }
        if PrivilegeDrop.isDropped {
            // Started by us now, it would have our (no) privileges: fail closed instead.
            throw MiniAppError(.jailUnavailable, "the privileged worker spawner is gone and an unprivileged daemon cannot start another; restart miniappd",
                               data: ["step": "spawner", "errno": "\(ESRCH)"])
        }
        let path = executablePath()
        guard access(path, X_OK) == 0 else {
            throw MiniAppError(.jailUnavailable, "the worker spawner \(path) is missing or not executable: install miniappd-spawner beside miniappd (swift build builds it) or set MINIAPP_SPAWNER",
                               data: ["step": "spawner", "errno": "\(errno)"])
        }
        var pid: Int32 = 0, sock: Int32 = -1
        let r = cjail_spawner_start(path, &pid, &sock)
        guard r == 0 else {
            throw MiniAppError(.jailUnavailable, "cannot start the worker spawner \(path): \(SystemError("posix_spawn", errno: -r))",
                               data: ["step": "spawner", "errno": "\(-r)"])
        }
        let s = SpawnerProcess(pid: pid, socket: sock)
        s.registerTemplates(slot.templates)
        slot.current.withLock { $0 = s }
        s.watchNotices()
        return s
    }

    /// The slot's one connection to its spawner service: made at the first use, with the slot's
    /// templates registered (and locked if the slot is). Never made again: the end of a
    /// connection killed every worker the service started for it and locked its templates, so
    /// a new one would find no worker of ours and, after a policy change, templates we do not
    /// match; the daemon restarts instead (systemd: BindsTo).
    private static func connectOnce(_ path: String, _ slot: SpawnerSlot) throws(MiniAppError) -> SpawnerProcess {
        guard slot.connected.withLock({ c -> Bool in defer { c = true }; return !c }) else {
            throw MiniAppError(.jailUnavailable, "the connection to the worker spawner at \(path) is gone; restart miniappd (and miniappd-spawner.service after a jail policy change)",
                               data: ["step": "spawner", "errno": "\(EPIPE)"])
        }
        let s = try connect(path)
        s.registerTemplates(slot.templates)
        slot.current.withLock { $0 = s }
        return s
    }

    /// Gives a new spawner every template of its slot, then locks its set if the slot is locked.
    /// A template it refuses (its roots gone) is skipped: the launches that need it are refused
    /// with the refusal "template".
    private func registerTemplates(_ templates: SpawnerTemplates) {
        let (all, locked) = templates.all
        for (id, t) in all { _ = t.register(id: id, on: socket) }
        if locked { _ = Self.control(socket, kind: CJAIL_CTL_LOCK) }
    }

    /// One control request on `socket`: 0 or -errno.
    static func control(_ socket: Int32, kind: cjail_control_kind, pid: Int32 = 0, sig: Int32 = 0, template: UInt32 = 0,
                        name: String = "", uid: UInt32 = 0) -> Int32 {
        var r = cjail_control_request()
        r.kind = kind.rawValue
        r.pid = pid
        r.sig = sig
        r.template_id = template
        r.uid = uid
        guard copyName(name, into: &r.name) else { return -EINVAL }
        return cjail_spawner_control(socket, &r)
    }

    /// Copies `name` NUL-terminated into a C name field; false when it does not fit.
    static func copyName<T>(_ name: String, into field: inout T) -> Bool {
        let bytes = Array(name.utf8)
        guard bytes.count < Int(CJAIL_NAME_MAX) else { return false }
        withUnsafeMutableBytes(of: &field) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            raw.copyBytes(from: bytes)
        }
        return true
    }

    /// A NUL-terminated C name field as a string.
    static func name<T>(_ field: T) -> String {
        withUnsafeBytes(of: field) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The spawner's unasked notices: each warm jail it makes, which is our child (see
    /// `WarmJails`). Read on the jail event loop; stops at EOF (the spawner is gone).
    private func watchNotices() {
        JailEventLoop.shared.whenReadable(fd: socket) { [self] in
            while true {
                var notice = cjail_spawner_notice()
                var pidfd: Int32 = -1
                let r = cjail_spawner_read_notice(socket, &notice, &pidfd)
                if r == -EAGAIN { break }
                if r == -EPROTO { continue } // malformed: dropped (its pidfd closed), keep reading
                if r != 0 { return } // EOF: the spawner is gone; discard() handles the rest
                let cgroup = SpawnerProcess.name(notice.cgroup)
                if notice.pid == 0 { WarmJailCgroups.returned(cgroup) } // a lent cgroup it did not use
                else { WarmJails.track(pid: notice.pid, pidfd: pidfd, cgroup: cgroup) }
            }
            watchNotices()
        }
    }

    /// Forgets a spawner that stopped answering: shuts its socket down (it exits on EOF; a send
    /// racing with this fails with EPIPE) and reaps it. Idempotent; any thread.
    static func discard(_ s: SpawnerProcess, from slot: SpawnerSlot) {
        let mine = slot.current.withLock { c -> Bool in
            guard c === s else { return false }
            c = nil
            return true
        }
        guard mine else { return }
        shutdown(s.socket, Int32(SHUT_RDWR))
        guard s.pid > 0 else { return } // a service: not ours to reap
        var status: Int32 = 0
        while waitpid(s.pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// Sends `request` to the running spawner. Returns the spawner it went to, or nil when there
    /// is none or it is gone (nothing was received by anyone: safe to send again).
    static func trySend(_ request: SpawnRequest, _ slot: SpawnerSlot) -> SpawnerProcess? {
        guard let s = running(slot) else { return nil }
        if request.send(to: s.socket) == 0 { return s }
        discard(s, from: slot)
        return nil
    }

    /// Starts a spawner if needed and sends `request`. Only on `JailSpawner.thread`.
    static func startAndSend(_ request: SpawnRequest, _ slot: SpawnerSlot) throws(MiniAppError) -> SpawnerProcess {
        for attempt in 0..<2 {
            let s = try shared(slot)
            let r = request.send(to: s.socket)
            if r == 0 { return s }
            discard(s, from: slot)
            if attempt == 1 {
                throw MiniAppError(.jailUnavailable, "the worker spawner does not take requests: \(SystemError("sendmsg", errno: r)); check the daemon log and system limits",
                                   data: ["step": "spawner", "errno": "\(r)"])
            }
        }
        throw MiniAppError(.internal, "not reached")
    }
}

/// Where a jailer's spawner process lives. Jailers share `shared` (one spawner per daemon); a
/// test that kills a spawner on purpose uses a slot of its own, so that it disturbs no other
/// test's spawns.
public final class SpawnerSlot: Sendable {
    let current = Mutex<SpawnerProcess?>(nil)
    /// What its spawners accept (SpawnerTemplate).
    let templates = SpawnerTemplates()
    /// The process-wide spawner.
    public static let shared = SpawnerSlot()
    /// The socket of the spawner service this slot uses (`useService`), nil when its spawners
    /// are started as our children.
    public var servicePath: String? { service.withLock { $0 } }
    private let service = Mutex<String?>(nil)
    /// Whether the service was connected to (once only: `SpawnerProcess.connectOnce`).
    let connected = Mutex(false)
    public init() {}

    /// Uses the spawner service listening at `path` (`miniappd-spawner --listen`) instead of
    /// starting spawners: connected at the first use (`start`), as the uid the service admits.
    /// Its workers are its own children, which it reaps and whose exits it reports (cjail.h,
    /// CJAIL_REPLY_FD_EXIT). Call before anything spawns.
    public func useService(_ path: String) { service.withLock { $0 = path } }

    /// The id of `template` in this slot, registered (with the running spawner too) when new.
    /// Throws JAIL_UNAVAILABLE when the slot is locked and has no such template.
    public func templateID(_ template: SpawnerTemplate) throws(MiniAppError) -> UInt32 {
        let (id, added) = try templates.id(of: template)
        if let added, let s = SpawnerProcess.running(self) {
            // EEXIST: a spawner started meanwhile registered it; another failure shows as the
            // launch's refusal ("template").
            _ = added.register(id: id, on: s.socket)
        }
        return id
    }

    /// One control request to the running spawner (SIGNAL, KILL_CGROUP, CHOWN_DATA): 0 or
    /// -errno (-ESRCH: no spawner runs). What each may do is the spawner's rule
    /// (spawner_template.c), not ours.
    public func signal(pid: Int32, _ sig: Int32) -> Int32 {
        guard let s = SpawnerProcess.running(self) else { return -ESRCH }
        return SpawnerProcess.control(s.socket, kind: CJAIL_CTL_SIGNAL, pid: pid, sig: sig)
    }

    /// SIGKILLs every member of cgroup `name` under the cgroup directories of `template`.
    public func killCgroup(_ name: String, template: UInt32) -> Int32 {
        guard let s = SpawnerProcess.running(self) else { return -ESRCH }
        return SpawnerProcess.control(s.socket, kind: CJAIL_CTL_KILL_CGROUP, template: template, name: name)
    }

    /// Gives the directory `name` right under the data root of `template` to `uid`, mode 0700.
    public func chownData(_ name: String, uid: UInt32, template: UInt32) -> Int32 {
        guard let s = SpawnerProcess.running(self) else { return -ESRCH }
        return SpawnerProcess.control(s.socket, kind: CJAIL_CTL_CHOWN_DATA, template: template, name: name, uid: uid)
    }

    /// Loop-mounts the /data volume image `imageFD` (the daemon made it; the spawner checks it)
    /// on the directory `name` right under the data root of `template` (MOUNT_VOLUME).
    public func mountVolume(_ name: String, imageFD: Int32, template: UInt32) -> Int32 {
        guard let s = SpawnerProcess.running(self) else { return -ESRCH }
        var r = cjail_control_request()
        r.kind = CJAIL_CTL_MOUNT_VOLUME.rawValue
        r.template_id = template
        guard SpawnerProcess.copyName(name, into: &r.name) else { return -EINVAL }
        return cjail_spawner_control_fd(s.socket, &r, imageFD)
    }

    /// Detaches the volume mounted on the directory `name` under the data root of `template`.
    public func unmountVolume(_ name: String, template: UInt32) -> Int32 {
        guard let s = SpawnerProcess.running(self) else { return -ESRCH }
        return SpawnerProcess.control(s.socket, kind: CJAIL_CTL_UNMOUNT_VOLUME, template: template, name: name)
    }

    /// Starts the spawner now if none runs (on `JailSpawner.thread`, its parent for good): a
    /// daemon about to drop its privileges starts it while it still has them.
    public func start() throws(MiniAppError) {
        _ = try JailSpawner.thread.runBlocking { () throws(MiniAppError) -> SpawnerProcess in try SpawnerProcess.shared(self) }
    }

    /// Locks the set of templates, in the running spawner and every later one: a launch that
    /// matches none is refused from now on, whoever sends it.
    public func lockTemplates() {
        templates.lock()
        if let s = SpawnerProcess.running(self) { _ = SpawnerProcess.control(s.socket, kind: CJAIL_CTL_LOCK) }
    }
}

/// One spawn request: the spec blob in a memfd, the fds it names, and its own reply socket.
final class SpawnRequest: @unchecked Sendable {
    var header = cjail_spawn_request()
    private(set) var fds: [Int32]
    /// Our end of the reply socket (read by `JailSpawner` once readable).
    let replyFD: Int32
    private var theirReplyEnd: Int32
    private let memfd: Int32
    /// The trace slots the spawner marks when it takes the request: the caller's, or our own.
    private let takenFD: Int32
    private let ownsTakenFD: Bool

    /// `traceFD`: the slots' memfd or -1.
    init(_ plan: JailSpawnPlan, template: UInt32, cgroupProcs: [Int32], cgroupName: String?, traceFD: Int32, warm: Bool,
         pooled: PooledCgroups? = nil) throws(MiniAppError) {
        guard cgroupProcs.count <= Int(CJAIL_SPAWN_MAX_PROCS) else {
            throw MiniAppError(.internal, "\(cgroupProcs.count) cgroup hierarchies, the spawner takes \(CJAIL_SPAWN_MAX_PROCS)")
        }
        let blob = CSpecBlob.make(plan)
        // Sealed (shrink, grow, write): the spawner refuses anything else.
        let mfd = blob.withUnsafeBytes { cjail_sealed_memfd("miniapp-spec", $0.baseAddress, $0.count) }
        guard mfd >= 0 else {
            throw MiniAppError(.jailUnavailable, "preparing the worker spec failed: \(SystemError("memfd", errno: -mfd))", data: ["step": "spec", "errno": "\(-mfd)"])
        }
        // Where the spawner marks that it took the request: the trace slots (ours when the
        // caller traces nothing).
        let taken = traceFD >= 0 ? traceFD : cjail_trace_memfd("miniapp-taken")
        var pair: [Int32] = [-1, -1]
        guard taken >= 0, cjail_seqpacket_pair(&pair) == 0 else {
            let e = taken < 0 ? -taken : errno
            close(mfd)
            if traceFD < 0 && taken >= 0 { close(taken) }
            throw MiniAppError(.jailUnavailable, "preparing the worker spec failed: \(SystemError("memfd/socketpair", errno: e))", data: ["step": "spec", "errno": "\(e)"])
        }
        takenFD = taken
        ownsTakenFD = traceFD < 0
        memfd = mfd
        replyFD = pair[0]
        theirReplyEnd = pair[1]
        header.blob_len = UInt64(blob.count)
        header.template_id = template
        if let cgroupName, !SpawnerProcess.copyName(cgroupName, into: &header.cgroup) {
            throw MiniAppError(.internal, "cgroup name \(cgroupName) is too long for the spawner")
        }
        if warm { header.flags |= CJAIL_SPAWN_WARM }
        if let pooled, warm, cgroupName != nil, cgroupProcs.isEmpty {
            header.flags |= CJAIL_SPAWN_WARM_CGROUP
            header.cgroup_limits = (pooled.limits.memoryBytes, pooled.limits.pids, pooled.limits.cpuPercent)
            if let spare = pooled.spare, !SpawnerProcess.copyName(spare, into: &header.spare_cgroup) {
                throw MiniAppError(.internal, "cgroup name \(spare) is too long for the spawner")
            }
        }
        if let m = plan.userNamespace {
            header.flags |= CJAIL_SPAWN_IDMAP
            header.inside_uid = m.insideUid; header.outside_uid = m.outsideUid
            header.inside_gid = m.insideGid; header.outside_gid = m.outsideGid
        }
        fds = [mfd, plan.stdinFD, plan.stdoutFD, plan.stderrFD, plan.bridgeFD, plan.netnsFD, taken]
        fds += cgroupProcs + [Int32](repeating: -1, count: Int(CJAIL_SPAWN_MAX_PROCS) - cgroupProcs.count)
        fds.append(theirReplyEnd)
    }

    /// Whether the spawner took the request (it marks it before acting on it). A request sent
    /// to a spawner that died before taking it can be sent again to a new one.
    var taken: Bool {
        var v: UInt64 = 0
        return pread(takenFD, &v, 8, off_t(8 * Int(CJAIL_TRACE_SPAWNER_RECEIVED.rawValue))) == 8 && v != 0
    }

    /// Sends the request on `socket`: 0 or a positive errno. Once sent, our copy of the
    /// spawner's reply end is closed, so the reply socket reads EOF if the spawner dies.
    func send(to socket: Int32) -> Int32 {
        let r = fds.withUnsafeBufferPointer { cjail_spawner_send(socket, &header, $0.baseAddress) }
        if r == 0 { closeTheirs() }
        return r
    }

    private func closeTheirs() {
        guard theirReplyEnd >= 0 else { return }
        close(theirReplyEnd)
        theirReplyEnd = -1
        fds[fds.count - 1] = -1
    }

    deinit {
        closeTheirs()
        close(replyFD)
        close(memfd)
        if ownsTakenFD { close(takenFD) }
    }
}

/// The warm jails the spawner made (spawner_warm.c): our children (CLONE_PARENT) until a launch
/// takes one. Each is watched through the pidfd its notice carried, and reaped if it dies first
/// (discarded, evicted, killed, or left behind by a spawner that died). A launch that takes one
/// hands it to the worker's own watch (`adopt`).
enum WarmJails {
    private struct State {
        var watched: [Int32: Int32] = [:] // pid → pidfd
        /// Taken before its notice was read (the notice and the reply travel on two sockets).
        var adoptedEarly: Set<Int32> = []
    }

    private static let state = Mutex(State())

    /// Watch and release happen under the lock: a pidfd closed by `adopt` before `track` had
    /// registered it would otherwise be registered afterwards, under a number that may by then
    /// belong to the worker's own pidfd (whose exit this watch would then steal).
    /// `cgroup`: the lent cgroup it was put in (removed if it dies untaken), or empty.
    static func track(pid: Int32, pidfd: Int32, cgroup: String = "") {
        state.withLock { s in
            if s.adoptedEarly.remove(pid) != nil {
                close(pidfd)
                return
            }
            s.watched[pid] = pidfd
            // The loop reaps it (waitid on the pidfd) when it exits; only the fd is left to close.
            JailEventLoop.shared.watchExit(pidfd: pidfd) { _, _ in
                let untaken = state.withLock { s -> Bool in
                    guard s.watched[pid] == pidfd else { return false }
                    s.watched[pid] = nil
                    close(pidfd)
                    return true
                }
                if untaken && !cgroup.isEmpty { WarmJailCgroups.jailGone(cgroup) }
            }
        }
    }

    /// A launch took warm jail `pid`: from now on it is a worker, watched by its own pidfd.
    static func adopt(pid: Int32) {
        state.withLock { s in
            guard let fd = s.watched.removeValue(forKey: pid) else {
                s.adoptedEarly.insert(pid)
                return
            }
            JailEventLoop.shared.unwatch(fd)
            close(fd)
        }
    }
}
