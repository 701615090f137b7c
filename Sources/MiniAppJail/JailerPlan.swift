import MiniAppModel
import MiniAppSystem
import CJail

/// The pipes of one worker: stdout/stderr (read ends to the event loop) and /dev/null as stdin.
final class JailPipes: @unchecked Sendable {
    var out: (r: Int32, w: Int32)
    var err: (r: Int32, w: Int32)
    var devNull: Int32

    init() throws(SystemError) {
        let a = try PipePair().takeBoth()
        let b: (read: Int32, write: Int32)
        do { b = try PipePair().takeBoth() } catch {
            Self.close(a.read, a.write)
            throw error
        }
        out = (a.read, a.write)
        err = (b.read, b.write)
        devNull = (try? OwnedFD.open("/dev/null").take()) ?? -1
    }

    func closeChildEnds() {
        Self.close(out.w, err.w, devNull)
        out.w = -1; err.w = -1; devNull = -1
    }

    func closeAll() {
        closeChildEnds()
        Self.close(out.r, err.r)
        out.r = -1; err.r = -1
    }

    private static func close(_ fds: Int32...) {
        for fd in fds where fd >= 0 { OwnedFD(adopting: fd).close() }
    }
}

extension Jailer {
    static let cloneNewNS: UInt64 = 0x0002_0000, cloneNewUTS: UInt64 = 0x0400_0000, cloneNewIPC: UInt64 = 0x0800_0000
    static let cloneNewUser: UInt64 = 0x1000_0000, cloneNewPID: UInt64 = 0x2000_0000, cloneNewNet: UInt64 = 0x4000_0000

    func makePlan(_ launch: JailLaunch, limits: JailLimits, uid: UInt32, gid: UInt32, pipes: JailPipes?) -> JailSpawnPlan {
        let policy = configuration.policy
        var p = JailSpawnPlan()
        let ns = policy.namespaces
        p.cloneFlags = Self.cloneNewNS | Self.cloneNewPID
            | (ns.net ? Self.cloneNewNet : 0) | (ns.ipc ? Self.cloneNewIPC : 0) | (ns.uts ? Self.cloneNewUTS : 0)
        if mode == .rootless {
            p.cloneFlags |= Self.cloneNewUser
            p.userNamespace = .init(insideUid: uid, outsideUid: CurrentProcess.uid, insideGid: gid, outsideGid: CurrentProcess.gid)
        }
        p.unshareCgroup = ns.cgroup
        p.rootPath = rootDir
        p.rootOptions = "mode=0755,size=\(policy.filesystem.rootSizeBytes)"
        p.mounts = JailMountPlan.build(shared: sharedMounts, policy: policy, launch: launch, uid: uid, gid: gid).ops
        p.staticMountCount = sharedMounts.ops.count
        p.hostname = ns.uts ? policy.hostname : ""
        p.workdir = launch.workdir
        p.uid = uid
        p.gid = gid
        p.pdeathsig = policy.dieWithSupervisor ? Signal.kill : 0
        // RLIMIT_FSIZE 1, RLIMIT_CORE 4, RLIMIT_NOFILE 7: core 0 so a crash never writes the
        // program's memory (tokens, user data) to disk.
        p.rlimits = [(1, limits.fileSizeBytes, limits.fileSizeBytes), (4, 0, 0), (7, limits.openFiles, limits.openFiles)]
        p.stdinFD = launch.stdinFD ?? pipes?.devNull ?? -1
        p.stdoutFD = pipes?.out.w ?? -1
        p.stderrFD = pipes?.err.w ?? -1
        p.bridgeFD = launch.bridgeFD ?? -1
        applyLandlock(&p, launch: launch)
        p.filters = configuration.seccompProgram.filters
        p.reaper = policy.reaper
        let env = launch.environment(policy: policy.env)
        p.env = env.map { "\($0.0)=\($0.1)" }
        p.argv = launch.argv
        p.execPaths = Self.execCandidates(launch.argv[0], path: env.first { $0.0 == "PATH" }?.1 ?? "/usr/bin:/bin")
        return p
    }

