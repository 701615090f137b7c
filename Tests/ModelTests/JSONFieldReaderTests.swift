import MiniAppJSON
import MiniAppModel
import Testing

/// The one JSON-field reader: what it refuses, the path it names, and how each document's
/// callers turn its problems into their own stable codes.
@Suite struct JSONFieldReaderTests {
    typealias Reader = JSONFieldReader<JSONFieldError>

    static func reader(_ text: String, rules: JSONFieldRules = .init()) throws -> Reader {
        try Reader(JSONValue.parse(text), path: "doc", rules: rules, errors: { $0 })
    }

    /// Reads one member the way a caller would; returns the problem, or nil when it was read.
    static func problem(_ read: (Reader) throws -> Void, _ text: String, rules: JSONFieldRules = .init()) throws -> JSONFieldError? {
        let r = try reader(text, rules: rules)
        do { try read(r) } catch let e as JSONFieldError { return e }
        return nil
    }

    struct Row: Sendable, CustomStringConvertible {
        var name: String
        var text: String
        var read: @Sendable (Reader) throws -> Void
        var kind: JSONFieldError.Kind
        var path: String
        var says: String
        var rules = JSONFieldRules()
        var description: String { name }
    }

    static let rows: [Row] = [
        Row(name: "string: number", text: #"{"a":5}"#, read: { _ = try $0.require("a").string() }, kind: .wrongType, path: "doc.a", says: "must be a string, not number"),
        Row(name: "string: missing", text: #"{}"#, read: { _ = try $0.require("a").string() }, kind: .missing, path: "doc.a", says: "is required"),
        Row(name: "string: empty", text: #"{"a":""}"#, read: { _ = try $0.require("a").string(nonEmpty: true) }, kind: .invalid, path: "doc.a", says: "non-empty"),
        Row(name: "bool: string", text: #"{"a":"yes"}"#, read: { _ = try $0.bool("a", default: false) }, kind: .wrongType, path: "doc.a", says: "must be true or false, not string"),
        Row(name: "int: fraction", text: #"{"a":1.5}"#, read: { _ = try $0.int("a", default: nil, in: 0...9) }, kind: .wrongType, path: "doc.a", says: "must be an integer"),
        Row(name: "int: out of range", text: #"{"a":10}"#, read: { _ = try $0.int("a", default: nil, in: 0...9) }, kind: .outOfRange, path: "doc.a", says: "is 10, outside 0…9"),
        Row(name: "int: negative", text: #"{"a":-1}"#, read: { _ = try $0.require("a").int(in: 0...9 as ClosedRange<Int>) }, kind: .outOfRange, path: "doc.a", says: "outside"),
        Row(name: "number: string", text: #"{"a":"1"}"#, read: { _ = try $0.number("a", default: nil, in: 0...1) }, kind: .wrongType, path: "doc.a", says: "must be a number"),
        Row(name: "strings: not an array", text: #"{"a":"x"}"#, read: { _ = try $0.strings("a", default: []) }, kind: .wrongType, path: "doc.a", says: "must be an array of strings, not string"),
        Row(name: "strings: element path", text: #"{"a":["x",7]}"#, read: { _ = try $0.strings("a", default: []) }, kind: .wrongType, path: "doc.a[1]", says: "must be a string, not number"),
        Row(name: "nested path", text: #"{"a":{"b":{"c":true}}}"#, read: { _ = try $0.child("a")?.child("b")?.int("c", default: nil, in: 0...1) }, kind: .wrongType, path: "doc.a.b.c", says: "must be an integer, not bool"),
        Row(name: "string map value", text: #"{"h":{"X-A":1}}"#, read: { _ = try $0.stringMap("h") }, kind: .wrongType, path: "doc.h.X-A", says: "must be a string, not number"),
        Row(name: "object: array", text: #"{"a":[]}"#, read: { _ = try $0.child("a") }, kind: .wrongType, path: "doc.a", says: "must be an object, not array"),
        Row(name: "extra member", text: #"{"a":1,"b":2}"#, read: { try $0.rejectUnknown(["a"]) }, kind: .unknownMember, path: "doc.b", says: "is not a known member (allowed: a)"),
        Row(name: "remark not allowed", text: #"{"comment":"x"}"#, read: { try $0.rejectUnknown(["a"]) }, kind: .unknownMember, path: "doc.comment", says: "not a known member"),
        Row(
            name: "remark must be a string", text: #"{"a":{"comment":{"pids":8}}}"#, read: { _ = try $0.child("a") }, kind: .wrongType,
            path: "doc.a.comment", says: "a reviewer's remark", rules: .policy),
        Row(
            name: "null refused where null is not absent", text: #"{"a":null}"#, read: { _ = try $0.require("a").string() }, kind: .wrongType,
            path: "doc.a", says: "must be a string, not null", rules: JSONFieldRules(nullIsAbsent: false)),
    ]

    @Test(arguments: rows)
    func refuses(_ row: Row) throws {
        let e = try #require(try Self.problem(row.read, row.text, rules: row.rules), "\(row.name) was read")
        #expect(e.kind == row.kind, "\(row.name): \(e)")
        #expect(e.path == row.path, "\(row.name): \(e)")
        #expect(e.problem.contains(row.says), "\(row.name): \(e)")
    }

    @Test func readsWhatIsThere() throws {
        let r = try Self.reader(#"{"s":"x","b":true,"i":7,"n":0.5,"l":["a","b"],"m":{"k":"v"},"z":null,"comment":"remark"}"#, rules: .policy)
        try r.rejectUnknown(["s", "b", "i", "n", "l", "m", "z"])
        #expect(try r.string("s") == "x")
        #expect(try r.bool("b", default: false))
        #expect(try r.int("i", default: nil, in: 0...9) == 7)
        #expect(try r.number("n", default: nil, in: 0...1) == 0.5)
        #expect(try r.strings("l", default: []) == ["a", "b"])
        #expect(try r.stringMap("m").map { "\($0.0)=\($0.1)" } == ["k=v"])
        #expect(try r.string("z", default: "d") == "d", "null is absent here")
        #expect(try r.int("absent", default: 3, in: 0...9) == 3)
        #expect(r.members.map(\.key) == ["s", "b", "i", "n", "l", "m", "z"], "the remark is not a member")
    }

    /// Each document keeps its own stable code, and its message names the field.
    @Test func eachDocumentKeepsItsCode() throws {
        let policy = #expect(throws: MiniAppError.self) { try PolicyFieldReader(policy: ["limits": ["pids": "8"]], path: "").child("limits")?.int("pids", default: nil, in: 1...10) }
        #expect(policy?.code == .policyInvalid)
        #expect(policy?.message.contains("policy field 'limits.pids' must be an integer") == true, "\(policy?.message ?? "")")
        #expect(policy?.data["field"] == "limits.pids")

        var config = DaemonConfig()
        let c = #expect(throws: ConfigError.self) { try config.apply(file: ["prewarm": ["maxWorkers": "4"]]) }
        #expect(c?.field == "prewarm.maxWorkers")

        let manifest = #expect(throws: MiniAppError.self) { try Manifest(object: ["id": 5]) }
        #expect(manifest?.code == .manifestInvalid)
        #expect(manifest?.message == "manifest.json field \"id\" must be a string, not number")
        let missing = #expect(throws: MiniAppError.self) { try Manifest(object: [:]) }
        #expect(missing?.message == "manifest.json is missing required field \"id\"")
        let extra = #expect(throws: MiniAppError.self) { try Manifest(object: ["idd": "x"]) }
        #expect(extra?.message.contains("has unknown field \"idd\"") == true)

        let partner = #expect(throws: MiniAppError.self) { try PartnerRegistration(object: ["id": "com.p", "idPrefixes": [1]], source: "p.json") }
        #expect(partner?.code == .partnerInvalid)
        #expect(partner?.message.contains("member \"idPrefixes[0]\" must be a string") == true, "\(partner?.message ?? "")")

        let catalogue = #expect(throws: CatalogueError.self) { try MethodCatalogue.parse(Array(#"{"version":1,"permissions":[]}"#.utf8)) }
        #expect(catalogue?.reason == .wrongType)
        #expect(catalogue?.path == "permissions")
    }
}
