import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// End-to-end: who may use the control socket, many workers, and a daemon crash.
@Suite struct DaemonEndToEndScaleTests {
    /// Connects as `uid`/`gid` (via setpriv, as root), sends `daemon.info`, and returns every
    /// line received until EOF plus whether EOF came (python: the standard library only).
    func connectAs(uid: Int, gid: Int, groups: [Int] = [], socket: String) throws -> (lines: [JSONObject], closed: Bool, stderr: String) {
        let script = """
            import json, socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"daemon.info"}\\n')
            except OSError:
                pass  # the daemon may already have closed: its one error reply is still readable
            data, closed = b"", False
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    data += chunk
                    if b"\\n" in data and b'"result"' in data:
                        break  # served: the connection stays open, stop reading
            except (socket.timeout, ConnectionResetError):
                closed = isinstance(sys.exc_info()[1], ConnectionResetError)
            print(json.dumps({"lines": [json.loads(l) for l in data.split(b"\\n") if l], "closed": closed}))
            """
        let r = try run(
            [
                "/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)",
                groups.isEmpty ? "--clear-groups" : "--groups=\(groups.map(String.init).joined(separator: ","))",
                "/usr/bin/python3", "-c", script, socket,
            ], timeout: 30)
        let out = try JSONValue.parse(Array(r.stdout.utf8)).objectValue ?? [:]
        return ((out["lines"]?.arrayValue ?? []).compactMap(\.objectValue), out["closed"] == true, r.stderr)
    }

    /// The harness's temp dir is 0700 and the socket 0660 root: both are loosened here so that
    /// another uid reaches the daemon's SO_PEERCRED check at all — the check under test, which
    /// must hold even when an operator loosens the file mode.
    func openUp(_ daemon: DaemonHarness) {
        chmod(daemon.dir.path, 0o711)
        chmod(daemon.socket, 0o666)
    }

    @Test func unauthorizedPeerGetsOneErrorAndIsDisconnected() throws {
        let world = try E2EWorld()
        let daemon = try world.daemon()
        defer { daemon.stop() }
        openUp(daemon)
        let r = try connectAs(uid: 65534, gid: 65534, socket: daemon.socket)
        #expect(r.lines.count == 1, "\(r)")
        let error = r.lines.first?["error"]
        #expect(error?["code"] == -32014)
        #expect(error?["data"]?["code"] == "UNAUTHORIZED")
        #expect(r.lines.first?["result"] == nil)
        #expect(r.closed, "the daemon closes the connection")
        // Others are still served.
        #expect(try daemon.client().call("daemon.info")["version"] == .string(DaemonVersion.current))
        let again = try connectAs(uid: 65534, gid: 65534, socket: daemon.socket)
        #expect(again.lines.first?["error"]?["data"]?["code"] == "UNAUTHORIZED")
    }

