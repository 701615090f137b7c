import Foundation
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing

/// The INVALID_PARAMS table of every built-in, namespacing, quotas and the order of checks,
/// against the daemon's real services through a real socket (`ServiceHarness`).
@Suite struct RealServiceParamsTests {
    struct Row: Sendable, CustomStringConvertible {
        var method: String
        var params: String
        /// A piece of the message: it names the member and says what to send instead.
        var says: String
        var description: String { "\(method) \(params.prefix(60))" }
        init(_ method: String, _ params: String, _ says: String) {
            self.method = method
            self.params = params
            self.says = says
        }
    }

    static let long = String(repeating: "x", count: 257)
    static let url = "https://api.partner.test/x"

    /// Every built-in method, every way its params can be wrong. Limits are lowered in the
    /// harness (`maxValueBytes` 64, log `maxMessageBytes` 16) so the oversize rows stay small.
    static let rows: [Row] = [
        Row("storage.get", "{}", "params.key is required"),
        Row("storage.get", #"{"key":null}"#, "params.key is required"),
        Row("storage.get", #"{"key":5}"#, "params.key must be a string, not number"),
        Row("storage.get", #"{"key":""}"#, "params.key must not be empty"),
        Row("storage.get", #"{"key":"a\u0001b"}"#, "must not contain control characters"),
        Row("storage.get", #"{"key":"\#(long)"}"#, "is 257 bytes; the limit is 256"),
        Row("storage.get", #"{"key":"k","program":"com.other.app"}"#, "unknown member 'program'"),
        Row("storage.get", #"["k"]"#, "takes its params as an object"),
        Row("storage.set", #"{"key":"k"}"#, "params.value is required"),
        Row("storage.set", #"{"value":1}"#, "params.key is required"),
        Row("storage.set", #"{"key":7,"value":1}"#, "params.key must be a string"),
        Row("storage.set", #"{"key":"k","value":"\#(String(repeating: "v", count: 70))"}"#, "the limit is 64"),
        Row("storage.set", #"{"key":"k","value":1,"ttl":60}"#, "unknown member 'ttl'"),
        Row("storage.remove", "{}", "params.key is required"),
        Row("storage.remove", #"{"key":[1]}"#, "params.key must be a string, not array"),
        Row("storage.remove", #"{"key":"\#(long)"}"#, "the limit is 256"),
        Row("storage.keys", #"{"prefix":5}"#, "params.prefix must be a string"),
        Row("storage.keys", #"{"prefix":"a","limit":10}"#, "unknown member 'limit'"),
        Row("auth.getToken", #"{"scope":5}"#, "params.scope must be a string"),
        Row("auth.getToken", #"{"scope":""}"#, "scope must not be empty"),
        Row("auth.getToken", #"{"scope":"admin"}"#, "scope 'admin' is not allowed"),
        Row("auth.getToken", #"{"scopes":"basic"}"#, "unknown member 'scopes'"),
        Row("net.request", "{}", "params.url is required"),
        Row("net.request", #"{"url":5}"#, "params.url must be a string"),
        Row("net.request", #"{"url":"api.partner.test/x"}"#, "net.request: invalid URL"),
        Row("net.request", #"{"url":"https://api.partner.test/a b"}"#, "URL contains spaces or control characters"),
        Row("net.request", #"{"url":"http://api.partner.test/x"}"#, "only https URLs are allowed"),
        Row("net.request", #"{"url":"https://api.partner.test:8443/x"}"#, "port 8443 is not allowed"),
        Row("net.request", #"{"url":"https://u:p@api.partner.test/x"}"#, "user:password@ are refused"),
        Row("net.request", #"{"url":"\#(url)","method":"CONNECT"}"#, "method must be one of"),
        Row("net.request", #"{"url":"\#(url)","headers":"x"}"#, "params.headers must be an object of strings"),
        Row("net.request", #"{"url":"\#(url)","headers":{"X-A":1}}"#, "params.headers.X-A must be a string, not number"),
        Row("net.request", #"{"url":"\#(url)","headers":{"X-A":"a\r\nInjected: 1"}}"#, "contains CR, LF or NUL"),
        Row("net.request", #"{"url":"\#(url)","headers":{"Bad Name":"x"}}"#, "is not an HTTP token"),
        Row("net.request", #"{"url":"\#(url)","body":"x"}"#, "GET cannot carry a body"),
        Row("net.request", #"{"url":"\#(url)","method":"POST","body":5}"#, "body must be a string or"),
        Row("net.request", #"{"url":"\#(url)","method":"POST","body":{"base64":"*"}}"#, "body must be a string or"),
        Row("net.request", #"{"url":"\#(url)","method":"POST","body":{"base64":"AA==","x":1}}"#, "body must be a string or"),
        Row("net.request", #"{"url":"\#(url)","timeout":1}"#, "unknown member 'timeout'"),
        Row("log.write", "{}", "params.level is required"),
        Row("log.write", #"{"level":"fatal","message":"x"}"#, "level must be one of debug, info, warn, error"),
        Row("log.write", #"{"level":"info"}"#, "params.message is required"),
        Row("log.write", #"{"level":"info","message":5}"#, "params.message must be a string"),
        Row("log.write", #"{"level":"info","message":"12345678901234567"}"#, "is 17 bytes; the limit is 16"),
        Row("log.write", #"{"level":"info","message":"m","program":"x"}"#, "unknown member 'program'"),
        Row("system.info", #"{"x":1}"#, "unknown member 'x'"),
        Row("system.info", "[]", "takes its params as an object"),
    ]

    @Test func everyBuiltinHasRows() {
        let covered = Set(Self.rows.map(\.method))
        let builtins: Set = [
            "storage.get", "storage.set", "storage.remove", "storage.keys", "auth.getToken", "net.request", "log.write", "system.info",
        ]
        #expect(covered == builtins)
    }

    @Test(arguments: rows)
    func invalidParamsAreRefusedAndNothingHappens(_ row: Row) throws {
        let h = try ServiceHarness { c in
            c.storage.maxValueBytes = 64
            c.log.maxMessageBytes = 16
        }
        let w = try h.worker("w-1")
        let a = try w.call(41, row.method, row.params)
        #expect(a["id"] == 41, "\(a.jsonString)")
        #expect(a.errorCode == "INVALID_PARAMS", "\(a.jsonString)")
        #expect(a["error"]?["code"] == -32602)
        let message = a["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains(row.says), "\(message)")
        // Refused means not done: nothing stored, nothing logged, the connection still serves.
        #expect(try w.call(42, "storage.keys", "{}")["result"]?["keys"] == [])
        #expect(h.programLog.all.isEmpty)
        #expect(try w.call(43, "system.info")["result"]?["hostVersion"] == "3.1.4")
    }
}

@Suite struct RealServiceStorageTests {
    @Test func namespacedByTheConnection() throws {
        let h = try ServiceHarness()
        let a1 = try h.worker("w-a1", program: "com.partner.a")
        let a2 = try h.worker("w-a2", program: "com.partner.a")
        let b = try h.worker("w-b", program: "com.partner.b")
        #expect(try a1.call(1, "storage.set", #"{"key":"k","value":"from a"}"#).isResult)
        #expect(try b.call(1, "storage.set", #"{"key":"k","value":"from b"}"#).isResult)
        // Keys that would be ambiguous in a "{program}:{key}" string or a LIKE pattern.
        #expect(try a1.call(2, "storage.set", #"{"key":"com.partner.b:k","value":"a's"}"#).isResult)
        #expect(try a1.call(3, "storage.set", #"{"key":"%","value":"a's"}"#).isResult)
        #expect(try a1.call(4, "storage.get", #"{"key":"k"}"#)["result"]?["value"] == "from a")
        #expect(try a2.call(1, "storage.get", #"{"key":"k"}"#)["result"]?["value"] == "from a", "same program, other worker")
        #expect(try b.call(2, "storage.get", #"{"key":"k"}"#)["result"]?["value"] == "from b")
        #expect(try b.call(3, "storage.get", #"{"key":"%"}"#)["result"]?["value"] == .null)
        #expect(try b.call(4, "storage.keys", "{}")["result"]?["keys"] == ["k"])
        #expect(try b.call(5, "storage.keys", #"{"prefix":"%"}"#)["result"]?["keys"] == [])
        #expect(try a1.call(5, "storage.keys", #"{"prefix":""}"#)["result"]?["keys"] == ["%", "com.partner.b:k", "k"])
        // A remove by b touches only b's row.
        #expect(try b.call(6, "storage.remove", #"{"key":"k"}"#).isResult)
        #expect(try a2.call(2, "storage.get", #"{"key":"k"}"#)["result"]?["value"] == "from a")
        #expect(try b.call(7, "storage.get", #"{"key":"k"}"#)["result"]?["value"] == .null)
    }

    @Test func quotasPerProgram() throws {
        let h = try ServiceHarness { c in
            c.storage.quotaKeysPerProgram = 3
            c.storage.quotaBytesPerProgram = 64
        }
        let a = try h.worker("w-a", program: "com.partner.a")
        let b = try h.worker("w-b", program: "com.partner.b")
        for i in 0..<3 { #expect(try a.call(i, "storage.set", #"{"key":"k\#(i)","value":1}"#).isResult) }
        let keys = try a.call(3, "storage.set", #"{"key":"k3","value":1}"#)
        #expect(keys.errorCode == "QUOTA_EXCEEDED" && keys["error"]?["code"] == -32003, "\(keys.jsonString)")
        #expect(keys["error"]?["data"]?["limit"] == "keys")
        #expect(try a.call(4, "storage.set", #"{"key":"k0","value":2}"#).isResult, "overwriting is not a new key")
        #expect(try b.call(1, "storage.set", #"{"key":"k3","value":1}"#).isResult, "another program's quota is its own")
        #expect(try a.call(5, "storage.remove", #"{"key":"k1"}"#).isResult)
        #expect(try a.call(6, "storage.set", #"{"key":"k3","value":1}"#).isResult, "a removed key frees its slot")
        // 3 keys × (2 + 1) bytes used; a 60-byte value would take the program over 64 bytes.
        let bytes = try a.call(7, "storage.set", #"{"key":"k2","value":"\#(String(repeating: "b", count: 58))"}"#)
        #expect(bytes.errorCode == "QUOTA_EXCEEDED" && bytes["error"]?["data"]?["limit"] == "bytes", "\(bytes.jsonString)")
        #expect(try a.call(8, "storage.get", #"{"key":"k2"}"#)["result"]?["value"] == 1, "the refused write left the old value")
        #expect(h.services.storage.usage(programId: "com.partner.a") == (9, 3))
    }
}

@Suite struct RealServiceOrderTests {
    /// Spec order: … → rate limit → params. With a budget of one call, a second call with bad
    /// params is RATE_LIMITED; were params checked first it would be INVALID_PARAMS.
    @Test func rateLimitIsCheckedBeforeParams() throws {
        let h = try ServiceHarness(catalogue: try tightCatalogue(storageBurst: 1))
        let w = try h.worker("w-1")
        #expect(try w.call(1, "storage.get", #"{"key":5}"#).errorCode == "INVALID_PARAMS", "the one token is spent here")
        #expect(try w.call(2, "storage.get", #"{"key":5}"#).errorCode == "RATE_LIMITED")
        #expect(try w.call(3, "storage.get", #"["k"]"#).errorCode == "RATE_LIMITED", "the broker's own params check too")
        #expect(try w.call(4, "storage.get", #"{"key":"k"}"#).errorCode == "RATE_LIMITED")
    }

    /// … → permission → params: a denied call with bad params is PERMISSION_DENIED.
    @Test func permissionIsCheckedBeforeParams() throws {
        let h = try ServiceHarness(grants: ["com.partner": []])
        let w = try h.worker("w-1")
        let a = try w.call(1, "net.request", #"{"url":5,"bogus":true}"#)
        #expect(a.errorCode == "PERMISSION_DENIED" && a["error"]?["data"]?["permission"] == "network", "\(a.jsonString)")
    }
}