    private func applyLandlock(_ p: inout JailSpawnPlan, launch: JailLaunch) {
        let abi = configuration.landlockABI
        guard abi > 0 else { return }
        let ll = configuration.policy.landlock
        p.landlockABI = abi
        p.landlockHandledFS = LandlockAccess.handled(abi: abi)
        p.landlockRules = LandlockAccess.rules(abi: abi, extraReadOnly: launch.extraReadOnlyBinds.map(\.jailPath))
        if abi >= 4 && ll.denyTCP { p.landlockHandledNet = 0x3 } // BIND_TCP | CONNECT_TCP, no rule grants them
        if abi >= 6 && ll.scopeSignalsAndAbstractSockets { p.landlockScoped = 0x3 } // ABSTRACT_UNIX_SOCKET | SIGNAL
    }

    /// execvpe-style candidates, computed in the parent (the child must not build strings).
    static func execCandidates(_ name: String, path: String) -> [String] {
        if name.contains("/") { return [name] }
        return path.split(separator: ":").filter { $0.hasPrefix("/") }.map { "\($0)/\(name)" }
    }
}

/// Checks of a launch request, before anything is created.
enum JailLaunchValidator {
    static func validate(_ l: JailLaunch, policy: JailPolicy) throws(MiniAppError) {
        let idOK = !l.programId.isEmpty && l.programId.utf8.count <= 128 && l.programId.utf8.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 || $0 == 95
        }
        guard idOK else { throw PolicyFieldReader.invalid("launch.programId", "must be 1-128 characters of A-Z a-z 0-9 . - _") }
        guard let a0 = l.argv.first, !a0.isEmpty else { throw PolicyFieldReader.invalid("launch.argv", "must name a program") }
        for (i, a) in l.argv.enumerated() where a.utf8.contains(0) {
            throw PolicyFieldReader.invalid("launch.argv[\(i)]", "contains a NUL byte")
        }
        for (k, v) in l.env where k.isEmpty || k.contains("=") || k.utf8.contains(0) || v.utf8.contains(0) {
            throw PolicyFieldReader.invalid("launch.env.\(k)", "is not a valid environment entry")
        }
        if let d = l.appDir { try dir(d, "launch.appDir") }
        if let d = l.dataDir { try dir(d, "launch.dataDir") }
        for (i, b) in l.extraReadOnlyBinds.enumerated() {
            try JailPathRules.checkAbsolute(b.hostPath, field: "launch.extraReadOnlyBinds[\(i)].hostPath")
            guard exists(b.hostPath) else { throw PolicyFieldReader.invalid("launch.extraReadOnlyBinds[\(i)].hostPath", "'\(b.hostPath)' does not exist") }
            try JailPathRules.checkMountPath(b.jailPath, field: "launch.extraReadOnlyBinds[\(i)].jailPath")
            if policy.filesystem.readOnlyHostPaths.contains(JailPathRules.normalized(b.jailPath)) {
                throw PolicyFieldReader.invalid("launch.extraReadOnlyBinds[\(i)].jailPath", "would hide \(b.jailPath) of the policy")
            }
        }
        try JailPathRules.checkAbsolute(l.workdir == "/" ? "/x" : l.workdir, field: "launch.workdir")
        for (fd, f) in [(l.bridgeFD, "launch.bridgeFD"), (l.stdinFD, "launch.stdinFD")] {
            if let fd, !FileSystem.isOpenDescriptor(fd) { throw PolicyFieldReader.invalid(f, "is not an open descriptor") }
        }
    }

    private static func dir(_ d: String, _ field: String) throws(MiniAppError) {
        try JailPathRules.checkAbsolute(d, field: field)
        guard isDirectory(d) else { throw PolicyFieldReader.invalid(field, "'\(d)' does not exist or is not a directory") }
    }
}
