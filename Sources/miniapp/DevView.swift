import Foundation
import MiniAppBridgeMock
import MiniAppJSON

/// How `miniapp dev` shows things: one line per program output line, Bridge call and exit,
/// tagged with the worker; control characters escaped (a program must not drive the
/// developer's terminal).
enum DevView {
    /// A daemon log line → what to show (nil: daemon chatter at info level).
    static func daemonLine(_ line: String) -> String? {
        if let r = line.range(of: " miniappd.worker: ") {
            let rest = line[r.upperBound...]
            let meta = rest.split(separator: " ")
            func value(_ key: String) -> String? { meta.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) } }
            let message = rest.range(of: "] ").map { String(rest[$0.upperBound...]) } ?? String(rest)
            let stream: String = value("stream") == "stderr" ? " stderr" : ""
            let worker: String = value("worker") ?? "?"
            return "[" + worker + stream + "] " + safe(message)
        }
        let isLog = line.first?.isNumber == true && line.contains(" miniappd")
        if isLog && !(line.contains(" warning ") || line.contains(" error ") || line.contains(" critical ")) { return nil }
        return "[miniappd] " + safe(line)
    }

    /// A control notification → its line.
    static func event(_ method: String, _ p: JSONValue?, json: Bool) -> String? {
        guard let p else { return nil }
        switch method {
        case "inspector.event":
            if json { return p.jsonString }
            let worker: String = p["workerId"]?.stringValue ?? "?"
            let method: String = p["method"]?.stringValue ?? "?"
            var params = ""
            if let v = p["params"] { params = " " + v.jsonString }
            var outcome = "ok"
            if let r = p["result"] { outcome = r.jsonString }
            if let c = p["code"]?.stringValue { outcome = c }
            let decision: String = p["decision"]?.stringValue ?? "?"
            let micros: Int64 = p["micros"]?.intValue ?? 0
            return safe("[" + worker + " bridge] " + method + params + " -> " + outcome + " (" + decision + ", \(micros)us)")
        case "program.exited":
            let worker: String = p["workerId"]?.stringValue ?? "?"
            let status: Int64 = p["status"]?.intValue ?? -1
            let reason: String = p["reason"]?.stringValue ?? "?"
            return "[dev] " + worker + " exited: status \(status) (" + reason + ")"
        case "program.restarted", "program.restartFailed":
            return "[dev] \(method) \(p.jsonString)"
        default:
            return nil
        }
    }

    /// The host-provided methods the rules answer: exact names, and globs expanded against the
    /// catalogue's host methods (`catalogue`: the started daemon's methods.json).
    static func hostMethods(bridge: MockBridge, catalogue: String?) -> [String] {
        let known = catalogue.flatMap { FileManager.default.contents(atPath: $0) }
            .flatMap { try? JSONValue.parse(Array($0), options: .policy) }?["methods"]?.objectValue
        let host: [String]? = known.map { m in m.members.filter { $0.value["provider"]?.stringValue == "host" }.map(\.key) }
        var out: [String] = []
        for rule in bridge.rules.rules {
            let names: [String] = host?.filter { MockRules.globMatches(rule.method, $0) } ?? [rule.method]
            for n in names where !out.contains(n) && !n.contains("*") && !n.contains("?") { out.append(n) }
        }
        return out
    }

    /// DIR and its subdirectories (not those starting with `.`), each watched on its own.
    static func directories(under root: String) -> [String] {
        var out = [root]
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: root) else { return out }
        while let rel = walker.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: root + "/" + rel, isDirectory: &isDir), isDir.boolValue else { continue }
            if name.hasPrefix(".") || name == "node_modules" { walker.skipDescendants(); continue }
            out.append(root + "/" + rel)
        }
        return out
    }

    /// Control characters (but tab) as `\u{…}`.
    static func safe(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            let v: UInt32 = u.value
            let control: Bool = (v < 0x20 && v != 0x09) || (v >= 0x7F && v <= 0x9F)
            if control { out += "\\u{" + String(v, radix: 16) + "}" } else { out.unicodeScalars.append(u) }
        }
        return out
    }
}
