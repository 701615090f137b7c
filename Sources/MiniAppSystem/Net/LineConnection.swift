#if canImport(Glibc)
import Glibc
#endif
import CNetShims
import MiniAppModel
import Synchronization

/// What a `LineConnection` tells its owner. Every method runs on the reactor's loop thread.
public protocol LineHandler: AnyObject {
    /// The connection is registered and may be written to.
    func connectionDidOpen(_ connection: LineConnection)
    /// One complete message (newline excluded). `line` is valid only during the call.
    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>)
    /// A message exceeded the size limit. The connection closes once its output is flushed;
    /// this is the moment to queue a `MESSAGE_TOO_LARGE` answer.
    func connection(_ connection: LineConnection, didReceiveOversizeMessage size: Int)
    /// The peer shut down its sending side (EOF). The default closes after flushing output.
    func connectionDidReachEOF(_ connection: LineConnection)
    /// The connection is closed; drop references to it.
    func connectionDidClose(_ connection: LineConnection, reason: LineConnection.CloseReason)
}

extension LineHandler {
    public func connectionDidOpen(_ connection: LineConnection) {}
    public func connection(_ connection: LineConnection, didReceiveOversizeMessage size: Int) {}
    public func connectionDidReachEOF(_ connection: LineConnection) { connection.closeAfterFlush() }
    public func connectionDidClose(_ connection: LineConnection, reason: LineConnection.CloseReason) {}
}

/// A non-blocking, line-framed stream connection served by a `Reactor`: the Bridge socket of a
/// worker, or a control-socket client. Reads are framed with `LineFramer` and handed to the
/// handler in place; writes are buffered per connection and flushed with as few `send(2)`s as
/// possible (all answers produced by one read go out together).
///
/// Backpressure: when more than half of `maxQueuedOutputBytes` is waiting, the connection stops
/// reading (the peer's own writes then block, not the daemon); when the queue would exceed the
/// limit anyway (events, late replies) the peer is disconnected. A peer that does not read can
/// therefore never make the daemon block or grow without bound.
public final class LineConnection: @unchecked Sendable {
    /// Size limits of one connection.
    public struct Limits: Sendable {
        /// Largest message accepted, newline excluded (spec default 1 MiB).
        public var maxLineBytes: Int
        /// Largest amount of unsent output before the peer is disconnected.
        public var maxQueuedOutputBytes: Int
        /// Bytes read per readiness event; bounds how long one busy peer holds the loop.
        public var readChunkBytes: Int
        /// Read with `MSG_PEEK` and consume only once the answers this read produced are sent
        /// (see `consumePeeked`): one more syscall per read, after the reply is out.
        public var deferConsume: Bool
        /// Descriptors (`SCM_RIGHTS`) the peer may have passed and not yet claimed; 0 = none are
        /// accepted (the kernel closes any that arrive). Over the limit the connection is closed:
        /// unclaimed descriptors are the daemon's descriptors. Reading then never peeks.
        public var maxPassedDescriptors: Int
        /// Shared by every connection of one listener: the bytes of partial messages all of them
        /// may buffer together (each one's own bound is `maxLineBytes`). A connection whose read
        /// takes the total over gets `MESSAGE_TOO_LARGE` and is closed, so a crowd of peers that
        /// each send almost a whole message and stop cannot make the daemon hold connections ×
        /// `maxLineBytes`.
        public var sharedInputBudget: ByteBudget?

        public init(
            maxLineBytes: Int = 1 << 20, maxQueuedOutputBytes: Int = 8 << 20, readChunkBytes: Int = 64 << 10,
            deferConsume: Bool = true, maxPassedDescriptors: Int = 0
        ) {
            self.maxLineBytes = maxLineBytes
            self.maxQueuedOutputBytes = maxQueuedOutputBytes
            self.readChunkBytes = readChunkBytes
            self.deferConsume = deferConsume && maxPassedDescriptors == 0
            self.maxPassedDescriptors = maxPassedDescriptors
            self.sharedInputBudget = nil
        }
    }

    /// Why a connection closed.
    public enum CloseReason: Sendable, Equatable {
        /// The peer closed (EOF) or reset the connection.
        case peerClosed
        /// `close()` or `closeAfterFlush()` was called.
        case local
        /// A message exceeded `maxLineBytes`.
        case messageTooLarge
        /// The peer did not read and the output queue hit its limit.
        case slowReader
        /// A read or write failed with this errno.
        case ioError(Int32)
        /// The reactor shut down.
        case reactorShutdown
    }

    private static let idCounter = Atomic<UInt64>(0)

