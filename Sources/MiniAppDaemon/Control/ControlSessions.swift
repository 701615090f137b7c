import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization

/// The open control connections. Built before the supervisor and the control server: the
/// supervisor's and the updates' notifications (`program.exited`, …) go to every connection,
/// and the server enters and removes them as they open and close.
final class ControlSessions: Sendable {
    private let open = Mutex<[UInt64: ControlConnectionPeer]>([:])
    /// Set by `closeAfterFlush`: from then on every closed connection signals `closedOne`.
    private let draining = Atomic<Bool>(false)
    private let closedOne = CountingSemaphore()

    func opened(_ peer: ControlConnectionPeer) { open.withLock { $0[peer.connectionId] = peer } }

    func closed(_ peer: ControlConnectionPeer) {
        _ = open.withLock { $0.removeValue(forKey: peer.connectionId) }
        if draining.load(ordering: .sequentiallyConsistent) { closedOne.signal() }
    }

    /// Sends a notification to every control connection (any thread).
    func broadcast(method: String, params: JSONValue) {
        var line: [UInt8] = []
        RPCCodec.writeNotification(method: method, params: params, into: &line)
        for s in open.withLock({ Array($0.values) }) { s.connection?.send(line) }
    }

    /// Closes every connection now, dropping unsent output.
    func closeAll() {
        for s in open.withLock({ Array($0.values) }) { s.connection?.close() }
    }

    /// Shutdown: stops reading, and closes each connection once what is queued for it has been
    /// sent — the `program.exited {reason: daemon-shutdown}` of every worker among it, which a
    /// host that was slow to read must still get. A peer that has not read everything by
    /// `deadline` (monotonic ns) is cut off, so shutdown stays bounded.
    func closeAfterFlush(deadline: UInt64) {
        draining.store(true, ordering: .sequentiallyConsistent)
        // Queued on the loop after every notification already broadcast (execute is FIFO).
        for s in open.withLock({ Array($0.values) }) { s.connection?.closeAfterFlush() }
        while !open.withLock({ $0.isEmpty }) {
            if !closedOne.wait(untilMonotonicNanos: deadline) { break }
        }
        closeAll()
    }
}
