import CJail
#if canImport(Glibc)
import Glibc
#endif

/// Signal numbers the layers above send or compare against (values of `<signal.h>`).
public enum Signal {
    public static let kill: Int32 = SIGKILL
    public static let term: Int32 = SIGTERM
    public static let interrupt: Int32 = SIGINT
    public static let stop: Int32 = SIGSTOP
    public static let cont: Int32 = SIGCONT
    public static let pipe: Int32 = SIGPIPE
    public static let hangup: Int32 = SIGHUP

    /// The name of signal `n` (`SIGTERM`), or `SIG<n>` for one without a usual name.
    public static func name(_ n: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
            SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS",
        ]
        return names[n] ?? "SIG\(n)"
    }

    /// Ignores `signal` in this process (`SIG_IGN`; inherited across execve).
    public static func ignore(_ signal: Int32) { _ = Glibc.signal(signal, SIG_IGN) }
}

/// This process: its ids, its environment, and the calls that act on processes by pid.
public enum CurrentProcess {
    public static var pid: Int32 { getpid() }
    public static var uid: UInt32 { getuid() }
    public static var gid: UInt32 { getgid() }
    public static var effectiveUID: UInt32 { geteuid() }
    public static var effectiveGID: UInt32 { getegid() }

    /// The supplementary groups (`getgroups(2)`).
    public static var supplementaryGroups: [UInt32] {
        let n = getgroups(0, nil)
        guard n > 0 else { return [] }
        var g = [gid_t](repeating: 0, count: Int(n))
        let got = getgroups(n, &g)
        return got > 0 ? Array(g.prefix(Int(got))) : []
    }
    /// Whether the process runs as root (effective uid 0).
    public static var isRoot: Bool { geteuid() == 0 }

    /// The working directory (`getcwd(3)`), or nil when it cannot be read (removed, too long).
    public static var workingDirectory: String? {
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `chdir(2)`.
    public static func changeDirectory(_ path: String) throws(SystemError) {
        guard chdir(path) == 0 else { throw SystemError.current("chdir", detail: path) }
    }

    /// `getenv(3)`.
    public static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    /// Ends the process now with `status` (`exit(3)`: stdio flushed, atexit handlers run).
    public static func exit(_ status: Int32) -> Never { Glibc.exit(status) }

    /// Sleeps the calling thread (`usleep(3)`); for polling loops of tools and tests only.
    public static func sleep(micros: UInt32) { _ = usleep(micros) }

    /// Flushes C stdio (`fflush(NULL)`) so Swift `print` output is out before a write(2).
    public static func flushStandardOutput() { _ = fflush(nil) }

    /// Writes `text` to fd 2 in one write(2) (unbuffered: it reaches the terminal before an exit).
    public static func writeStandardError(_ text: String) { writeAll(2, Array(text.utf8)) }

    /// Writes `bytes` to `fd` whole, retrying short writes and EINTR; gives up on any other error
    /// (a closed terminal is not worth failing a tool for).
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            off += n
        }
    }

    /// Whether `fd` is a terminal (`isatty(3)`).
    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
}

/// Acting on other processes by pid.
public enum Processes {
    /// `kill(2)`; true when the signal was sent.
    @discardableResult
    public static func signal(_ pid: Int32, _ signal: Int32) -> Bool { kill(pid, signal) == 0 }

    /// Whether `pid` exists (signal 0; EPERM means it exists under another user).
    public static func isAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

    /// `waitpid(2)` until `pid` exits (EINTR retried); the shell status: the exit code, or
    /// 128 + the signal that killed it.
    public static func waitForExit(_ pid: Int32) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// What a spawned child's fd N is set to before execve.
    public enum FileAction: Sendable {
        /// `dup2(fd, target)` (clears close-on-exec on `target`).
        case duplicate(Int32, to: Int32)
        /// Opens `path` with `flags` as `target`.
        case open(String, flags: OpenOptions, as: Int32)
        /// `/dev/null` as `target` (read for 0, write for others).
        case devNull(Int32)
    }

