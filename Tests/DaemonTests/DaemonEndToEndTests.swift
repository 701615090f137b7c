import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// The whole daemon through its control socket, with real jailed workers (node, python and
/// shell programs): each test starts its own `miniappd` on a temp state dir and stops it.
@Suite struct DaemonEndToEndTests {
    /// install → launch → built-in and host-provided Bridge calls → `program.exited`, with the
    /// Inspector watching and a denied call that never reaches its provider.
    @Test func bridgeTourThroughTheControlSocket() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("tour")
        let zip = try world.package(
            E2EWorld.manifest(id: id, version: "2.1.0", entry: "main.js", permissions: ["payment", "ui"]),
            files: ["main.js": E2EPrograms.bridgeTour])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["payment.pay"] = { p in ["transactionId": .string("tx-\(p["orderId"]?.stringValue ?? "?")")] }
        host.answers["geolocation.get"] = { _ in ["latitude": 1, "longitude": 2] }
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("session.set", ["userId": "user-42", "claims": ["tier": "gold"]])
        try host.call("bridge.provide", ["methods": ["payment.pay", "geolocation.get", "ui.toast"]])
        try host.call("inspector.subscribe", ["programId": .string(id)])

        let installed = try host.call("packages.install", ["path": .string(zip)])
        #expect(installed["id"]?.stringValue == id)
        #expect(installed["version"] == "2.1.0")
        #expect(installed["active"] == true)
        let launched = try host.call("programs.launch", ["id": .string(id)])
        let wid = try #require(launched["workerId"]?.stringValue)
        #expect(launched["version"] == "2.1.0")
        #expect((launched["pid"]?.intValue ?? 0) > 1)

        let report = try host.report(from: id)
        #expect(report["info"]?["programId"]?.stringValue == id)
        #expect(report["info"]?["version"] == "2.1.0")
        #expect(report["info"]?["hostVersion"] == .string(DaemonVersion.current))
        #expect(report["got"] == ["text": "héllo", "n": 42])
        #expect(report["missing"] == .null)
        #expect(report["parts"] == 3, "a JWT has three parts")
        #expect(report["claims"]?["aud"]?.stringValue == id)
        #expect(report["claims"]?["sub"] == "user-42")
        #expect(report["claims"]?["scope"] == "basic")
        let iat = report["claims"]?["iat"]?.intValue ?? 0
        #expect(report["claims"]?["exp"]?.intValue == iat + 900)
        #expect(report["expiresAt"]?.intValue == iat + 900)
        #expect(report["pay"] == ["transactionId": "tx-order-7"])
        #expect(report["denied"] == "PERMISSION_DENIED")

        let exited = try host.exited(wid)
        #expect(exited["status"] == 7)
        #expect(exited["reason"] == "exit")
        #expect(exited["id"]?.stringValue == id)
        #expect(exited["signal"] == nil)

        // Only calls that passed the permission check reach a provider.
        let servedMethods = host.served.map { $0["params"]?["method"]?.stringValue ?? "" }
        #expect(servedMethods == ["payment.pay", "ui.toast"])
        let pay = try #require(host.served.first)
        #expect(pay["params"]?["program"] == ["id": .string(id), "version": "2.1.0"])
        #expect(pay["params"]?["workerId"]?.stringValue == wid)
        #expect(pay["params"]?["params"]?["orderId"] == "order-7")