    /// Unique id of this connection for the process lifetime.
    public let id: UInt64
    /// The reactor serving it.
    public let reactor: Reactor
    /// Credentials of the peer, when known (accepted connections always have them).
    public let peer: PeerCredentials?
    /// The limits.
    public let limits: Limits

    // Loop-confined state.
    private let fd: Int32
    private var token: UInt64 = 0
    private var handler: (any LineHandler)?
    private var framer: LineFramer
    private var out: [UInt8] = []
    private var outHead = 0
    private var corked = false
    private var interest: UInt32 = 0
    private var readPaused = false
    private var readEnded = false
    private var closing = false
    private var closeReason: CloseReason = .local
    private var draining = false
    private var drained = 0
    private var closed = false
    private var closeObservers: [() -> Void] = []
    /// Peeked bytes not yet consumed (deferConsume): nonzero only within one `readOnce`.
    private var unconsumed = 0
    /// Bytes of this connection charged to `limits.sharedInputBudget`.
    private var charged = 0
    /// Descriptors passed by the peer and not yet claimed (`takePassedDescriptor`), oldest first.
    private var passed: [Int32] = []

    init(fd: Int32, reactor: Reactor, peer: PeerCredentials?, limits: Limits, handler: any LineHandler) {
        self.id = Self.idCounter.wrappingAdd(1, ordering: .relaxed).newValue
        self.fd = fd
        self.reactor = reactor
        self.peer = peer
        self.limits = limits
        self.handler = handler
        self.framer = LineFramer(maxLineBytes: limits.maxLineBytes, initialCapacity: min(16 << 10, limits.maxLineBytes + 1))
    }

    /// True until the connection is closed (loop thread).
    public var isOpen: Bool { !closed && !closing }

    /// Output bytes waiting to be sent (loop thread).
    public var queuedOutputBytes: Int { out.count - outHead }

    // MARK: Writing

    /// Queues `bytes` (one or more complete lines, each ending in `\n`) for sending. Safe from
    /// any thread: off the loop thread the bytes are handed to the loop first.
    public func send(_ bytes: [UInt8]) {
        if reactor.isInLoopThread {
            appendOutput { $0.append(contentsOf: bytes) }
        } else {
            reactor.execute { [self] in appendOutput { $0.append(contentsOf: bytes) } }
        }
    }

    /// Lets `body` append complete lines straight into the output buffer, then flushes unless
    /// answers are being batched (loop thread only). The zero-copy path for replies.
    public func appendOutput(_ body: (inout [UInt8]) -> Void) {
        precondition(reactor.isInLoopThread, "LineConnection.appendOutput must run on the loop thread")
        guard !closed, !closing else { return }
        body(&out)
        if queuedOutputBytes > limits.maxQueuedOutputBytes {
            close(reason: .slowReader)
            return
        }
        if !corked { flush() }
    }

    /// The oldest descriptor the peer passed (`SCM_RIGHTS`) and nobody claimed yet, now owned by
    /// the caller (loop thread only). A descriptor travels in the same `sendmsg` as the request
    /// that uses it, and the kernel hands it over with the first byte of that message, so by
    /// the time the request's line is delivered its descriptor is here; requests claim them
    /// in order.
    public func takePassedDescriptor() -> OwnedFD? {
        precondition(reactor.isInLoopThread, "LineConnection.takePassedDescriptor must run on the loop thread")
        guard !passed.isEmpty else { return nil }
        return OwnedFD(adopting: passed.removeFirst())
    }

    /// Runs `body` once when the connection closes, after the handler heard of it (loop thread
    /// only; runs at once if already closed). For registries that hold the connection, such as
    /// host providers and inspector subscriptions, so they never outlive it.
    public func addCloseObserver(_ body: @escaping () -> Void) {
        precondition(reactor.isInLoopThread, "LineConnection.addCloseObserver must run on the loop thread")
        if closed { body() } else { closeObservers.append(body) }
    }

    /// Closes now, dropping unsent output. Safe from any thread.
    public func close() {
        if reactor.isInLoopThread { close(reason: .local) } else { reactor.execute { [self] in close(reason: .local) } }
    }

    /// Stops reading and closes once all queued output is sent. Safe from any thread.
    public func closeAfterFlush() {
        guard reactor.isInLoopThread else {
            reactor.execute { [self] in closeAfterFlush() }
            return
        }
        guard !closed, !closing else { return }
        closing = true
        if queuedOutputBytes == 0 { startLingeringClose() } else { updateInterest() }
    }

    // MARK: Reactor side

