/// A Semantic Versioning 2.0.0 version (https://semver.org), compared by its precedence rules:
/// numeric core, then a release sorts above any of its pre-releases, pre-release identifiers
/// compared left to right (numeric ones numerically and below alphanumeric ones), and build
/// metadata ignored. `==` is precedence equality, so `1.0.0+a == 1.0.0+b`; `text` keeps the
/// original spelling.
public struct SemVer: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Major, minor and patch.
    public let major: UInt64, minor: UInt64, patch: UInt64
    /// Pre-release identifiers (after `-`), empty for a release.
    public let preRelease: [String]
    /// Build metadata identifiers (after `+`); not part of precedence.
    public let build: [String]
    /// The version as written.
    public let text: String

    /// Parses `text` strictly: no `v` prefix, no leading zeros, no empty identifiers.
    /// Returns nil for anything SemVer 2.0.0 does not allow.
    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 256 else { return nil }
        var rest = Substring(text)
        var build: [String] = []
        if let plus = rest.firstIndex(of: "+") {
            build = rest[rest.index(after: plus)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            rest = rest[..<plus]
            guard build.allSatisfy({ !$0.isEmpty && SemVer.isIdentifier($0) }) else { return nil }
        }
        var pre: [String] = []
        if let dash = rest.firstIndex(of: "-") {
            pre = rest[rest.index(after: dash)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            rest = rest[..<dash]
            guard pre.allSatisfy({ !$0.isEmpty && SemVer.isIdentifier($0) && !SemVer.hasLeadingZero($0) }) else {
                return nil
            }
        }
        let core = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard core.count == 3 else { return nil }
        var nums: [UInt64] = []
        for part in core {
            guard !part.isEmpty, part.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), !SemVer.hasLeadingZero(part),
                let n = UInt64(part)
            else { return nil }
            nums.append(n)
        }
        (major, minor, patch) = (nums[0], nums[1], nums[2])
        preRelease = pre
        self.build = build
        self.text = text
    }

    public var description: String { text }

    private static func isIdentifier(_ s: some StringProtocol) -> Bool {
        s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }
    }

    private static func isNumeric(_ s: some StringProtocol) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
    }

    private static func hasLeadingZero(_ s: some StringProtocol) -> Bool {
        isNumeric(s) && s.utf8.count > 1 && s.utf8.first == 48
    }

    /// Precedence equality (build metadata ignored).
    public static func == (a: SemVer, b: SemVer) -> Bool {
        a.major == b.major && a.minor == b.minor && a.patch == b.patch && a.preRelease == b.preRelease
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(major)
        hasher.combine(minor)
        hasher.combine(patch)
        hasher.combine(preRelease)
    }

    public static func < (a: SemVer, b: SemVer) -> Bool {
        if a.major != b.major { return a.major < b.major }
        if a.minor != b.minor { return a.minor < b.minor }
        if a.patch != b.patch { return a.patch < b.patch }
        // A release has higher precedence than its pre-releases.
        if a.preRelease.isEmpty || b.preRelease.isEmpty { return !a.preRelease.isEmpty && b.preRelease.isEmpty }
        for (x, y) in zip(a.preRelease, b.preRelease) where x != y {
            return identifierLess(x, y)
        }
        return a.preRelease.count < b.preRelease.count
    }

    /// Numeric identifiers compare numerically (by length first: no leading zeros, so this needs
    /// no integer that could overflow) and sort below alphanumeric ones, which compare in ASCII.
    private static func identifierLess(_ x: String, _ y: String) -> Bool {
        switch (isNumeric(x), isNumeric(y)) {
        case (true, true): x.utf8.count != y.utf8.count ? x.utf8.count < y.utf8.count : Array(x.utf8).lexicographicallyPrecedes(y.utf8)
        case (true, false): true
        case (false, true): false
        case (false, false): Array(x.utf8).lexicographicallyPrecedes(y.utf8)
        }
    }
}
