public import MiniAppModel
import Glibc
import MiniAppJSON

/// Android-style identities: each program id gets its own host uid (= gid) from a configured
/// range, allocated once and persisted in `<stateDir>/jail/uids.json`, so a program's data dir
/// keeps its owner across restarts and no two programs ever share a uid (which would let one
/// signal, ptrace-check or read the files of the other). The file is updated under flock and
/// replaced atomically (write temp + fsync + rename).
public final class UidAllocator: Sendable {
    private let path: String
    private let lockPath: String
    private let start: UInt32
    private let count: UInt32

    public init(stateDir: String, rangeStart: UInt32, rangeCount: UInt32) throws(MiniAppError) {
        let dir = "\(stateDir)/jail"
        do { try CgroupFiles.mkdirs(dir) } catch {
            throw MiniAppError(.jailUnavailable, "cannot create the state directory \(dir): \(error); pass a writable --state-dir", cause: error)
        }
        _ = chmod(dir, 0o700)
        path = "\(dir)/uids.json"
        lockPath = "\(dir)/uids.lock"
        start = rangeStart
        count = rangeCount
        // A table entry outside the configured range (the range was moved, e.g. off the old
        // default 200000 that overlapped /etc/subuid ranges) would keep handing out a uid the
        // operator no longer vouches for: refuse, and say how to migrate.
        let outside = load().filter { $0.value < rangeStart || UInt64($0.value) >= UInt64(rangeStart) + UInt64(rangeCount) }
        if let (id, u) = outside.min(by: { $0.key < $1.key }) {
            throw MiniAppError(
                .policyInvalid,
                "\(path) gives \(id) uid \(u), outside identity.uidRange \(rangeStart)+\(rangeCount) (\(outside.count) such entries); set the range back, or remove the file and chown -R each program's data dir to its new uid after the first launch",
                data: ["field": "identity.uidRangeStart"])
        }
    }

    /// The uid of `programId`, allocating the lowest free one on first use.
    public func uid(for programId: String) throws(MiniAppError) -> UInt32 {
        let lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else {
            throw MiniAppError(.jailUnavailable, "cannot open \(lockPath): \(SystemError.current("open"))")
        }
        let lock = OwnedFD(adopting: lockFD)
        while flock(lock.raw, LOCK_EX) != 0 && errno == EINTR {}
        defer { _ = flock(lock.raw, LOCK_UN) }
        var table = load()
        if let u = table[programId] { return u }
        let used = Set(table.values)
        guard let free = (0..<count).lazy.map({ self.start + $0 }).first(where: { !used.contains($0) }) else {
            throw MiniAppError(.jailUnavailable, "the uid range \(start)+\(count) is exhausted; widen identity.uidRangeCount in jail.json")
        }
        table[programId] = free
        try save(table)
        return free
    }

    private func load() -> [String: UInt32] {
        guard let fd = try? OwnedFD.open(path, O_RDONLY), let bytes = try? fd.readAll(limit: 16 << 20),
              let doc = try? JSONValue.parse(bytes), let obj = doc.objectValue else { return [:] }
        var out: [String: UInt32] = [:]
        for (k, v) in obj { if let i = v.intValue, i >= 0, i <= UInt32.max { out[k] = UInt32(i) } }
        return out
    }

    private func save(_ table: [String: UInt32]) throws(MiniAppError) {
        let obj = JSONObject(table.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int(Int64($0.value))) })
        let tmp = "\(path).tmp"
        do {
            let fd = try OwnedFD.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
            try fd.writeAll(JSONValue.object(obj).serialized())
            _ = fsync(fd.raw)
        } catch {
            throw MiniAppError(.jailUnavailable, "cannot write \(tmp): \(error)", cause: error)
        }
        guard rename(tmp, path) == 0 else {
            throw MiniAppError(.jailUnavailable, "cannot replace \(path): \(SystemError.current("rename"))")
        }
    }
}
