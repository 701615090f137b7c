#if canImport(Glibc)
import Glibc
#endif
import CNetShims

extension Reactor {
    /// Serves `fd` as a line-framed connection: makes it non-blocking, registers it on the loop
    /// and reports to `handler` (on the loop thread) from then on. Safe from any thread; the
    /// connection is usable (`send`) at once, sends made before registration are queued in order.
    ///
    /// - Parameters:
    ///   - fd: the connected stream socket; ownership passes to the connection.
    ///   - peer: the peer's credentials if known (e.g. from `UnixSocket.peerCredentials`).
    ///   - limits: message and output-queue limits.
    ///   - handler: receives lines and lifecycle events on the loop thread.
    public func adopt(
        _ fd: consuming OwnedFD, peer: PeerCredentials? = nil, limits: LineConnection.Limits = .init(),
        handler: any LineHandler
    ) throws(SystemError) -> LineConnection {
        try UnixSocket.setNonBlocking(fd.raw)
        let conn = LineConnection(fd: fd.take(), reactor: self, peer: peer, limits: limits, handler: handler)
        if isInLoopThread {
            conn.open()
        } else {
            execute { conn.open() }
        }
        return conn
    }

    /// Accepts connections on a listening socket (e.g. from `UnixSocket.listen`). For each peer,
    /// `accept` runs on the loop thread with the peer's `SO_PEERCRED` credentials and returns
    /// the handler to serve it with, or nil to close it at once. To refuse politely (spec:
    /// "anyone else gets one error reply and is disconnected") return a handler that queues
    /// the error in `connectionDidOpen` and calls `closeAfterFlush()`.
    public func listen(
        _ fd: consuming OwnedFD, limits: LineConnection.Limits = .init(),
        accept: @escaping @Sendable (PeerCredentials) -> (any LineHandler)?
    ) throws(SystemError) -> LineListener {
        try UnixSocket.setNonBlocking(fd.raw)
        let listener = LineListener(fd: fd.take(), reactor: self, limits: limits, accept: accept)
        if isInLoopThread { listener.open() } else { execute { listener.open() } }
        return listener
    }
}

/// A listening socket served by a `Reactor`.
public final class LineListener: @unchecked Sendable {
    private let fd: Int32
    private let reactor: Reactor
    private let limits: LineConnection.Limits
    private let accept: @Sendable (PeerCredentials) -> (any LineHandler)?
    private var token: UInt64 = 0
    private var closed = false

    init(fd: Int32, reactor: Reactor, limits: LineConnection.Limits, accept: @escaping @Sendable (PeerCredentials) -> (any LineHandler)?) {
        self.fd = fd
        self.reactor = reactor
        self.limits = limits
        self.accept = accept
    }

    func open() {
        guard !closed else { return }
        do {
            token = try reactor.register(fd: fd, events: CNET_EPOLLIN, source: self)
        } catch {
            closeNow()
        }
    }

    /// Stops accepting and closes the listening socket. Safe from any thread.
    public func close() {
        if reactor.isInLoopThread { closeNow() } else { reactor.execute { [self] in closeNow() } }
    }

    private func closeNow() {
        guard !closed else { return }
        closed = true
        if token != 0 { reactor.unregister(fd: fd, token: token) }
        _ = Glibc.close(fd)
    }
}

extension LineListener: ReactorSource {
    func handleEvents(_ events: UInt32) {
        // Bounded batch per wake-up so a connect flood cannot monopolise the loop.
        for _ in 0..<32 {
            guard !closed else { return }
            let accepted: OwnedFD?
            do { accepted = try UnixSocket.accept(fd) } catch { return }
            guard let conn = accepted else { return }
            guard let creds = try? UnixSocket.peerCredentials(conn.raw) else { continue }
            guard let handler = accept(creds) else { continue }
            _ = try? reactor.adopt(conn, peer: creds, limits: limits, handler: handler)
        }
    }

    func reactorDidStop() { closeNow() }
}
