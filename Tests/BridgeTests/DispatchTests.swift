import Dispatch
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing
import MiniAppTestSupport

@Suite struct PipeliningTests {
    @Test func manyCallsInOneWriteAreAllAnswered() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        var batch: [UInt8] = []
        for i in 0..<200 { batch += Array(#"{"jsonrpc":"2.0","id":"c\#(i)","method":"storage.get","params":{"key":"theme"}}"#.utf8) + [0x0A] }
        try w.sendRaw(batch)
        var ids = Set<String>()
        for _ in 0..<200 {
            let a = try w.readJSON()
            #expect(a["result"]?["value"] == "dark")
            ids.insert(a["id"]?.stringValue ?? "")
        }
        #expect(ids.count == 200)
        #expect(h.broker.counters().bridgeCallsByWorker["w-1"] == 200)
    }

    @Test func repliesComeOutOfOrderMatchedById() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        try w.sendLine(#"{"jsonrpc":"2.0","id":1,"method":"log.write","params":{"level":"info","message":"slow"}}"#)
        try w.sendLine(#"{"jsonrpc":"2.0","id":2,"method":"storage.get","params":{"key":"theme"}}"#)
        let first = try w.readJSON()
        #expect(first["id"] == 2)
        h.settle()
        #expect(h.gate.heldCount == 1)
        h.gate.releaseAll()  // answered from another thread
        let second = try w.readJSON()
        #expect(second["id"] == 1 && second["result"]?["released"] == true)
    }

    @Test func serviceThatNeverAnswersTimesOut() throws {
        let h = try Harness(catalogue: try tightCatalogue(hostTimeoutMillis: 30))
        let w = try h.worker("w-1")
        let a = try w.call(1, "log.write", #"{"level":"info","message":"x"}"#)
        #expect(a.errorCode == "TIMEOUT" && a["error"]?["code"] == -32004)
        h.gate.releaseAll()  // the late answer is ignored
        #expect(try w.call(2, "storage.get", #"{"key":"theme"}"#)["id"] == 2)
    }

    @Test func eventsReachTheWorker() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        h.settle()
        #expect(h.broker.sendEvent(workerId: "w-1", name: "lifecycle.show", data: ["x": 1]))
        #expect(!h.broker.sendEvent(workerId: "w-none", name: "x"))
        let e = try w.readJSON()
        #expect(e == ["jsonrpc": "2.0", "method": "event", "params": ["name": "lifecycle.show", "data": ["x": 1]]])
    }

    @Test func detachClosesAndForgetsTheWorker() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        #expect(try w.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
        h.broker.detach(workerId: "w-1")
        #expect(try w.readsEOF())
        h.settle()
        #expect(h.broker.counters().attachedWorkers == 0)
        // The id may be attached again once gone.
        let again = try h.worker("w-1")
        #expect(try again.call(2, "storage.get", #"{"key":"theme"}"#).isResult)
        #expect(throws: MiniAppError.self) { _ = try h.worker("w-1") }
    }
}

@Suite struct HostProviderTests {
    private func pay(_ w: Peer, _ id: Int) throws {
        try w.sendLine(#"{"jsonrpc":"2.0","id":\#(id),"method":"payment.pay","params":{"orderId":"o-\#(id)","amount":9.99}}"#)
    }

    @Test func callIsForwardedAndTheAnswerRoutedBack() throws {
        let h = try Harness(grants: ["com.partner": ["payment"]])
        let (host, _) = try h.provider(["payment.pay"])
        let w = try h.worker("w-3", program: "com.partner.loans", declared: ["payment"])
        try pay(w, 7)
        let call = try host.readJSON()
        #expect(call["method"] == "bridge.call")
        #expect(call["params"]?["method"] == "payment.pay")
        #expect(call["params"]?["params"]?["orderId"] == "o-7")
        #expect(call["params"]?["program"] == ["id": "com.partner.loans", "version": "1.0.0"])
        #expect(call["params"]?["workerId"] == "w-3")
        let pid = try #require(call["id"]?.stringValue)
        try host.sendLine(#"{"jsonrpc":"2.0","id":"\#(pid)","result":{"transactionId":"tx-1"}}"#)
        let a = try w.readJSON()
        #expect(a == ["jsonrpc": "2.0", "id": 7, "result": ["transactionId": "tx-1"]])
    }

    @Test func hostAnswersOutOfOrderAndRelaysErrorsSanitised() throws {
        let h = try Harness(grants: ["com.partner": ["payment"]])
        let (host, _) = try h.provider(["payment.pay"])
        let w = try h.worker("w-1", declared: ["payment"])
        try pay(w, 1)
        try pay(w, 2)
        let c1 = try host.readJSON(), c2 = try host.readJSON()
        try host.sendLine(#"{"jsonrpc":"2.0","id":"\#(c2["id"]!.stringValue!)","error":{"code":-32050,"message":"user cancelled","data":{"code":"CANCELLED","stack":"secret internals"}}}"#)
        try host.sendLine(#"{"jsonrpc":"2.0","id":"\#(c1["id"]!.stringValue!)","result":{"transactionId":"tx-1"}}"#)
        let a2 = try w.readJSON(), a1 = try w.readJSON()
        #expect(a2["id"] == 2 && a2.errorCode == "CANCELLED" && a2["error"]?["data"]?["stack"] == nil)
        #expect(a1["id"] == 1 && a1.isResult)
    }

    /// `error.code` always agrees with `data.code` after relaying (a host's number never names
    /// another code of the table): (host number, host data.code) → (number, data.code) relayed.
    @Test(arguments: [
        (-32050, #""PERMISSION_DENIED""#, -32001, "PERMISSION_DENIED"),
        (-32603, #""QUOTA_EXCEEDED""#, -32003, "QUOTA_EXCEEDED"),
        (-32001, #""CANCELLED""#, -32000, "CANCELLED"),
        (-32602, #""CARD_DECLINED""#, -32000, "CARD_DECLINED"),
        (-32050, #""CANCELLED""#, -32050, "CANCELLED"),
        (7, #""CANCELLED""#, 7, "CANCELLED"),
        (-32004, "null", -32004, "TIMEOUT"),
        (12, "null", -32603, "INTERNAL"),
        (-32001, #""bad code!""#, -32603, "INTERNAL"),
        (-32001, "42", -32603, "INTERNAL"),
        (-32050, #""\#(String(repeating: "A", count: 65))""#, -32603, "INTERNAL"),
        (-32005, #""INTERNAL""#, -32603, "INTERNAL"),
    ])
    func relayedErrorNumbersAgreeWithTheirCode(_ number: Int, _ dataCode: String, _ relayedNumber: Int, _ relayedCode: String) throws {
        let h = try Harness(grants: ["com.partner": ["payment"]])
        let (host, _) = try h.provider(["payment.pay"])
        let w = try h.worker("w-1", declared: ["payment"])
        try pay(w, 1)
        let c = try host.readJSON()
        let data = dataCode == "null" ? "" : #","data":{"code":\#(dataCode)}"#
        try host.sendLine(#"{"jsonrpc":"2.0","id":"\#(c["id"]!.stringValue!)","error":{"code":\#(number),"message":"no"\#(data)}}"#)
        let a = try w.readJSON()
        #expect(a["error"]?["code"] == .int(Int64(relayedNumber)), "\(a.jsonString)")
        #expect(a.errorCode == relayedCode, "\(a.jsonString)")
        #expect(a["error"]?["message"] == "no")
    }

    @Test func noProviderMeansHostUnavailable() throws {
        let h = try Harness(grants: ["com.partner": ["payment"]])
        let w = try h.worker("w-1", declared: ["payment"])
        let a = try w.call(1, "payment.pay")
        #expect(a.errorCode == "HOST_UNAVAILABLE" && a["error"]?["code"] == -32005)
    }

    @Test func providerDisconnectFailsPendingCalls() throws {
        let h = try Harness(grants: ["com.partner": ["payment"]])
        var host: Peer? = try h.provider(["payment.pay"]).0
        let w = try h.worker("w-1", declared: ["payment"])
        try pay(w, 1)
        _ = try host?.readJSON()
        host = nil  // closes the host's socket
        #expect(try w.readJSON().errorCode == "HOST_UNAVAILABLE")
        #expect(try w.call(2, "payment.pay").errorCode == "HOST_UNAVAILABLE")
        _ = host
    }

    @Test func slowProviderTimesOutAndItsLateAnswerIsIgnored() throws {
        let h = try Harness(catalogue: try tightCatalogue(hostTimeoutMillis: 30), grants: ["com.partner": ["payment"]])
        let (host, _) = try h.provider(["payment.pay"])
        let w = try h.worker("w-1", declared: ["payment"])
        try pay(w, 1)
        let c = try host.readJSON()
        #expect(try w.readJSON().errorCode == "TIMEOUT")
        try host.sendLine(#"{"jsonrpc":"2.0","id":"\#(c["id"]!.stringValue!)","result":{}}"#)
        #expect(try w.call(2, "storage.get", #"{"key":"theme"}"#)["id"] == 2)
    }

    @Test func deniedCallsNeverReachTheProvider() throws {
        let h = try Harness(grants: ["com.partner": []])
        let (host, conn) = try h.provider(["payment.pay"])
        let w = try h.worker("w-1", declared: ["payment"])
        #expect(try w.call(1, "payment.pay").errorCode == "PERMISSION_DENIED")
        conn.close()
        #expect(try host.readsEOF())  // nothing but EOF was ever sent to the host
    }

    @Test func provideRefusesBuiltinAndUnknownMethods() throws {
        let h = try Harness()
        let pair = try UnixSocket.pair()
        let conn = try h.reactor.adopt(pair.daemonSide, handler: ProviderRouter(broker: h.broker))
        #expect(throws: MiniAppError.self) { try h.broker.hostProviders.provide(methods: ["storage.get"], connection: conn) }
        #expect(throws: MiniAppError.self) { try h.broker.hostProviders.provide(methods: ["evil.method"], connection: conn) }
    }
}

@Suite struct RateLimitTests {
    @Test func classBudgetIsPerProgramAcrossWorkers() throws {
        let h = try Harness(catalogue: try tightCatalogue(storageBurst: 3))
        let a = try h.worker("w-a1", program: "com.partner.a")
        let a2 = try h.worker("w-a2", program: "com.partner.a")
        let b = try h.worker("w-b", program: "com.partner.b")
        for i in 0..<3 { #expect(try a.call(i, "storage.get", #"{"key":"theme"}"#).isResult) }
        let limited = try a.call(3, "storage.get", #"{"key":"theme"}"#)
        #expect(limited.errorCode == "RATE_LIMITED" && limited["error"]?["code"] == -32002)
        #expect(try a2.call(1, "storage.get", #"{"key":"theme"}"#).errorCode == "RATE_LIMITED")
        #expect(try b.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
        // Another class of the same program still has budget.
        #expect(try a.call(9, "no.such")["error"]?["data"]?["code"] == "METHOD_NOT_FOUND")
    }

    /// A budget of one `payment.pay` per program: five denied calls are all PERMISSION_DENIED
    /// (were the rate limit checked first, calls 2…5 would be RATE_LIMITED), and they spent
    /// none of the budget — the program's one allowed call still passes, the next is limited.
    @Test func permissionIsCheckedBeforeTheRateLimit() throws {
        let h = try Harness(catalogue: try tightCatalogue(hostBurst: 1), grants: ["com.partner": ["payment"]])
        let undeclared = try h.worker("w-1", program: "com.partner.app")
        for i in 0..<5 { #expect(try undeclared.call(i, "payment.pay").errorCode == "PERMISSION_DENIED") }
        let declared = try h.worker("w-2", program: "com.partner.app", declared: ["payment"])
        #expect(try declared.call(1, "payment.pay").errorCode == "HOST_UNAVAILABLE", "passed permission and rate limit")
        #expect(try declared.call(2, "payment.pay").errorCode == "RATE_LIMITED")
        #expect(try undeclared.call(9, "payment.pay").errorCode == "PERMISSION_DENIED", "still denied, not limited")
    }

    @Test func inFlightCapIsEnforced() throws {
        let h = try Harness(configuration: BrokerConfiguration(maxInFlightPerWorker: 2))
        let w = try h.worker("w-1")
        for i in 0..<3 { try w.sendLine(#"{"jsonrpc":"2.0","id":\#(i),"method":"log.write","params":{}}"#) }
        let a = try w.readJSON()
        #expect(a["id"] == 2 && a.errorCode == "RATE_LIMITED")
        h.gate.releaseAll()
    }
}

@Suite struct InspectorAndAuditTests {
    @Test func inspectorEventsAreRedactedInPayloadMode() throws {
        let h = try Harness(configuration: BrokerConfiguration(inspectorPayloads: true))
        let events = Mutex<[JSONValue]>([])
        h.broker.inspector.subscribe(programId: "com.partner.app") { e in events.withLock { $0.append(e) } }
        let w = try h.worker("w-1")
        let other = try h.worker("w-2", program: "com.partner.other")
        #expect(try w.call(1, "auth.getToken")["result"]?["token"] == "tok-SECRET-123")
        _ = try w.call(2, "storage.set", #"{"key":"k","value":{"password":"hunter2","Authorization":"Bearer x","nested":[{"client_secret":"s"}],"ok":1}}"#)
        _ = try other.call(3, "storage.get", #"{"key":"theme"}"#)
        h.settle()
        let got = events.withLock { $0 }
        #expect(got.count == 2)
        let text = got.map(\.jsonString).joined()
        for secret in ["tok-SECRET-123", "hunter2", "Bearer x", "\"s\""] { #expect(!text.contains(secret), "\(secret) leaked") }
        #expect(got[0]["result"]?["token"] == "[REDACTED]")
        #expect(got[1]["params"]?["value"]?["ok"] == 1)
        for key in ["time", "workerId", "programId", "method", "decision", "micros", "bytesIn", "bytesOut"] {
            #expect(got[0][key] != nil, "\(key) missing")
        }
        #expect(got[0]["decision"] == "allow" && got[0]["workerId"] == "w-1")
    }

    @Test func inspectorWithoutPayloadsCarriesNone() throws {
        let h = try Harness()
        let pair = try UnixSocket.pair()
        let conn = try h.reactor.adopt(pair.daemonSide, handler: ProviderRouter(broker: h.broker))
        h.broker.inspector.subscribe(connection: conn, programId: nil)
        let sub = Peer(fd: pair.workerSide.take())
        h.settle()
        let w = try h.worker("w-1")
        _ = try w.call(1, "auth.getToken")
        _ = try w.call(2, "payment.pay")
        let e1 = try sub.readJSON(), e2 = try sub.readJSON()
        #expect(e1["method"] == "inspector.event" && e1["params"]?["result"] == nil && e1["params"]?["params"] == nil)
        #expect(e2["params"]?["decision"] == "deny" && e2["params"]?["code"] == "PERMISSION_DENIED")
        #expect(!e1.jsonString.contains("tok-SECRET"))
    }

    @Test func auditLogRecordsEveryDecisionAndRotates() throws {
        let dir = try TempDir.makeDirectory("broker-audit")
        let path = dir + "/audit.jsonl"
        let h = try Harness(configuration: BrokerConfiguration(audit: AuditConfiguration(path: path, maxBytes: 4000, keep: 2)))
        let w = try h.worker("w-1")
        for i in 0..<150 {
            _ = try w.call(i, i % 3 == 0 ? "payment.pay" : "auth.getToken")
            if i % 10 == 0 { h.settle() }
        }
        h.settle()
        func lines(_ p: String) throws -> [JSONValue] {
            guard access(p, F_OK) == 0 else { return [] }
            let bytes = try OwnedFD.open(p, O_RDONLY).readAll()
            return try bytes.split(separator: 0x0A).map { try JSONValue.parse($0) }
        }
        let live = try lines(path), r1 = try lines(path + ".1"), r2 = try lines(path + ".2")
        #expect(access(path + ".3", F_OK) != 0)
        #expect(!live.isEmpty && !r1.isEmpty && !r2.isEmpty)
        #expect(live.count + r1.count + r2.count < 150)  // the oldest were rotated away
        for rec in live + r1 + r2 {
            #expect(rec["workerId"] == "w-1" && rec["programId"] == "com.partner.app")
            #expect(rec["params"] == nil && rec["result"] == nil)
            #expect(!rec.jsonString.contains("tok-SECRET"))
        }
        #expect((live + r1 + r2).contains { $0["decision"] == "deny" && $0["code"] == "PERMISSION_DENIED" })
        for p in [path, path + ".1", path + ".2"] { unlink(p) }
        rmdir(dir)
    }

    @Test func countersByMethodAndDecision() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        _ = try w.call(1, "storage.get", #"{"key":"theme"}"#)
        _ = try w.call(2, "net.request")
        _ = try w.call(3, "random.\(UInt32.random(in: 0...UInt32.max))")
        try w.sendLine("garbage")
        _ = try w.readJSON()
        let c = h.broker.counters()
        #expect(c.callsByMethod["storage.get"]?[.allow] == 1)
        #expect(c.callsByMethod["net.request"]?[.deny] == 1)
        #expect(c.callsByMethod["(unknown)"]?[.refuse] == 1)
        #expect(c.callsByMethod["(invalid)"]?[.refuse] == 1)
        #expect(c.bridgeCallsByWorker["w-1"] == 4)
    }
}

@Suite struct RedactionTests {
    static let token = AuthService.issuedTokenPrefix + "ImsxIn0.eyJzdWIiOiJ1In0.c2ln"

    @Test(arguments: [
        ("a token under a neutral name", ["blob": .string(token)], ["blob": "[REDACTED]"]),
        ("inside a longer string", ["h": .string("Bearer " + token)], ["h": "[REDACTED]"]),
        ("in an array", [["x", .string(token)]], [["x", "[REDACTED]"]]),
        ("as a member name", .object([token: 1]), ["[REDACTED]": 1]),
        ("two member names stay distinct", .object([token: 1, token + "x": 2]), ["[REDACTED]": 1, "[REDACTED]#2": 2]),
        ("a bare string", .string(token), "[REDACTED]"),
        // Characters that join with the next one into one grapheme (String.contains missed these).
        ("after a prepended concatenation mark", ["b": .string("\u{0600}" + token)], ["b": "[REDACTED]"]),
        ("before a combining mark", ["b": .string(token + "\u{0301}")], ["b": "[REDACTED]"]),
        ("a secret name after a joining mark", .object(["\u{0600}token": "t"]), .object(["\u{0600}token": "[REDACTED]"])),
        ("a secret name in capitals", .object(["ACCESS_TOKEN": "t"]), .object(["ACCESS_TOKEN": "[REDACTED]"])),
        ("another issuer's JWT is kept", ["t2": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"], ["t2": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"]),
        ("a shorter string is kept", ["p": .string(String(AuthService.issuedTokenPrefix.dropLast()))], ["p": .string(String(AuthService.issuedTokenPrefix.dropLast()))]),
    ] as [(String, JSONValue, JSONValue)])
    func redactsIssuedTokensByValue(_ name: String, _ value: JSONValue, _ expected: JSONValue) {
        #expect(Redactor.redact(value) == expected, "\(name)")
    }

    @Test func redactsSecretMembersAtAnyDepth() {
        let v: JSONValue = ["token": "t", "user": ["Password": "p", "name": "n"], "list": [["X-Authorization": "a", "client_secret": "s", "Set-Cookie": "c"]]]
        let r = Redactor.redact(v)
        #expect(r == ["token": "[REDACTED]", "user": ["Password": "[REDACTED]", "name": "n"], "list": [["X-Authorization": "[REDACTED]", "client_secret": "[REDACTED]", "Set-Cookie": "[REDACTED]"]]])
    }
}

@Suite struct ConcurrencyTests {
    /// Answers from other threads, events, grant updates and detaches racing with pipelined
    /// calls: every call is answered exactly once, nothing crashes (run under TSan too).
    @Test func repliesEventsAndGrantUpdatesFromOtherThreads() throws {
        let h = try Harness(grants: ["com.partner": ["network"]])
        let workers = try (0..<4).map { try h.worker("w-\($0)", program: "com.partner.p\($0)", declared: ["network"]) }
        let perWorker = 150
        for (n, w) in workers.enumerated() {
            var batch: [UInt8] = []
            for i in 0..<perWorker {
                let method = i % 3 == 0 ? "log.write" : (i % 3 == 1 ? "net.request" : "storage.get")
                batch += Array(#"{"jsonrpc":"2.0","id":\#(i),"method":"\#(method)","params":{"key":"theme"}}"#.utf8) + [0x0A]
            }
            try w.sendRaw(batch)
            _ = n
        }
        let stop = Atomic<Bool>(false)
        let group = DispatchGroup()
        let gate = h.gate, broker = h.broker
        DispatchQueue.global().async(group: group) {
            while !stop.load(ordering: .relaxed) { gate.releaseHere() }
        }
        DispatchQueue.global().async(group: group) {
            var flip = false
            while !stop.load(ordering: .relaxed) {
                broker.updateGrants(["com.partner": flip ? ["network"] : []])
                flip.toggle()
            }
        }
        DispatchQueue.global().async(group: group) {
            for i in 0..<200 { broker.sendEvent(workerId: "w-\(i % 4)", name: "tick", data: .int(Int64(i))) }
        }
        for w in workers {
            var answered = Set<Int64>()
            var events = 0
            while answered.count < perWorker {
                let m = try w.readJSON()
                if m["method"] == "event" { events += 1; continue }
                let id = try #require(m["id"]?.intValue)
                #expect(!answered.contains(id), "answered twice: \(id)")
                answered.insert(id)
                let code = m.errorCode
                #expect(code == nil || code == "PERMISSION_DENIED" || code == "RATE_LIMITED", "\(m.jsonString)")
            }
        }
        stop.store(true, ordering: .relaxed)
        group.wait()
        h.broker.detach(workerId: "w-0")
        #expect(try workers[0].readsEOF())
    }
}