    /// `posix_spawn(3)` (or `posix_spawnp` when `searchPath`) of `argv` with `environment`
    /// (nil: this process's). Never fork from Swift: the child of a multithreaded process may
    /// only call async-signal-safe functions, and posix_spawn does the right thing.
    public static func spawn(_ argv: [String], environment: [String]? = nil, files: [FileAction] = [], searchPath: Bool = false) throws(SystemError) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for action in files {
            switch action {
            case .duplicate(let fd, let target): posix_spawn_file_actions_adddup2(&actions, fd, target)
            case .open(let path, let flags, let target): posix_spawn_file_actions_addopen(&actions, target, path, flags.rawValue, 0)
            case .devNull(let target): posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            }
        }
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        let cenv: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
        defer { for p in cenv ?? [] { free(p) } }
        var pid: pid_t = 0
        let rc: Int32
        if var env = cenv {
            rc = searchPath ? posix_spawnp(&pid, argv[0], &actions, nil, &cargs, &env) : posix_spawn(&pid, argv[0], &actions, nil, &cargs, &env)
        } else {
            rc = searchPath ? posix_spawnp(&pid, argv[0], &actions, nil, &cargs, environ) : posix_spawn(&pid, argv[0], &actions, nil, &cargs, environ)
        }
        guard rc == 0 else { throw SystemError("posix_spawn", errno: rc, detail: argv[0]) }
        return pid
    }

    /// Spawns `argv` and waits for it; returns the shell status (see `waitForExit`).
    public static func run(_ argv: [String], environment: [String]? = nil, files: [FileAction] = []) throws(SystemError) -> Int32 {
        waitForExit(try spawn(argv, environment: environment, files: files))
    }
}

/// A pipe(2) with both ends close-on-exec (O_CLOEXEC at creation: no window for a concurrent
/// spawn to inherit them).
@frozen
public struct PipePair: ~Copyable {
    public var readEnd: OwnedFD
    public var writeEnd: OwnedFD

    /// Both ends, each now owned by the caller as a raw number (read, write).
    public consuming func takeBoth() -> (read: Int32, write: Int32) { (readEnd.take(), writeEnd.take()) }

    public init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        guard cjail_pipe_cloexec(&fds) == 0 else { throw SystemError.current("pipe2") }
        readEnd = OwnedFD(adopting: fds[0])
        writeEnd = OwnedFD(adopting: fds[1])
    }
}

extension OwnedFD {
    /// One read(2) into `buffer` (EINTR retried); 0 at EOF.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        try retryingEINTR("read") { Glibc.read(raw, buffer.baseAddress, buffer.count) }
    }
}

extension Processes {
    /// What `run(_:environment:files:timeoutMillis:outputLimit:)` saw: the shell status (nil:
    /// killed at the deadline) and the first `outputLimit` bytes of stdout and stderr together.
    public struct Outcome: Sendable {
        public var status: Int32?
        public var output: String
    }

    /// Spawns `argv` with stdin on /dev/null and stdout and stderr into one pipe, collects at
    /// most `outputLimit` bytes of it (the rest is read and dropped, so a chatty child never
    /// blocks on a full pipe), and SIGKILLs it when it has not ended within `timeoutMillis`.
    /// For tools that read untrusted input (e2fsck on a program's filesystem image): a crafted
    /// input that makes one loop must not hold the caller forever.
    public static func run(_ argv: [String], environment: [String]? = nil, files: [FileAction] = [], timeoutMillis: Int,
                           outputLimit: Int = 65536) throws(SystemError) -> Outcome {
        let (readEnd, writeEnd) = try PipePair().takeBoth()
        defer { close(readEnd) }
        let pid: Int32
        do throws(SystemError) {
            pid = try spawn(argv, environment: environment, files: [.devNull(0), .duplicate(writeEnd, to: 1), .duplicate(writeEnd, to: 2)] + files)
        } catch {
            close(writeEnd)
            throw error
        }
        close(writeEnd)
        let deadline = monotonicNanos() + UInt64(max(1, timeoutMillis)) * 1_000_000
        let (output, inTime) = drain(readEnd, until: deadline, limit: outputLimit)
        guard inTime else {
            _ = signal(pid, Signal.kill)
            _ = waitForExit(pid)
            return Outcome(status: nil, output: output)
        }
        return Outcome(status: waitForExit(pid), output: output)
    }

    /// Reads `fd` until EOF (true) or the deadline (false), keeping the first `limit` bytes.
    private static func drain(_ fd: Int32, until deadline: UInt64, limit: Int) -> (String, Bool) {
        var kept: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let now = monotonicNanos()
            guard now < deadline else { return (String(decoding: kept, as: UTF8.self), false) }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(min((deadline - now) / 1_000_000 + 1, 60_000)))
            if ready < 0 && errno != EINTR { return (String(decoding: kept, as: UTF8.self), true) }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return (String(decoding: kept, as: UTF8.self), true) }
            kept.append(contentsOf: chunk[0..<min(n, max(0, limit - kept.count))])
        }
    }
}
