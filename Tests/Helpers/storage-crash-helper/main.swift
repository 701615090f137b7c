// storage-crash-helper STATE_DIR
//
// Opens the storage store in STATE_DIR and writes `k<N>` = {"n":N,…} forever, 64 writes in
// flight at a time (so group commit batches them), printing `ack N` on stdout for each
// acknowledged write, unbuffered. ServiceTests SIGKILLs it after enough acks, reopens the store
// and checks that every acknowledged key is there: an ack means durable.
import Dispatch
import Glibc
import MiniAppBroker
import MiniAppJSON
import MiniAppModel

/// Writes a line to stderr with write(2) (the C `stderr` global is not concurrency-safe).
func complain(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

let args = CommandLine.arguments
guard args.count == 2 else {
    complain("usage: storage-crash-helper STATE_DIR")
    exit(2)
}
var config = ServicesConfig(hostVersion: "test")
config.storage.quotaKeysPerProgram = 1_000_000
config.storage.quotaBytesPerProgram = 1 << 30
let service: StorageService
do {
    service = try StorageService(stateDirectory: args[1], config: config)
} catch {
    complain("storage-crash-helper: \(error)")
    exit(1)
}
let caller = CallerIdentity(
    workerId: "w-crash", programId: "com.test.crash", version: "1.0.0", partnerId: "com.test",
    declaredPermissions: [], allowedDomains: [])
let window = DispatchSemaphore(value: 64)
var n: Int64 = 0
while true {
    window.wait()
    let i = n
    n += 1
    let params: JSONValue = ["key": .string("k\(i)"), "value": ["n": .int(i), "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]]
    service.handle(method: "storage.set", params: params, caller: caller) { result in
        if case .success = result {
            let line = Array("ack \(i)\n".utf8)
            _ = line.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        } else {
            complain("storage-crash-helper: write \(i) failed: \(result)")
        }
        window.signal()
    }
}
