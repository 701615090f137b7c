import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// Simulator mode (`miniappd --simulator`, debug builds): an unsigned program from a directory
/// runs in the full jail with the full permission check, marked `simulated` everywhere, and
/// nothing but a simulator daemon ever runs it.
@Suite struct SimulatorTests {
    /// Declares only `ui` (its reports); tries the undeclared `payment.pay` and three escapes.
    static let prober = """
        const fs = require('fs');
        (async () => {
          const r = {};
          try { fs.readFileSync('/etc/shadow'); r.shadow = 'read'; } catch (e) { r.shadow = e.code; }
          try { fs.readFileSync('/proc/1/environ'); r.environ = 'read'; } catch (e) { r.environ = e.code; }
          try { r.root = fs.readdirSync('/').sort(); } catch (e) { r.root = [e.code]; }
          try { fs.writeFileSync('/app/main.js', 'x'); r.appWrite = 'written'; } catch (e) { r.appWrite = e.code; }
          try { await MiniAppBridge.call('payment.pay', { orderId: 'o', amount: 1, currency: 'USD' }); r.pay = 'ok'; } catch (e) { r.pay = e.code; }
          r.info = await MiniAppBridge.call('system.info');
          await MiniAppBridge.call('ui.toast', { message: JSON.stringify(r) });
        })();
        """

    static func programDir(_ dir: TempDir, id: String = "com.example.sim") throws -> String {
        let app = dir.file("app")
        try FileManager.default.createDirectory(atPath: app, withIntermediateDirectories: true)
        let manifest: JSONValue = [
            "id": .string(id), "version": "1.0.0", "minHostVersion": "1.0.0", "entryPoint": "main.js", "permissions": ["ui"],
        ]
        try manifest.jsonString.write(toFile: app + "/manifest.json", atomically: true, encoding: .utf8)
        try prober.write(toFile: app + "/main.js", atomically: true, encoding: .utf8)
        return app
    }

    /// Installs and runs the prober in a simulator daemon; returns its report and the daemon.
    static func simulate(_ dir: TempDir, stateDir: String) throws -> (report: JSONObject, inspector: [JSONObject], daemon: DaemonHarness) {
        let daemon = try DaemonHarness(policyDir: nil, extraArgs: ["--simulator"], stateDir: stateDir)
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("inspector.subscribe", [:])
        #expect(try host.call("daemon.info")["simulator"] == true)
        let installed = try host.call("packages.install", ["dir": .string(try programDir(dir))])
        #expect(installed["id"] == "com.example.sim" && installed["active"] == true)
        try host.call("programs.launch", ["id": "com.example.sim"])
        let report = try host.report(from: "com.example.sim")
        let events = host.notifications("inspector.event").compactMap { $0["params"]?.objectValue }
        return (report, events, daemon)
    }

