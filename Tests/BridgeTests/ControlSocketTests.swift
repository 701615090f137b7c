import Dispatch
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization
import Testing
import MiniAppTestSupport

/// The reactor serving a listening control socket: 0660, peer credentials handed to the accept
/// callback, refused peers get one error answer and are disconnected.
@Suite struct ControlSocketTests {
    /// Answers `ping` with the peer's uid, or refuses everyone when `allow` is false.
    final class EchoCredentials: LineHandler {
        let allow: Bool
        init(allow: Bool) { self.allow = allow }

        func connectionDidOpen(_ connection: LineConnection) {
            guard !allow else { return }
            var out: [UInt8] = []
            RPCCodec.writeError(id: .null, error: MiniAppError(.unauthorized, "not allowed on the control socket"), into: &out)
            connection.send(out)
            connection.closeAfterFlush()
        }

        func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {
            guard case .success(let v) = RPCCodec.parse(line), case .success(let r) = RPCCodec.decodeRequest(v), let id = r.id else { return }
            connection.appendOutput { RPCCodec.writeResult(id: id, result: ["uid": .int(Int64(connection.peer?.uid ?? 99999))], into: &$0) }
        }
    }

    private func tempSocketPath() throws -> (String, String) {
        let dir = try TempDir.makeDirectory("broker-ctl")
        return (dir, dir + "/control.sock")
    }

    @Test func listenerHandsPeerCredentialsToTheHandler() throws {
        let reactor = try Reactor()
        try reactor.start()
        defer { reactor.shutdown() }
        let (dir, path) = try tempSocketPath()
        defer { unlink(path); rmdir(dir) }
        let seen = Mutex<[PeerCredentials]>([])
        let listener = try reactor.listen(try UnixSocket.listen(path: path)) { creds in
            seen.withLock { $0.append(creds) }
            return EchoCredentials(allow: true)
        }
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o660)
        let client = Peer(fd: try UnixSocket.connect(path: path).take())
        let a = try client.call(1, "ping")
        #expect(a["result"]?["uid"] == .int(Int64(getuid())))
        #expect(seen.withLock { $0.first?.pid } == getpid())
        listener.close()
    }

    @Test func refusedPeerGetsOneErrorThenEOF() throws {
        let reactor = try Reactor()
        try reactor.start()
        defer { reactor.shutdown() }
        let (dir, path) = try tempSocketPath()
        defer { unlink(path); rmdir(dir) }
        _ = try reactor.listen(try UnixSocket.listen(path: path)) { _ in EchoCredentials(allow: false) }
        let client = Peer(fd: try UnixSocket.connect(path: path).take())
        let a = try client.readJSON()
        #expect(a.errorCode == "UNAUTHORIZED" && a["error"]?["code"] == -32014)
        #expect(try client.readsEOF())
    }

    @Test func listenRefusesToReplaceARegularFile() throws {
        let (dir, path) = try tempSocketPath()
        defer { unlink(path); rmdir(dir) }
        let fd = try OwnedFD.open(path, O_CREAT | O_WRONLY, mode: 0o600)
        _ = consume fd
        #expect(throws: SystemError.self) { _ = try UnixSocket.listen(path: path) }
    }
}