    func open() {
        do throws(SystemError) {
            interest = CNET_EPOLLIN | CNET_EPOLLRDHUP
            token = try reactor.register(fd: fd, events: interest, source: self)
        } catch {
            closed = true
            _ = Glibc.close(fd)
            handler?.connectionDidClose(self, reason: .ioError(error.errno))
            handler = nil
            return
        }
        handler?.connectionDidOpen(self)
    }

    func close(reason: CloseReason) {
        guard !closed else { return }
        closed = true
        closing = true
        if token != 0 { reactor.unregister(fd: fd, token: token) }
        // Requests already answered but not yet consumed must not look like unread data: closing
        // over unread data resets the peer (ECONNRESET) instead of a clean EOF.
        if unconsumed > 0 && !draining { _ = discard(unconsumed) }
        unconsumed = 0
        _ = Glibc.close(fd)
        for d in passed { _ = Glibc.close(d) }
        passed = []
        recharge(0)
        out = []
        outHead = 0
        let h = handler
        handler = nil
        h?.connectionDidClose(self, reason: reason)
        let observers = closeObservers
        closeObservers = []
        for o in observers { o() }
    }

    private func flush() {
        while outHead < out.count {
            let n = out.withUnsafeBytes { p in
                Glibc.send(fd, p.baseAddress! + outHead, p.count - outHead, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if n > 0 {
                outHead += n
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) { break }
            close(reason: e == EPIPE || e == ECONNRESET ? .peerClosed : .ioError(e))
            return
        }
        if outHead == out.count {
            out.removeAll(keepingCapacity: out.capacity <= 256 << 10)
            outHead = 0
            if closing { startLingeringClose(); return }
        } else if outHead >= 64 << 10 {
            out.removeFirst(outHead)
            outHead = 0
        }
        updateInterest()
    }

    /// Closing a Unix socket with unread input makes the kernel reset the peer (ECONNRESET),
    /// which can destroy our last answer (`MESSAGE_TOO_LARGE`) before the peer reads it. So,
    /// like HTTP servers' "lingering close": shut down our sending side, then read and discard
    /// what the peer still sends — bounded in bytes and time — and close after that.
    private func startLingeringClose() {
        guard !closed, !draining else { return }
        draining = true
        unconsumed = 0  // the drain below reads (and drops) everything from the start
        shutdown(fd, Int32(SHUT_WR))
        interest = CNET_EPOLLIN | CNET_EPOLLRDHUP
        reactor.modify(fd: fd, token: token, events: interest)
        reactor.schedule(afterNanos: 2_000_000_000) { [self] in close(reason: closeReason) }
        drainAndDiscard()
    }

    private func drainAndDiscard() {
        var scratch = [UInt8](repeating: 0, count: 16 << 10)
        while !closed {
            let n = scratch.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                drained += n
                if drained > 4 * limits.maxLineBytes + (1 << 20) { close(reason: closeReason) }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            close(reason: closeReason)
        }
    }

    private func updateInterest() {
        guard !closed, !draining else { return }
        let pending = queuedOutputBytes
        readPaused = closing || pending > limits.maxQueuedOutputBytes / 2
        var ev: UInt32 = 0
        if !readPaused && !readEnded { ev |= CNET_EPOLLIN | CNET_EPOLLRDHUP }
        if pending > 0 { ev |= CNET_EPOLLOUT }
        guard ev != interest else { return }
        interest = ev
        reactor.modify(fd: fd, token: token, events: ev)
    }
}

extension LineConnection: ReactorSource {
    func handleEvents(_ events: UInt32) {
        if draining {
            drainAndDiscard()
            return
        }
        if events & CNET_EPOLLOUT != 0 { flush() }
        if closed { return }
        let readable = CNET_EPOLLIN | CNET_EPOLLRDHUP | CNET_EPOLLHUP | CNET_EPOLLERR
        if events & readable != 0 && !readPaused && !readEnded {
            readOnce()
        } else if events & (CNET_EPOLLHUP | CNET_EPOLLERR) != 0 {
            // Both directions are gone (or the socket failed) while we were not reading:
            // nobody can receive what is queued. Level-triggered HUP would otherwise spin.
            close(reason: .peerClosed)
        }
    }

    func reactorDidStop() { close(reason: .reactorShutdown) }

    /// One `read(2)` per readiness event (level-triggered): a flooding peer gets one chunk per
    /// loop turn like everyone else, so it cannot starve the other workers.
    private func readOnce() {
        var err: Int32 = 0
        let peek = limits.deferConsume
        let n = framer.withWritableSpace(minimum: limits.readChunkBytes) { raw in
            let len = min(raw.count, limits.readChunkBytes)
            let r = peek ? cnet_recv_peek(fd, raw.baseAddress!, UInt(len)) : receive(into: raw.baseAddress!, len)
            if r < 0 { err = errno }
            return r
        }
        if passed.count > limits.maxPassedDescriptors {
            close(reason: .ioError(EMFILE))
            return
        }
        if n < 0 {
            if err == EINTR || err == EAGAIN || err == EWOULDBLOCK { return }
            close(reason: err == ECONNRESET ? .peerClosed : .ioError(err))
            return
        }
        // Counted from here, so a close while handling these lines discards them (closing over
        // unread input would reset the peer instead of a clean EOF).
        if peek { unconsumed = n }
        corked = true
        if n == 0 {
            readEnded = true
            framer.finish { ev in deliver(ev) }
            corked = false
            if !closed { handler?.connectionDidReachEOF(self) }
            if !closed { flush() }
            return
        }
        framer.drain { ev in
            deliver(ev)
            return !closed && !closing
        }
        corked = false
        if !closed, !recharge(framer.bufferedBytes) {
            closeReason = .messageTooLarge
            handler?.connection(self, didReceiveOversizeMessage: framer.bufferedBytes)
            closing = true
        }
        if !closed { flush() }
        guard peek, !closed, !draining else { return }
        // Consume now, every time: input left in the socket keeps it readable, and the
        // level-triggered loop would then wake at once, peek nothing new, and spin until it is
        // consumed (measured: ~20 epoll_wait + recv pairs per Bridge call, a CPU burnt per busy
        // worker). Unconsumed input also charges the peer's send buffer, so a peer that keeps
        // sending without reading answers could fill it and stall.
        consumeNow()
    }

    /// Charges this connection's buffered partial message to the shared budget; false when the
    /// budget is exceeded (the connection must go).
    @discardableResult
    private func recharge(_ bytes: Int) -> Bool {
        guard let budget = limits.sharedInputBudget, bytes != charged else { return true }
        let total = budget.add(bytes - charged)
        charged = bytes
        return bytes == 0 || total <= budget.limit
    }

    /// `recv`, or `recvmsg` keeping the descriptors passed along when the limits accept some.
    private func receive(into buffer: UnsafeMutableRawPointer, _ len: Int) -> Int {
        guard limits.maxPassedDescriptors > 0 else { return Glibc.recv(fd, buffer, len, 0) }
        var fds = [Int32](repeating: -1, count: 8)
        var count: Int32 = 0
        let r = cnet_recv_fds(fd, buffer, UInt(len), &fds, Int32(fds.count), &count)
        passed.append(contentsOf: fds.prefix(Int(count)))
        return r
    }

    /// Consumes the bytes of this read's peek, now that its answers are out.
    private func consumeNow() {
        guard unconsumed > 0, !closed, !draining else { return }
        let n = unconsumed
        unconsumed = 0
        consumePeeked(n)
    }

    /// Removes the `n` bytes read with `MSG_PEEK` from the socket, now that the answers are out.
    /// Consuming a Unix-socket message frees its buffer, which wakes every sleeper on the
    /// *sender's* socket — including the peer blocked in `read` for its answer — whether or not
    /// an answer is there yet. Reading first and consuming after answering turns that spurious
    /// wake-up (a VM exit and an IPI here, or two context switches when both share a CPU) into
    /// none: the answer has woken the peer already, and its wait-queue entry is gone.
    private func consumePeeked(_ n: Int) {
        if let e = discard(n) { close(reason: e == 0 ? .peerClosed : .ioError(e)) }
    }

    /// Reads and drops `n` buffered bytes; nil on success, else the errno (0 for EOF).
    private func discard(_ n: Int) -> Int32? {
        var left = n
        while left > 0 {
            let r = reactor.withScratch { Glibc.recv(fd, $0.baseAddress!, min(left, $0.count), 0) }
            if r > 0 {
                left -= r
            } else if r < 0 && errno == EINTR {
                continue
            } else {
                return r == 0 ? 0 : errno
            }
        }
        return nil
    }

    private func deliver(_ ev: FramedLine) {
        guard let h = handler, !closed else { return }
        switch ev {
        case .line(let line):
            h.connection(self, didReceiveLine: line)
        case .tooLarge(let size):
            closeReason = .messageTooLarge
            h.connection(self, didReceiveOversizeMessage: size)
            closing = true
        }
    }
}

/// A byte count shared by many connections (thread-safe), with its limit.
public final class ByteBudget: Sendable {
    /// The most bytes allowed in total.
    public let limit: Int
    private let used = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Bytes charged now.
    public var inUse: Int { used.load(ordering: .relaxed) }

    /// Adds `delta` (negative to release) and returns the new total.
    func add(_ delta: Int) -> Int { used.wrappingAdd(delta, ordering: .relaxed).newValue }
}
