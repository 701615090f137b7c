import Foundation
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// Privilege separation with the real daemon: started as root, it starts the spawner, drops to
/// `--user` (here the harness's test-only ids, no system user needed) and still runs, suspends
/// and stops workers — through the spawner where it lost the right to act itself.
@Suite("privilege separation (root)", .serialized)
struct PrivilegeSeparationTests {
    static let zero = "0000000000000000"

    /// `/proc/<pid>/status` (or a task's) as name → value.
    static func status(_ path: String) -> [String: String] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            out[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    /// With and without warm jails: each shape starts its own pools, whose threads live from
    /// before the drop (the bounding set is per thread: one left out keeps a full set).
    @Test("the daemon runs as --user with no capability, no_new_privs and its seccomp filter on every thread; the spawner alone keeps root",
          arguments: [true, false])
    func droppedDaemonStatus(warmJails: Bool) throws {
        guard geteuid() == 0, let user = DaemonHarness.dropUser else { return }
        let ids = user.split(separator: ":").map(String.init)
        let world = try E2EWorld()
        let config = try world.dir.write("pools.json", #"{"warmJails": \#(warmJails)}"#)
        let daemon = try world.daemon(["--config", config])
        defer { daemon.stop() }
        let s = Self.status("/proc/\(daemon.pid)/status")
        #expect(s["Uid"] == "\(ids[0])\t\(ids[0])\t\(ids[0])\t\(ids[0])")
        #expect(s["Gid"] == "\(ids[1])\t\(ids[1])\t\(ids[1])\t\(ids[1])")
        #expect(s["Groups"] == ids[1], "no supplementary group but its own")
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(s[cap] == Self.zero, "\(cap)") }
        #expect(s["NoNewPrivs"] == "1")
        #expect(s["Seccomp"] == "2", "filter mode")
        // Every thread: glibc's setresuid and seccomp's TSYNC reach them all.
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/task")
        #expect(tasks.count > 1)
        for t in tasks {
            let ts = Self.status("/proc/\(daemon.pid)/task/\(t)/status")
            guard !ts.isEmpty else { continue } // ended meanwhile
            for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] { #expect(ts[cap] == Self.zero, "thread \(t) \(ts["Name"] ?? ""): \(cap)") }
            #expect(ts["Uid"] == s["Uid"], "thread \(t)")
            #expect(ts["NoNewPrivs"] == "1" && ts["Seccomp"] == "2", "thread \(t)")
        }
        // The spawner, its child, holds the privileges (and nothing that parses a program's bytes).
        let spawners = E2EProbe.children(of: daemon.pid, named: "miniappd-spawn")
        #expect(spawners.count == 1)
        let sp = Self.status("/proc/\(spawners.first ?? -1)/status")
        #expect(sp["Uid"] == "0\t0\t0\t0")
        #expect(sp["CapEff"] != nil && sp["CapEff"] != Self.zero)
        // Its state directory is its own.
        var st = stat()
        #expect(stat(daemon.dir.file("state/packages"), &st) == 0 && st.st_uid == UInt32(ids[0]))
        let log = daemon.logText()
        #expect(log.contains("running as uid \(ids[0])"))
    }

    /// Everything privileged a worker's life needs still works, through the spawner: the data
    /// dir given to the program's uid (CHOWN_DATA), the cgroup attach by name, freeze, SIGTERM
    /// and SIGKILL to another uid's process (SIGNAL).
    @Test("a dropped daemon launches, suspends, resumes and stops workers through the spawner")
    func droppedDaemonLifecycle() throws {
        guard geteuid() == 0, let user = DaemonHarness.dropUser else { return }
        let uid = UInt32(user.split(separator: ":")[0])!
        let world = try E2EWorld()
        let id = E2EPartner.programId("drop")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": E2EPrograms.eventLoop])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])
        let first = try host.call("programs.launch", ["id": .string(id), "args": ["a"]])
        let wid = try #require(first["workerId"]?.stringValue)
        #expect(try host.report(from: id) == ["kind": "ready", "args": ["a"]])
        var st = stat()
        #expect(stat(daemon.dir.file("state/data/\(id)"), &st) == 0 && st.st_uid != uid && st.st_uid != 0 && st.st_mode & 0o777 == 0o700)
        // A cgroup made ahead gets the worker's name right after the spawn, off its path.
        #expect(E2EProbe.eventually { !E2EProbe.workerCgroups(daemonPid: daemon.pid).isEmpty })
        let cgroups = E2EProbe.workerCgroups(daemonPid: daemon.pid)
        #expect(!cgroups.isEmpty)
        for dir in cgroups { #expect(stat(dir, &st) == 0 && st.st_uid == uid, "\(dir) is the daemon's (delegated)") }

        try host.call("programs.suspend", ["workerId": .string(wid)])
        #expect(E2EProbe.freezerState(daemonPid: daemon.pid, programId: id) == "FROZEN")
        try host.call("programs.resume", ["workerId": .string(wid)])
        #expect(E2EProbe.freezerState(daemonPid: daemon.pid, programId: id) == "THAWED")
        let stopped = try host.call("programs.stop", ["workerId": .string(wid), "graceMillis": 10_000])
        #expect(stopped["status"] == 0, "SIGTERM reached it")
        #expect(try host.exited(wid)["reason"] == "stopped")

        let stubborn = try host.call("programs.launch", ["id": .string(id), "args": ["ignore-term"]])
        let swid = try #require(stubborn["workerId"]?.stringValue)
        #expect(try host.report(from: id, number: 2) == ["kind": "ready", "args": ["ignore-term"]])
        let killed = try host.call("programs.stop", ["workerId": .string(swid), "graceMillis": 300])
        #expect(killed["status"] == 137)
        #expect(try host.exited(swid)["signal"] == "SIGKILL")
        #expect(E2EProbe.eventually { E2EProbe.workerCgroups(daemonPid: daemon.pid).isEmpty }, "cgroups removed by the daemon itself")
    }

    @Test("--no-drop keeps the single-process design: the daemon stays root")
    func noDrop() throws {
        guard geteuid() == 0 else { return }
        let world = try E2EWorld()
        let daemon = try DaemonHarness(policyDir: world.policyDir, user: nil)
        defer { daemon.stop() }
        let s = Self.status("/proc/\(daemon.pid)/status")
        #expect(s["Uid"] == "0\t0\t0\t0")
        #expect(s["Seccomp"] == "0")
    }

    @Test("--user takes NAME or UID:GID and refuses root and malformed ids", arguments: [
        ("60999:60998", true), ("0:0", false), ("1:0", false), ("0:1", false), ("4294967295:1", false), ("a:b", false),
        ("1:2:3", false), ("", false), ("root", false), ("no-such-user-here", false), ("-1:5", false),
    ])
    func dropUserParsing(_ text: String, _ ok: Bool) {
        #expect(((try? DropUser.parse(text)) != nil) == ok, "\(text)")
    }
}