    @Test func simulatedProgramIsJailedPermissionCheckedAndMarked() throws {
        let dir = try TempDir("sim")
        let state = dir.file("state")
        let (report, events, daemon) = try Self.simulate(dir, stateDir: state)
        defer { daemon.stop() }
        #expect(report["pay"] == "PERMISSION_DENIED", "an undeclared method is denied: \(report)")
        #expect(report["shadow"] == "ENOENT" || report["shadow"] == "EACCES", "\(report)")
        #expect(report["environ"] != "read")
        #expect(report["appWrite"] == "EROFS" || report["appWrite"] == "EACCES", "\(report)")
        let root = report["root"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(root.contains("app") && root.contains("sdk"), "\(root)")
        #expect(!root.contains("work") && !root.contains("root") && !root.contains("home"), "the host's / is not visible: \(root)")
        #expect(report["info"]?["programId"] == "com.example.sim")
        #expect(!events.isEmpty && events.allSatisfy { $0["simulated"] == true }, "\(events)")
        #expect(events.contains { $0["method"] == "payment.pay" && $0["decision"] == "deny" })
        #expect(events.contains { $0["method"] == "system.info" && $0["result"]?["programId"] == "com.example.sim" }, "payloads shown")
        daemon.stop()
        let audit = (try? String(contentsOfFile: state + "/audit/audit.jsonl", encoding: .utf8)) ?? ""
        let lines = audit.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains(#""simulated":true"#) }, "\(audit)")
    }

    /// The same state directory under a daemon without `--simulator`: the simulated program is
    /// never launched, activated or rolled back to, and `{dir}` installs are refused.
    @Test func nonSimulatorDaemonRefusesASimulatedPackage() throws {
        let dir = try TempDir("sim")
        let state = dir.file("state")
        let (_, _, sim) = try Self.simulate(dir, stateDir: state)
        sim.stop()
        let daemon = try DaemonHarness(policyDir: nil, stateDir: state)
        defer { daemon.stop() }
        try Self.expectRefusal(daemon, app: dir.file("app"))
    }

    static func expectRefusal(_ daemon: DaemonHarness, app: String) throws {
        let host = try E2EHost(daemon)
        #expect(try host.call("daemon.info")["simulator"] != true)
        let launch = try host.rawCall("programs.launch", ["id": "com.example.sim"])
        #expect(launch["error"]?["data"]?["code"] == "INVALID_PACKAGE", "\(launch)")
        #expect(launch["error"]?["data"]?["reason"] == "SIMULATED_PACKAGE", "\(launch)")
        let install = try host.rawCall("packages.install", ["dir": .string(app)])
        #expect(install["error"]?["data"]?["code"] == "INVALID_PARAMS", "\(install)")
        #expect(try host.call("programs.list")["workers"]?.arrayValue?.isEmpty == true)
    }

    /// `scripts/test` builds the release `miniappd` first (and sets MINIAPP_REQUIRE_RELEASE).
    static let release: String? = {
        let env = ProcessInfo.processInfo.environment
        let path = env["MINIAPP_RELEASE_BIN"].map { $0 + "/miniappd" } ?? repositoryRoot() + "/.build/release/miniappd"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    @Test func releaseBinaryIsThereUnderScriptsTest() {
        guard ProcessInfo.processInfo.environment["MINIAPP_REQUIRE_RELEASE"] != nil else { return }
        #expect(Self.release != nil, "scripts/test builds the release miniappd before the suite; it is missing")
    }

    @Test(.enabled(if: release != nil, "no release miniappd (.build/release/miniappd): run scripts/test, or swift build -c release --product miniappd"))
    func releaseBuildRefusesSimulatorAndSimulatedPackages() throws {
        let binary = try #require(Self.release)
        let dir = try TempDir("simrel")
        let refused = try run([binary, "--simulator", "--state-dir", dir.file("s0"), "--control-socket", dir.file("c0.sock")], timeout: 30)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--simulator is refused: this is a release build"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("c0.sock")), "the daemon never started")

        let state = dir.file("state")
        let (_, _, sim) = try Self.simulate(dir, stateDir: state)
        sim.stop()
        let daemon = try DaemonHarness(policyDir: nil, stateDir: state, binary: binary)
        defer { daemon.stop() }
        try Self.expectRefusal(daemon, app: dir.file("app"))
    }

    /// `{url}`: an unsigned zip from a dev server on loopback (started and stopped here); any
    /// other URL is refused before anything is fetched.
    @Test func installFromALoopbackURL() throws {
        let dir = try TempDir("simurl")
        let app = try Self.programDir(dir)
        let site = dir.file("site")
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        let zipped = try run(["/usr/bin/python3", "-c", """
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[2], "w") as z:
                for n in ("manifest.json", "main.js"): z.write(sys.argv[1] + "/" + n, n)
            """, app, site + "/app.zip"])
        #expect(zipped.status == 0, "\(zipped.stderr)")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        server.arguments = ["-m", "http.server", "--bind", "127.0.0.1", "--directory", site, "0"]
        let out = Pipe()
        server.standardOutput = out
        server.standardError = out
        server.environment = ["PYTHONUNBUFFERED": "1"]
        try server.run()
        // SIGKILL, not terminate(): a child of this test process may inherit a signal mask with
        // SIGTERM blocked (the daemon's signal handling blocks it process-wide), and would never exit.
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        let lines = LineCollector(out.fileHandleForReading)
        #expect(lines.wait(for: "Serving HTTP on 127.0.0.1 port ", seconds: 20))
        let port = lines.text.components(separatedBy: "port ").dropFirst().first?.split(separator: " ").first.map(String.init) ?? ""
        let daemon = try DaemonHarness(policyDir: nil, extraArgs: ["--simulator"])
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        let r = try host.call("packages.install", ["url": .string("http://127.0.0.1:\(port)/app.zip")])
        #expect(r["id"] == "com.example.sim" && r["active"] == true, "\(r)")
        for url in ["http://10.0.0.1:\(port)/app.zip", "https://127.0.0.1:\(port)/app.zip", "file:///etc/passwd"] {
            let refused = try host.rawCall("packages.install", ["url": .string(url)])
            #expect(refused["error"]?["data"]?["code"] == "INVALID_PARAMS", "\(url): \(refused)")
        }
    }
}
