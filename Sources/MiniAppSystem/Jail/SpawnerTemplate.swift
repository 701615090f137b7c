import MiniAppModel
import CJail
import Glibc
import Synchronization

/// What the spawner accepts from a launch (cjail.h, "Templates"; Sources/CJail/spawner_check.c
/// applies the rules): the launch-independent part of a spec, whose launch-dependent binds at
/// `/app` and `/data` name the *roots* program directories must resolve beneath, plus the ids a
/// launch may run as. Registered with every spawner a `SpawnerSlot` starts, before its first
/// launch; once the slot is locked, no other can be added, so a compromised daemon cannot widen
/// what a worker gets.
public struct SpawnerTemplate: Sendable {
    /// The template spec (fds unused).
    public var plan: JailSpawnPlan
    /// Program ids (uid and gid alike) a launch may use: [uidMin, uidMin + uidCount).
    public var uidMin: UInt32
    public var uidCount: UInt32
    /// Rootless: the user namespace maps launches to these outside ids only.
    public var outside: (uid: UInt32, gid: UInt32)?
    /// Launches may pass a pooled network namespace instead of CLONE_NEWNET.
    public var allowsNetnsFD = false
    /// Directories worker cgroups are made in (control requests name cgroups relative to them).
    public var cgroupDirectories: [String] = []

    public init(plan: JailSpawnPlan, uidMin: UInt32, uidCount: UInt32) {
        self.plan = plan
        self.uidMin = uidMin
        self.uidCount = uidCount
    }

    /// The registration header and blob, as sent.
    func encoded(id: UInt32) -> (cjail_template_request, [UInt8]) {
        var h = cjail_template_request()
        let blob = CSpecBlob.make(plan)
        h.id = id
        h.blob_len = UInt64(blob.count)
        h.uid_min = uidMin
        h.uid_count = uidCount
        if let o = outside {
            h.flags |= CJAIL_TEMPLATE_IDMAP
            h.outside_uid = o.uid
            h.outside_gid = o.gid
        }
        if allowsNetnsFD { h.flags |= CJAIL_TEMPLATE_NETNS_FD }
        return (h, blob)
    }

    /// Registers the template with id `id` on the spawner at `socket`: 0 or -errno (EEXIST: it
    /// was there already).
    func register(id: UInt32, on socket: Int32) -> Int32 {
        let (header, blob) = encoded(id: id)
        // Sealed like a launch's spec: the spawner refuses anything else.
        let mfd = blob.withUnsafeBytes { cjail_sealed_memfd("miniapp-template", $0.baseAddress, $0.count) }
        guard mfd >= 0 else { return mfd }
        defer { close(mfd) }
        var dirs: [Int32] = []
        for d in cgroupDirectories.prefix(Int(CJAIL_SPAWN_MAX_PROCS)) {
            guard let fd = try? CgroupBaseDirs.fd(d) else { continue } // absent: no control of it
            dirs.append(fd)
        }
        var h = header
        return dirs.withUnsafeBufferPointer { cjail_spawner_register(socket, &h, mfd, $0.baseAddress, Int32($0.count)) }
    }

    /// Why the spawner refused a launch (`enum cjail_refusal`), for errors.
    static func refusalName(_ r: Int32) -> String {
        let names = ["none", "template", "namespaces", "root", "static_mounts", "mount", "identity", "rlimit", "landlock",
                     "seccomp", "lifetime", "source", "cgroup"]
        return r >= 0 && Int(r) < names.count ? names[Int(r)] : "refusal\(r)"
    }
}

/// The templates of one `SpawnerSlot`: what each spawner it starts is given, in order.
final class SpawnerTemplates: Sendable {
    private struct State {
        var byID: [UInt32: SpawnerTemplate] = [:]
        var order: [UInt32] = []
        var byKey: [[UInt8]: UInt32] = [:]
        var next: UInt32 = 1
        var locked = false
    }

    private let state = Mutex(State())

    /// The id of template `t`, registering it when it is new (refused once locked:
    /// JAIL_UNAVAILABLE). `added` is set when it was new: the caller then registers it with the
    /// running spawner.
    func id(of t: SpawnerTemplate) throws(MiniAppError) -> (id: UInt32, added: SpawnerTemplate?) {
        let (h, blob) = t.encoded(id: 0)
        let key = withUnsafeBytes(of: h) { Array($0) } + blob
        let r = state.withLock { s -> (UInt32, SpawnerTemplate?)? in
            if let id = s.byKey[key] { return (id, nil) }
            guard !s.locked else { return nil }
            let id = s.next
            s.next += 1
            s.byKey[key] = id
            s.byID[id] = t
            s.order.append(id)
            return (id, t)
        }
        guard let r else {
            throw MiniAppError(.jailUnavailable, "the worker spawner's templates are locked and none matches this launch (a policy or bind changed after the start): restart the daemon",
                               data: ["step": "spawner_template"])
        }
        return r
    }

    /// Every template with its id, in registration order, and whether the set is locked.
    var all: (templates: [(UInt32, SpawnerTemplate)], locked: Bool) {
        state.withLock { s in (s.order.compactMap { id in s.byID[id].map { (id, $0) } }, s.locked) }
    }

    /// The template registered as `id`.
    func template(_ id: UInt32) -> SpawnerTemplate? { state.withLock { $0.byID[id] } }

    /// No template is added from now on.
    func lock() { state.withLock { $0.locked = true } }
}
