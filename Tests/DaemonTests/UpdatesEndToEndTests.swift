import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Testing

/// Updates end to end: a real HTTP server on loopback (Fixtures/registry_server.py) serving a
/// tree written by `miniapp registry publish`, a real `miniappd` with `--registry`, real jailed
/// workers and the real package store.
@Suite(.serialized) struct UpdatesEndToEndTests {
    /// A registry, a daemon configured for quick update flows, and one host connection.
    final class Fleet {
        let world: E2EWorld
        let registry: RegistryServer
        let config: String
        var daemon: DaemonHarness
        var host: E2EHost
        let id: String
        let stateDir: String

        init(name: String = "upd", config extra: JSONObject = [:], environment: [String: String] = [:]) throws {
            world = try E2EWorld()
            registry = try RegistryServer()
            id = E2EPartner.programId(name)
            stateDir = world.dir.file("state")
            var cfg: JSONObject = [
                "updateCheckIntervalSeconds": 0, "updateCheckMinIntervalSeconds": 0, "rollbackCrashCount": 2,
                "rollbackWindowSeconds": 30, "restartBackoffMillis": 100, "registryTimeoutMillis": 3000,
                "metricsListen": .string("unix:" + world.dir.file("metrics.sock")),
            ]
            for (k, v) in extra { cfg[k] = v }
            config = try world.dir.write("miniappd.json", JSONValue.object(cfg).jsonString)
            daemon = try world.daemon(["--registry", registry.url, "--config", config], stateDir: stateDir, environment: environment)
            host = try Fleet.connect(daemon)
        }

        static func connect(_ daemon: DaemonHarness) throws -> E2EHost {
            let host = try E2EHost(daemon)
            host.answers["ui.toast"] = { _ in [:] }
            try host.call("bridge.provide", ["methods": ["ui.toast"]])
            return host
        }

        /// Restarts the daemon on the same state dir (after `crash()` or a stop).
        func restartDaemon(environment: [String: String] = [:]) throws {
            daemon = try world.daemon(["--registry", registry.url, "--config", config], stateDir: stateDir, environment: environment)
            host = try Fleet.connect(daemon)
        }

        /// A signed package of this program: `reporter` (reports its version, and update.ready)
        /// or `crasher` (exits 3 at once).
        func package(_ version: String, crashes: Bool = false, minHostVersion: String = "1.0.0") throws -> String {
            let manifest = E2EWorld.manifest(id: id, version: version, minHostVersion: minHostVersion, entry: "main.js", permissions: ["ui"])
            return try world.package(manifest, files: ["main.js": crashes ? "process.exit(3);\n" : Fleet.reporter])
        }

        static let reporter = """
            MiniAppBridge.keepAlive(true);
            const report = (o) => MiniAppBridge.call('ui.toast', { message: JSON.stringify(o) });
            MiniAppBridge.onUpdateReady(({ version }) => report({ kind: 'update.ready', version }));
            report({ kind: 'ready', version: process.env.MINIAPP_PROGRAM_VERSION });
            """

        /// `miniapp registry publish` into the server's tree.
        @discardableResult
        func publish(_ zip: String, rollout: Double? = nil) throws -> JSONObject {
            let args = [productsDirectory() + "/miniapp", "registry", "publish", "--dir", registry.root.path, "--policy-dir", world.policyDir]
                + (rollout.map { ["--rollout", "\($0)"] } ?? []) + [zip]
            let r = try run(args)
            guard r.status == 0 else { throw HarnessError("miniapp registry publish: \(r.stdout)\(r.stderr)") }
            let doc = try String(contentsOfFile: registry.root.file("mini-programs/\(id)/version"), encoding: .utf8)
            return try JSONValue.parse(Array(doc.utf8)).objectValue ?? [:]
        }

        /// Installs `zip`, launches it and waits for its `ready` report; returns (workerId, pid).
        func installAndLaunch(_ zip: String, reports: Int = 1) throws -> (String, Int32) {
            try host.call("packages.install", ["path": .string(zip)])
            let launched = try host.call("programs.launch", ["id": .string(id)])
            #expect(try host.report(from: id, number: reports)["kind"] == "ready")
            return (launched["workerId"]?.stringValue ?? "", Int32(launched["pid"]?.intValue ?? 0))
        }

