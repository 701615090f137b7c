import ArgumentParser
import Foundation
import MiniAppBridgeMock
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppSystem

extension ControlCommands {
    /// `miniapp inspect [ID]`: the Bridge Inspector as a live stream, one line per call.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stream Bridge calls live (Ctrl-C to stop).")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Only this program id.") var id: String?
        @Flag(help: "Print raw JSON events.") var json = false
        @Option(help: "Stop after this many events (0 = forever).") var count: Int = 0
        @Option(help: "Only methods matching this glob (e.g. 'payment.*').") var method: String?
        @Flag(help: "Only calls that failed (denied, refused or answered with an error).") var errors = false
        @Option(help: "Also append each call with its params and result to FILE (JSON lines) for miniapp replay.")
        var record: String?

        func run() throws {
            let client = try failing { try socket.client() }
            var params: JSONObject = [:]
            if let id { params["programId"] = .string(id) }
            _ = try failing { try client.call("inspector.subscribe", params) }
            let recorder = try record.map { try Recorder(path: $0) }
            var seen = 0
            while let msg = try failing({ try client.nextNotification() }) {
                guard msg["method"]?.stringValue == "inspector.event", let e = msg["params"] else { continue }
                if let method, !MockRules.globMatches(method, e["method"]?.stringValue ?? "") { continue }
                if errors && e["code"] == nil { continue }
                print(json ? TerminalText.escapeJSON(e.jsonString) : Self.line(e))
                recorder?.append(e)
                CurrentProcess.flushStandardOutput()
                seen += 1
                if count > 0 && seen >= count { return }
            }
        }

        /// One event as a line. Every text field is escaped (`TerminalText`): the method name is
        /// whatever the program sent, and a raw one could forge a whole "allow" line (CR, LF) or
        /// retitle the terminal (ESC).
        static func line(_ e: JSONValue) -> String {
            func text(_ key: String) -> String { TerminalText.escape(e[key]?.stringValue ?? "?") }
            let code = e["code"]?.stringValue.map { " " + TerminalText.escape($0) } ?? ""
            let t = TerminalText.escape(e["time"]?.stringValue ?? e["time"]?.jsonString ?? "")
            return "\(t) \(text("workerId")) \(text("programId")) \(text("method")) \(text("decision"))\(code) "
                + "\(e["micros"]?.intValue ?? 0)us in=\(e["bytesIn"]?.intValue ?? 0) out=\(e["bytesOut"]?.intValue ?? 0)"
        }
    }

    /// `inspect --record FILE`: appends replayable events (tokens were redacted by the daemon,
    /// which never sends one); says once when events carry no payloads.
    final class Recorder {
        private let handle: FileHandle
        private var warned = false

        init(path: String) throws {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                let h = FileHandle(forWritingAtPath: path)
            else { throw ValidationError("cannot write the recording \(path)") }
            handle = h
        }

        func append(_ event: JSONValue) {
            guard Recording.isReplayable(event) else {
                if !warned {
                    FileHandle.standardError.write(Data("inspect: events without params and results are not recorded: record a simulated program (miniapp dev) or run the daemon with inspectorPayloads on\n".utf8))
                    warned = true
                }
                return
            }
            handle.write(Data((event.jsonString + "\n").utf8))
        }
    }

    /// `miniapp top`: workers, memory, CPU, calls/s and denials, refreshed every second.
    /// `--iterations N` stops after N refreshes (scripts, tests); when stdout is not a terminal
    /// the screen is not cleared, so the output is plain text, one table per refresh.
    struct Top: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Live view of workers (Ctrl-C to stop; --iterations 1 for a one-shot snapshot).")
        @OptionGroup var socket: SocketOptions
        @Option(help: "Refresh interval in seconds.") var interval: Double = 1
        @Option(help: "Stop after this many refreshes (0 = forever; 1 = one snapshot, for scripts).") var iterations: Int = 0

        func validate() throws {
            guard interval > 0, interval.isFinite else { throw ValidationError("--interval must be a positive number of seconds") }
            guard iterations >= 0 else { throw ValidationError("--iterations must be 0 (forever) or more") }
        }

        func run() throws {
            let clearScreen = CurrentProcess.isTerminal(1)
            let client = try failing { try socket.client() }
            var last: [String: (calls: Int64, cpu: Int64)] = [:]
            var n = 0
            while iterations == 0 || n < iterations {
                let r = try failing { try client.call("programs.list") }
                let info = try failing { try client.call("daemon.info") }
                let workers = r["workers"]?.arrayValue ?? []
                var rates: [String: (Double, Double)] = [:]
                for w in workers {
                    guard let id = w["workerId"]?.stringValue else { continue }
                    let calls = w["bridgeCalls"]?.intValue ?? 0
                    let cpu = w["cpuMicros"]?.intValue ?? 0
                    if let prev = last[id] {
                        rates[id] = (Double(calls - prev.calls) / interval, Double(cpu - prev.cpu) / (interval * 10_000))
                    }
                    last[id] = (calls, cpu)
                }
                if clearScreen { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print("miniappd \(info["version"]?.stringValue ?? "") host \(info["hostVersion"]?.stringValue ?? "") "
                    + "mode \(info["mode"]?.stringValue ?? "") cgroups \(info["cgroups"]?.stringValue ?? "") "
                    + "workers \(workers.count) denials \(info["denials"]?.intValue ?? 0)")
                if let data = info["dataLimits"]?.stringValue, data != "enforced" { print("/data limits \(data)") }
                print(WorkerTable.render(workers, rates: rates))
                CurrentProcess.flushStandardOutput()
                n += 1
                if iterations == 0 || n < iterations { Thread.sleep(forTimeInterval: interval) }
            }
        }
    }
}

/// The `ps`/`top` table.
enum WorkerTable {
    static func render(_ workers: [JSONValue], rates: [String: (Double, Double)] = [:]) -> String {
        var rows = [["WORKER", "PROGRAM", "VERSION", "STATE", "PID", "MEM", "CPU", "CALLS", "CALLS/S", "CPU%", "DATA", "FILES"]]
        for w in workers {
            let id = w["workerId"]?.stringValue ?? "?"
            let rate = rates[id]
            rows.append([
                id, w["id"]?.stringValue ?? "?", w["version"]?.stringValue ?? "?", w["state"]?.stringValue ?? "?",
                String(w["pid"]?.intValue ?? 0), bytes(w["memoryBytes"]?.intValue ?? 0),
                String(format: "%.2fs", Double(w["cpuMicros"]?.intValue ?? 0) / 1e6), String(w["bridgeCalls"]?.intValue ?? 0),
                rate.map { String(format: "%.0f", $0.0) } ?? "-", rate.map { String(format: "%.1f", $0.1) } ?? "-",
                dataColumn(w, "dataBytes", "dataCapacityBytes", bytes), dataColumn(w, "dataInodes", "dataCapacityInodes") { String($0) },
            ])
        }
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { r in
            zip(r, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// "used/capacity" of the worker's /data volume, "-" when it has none (rootless mode).
    static func dataColumn(_ w: JSONValue, _ used: String, _ capacity: String, _ show: (Int64) -> String) -> String {
        guard let u = w[used]?.intValue, let c = w[capacity]?.intValue else { return "-" }
        return "\(show(u))/\(show(c))"
    }

    static func bytes(_ n: Int64) -> String {
        n >= 1 << 20 ? String(format: "%.1fM", Double(n) / 1_048_576) : String(format: "%.0fK", Double(n) / 1024)
    }
}
