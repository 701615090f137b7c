import Foundation
import MiniAppJSON
import MiniAppTestSupport

/// The host-SDK tests' world: the e2e partner's policies (with `payment.pay` timing out after
/// 1.5 s, so a test can see the daemon give up on a host call), and two signed programs.
final class HostSDKWorld {
    let world: E2EWorld
    let payId = E2EPartner.programId("pay")
    let stubbornId = E2EPartner.programId("stubborn")
    let payZip: String
    let stubbornZip: String

    /// Node: calls `payment.pay {orderId: argv[2]}` and exits 0 when the answer is
    /// `{transactionId: "tx-<orderId>"}`, 4 on `TIMEOUT`, 5 on another error, 3 on a wrong answer.
    static let payProgram = """
        const orderId = process.argv[2] || 'o-1';
        MiniAppBridge.call('payment.pay', { orderId, amount: 5, currency: 'EUR' })
          .then((r) => process.exit(r && r.transactionId === 'tx-' + orderId ? 0 : 3))
          .catch((e) => process.exit(e.code === 'TIMEOUT' ? 4 : 5));
        """

    /// Native: ignores SIGTERM, says so with a `ui.toast` ("ready"), and blocks on its Bridge
    /// socket, so `programs.stop` waits its whole grace before the SIGKILL (a control call that
    /// stays in flight). A host stops it only after the toast: before the trap, TERM would end it.
    static let stubbornProgram = """
        #!/bin/sh
        trap '' TERM
        printf '{"jsonrpc":"2.0","id":1,"method":"ui.toast","params":{"message":"ready"}}\\n' >&3
        while read -r line <&3; do :; done
        sleep 3600
        """

    init() throws {
        world = try E2EWorld()
        let methods = world.policyDir + "/methods.json"
        var text = try String(contentsOfFile: methods, encoding: .utf8)
        text = text.replacingOccurrences(
            of: #"("payment.pay":[^\n]*"timeoutMillis": )[0-9]+"#, with: "$11500", options: .regularExpression)
        guard text.range(of: #""payment.pay":[^\n]*"timeoutMillis": 1500[ ,}]"#, options: .regularExpression) != nil else {
            throw HarnessError("methods.json: payment.pay not found")
        }
        try text.write(toFile: methods, atomically: true, encoding: .utf8)
        payZip = try world.package(
            E2EWorld.manifest(id: payId, entry: "main.js", permissions: ["payment"]), files: ["main.js": Self.payProgram])
        stubbornZip = try world.package(
            E2EWorld.manifest(id: stubbornId, entry: "main.sh", permissions: ["ui"]), files: ["main.sh": Self.stubbornProgram])
    }

    /// The environment the Python and Node test scripts read.
    func scriptEnvironment() -> [String: String] {
        [
            "MINIAPPD": productsDirectory() + "/miniappd", "MINIAPP_POLICY_DIR": world.policyDir, "MINIAPP_PAY_ZIP": payZip,
            "MINIAPP_PAY_ID": payId, "MINIAPP_STUBBORN_ZIP": stubbornZip, "MINIAPP_STUBBORN_ID": stubbornId,
            "MINIAPP_WORK_DIR": world.dir.path,
        ]
    }
}

/// The far side of a control connection for the malformed-daemon cases: a Unix socket in a
/// temp dir whose one connection gets `script`'s lines. The real daemon is tested separately.
final class FakeDaemon: @unchecked Sendable {
    let dir: TempDir
    let path: String
    private let listener: Int32
    /// Lines the client sent, in order.
    private(set) var received: [String] = []
    private let lock = NSLock()

    /// `script(line, send)`: called for every line the client sends; `send(nil)` closes.
    init(script: @escaping @Sendable (String, (String?) -> Void) -> Void, greeting: [String] = []) throws {
        dir = try TempDir("fake")
        path = dir.file("c.sock")
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(listener, 4) == 0 else { throw HarnessError("fake daemon: bind/listen \(errno)") }
        let fd = listener
        Thread.detachNewThread { [self] in
            let conn = accept(fd, nil, nil)
            guard conn >= 0 else { return }
            var open = true
            let send: (String?) -> Void = { line in
                guard open else { return }
                guard let line else {
                    shutdown(conn, Int32(SHUT_RDWR))
                    open = false
                    return
                }
                let bytes = Array((line + "\n").utf8)
                _ = bytes.withUnsafeBytes { Glibc.send(conn, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            for g in greeting { send(g) }
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while open {
                let n = recv(conn, &chunk, chunk.count, 0)
                if n <= 0 { break }
                buffer += chunk[0..<n]
                while let nl = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    lock.withLock { received.append(line) }
                    script(line, send)
                }
            }
            close(conn)
        }
    }

    /// The lines received so far.
    var lines: [String] { lock.withLock { received } }

    deinit { close(listener) }

    /// The `id` of a request line, as JSON text.
    static func id(_ line: String) -> String {
        (try? JSONValue.parse(line))?["id"]?.jsonString ?? "null"
    }
}
