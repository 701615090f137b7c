import MiniAppJSON
import MiniAppModel
import Testing

@Suite struct LineFramerTests {
    private func lines(_ chunks: [String], max: Int = 64) -> [String] {
        var f = LineFramer(maxLineBytes: max, initialCapacity: 8)
        var out: [String] = []
        for c in chunks {
            f.append(Array(c.utf8))
            f.drain { ev in
                switch ev {
                case .line(let l): out.append(String(decoding: l, as: UTF8.self))
                case .tooLarge(let n): out.append("TOO_LARGE(\(n))")
                }
                return true
            }
        }
        f.finish { ev in if case .line(let l) = ev { out.append("EOF:" + String(decoding: l, as: UTF8.self)) } }
        return out
    }

    @Test func splitsAndJoinsAcrossReads() {
        #expect(lines(["a\nb", "c\n", "\n", "d"]) == ["a", "bc", "", "EOF:d"])
    }

    @Test func manySmallChunks() {
        let msg = "{\"jsonrpc\":\"2.0\",\"id\":1}"
        #expect(lines(msg.map { String($0) } + ["\n"], max: 100) == [msg])
    }

    @Test func exactLimitPassesOneMoreFails() {
        #expect(lines([String(repeating: "x", count: 64) + "\n"]) == [String(repeating: "x", count: 64)])
        #expect(lines([String(repeating: "x", count: 65) + "\n"]) == ["TOO_LARGE(65)"])
    }

    @Test func unterminatedOversizeIsCutOffWithoutNewline() {
        let out = lines([String(repeating: "y", count: 50), String(repeating: "y", count: 50)])
        #expect(out.first?.hasPrefix("TOO_LARGE") == true)
        #expect(out.count == 1)
    }
}

@Suite struct RPCCodecTests {
    private func decode(_ s: String) -> Result<RPCRequest, RPCDecodeError> {
        Array(s.utf8).withUnsafeBufferPointer { RPCCodec.parse($0).flatMap(RPCCodec.decodeRequest) }
    }

