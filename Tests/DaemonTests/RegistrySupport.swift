import Foundation
import Logging
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import MiniAppTestSupport
import Synchronization

/// A static registry on 127.0.0.1 (Fixtures/registry_server.py): the test starts it, writes
/// the files it serves, and stops it (SIGKILL of its own child, by pid).
final class RegistryServer {
    let root: TempDir
    let server: FixtureServer
    var port: Int { server.port }
    var url: String { "http://127.0.0.1:\(port)" }

    init() throws {
        root = try TempDir("reg")
        server = try FixtureServer(["/usr/bin/python3", repositoryRoot() + "/Tests/DaemonTests/Fixtures/registry_server.py", root.path])
    }

    /// Serves `bytes` at `GET /path` from now on.
    func publish(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = root.file(path + ".tmp")
        try Data(bytes).write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, root.file(path)) == 0 else { throw HarnessError("cannot publish \(path)") }
    }

    /// Makes `GET /path` wait `seconds` first (nil: answer at once).
    func delay(_ path: String, _ seconds: Double?) throws {
        if let seconds { try root.write(path + ".delay", "\(seconds)") } else { unlink(root.file(path + ".delay")) }
    }

    /// Makes `GET /path` answer `status` with no document (nil: serve the file).
    func status(_ path: String, _ status: Int?) throws {
        if let status { try root.write(path + ".status", "\(status)") } else { unlink(root.file(path + ".status")) }
    }

    /// The paths requested so far, in order.
    func requests() -> [String] {
        ((try? String(contentsOfFile: root.file(".requests"), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() {
        server.stop()
    }

    deinit { stop() }
}

/// The platform that signs the partners document. 2048-bit keys generated once per test process
/// (test setup, not input); the interop test uses `miniapp keygen` and `openssl` instead.
enum Platform {
    static let key: RSAKey = try! RSAKey.generate(bits: 2048)
    static let impostor: RSAKey = try! RSAKey.generate(bits: 2048)

    /// `{"issuedAt", "partners"}` (unsigned).
    static func document(issuedAt: Int64, _ partners: [PartnerRegistration]) -> JSONObject {
        ["issuedAt": .int(issuedAt), "partners": .array(partners.map(\.json))]
    }

    /// The signed document's bytes, per spec/registry.md.
    static func signed(_ doc: JSONObject, with key: RSAKey = Platform.key) throws -> [UInt8] {
        var d = doc
        d["signature"] = nil
        let statement = Array("miniapp-partners-v1\n".utf8) + (try JSONValue.object(d).canonicalized()) + [0x0A]
        d["signature"] = .string(SignatureField.encode(try RSAPSS.sign(statement, key: key)))
        return JSONValue.object(d).serialized()
    }

    /// Signs with `Fixtures/sign_partners.py` (Python + the openssl CLI) and the PEM key at `keyPath`.
    static func signedWithOpenSSL(_ doc: JSONObject, keyPath: String) throws -> [UInt8] {
        let r = try run(
            ["/usr/bin/python3", repositoryRoot() + "/Tests/DaemonTests/Fixtures/sign_partners.py", keyPath],
            stdin: String(decoding: JSONValue.object(doc).serialized(), as: UTF8.self))
        guard r.status == 0 else { throw HarnessError("sign_partners.py: \(r.stderr)") }
        return Array(r.stdout.utf8)
    }

    /// Writes the platform public key where `--platform-key` can read it.
    static func writePublicKey(_ dir: TempDir, key: RSAKey = Platform.key) throws -> String {
        try dir.write("platform.pub", try key.publicPEM())
    }
}

/// Keeps every log line, so tests can assert what an operator would read.
final class CapturedLog: @unchecked Sendable {
    private let lines = Mutex<[String]>([])

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var logger: Logger {
        Logger(label: "test.partners") { _ in Handler(sink: self) }
    }

    func append(_ s: String) { lines.withLock { $0.append(s) } }

    struct Handler: LogHandler {
        let sink: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { sink.append("\(event.level): \(event.message)") }
    }
}
