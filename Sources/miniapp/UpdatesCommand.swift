import ArgumentParser
import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel

extension ControlCommands {
    /// `miniapp updates [--check] [ID]`: per program the active, previous and staged versions and
    /// the last update check (`updates.status`); `--check` runs `updates.check` first.
    struct Updates: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show active, previous and staged versions and the last update check (--check: check the registry now).")
        @OptionGroup var socket: SocketOptions
        @Flag(help: "Check the registry now (updates.check), then show the status.") var check = false
        @Flag(help: "Print the raw JSON of updates.status.") var json = false
        @Argument(help: "Program id (default: every installed program).") var id: String?

        func run() throws {
            let params: JSONObject = id.map { ["id": .string($0)] } ?? [:]
            let client = try failing { try socket.client() }
            if check { _ = try failing { try client.call("updates.check", params) } }
            let r = try failing { try client.call("updates.status", params) }
            if json { return print(r.jsonString) }
            for p in r["programs"]?.arrayValue ?? [] { print(Self.line(p)) }
        }

        /// `ID active=… previous=… staged=… [rejected=V] last-check=OUTCOME[ TO][ CODE] at=…`.
        static func line(_ p: JSONValue) -> String {
            func v(_ key: String) -> String { p[key]?.stringValue ?? "-" }
            var s = "\(v("id"))\tactive=\(v("active"))\tprevious=\(v("previous"))\tstaged=\(v("staged"))"
            if let r = p["rejected"]?["version"]?.stringValue { s += "\trejected=\(r)" }
            guard let c = p["lastCheck"] else { return s + "\tlast-check=never" }
            s += "\tlast-check=\(c["outcome"]?.stringValue ?? "?")"
            if let to = c["to"]?.stringValue { s += " \(to)" }
            if let code = c["code"]?.stringValue { s += " \(code)" }
            if let at = c["at"]?.intValue {
                s += "\tat=" + ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(at)))
            }
            return s
        }
    }

    /// `miniapp restart ID`: `programs.restart` (stop, launch again; a staged version runs now).
    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a program and launch it again (applies a staged update now).")
        @OptionGroup var socket: SocketOptions
        @Argument(help: "Program id.") var id: String
        func run() throws {
            let r = try failing { try socket.client().call("programs.restart", ["id": .string(id)]) }
            print("\(r["workerId"]?.stringValue ?? "?") pid=\(r["pid"]?.intValue ?? 0) \(id) \(r["version"]?.stringValue ?? "")")
        }
    }
}
