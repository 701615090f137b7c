import Foundation

/// `/proc/<pid>/status` of a process, for tests that assert what it holds (ids, capabilities,
/// no_new_privs, seccomp mode).
public struct ProcStatus: Sendable {
    /// `Name: value` lines, values trimmed.
    public let fields: [String: String]

    /// nil when the process is gone.
    public init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var f: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            f[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        fields = f
    }

    /// Real, effective, saved and filesystem uid.
    public var uids: [UInt32] { (fields["Uid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) } }
    /// True when CapEff, CapPrm, CapBnd (and CapInh, CapAmb) are all empty.
    public var holdsNoCapability: Bool {
        ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].allSatisfy { fields[$0].map { UInt64($0, radix: 16) == 0 } ?? false }
    }
    /// `State` letter (R, S, T…).
    public var state: Character? { fields["State"]?.first }
}
