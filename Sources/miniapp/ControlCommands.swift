import ArgumentParser
import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem

/// The control-API verbs (spec/cli-and-config.md): `miniapp --socket PATH VERB …`.
enum ControlCommands {
    static let all: [any ParsableCommand.Type] = [
        Install.self, Launch.self, Prewarm.self, PS.self, Stop.self, Suspend.self, Resume.self, Inspect.self, Top.self,
        Packages.self, Info.self, Send.self, Updates.self, Restart.self,
    ]
}

/// `--socket PATH`, accepted before or after the verb (see `MiniApp.hoistSocketOption`).
struct SocketOptions: ParsableArguments {
    @Option(name: .long, help: "The daemon's control socket.")
    var socket: String = ProcessInfo.processInfo.environment["MINIAPPD_SOCKET"] ?? "/run/miniappd/control.sock"

    func client() throws -> ControlClient { try ControlClient(socketPath: socket) }
}

/// Prints a daemon error the way scripts expect (code first) and exits 1.
func failing<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as MiniAppError {
        var line = "\(e.code.rawValue) \(e.message)"
        if let reason = e.data["reason"] { line += " (reason: \(reason))" }
        if let required = e.data["required"] { line += " (required host version: \(required))" }
        // The message may quote what a program sent (a host provider's error, an entry name).
        FileHandle.standardError.write(Data((TerminalText.escape(line) + "\n").utf8))
        throw ExitCode(1)
    }
}

extension ControlCommands {
    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install a package (verified first).",
            discussion: "The file is opened here, with your permissions, and its descriptor passed to the daemon (packages.install {fd: true}).")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "The package zip.") var file: String
        @Flag(help: "Allow installing a lower version than the active one.") var allowDowngrade = false
        func run() throws {
            let fd = try ControlCommands.open(file)
            let r = try failing { try ControlCommands.install(descriptor: fd.raw, socket: socket.socket, allowDowngrade: allowDowngrade) }
            print("installed \(r["id"]?.stringValue ?? "?") \(r["version"]?.stringValue ?? "?") active=\(r["active"]?.stringValue ?? r["active"]?.jsonString ?? "?")")
        }
    }

    /// Opens the package (non-blocking: a FIFO must not hang the CLI; the daemon checks the type).
    private static func open(_ file: String) throws -> OwnedFD {
        do { return try OwnedFD.open(file, options: .nonBlocking) } catch {
            CurrentProcess.writeStandardError("miniapp: cannot open \(file): \(error)\n")
            throw ExitCode(1)
        }
    }

    /// One `packages.install {fd: true}` with `descriptor` attached (SCM_RIGHTS) to the request's
    /// own sendmsg, on a connection of its own.
    static func install(descriptor: Int32, socket: String, allowDowngrade: Bool) throws(MiniAppError) -> JSONValue {
        try ControlClient(socketPath: socket).call(
            "packages.install", ["fd": true, "allowDowngrade": .bool(allowDowngrade)], passing: descriptor)
    }

    struct Launch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Launch an installed program.")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Program id.") var id: String
        @Argument(parsing: .postTerminator, help: "Arguments after the entry point.") var args: [String] = []
        func run() throws {
            var params: JSONObject = ["id": .string(id)]
            if !args.isEmpty { params["args"] = .array(args.map { .string($0) }) }
            let r = try failing { try socket.client().call("programs.launch", params) }
            print("\(r["workerId"]?.stringValue ?? "?") pid=\(r["pid"]?.intValue ?? 0) \(id) \(r["version"]?.stringValue ?? "")")
        }
    }

    struct Prewarm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prewarm a node or Python program: its worker is made now and held before the program's code runs; the next launch of ID releases it.")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Program id.") var id: String
        func run() throws {
            let r = try failing { try socket.client().call("programs.prewarm", ["id": .string(id)]) }
            print("\(r["workerId"]?.stringValue ?? "?") pid=\(r["pid"]?.intValue ?? 0) \(id) \(r["version"]?.stringValue ?? "") prewarmed=\(r["prewarmed"]?.boolValue ?? false)")
        }
    }

    struct PS: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ps", abstract: "List workers.")
        @OptionGroup var socket: SocketOptions
        @Flag(help: "Print the raw JSON.") var json = false
        func run() throws {
            let r = try failing { try socket.client().call("programs.list") }
            if json { return print(r.jsonString) }
            print(WorkerTable.render(r["workers"]?.arrayValue ?? []))
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a worker (grace, then kill its cgroup).")
        @OptionGroup var socket: SocketOptions
        @Argument var workerId: String
        @Option(help: "Milliseconds between SIGTERM and SIGKILL.") var grace: Int = 2000
        func run() throws {
            let r = try failing {
                try socket.client().call("programs.stop", ["workerId": .string(workerId), "graceMillis": .int(Int64(grace))])
            }
            print("stopped \(workerId) status=\(r["status"]?.intValue ?? -1)")
        }
    }

    struct Suspend: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Freeze a worker.")
        @OptionGroup var socket: SocketOptions
        @Argument var workerId: String
        func run() throws { _ = try failing { try socket.client().call("programs.suspend", ["workerId": .string(workerId)]) } }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Thaw a suspended worker.")
        @OptionGroup var socket: SocketOptions
        @Argument var workerId: String
        func run() throws { _ = try failing { try socket.client().call("programs.resume", ["workerId": .string(workerId)]) } }
    }

    struct Send: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send an event to a worker.")
        @OptionGroup var socket: SocketOptions
        @Argument var workerId: String
        @Argument var name: String
        @Argument(help: "Event data as JSON.") var data: String = "{}"
        func run() throws {
            guard let d = try? JSONValue.parse(data) else { throw ValidationError("data must be JSON, e.g. '{\"x\":1}'") }
            _ = try failing {
                try socket.client().call("programs.send", ["workerId": .string(workerId), "name": .string(name), "data": d])
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show daemon.info.")
        @OptionGroup var socket: SocketOptions
        func run() throws { print(try failing { try socket.client().call("daemon.info") }.jsonString) }
    }

    struct Packages: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, roll back or remove installed packages.", subcommands: [List.self, Rollback.self, Remove.self],
            defaultSubcommand: List.self)
        struct List: ParsableCommand {
            @OptionGroup var socket: SocketOptions
            func run() throws {
                let r = try failing { try socket.client().call("packages.list") }
                for p in r["packages"]?.arrayValue ?? [] {
                    let versions = (p["versions"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ",")
                    print("\(p["id"]?.stringValue ?? "?")\tactive=\(p["active"]?.stringValue ?? "-")\tversions=\(versions)\tpending=\(p["pending"]?.stringValue ?? "-")")
                }
            }
        }
        struct Rollback: ParsableCommand {
            @OptionGroup var socket: SocketOptions
            @Argument var id: String
            func run() throws {
                let r = try failing { try socket.client().call("packages.rollback", ["id": .string(id)]) }
                print("\(id) active=\(r["active"]?.stringValue ?? "?")")
            }
        }
        struct Remove: ParsableCommand {
            @OptionGroup var socket: SocketOptions
            @Argument var id: String
            func run() throws { _ = try failing { try socket.client().call("packages.remove", ["id": .string(id)]) } }
        }
    }
}
