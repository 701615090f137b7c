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
    ///
    /// `descriptorReserve`: descriptors kept free for the daemon's own work (launches, stores,
    /// logs). A connection accepted into the last `descriptorReserve` slots of `RLIMIT_NOFILE`
    /// is sent `shed()` (if any) and closed at once, without `accept` being asked.
    public func listen(
        _ fd: consuming OwnedFD, limits: LineConnection.Limits = .init(), descriptorReserve: Int = 0,
        shed: (@Sendable () -> [UInt8])? = nil,
        accept: @escaping @Sendable (PeerCredentials) -> (any LineHandler)?
    ) throws(SystemError) -> LineListener {
        try UnixSocket.setNonBlocking(fd.raw)
        let listener = LineListener(fd: fd.take(), reactor: self, limits: limits, accept: accept)
        listener.descriptorReserve = descriptorReserve
        listener.shed = shed
        if isInLoopThread { listener.open() } else { execute { listener.open() } }
        return listener
    }
}

/// A handler that refuses its peer: the listener sends `refusal` with one non-blocking write
/// and closes the connection at once — no registration, no lingering close, so a flood of
/// refused peers holds no descriptor beyond the instant of its accept.
public protocol ImmediateRefusal: LineHandler {
    /// The complete line(s) to send before closing.
    var refusal: [UInt8] { get }
}

/// A listening socket served by a `Reactor`.
public final class LineListener: @unchecked Sendable {
    private let fd: Int32
    private let reactor: Reactor
    private let limits: LineConnection.Limits
    private let accept: @Sendable (PeerCredentials) -> (any LineHandler)?
    private var token: UInt64 = 0
    private var closed = false
    fileprivate var descriptorReserve = 0
    fileprivate var shed: (@Sendable () -> [UInt8])?
    private var paused = false

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
            guard !closed, !paused else { return }
            let accepted: OwnedFD?
            do {
                accepted = try UnixSocket.accept(fd)
            } catch {
                // EMFILE/ENFILE: the pending connection stays queued and the level-triggered
                // listener would wake the loop again at once, for ever. Stop listening for a
                // moment instead; the backlog bounds what waits meanwhile.
                pause()
                return
            }
            guard let conn = accepted else { return }
            if descriptorReserve > 0 && Int(conn.raw) >= Self.descriptorLimit() - descriptorReserve {
                if let line = shed?() { Self.sendAndClose(conn, line) }
                continue
            }
            guard let creds = try? UnixSocket.peerCredentials(conn.raw) else { continue }
            guard let handler = accept(creds) else { continue }
            if let refused = handler as? any ImmediateRefusal {
                Self.sendAndClose(conn, refused.refusal)
                continue
            }
            _ = try? reactor.adopt(conn, peer: creds, limits: limits, handler: handler)
        }
    }

    private func pause() {
        guard !paused, token != 0 else { return }
        paused = true
        reactor.modify(fd: fd, token: token, events: 0)
        reactor.schedule(afterNanos: 100_000_000) { [self] in
            paused = false
            if !closed { reactor.modify(fd: fd, token: token, events: CNET_EPOLLIN) }
        }
    }

    /// The soft `RLIMIT_NOFILE`. Descriptors are allocated lowest first, so an accepted number
    /// at or above `limit - reserve` means fewer than `reserve` remain free.
    private static func descriptorLimit() -> Int {
        var rl = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0, rl.rlim_cur != rlim_t.max else { return Int.max / 2 }
        return Int(min(rl.rlim_cur, UInt(Int.max / 2)))
    }

    /// One non-blocking write of `line`, then close. What the peer already sent is read and
    /// dropped first (one read): closing over unread input would reset the peer and could
    /// destroy the answer before it is read.
    private static func sendAndClose(_ conn: consuming OwnedFD, _ line: [UInt8]) {
        _ = line.withUnsafeBytes { Glibc.send(conn.raw, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        shutdown(conn.raw, Int32(SHUT_WR))
        var scratch = [UInt8](repeating: 0, count: 4096)
        _ = scratch.withUnsafeMutableBytes { Glibc.recv(conn.raw, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        conn.close()
    }

    func reactorDidStop() { closeNow() }
}
