/// Checks the privileged-mode uid range (`identity.uidRangeStart/Count`; gid = uid) against the
/// host's id databases. Why: whoever owns an id outside the jail owns the files of the program
/// that gets it. A user with a subordinate range in /etc/subuid (shadow's useradd hands out
/// 100000+65536·n: the second user gets 165536–231071) can map those ids in a user namespace of
/// their own (newuidmap) and then read or replace a program's /data; an account in /etc/passwd
/// or a group in /etc/group with an id in the range has the same power directly. Pure: the caller
/// reads the files (MiniAppJail `Jailer`, paths injectable for tests).
public enum HostIDRanges {
    /// One host file's text, with its path for the message.
    public struct Source: Sendable {
        public enum Kind: Sendable { case subordinate, passwd, group }
        public var path: String
        public var kind: Kind
        public var text: String
        public init(path: String, kind: Kind, text: String) { self.path = path; self.kind = kind; self.text = text }
    }

    /// The ids the kernel or libc treat specially and a program must never get: nobody/nogroup
    /// and the 16-bit -1 (65534, 65535), the kernel's overflow ids (`overflowIDs`, default 65534).
    public static let reserved: Set<UInt64> = [65534, 65535]

    /// "file line N (text) overlaps the range" for every entry of `sources` inside
    /// `start ..< start+count`, plus any reserved or overflow id inside it; empty when clear.
    public static func overlaps(start: UInt64, count: UInt64, sources: [Source], overflowIDs: [UInt64] = []) -> [String] {
        let range = start..<(start + count)
        var found: [String] = []
        for id in reserved.union(overflowIDs).sorted() where range.contains(id) {
            found.append("id \(id) (nobody / overflow id) lies inside the range")
        }
        for s in sources {
            for (i, raw) in s.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters()
                guard !line.isEmpty, !line.hasPrefix("#") else { continue }
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                let hit: Bool
                switch s.kind {
                case .subordinate:
                    guard f.count >= 3, let a = UInt64(f[1]), let n = UInt64(f[2]), n > 0 else { continue }
                    hit = a < range.upperBound && range.lowerBound < a + n
                case .passwd:
                    hit = f.count >= 4 && [f[2], f[3]].contains { UInt64($0).map(range.contains) == true }
                case .group:
                    hit = f.count >= 3 && UInt64(f[2]).map(range.contains) == true
                }
                if hit { found.append("\(s.path) line \(i + 1) (\(line)) overlaps it") }
            }
        }
        return found
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        var s = self
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}
