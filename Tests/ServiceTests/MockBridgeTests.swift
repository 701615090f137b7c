import Foundation
import MiniAppBridgeMock
import MiniAppBridgeSDK
import MiniAppJSON
import MiniAppModel
import Testing

/// The mock bridge: one rules format read by the Swift engine (`miniapp mock-bridge`,
/// `MiniAppBridgeMock`), the JS mock and the Python mock, answering the same way; on the wire
/// the broker's own codec.
@Suite struct MockBridgeTests {
    static let rules = #"""
        {"rules": [
          {"method": "payment.pay", "params": {"currency": "USD", "meta": {"tier": "gold"}}, "result": {"transactionId": "tx-gold"}},
          {"method": "payment.pay", "params": {"currency": "USD"}, "result": {"transactionId": "tx-1"}, "times": 1},
          {"method": "payment.*", "error": {"code": "PAYMENT_DECLINED", "message": "card declined", "data": {"retry": false}}},
          {"method": "geolocation.?et", "error": {"code": "PERMISSION_DENIED", "message": "geolocation.get needs permission 'geolocation'"}},
          {"method": "storage.get", "params": {"key": "pinned"}, "result": {"value": 42}},
          {"method": "ui.toast", "result": {}, "delayMs": 50}
        ]}
        """#

    /// The calls every language makes, in order, and what each must answer (a result, or
    /// [code, rpcCode]).
    static let script: [(String, JSONValue?)] = [
        ("payment.pay", ["orderId": "o-1", "currency": "USD", "meta": ["tier": "gold", "x": 1]]),
        ("payment.pay", ["orderId": "o-2", "currency": "USD"]),
        ("payment.pay", ["orderId": "o-3", "currency": "USD"]),
        ("payment.refund", ["orderId": "o-3"]),
        ("geolocation.get", nil),
        ("storage.set", ["key": "visits", "value": ["n": 1]]),
        ("storage.get", ["key": "visits"]),
        ("storage.get", ["key": "pinned"]),
        ("storage.keys", ["prefix": "v"]),
        ("storage.remove", ["key": "visits"]),
        ("storage.get", ["key": "visits"]),
        ("storage.get", [:]),
        ("system.info", nil),
        ("nope.method", nil),
    ]
    static let expected: [JSONValue] = [
        ["transactionId": "tx-gold"], ["transactionId": "tx-1"], ["PAYMENT_DECLINED", -32000], ["PAYMENT_DECLINED", -32000],
        ["PERMISSION_DENIED", -32001], [:], ["value": ["n": 1]], ["value": 42], ["keys": ["visits"]], [:], ["value": nil],
        ["INVALID_PARAMS", -32602], ["programId": "com.example.mock", "version": "0.0.0", "hostVersion": "1.1.0"],
        ["METHOD_NOT_FOUND", -32601],
    ]

    @Test func swiftEngineAnswersTheScript() throws {
        let engine = MockBridge(rules: try MockRules.parse(Array(Self.rules.utf8)))
        let got: [JSONValue] = Self.script.map { call in
            switch engine.answer(method: call.0, params: call.1).answer {
            case .result(let r): return r
            case .error(let e): return [.string(e.dataCode ?? "?"), .int(e.code)]
            }
        }
        #expect(got == Self.expected)
        guard case .error(let e) = engine.answer(method: "nope.method", params: nil).answer else { Issue.record("must fail"); return }
        #expect(e.message.contains("nope.method"), "METHOD_NOT_FOUND names the method: \(e.message)")
        guard case .error(let declined) = engine.answer(method: "payment.pay", params: nil).answer else { return }
        #expect(declined.data == ["code": "PAYMENT_DECLINED", "retry": false])
    }

    static let jsScript = """
        const { createMockBridge } = require('miniapp-bridge-mock');
        const fs = require('fs');
        const bridge = createMockBridge(fs.readFileSync(process.argv[2], 'utf8'));
        const calls = JSON.parse(process.argv[3]);
        (async () => {
          const out = [];
          for (const [m, p] of calls) {
            try { out.push(await bridge.call(m, p === null ? undefined : p)); } catch (e) { out.push([e.code, e.rpcCode]); }
          }
          console.log(JSON.stringify(out));
        })();
        """

    static let pyScript = """
        import json, sys
        import miniapp_bridge
        from miniapp_bridge import mock
        bridge = mock.MockBridge.from_file(sys.argv[1])
        out = []
        for m, p in json.loads(sys.argv[2]):
            try:
                out.append(bridge.call(m, p))
            except miniapp_bridge.BridgeError as e:
                out.append([e.code, e.rpc_code])
        print(json.dumps(out))
        """

    static var scriptJSON: String {
        JSONValue.array(script.map { .array([.string($0.0), $0.1 ?? .null]) }).jsonString
    }

    /// The same rules file and calls through the JS mock (`require('miniapp-bridge-mock')`, as a
    /// program's unit test loads it) answer exactly as the Swift engine.
    @Test func jsMockAnswersLikeTheEngine() throws {
        let dir = try makeTempDir("mock")
        defer { removeTree(dir) }
        try Self.rules.write(toFile: dir + "/rules.json", atomically: true, encoding: .utf8)
        try Self.jsScript.write(toFile: dir + "/t.js", atomically: true, encoding: .utf8)
        let r = try runProcess("/usr/bin/node", [dir + "/t.js", dir + "/rules.json", Self.scriptJSON], environment: ["NODE_PATH": SDKTests.sdk + "/js", "PATH": "/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try JSONValue.parse(Array(r.out.utf8)) == .array(Self.expected))
    }

    @Test func pythonMockAnswersLikeTheEngine() throws {
        let dir = try makeTempDir("mock")
        defer { removeTree(dir) }
        try Self.rules.write(toFile: dir + "/rules.json", atomically: true, encoding: .utf8)
        try Self.pyScript.write(toFile: dir + "/t.py", atomically: true, encoding: .utf8)
        let r = try runProcess(debianPython, ["-B", dir + "/t.py", dir + "/rules.json", Self.scriptJSON], environment: ["PYTHONPATH": SDKTests.sdk + "/python", "PATH": "/usr/bin:/bin"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try JSONValue.parse(Array(r.out.utf8)) == .array(Self.expected))
    }

    /// The Swift SDK against `MiniAppBridgeMock`: the real SDK over a socket; a delayed answer
    /// does not hold back the calls pipelined after it.
    @Test func swiftSDKAgainstTheInProcessMock() async throws {
        let mock = try MiniAppBridgeMock(rules: Self.rules)
        var got: [JSONValue] = []
        for (m, p) in Self.script {
            do { got.append(try await mock.bridge.call(m, p)) } catch { got.append([.string(error.code), .int(error.rpcCode)]) }
        }
        #expect(got == Self.expected)
        async let slow = mock.bridge.call("ui.toast", ["text": "hi"])
        let fast = try await mock.bridge.call("system.info")
        #expect(fast["programId"] == "com.example.mock")
        #expect(try await slow == [:])
        #expect(mock.calls.map(\.method).suffix(2).sorted() == ["system.info", "ui.toast"])
    }

    /// A rules file is checked strictly, and the message names the rule and the member.
    @Test(arguments: [
        ("[]", "must be {\"rules\""),
        ("{\"rules\": {}}", "must be {\"rules\""),
        ("{\"rules\": [], \"extra\": 1}", "unknown member \"extra\""),
        ("{\"rules\": [1]}", "rules[0]: must be an object"),
        ("{\"rules\": [{\"result\": 1}]}", "rules[0]: needs \"method\""),
        ("{\"rules\": [{\"method\": \"\", \"result\": 1}]}", "rules[0]: needs \"method\""),
        ("{\"rules\": [{\"method\": \"a\"}]}", "exactly one of"),
        ("{\"rules\": [{\"method\": \"a\", \"result\": 1, \"error\": {\"code\": \"X\", \"message\": \"m\"}}]}", "exactly one of"),
        ("{\"rules\": [{\"method\": \"a\", \"parms\": {}, \"result\": 1}]}", "unknown member \"parms\""),
        ("{\"rules\": [{\"method\": \"a\", \"params\": [1], \"result\": 1}]}", "\"params\" must be an object"),
        ("{\"rules\": [{\"method\": \"a\", \"error\": {\"code\": \"lower\", \"message\": \"m\"}}]}", "\"error\" must be"),
        ("{\"rules\": [{\"method\": \"a\", \"error\": {\"code\": \"X\"}}]}", "needs a \"message\""),
        ("{\"rules\": [{\"method\": \"a\", \"error\": {\"code\": \"X\", \"message\": \"m\", \"data\": 1}}]}", "\"error.data\" must be an object"),
        ("{\"rules\": [{\"method\": \"a\", \"result\": 1, \"delayMs\": -1}]}", "\"delayMs\" must be an integer"),
        ("{\"rules\": [{\"method\": \"a\", \"result\": 1, \"delayMs\": 1e9}]}", "\"delayMs\" must be an integer"),
        ("{\"rules\": [{\"method\": \"a\", \"result\": 1, \"times\": 0}]}", "\"times\" must be an integer"),
        ("{\"rules\": [{\"method\": \"a\", \"result\": 1, \"method\": \"b\"}]}", "not valid JSON"),
        ("{\"rules\": [", "not valid JSON"),
    ])
    func malformedRulesAreRefused(text: String, message: String) {
        #expect {
            _ = try MockRules.parse(Array(text.utf8))
        } throws: { error in
            guard let e = error as? MiniAppError else { return false }
            return e.code == .invalidParams && e.message.contains(message)
        }
    }

    @Test(arguments: [
        ("payment.pay", "payment.pay", true), ("payment.*", "payment.pay", true), ("payment.*", "payment.", true),
        ("payment.*", "payments.pay", false), ("*", "a.b.c", true), ("a.?", "a.b", true), ("a.?", "a.bc", false),
        ("*.get", "storage.get", true), ("*.get", "storage.set", false), ("a*b*c", "aXbYc", true), ("a*b*c", "aXbY", false),
    ])
    func globs(pattern: String, method: String, matches: Bool) {
        let rule = MockRules.Rule(method: pattern, answer: .result(.null))
        #expect(rule.matches(method: method, params: nil) == matches)
    }

    /// Hostile and malformed lines get the broker's answers, and the mock keeps serving.
    @Test func wireErrorsAreTheBrokers() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let server = MockBridgeServer(bridge: MockBridge(rules: MockRules()), fd: fds[0], maxMessageBytes: 4096)
        server.start()
        let client = fds[1]
        defer { close(client) }
        func exchange(_ line: String) -> JSONValue? {
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            return readLine(client)
        }
        #expect(exchange("not json")?["error"]?["data"]?["code"] == "PARSE_ERROR")
        #expect(exchange("not json")?["id"] == .null)
        let extra = exchange(#"{"jsonrpc":"2.0","id":5,"method":"system.info","caller":"x"}"#)
        #expect(extra?["id"] == 5 && extra?["error"]?["data"]?["code"] == "INVALID_REQUEST")
        #expect(exchange(#"[{"jsonrpc":"2.0","id":1,"method":"system.info"}]"#)?["error"]?["data"]?["code"] == "INVALID_REQUEST")
        #expect(exchange(#"{"jsonrpc":"2.0","id":6,"method":"storage.get","params":[1]}"#)?["error"]?["data"]?["code"] == "INVALID_PARAMS")
        #expect(exchange(#"{"jsonrpc":"2.0","id":7,"method":"a","method":"b"}"#)?["error"]?["data"]?["code"] == "PARSE_ERROR")
        // A notification is never answered: the next answer is the next request's.
        #expect(exchange(#"{"jsonrpc":"2.0","method":"system.info"}"# + "\n" + #"{"jsonrpc":"2.0","id":"s","method":"system.info"}"#)?["id"] == "s")
        let big = exchange(#"{"jsonrpc":"2.0","id":8,"method":"x","params":{"s":""# + String(repeating: "a", count: 5000) + "\"}}")
        #expect(big?["id"] == .null && big?["error"]?["data"]?["code"] == "MESSAGE_TOO_LARGE")
        server.wait()  // the mock closed the connection, as the broker does
    }

    private func readLine(_ fd: Int32) -> JSONValue? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == 0x0A { return try? JSONValue.parse(line) }
            line.append(byte)
        }
        return nil
    }
}
