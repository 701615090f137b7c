internal import CSQLite
#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization

/// A value bound to or read from an SQLite statement.
public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    /// The text, or nil for other types.
    public var textValue: String? { if case .text(let s) = self { s } else { nil } }
    /// The integer, or nil for other types.
    public var integerValue: Int64? { if case .integer(let i) = self { i } else { nil } }
}

/// A failed SQLite call: the primary and extended result codes and SQLite's own message.
public struct SQLiteError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Primary result code (`SQLITE_FULL`, `SQLITE_CORRUPT`, …).
    public let code: Int32
    /// Extended result code (e.g. `SQLITE_IOERR_FSYNC`).
    public let extendedCode: Int32
    /// `sqlite3_errmsg` at the time of the failure.
    public let message: String
    /// What the wrapper was doing ("open", "prepare", "step", …).
    public let operation: String

    /// True for "the disk is full" (SQLITE_FULL): the caller may report a quota-like error.
    public var isDiskFull: Bool { code == SQLITE_FULL }

    public var description: String { "sqlite \(operation): \(message) (code \(code), extended \(extendedCode))" }
}

/// A small safe wrapper over one sqlite3 connection.
///
/// - Statements are prepared once and cached by SQL text (`run`/`query` reuse them).
/// - Opened in WAL mode with `synchronous=FULL`, so a committed transaction has been fsynced
///   to the WAL before COMMIT returns: an acknowledged write survives `kill -9` and power loss
///   (in WAL mode `NORMAL` would only survive a process crash, not power loss).
/// - The database file is created 0600 before SQLite opens it (SQLite would use 0644 & ~umask,
///   and storage values are the programs' private data). SQLite gives the -wal/-shm files the
///   same mode as the database.
/// - All calls are serialized by an internal lock, so the value is safe to share; callers that
///   want throughput keep one writer thread (see StorageService's group commit).
public final class SQLiteDatabase: Sendable {
    private struct State {
        var handle: OpaquePointer?
        var statements: [String: OpaquePointer] = [:]
    }
    private let state: Mutex<State>
    /// Path of the database file.
    public let path: String

