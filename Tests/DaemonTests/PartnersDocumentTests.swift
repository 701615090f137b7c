import MiniAppDaemon
import MiniAppJSON
import Testing

@Suite struct PartnersDocumentTests {
    @Test func statementIsCanonicalWithoutSignature() throws {
        let doc = try PartnersDocument.parse(Array("""
            {"signature":"rsa-pss-sha256:AA==","partners":[{"permissions":["network"],"id":"com.p"}],"issuedAt":"2026-11-25T10:00:00Z"}
            """.utf8))
        #expect(String(decoding: doc.statement, as: UTF8.self)
            == "miniapp-partners-v1\n{\"issuedAt\":\"2026-11-25T10:00:00Z\",\"partners\":[{\"id\":\"com.p\",\"permissions\":[\"network\"]}]}\n")
        #expect(doc.issuedAt == 1_795_600_800)  // date -u -d 2026-11-25T10:00:00Z +%s
    }

    @Test func olderDocumentsAreRefused() throws {
        let new = try PartnersDocument.parse(Array(#"{"issuedAt":200,"partners":[],"signature":"rsa-pss-sha256:x"}"#.utf8))
        let old = try PartnersDocument.parse(Array(#"{"issuedAt":100,"partners":[],"signature":"rsa-pss-sha256:x"}"#.utf8))
        #expect(!old.isAcceptable(after: new))
        #expect(new.isAcceptable(after: old))
        #expect(new.isAcceptable(after: nil))
    }

    @Test(arguments: [
        #"[]"#, #"{"issuedAt":1,"partners":[]}"#, #"{"issuedAt":1,"partners":{},"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":"yesterday","partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":-5,"partners":[],"signature":"rsa-pss-sha256:x"}"#,
        #"{"issuedAt":1,"partners":[],"signature":"pkcs1:x"}"#,
        #"{"issuedAt":1,"issuedAt":2,"partners":[],"signature":"rsa-pss-sha256:x"}"#,
    ])
    func malformedDocumentsAreRefused(_ text: String) {
        #expect(throws: (any Error).self) { try PartnersDocument.parse(Array(text.utf8)) }
    }

    @Test func registryVersionDocument() throws {
        let v = try RegistryVersion.parse(
            Array(#"{"id":"com.p.a","version":"1.2.0","minHostVersion":"1.0.0","url":"/pkgs/a.zip","sha256":"\#(String(repeating: "ab", count: 32))","size":10}"#.utf8),
            expectedId: "com.p.a", base: "http://127.0.0.1:8080/reg")
        #expect(v.url == "http://127.0.0.1:8080/pkgs/a.zip")
        let rel = try RegistryVersion.parse(
            Array(#"{"id":"com.p.a","version":"1.2.0","minHostVersion":"1.0.0","url":"a.zip","sha256":"\#(String(repeating: "ab", count: 32))","size":10}"#.utf8),
            expectedId: "com.p.a", base: "http://127.0.0.1:8080/reg/")
        #expect(rel.url == "http://127.0.0.1:8080/reg/a.zip")
        #expect(throws: (any Error).self) {
            try RegistryVersion.parse(
                Array(#"{"id":"com.p.a","version":"1","minHostVersion":"1","url":"file:///etc/passwd","sha256":"\#(String(repeating: "ab", count: 32))","size":1}"#.utf8),
                expectedId: "com.p.a", base: "http://x")
        }
        #expect(throws: (any Error).self) {
            try RegistryVersion.parse(Array(#"{"id":"com.other","version":"1","minHostVersion":"1","url":"a","sha256":"00","size":1}"#.utf8), expectedId: "com.p.a", base: "http://x")
        }
    }
}
