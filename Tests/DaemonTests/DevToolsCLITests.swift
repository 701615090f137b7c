import Foundation
import MiniAppJSON
import MiniAppTestSupport
import Testing

/// The partner tools through the command line: `miniapp new`, then the skeleton's own unit test
/// and the program itself under `miniapp mock-bridge` — no daemon, no root needed.
@Suite struct DevToolsCLITests {
    static let cli = productsDirectory() + "/miniapp"

    @Test(arguments: [("node", "node test.js"), ("python", "python3 test_main.py"), ("native", "sh test.sh")])
    func newSkeletonPassesItsTestUnderTheMockBridge(runtime: String, test: String) throws {
        let dir = try TempDir("new")
        let made = try run([Self.cli, "new", "com.example.hello", "--runtime", runtime, dir.file("hello")])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stdout.contains("miniapp mock-bridge --rules mock-rules.json -- \(test)"))
        let app = dir.file("hello")
        let t = try run([Self.cli, "mock-bridge", "--rules", "mock-rules.json", "--"] + test.split(separator: " ").map(String.init), cwd: app)
        #expect(t.status == 0, "the skeleton's test failed:\n\(t.stdout)\n\(t.stderr)")
        #expect((t.stdout + t.stderr).contains("ok") || (t.stdout + t.stderr).contains("OK"))

        // The program itself, as its manifest says, with every call logged.
        let p = try run([Self.cli, "mock-bridge", "--rules", "mock-rules.json", "--log", "."], cwd: app)
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stdout.contains("hello from com.example.hello"))
        #expect(p.stdout.contains("visit 1: paid, transaction tx-mock-1"))
        #expect(p.stderr.contains("mock: payment.pay"), "--log prints each call: \(p.stderr)")
        #expect(p.stderr.contains(#"-> {"transactionId":"tx-mock-1"}"#))
    }

    /// An unmatched host method fails the program with METHOD_NOT_FOUND naming it, and the
    /// program's exit status is the command's.
    @Test func unmatchedMethodAndExitStatus() throws {
        let dir = try TempDir("mockcli")
        try #"{"rules": []}"#.write(toFile: dir.file("rules.json"), atomically: true, encoding: .utf8)
        let script = """
            MiniAppBridge.call('payment.pay', {}).catch((e) => { console.log(e.code + ' ' + e.message); process.exit(7); });
            """
        try script.write(toFile: dir.file("p.js"), atomically: true, encoding: .utf8)
        let r = try run([Self.cli, "mock-bridge", "--rules", dir.file("rules.json"), "--", "node", dir.file("p.js")])
        #expect(r.status == 7)
        #expect(r.stdout.contains("METHOD_NOT_FOUND") && r.stdout.contains("payment.pay"), "\(r.stdout)")
    }

    @Test func badRulesAndArgumentsAreRefused() throws {
        let dir = try TempDir("mockcli")
        try #"{"rules": [{"method": "a", "parms": {}, "result": 1}]}"#.write(toFile: dir.file("bad.json"), atomically: true, encoding: .utf8)
        let bad = try run([Self.cli, "mock-bridge", "--rules", dir.file("bad.json"), "--", "true"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("rules[0]: unknown member \"parms\""), "\(bad.stderr)")
        let both = try run([Self.cli, "mock-bridge", "--rules", dir.file("bad.json"), dir.path, "--", "true"])
        #expect(both.status != 0)
        let badId = try run([Self.cli, "new", "Not.An.Id", dir.file("x")])
        #expect(badId.status != 0 && badId.stderr.contains("not a program id"))
    }

    /// `miniapp dev`: the skeleton runs in a simulator daemon (payment.pay answered from its
    /// mock rules), a saved edit is reloaded and the new code's output seen, Ctrl-C stops it
    /// all (the daemon and its temporary directory gone).
    @Test func devReloadsOnAnEdit() throws {
        let dir = try TempDir("dev")
        let app = dir.file("hello")
        #expect(try run([Self.cli, "new", "com.example.hello", app]).status == 0)
        let dev = Process()
        dev.executableURL = URL(fileURLWithPath: Self.cli)
        dev.arguments = ["dev", app, "--workdir", dir.file("w")]
        let out = Pipe()
        dev.standardOutput = out
        dev.standardError = out
        let lines = LineCollector(out.fileHandleForReading)
        try dev.run()
        defer { if dev.isRunning { kill(dev.processIdentifier, SIGKILL) } }
        #expect(lines.wait(for: "] visit 1: paid, transaction tx-mock-1"), "first run:\n\(lines.text)")
        #expect(lines.text.contains(#"payment.pay {"orderId":"order-1","amount":9.99,"currency":"USD"} -> {"transactionId":"tx-mock-1"}"#))
        let main = app + "/main.js"
        let code = try String(contentsOfFile: main, encoding: .utf8)
        try code.replacingOccurrences(of: "hello from", with: "hello again from").write(toFile: main, atomically: false, encoding: .utf8)
        #expect(lines.wait(for: "] hello again from com.example.hello"), "reload:\n\(lines.text)")
        #expect(lines.text.contains("[dev] change: com.example.hello 0.1.0 installed and launched"))
        kill(dev.processIdentifier, SIGINT)
        for _ in 0..<400 where dev.isRunning { usleep(50_000) }
        #expect(!dev.isRunning, "Ctrl-C stops miniapp dev")
        dev.waitUntilExit()
        #expect(dev.terminationStatus == 0)
        #expect(lines.wait(for: "[dev] stopped"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("w/control.sock")), "the daemon removed its socket: it stopped")
    }
}