    /// Opens (creating if needed, mode 0600) the database at `path`, switches to WAL and
    /// `synchronous=FULL`, and sets a busy timeout.
    public init(path: String, busyTimeoutMillis: Int32 = 5000) throws(SQLiteError) {
        self.path = path
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 {
            throw SQLiteError(
                code: SQLITE_CANTOPEN, extendedCode: SQLITE_CANTOPEN,
                message: "cannot create \(path): \(String(cString: strerror(Glibc.errno)))", operation: "open")
        }
        _ = Glibc.close(fd)
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        if rc != SQLITE_OK {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            let ext = db.map { sqlite3_extended_errcode($0) } ?? rc
            sqlite3_close_v2(db)
            throw SQLiteError(code: rc, extendedCode: ext, message: msg, operation: "open")
        }
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMillis)
        state = Mutex(State(handle: db))
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
        let mode = try query("PRAGMA journal_mode").first?.first?.textValue
        if mode?.lowercased() != "wal" {
            throw SQLiteError(
                code: SQLITE_ERROR, extendedCode: SQLITE_ERROR,
                message: "cannot switch \(path) to WAL (journal_mode is \(mode ?? "?"))", operation: "open")
        }
    }

    deinit { close() }

    /// Finalizes cached statements and closes the connection. Idempotent.
    public func close() {
        state.withLock { s in
            for (_, stmt) in s.statements { sqlite3_finalize(stmt) }
            s.statements = [:]
            if let h = s.handle { sqlite3_close_v2(h) }
            s.handle = nil
        }
    }

    /// Runs one or more SQL statements without parameters (schema, pragmas, BEGIN/COMMIT).
    public func execute(_ sql: String) throws(SQLiteError) {
        let result: Result<Void, SQLiteError> = state.withLock { s in
            guard let h = s.handle else { return .failure(Self.closedError("exec")) }
            let rc = sqlite3_exec(h, sql, nil, nil, nil)
            if rc != SQLITE_OK { return .failure(Self.error(h, rc, "exec")) }
            return .success(())
        }
        try result.get()
    }

    /// Runs a statement that returns no rows; returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ args: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        let result: Result<Int, SQLiteError> = state.withLock { s in
            Result { () throws(SQLiteError) -> Int in
                let stmt = try Self.prepared(&s, sql)
                defer { Self.resetStatement(stmt) }
                try Self.bind(stmt, args, s.handle)
                let rc = sqlite3_step(stmt)
                if rc != SQLITE_DONE && rc != SQLITE_ROW { throw Self.error(s.handle, rc, "step") }
                return Int(sqlite3_changes(s.handle))
            }
        }
        return try result.get()
    }

    /// Runs a query and returns every row (columns in SELECT order).
    public func query(_ sql: String, _ args: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let result: Result<[[SQLiteValue]], SQLiteError> = state.withLock { s in
            Result { () throws(SQLiteError) -> [[SQLiteValue]] in
                let stmt = try Self.prepared(&s, sql)
                defer { Self.resetStatement(stmt) }
                try Self.bind(stmt, args, s.handle)
                var rows: [[SQLiteValue]] = []
                while true {
                    let rc = sqlite3_step(stmt)
                    if rc == SQLITE_DONE { break }
                    if rc != SQLITE_ROW { throw Self.error(s.handle, rc, "step") }
                    rows.append(Self.row(stmt))
                }
                return rows
            }
        }
        return try result.get()
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`; rolls back if `body` or COMMIT throws.
    /// With `synchronous=FULL` the data is on disk when this returns normally.
    public func transaction<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    // MARK: - statement helpers (called with the lock held)

    private static func prepared(_ s: inout State, _ sql: String) throws(SQLiteError) -> OpaquePointer {
        if let stmt = s.statements[sql] { return stmt }
        guard let h = s.handle else { throw closedError("prepare") }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(h, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(h, rc, "prepare") }
        s.statements[sql] = stmt
        return stmt
    }

    private static func resetStatement(_ stmt: OpaquePointer) {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    /// SQLITE_TRANSIENT: SQLite copies the bytes before the bind call returns.
    private static var transient: sqlite3_destructor_type { unsafeBitCast(-1, to: sqlite3_destructor_type.self) }

    private static func bind(_ stmt: OpaquePointer, _ args: [SQLiteValue], _ h: OpaquePointer?) throws(SQLiteError) {
        for (i, arg) in args.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch arg {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case .integer(let v): rc = sqlite3_bind_int64(stmt, idx, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, idx, v)
            case .text(let v):
                // Bound with an explicit byte length so an embedded NUL cannot truncate a key.
                let bytes = Array(v.utf8).map { CChar(bitPattern: $0) }
                rc = bytes.isEmpty
                    ? sqlite3_bind_text(stmt, idx, "", 0, transient)
                    : bytes.withUnsafeBufferPointer { c in sqlite3_bind_text(stmt, idx, c.baseAddress, Int32(c.count), transient) }
            case .blob(let v):
                rc = v.isEmpty
                    ? sqlite3_bind_zeroblob(stmt, idx, 0)
                    : v.withUnsafeBytes { p in sqlite3_bind_blob(stmt, idx, p.baseAddress, Int32(p.count), transient) }
            }
            if rc != SQLITE_OK { throw error(h, rc, "bind") }
        }
    }

    private static func row(_ stmt: OpaquePointer) -> [SQLiteValue] {
        (0..<sqlite3_column_count(stmt)).map { col in
            switch sqlite3_column_type(stmt, col) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(stmt, col))
            case SQLITE_FLOAT: return .real(sqlite3_column_double(stmt, col))
            case SQLITE_TEXT:
                let n = Int(sqlite3_column_bytes(stmt, col))
                guard let p = sqlite3_column_text(stmt, col) else { return .text("") }
                return .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
            case SQLITE_BLOB:
                let n = Int(sqlite3_column_bytes(stmt, col))
                guard let p = sqlite3_column_blob(stmt, col) else { return .blob([]) }
                return .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
            default: return .null
            }
        }
    }

    private static func error(_ h: OpaquePointer?, _ rc: Int32, _ op: String) -> SQLiteError {
        let msg = h.map { String(cString: sqlite3_errmsg($0)) } ?? "no connection"
        let ext = h.map { sqlite3_extended_errcode($0) } ?? rc
        return SQLiteError(code: rc & 0xff, extendedCode: ext, message: msg, operation: op)
    }

    private static func closedError(_ op: String) -> SQLiteError {
        SQLiteError(code: SQLITE_MISUSE, extendedCode: SQLITE_MISUSE, message: "database is closed", operation: op)
    }
}
