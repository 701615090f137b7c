internal import MiniAppJSON
internal import MiniAppModel
internal import MiniAppSystem
internal import Synchronization

/// A storage key as the bytes the program sent. Swift `String` equality is Unicode canonical
/// equivalence ("é" == "e\u{301}") while SQLite compares bytes, so a `String`-keyed cache could
/// merge two keys the database keeps apart (and miscount the quota); bytes keep them identical.
typealias KeyBytes = [UInt8]

/// The durable key-value store behind `storage.*`: an SQLite table `(program, key) → value`
/// plus an in-memory copy of every committed row, so reads never touch the disk or leave the
/// caller's thread.
///
/// The namespace is the **row key (program, key)**: the structural form of DESIGN.md's
/// `{programId}:{key}`. Keeping the program in its own column makes it unambiguous whatever the
/// key contains (`:`, a prefix of another program's id, `%`/`_` that a LIKE would treat as
/// wildcards): program `a` storing key `b:x` and program `a:b` storing `x` are different rows,
/// and no query ever takes a key pattern from the program.
///
/// Writes use group commit: `enqueue` records the write and returns at once; one writer
/// (a serial `WorkQueue`, never the caller's thread) takes every pending write, runs them in
/// one `BEGIN IMMEDIATE … COMMIT` (fsynced: `synchronous=FULL`), then updates the cache and
/// answers each caller. So a reply means durable, and N concurrent writers cost one fsync.
final class StorageStore: Sendable {
    struct Entry {
        var value: JSONValue
        /// Key bytes + serialized value bytes: what the quota counts.
        var size: Int
    }

    enum Op {
        case set(key: KeyBytes, text: String, entry: Entry)
        case remove(key: KeyBytes)
        var key: KeyBytes {
            switch self {
            case .set(let k, _, _), .remove(let k): k
            }
        }
    }

    struct PendingWrite {
        let program: String
        let op: Op
        let reply: BridgeReply
    }

    /// One program's data: what is committed (served to reads) and what the quota sees once
    /// every queued write lands (so concurrent writes cannot overshoot the quota together).
    struct Space {
        var committed: [KeyBytes: Entry] = [:]
        var projectedSizes: [KeyBytes: Int] = [:]
        var projectedBytes = 0
        /// Writes queued or being committed.
        var pendingWrites = 0

        mutating func project(_ op: Op) {
            projectedBytes -= projectedSizes[op.key] ?? 0
            switch op {
            case .set(let key, _, let entry):
                projectedSizes[key] = entry.size
                projectedBytes += entry.size
            case .remove(let key):
                projectedSizes[key] = nil
            }
        }

        mutating func commit(_ op: Op) {
            switch op {
            case .set(let key, _, let entry): committed[key] = entry
            case .remove(let key): committed[key] = nil
            }
        }

        /// Resets the projection to the committed state (after a failed transaction).
        mutating func resetProjection() {
            projectedSizes = committed.mapValues(\.size)
            projectedBytes = projectedSizes.values.reduce(0, +)
        }
    }

    struct State {
        var spaces: [String: Space] = [:]
        var queue: [PendingWrite] = []
        var drainScheduled = false
        var closed = false
    }

    private let db: SQLiteDatabase
    private let limits: ServicesConfig.Storage
    private let state: Mutex<State>
    private let writer = WorkQueue(name: "storage-writer")

    /// Opens or creates the database at `path` and loads every row into memory. A row whose
    /// value is not valid JSON means the file was damaged outside the daemon: opening fails
    /// (fail closed) rather than serving a partial store.
    init(path: String, limits: ServicesConfig.Storage) throws(MiniAppError) {
        self.limits = limits
        do {
            db = try SQLiteDatabase(path: path)
            try db.execute(
                """
                CREATE TABLE IF NOT EXISTS kv (
                    program TEXT NOT NULL,
                    key TEXT NOT NULL,
                    value TEXT NOT NULL,
                    PRIMARY KEY (program, key)
                ) WITHOUT ROWID;
                PRAGMA user_version = 1;
                """)
        } catch {
            throw MiniAppError(
                .internal, "cannot open the storage database \(path); check the state directory", cause: error)
        }
        state = Mutex(State(spaces: try Self.load(db, path: path)))
    }

    private static func load(_ db: SQLiteDatabase, path: String) throws(MiniAppError) -> [String: Space] {
        let rows: [[SQLiteValue]]
        do {
            rows = try db.query("SELECT program, key, value FROM kv")
        } catch {
            throw MiniAppError(.internal, "cannot read the storage database \(path)", cause: error)
        }
        var spaces: [String: Space] = [:]
        for row in rows {
            guard row.count == 3, let program = row[0].textValue, let key = row[1].textValue,
                let text = row[2].textValue
            else {
                throw MiniAppError(.internal, "storage database \(path) has a malformed row; restore it from backup")
            }
            let value: JSONValue
            do {
                value = try JSONValue.parse(text)
            } catch {
                throw MiniAppError(
                    .internal, "storage database \(path) holds invalid JSON for \(program); restore it from backup",
                    cause: error)
            }
            let keyBytes = Array(key.utf8)
            spaces[program, default: Space()].committed[keyBytes] = Entry(
                value: value, size: keyBytes.count + text.utf8.count)
        }
        for name in spaces.keys { spaces[name]?.resetProjection() }
        return spaces
    }

    // MARK: - reads (caller's thread, memory only)

    /// The committed value of `key`, or nil.
    func get(program: String, key: KeyBytes) -> JSONValue? {
        state.withLock { $0.spaces[program]?.committed[key]?.value }
    }