        // One inspector event per Bridge call, in the order the program made them.
        let expected = [
            "system.info", "storage.set", "storage.get", "storage.get", "auth.getToken", "payment.pay", "geolocation.get",
            "ui.toast",
        ]
        try host.waitFor("all inspector events") { _ in host.notifications("inspector.event").count >= expected.count }
        let events = host.notifications("inspector.event").compactMap { $0["params"]?.objectValue }
        #expect(events.map { $0["method"]?.stringValue ?? "" } == expected)
        for e in events {
            #expect(e["workerId"]?.stringValue == wid)
            #expect(e["programId"]?.stringValue == id)
            #expect((e["bytesIn"]?.intValue ?? 0) > 0)
            #expect(e["micros"]?.intValue != nil)
            #expect(e["params"] == nil && e["result"] == nil, "no payloads unless switched on")
        }
        let geo = events.first { $0["method"] == "geolocation.get" }
        #expect(geo?["decision"] == "deny")
        #expect(geo?["code"] == "PERMISSION_DENIED")
        #expect(events.filter { $0["method"] != "geolocation.get" }.allSatisfy { $0["decision"] == "allow" && $0["code"] == nil })
        #expect(!host.seen.contains { JSONValue.object($0).jsonString.contains("eyJ") }, "no issued token is ever shown")
    }

    /// Lifecycle through the control API: idempotent launch, suspend/resume (really frozen),
    /// events, stop with a grace, and the control API's error table.
    @Test func lifecycleAndErrors() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("life")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": E2EPrograms.eventLoop])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])

        let first = try host.call("programs.launch", ["id": .string(id), "args": ["a1", "a 2"]])
        #expect(try host.report(from: id) == ["kind": "ready", "args": ["a1", "a 2"]])
        let second = try host.call("programs.launch", ["id": .string(id)])
        #expect(second["workerId"] == first["workerId"])
        #expect(second["pid"] == first["pid"])
        let wid = try #require(first["workerId"]?.stringValue)

        // Suspended: the cgroup is frozen, an event waits; resumed: it is handled.
        try host.call("programs.suspend", ["workerId": .string(wid)])
        let listed = try host.call("programs.list")["workers"]?.arrayValue ?? []
        #expect(listed.count == 1)
        #expect(listed.first?["state"] == "suspended")
        #expect(listed.first?["workerId"]?.stringValue == wid)
        #expect(E2EProbe.freezerState(daemonPid: daemon.process.processIdentifier, programId: id) == "FROZEN")
        try host.call("programs.send", ["workerId": .string(wid), "name": "e2e.ping", "data": ["n": 1]])
        try host.call("programs.resume", ["workerId": .string(wid)])
        #expect(try host.call("programs.list")["workers"]?.arrayValue?.first?["state"] == "running")
        #expect(E2EProbe.freezerState(daemonPid: daemon.process.processIdentifier, programId: id) == "THAWED")
        let event = try host.report(from: id, number: 2)
        #expect(event == ["kind": "event", "stored": ["name": "e2e.ping", "data": ["n": 1]]])

        // Errors, with the numeric codes of the spec's table.
        let busy = try host.rawCall("packages.remove", ["id": .string(id)])
        #expect(busy["error"]?["code"] == -32011)
        #expect(busy["error"]?["data"]?["code"] == "ALREADY_RUNNING")
        let unknown = try host.rawCall("programs.launch", ["id": "com.e2e.no-such-program"])
        #expect(unknown["error"]?["code"] == -32010)
        #expect(unknown["error"]?["data"]?["code"] == "NOT_FOUND")
        let noWorker = try host.rawCall("programs.stop", ["workerId": .string("w-999999")])
        #expect(noWorker["error"]?["data"]?["code"] == "NOT_FOUND")

        // Stop: the program exits 0 on SIGTERM, well before the grace runs out.
        let stopped = try host.call("programs.stop", ["workerId": .string(wid), "graceMillis": 10_000])
        #expect(stopped["status"] == 0)
        let exited = try host.exited(wid)
        #expect(exited["reason"] == "stopped")
        #expect(exited["status"] == 0)
        #expect(exited["signal"] == nil, "it exited by itself")
        #expect(try host.call("programs.list")["workers"] == [])

        // A program that ignores SIGTERM is killed when the grace ends.
        let stubborn = try host.call("programs.launch", ["id": .string(id), "args": ["ignore-term"]])
        let swid = try #require(stubborn["workerId"]?.stringValue)
        #expect(swid != wid)
        #expect(try host.report(from: id, number: 3) == ["kind": "ready", "args": ["ignore-term"]])
        let t0 = Date()
        let killed = try host.call("programs.stop", ["workerId": .string(swid), "graceMillis": 400])
        #expect(Date().timeIntervalSince(t0) >= 0.35)
        #expect(killed["status"] == 137)
        let kexit = try host.exited(swid)
        #expect(kexit["reason"] == "stopped")
        #expect(kexit["signal"] == "SIGKILL")

        try host.call("packages.remove", ["id": .string(id)])
        #expect(try host.rawCall("programs.launch", ["id": .string(id)])["error"]?["data"]?["code"] == "NOT_FOUND")
    }

    /// Install refusals travel as INVALID_PACKAGE with the package code in `data.reason`.
    @Test func installRefusals() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("bad")
        let manifest = E2EWorld.manifest(id: id, entry: "main.js")
        let tampered = try world.tamperedPackage(
            manifest, signed: ["main.js": "console.log('good')\n"], shipped: ["main.js": "console.log('evil')\n"])
        let tooNew = try world.package(E2EWorld.manifest(id: id, minHostVersion: "99.0.0", entry: "main.js"), files: ["main.js": "1\n"])
        let notGranted = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["geolocation"]), files: ["main.js": "1\n"])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        for (path, reason) in [(tampered, "BAD_SIGNATURE"), (tooNew, "HOST_UPDATE_REQUIRED"), (notGranted, "PERMISSION_NOT_GRANTED")] {
            let r = try host.rawCall("packages.install", ["path": .string(path)])
            #expect(r["error"]?["code"] == -32012, "\(reason)")
            #expect(r["error"]?["data"]?["code"] == "INVALID_PACKAGE", "\(reason)")
            #expect(r["error"]?["data"]?["reason"]?.stringValue == reason)
        }
        #expect(try host.call("packages.list")["packages"] == [], "nothing was installed")
    }

    /// A package installed on a newer host cannot launch after the host version goes down:
    /// HOST_UPDATE_REQUIRED naming the version required — unless another installed version
    /// still runs on this host, which is then launched (spec: "no installed version runs").
    @Test func launchRefusedWhenTheHostIsTooOld() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("newhost")
        let zip = try world.package(E2EWorld.manifest(id: id, minHostVersion: "4.2.0", entry: "main.sh"), files: ["main.sh": "#!/bin/sh\n"])
        let both = E2EPartner.programId("fallback")
        let v1 = try world.package(E2EWorld.manifest(id: both, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        let v2 = try world.package(
            E2EWorld.manifest(id: both, version: "2.0.0", minHostVersion: "4.2.0", entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        let state = world.dir.file("state")
        let newer = try world.daemon(["--host-version", "5.0.0"], stateDir: state)
        for path in [zip, v1, v2] {
            #expect(try newer.client().call("packages.install", ["path": .string(path)])["active"] == true)
        }
        #expect(newer.stop() == 0)
        let older = try world.daemon(["--host-version", "4.1.9"], stateDir: state)
        defer { older.stop() }
        let host = try E2EHost(older)
        let r = try host.rawCall("programs.launch", ["id": .string(id)])
        #expect(r["error"]?["code"] == -32013)
        #expect(r["error"]?["data"]?["code"] == "HOST_UPDATE_REQUIRED")
        #expect(r["error"]?["data"]?["required"] == "4.2.0")
        let fallback = try host.call("programs.launch", ["id": .string(both)])
        #expect(fallback["version"] == "1.0.0", "the newest installed version this host runs")
        let listed = try host.call("packages.list")["packages"]?.arrayValue?.first { $0["id"]?.stringValue == both }
        #expect(listed?["active"] == "2.0.0", "the active version is not changed")
    }

    /// SIGTERM: workers are stopped (hosts hear `daemon-shutdown` before the connection
    /// closes), the daemon exits 0 and removes its socket.
    @Test func sigtermStopsWorkersAndExitsCleanly() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("term")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        try host.call("packages.install", ["path": .string(zip)])
        let launched = try host.call("programs.launch", ["id": .string(id)])
        let wid = try #require(launched["workerId"]?.stringValue)
        let pid = Int32(try #require(launched["pid"]?.intValue))
        #expect(E2EProbe.isAlive(pid))

        kill(daemon.process.processIdentifier, SIGTERM)
        try host.drainUntilClosed()
        let exits = host.notifications("program.exited").compactMap { $0["params"]?.objectValue }
        #expect(exits.count == 1)
        #expect(exits.first?["workerId"]?.stringValue == wid)
        #expect(exits.first?["reason"] == "daemon-shutdown")
        #expect(daemon.stop() == 0)
        #expect(daemon.process.terminationReason == .exit)
        #expect(!FileManager.default.fileExists(atPath: daemon.socket))
        #expect(!E2EProbe.isAlive(pid))
        #expect(E2EProbe.eventually { E2EProbe.workerCgroups(daemonPid: daemon.process.processIdentifier).isEmpty })
    }

    /// Prometheus metrics after real Bridge traffic (served on a Unix socket: no port to race for).
    @Test func metricsAfterBridgeCalls() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("metrics")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": E2EPrograms.visitCounter])
        let metricsSocket = world.dir.file("metrics.sock")
        let daemon = try world.daemon(["--metrics-listen", "unix:\(metricsSocket)"])
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])
        try host.call("programs.launch", ["id": .string(id)])
        #expect(try host.report(from: id)["n"] == 1)

        let scrape = try run(["/usr/bin/curl", "-s", "--max-time", "10", "--unix-socket", metricsSocket, "http://localhost/metrics"])
        #expect(scrape.status == 0)
        let text = scrape.stdout
        #expect(text.contains(#"miniappd_bridge_calls_total{method="storage.set",decision="allow"} 1"#), "\(text)")
        #expect(text.contains(#"miniappd_bridge_calls_total{method="storage.get",decision="allow"} 1"#))
        #expect(text.contains(#"miniappd_workers{state="running"} 1"#))
        #expect(text.contains("miniappd_launch_seconds"))
        #expect(text.contains(#"miniappd_bridge_call_seconds_bucket{method="storage.set",le="+Inf"} 1"#))
        #expect(text.contains(#"miniappd_bridge_call_seconds_count{method="ui.toast"} 1"#))
    }

    /// systemd socket activation: the daemon serves the socket it was passed at fd 3
    /// (`LISTEN_FDS=1`, `LISTEN_PID` = its own pid) and never binds `--control-socket`.
    @Test func socketActivation() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("activated")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": E2EPrograms.blockOnBridge])
        let daemon = try world.daemon(socketActivated: true)
        defer { daemon.stop() }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(daemon.process.processIdentifier)/exe")
        #expect(exe.hasSuffix("/miniappd"), "systemd-socket-activate execs the daemon in place")
        #expect(!FileManager.default.fileExists(atPath: daemon.dir.file("unused.sock")))
        let host = try E2EHost(daemon)
        try host.call("packages.install", ["path": .string(zip)])
        let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)
        #expect(try host.call("programs.stop", ["workerId": .string(wid), "graceMillis": 1000])["status"] == 143)
        #expect(try host.exited(wid)["reason"] == "stopped")
        #expect(daemon.stop() == 0)
    }

    /// A program that exits at once (its exit may be seen before the spawn returns): every
    /// `program.exited` arrives, nothing stays in the table, and each launch starts a new worker.
    @Test func programThatExitsAtOnce() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("brief")
        let zip = try world.package(E2EWorld.manifest(id: id, entry: "main.sh"), files: ["main.sh": "#!/bin/sh\nexit 0\n"])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        try host.call("packages.install", ["path": .string(zip)])
        var workers: [String] = []
        for _ in 0..<3 {
            let wid = try #require(try host.call("programs.launch", ["id": .string(id)])["workerId"]?.stringValue)
            #expect(!workers.contains(wid), "a new worker each time, never the dead one")
            workers.append(wid)
            let exited = try host.exited(wid)
            #expect(exited["reason"] == "exit")
            #expect(exited["status"] == 0)
            #expect(try host.call("programs.list")["workers"] == [])
        }
    }
}
