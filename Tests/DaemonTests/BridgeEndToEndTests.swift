import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppTestSupport
import Testing

/// The Bridge as a jailed program sees it, through a real `miniappd`.
@Suite struct BridgeEndToEndTests {
    /// Node: reports the limit the daemon announced, and what an oversized call gave.
    static let limitProbe = """
        (async () => {
          let big = null;
          try { await MiniAppBridge.call('storage.set', { key: 'big', value: 'x'.repeat(5000) }); } catch (e) { big = e.code; }
          const after = await MiniAppBridge.call('storage.get', { key: 'big' });
          const report = { env: process.env.MINIAPP_BRIDGE_MAX_BYTES, sdk: MiniAppBridge.maxBytes, big, after: after.value };
          await MiniAppBridge.call('ui.toast', { message: JSON.stringify(report) });
        })().catch((e) => { console.error(e.code, e.message); process.exit(1); });
        """

    /// The daemon announces its `maxMessageBytes` to every worker (MINIAPP_BRIDGE_MAX_BYTES);
    /// the SDK refuses an oversized call itself, so it is never sent and the connection lives.
    @Test func workersAreToldTheMessageLimit() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("limit")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": Self.limitProbe])
        let config = try world.dir.write("miniappd.json", #"{"maxMessageBytes": 4096}"#)
        let daemon = try world.daemon(["--config", config])
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("inspector.subscribe", ["programId": .string(id)])
        try host.call("packages.install", ["path": .string(zip)])
        try host.call("programs.launch", ["id": .string(id)])
        let report = try host.report(from: id)
        #expect(report == ["env": "4096", "sdk": 4096, "big": "MESSAGE_TOO_LARGE", "after": .null])
        try host.waitFor("two inspector events") { _ in host.notifications("inspector.event").count >= 2 }
        let methods = host.notifications("inspector.event").compactMap { $0["params"]?["method"]?.stringValue }
        #expect(methods == ["storage.get", "ui.toast"], "the oversized storage.set never reached the daemon")
    }
}
