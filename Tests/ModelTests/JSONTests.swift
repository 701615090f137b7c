import Testing
@testable import MiniAppJSON

@Suite struct JSONParserTests {
    @Test(arguments: [
        ("{}", JSONValue.object([:])),
        ("[]", .array([])),
        (" 1 ", .int(1)),
        ("-0", .int(0)),
        ("1.5", .double(1.5)),
        ("1e3", .double(1000)),
        ("\"a\\u00e9\\ud83d\\ude00\"", .string("aé😀")),
        ("{\"a\":[true,false,null]}", .object(["a": .array([.bool(true), .bool(false), .null])])),
        ("9223372036854775807", .int(Int64.max)),
        ("9223372036854775808", .double(9223372036854775808)),
    ])
    func accepts(_ text: String, _ expected: JSONValue) throws {
        #expect(try JSONValue.parse(text) == expected)
    }

    @Test(arguments: [
        ("", JSONError.Reason.empty),
        ("{", .unexpectedEnd),
        ("{\"a\":1,\"a\":2}", .duplicateKey),
        ("[1,]", .unexpectedByte),
        ("01", .trailingData),
        ("1.", .invalidNumber),
        ("-", .invalidNumber),
        ("\"\u{01}\"", .controlCharacter),
        ("\"\\x\"", .invalidEscape),
        ("\"\\ud800\"", .invalidEscape),
        ("\"\\udc00\"", .invalidEscape),
        ("{} {}", .trailingData),
        ("nul", .unexpectedEnd),
        ("tru e", .unexpectedByte),
        ("1e999", .numberOutOfRange),
        ("// c\n1", .unexpectedByte),
        ("{'a':1}", .unexpectedByte),
        ("NaN", .unexpectedByte),
    ])
    func rejects(_ text: String, _ reason: JSONError.Reason) {
        #expect(throws: JSONError.self) { try JSONValue.parse(text) }
        do { _ = try JSONValue.parse(text) } catch { #expect(error.reason == reason, "\(text): \(error)") }
    }

    @Test func rejectsInvalidUTF8() {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22]] {
            #expect(throws: JSONError.self) { try JSONValue.parse(bytes) }
        }
    }

    @Test func depthIsBounded() {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONError(.tooDeep, at: 64)) { try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
    }

    @Test func sizeIsBounded() {
        #expect(throws: JSONError.self) { try JSONValue.parse("[1]", options: .init(maxBytes: 2)) }
    }

    @Test func commentsOnlyInPolicyDialect() throws {
        let text = "// policy\n{\"a\": 1 // why\n}"
        #expect(throws: JSONError.self) { try JSONValue.parse(text) }
        #expect(try JSONValue.parse(text, options: .policy) == ["a": 1])
    }
}

@Suite struct JSONWriterTests {
    @Test func compactKeepsOrder() throws {
        let v = try JSONValue.parse("{\"b\":1,\"a\":\"x\\n\\u0001\"}")
        #expect(v.jsonString == "{\"b\":1,\"a\":\"x\\n\\u0001\"}")
    }

    /// Vectors from RFC 8785 §3.2.2.3 and Appendix B.
    @Test(arguments: [
        (0.0, "0"), (-0.0, "0"), (1e21, "1e+21"), (1e-7, "1e-7"), (123456789012345680000.0, "123456789012345680000"),
        (0.000001, "0.000001"), (4.5, "4.5"), (2e-3, "0.002"), (-1.5e300, "-1.5e+300"), (333333333.3333333, "333333333.3333333"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ])
    func ecmascriptNumbers(_ d: Double, _ expected: String) throws {
        #expect(String(decoding: try JSONValue.double(d).canonicalized(), as: UTF8.self) == expected)
    }

    @Test func canonicalSortsByUTF16AndEscapesMinimally() throws {
        // RFC 8785 §3.2.3 sorting example: UTF-16 order puts U+1F600 (surrogates D83D…) before U+FB33.
        let v: JSONValue = ["\u{FB33}": 1, "😀": 2, "a": "é/\u{7f}", "\r": 3, "1": 4]
        let s = String(decoding: try v.canonicalized(), as: UTF8.self)
        #expect(s == "{\"\\r\":3,\"1\":4,\"a\":\"é/\u{7f}\",\"😀\":2,\"\u{FB33}\":1}")
    }

    @Test func canonicalRefusesNonFinite() {
        #expect(throws: JSONWriteError.self) { try JSONValue.array([.double(.infinity)]).canonicalized() }
    }

    @Test func roundTrip() throws {
        let text = "{\"id\":7,\"m\":[1,2.5,\"\\\"\",{\"x\":null}],\"t\":true}"
        #expect(try JSONValue.parse(text).jsonString == text)
    }
}

@Suite struct JSONEqualityTests {
    @Test func numbersCompareByValue() throws {
        #expect(try JSONValue.parse("2.5e3") == JSONValue.parse("2500"))
        #expect(try JSONValue.parse("2.5e3").hashValue == JSONValue.parse("2500").hashValue)
        #expect(JSONValue.int(1) != .double(1.5))
    }
}
