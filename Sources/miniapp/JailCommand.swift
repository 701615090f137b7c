import ArgumentParser
import Dispatch
import MiniAppJail
import MiniAppModel
import MiniAppSystem

/// `miniapp jail [--data DIR] [--app DIR] -- CMD [ARG…]`: runs one command in a worker jail
/// built exactly as for a mini-program (spec/cli-and-config.md) and exits with its status
/// (128 + signal when it was killed).
struct JailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jail",
        abstract: "Run one command in a worker jail (default policy; DIRs at /data and /app).",
        discussion: """
            Exit status: the command's, or 128+signal. Setup errors print their code first \
            (POLICY_INVALID, JAIL_SETUP_FAILED, JAIL_UNAVAILABLE) and exit 125, a status no \
            command run this way can be confused with (docker run and chroot use it likewise). \
            A worker ended by the jail prints "miniapp jail: oom", "limit:pids", \
            "limit:wallClock" or "stopped" on stderr. --stdin from a terminal is relayed through \
            a pipe (the terminal itself never enters the jail); output to a terminal has its \
            control characters escaped.
            Example: miniapp jail --app ./pkg --data /tmp/d -- /usr/bin/python3 /app/main.py
            """)

    @Option(help: "Host directory mounted read-write at /data.") var data: String?
    @Option(help: "Host directory mounted read-only at /app.") var app: String?
    @Option(help: "Policy directory holding jail.json and seccomp/ (default: /etc/miniappd/policies, else the built-in policies).") var policyDir: String?
    @Option(help: "State directory (uid table, mountpoint).") var stateDir: String?
    @Option(help: "Program id (selects the uid in privileged mode).") var programId = "cli.jail"
    @Flag(help: "Run unprivileged: a user namespace maps one uid (automatic when not root).") var rootless = false
    @Option(help: "cgroup version: auto, v1, v2, none.") var cgroup: String?
    @Option(help: "cgroup parent directory name (a subtree delegated to this user in rootless mode).") var cgroupParent: String?
    @Option(help: "Memory limit in bytes.") var memory: Int64?
    @Option(help: "Process limit.") var pids: Int64?
    @Option(help: "CPU quota in percent of one CPU (0 = none).") var cpu: Int64?
    @Option(help: "Wall-clock limit in seconds.") var timeout: Double?
    @Option(help: "Extra read-only bind HOST:JAILPATH (repeatable).") var bind: [String] = []
    @Flag(help: "Give the command our stdin (default /dev/null); a terminal is relayed through a pipe.") var stdin = false
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []

    func run() throws {
        // The command is captured verbatim (its own flags are not ours), so ArgumentParser never
        // sees a --help before "--": answer it here instead of running "--help" in a jail.
        if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        let argv = command.first == "--" ? Array(command.dropFirst()) : command
        guard !argv.isEmpty else { throw ValidationError("give the command after --") }
        let box = ExitBox()
        let sem = DispatchSemaphore(value: 0)
        let me = self
        Task {
            box.status = await me.jailed(argv)
            sem.signal()
        }
        sem.wait()
        CurrentProcess.exit(box.status)
    }

    private func jailed(_ argv: [String]) async -> Int32 {
        do throws(MiniAppError) {
            let jailer = try makeJailer()
            var launch = JailLaunch(programId: programId, argv: argv)
            launch.appDir = app.map(absolute)
            launch.dataDir = data.map(absolute)
            launch.extraReadOnlyBinds = try bind.map(parseBind)
            if stdin { launch.stdinFD = try Self.stdinForJail() }
            var limits = jailer.configuration.policy.limits
            if let memory { limits.memoryBytes = UInt64(max(0, memory)) }
            if let pids { limits.pids = UInt64(max(0, pids)) }
            if let cpu { limits.cpuPercent = UInt64(max(0, cpu)) }
            if let timeout { limits.wallClockSeconds = timeout }
            launch.limitsOverride = limits
            let ttys = (CurrentProcess.isTerminal(1), CurrentProcess.isTerminal(2))
            launch.output = { line in
                let fd: Int32 = line.stream == .stdout ? 1 : 2
                let text = (fd == 1 ? ttys.0 : ttys.1) ? TerminalText.escape(line.text) : line.text
                CurrentProcess.writeAll(fd, Array((text + "\n").utf8))
            }
            let worker = try jailer.spawn(launch)
            let exit = await worker.exit
            await worker.removed // its cgroup too, before this process exits
            if let why = Self.reasonToken(exit.reason) { printErr("miniapp jail: \(why) (\(exit))") }
            return exit.shellStatus
        } catch {
            printErr("\(error.code.rawValue) \(error.message)")
            return 125
        }
    }

    private func makeJailer() throws(MiniAppError) -> Jailer {
        let mode: JailMode = rootless || !CurrentProcess.isRoot ? .rootless : .privileged
        var cg: JailPolicy.Cgroup?
        if cgroup != nil || cgroupParent != nil {
            var c = JailPolicy.Cgroup()
            if let cgroup {
                guard let v = JailPolicy.CgroupVersion(rawValue: cgroup) else {
                    throw MiniAppError(.policyInvalid, "--cgroup must be auto, v1, v2 or none", data: ["field": "--cgroup"])
                }
                c.version = v
            }
            if let cgroupParent { c.parent = cgroupParent }
            cg = c
        }
        let source = try PolicySource.resolve(policyDir)
        defer { source.cleanup() } // the profile is compiled at load: the files are not needed after
        let config = try JailPolicy.load(policyDir: source.dir, cgroupOverride: cg)
        let state = stateDir ?? (CurrentProcess.isRoot ? "/var/lib/miniapp" : "/tmp/miniapp-\(CurrentProcess.uid)")
        let jailer = try Jailer(configuration: config, stateDir: state, mode: mode)
        for w in config.warnings { printErr("miniapp jail: warning: \(w)") }
        return jailer
    }

    /// The stable word for an end the jail caused (nil: the program exited or was signalled).
    static func reasonToken(_ r: WorkerExit.Reason) -> String? {
        switch r {
        case .exit, .signal: nil
        case .killedOOM: "oom"
        case .killedLimit(let k): "limit:\(k.rawValue)"
        case .stopped: "stopped"
        }
    }

    /// Our stdin for the worker. A terminal is never handed over: the seccomp profile refuses
    /// only TIOCSTI and TIOCLINUX, and every other terminal ioctl (TCSETS, TIOCSWINSZ, TIOCSPGRP
    /// attempts, TIOCCONS...) would act on the user's real terminal. From a tty the bytes are
    /// relayed through a pipe instead; a pipe or file stdin is passed as it is.
    static func stdinForJail() throws(MiniAppError) -> Int32 {
        guard CurrentProcess.isTerminal(0) else { return 0 }
        let (r, w): (Int32, Int32)
        do { (r, w) = try PipePair().takeBoth() } catch {
            throw MiniAppError(.jailSetupFailed, "cannot create the stdin relay pipe (\(error))", data: ["step": "stdin", "errno": "\(error.errno)"])
        }
        DispatchQueue.global().async {
            let relay = OwnedFD(adopting: w)
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = (try? buf.withUnsafeMutableBytes { p throws(SystemError) in try FileSystem.read(descriptor: 0, into: p) }) ?? 0
                if n <= 0 { break }
                do { try relay.writeAll(buf[0..<n]) } catch { break }
            }
            relay.close()
        }
        return r
    }

    private func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        guard let cwd = CurrentProcess.workingDirectory else { return p }
        return cwd + "/" + p
    }

    private func parseBind(_ s: String) throws(MiniAppError) -> JailBind {
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw MiniAppError(.policyInvalid, "--bind wants HOST:JAILPATH, got '\(s)'", data: ["field": "--bind"]) }
        return JailBind(hostPath: absolute(parts[0]), jailPath: parts[1])
    }
}

private func printErr(_ s: String) { CurrentProcess.writeStandardError(s + "\n") }

/// The command's status, handed from the task to the main thread.
private final class ExitBox: @unchecked Sendable { var status: Int32 = 125 }
