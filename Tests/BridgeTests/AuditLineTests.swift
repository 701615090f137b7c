@testable import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import Testing

/// The audit line is written directly (no JSON object built on the loop); it must be exactly
/// what the record's JSON object serializes to, for every shape a record can have.
@Suite struct AuditLineTests {
    static func record(method: String?, code: ErrorCode?, time: Int64, params: JSONValue? = nil, result: JSONValue? = nil) -> CallRecord {
        CallRecord(timeMicros: time, workerId: "w-\"1\"\n", programId: "com.partner.ü\u{01}", method: method, decision: code == nil ? .allow : .deny,
                   code: code, micros: 17, bytesIn: 103, bytesOut: 0, params: params, result: result)
    }

    static let cases: [CallRecord] = [
        record(method: "storage.get", code: nil, time: 1_796_126_104_123_456),
        record(method: nil, code: .invalidRequest, time: 0),
        record(method: "a\\b\t\u{1F}", code: .permissionDenied, time: -1), // 1969-12-31T23:59:59.999999Z
        record(method: AuthService.issuedTokenPrefix + "rest", code: .methodNotFound, time: 253_402_300_799_999_999), // 9999-12-31
        record(method: "kv.set", code: nil, time: 42, params: ["key": "k", "value": [1, 2.5, "x"]], result: ["ok": true]),
    ]

    @Test("byte for byte the record's JSON object", arguments: cases.indices)
    func sameBytesAsTheObject(_ i: Int) throws {
        let r = Self.cases[i]
        for payloads in [false, true] {
            var direct: [UInt8] = []
            r.appendJSON(into: &direct, payloads: payloads)
            var viaObject = r
            if !payloads { viaObject.params = nil; viaObject.result = nil }
            var expected: [UInt8] = []
            viaObject.json().write(into: &expected)
            #expect(direct == expected, "\(String(decoding: direct, as: UTF8.self)) vs \(String(decoding: expected, as: UTF8.self))")
            _ = try JSONValue.parse(direct) // and it is valid JSON
        }
    }

    @Test func timeIsRFC3339() {
        #expect(CallRecord.rfc3339(1_796_126_104_123_456) == "2026-12-01T11:55:04.123456Z")
        #expect(CallRecord.rfc3339(-1) == "1969-12-31T23:59:59.999999Z")
    }
}
