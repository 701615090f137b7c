public import MiniAppModel
import MiniAppSystem
import Synchronization

/// Hands out worker ids (`w-1`, `w-2`, …) that are never reused, not even across daemon restarts
/// or a `kill -9` (spec/control-api.md): a host that kept `w-7` from before a crash must never
/// reach a different program under that name.
///
/// Ids are reserved in blocks: the file holds the first id *not yet reserved*, written with
/// fsync before any id of the new block is handed out. A crash loses at most the rest of a block.
public final class WorkerIDAllocator: Sendable {
    private struct State {
        var next: UInt64
        var reservedUpTo: UInt64
    }

    private let path: String
    private let block: UInt64
    private let state: Mutex<State>

    /// Opens (or creates) the counter file at `path`. Only a missing file starts from `w-1`
    /// (a fresh state directory): any other failure to read it stops the daemon, since
    /// starting over would hand out ids that hosts may still hold.
    public init(path: String, block: UInt64 = 256) throws(MiniAppError) {
        self.path = path
        self.block = block
        let start = try Self.readStart(path) ?? 1
        state = Mutex(State(next: start, reservedUpTo: start))
    }

    /// The persisted first free id, or nil when the file does not exist (ENOENT).
    static func readStart(_ path: String) throws(MiniAppError) -> UInt64? {
        let bytes: [UInt8]
        do {
            bytes = try OwnedFD.open(path, options: .noFollow).readAll(limit: 64)
        } catch {
            if error.isNoSuchEntry { return nil }
            throw MiniAppError(
                .internal,
                "cannot read the worker id counter \(path): \(error). Fix its permissions or file system; starting over at w-1 would reuse worker ids",
                cause: error)
        }
        let text = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace).first ?? ""
        guard let v = UInt64(text), v >= 1 else {
            throw MiniAppError(.internal, "worker id counter \(path) is corrupt; restore it or remove the state dir")
        }
        return v
    }

    /// The next id.
    public func next() throws(MiniAppError) -> String {
        try state.withLock { s throws(MiniAppError) -> String in
            if s.next >= s.reservedUpTo {
                let upTo = s.next + block
                try persist(upTo)
                s.reservedUpTo = upTo
            }
            defer { s.next += 1 }
            return "w-\(s.next)"
        }
    }

    private func persist(_ value: UInt64) throws(MiniAppError) {
        do {
            try AtomicFile.write(path: path, bytes: Array("\(value)\n".utf8), mode: 0o600)
        } catch {
            throw MiniAppError(.internal, "cannot persist the worker id counter at \(path): \(error)", cause: error)
        }
    }
}