extension DevToolsCLITests {
    /// `inspect --record` on a simulated program, then `replay` of the recording: the program
    /// prints what it printed in the daemon, its host reply (payment.pay) included, with no
    /// daemon and no host.
    @Test func recordThenReplayReproducesTheOutput() throws {
        let dir = try TempDir("rec")
        let app = dir.file("hello")
        #expect(try run([Self.cli, "new", "com.example.hello", app]).status == 0)
        let daemon = try DaemonHarness(policyDir: nil, extraArgs: ["--simulator"])
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["payment.pay"] = { _ in ["transactionId": "tx-recorded-7"] }
        try host.call("bridge.provide", ["methods": ["payment.pay"]])
        let recording = dir.file("calls.jsonl")
        let inspect = Process()
        inspect.executableURL = URL(fileURLWithPath: Self.cli)
        inspect.arguments = ["--socket", daemon.socket, "inspect", "com.example.hello", "--record", recording, "--count", "4", "--json"]
        inspect.standardOutput = FileHandle.nullDevice
        try inspect.run()
        defer { if inspect.isRunning { kill(inspect.processIdentifier, SIGKILL) } }
        // inspect makes the recording only once its subscription was answered: from then on,
        // every call is delivered to it.
        #expect(E2EProbe.eventually { FileManager.default.fileExists(atPath: recording) }, "inspect never subscribed")
        try host.call("packages.install", ["dir": .string(app)])
        try host.call("programs.launch", ["id": "com.example.hello"])
        for _ in 0..<600 where inspect.isRunning {
            _ = try? host.rawCall("daemon.info", [:], seconds: 1)  // answers payment.pay meanwhile
            usleep(50_000)
        }
        #expect(!inspect.isRunning, "inspect --count 4 ends")
        let live = ["hello from com.example.hello 0.1.0", "visit 1: paid, transaction tx-recorded-7"]
        #expect(E2EProbe.eventually { live.allSatisfy { daemon.logText().contains($0) } }, "\(daemon.logText())")
        let lines = try String(contentsOfFile: recording, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4, "\(lines)")
        #expect(lines.allSatisfy { $0.contains(#""simulated":true"#) })

        let replay = try run([Self.cli, "replay", recording, "--", "node", "main.js"], cwd: app)
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stdout.split(separator: "\n").map(String.init) == live, "\(replay.stdout)")
    }
}

/// Lines of a child's output, collected on a thread; `wait(for:)` polls until one contains a text.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                lock.lock(); data.append(chunk); lock.unlock()
            }
        }
    }

    var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }

    func wait(for needle: String, seconds: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if text.contains(needle) { return true }
            usleep(50_000)
        }
        return false
    }
}
