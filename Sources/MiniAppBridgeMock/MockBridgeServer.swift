import MiniAppJSON
import MiniAppModel
internal import MiniAppSystem
import Synchronization

/// Serves a `MockBridge` on one connected stream socket, speaking exactly the broker's wire:
/// the daemon's own `LineFramer` and `RPCCodec`, so framing, the envelope checks and the error
/// shapes are the broker's — `PARSE_ERROR` (id null, the connection stays usable),
/// `INVALID_REQUEST` (with the request's id when it is readable), no answer to notifications,
/// `INVALID_PARAMS` for array params, and `MESSAGE_TOO_LARGE` (id null) for an over-long line,
/// after which the connection is closed. A program that passes against the mock sees the same
/// protocol in the daemon.
///
/// Reads on a thread of its own; delayed answers are written by a `WorkQueue` when their delay
/// is up; every write goes out whole under one lock (lines never interleave). The socket is closed once the peer closed
/// its end and every delayed answer was written.
public final class MockBridgeServer: Sendable {
    private let bridge: MockBridge
    private let fd: Int32
    private let maxMessageBytes: Int
    private let log: (@Sendable (String) -> Void)?
    private let writeLock = Mutex(())
    /// Delayed answers not written yet; `written` is signalled whenever that drops to zero.
    private let inFlight = Mutex(0)
    private let written = CountingSemaphore()
    private let delayed = WorkQueue(name: "mock-answers")
    private let finished = CountingSemaphore()

    /// Serves `fd` (owned from now on: closed when the peer is done). `log` gets one line per
    /// message (`miniapp mock-bridge --log`).
    public init(bridge: MockBridge, fd: Int32, maxMessageBytes: Int = 1 << 20, log: (@Sendable (String) -> Void)? = nil) {
        self.bridge = bridge
        self.fd = fd
        self.maxMessageBytes = maxMessageBytes
        self.log = log
    }

    /// Starts serving in the background.
    public func start() {
        let reader = WorkQueue(name: "mock-bridge")
        reader.submit { [self] in
            serve()
            while inFlight.withLock({ $0 }) > 0 { written.wait() }
            OwnedFD(adopting: fd).close()
            finished.signal()
        }
        reader.finish()  // its thread ends with the connection
    }

    /// Blocks until the peer closed and every answer was written.
    public func wait() {
        finished.wait()
        finished.signal()
    }

    private func serve() {
        var framer = LineFramer(maxLineBytes: maxMessageBytes)
        while true {
            let n = framer.withWritableSpace(minimum: 64 << 10) { raw in (try? UnixSocket.receive(fd, into: raw)) ?? -1 }
            var open = true
            framer.drain { framed in
                open = handle(framed)
                return open
            }
            if !open { return }
            if n <= 0 {
                framer.finish { _ = handle($0) }
                return
            }
        }
    }

    /// One framed message; false when the connection must close.
    private func handle(_ framed: FramedLine) -> Bool {
        switch framed {
        case .tooLarge(let size):
            log?("mock: a message of at least \(size) bytes is over the \(maxMessageBytes)-byte limit: MESSAGE_TOO_LARGE, connection closed")
            send(.null, .failure(MiniAppError(.messageTooLarge, "message exceeds \(maxMessageBytes) bytes; the connection is closed")))
            UnixSocket.shutdown(fd, readOnly: true)
            return false
        case .line(let buf):
            if buf.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return true }
            let decoded = RPCCodec.parse(buf).flatMap(RPCCodec.decodeRequest)
            switch decoded {
            case .failure(let e):
                log?("mock: refused: \(e.code.rawValue) \(e.message)")
                send(e.id, .failure(e.error))
            case .success(let req):
                call(req)
            }
            return true
        }
    }

    private func call(_ req: RPCRequest) {
        if let p = req.params, p.objectValue == nil {
            log?("mock: \(req.method): INVALID_PARAMS (params must be an object)")
            if let id = req.id { send(id, .failure(MiniAppError(.invalidParams, "params must be an object"))) }
            return
        }
        let (answer, delay) = bridge.answer(method: req.method, params: req.params)
        log?(Self.describe(req, answer))
        guard let id = req.id else { return }  // a notification: never answered
        if delay == 0 { return write(id, answer) }
        inFlight.withLock { $0 += 1 }
        delayed.after(seconds: Double(delay) / 1000) { [self] in
            write(id, answer)
            if inFlight.withLock({ $0 -= 1; return $0 }) == 0 { written.signal() }
        }
    }

    private func send(_ id: RPCId, _ r: Result<JSONValue, MiniAppError>) {
        var out: [UInt8] = []
        switch r {
        case .success(let v): RPCCodec.writeResult(id: id, result: v, into: &out)
        case .failure(let e): RPCCodec.writeError(id: id, error: e, into: &out)
        }
        writeAll(out)
    }

    private func write(_ id: RPCId, _ answer: MockRules.Answer) {
        var out: [UInt8] = []
        switch answer {
        case .result(let v): RPCCodec.writeResult(id: id, result: v, into: &out)
        case .error(let e): RPCCodec.writeError(id: id, code: e.code, message: e.message, data: e.data, into: &out)
        }
        writeAll(out)
    }

    private func writeAll(_ bytes: [UInt8]) {
        writeLock.withLock { _ in
            try? UnixSocket.sendAll(fd, bytes)  // a failure: the program went away, nobody to answer
        }
    }

    /// `storage.get {"key":"visits"} -> {"value":1}` / `payment.pay {…} -> PERMISSION_DENIED message`.
    static func describe(_ req: RPCRequest, _ answer: MockRules.Answer) -> String {
        let params = req.params.map { " " + $0.jsonString } ?? ""
        switch answer {
        case .result(let r): return "mock: \(req.method)\(params) -> \(r.jsonString)"
        case .error(let e): return "mock: \(req.method)\(params) -> \(e.dataCode ?? String(e.code)) \(e.message)"
        }
    }
}