    /// The CLI run by a uid the daemon refuses prints the daemon's reason, code first, exit 1
    /// (not a HOST_UNAVAILABLE for a connection that "went away").
    @Test func cliShowsUnauthorized() throws {
        let world = try E2EWorld()
        let daemon = try world.daemon()
        defer { daemon.stop() }
        openUp(daemon)
        let r = try run(
            [
                "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", productsDirectory() + "/miniapp",
                "--socket", daemon.socket, "info",
            ], timeout: 30)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.hasPrefix("UNAUTHORIZED "), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// `controlAllowedUids` / `controlAllowedGids` from the config file admit a peer.
    /// Supplementary groups count (SO_PEERGROUPS): a member of an allowed group is served
    /// whatever its primary gid, as the systemd socket unit's `SocketGroup=miniappd` promises.
    @Test(arguments: [
        (#"{"controlAllowedUids": [65534]}"#, 65534, 65534, [Int](), true),
        (#"{"controlAllowedGids": [65533]}"#, 65534, 65533, [], true),
        (#"{"controlAllowedUids": [65533]}"#, 65534, 65534, [], false),
        (#"{"controlAllowedGids": [65533]}"#, 65534, 65534, [65533], true),
        (#"{"controlAllowedGids": [65533]}"#, 65534, 65534, [65532], false),
        (#"{"controlAllowedGroups": ["users"]}"#, 65534, 65534, [100], true),
        (#"{"controlAllowedGroups": ["users"]}"#, 65534, 65534, [], false),
    ])
    func configuredPeersAreServed(_ config: String, _ uid: Int, _ gid: Int, _ groups: [Int], _ served: Bool) throws {
        let world = try E2EWorld()
        let configPath = try world.dir.write("miniappd.json", config)
        let daemon = try world.daemon(["--config", configPath])
        defer { daemon.stop() }
        openUp(daemon)
        let r = try connectAs(uid: uid, gid: gid, groups: groups, socket: daemon.socket)
        #expect(r.lines.count == 1, "\(r)")
        if served {
            #expect(r.lines.first?["result"]?["version"] == .string(DaemonVersion.current), "\(r)")
            #expect(!r.closed)
        } else {
            #expect(r.lines.first?["error"]?["data"]?["code"] == "UNAUTHORIZED", "\(r)")
            #expect(r.closed)
        }
    }

    /// 100 distinct programs, one worker each: all listed running with pids, all stopped with
    /// reason `stopped`, nothing left in the list or in the cgroup hierarchies.
    @Test(.timeLimit(.minutes(2))) func hundredWorkers() throws {
        let world = try E2EWorld()
        let count = 100
        let tag = UUID().uuidString.prefix(6).lowercased()
        let ids = (0..<count).map { "com.e2e.many-\(tag).p\($0)" }
        let zips = try ids.map { id in
            try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        }
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let daemonPid = daemon.process.processIdentifier
        let host = try E2EHost(daemon)
        let t0 = Date()
        for zip in zips { try host.call("packages.install", ["path": .string(zip)]) }
        var workers: [String: String] = [:]  // workerId → program id
        for id in ids {
            let r = try host.call("programs.launch", ["id": .string(id)])
            workers[try #require(r["workerId"]?.stringValue)] = id
        }
        let tLaunched = Date()
        #expect(workers.count == count, "one worker per program")

        let listed = try host.call("programs.list")["workers"]?.arrayValue ?? []
        #expect(listed.count == count)
        #expect(Set(listed.compactMap { $0["id"]?.stringValue }) == Set(ids))
        #expect(listed.allSatisfy { $0["state"] == "running" })
        let pids = listed.compactMap { $0["pid"]?.intValue }.map { Int32($0) }
        #expect(Set(pids).count == count)
        #expect(pids.allSatisfy { E2EProbe.isAlive($0) })
        #expect(E2EProbe.workerCgroups(daemonPid: daemonPid).count >= count)

        for wid in workers.keys.sorted() {
            #expect(try host.call("programs.stop", ["workerId": .string(wid), "graceMillis": 2000])["status"] == 143)
        }
        try host.waitFor("100 exits") { _ in host.notifications("program.exited").count >= count }
        let exits = host.notifications("program.exited").compactMap { $0["params"]?.objectValue }
        #expect(Set(exits.compactMap { $0["workerId"]?.stringValue }) == Set(workers.keys))
        #expect(exits.allSatisfy { $0["reason"] == "stopped" && $0["status"] == 143 && $0["signal"] == "SIGTERM" })
        #expect(try host.call("programs.list")["workers"] == [])
        #expect(E2EProbe.eventually { pids.allSatisfy { !E2EProbe.isAlive($0) } })
        #expect(E2EProbe.eventually { E2EProbe.workerCgroups(daemonPid: daemonPid).isEmpty },
                "left: \(E2EProbe.workerCgroups(daemonPid: daemonPid))")
        print("hundredWorkers: install+launch \(tLaunched.timeIntervalSince(t0))s, stop \(Date().timeIntervalSince(tLaunched))s")
    }

    /// kill -9 of the daemon with running and suspended workers: no worker survives it, and a
    /// daemon restarted on the same state dir sweeps the old cgroups, still has the packages
    /// and the acknowledged storage, and continues the worker ids.
    @Test func daemonCrashLeavesNothingBehind() throws {
        let world = try E2EWorld()
        let counter = E2EPartner.programId("visits")
        let sleeper = E2EPartner.programId("pysleep")
        let frozen = E2EPartner.programId("frozen")
        let zips = [
            try world.package(E2EWorld.manifest(id: counter, entry: "main.js", permissions: ["ui"]), files: ["main.js": E2EPrograms.visitCounter]),
            try world.package(E2EWorld.manifest(id: sleeper, entry: "main.py", permissions: ["ui"]), files: ["main.py": E2EPrograms.pythonSleeper]),
            try world.package(E2EWorld.manifest(id: frozen, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge]),
        ]
        let state = world.dir.file("state")
        let first = try world.daemon(stateDir: state)
        let oldPid = first.process.processIdentifier
        var oldWorkerNumbers: [Int] = []
        var workerPids: [Int32] = []
        do {
            let host = try E2EHost(first)
            host.answers["ui.toast"] = { _ in [:] }
            try host.call("bridge.provide", ["methods": ["ui.toast"]])
            for zip in zips { try host.call("packages.install", ["path": .string(zip)]) }
            for id in [counter, sleeper, frozen] {
                let r = try host.call("programs.launch", ["id": .string(id)])
                oldWorkerNumbers.append(Self.number(r["workerId"]))
                workerPids.append(Int32(r["pid"]?.intValue ?? 0))
            }
            // The reports come after acknowledged storage.set calls.
            #expect(try host.report(from: counter) == ["kind": "stored", "before": .null, "n": 1])
            #expect(try host.report(from: sleeper) == ["kind": "python", "got": [1, 2, 3]])
            let frozenWorker = try host.call("programs.list")["workers"]?.arrayValue?.first { $0["id"]?.stringValue == frozen }
            try host.call("programs.suspend", ["workerId": try #require(frozenWorker?["workerId"])])
            // Polled: a cgroup made ahead gets the worker's name right after the spawn, off the
            // launch path, so it may still bear its pool name when the launch has answered.
            #expect(E2EProbe.eventually { E2EProbe.freezerState(daemonPid: oldPid, programId: frozen) == "FROZEN" })
        }
        let spawners = E2EProbe.children(of: oldPid, named: "miniappd-spawn")
        #expect(spawners.count == 1, "the daemon clones workers through exactly one spawner process: \(spawners)")
        first.crash()
        #expect(E2EProbe.eventually { spawners.allSatisfy { !E2EProbe.isAlive($0) } }, "the spawner outlived the daemon")

        // PDEATHSIG ends every running worker; the suspended one only once the daemon's crash
        // guard has thawed it (under the v1 freezer a frozen task ignores even SIGKILL).
        let running = Array(workerPids.prefix(2))
        #expect(E2EProbe.eventually { running.allSatisfy { !E2EProbe.isAlive($0) } }, "\(running)")
        #expect(E2EProbe.eventually { !E2EProbe.isAlive(workerPids[2]) }, "the suspended worker outlived the daemon")

        // The dead daemon's cgroup directories are left for the next start's sweep (here, or
        // that of any other daemon started meanwhile under the same parent cgroup).
        let second = try world.daemon(stateDir: state)
        defer { second.stop() }
        #expect(E2EProbe.workerCgroups(daemonPid: oldPid).isEmpty, "\(E2EProbe.workerCgroups(daemonPid: oldPid))")
        #expect(workerPids.allSatisfy { !E2EProbe.isAlive($0) })
        let host = try E2EHost(second)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        let installed = (try host.call("packages.list")["packages"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        #expect(Set(installed) == Set([counter, sleeper, frozen]))
        #expect(try host.call("programs.list")["workers"] == [])
        let relaunched = try host.call("programs.launch", ["id": .string(counter)])
        #expect(try host.report(from: counter) == ["kind": "stored", "before": 1, "n": 2])
        let newNumber = Self.number(relaunched["workerId"])
        #expect(newNumber > (oldWorkerNumbers.max() ?? .max), "worker ids continue: \(oldWorkerNumbers) then \(newNumber)")
    }

    /// `w-17` → 17 (-1 when absent or malformed).
    static func number(_ workerId: JSONValue?) -> Int {
        guard let s = workerId?.stringValue, s.hasPrefix("w-"), let n = Int(s.dropFirst(2)) else { return -1 }
        return n
    }
}
