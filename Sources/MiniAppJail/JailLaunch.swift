public import MiniAppModel

/// How the daemon runs the jail: as root with a dedicated host uid per program, or as an
/// ordinary user with a user namespace mapping one uid.
public enum JailMode: String, Sendable {
    /// Root supervisor: no user namespace; uid/gid allocated per program id from the policy range.
    case privileged
    /// Unprivileged supervisor: a user namespace maps `identity.rootlessUid` to the caller's uid.
    case rootless
}

/// A read-only bind from the host into the jail (the daemon mounts the Bridge SDKs at /sdk).
public struct JailBind: Sendable, Equatable {
    public var hostPath: String
    public var jailPath: String
    public init(hostPath: String, jailPath: String) { self.hostPath = hostPath; self.jailPath = jailPath }
}

/// One line of a worker's stdout or stderr, tagged with its program id.
public struct JailOutputLine: Sendable {
    public enum Stream: String, Sendable { case stdout, stderr }
    public var programId: String
    public var stream: Stream
    /// The line without its newline (invalid UTF-8 is repaired); a line longer than
    /// `output.maxLineBytes` arrives in pieces.
    public var text: String
}

/// Per-launch values of a worker.
public struct JailLaunch: Sendable {
    /// The program id (reverse-DNS, `[A-Za-z0-9._-]`, at most 128 characters).
    public var programId: String
    /// argv; `argv[0]` is a path inside the jail or a name searched in the jail's PATH.
    public var argv: [String]
    /// A mini-program's worker (the daemon's launches): its runtime, identity and prewarm
    /// state, from which argv was made and the environment is (`environment(policy:)`).
    public var program: ProgramRun?
    /// Added to the policy's environment, for a plain command (`miniapp jail --env`).
    public var env: [String: String] = [:]
    /// Host directory mounted read-only at /app.
    public var appDir: String?
    /// Host directory mounted read-write at /data (chowned to the program uid, mode 0700).
    public var dataDir: String?
    public var extraReadOnlyBinds: [JailBind] = []
    /// Socket that becomes fd 3 in the worker; the caller keeps (and later closes) its copy.
    public var bridgeFD: Int32?
    /// fd that becomes stdin (default /dev/null); the caller keeps its copy.
    public var stdinFD: Int32?
    /// Replaces the policy's limits for this launch (validated with the same bounds).
    public var limitsOverride: JailLimits?
    /// Working directory inside the jail.
    public var workdir: String = "/"
    /// Receives every captured output line (on the jail's event thread: do not block).
    public var output: (@Sendable (JailOutputLine) -> Void)?

    /// A plain command.
    public init(programId: String, argv: [String]) {
        self.programId = programId
        self.argv = argv
    }

    /// A mini-program's worker: argv from its runtime, /app as its working directory.
    public init(programId: String, program: ProgramRun) {
        self.programId = programId
        self.program = program
        argv = program.argv
        workdir = "/app"
    }

    /// The worker's whole environment, built once, here: the policy's, then the program's
    /// (or a plain command's `env`), then what the jail itself sets (`MINIAPP_PROGRAM_ID`,
    /// `MINIAPP_BRIDGE_FD` when there is a Bridge), sorted by name.
    public func environment(policy: [String: String]) -> [(String, String)] {
        var out = policy
        for (k, v) in program?.environment ?? env { out[k] = v }
        out["MINIAPP_PROGRAM_ID"] = programId
        out["MINIAPP_BRIDGE_FD"] = bridgeFD != nil ? "3" : nil
        return out.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// How and why a worker ended.
public struct WorkerExit: Sendable, Equatable, CustomStringConvertible {
    /// Why it ended, in order of precedence (a stop request beats the signal it caused).
    public enum Reason: Sendable, Equatable {
        /// The program exited by itself (`status`).
        case exit
        /// A signal killed it (`signal`), not caused by the supervisor or a limit.
        case signal
        /// The kernel's OOM killer killed it inside the memory limit.
        case killedOOM
        /// The supervisor killed it because it hit a limit.
        case killedLimit(JailLimitKind)
        /// `stop()` or `kill()` was called.
        case stopped
    }

    /// Exit code when it exited (else nil).
    public var status: Int32?
    /// Terminating signal when it was killed (else nil).
    public var signal: Int32?
    public var reason: Reason
    /// Output bytes dropped beyond `output.maxBytesPerStream` (stdout + stderr).
    public var droppedOutputBytes: Int
    /// Usage at the end.
    public var oomKills: UInt64
    public var pidsLimitHits: UInt64

    /// The shell convention: status, or 128 + signal.
    public var shellStatus: Int32 { status ?? (128 + (signal ?? 0)) }

    public var description: String {
        "WorkerExit(reason: \(reason), status: \(status.map(String.init) ?? "-"), signal: \(signal.map(String.init) ?? "-"))"
    }
}

/// Which limit ended a worker.
public enum JailLimitKind: String, Sendable, Equatable {
    case wallClock, pids
}
