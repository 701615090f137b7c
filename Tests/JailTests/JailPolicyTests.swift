import Foundation
import MiniAppJail
import MiniAppModel
import MiniAppSystem
import Testing

@Suite("policy validation: bad specs fail before anything is spawned")
struct JailPolicyTests {
    static let badPolicies: [(String, String)] = [
        (#"{"limits": {"memoryBytes": 1024}}"#, "limits.memoryBytes"),
        (#"{"limits": {"pids": 0}}"#, "limits.pids"),
        (#"{"limits": {"pids": 1}}"#, "limits.pids"), // the reaper and the program are two
        (#"{"reaper": false}"#, "reaper"),
        (#"{"dieWithSupervisor": false}"#, "dieWithSupervisor"),
        (#"{"filesystem": {"tmpInodes": 10}}"#, "filesystem.tmpInodes"),
        (#"{"limits": {"cpuPercent": -5}}"#, "limits.cpuPercent"),
        (#"{"limitz": {}}"#, "limitz"),
        (#"{"namespaces": {"pid": false}}"#, "namespaces.pid"),
        (#"{"filesystem": {"readOnlyHostPaths": ["usr"]}}"#, "filesystem.readOnlyHostPaths[0]"),
        (#"{"filesystem": {"readOnlyHostPaths": ["/proc/1"]}}"#, "filesystem.readOnlyHostPaths[0]"),
        (#"{"filesystem": {"devices": ["mem"]}}"#, "filesystem.devices[0]"),
        (#"{"identity": {"uidRangeStart": 0}}"#, "identity.uidRangeStart"),
        (#"{"identity": {"uidRangeStart": 60000, "uidRangeCount": 10000}}"#, "identity.uidRangeStart"), // holds nobody
        (#"{"identity": {"uidRangeStart": 2147483000, "uidRangeCount": 1000}}"#, "identity.uidRangeCount"), // passes 2^31
        (#"{"hostname": "bad host!"}"#, "hostname"),
        (#"{"landlock": {"mode": "sometimes"}}"#, "landlock.mode"),
        (#"{"seccompProfile": "../../etc/x.json"}"#, "seccompProfile"),
        // /etc/ssl whole would bind /etc/ssl/private (the host's TLS keys) into every jail
        (#"{"filesystem": {"etc": ["/etc/ssl"]}}"#, "filesystem.etc[0]"),
        (#"{"filesystem": {"etc": ["/etc/localtime", "/etc/ssl/private/host.key"]}}"#, "filesystem.etc[1]"),
        (#"{"filesystem": {"etc": ["//etc//ssh/"]}}"#, "filesystem.etc[0]"),
        (#"{"filesystem": {"etc": ["/etc/shadow"]}}"#, "filesystem.etc[0]"),
    ]

    @Test("rootless mode refuses a daemon user with supplementary groups", arguments: [
        ([UInt32](), true), ([1000], true), ([1000, 27], false), ([4, 1000], false), ([100], false),
    ])
    func rootlessGroups(_ groups: [UInt32], _ ok: Bool) {
        do {
            try Jailer.checkRootlessGroups(groups, primary: 1000)
            #expect(ok, "\(groups) accepted")
        } catch {
            #expect(!ok && error.code == .jailUnavailable && error.message.contains("supplementary groups"), "\(groups): \(error)")
        }
    }

    @Test("invalid jail.json is rejected naming the field", arguments: badPolicies)
    func badPolicy(_ json: String, _ field: String) {
        do {
            _ = try JailPolicy.parse(Array(json.utf8))
            Issue.record("accepted: \(json)")
        } catch {
            #expect(error.code == .policyInvalid)
            #expect(error.data["field"] == field, "\(error)")
        }
    }

    @Test("a missing host path is rejected at load")
    func missingPath() throws {
        var p = JailPolicy()
        p.filesystem.readOnlyHostPaths = ["/nonexistent-\(getpid())"]
        #expect(throws: MiniAppError.self) { try JailPolicy.configure(p, policyDir: JailHarness.policyDir) }
    }

    static let badProfiles: [(String, String)] = [
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"}]}"#, "syscalls[0].names[1]"),
        (#"{"defaultAction": "SCMP_ACT_NOPE"}"#, "defaultAction"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#, "syscalls[0].args[0].index"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SIMILAR"}]}]}"#, "syscalls[0].args[0].op"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#, "architectures[0]"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#, "syscalls[0].names"),
        // one syscall both allowed and denied: libseccomp would silently keep one of the two
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "ptrace"], "action": "SCMP_ACT_ALLOW"}, {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}"#, "syscalls[1]"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}, {"names": ["socket"], "action": "SCMP_ACT_KILL"}]}"#, "syscalls[1]"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_TRAP"}, {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#, "syscalls[1]"),
        // filter flags are refused unless they change nothing; notify listeners are unsupported
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}"#, "flags[0]"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]}"#, "flags[1]"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/seccomp-agent.sock"}"#, "listenerPath"),
        (#"{"defaultAction": "SCMP_ACT_ERRNO", "listenerMetadata": "x"}"#, "listenerMetadata"),
    ]

    static let goodProfiles = [
        // the same action twice (Docker repeats names), TSYNC (a no-op for a single thread)
        #"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_TSYNC"], "listenerPath": "", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}"#,
        // conditional rules of different actions side by side, and a conditional deny over an allow
        #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"}, {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 4294967295, "valueTwo": 21522, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
    ]

    @Test("valid seccomp profiles compile", arguments: goodProfiles)
    func goodProfile(_ json: String) throws {
        _ = try SeccompCompiler.compile(try SeccompProfile.parse(Array(json.utf8)))
    }

    @Test("invalid seccomp profiles are rejected naming the field", arguments: badProfiles)
    func badProfile(_ json: String, _ field: String) {
        do {
            let p = try SeccompProfile.parse(Array(json.utf8))
            _ = try SeccompCompiler.compile(p)
            Issue.record("accepted: \(json)")
        } catch {
            #expect(error.code == .policyInvalid)
            #expect(error.data["field"]?.hasSuffix(field) == true, "\(error)")
        }
    }

    @Test("the shipped profiles load and compile", arguments: ["seccomp/default.json", "seccomp/docker-default.json"])
    func shippedProfiles(_ name: String) throws {
        let bytes = Array(FileManager.default.contents(atPath: "\(JailHarness.policyDir)/\(name)") ?? Data())
        let p = try SeccompProfile.parse(bytes, source: name)
        let prog = try SeccompCompiler.compile(p, source: name)
        #expect(prog.filters.count >= 1)
        #expect(prog.instructionCounts.allSatisfy { $0 > 10 && $0 <= 4096 })
        if name.hasSuffix("default.json") && !name.contains("docker") {
            #expect(prog.filters.count == 2) // allowlist + stacked masked ioctl denials
        }
    }

    @Test("switching off cgroups or Landlock is loud: the configuration lists it")
    func warnings() throws {
        var p = JailPolicy()
        p.cgroup.version = .none
        p.landlock.mode = .off
        let c = try JailPolicy.configure(p, policyDir: JailHarness.policyDir)
        #expect(c.warnings.count == 2 && c.warnings[0].contains("NO memory, pids or CPU limits") && c.warnings[1].contains("Landlock"), "\(c.warnings)")
        #expect(try JailPolicy.load(policyDir: JailHarness.policyDir).warnings.isEmpty)
    }

    @Test("the shipped jail.json loads")
    func shippedPolicy() throws {
        let c = try JailPolicy.load(policyDir: JailHarness.policyDir)
        #expect(c.policy.limits.pids == 64)
        #expect(c.policy.env["PATH"] == "/usr/bin:/bin")
    }

    static let badLaunches: [(String, @Sendable (inout JailLaunch) -> Void, String)] = [
        ("missing app dir", { $0.appDir = "/nonexistent-app" }, "launch.appDir"),
        ("bad program id", { $0.programId = "../../x" }, "launch.programId"),
        ("empty argv", { $0.argv = [] }, "launch.argv"),
        ("bind over /proc", { $0.extraReadOnlyBinds = [JailBind(hostPath: "/usr", jailPath: "/proc")] }, "launch.extraReadOnlyBinds[0].jailPath"),
        ("bind missing host", { $0.extraReadOnlyBinds = [JailBind(hostPath: "/nonexistent-sdk", jailPath: "/sdk")] }, "launch.extraReadOnlyBinds[0].hostPath"),
        ("impossible memory", { var l = JailLimits(); l.memoryBytes = 100; $0.limitsOverride = l }, "limitsOverride.memoryBytes"),
        // Int32.max: never open (987 was, now and then, when a parallel test held many fds)
        ("closed bridge fd", { $0.bridgeFD = Int32.max }, "launch.bridgeFD"),
    ]

    @Test("invalid launches fail with POLICY_INVALID before spawning", arguments: badLaunches.indices)
    func badLaunch(_ i: Int) async {
        let (name, mutate, field) = Self.badLaunches[i]
        guard let jailer = JailHarness.jailer else { Issue.record("no fixture"); return }
        var l = JailLaunch(programId: "test.bad", argv: ["/bin/true"])
        mutate(&l)
        do {
            _ = try jailer.spawn(l)
            Issue.record("\(name) was accepted")
        } catch {
            #expect(error.code == .policyInvalid, "\(name): \(error)")
            #expect(error.data["field"] == field, "\(name): \(error)")
        }
    }

    @Test("a program that does not exist fails with JAIL_SETUP_FAILED at step exec")
    func execFails() async {
        guard let jailer = JailHarness.jailer else { Issue.record("no fixture"); return }
        do {
            _ = try jailer.spawn(JailLaunch(programId: "test.noexec", argv: ["/usr/bin/no-such-program"]))
            Issue.record("spawned")
        } catch {
            #expect(error.code == .jailSetupFailed)
            #expect(error.data["step"] == "exec" && error.data["errno"] == "\(ENOENT)", "\(error)")
        }
    }
}
