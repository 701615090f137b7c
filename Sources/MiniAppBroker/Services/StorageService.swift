public import MiniAppJSON
public import MiniAppModel

/// `storage.get`, `storage.set`, `storage.remove`, `storage.keys`: the program's private,
/// durable key-value store (spec/bridge-protocol.md "Built-in methods").
///
/// - Namespacing: the program names only its own keys; the daemon adds the program id from the
///   connection's `CallerIdentity` (never from params), so no key can reach another program's
///   data and `storage.keys` lists only the caller's keys. See `StorageStore` for why the row
///   key `(program, key)` is unambiguous.
/// - Keys: strings of 1…`maxKeyBytes` UTF-8 bytes without control characters (they would turn
///   a `storage.keys` reply into escape soup and are a classic log-injection vector).
/// - Values: any JSON, stored as its serialized text; at most `maxValueBytes`.
/// - Quotas per program on bytes (keys + values) and key count → `QUOTA_EXCEEDED`.
/// - Durability: `set`/`remove` reply only after the transaction holding them is committed and
///   fsynced (group commit on the store's writer queue); `get`/`keys` answer synchronously from
///   memory, on the caller's thread.
public final class StorageService: BridgeService {
    public let methods = ["storage.get", "storage.set", "storage.remove", "storage.keys"]
    private let store: StorageStore
    private let limits: ServicesConfig.Storage

    /// Opens (creating it if needed) `stateDirectory/config.storage.databaseFileName` and loads
    /// it into memory. Throws INTERNAL when the database cannot be opened or is damaged.
    public init(stateDirectory: String, config: ServicesConfig) throws(MiniAppError) {
        limits = config.storage
        store = try StorageStore(path: stateDirectory + "/" + config.storage.databaseFileName, limits: config.storage)
    }

    public func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        do throws(MiniAppError) {
            let program = try Self.namespace(caller)
            switch method {
            case "storage.get":
                let p = try ServiceParams(params, method: method, allowed: ["key"])
                let key = try validKey(p, "key")
                reply(.success(.object(["value": store.get(program: program, key: key) ?? .null])))
            case "storage.set":
                let p = try ServiceParams(params, method: method, allowed: ["key", "value"])
                let key = try validKey(p, "key")
                guard let value = try p.value("value", required: true) else {
                    throw MiniAppError(.invalidParams, "storage.set: params.value is required (any JSON)")
                }
                let text = String(decoding: value.serialized(), as: UTF8.self)
                let valueBytes = text.utf8.count
                if valueBytes > limits.maxValueBytes {
                    throw MiniAppError(
                        .invalidParams,
                        "storage.set: value is \(valueBytes) bytes serialized; the limit is \(limits.maxValueBytes)")
                }
                let entry = StorageStore.Entry(value: value, size: key.count + valueBytes)
                store.enqueue(program: program, op: .set(key: key, text: text, entry: entry), quotaBytes: caller.storageQuotaBytes, reply: reply)
            case "storage.remove":
                let p = try ServiceParams(params, method: method, allowed: ["key"])
                store.enqueue(program: program, op: .remove(key: try validKey(p, "key")), reply: reply)
            case "storage.keys":
                let p = try ServiceParams(params, method: method, allowed: ["prefix"])
                let prefix: KeyBytes = try p.string("prefix").map { Array($0.utf8) } ?? []
                let keys = store.keys(program: program, prefix: prefix)
                reply(.success(.object(["keys": .array(keys.map { .string(String(decoding: $0, as: UTF8.self)) })])))
            default:
                throw MiniAppError.unservedMethod(method, service: "storage")
            }
        } catch {
            reply(.failure(error))
        }
    }

    /// Commits every write queued so far and returns once it is durable.
    public func flush() { store.flush() }

    /// Flushes, then closes the database; later writes answer INTERNAL ("shutting down").
    /// Call once at daemon shutdown, after the broker stops accepting calls.
    public func close() { store.close() }

    /// Bytes (keys + serialized values) and key count the program uses, counting queued writes.
    public func usage(programId: String) -> (bytes: Int, keys: Int) { store.usage(program: programId) }

    /// The storage namespace of the caller: its program id, from the connection. A program id
    /// that is empty or contains `:` or NUL cannot come from a verified manifest (spec
    /// package-format: `^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$`); refusing it keeps the
    /// `{programId}:{key}` form unambiguous even if a caller upstream is buggy (fail closed).
    static func namespace(_ caller: CallerIdentity) throws(MiniAppError) -> String {
        let id = caller.programId
        if id.isEmpty || id.utf8.contains(where: { $0 == UInt8(ascii: ":") || $0 < 0x20 }) {
            throw MiniAppError(.internal, "storage: caller has an invalid program id; this is a daemon bug")
        }
        return id
    }

    private func validKey(_ p: ServiceParams, _ name: String) throws(MiniAppError) -> KeyBytes {
        guard let key = try p.string(name, required: true) else {
            throw MiniAppError(.invalidParams, "\(p.method): params.\(name) is required (a string)")
        }
        let bytes = Array(key.utf8)
        if bytes.isEmpty {
            throw MiniAppError(.invalidParams, "\(p.method): params.\(name) must not be empty")
        }
        if bytes.count > limits.maxKeyBytes {
            throw MiniAppError(
                .invalidParams,
                "\(p.method): params.\(name) is \(bytes.count) bytes; the limit is \(limits.maxKeyBytes) (UTF-8)")
        }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
            throw MiniAppError(.invalidParams, "\(p.method): params.\(name) must not contain control characters")
        }
        return bytes
    }
}