    @Test func decodesRequestAndNotification() throws {
        let r = try decode(#"{"jsonrpc":"2.0","id":"a-1","method":"storage.get","params":{"key":"k"}}"#).get()
        #expect(r.id == .string("a-1") && r.method == "storage.get" && r.params?["key"] == "k")
        let n = try decode(#"{"jsonrpc":"2.0","method":"log.write"}"#).get()
        #expect(n.id == nil && n.params == nil)
    }

    @Test func encodesErrorsWithStableCode() throws {
        var out: [UInt8] = []
        RPCCodec.writeError(id: .int(8), error: MiniAppError(.permissionDenied, "no", data: ["permission": "payment"]), into: &out)
        #expect(out.last == 0x0A)
        let v = try JSONValue.parse(out.dropLast())
        #expect(v == ["jsonrpc": "2.0", "id": 8, "error": ["code": -32001, "message": "no", "data": ["code": "PERMISSION_DENIED", "permission": "payment"]]])
    }

    @Test func decodesProviderResponses() throws {
        let v = try JSONValue.parse(#"{"jsonrpc":"2.0","id":"p-1","error":{"code":-32001,"message":"x","data":{"code":"CANCELLED"}}}"#)
        guard case .success(.response(let r)) = RPCCodec.decodeMessage(v), case .failure(let e) = r.outcome else {
            Issue.record("not a response")
            return
        }
        #expect(e.object.dataCode == "CANCELLED")
    }
}

@Suite struct MethodCatalogueTests {
    @Test func repositoryCatalogueIsValid() throws {
        let c = try standardCatalogue()
        #expect(c.knownPermissions == ["network", "payment", "geolocation", "ui"])
        #expect(c.spec(for: "net.request")?.permissions == ["network"])
        #expect(c.spec(for: "payment.pay")?.provider == .host)
        for m in ["system.info", "storage.get", "storage.set", "storage.remove", "storage.keys", "auth.getToken", "log.write", "geolocation.get", "ui.toast"] {
            #expect(c.spec(for: m) != nil, "\(m) missing")
        }
    }

    @Test(arguments: [
        (#"{"version":2}"#, CatalogueError.Reason.badVersion),
        (#"{"version":1,"permissions":{},"classes":{},"programBudget":{"perSecond":1,"burst":1},"methods":{},"extra":1}"#, .unknownField),
        (#"{"version":1,"permissions":{},"classes":{},"programBudget":{"perSecond":1,"burst":1},"methods":{"a.b":{"provider":"builtin","permission":"x","class":"c","timeoutMillis":1}}}"#, .unknownPermission),
        (#"{"version":1,"permissions":{},"classes":{},"programBudget":{"perSecond":1,"burst":1},"methods":{"a.b":{"provider":"builtin","permission":null,"class":"c","timeoutMillis":1}}}"#, .unknownClass),
        (#"{"version":1,"permissions":{},"classes":{"c":{"perSecond":1,"burst":1}},"programBudget":{"perSecond":1,"burst":1},"methods":{"nodot":{"provider":"builtin","permission":null,"class":"c","timeoutMillis":1}}}"#, .badName),
        (#"{"version":1,"permissions":{},"classes":{"c":{"perSecond":1,"burst":1}},"programBudget":{"perSecond":1,"burst":1},"methods":{"a.b":{"provider":"cloud","permission":null,"class":"c","timeoutMillis":1}}}"#, .wrongType),
        (#"{"version":1,"permissions":{},"classes":{"c":{"perSecond":0,"burst":1}},"programBudget":{"perSecond":1,"burst":1},"methods":{}}"#, .outOfRange),
        (#"{"version":1,"permissions":{},"classes":{},"programBudget":{"perSecond":1,"burst":1}}"#, .missingField),
        ("{", .notJSON),
    ])
    func refusesBadCatalogues(_ text: String, _ reason: CatalogueError.Reason) {
        #expect(throws: CatalogueError.self) { try MethodCatalogue.parse(Array(text.utf8)) }
        do { _ = try MethodCatalogue.parse(Array(text.utf8)) } catch { #expect(error.reason == reason) }
    }
}

@Suite struct FastPathTests {
    @Test(arguments: [
        #"{"jsonrpc":"2.0","id":1,"method":"storage.get","params":{"key":"a"}}"#,
        #" { "method" : "log.write" , "jsonrpc" : "2.0" , "params" : [ 1 , { "x" : "}" } ] , "id" : "s-1" } "#,
        #"{"jsonrpc":"2.0","id":null,"method":"a.b"}"#,
        #"{"jsonrpc":"2.0","id":-0,"method":"a.b","params":{}}"#,
        #"{"jsonrpc":"2.0","id":123456789012345678,"method":"a.b"}"#,
    ])
    func agreesWithTheGeneralPath(_ text: String) throws {
        let bytes = Array(text.utf8)
        let fast = try #require(bytes.withUnsafeBufferPointer { RPCCodec.decodeRequestFast($0) })
        let slow = try bytes.withUnsafeBufferPointer { RPCCodec.parse($0).flatMap(RPCCodec.decodeRequest) }.get()
        #expect(fast.id == slow.id && fast.method == slow.method && fast.params == slow.params)
    }

    @Test(arguments: [
        #"{"jsonrpc":"2.0","id":1.5,"method":"a.b"}"#,
        #"{"jsonrpc":"2.0","id":01,"method":"a.b"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"a\u002eb"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"a.b","method":"c.d"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"a.b","params":{"a":1,"a":2}}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"a.b"} x"#,
        #"{"jsonrpc":"2.0","id":1,"method":"a.b","extra":1}"#,
        #"{"x":1,"jsonrpc":"2.0","id":5,"method":"system.info"}"#,
        #"{"id":1,"method":"a.b"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"a.b","params":"x"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"é.b"}"#,
    ])
    func declinesAnythingUnusual(_ text: String) {
        #expect(Array(text.utf8).withUnsafeBufferPointer { RPCCodec.decodeRequestFast($0) } == nil)
    }

    @Test func writerMatchesTheSharedWriter() throws {
        let v = try JSONValue.parse(#"{"a":"x\"y\\z\n\u0001é😀","b":[1,-2,3.5,true,null,{}],"c":-9223372036854775808}"#)
        var out: [UInt8] = []
        FastJSONWriter.write(v, into: &out)
        #expect(out == v.serialized())
    }
}
