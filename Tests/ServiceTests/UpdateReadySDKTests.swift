import Foundation
import MiniAppBridgeSDK
import MiniAppJSON
import Testing

/// `onUpdateReady` in each SDK (WeChat's shape): the callback gets the version of an
/// `update.ready` event, and nothing for other events. The daemon's side (the event is sent to
/// the running worker when an update is staged) is tested end to end in UpdatesEndToEndTests.
@Suite struct UpdateReadySDKTests {
    static let node = """
        (async () => {
          const got = [];
          const off = MiniAppBridge.onUpdateReady((info) => got.push(info.version));
          await MiniAppBridge.call('emit', { name: 'other', data: { version: 'x' } });
          await MiniAppBridge.call('emit', { name: 'update.ready', data: { version: '2.0.0' } });
          off();
          await MiniAppBridge.call('emit', { name: 'update.ready', data: { version: '3.0.0' } });
          console.log(JSON.stringify(got));
        })();
        """

    static let python = """
        import asyncio, json
        import miniapp_bridge as bridge
        got = []
        bridge.on_update_ready(lambda d: got.append(d["version"]))
        bridge.call("emit", {"name": "other", "data": {"version": "x"}})
        bridge.call("emit", {"name": "update.ready", "data": {"version": "2.0.0"}})
        async def main():
            b = bridge.AsyncBridge(fd=bridge.default_bridge().fileno())
            b.on_update_ready(lambda d: got.append("aio " + d["version"]))
            await b.call("emit", {"name": "update.ready", "data": {"version": "3.0.0"}})
        asyncio.run(main())
        print(json.dumps(got))
        """

    func output(_ argv: [String], _ source: String, file: String, env: [String: String] = [:]) throws -> JSONValue {
        let dir = try makeTempDir("sdk-upd")
        defer { removeTree(dir) }
        try source.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8)
        let r = try FakeBridgeServer().run(argv + [dir + "/" + file], env: env)
        #expect(r.status == 0)
        return try JSONValue.parse(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func node() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/node"), "node is needed for the JS SDK test")
        let out = try output(["/usr/bin/node", "--require", SDKTests.sdk + "/js/preload.js"], Self.node, file: "main.js")
        #expect(out == ["2.0.0"])
    }

    @Test func python() throws {
        let out = try output([debianPython], Self.python, file: "main.py", env: ["PYTHONPATH": SDKTests.sdk + "/python"])
        #expect(out == ["2.0.0", "aio 3.0.0"])
    }

    @Test func swift() async throws {
        let server = try FakeBridgeServer()
        let bridge = MiniAppBridge(fd: server.clientFD)
        let versions = LockedLines()
        bridge.onUpdateReady { versions.append($0) }
        _ = try await bridge.call("emit", ["name": "other", "data": ["version": "x"]])
        _ = try await bridge.call("emit", ["name": "update.ready", "data": ["version": "2.0.0"]])
        // The reader thread delivers events before the reply that follows them.
        #expect(versions.all == ["2.0.0"])
        shutdown(server.clientFD, Int32(SHUT_RDWR))
    }
}
