import CLinuxShims
import Glibc

/// Synchronous signal handling through signalfd(2): the signals are blocked in every thread
/// (call `blockInProcess` first thing in main, before any thread exists, so threads inherit the
/// mask), and one loop reads them as ordinary data — no async-signal-safety constraints on what
/// the daemon does in response.
public struct SignalLoop: ~Copyable {
    private let fd: Int32

    /// The signals the daemon handles.
    public static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGPIPE]

    /// Blocks `handled` in the calling thread (and so in every thread it creates later).
    public static func blockInProcess() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in handled { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Opens the signalfd for `handled` (SIGPIPE is blocked and never reported: a peer that
    /// went away shows up as EPIPE on the write instead).
    public init() throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for s in Self.handled where s != SIGPIPE { sigaddset(&set, s) }
        let fd = clinux_signalfd(&set)
        guard fd >= 0 else { throw .current("signalfd") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Waits up to `timeoutMillis` for the next signal; nil on timeout.
    public func next(timeoutMillis: Int32) -> Int32? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMillis) == 1 else { return nil }
        let s = clinux_signalfd_read(fd)
        return s > 0 ? s : nil
    }
}