    /// The program's committed keys starting with `prefix`, sorted by bytes.
    func keys(program: String, prefix: KeyBytes) -> [KeyBytes] {
        let all = state.withLock { s in
            s.spaces[program].map { Array($0.committed.keys) } ?? []
        }
        return all.filter { $0.starts(with: prefix) }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Bytes and keys the program uses once queued writes land (for tests and `programs.list`).
    func usage(program: String) -> (bytes: Int, keys: Int) {
        state.withLock { s in
            let space = s.spaces[program]
            return (space?.projectedBytes ?? 0, space?.projectedSizes.count ?? 0)
        }
    }

    // MARK: - writes

    /// Queues a write after the quota check; `reply` runs once it is committed (or failed).
    /// A remove is always queued, even of an absent key: an earlier write of that key may still
    /// be in flight, and acknowledging the remove before it lands would be a lie after a crash.
    /// `quotaBytes`: an operator's lower byte quota for this program (the lower of it and
    /// `quotaBytesPerProgram` applies).
    func enqueue(program: String, op: Op, quotaBytes: Int? = nil, reply: @escaping BridgeReply) {
        let outcome: Result<Bool, MiniAppError> = state.withLock { s in
            if s.closed {
                return .failure(MiniAppError(.internal, "storage is shutting down; retry after the daemon restarts"))
            }
            var space = s.spaces[program] ?? Space()
            if space.pendingWrites >= limits.maxPendingWritesPerProgram {
                return .failure(MiniAppError(
                    .rateLimited, "storage: \(space.pendingWrites) writes are still being stored; wait for their replies"))
            }
            if case .set(let key, _, let entry) = op {
                if let err = quotaError(space, key: key, size: entry.size, quotaBytes: quotaBytes) { return .failure(err) }
            }
            space.project(op)
            space.pendingWrites += 1
            s.spaces[program] = space
            s.queue.append(PendingWrite(program: program, op: op, reply: reply))
            let schedule = !s.drainScheduled
            s.drainScheduled = true
            return .success(schedule)
        }
        switch outcome {
        case .failure(let err): reply(.failure(err))
        case .success(let schedule): if schedule { writer.submit { self.drain() } }
        }
    }

    private func quotaError(_ space: Space, key: KeyBytes, size: Int, quotaBytes: Int?) -> MiniAppError? {
        let maxBytes = min(limits.quotaBytesPerProgram, quotaBytes ?? Int.max)
        let old = space.projectedSizes[key]
        let bytes = space.projectedBytes - (old ?? 0) + size
        let count = space.projectedSizes.count + (old == nil ? 1 : 0)
        if count > limits.quotaKeysPerProgram {
            return MiniAppError(
                .quotaExceeded,
                "storage quota exceeded: at most \(limits.quotaKeysPerProgram) keys per program; remove keys first",
                data: ["limit": "keys"])
        }
        if bytes > maxBytes {
            return MiniAppError(
                .quotaExceeded,
                "storage quota exceeded: at most \(maxBytes) bytes per program (keys + values); remove keys first",
                data: ["limit": "bytes"])
        }
        return nil
    }

    /// Commits everything queued so far; waits for it. For shutdown and tests.
    func flush() {
        writer.runBlocking { self.drain() }
    }

    /// Flushes, refuses further writes (INTERNAL "shutting down") and closes the database.
    func close() {
        state.withLock { $0.closed = true }
        flush()
        db.close()
    }

    // MARK: - the writer (serial queue)

    private func drain() {
        while true {
            let batch: [PendingWrite] = state.withLock { s in
                let b = s.queue
                s.queue = []
                if b.isEmpty { s.drainScheduled = false }
                return b
            }
            if batch.isEmpty { return }
            let outcome = commit(batch)
            finish(batch, outcome)
        }
    }

    private func commit(_ batch: [PendingWrite]) -> Result<Void, SQLiteError> {
        do {
            try db.transaction { () throws(SQLiteError) in
                for w in batch {
                    switch w.op {
                    case .set(let key, let text, _):
                        try db.run(
                            "INSERT OR REPLACE INTO kv (program, key, value) VALUES (?, ?, ?)",
                            [.text(w.program), .text(String(decoding: key, as: UTF8.self)), .text(text)])
                    case .remove(let key):
                        try db.run(
                            "DELETE FROM kv WHERE program = ? AND key = ?",
                            [.text(w.program), .text(String(decoding: key, as: UTF8.self))])
                    }
                }
            }
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    private func finish(_ batch: [PendingWrite], _ outcome: Result<Void, SQLiteError>) {
        state.withLock { s in
            for w in batch { s.spaces[w.program]?.pendingWrites -= 1 }
            switch outcome {
            case .success:
                for w in batch { s.spaces[w.program]?.commit(w.op) }
            case .failure:
                // Nothing of the batch landed: the projection of each touched program is rebuilt
                // from what is committed plus what is still queued.
                for program in Set(batch.map(\.program)) {
                    s.spaces[program]?.resetProjection()
                    for w in s.queue where w.program == program { s.spaces[program]?.project(w.op) }
                }
            }
        }
        let result: Result<JSONValue, MiniAppError>
        switch outcome {
        case .success: result = .success(.object([:]))
        case .failure(let err) where err.isDiskFull:
            result = .failure(MiniAppError(.quotaExceeded, "the daemon's disk is full; the write was not stored", cause: err))
        case .failure(let err):
            result = .failure(MiniAppError(.internal, "the write could not be stored; retry later", cause: err))
        }
        for w in batch { w.reply(result) }
    }
}
