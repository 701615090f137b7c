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
}
