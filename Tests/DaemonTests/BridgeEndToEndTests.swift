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

    // MARK: SDKs in the jail

    /// Node: lists /sdk/swift as the jail shows it.
    static let sdkLister = """
        const fs = require('fs'), path = require('path');
        const walk = (d) => fs.readdirSync(d, { withFileTypes: true })
          .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
        MiniAppBridge.call('ui.toast', { message: JSON.stringify({ files: walk('/sdk/swift').sort() }) })
          .catch((e) => { console.error(e.code, e.message); process.exit(1); });
        """

    /// The Swift SDK ships like the JS and Python ones: its source (and its one dependency,
    /// MiniAppJSON) under /sdk/swift in every jail, identical to the daemon's own sources, as a
    /// package that builds.
    @Test func swiftSDKSourceIsShippedAtSdkSwiftAndBuilds() throws {
        let swift = "/opt/swift/usr/bin/swift"
        try #require(FileManager.default.isExecutableFile(atPath: swift), "the Swift toolchain is needed to build the shipped SDK")
        let world = try E2EWorld()
        let id = E2EPartner.programId("sdk")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": Self.sdkLister])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])
        try host.call("programs.launch", ["id": .string(id)])
        let expected: [String: String] = [
            "Package.swift": "Sources/SDK/swift/Package.swift",
            "Sources/MiniAppBridgeSDK/MiniAppBridgeSDK.swift": "Sources/MiniAppBridgeSDK/MiniAppBridgeSDK.swift",
            "Sources/MiniAppJSON/JSONParser.swift": "Sources/MiniAppJSON/JSONParser.swift",
            "Sources/MiniAppJSON/JSONValue.swift": "Sources/MiniAppJSON/JSONValue.swift",
            "Sources/MiniAppJSON/JSONWriter.swift": "Sources/MiniAppJSON/JSONWriter.swift",
        ]
        let listed = try host.report(from: id)["files"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(listed == expected.keys.sorted().map { "/sdk/swift/" + $0 })
        let shipped = daemon.dir.file("state/sdk/swift")
        // Identical but for the final newline, which scripts/embed-policies does not keep.
        func text(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8)).map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 }
        }
        for (rel, source) in expected {
            let a = text(shipped + "/" + rel)
            #expect(a != nil && a == text(repositoryRoot() + "/" + source), "\(rel) differs from \(source)")
        }
        // /sdk is read-only in the jail; build a copy.
        let copy = world.dir.file("sdk-swift")
        #expect(try run(["/bin/cp", "-r", shipped, copy]).status == 0)
        let built = try run([swift, "build", "--package-path", copy], timeout: 600)
        #expect(built.status == 0, "the shipped Swift SDK does not build:\n\(built.stdout)\n\(built.stderr)")
    }

    // MARK: tokens

    /// Python 3 in the jail: asks for a token and hands it to "its backend" (the host, here).
    static let tokenFetcher = """
        import json
        import miniapp_bridge as bridge
        t = bridge.call("auth.getToken", {"scope": "basic"})
        bridge.call("ui.toast", {"message": json.dumps({"token": t["token"], "expiresAt": t["expiresAt"]})})
        """

    /// PyJWT (an independent implementation) verifies, with the JWKS of the control method
    /// `auth.keys`, a token a jailed program obtained through the Bridge — the path a partner
    /// backend takes (spec: "check a token with any JWT library").
    static let verifier = """
        import json, sys, jwt
        token, jwks, aud = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
        header = jwt.get_unverified_header(token)
        keys = [k for k in jwks["keys"] if k.get("kid") == header["kid"]]
        assert len(keys) == 1, "kid not in auth.keys"
        claims = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["EdDSA"], audience=aud, issuer="miniappd",
                            options={"require": ["exp", "iat", "sub", "aud", "iss", "jti"]})
        print(json.dumps({"header": header, "claims": claims}))
        """

    @Test func tokenFromTheBridgeVerifiesWithPyJWTAndAuthKeys() throws {
        try #require(
            (try? run(["/usr/bin/python3", "-c", "import jwt, cryptography"]).status) == 0,
            "install python3-jwt and python3-cryptography (scripts/install-deps)")
        let world = try E2EWorld()
        let id = E2EPartner.programId("token")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.py", permissions: ["ui"]), files: ["main.py": Self.tokenFetcher])
        let daemon = try world.daemon()
        defer { daemon.stop() }
        let host = try E2EHost(daemon)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("session.set", ["userId": "user-7"])
        try host.call("packages.install", ["path": .string(zip)])
        try host.call("programs.launch", ["id": .string(id)])
        let report = try host.report(from: id)
        let token = try #require(report["token"]?.stringValue)
        let jwks = try host.call("auth.keys")
        let verified = try run(["/usr/bin/python3", "-c", Self.verifier, token, jwks.jsonString, id])
        #expect(verified.status == 0, "PyJWT refused the token: \(verified.stderr)")
        let decoded = try JSONValue.parse(Array(verified.stdout.utf8))
        #expect(decoded["header"]?["alg"] == "EdDSA")
        #expect(decoded["claims"]?["aud"]?.stringValue == id)
        #expect(decoded["claims"]?["sub"] == "user-7")
        let iat = decoded["claims"]?["iat"]?.intValue ?? 0
        #expect(decoded["claims"]?["exp"]?.intValue == iat + 900)
        #expect(report["expiresAt"]?.intValue == iat + 900)
        // A backend expecting another program refuses it.
        let other = try run(["/usr/bin/python3", "-c", Self.verifier, token, jwks.jsonString, "com.e2e.someone-else"])
        #expect(other.status != 0)
        #expect(other.stderr.contains("InvalidAudience"))
    }

    // MARK: durability

    /// Node. `write N W`: N storage.set of distinct keys, W in flight; after each acknowledged
    /// reply the key is reported to the host (ui.toast, in batches of 100), so the host knows
    /// what was acknowledged on the program's own socket. `check KEYS`: storage.get of every
    /// key (comma-separated) and one report of what is missing or wrong.
    static let durability = """
        MiniAppBridge.keepAlive(true);
        const [mode, arg1, arg2] = process.argv.slice(2);
        const report = (o) => MiniAppBridge.call('ui.toast', { message: JSON.stringify(o) }).catch(() => {});
        const valueOf = (i) => ({ i, text: 'value-' + i });
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        async function call(method, params) {
          for (;;) {  // a realistic client waits out RATE_LIMITED (the storage class refills at 1000/s)
            try { return await MiniAppBridge.call(method, params); } catch (e) { if (e.code !== 'RATE_LIMITED') throw e; }
            await sleep(20);
          }
        }
        async function lanes(count, body) { await Promise.all(Array.from({ length: count }, body)); }
        async function write(n, width) {
          let next = 0, acked = [];
          const flush = () => { if (acked.length) { report({ kind: 'acked', keys: acked }); acked = []; } };
          await lanes(width, async () => {
            while (next < n) {
              const i = next++;
              const key = 'k-' + String(i).padStart(5, '0');
              await call('storage.set', { key, value: valueOf(i) });
              acked.push(key);
              if (acked.length >= 100) flush();
            }
          });
          flush();
          report({ kind: 'done', n });
        }
        async function check(keys) {
          const missing = [], wrong = [];
          let next = 0;
          await lanes(32, async () => {
            while (next < keys.length) {
              const key = keys[next++];
              const got = (await call('storage.get', { key })).value;
              if (got === null) missing.push(key);
              else if (JSON.stringify(got) !== JSON.stringify(valueOf(Number(key.slice(2))))) wrong.push(key);
            }
          });
          const stored = (await call('storage.keys', {})).keys.length;
          await report({ kind: 'checked', n: keys.length, missing, wrong, stored });
          process.exit(0);
        }
        (mode === 'write' ? write(Number(arg1), Number(arg2)) : check(arg1 ? arg1.split(',') : []))
          .catch((e) => { report({ kind: 'error', code: e.code, message: e.message }); });
        """

    /// Keys the program reported as acknowledged, and whether it reported finishing.
    static func acknowledged(_ host: E2EHost) -> (keys: Set<String>, done: Bool, error: JSONValue?) {
        var keys = Set<String>()
        var done = false
        var error: JSONValue?
        for call in host.served where call["params"]?["method"] == "ui.toast" {
            guard let text = call["params"]?["params"]?["message"]?.stringValue,
                let report = try? JSONValue.parse(Array(text.utf8))
            else { continue }
            switch report["kind"]?.stringValue {
            case "acked": for k in report["keys"]?.arrayValue ?? [] { if let k = k.stringValue { keys.insert(k) } }
            case "done": done = true
            case "error": error = report
            default: break
            }
        }
        return (keys, done, error)
    }

    /// Spec: "1,000 acknowledged storage.set then kill -9 of the daemon: none lost". A jailed
    /// program pipelines 2,500 storage.set (64 in flight) through a real miniappd; once it has
    /// reported 1,000 acknowledgements the daemon is SIGKILLed, mid-stream. A new daemon on the
    /// same state directory serves a new worker of the program, which reads every key that was
    /// acknowledged: each one is there with its value.
    @Test(.timeLimit(.minutes(3))) func acknowledgedWritesSurviveKill9OfTheDaemon() throws {
        let world = try E2EWorld()
        let id = E2EPartner.programId("durable")
        let zip = try world.package(
            E2EWorld.manifest(id: id, entry: "main.js", permissions: ["ui"]), files: ["main.js": Self.durability])
        let config = try world.dir.write("miniappd.json", #"{"services": {"storage": {"quotaKeysPerProgram": 5000}}}"#)
        let state = world.dir.file("state")

        let first = try world.daemon(["--config", config], stateDir: state)
        let host = try E2EHost(first)
        host.answers["ui.toast"] = { _ in [:] }
        try host.call("bridge.provide", ["methods": ["ui.toast"]])
        try host.call("packages.install", ["path": .string(zip)])
        try host.call("programs.launch", ["id": .string(id), "args": ["write", "2500", "64"]])
        try host.waitFor("1000 acknowledged writes", seconds: 60) { _ in
            let a = Self.acknowledged(host)
            return a.keys.count >= 1000 || a.error != nil
        }
        first.crash()
        try? host.drainUntilClosed(seconds: 10)  // reports already on their way count too
        let acked = Self.acknowledged(host)
        #expect(acked.error == nil, "\(acked.error.map(\.jsonString) ?? "")")
        #expect(acked.keys.count >= 1000)
        print("durability: \(acked.keys.count) writes acknowledged before kill -9, program \(acked.done ? "had finished" : "mid-stream")")

        let second = try world.daemon(["--config", config], stateDir: state)
        defer { second.stop() }
        let checker = try E2EHost(second)
        checker.answers["ui.toast"] = { _ in [:] }
        try checker.call("bridge.provide", ["methods": ["ui.toast"]])
        let keys = acked.keys.sorted()
        try checker.call("programs.launch", ["id": .string(id), "args": ["check", .string(keys.joined(separator: ","))]])
        let report = try checker.report(from: id, seconds: 60)
        #expect(report["kind"] == "checked", "\(JSONValue.object(report).jsonString)")
        #expect(report["n"]?.intValue == Int64(keys.count))
        #expect(report["missing"] == [], "acknowledged but lost")
        #expect(report["wrong"] == [], "acknowledged but changed")
        #expect((report["stored"]?.intValue ?? 0) >= Int64(keys.count))
    }
}
