import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import Testing

/// Every malformed input is answered with the right code on the offending connection, the
/// connection stays usable where the line could be delimited, and another worker keeps being
/// served throughout.
@Suite struct MalformedInputTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var bytes: [UInt8]
        var code: String
        var id: JSONValue
        var description: String { name }
        init(_ name: String, _ text: String, _ code: String, id: JSONValue = .null) {
            self.name = name
            self.bytes = Array(text.utf8)
            self.code = code
            self.id = id
        }
        init(_ name: String, bytes: [UInt8], _ code: String, id: JSONValue = .null) {
            self.name = name
            self.bytes = bytes
            self.code = code
            self.id = id
        }
    }

    static let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)

    static let cases: [Case] = [
        Case("not JSON", "hello", "PARSE_ERROR"),
        Case("truncated object", "{", "PARSE_ERROR"),
        Case("trailing comma", #"{"jsonrpc":"2.0","id":1,"method":"storage.get",}"#, "PARSE_ERROR"),
        Case("empty line", "", "PARSE_ERROR"),
        Case("whitespace line", "   \t", "PARSE_ERROR"),
        Case("two values on a line", #"{"jsonrpc":"2.0","id":1,"method":"storage.get"} {}"#, "PARSE_ERROR"),
        Case("duplicate key", #"{"jsonrpc":"2.0","id":10,"method":"storage.get","method":"net.request"}"#, "PARSE_ERROR"),
        Case("deep nesting", #"{"jsonrpc":"2.0","id":14,"method":"storage.get","params":{"a":\#(deep)}}"#, "PARSE_ERROR"),
        Case("invalid UTF-8", bytes: Array(#"{"jsonrpc":"2.0","id":15,"method":"storage.get"#.utf8) + [0xFF, 0x22, 0x7D], "PARSE_ERROR"),
        Case("overlong UTF-8", bytes: Array(#"{"jsonrpc":"2.0","id":15,"method":""#.utf8) + [0xC0, 0xAF, 0x22, 0x7D], "PARSE_ERROR"),
        Case("NUL in string", bytes: Array(#"{"jsonrpc":"2.0","id":16,"method":"stor"#.utf8) + [0] + Array(#"age.get"}"#.utf8), "PARSE_ERROR"),
        Case("NUL between tokens", bytes: Array(#"{"jsonrpc":"2.0","id":16,"#.utf8) + [0] + Array(#""method":"storage.get"}"#.utf8), "PARSE_ERROR"),
        Case("UTF-8 BOM", bytes: [0xEF, 0xBB, 0xBF] + Array(#"{"jsonrpc":"2.0","id":1,"method":"storage.get"}"#.utf8), "PARSE_ERROR"),
        Case("empty batch", "[]", "INVALID_REQUEST"),
        Case("batch", #"[{"jsonrpc":"2.0","id":1,"method":"storage.get"},{"jsonrpc":"2.0","id":2,"method":"storage.get"}]"#, "INVALID_REQUEST"),
        Case("number", "42", "INVALID_REQUEST"),
        Case("string", #""storage.get""#, "INVALID_REQUEST"),
        Case("null", "null", "INVALID_REQUEST"),
        Case("missing jsonrpc", #"{"id":1,"method":"storage.get"}"#, "INVALID_REQUEST", id: 1),
        Case("wrong jsonrpc version", #"{"jsonrpc":"1.0","id":2,"method":"storage.get"}"#, "INVALID_REQUEST", id: 2),
        Case("jsonrpc as number", #"{"jsonrpc":2.0,"id":3,"method":"storage.get"}"#, "INVALID_REQUEST", id: 3),
        Case("missing method", #"{"jsonrpc":"2.0","id":4}"#, "INVALID_REQUEST", id: 4),
        Case("method not a string", #"{"jsonrpc":"2.0","id":5,"method":42}"#, "INVALID_REQUEST", id: 5),
        Case("empty method", #"{"jsonrpc":"2.0","id":"e","method":""}"#, "INVALID_REQUEST", id: "e"),
        Case("id object", #"{"jsonrpc":"2.0","id":{"a":1},"method":"storage.get"}"#, "INVALID_REQUEST"),
        Case("id array", #"{"jsonrpc":"2.0","id":[1],"method":"storage.get"}"#, "INVALID_REQUEST"),
        Case("id boolean", #"{"jsonrpc":"2.0","id":true,"method":"storage.get"}"#, "INVALID_REQUEST"),
        Case("id too long", #"{"jsonrpc":"2.0","id":"\#(String(repeating: "i", count: 300))","method":"storage.get"}"#, "INVALID_REQUEST"),
        Case("params string", #"{"jsonrpc":"2.0","id":6,"method":"storage.get","params":"theme"}"#, "INVALID_REQUEST", id: 6),
        Case("params number", #"{"jsonrpc":"2.0","id":6,"method":"storage.get","params":1}"#, "INVALID_REQUEST", id: 6),
        Case("params array", #"{"jsonrpc":"2.0","id":7,"method":"storage.get","params":["theme"]}"#, "INVALID_PARAMS", id: 7),
        Case("params of wrong shape", #"{"jsonrpc":"2.0","id":8,"method":"storage.get","params":{"key":5}}"#, "INVALID_PARAMS", id: 8),
        Case("unknown method", #"{"jsonrpc":"2.0","id":9,"method":"no.such"}"#, "METHOD_NOT_FOUND", id: 9),
        Case("reserved rpc method", #"{"jsonrpc":"2.0","id":9,"method":"rpc.discover"}"#, "METHOD_NOT_FOUND", id: 9),
        Case("unknown member", #"{"jsonrpc":"2.0","id":12,"method":"storage.get","caller":"com.other"}"#, "INVALID_REQUEST", id: 12),
        Case("unknown member before the id", #"{"x":1,"jsonrpc":"2.0","id":5,"method":"system.info"}"#, "INVALID_REQUEST", id: 5),
        Case("unknown member first, string id last", #"{"caller":"com.other","method":"storage.get","jsonrpc":"2.0","id":"s-1"}"#, "INVALID_REQUEST", id: "s-1"),
        Case("unknown member and an invalid id", #"{"x":1,"jsonrpc":"2.0","id":{"a":1},"method":"system.info"}"#, "INVALID_REQUEST"),
        Case("response with unknown id", #"{"jsonrpc":"2.0","id":13,"result":{}}"#, "INVALID_REQUEST", id: 13),
        Case("request with error member", #"{"jsonrpc":"2.0","id":18,"method":"storage.get","error":{}}"#, "INVALID_REQUEST", id: 18),
    ]

    @Test(arguments: cases)
    func answeredWithTheRightCode(_ c: Case) throws {
        let h = try Harness()
        let bad = try h.worker("w-bad")
        let good = try h.worker("w-good", program: "com.partner.good")
        try bad.sendRaw(c.bytes + [0x0A])
        let answer = try bad.readJSON()
        #expect(answer.errorCode == c.code, "\(c.name): \(answer.jsonString)")
        #expect(answer["id"] == c.id, "\(c.name): \(answer.jsonString)")
        #expect(answer["jsonrpc"] == "2.0")
        if let n = answer["error"]?["code"]?.intValue {
            #expect(n == Int64(ErrorCode(rawValue: c.code).rpcNumber))
        }
        // The offending connection stays usable, and the other worker is served.
        #expect(try bad.call(100, "storage.get", #"{"key":"theme"}"#).isResult)
        #expect(try good.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
        let counters = h.broker.counters()
        #expect(counters.errorsByCode[c.code] == 1)
    }

    @Test func corpusIsLargeEnough() { #expect(Self.cases.count >= 25) }

    @Test func hugeFrameIsRefusedAndTheConnectionClosed() throws {
        let h = try Harness(configuration: BrokerConfiguration(maxMessageBytes: 4096))
        let bad = try h.worker("w-bad")
        let good = try h.worker("w-good", program: "com.partner.good")
        let huge = Array(#"{"jsonrpc":"2.0","id":1,"method":"storage.get","params":{"key":""#.utf8)
            + [UInt8](repeating: 0x61, count: 100_000)
        try? bad.sendRaw(huge)  // the daemon may close while we are still writing
        let answer = try bad.readJSON()
        #expect(answer.errorCode == "MESSAGE_TOO_LARGE")
        #expect(answer["error"]?["code"] == -32007)
        #expect(try bad.readsEOF())
        #expect(try good.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
    }

    @Test func unterminatedLastLineIsAnsweredThenClosed() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        try w.sendRaw(Array(#"{"jsonrpc":"2.0","id":1,"method":"storage.get","params":{"key":"theme"}}"#.utf8))
        w.shutdownWrite()
        let answer = try w.readJSON()
        #expect(answer["result"]?["value"] == "dark")
        #expect(try w.readsEOF())
    }

    @Test func unterminatedGarbageAtEOFIsAParseError() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        try w.sendRaw(Array(#"{"jsonrpc":"2.0","id":1,"#.utf8))
        w.shutdownWrite()
        #expect(try w.readJSON().errorCode == "PARSE_ERROR")
        #expect(try w.readsEOF())
    }

    @Test func notificationsGetNoAnswerEvenWhenWrong() throws {
        let h = try Harness()
        let w = try h.worker("w-1")
        try w.sendLine(#"{"jsonrpc":"2.0","method":"no.such"}"#)
        try w.sendLine(#"{"jsonrpc":"2.0","method":"net.request"}"#)
        try w.sendLine(#"{"jsonrpc":"2.0","method":"storage.set","params":{"key":"n","value":1}}"#)
        // The first answer is the one to this call: nothing was sent for the notifications.
        let a = try w.call(7, "storage.get", #"{"key":"n"}"#)
        #expect(a["id"] == 7 && a["result"]?["value"] == 1)
    }

    @Test func floodFromOneWorkerDoesNotStarveAnother() throws {
        let h = try Harness()
        let flood = try h.worker("w-flood")
        let good = try h.worker("w-good", program: "com.partner.good")
        var burst: [UInt8] = []
        for i in 0..<5000 { burst += Array(#"{"jsonrpc":"2.0","id":\#(i),"method":"storage.get","params":{"key":"theme"}}"#.utf8) + [0x0A] }
        try flood.sendRaw(burst)
        #expect(try good.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
        var answered = 0, limited = 0
        for _ in 0..<5000 {
            let a = try flood.readJSON()
            if a.isResult { answered += 1 } else if a.errorCode == "RATE_LIMITED" { limited += 1 }
        }
        #expect(answered + limited == 5000)
        #expect(answered >= 2000)  // the storage class burst of policies/methods.json
    }

    @Test func aWorkerThatDoesNotReadIsCutOffNotWaitedFor() throws {
        let h = try Harness(configuration: BrokerConfiguration(maxQueuedOutputBytes: 64 << 10))
        let stuck = try h.worker("w-stuck")
        let good = try h.worker("w-good", program: "com.partner.good")
        // Events pile up in the daemon because the worker never reads them.
        let big: JSONValue = .string(String(repeating: "e", count: 8000))
        for _ in 0..<200 { h.broker.sendEvent(workerId: "w-stuck", name: "spam", data: big) }
        h.settle()
        #expect(try good.call(1, "storage.get", #"{"key":"theme"}"#).isResult)
        #expect(h.broker.counters().bridgeCallsByWorker["w-stuck"] == nil)
        _ = stuck
    }
}

@Suite struct DeferredConsumeTests {
    /// Bytes the worker sent that the daemon has not consumed yet (SIOCOUTQ on a Unix socket:
    /// the send buffer still charged to the sender).
    static func unconsumed(_ w: Peer) -> Int {
        var n: Int32 = -1
        return ioctl(w.fd, UInt(TIOCOUTQ), &n) == 0 ? Int(n) : -1
    }

    /// Both ways of reading: peeked and consumed after answering (`deferConsume`), or read at
    /// once (the broker's default).
    static func harness(deferConsume: Bool) throws -> Harness {
        var configuration = BrokerConfiguration()
        configuration.deferConsume = deferConsume
        return try Harness(configuration: configuration)
    }

    /// Requests are consumed within the loop turn that answers them (peeked ones right after
    /// their answers are sent): input left unconsumed keeps the socket readable, and the
    /// level-triggered loop would spin on it. Pipelined requests read together are consumed
    /// together.
    @Test(arguments: [1, 5], [true, false])
    func answeredRequestsAreConsumedInTheSameTurn(pipelined: Int, deferConsume: Bool) throws {
        let h = try Self.harness(deferConsume: deferConsume)
        let w = try h.worker("w-1")
        for i in 1...pipelined {
            try w.sendLine(#"{"jsonrpc":"2.0","id":\#(i),"method":"storage.get","params":{"key":"theme"}}"#)
        }
        for _ in 1...pipelined {
            let a = try #require(try w.readLine())
            #expect(a.contains(#""result""#))
        }
        h.settle()
        #expect(Self.unconsumed(w) == 0)
        let a = try w.call(99, "storage.get", #"{"key":"theme"}"#)
        #expect(a["id"] == 99 && a.isResult)
        h.settle()
        #expect(Self.unconsumed(w) == 0)
    }

    /// A peer with a tiny send buffer that keeps sending without reading its answers must not
    /// stall forever: what the daemon has answered no longer charges that buffer.
    @Test(arguments: [true, false]) func tinySendBufferAndManyMessagesDoNotDeadlock(deferConsume: Bool) throws {
        let h = try Self.harness(deferConsume: deferConsume)
        let w = try h.worker("w-1")
        var size: Int32 = 4096
        setsockopt(w.fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(w.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        for _ in 0..<1500 {
            try w.sendLine(#"{"jsonrpc":"2.0","method":"storage.get","params":{"key":"theme"}}"#)
        }
        let a = try w.call(1, "storage.get", #"{"key":"theme"}"#)
        #expect(a["id"] == 1 && a.isResult)
    }
}
