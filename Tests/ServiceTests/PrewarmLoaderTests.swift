import Foundation
import MiniAppJSON
import Testing

/// The SDKs' prewarm loaders (the main script of a prewarmed worker) against a fake Bridge: the
/// entry point runs only after `lifecycle.launch`, as the main module, with the event's args;
/// what follows the event on the Bridge is the program's; an entry that does not compile fails
/// at the launch as a direct start would. Held workers and their release through a real daemon
/// are PrewarmEndToEndTests.
@Suite struct PrewarmLoaderTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let runtime: String
        let entry: String
        let source: String
        /// Exit status (waitpid's) and stdout expected.
        let status: Int32
        let out: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "node: entry as main with the args, the next event is the program's", runtime: "node", entry: "main.js",
            source: """
                MiniAppBridge.on('ping', () => {
                  console.log(JSON.stringify([process.argv.slice(1), require.main === module, 'MINIAPP_PREWARM' in process.env]));
                });
                MiniAppBridge.keepAlive(true);
                MiniAppBridge.call('echo', {}).then(() => MiniAppBridge.keepAlive(false));
                """,
            status: 0, out: #"[["/ENTRY","a1","a 2"],true,false]"# + "\n"),
        Case(
            name: "python: entry as __main__ with the args and its directory as sys.path[0]", runtime: "python", entry: "main.py",
            source: """
                import json, os, sys
                print(json.dumps([sys.argv, __name__, sys.path[0] == os.path.dirname(__file__), "MINIAPP_PREWARM" in os.environ]))
                """,
            status: 0, out: #"[["/ENTRY", "a1", "a 2"], "__main__", true, false]"# + "\n"),
        Case(
            name: "python: an entry that does not compile fails at the launch", runtime: "python", entry: "main.py",
            source: "def (\n", status: 1 << 8, out: ""),
    ]

    @Test(arguments: cases) func loaderRunsTheEntryOnlyAtTheLaunch(_ c: Case) throws {
        let dir = try makeTempDir("prewarm-loader")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let entry = dir + "/" + c.entry
        try c.source.write(toFile: entry, atomically: true, encoding: .utf8)
        let server = try FakeBridgeServer()
        // Queued before the start: the loader must not run the entry before reading it.
        server.sendEvent("lifecycle.launch", ["args": ["a1", "a 2", 7]])
        server.sendEvent("ping", [:])
        let sdk = SDKTests.sdk
        let argv =
            c.runtime == "node"
            ? ["/usr/bin/node", "--require", sdk + "/js/preload.js", sdk + "/js/loader.js", entry]
            : ["/usr/bin/python3", "-s", "-B", sdk + "/python/miniapp_loader.py", entry]
        let r = try server.run(argv, env: ["MINIAPP_PREWARM": "1", "PYTHONPATH": sdk + "/python"])
        #expect(r.status == c.status)
        #expect(r.out == c.out.replacingOccurrences(of: "/ENTRY", with: entry))
    }
}
