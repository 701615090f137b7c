public import MiniAppModel
import MiniAppSystem

/// Staged rollout (spec/registry.md `rollout`): which devices take a published version.
///
/// The rule, exactly: `h` = the first 8 bytes, read as a big-endian unsigned integer, of
/// SHA-256 of the UTF-8 text `deviceId + "\n" + programId + "\n" + version`. The device takes
/// the version when `h < rollout × 2^64` (rollout ≥ 1: every device; ≤ 0: none).
///
/// `h` does not depend on the fraction, so raising the fraction of a version only adds devices:
/// a device under 0.2 is under 0.5. The version is part of the hash, so each version reaches
/// a different sample of the fleet (the same devices are not always the first to take a risk).
public enum Rollout {
    /// 2^64 as a Double (exact).
    static let twoTo64 = 18_446_744_073_709_551_616.0

    /// The device's position for this program version, uniform in 0 ..< 2^64.
    public static func bucket(deviceId: String, programId: String, version: String) -> UInt64 {
        let digest = SHA256Hasher.digest(Array("\(deviceId)\n\(programId)\n\(version)".utf8))
        return digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// Whether the device takes `version` of `programId` published with `fraction`.
    public static func takes(deviceId: String, programId: String, version: String, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        let threshold = fraction * twoTo64
        guard threshold < twoTo64 else { return true }
        return bucket(deviceId: deviceId, programId: programId, version: version) < UInt64(threshold)
    }
}

/// The device's random id for the rollout rule: `STATE/device-id`, 32 lowercase hex digits and
/// a newline, 0600, created once and kept across restarts and upgrades. Removing the file makes
/// the device a new one.
public enum DeviceIdentity {
    /// Reads the id at `path`, creating it on first use: written to a temporary file, then
    /// hard-linked into place, which fails if the file appeared meanwhile (two daemons starting
    /// on a fresh state dir agree on one id). A file that is not an id is replaced (a damaged
    /// file must not pin the device outside every rollout).
    public static func load(path: String) throws(MiniAppError) -> String {
        if let existing = read(path) { return existing }
        var rng = SystemRandomNumberGenerator()  // getrandom(2)
        let raw = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let id = raw.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let tmp = "\(path).tmp-\(CurrentProcess.pid)"
        try? FileSystem.removeFile(tmp)
        do {
            let fd = try OwnedFD.open(tmp, options: [.writeOnly, .create, .exclusive, .noFollow], mode: 0o600)
            try fd.writeAll(Array((id + "\n").utf8))
            try? FileSystem.sync(descriptor: fd.raw)
        } catch {
            try? FileSystem.removeFile(tmp)
            throw MiniAppError(.internal, "cannot write the device id \(tmp): \(error); check the state directory")
        }
        defer { try? FileSystem.removeFile(tmp) }
        if (try? FileSystem.link(tmp, to: path)) == nil {
            if let raced = read(path) { return raced }
            do { try FileSystem.rename(tmp, to: path) } catch {
                throw MiniAppError(.internal, "cannot write the device id \(path): \(error); check the state directory")
            }
        }
        return id
    }

    private static func read(_ path: String) -> String? {
        guard let bytes = try? OwnedFD.open(path, options: .noFollow).readAll(limit: 256) else { return nil }
        let hex = bytes.last == 10 ? bytes.dropLast() : bytes[...]
        guard hex.count == 32, hex.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return String(decoding: hex, as: UTF8.self)
    }
}
