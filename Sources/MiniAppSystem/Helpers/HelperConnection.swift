public import MiniAppModel
internal import CHelperShims
internal import CJail
internal import Synchronization
import Glibc

/// How to start one helper process.
public struct HelperLaunch: Sendable {
    /// The `miniappd-helper` executable.
    public var executable: String
    /// `net` or `extract`.
    public var role: String
    /// How it confines itself.
    public var hello: HelperHello
    /// Descriptors it inherits as 4, 5, … (the caller keeps and closes its own).
    public var fds: [Int32] = []
    /// Its whole environment (`NAME=value`); empty in production. Tests set a pause point here.
    public var environment: [String] = []
    /// Largest reply payload accepted from it.
    public var maxReplyPayload: Int

    public init(executable: String, role: String, hello: HelperHello, maxReplyPayload: Int) {
        self.executable = executable
        self.role = role
        self.hello = hello
        self.maxReplyPayload = maxReplyPayload
    }

    /// Where the helper executable is: `$MINIAPP_HELPER`, else beside this executable (as the
    /// spawner is found).
    public static func defaultExecutable() -> String {
        if let p = getenv("MINIAPP_HELPER"), p.pointee != 0 { return String(cString: p) }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        let exe = n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        return exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/miniappd-helper"
    }
}

extension HelperLaunch {
    /// A sealed (read-only, fixed-size) memfd holding `bytes`: what a helper reads is exactly
    /// what the daemon parsed, and it cannot write back through it.
    public static func sealedMemfd(_ bytes: [UInt8], name: String) throws(MiniAppError) -> OwnedFD {
        let fd = bytes.withUnsafeBytes { cjail_sealed_memfd(name, $0.baseAddress, $0.count) }
        guard fd >= 0 else { throw MiniAppError(.internal, "cannot pass the archive to the helper: \(SystemError("memfd_create", errno: -fd))") }
        return OwnedFD(adopting: fd)
    }
}

/// Why a call to a helper did not produce a reply.
public enum HelperCallError: Error, Sendable, Equatable {
    /// The helper died (crash, kill -9, a malformed reply that made us end it): the text says how.
    case died(String)
    /// No reply in time; the helper was ended.
    case timedOut
}

/// The daemon's end of one running helper: requests go out with an id, replies come back on a
/// reader thread and are matched by id, so several requests are in flight at once. Everything
/// the helper sends is parsed as hostile (`HelperFrameReader` bounds); a malformed frame or EOF
/// ends the helper and fails every call in flight with `HelperCallError.died`.
public final class HelperConnection: Sendable {
    /// The helper's pid (for tests and the log).
    public let pid: Int32
    /// Landlock ABI the helper reported in force.
    public let landlockABI: Int
    private let socket: Int32
    private let maxReplyPayload: Int
    private let state = Mutex(State())
    private let writeLock = Mutex(())
    /// Signalled once the process is reaped.
    private let exited = CountingSemaphore()

    private struct State {
        var nextID: UInt64 = 1
        var waiters: [UInt64: Waiter] = [:]
        var dead: String? = nil
    }

    private final class Waiter: Sendable {
        let done = CountingSemaphore()
        let result = Mutex<Result<HelperFrame, HelperCallError>?>(nil)
    }

    private init(pid: Int32, socket: Int32, landlockABI: Int, maxReplyPayload: Int) {
        self.pid = pid
        self.socket = socket
        self.landlockABI = landlockABI
        self.maxReplyPayload = maxReplyPayload
    }

    deinit { close(socket) }

