import Glibc
import MiniAppBroker
import MiniAppModel
import MiniAppSystem
import Testing
import MiniAppTestSupport

/// The listener's and connections' own bounds: the shared budget of partial messages, the
/// descriptor reserve, immediate refusal.
@Suite struct ConnectionBoundsTests {
    final class Silent: LineHandler {
        func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {}
    }

    final class Refuse: ImmediateRefusal {
        let refusal = Array("{\"refused\":true}\n".utf8)
        func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {}
    }

    private func socketPath() throws -> (String, String) {
        let dir = try TempDir.makeDirectory("bounds")
        return (dir, dir + "/s.sock")
    }

    /// Two peers each hold a partial message under their own limit; together they pass the
    /// shared budget: the one whose read crossed it is closed, the other stays.
    @Test func partialMessagesShareOneBudget() throws {
        let reactor = try Reactor()
        try reactor.start()
        defer { reactor.shutdown() }
        let (dir, path) = try socketPath()
        defer { unlink(path); rmdir(dir) }
        let budget = ByteBudget(limit: 1000)
        var limits = LineConnection.Limits(maxLineBytes: 800)
        limits.sharedInputBudget = budget
        _ = try reactor.listen(try UnixSocket.listen(path: path), limits: limits) { _ in Silent() }
        let a = Peer(fd: try UnixSocket.connect(path: path).take())
        try a.sendRaw([UInt8](repeating: 0x61, count: 600))
        #expect(spin { budget.inUse == 600 })
        let b = Peer(fd: try UnixSocket.connect(path: path).take())
        try b.sendRaw([UInt8](repeating: 0x62, count: 600))
        #expect(try b.readsEOF(), "the peer that crossed the budget is closed")
        #expect(spin { budget.inUse == 600 }, "its bytes are released")
        try a.sendRaw([0x0A])
        #expect(spin { budget.inUse == 0 }, "a completed line releases its bytes")
    }

    /// A connection accepted into the descriptor reserve is told why and closed, and the
    /// handler is never asked.
    @Test func descriptorReserveShedsConnections() throws {
        let reactor = try Reactor()
        try reactor.start()
        defer { reactor.shutdown() }
        let (dir, path) = try socketPath()
        defer { unlink(path); rmdir(dir) }
        var rl = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl)
        nonisolated(unsafe) var asked = false
        _ = try reactor.listen(try UnixSocket.listen(path: path), descriptorReserve: Int(rl.rlim_cur), shed: { Array("{\"shed\":true}\n".utf8) }) { _ in
            asked = true
            return Silent()
        }
        let p = Peer(fd: try UnixSocket.connect(path: path).take())
        #expect(try p.readLine() == "{\"shed\":true}")
        #expect(try p.readsEOF())
        #expect(!asked)
    }

    /// An `ImmediateRefusal` handler: its line, then EOF, with no lingering.
    @Test func immediateRefusal() throws {
        let reactor = try Reactor()
        try reactor.start()
        defer { reactor.shutdown() }
        let (dir, path) = try socketPath()
        defer { unlink(path); rmdir(dir) }
        _ = try reactor.listen(try UnixSocket.listen(path: path)) { _ in Refuse() }
        let p = Peer(fd: try UnixSocket.connect(path: path).take())
        #expect(try p.readLine() == "{\"refused\":true}")
        #expect(try p.readsEOF())
    }

    private func spin(_ cond: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if cond() { return true }
            usleep(10_000)
        }
        return cond()
    }
}