        /// The value of an unlabelled metric in the daemon's Prometheus exposition.
        func metric(_ name: String) throws -> String? {
            let r = try run(["/usr/bin/curl", "-s", "--max-time", "10", "--unix-socket", world.dir.file("metrics.sock"), "http://localhost/metrics"])
            return r.stdout.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) }
        }

        func check() throws -> JSONValue? { try host.call("updates.check", ["id": .string(id)])["updates"]?.arrayValue?.first }

        func status() throws -> JSONValue {
            try host.call("updates.status", ["id": .string(id)])["programs"]?.arrayValue?.first ?? [:]
        }

        func notification(_ method: String, seconds: Double = 30, _ match: (JSONValue) -> Bool = { _ in true }) throws -> JSONValue {
            JSONValue.object(
                try host.waitFor(method, seconds: seconds) { $0["method"]?.stringValue == method && $0["params"]?["id"]?.stringValue == id && match($0["params"] ?? [:]) }
            )["params"] ?? [:]
        }
    }

    /// v1 runs → v2 published → the launch's check stages it while v1 keeps running, the program
    /// hears update.ready, the next launch runs v2; v3 crashes at start once `programs.restart`
    /// applies it → rolled back to v2, not offered again; v4 is.
    @Test func stageNotifyRestartThenCrashLoopRollback() throws {
        let f = try Fleet()
        let (w1, pid1) = try f.installAndLaunch(try f.package("1.0.0"))
        #expect(try f.publish(try f.package("2.0.0"))["rollout"]?.doubleValue == 1)

        // A launch of the running program answers at once with its worker, and starts a check.
        #expect(try f.host.call("programs.launch", ["id": .string(f.id)])["workerId"]?.stringValue == w1)
        #expect(try f.notification("package.staged")["version"] == "2.0.0")
        #expect(try f.host.report(from: f.id, number: 2) == ["kind": "update.ready", "version": "2.0.0"])
        #expect(E2EProbe.isAlive(pid1), "v1 keeps running while v2 is staged")
        #expect(try f.status()["staged"] == "2.0.0")
        #expect(try f.status()["active"] == "1.0.0")

        // The next launch runs v2.
        try f.host.call("programs.stop", ["workerId": .string(w1), "graceMillis": 2000])
        let next = try f.host.call("programs.launch", ["id": .string(f.id)])
        #expect(next["version"] == "2.0.0")
        #expect(next["workerId"]?.stringValue != w1)
        let activated = try f.notification("package.activated") { $0["version"] == "2.0.0" }
        #expect(activated["previous"] == "1.0.0")
        #expect(try f.host.report(from: f.id, number: 3) == ["kind": "ready", "version": "2.0.0"])

        #expect(try f.metric("miniappd_update_rollbacks_total") == "0")

        // v3 crashes at start: staged while v2 runs, activated by the restart, rolled back.
        try f.publish(try f.package("3.0.0", crashes: true))
        #expect(try f.check()?["outcome"] == "staged")
        #expect(try f.host.report(from: f.id, number: 4) == ["kind": "update.ready", "version": "3.0.0"])
        #expect(try f.host.call("programs.restart", ["id": .string(f.id)])["version"] == "3.0.0")
        #expect(try f.notification("package.activated") { $0["version"] == "3.0.0" }["previous"] == "2.0.0")
        let rolledBack = try f.notification("package.rolledBack", seconds: 60)
        #expect(rolledBack["from"] == "3.0.0")
        #expect(rolledBack["to"] == "2.0.0")
        #expect(rolledBack["reason"]?.stringValue?.hasPrefix("crash-loop") == true)
        // The supervisor's crash restart now starts v2.
        #expect(try f.host.report(from: f.id, number: 5, seconds: 60) == ["kind": "ready", "version": "2.0.0"])

        #expect(try f.metric("miniappd_update_rollbacks_total") == "1")
        // The update audit trail has every event, in order.
        let audit = try String(contentsOfFile: f.stateDir + "/audit/updates.jsonl", encoding: .utf8)
        let events = try audit.split(separator: "\n").map { try JSONValue.parse(Array($0.utf8)) }.filter { $0["id"]?.stringValue == f.id }
        #expect(events.map { $0["event"]?.stringValue ?? "" } == [
            "package.staged", "package.activated", "package.staged", "package.activated", "package.rolledBack",
        ])
        #expect(events.last?["from"] == "3.0.0")
        #expect(events.allSatisfy { ($0["time"]?.intValue ?? 0) > 0 })
        let status = try f.status()
        #expect(status["active"] == "2.0.0")
        #expect(status["rejected"]?["version"] == "3.0.0")
        #expect(try f.check()?["outcome"] == "rejected", "not offered again")
        #expect(try f.status()["staged"] == .null)

        // A newer version is offered again.
        try f.publish(try f.package("4.0.0"))
        #expect(try f.check()?["outcome"] == "staged")
        #expect(try f.notification("package.staged") { $0["version"] == "4.0.0" }["version"] == "4.0.0")
    }

    /// Each broken download is refused before anything is staged; the installed version keeps
    /// running, and hosts hear `package.updateFailed`.
    @Test(arguments: ["tampered", "truncated", "oversized", "announcedTooLarge", "wrongHash"])
    func brokenDownloadsAreRefused(_ kind: String) throws {
        let f = try Fleet(name: "bad")
        let (_, pid) = try f.installAndLaunch(try f.package("1.0.0"))
        var doc = try f.publish(try f.package("2.0.0"))
        let zipPath = f.registry.root.file(doc["url"]?.stringValue ?? "")
        var zip = try Array(Data(contentsOf: URL(fileURLWithPath: zipPath)))
        switch kind {
        case "tampered":
            // Signed over one main.js, ships another: the hash the registry announces matches
            // what it serves, so only full verification can catch it.
            let m = E2EWorld.manifest(id: f.id, version: "2.0.0", entry: "main.js", permissions: ["ui"])
            let evil = try f.world.tamperedPackage(m, signed: ["main.js": Fleet.reporter], shipped: ["main.js": "require('child_process');\n"])
            zip = try Array(Data(contentsOf: URL(fileURLWithPath: evil)))
            doc["sha256"] = .string(SHA256Hasher.hex(SHA256Hasher.digest(zip)))
            doc["size"] = .int(Int64(zip.count))
        case "truncated": zip = Array(zip.dropLast(100))
        case "oversized": zip += [UInt8](repeating: 0x41, count: 4096)
        case "announcedTooLarge": doc["size"] = .int(60 << 20)
        default: doc["sha256"] = .string(String(repeating: "0", count: 64))
        }
        try f.registry.publish(doc["url"]?.stringValue ?? "", zip)
        try f.registry.publish("mini-programs/\(f.id)/version", JSONValue.object(doc).serialized())

        let entry = try f.check()
        #expect(entry?["staged"] == false)
        #expect(entry?["outcome"] == "failed")
        let expected: [String: (String, String?)] = [
            "tampered": ("INVALID_PACKAGE", "BAD_SIGNATURE"), "truncated": ("INVALID_PACKAGE", "DOWNLOAD_MISMATCH"),
            "oversized": ("QUOTA_EXCEEDED", nil), "announcedTooLarge": ("INVALID_PACKAGE", "ARCHIVE_TOO_LARGE"),
            "wrongHash": ("INVALID_PACKAGE", "DOWNLOAD_MISMATCH"),
        ]
        #expect(entry?["code"]?.stringValue == expected[kind]?.0)
        #expect(entry?["reason"]?.stringValue == expected[kind]?.1)
        let failed = try f.notification("package.updateFailed")
        #expect(failed["version"] == "2.0.0")
        #expect(failed["code"]?.stringValue == expected[kind]?.0)
        #expect(E2EProbe.isAlive(pid))
        let status = try f.status()
        #expect(status["active"] == "1.0.0")
        #expect(status["staged"] == .null)
        #expect(status["lastCheck"]?["outcome"] == "failed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.stateDir + "/downloads").isEmpty)
    }

    /// A registry that accepts and never answers, then one that is down: launches of the
    /// installed version are not delayed (each launch starts a check in the background).
    @Test func hangingOrDownRegistryNeverDelaysALaunch() throws {
        let f = try Fleet(name: "hang", config: ["registryTimeoutMillis": 20_000])
        try f.host.call("packages.install", ["path": .string(try f.package("1.0.0"))])
        try f.registry.delay("mini-programs/\(f.id)/version", 120)
        var reports = 0
        for round in ["hanging", "down"] {
            if round == "down" { f.registry.stop() }
            let started = Date()
            let launched = try f.host.call("programs.launch", ["id": .string(f.id)])
            let answered = Date().timeIntervalSince(started)
            reports += 1
            #expect(try f.host.report(from: f.id, number: reports)["kind"] == "ready")
            // Far below the 20 s registry bound: the launch did not wait for the check.
            #expect(answered < 10, "\(round): launch answered after \(answered) s")
            try f.host.call("programs.stop", ["workerId": launched["workerId"] ?? .null, "graceMillis": 1000])
        }
    }

    /// A launch asks the registry about its program at most once per
    /// `updateCheckMinIntervalSeconds`; `updates.check` always asks.
    @Test func launchChecksAreThrottledPerProgram() throws {
        let f = try Fleet(name: "thr", config: ["updateCheckMinIntervalSeconds": 3600])
        _ = try f.installAndLaunch(try f.package("1.0.0"))
        let path = "/mini-programs/\(f.id)/version"
        let asked = { f.registry.requests().filter { $0 == path }.count }
        #expect(E2EProbe.eventually(seconds: 20) { asked() == 1 })
        for _ in 0..<3 { try f.host.call("programs.launch", ["id": .string(f.id)]) }
        usleep(500_000)
        #expect(asked() == 1)
        #expect(try f.check() == nil, "nothing newer published")
        #expect(asked() == 2)
        #expect(try f.status()["lastCheck"]?["outcome"] == "upToDate")
    }

    /// A version this host cannot run is not downloaded (its zip answers 500: a download would
    /// fail differently), and launches keep the installed version.
    @Test func tooNewForTheHostIsNotDownloaded() throws {
        let f = try Fleet(name: "host")
        try f.host.call("packages.install", ["path": .string(try f.package("1.0.0"))])
        let doc = try f.publish(try f.package("2.0.0", minHostVersion: "99.0.0"))
        try f.registry.status(doc["url"]?.stringValue ?? "", 500)
        let entry = try f.check()
        #expect(entry?["code"] == "HOST_UPDATE_REQUIRED")
        #expect(entry?["required"] == "99.0.0")
        let launched = try f.host.call("programs.launch", ["id": .string(f.id)])
        #expect(launched["version"] == "1.0.0")
        #expect(try f.host.report(from: f.id)["version"] == "1.0.0")
        #expect(try f.status()["staged"] == .null)
    }

    /// Rollout 0: no device takes it (reported, not downloaded); raised to 1: taken.
    @Test func rolloutZeroThenOne() throws {
        let f = try Fleet(name: "roll")
        try f.host.call("packages.install", ["path": .string(try f.package("1.0.0"))])
        let v2 = try f.package("2.0.0")
        #expect(try f.publish(v2, rollout: 0)["rollout"]?.doubleValue == 0)
        let skipped = try f.check()
        #expect(skipped?["outcome"] == "notInRollout")
        #expect(skipped?["staged"] == false)
        #expect(try f.status()["active"] == "1.0.0")
        #expect(try f.publish(v2, rollout: 1)["rollout"]?.doubleValue == 1)
        #expect(try f.check()?["outcome"] == "activated", "not running: active at once")
        #expect(try f.notification("package.activated")["version"] == "2.0.0")
        #expect(try f.status()["active"] == "2.0.0")
        // The operator's view: `miniapp updates [--check] ID`.
        let cli = try run([productsDirectory() + "/miniapp", "--socket", f.daemon.socket, "updates", "--check", f.id])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(cli.stdout.hasPrefix("\(f.id)\tactive=2.0.0\tprevious=1.0.0\tstaged=-\tlast-check=upToDate"), "\(cli.stdout)")
    }

    /// kill -9 while the package downloads (the registry holds the zip back): the store is as
    /// before, the partial download is gone, and the next check installs the version.
    @Test func killDuringDownloadLeavesAConsistentStore() throws {
        let f = try Fleet(name: "kdl", config: ["registryTimeoutMillis": 10_000])
        try f.host.call("packages.install", ["path": .string(try f.package("1.0.0"))])
        let doc = try f.publish(try f.package("2.0.0"))
        try f.registry.delay(doc["url"]?.stringValue ?? "", 60)
        // The launch starts the check; its download then waits on the registry.
        try f.host.call("programs.launch", ["id": .string(f.id)])
        let zipPath = "/" + (doc["url"]?.stringValue ?? "")
        #expect(E2EProbe.eventually(seconds: 20) { f.registry.requests().contains(zipPath) }, "the download began")
        usleep(300_000)
        f.daemon.crash()
        try f.registry.delay(doc["url"]?.stringValue ?? "", nil)
        try f.restartDaemon()
        try expectConsistent(f, active: "1.0.0")
        #expect(try f.check()?["outcome"] == "activated")
        try expectConsistent(f, active: "2.0.0", launch: true)
    }

    /// kill -9 at each step of staging (verified; tree renamed into place; state committed):
    /// after a restart the store holds exactly the old or the new version, complete.
    @Test(arguments: ["verified", "renamed", "activated"])
    func killDuringStagingLeavesAConsistentStore(_ point: String) throws {
        let f = try Fleet(name: "kst")
        try f.host.call("packages.install", ["path": .string(try f.package("1.0.0"))])
        try f.publish(try f.package("2.0.0"))
        f.daemon.stop()
        try f.restartDaemon(environment: ["MINIAPP_PAUSE_AT": point])
        // From another thread: the check stops the daemon (SIGSTOP) at the kill point.
        let pid = f.daemon.process.processIdentifier
        let (socket, id) = (f.daemon.socket, f.id)
        Thread.detachNewThread { _ = try? ControlClient(socketPath: socket).call("updates.check", ["id": .string(id)]) }
        #expect(E2EProbe.eventually(seconds: 30) { Self.isStopped(pid) }, "paused at \(point)")
        f.daemon.crash()
        try f.restartDaemon()
        try expectConsistent(f, active: point == "activated" ? "2.0.0" : "1.0.0")
        if point != "activated" { #expect(try f.check()?["outcome"] == "activated") }
        try expectConsistent(f, active: "2.0.0", launch: true)
    }

    static func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first == "T"
    }

    /// The store has `active` and nothing else half-done: no staged version, version
    /// directories only for referenced versions, no staging leftovers, no downloads; with
    /// `launch`, the active version launches (and that launch starts a check of its own).
    func expectConsistent(_ f: Fleet, active: String, launch: Bool = false) throws {
        let status = try f.status()
        #expect(status["active"]?.stringValue == active)
        #expect(status["staged"] == .null)
        let referenced = Set([status["active"], status["previous"]].compactMap { $0?.stringValue })
        let versions = Set(try FileManager.default.contentsOfDirectory(atPath: "\(f.stateDir)/packages/\(f.id)/versions"))
        #expect(versions == referenced)
        let staging = (try? FileManager.default.contentsOfDirectory(atPath: "\(f.stateDir)/packages/.staging")) ?? []
        #expect(staging.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.stateDir + "/downloads").isEmpty)
        guard launch else { return }
        let launched = try f.host.call("programs.launch", ["id": .string(f.id)])
        #expect(launched["version"]?.stringValue == active)
        let exited = try f.host.call("programs.stop", ["workerId": launched["workerId"] ?? .null, "graceMillis": 1000])
        #expect(exited["status"] != nil)
    }
}