    /// Starts the helper, sends its hello and waits (at most `timeoutMillis`) for it to report
    /// itself confined. Throws HOST_UNAVAILABLE when it cannot start or confine itself.
    public static func start(_ launch: HelperLaunch, timeoutMillis: Int = 5000) throws(MiniAppError) -> HelperConnection {
        guard access(launch.executable, X_OK) == 0 else {
            throw MiniAppError(.hostUnavailable, "the helper \(launch.executable) is missing or not executable: install miniappd-helper beside miniappd (swift build builds it) or set MINIAPP_HELPER")
        }
        let argv = [launch.executable, launch.role]
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = launch.environment.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }
        var pid: Int32 = 0, sock: Int32 = -1
        let r = launch.fds.withUnsafeBufferPointer { cjail_spawn_connected(launch.executable, cArgs, cEnv, Int32(SOCK_STREAM.rawValue), $0.baseAddress, UInt32($0.count), &pid, &sock) }
        guard r == 0 else { throw MiniAppError(.hostUnavailable, "cannot start the \(launch.role) helper: \(SystemError("posix_spawn", errno: -r))") }
        do throws(MiniAppError) {
            try writeFrame(sock, launch.hello.frame())
            let ready = try readReady(sock, timeoutMillis: timeoutMillis)
            let c = HelperConnection(pid: pid, socket: sock, landlockABI: ready.landlockABI, maxReplyPayload: launch.maxReplyPayload)
            startThread(name: "miniappd-helper") { c.readLoop() }
            return c
        } catch {
            kill(pid, SIGKILL)
            reap(pid)
            close(sock)
            throw error
        }
    }

    private static func readReady(_ sock: Int32, timeoutMillis: Int) throws(MiniAppError) -> HelperReady {
        var reader = HelperFrameReader(maxPayload: 4096, maxFields: 16)
        let deadline = monotonicNanos() + UInt64(timeoutMillis) * 1_000_000
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let frame: HelperFrame?
            do { frame = try reader.next() } catch {
                throw MiniAppError(.hostUnavailable, "the helper answered its hello with a bad frame: \(error)")
            }
            if let frame {
                if frame.kind == .failure, let f = try? HelperFailure(frame) {
                    throw MiniAppError(.hostUnavailable, "the helper could not confine itself: \(f.message)")
                }
                do { return try HelperReady(frame) } catch {
                    throw MiniAppError(.hostUnavailable, "the helper answered its hello with \(error)")
                }
            }
            let now = monotonicNanos()
            guard now < deadline else { throw MiniAppError(.hostUnavailable, "the helper did not report ready within \(timeoutMillis) ms") }
            var p = pollfd(fd: sock, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, Int32((deadline - now) / 1_000_000) + 1)
            let n = buf.withUnsafeMutableBytes { read(sock, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { throw MiniAppError(.hostUnavailable, "the helper exited before it was ready (see the daemon log)") }
            buf.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    static func writeFrame(_ sock: Int32, _ frame: HelperFrame) throws(MiniAppError) {
        let bytes = frame.encoded()
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(sock, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw MiniAppError(.hostUnavailable, "the helper's socket refused a request: \(SystemError.current("send"))") }
            off += n
        }
    }

    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    /// True until the helper is found dead.
    public var isAlive: Bool { state.withLock { $0.dead == nil } }

    /// Sends `frame` (its id replaced by a fresh one) and blocks for the reply, at most
    /// `timeoutMillis`. Call only from threads that may block. On timeout the helper is ended
    /// (a helper that does not answer within the limit it was given is not trusted to).
    public func call(_ frame: HelperFrame, timeoutMillis: Int) -> Result<HelperFrame, HelperCallError> {
        let waiter = Waiter()
        let registered: Result<UInt64, HelperCallError> = state.withLock { s in
            if let why = s.dead { return .failure(.died(why)) }
            let id = s.nextID
            s.nextID += 1
            s.waiters[id] = waiter
            return .success(id)
        }
        guard case .success(let id) = registered else {
            if case .failure(let e) = registered { return .failure(e) }
            return .failure(.died("unknown"))
        }
        var out = frame
        out.id = id
        let sent: Bool = writeLock.withLock { _ in (try? Self.writeFrame(socket, out)) != nil }
        if !sent { end("its socket is closed") }
        if !waiter.done.wait(seconds: Double(max(1, timeoutMillis)) / 1000) {
            state.withLock { _ = $0.waiters.removeValue(forKey: id) }
            end("it did not answer within \(timeoutMillis) ms")
            return .failure(.timedOut)
        }
        return waiter.result.withLock { $0 } ?? .failure(.died("no result"))
    }

    /// Ends the helper: SIGKILL (the reader thread sees EOF, reaps it and fails the calls in
    /// flight). Idempotent.
    public func end(_ why: String) {
        let first = state.withLock { s -> Bool in
            if s.dead != nil { return false }
            s.dead = why
            return true
        }
        if first { kill(pid, SIGKILL) }
        shutdown(socket, Int32(SHUT_RDWR))
    }

    /// Ends the helper and returns once it is reaped (at most 5 s): after this it holds no
    /// descriptor, so nothing it opened can still be written through.
    public func endAndWait(_ why: String) {
        end(why)
        if exited.wait(seconds: 5) { exited.signal() }
    }

    private func readLoop() {
        var why = "it exited"
        if let error = Self.readFrames(socket, maxPayload: maxReplyPayload, deliver) {
            why = "it sent a malformed frame (\(error))"
        }
        finish(why)
    }

    /// Reads frames from `sock` and hands each complete one to `each`, in order, until end of
    /// file or a failed read (nil) or a malformed frame (its error): the one read loop of both
    /// ends of a helper connection.
    static func readFrames(_ sock: Int32, maxPayload: Int, _ each: (HelperFrame) -> Void) -> HelperWireError? {
        var reader = HelperFrameReader(maxPayload: maxPayload)
        var buf = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            guard let n = try? retryingEINTR("read", { buf.withUnsafeMutableBytes { read(sock, $0.baseAddress, $0.count) } }), n > 0 else {
                return nil
            }
            buf.withUnsafeBytes { reader.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            do throws(HelperWireError) {
                while let frame = try reader.next() { each(frame) }
            } catch {
                return error
            }
        }
    }

    private func deliver(_ frame: HelperFrame) {
        // A reply to an id nobody waits for (timed out meanwhile) is dropped.
        guard let w = state.withLock({ $0.waiters.removeValue(forKey: frame.id) }) else { return }
        w.result.withLock { $0 = .success(frame) }
        w.done.signal()
    }

    private func finish(_ reason: String) {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let how = (status & 0x7f) != 0 ? "killed by signal \(status & 0x7f)" : reason
        let waiters = state.withLock { s -> [Waiter] in
            if s.dead == nil { s.dead = how }
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        let why = state.withLock { $0.dead ?? how }
        for w in waiters {
            w.result.withLock { $0 = .failure(.died(why)) }
            w.done.signal()
        }
        exited.signal()
    }
}
