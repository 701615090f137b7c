// bench-bridge: the broker's round-trip and throughput figures, measured against real worker
// processes (Sources/Bench/bridge-client/bridge_client.c on fd 3), in the anchors' RESULT format.
//
//   bench-bridge <client-binary> rtt  <iters> <warmup>      -> RESULT|broker.rtt|…
//   bench-bridge <client-binary> host <iters> <warmup>      -> RESULT|broker.rtt.host|…
//   bench-bridge <client-binary> tput <clients> <secs> <depth> -> RESULT|broker.throughput|…
// Diagnostics: `raw` (the reactor alone answering canned results: the event loop's floor),
// `bench-bridge cpu` (in-process decode/encode cost per call), BENCH_PEEK=1 (peek requests and
// consume them after answering, the daemon's other read mode; by default the daemon's own).
//
// The daemon side is the production path: Reactor + Broker + permission table + rate limiter,
// with a trivial in-memory storage.get service, so the row measures the broker path alone
// (bench-daemon's bridge.rtt has the real SQLite-backed service). Processes are started with posix_spawn (never fork from Swift, DESIGN.md).
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization

/// storage.get from memory, answered synchronously on the loop thread.
final class BenchStorage: BridgeService {
    let methods = ["storage.get"]
    let value: JSONValue = "solarized-dark-high-contrast"

    func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        guard case .string(let key)? = params?["key"] else {
            return reply(.failure(MiniAppError(.invalidParams, "key must be a string")))
        }
        reply(.success(["key": .string(key), "value": value]))
    }
}

/// Routes a host provider's answers to the registry.
final class ProviderRouter: LineHandler {
    let broker: Broker
    init(broker: Broker) { self.broker = broker }
    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {
        guard case .success(let v) = RPCCodec.parse(line), case .success(.response(let r)) = RPCCodec.decodeMessage(v)
        else { return }
        broker.hostProviders.handleResponse(r, from: connection)
    }
}

/// The catalogue of the bench: the production shape, with budgets raised so the rate limiter is
/// exercised on every call but never refuses.
let benchCatalogue = """
    {"version":1,"permissions":{"payment":"pay"},
     "programBudget":{"perSecond":10000000,"burst":10000000},
     "classes":{"storage":{"perSecond":10000000,"burst":10000000},"payment":{"perSecond":10000000,"burst":10000000}},
     "methods":{
       "storage.get":{"provider":"builtin","permission":null,"class":"storage","timeoutMillis":5000},
       "payment.pay":{"provider":"host","permission":"payment","class":"payment","timeoutMillis":5000}}}
    """

func fail(_ msg: String) -> Never {
    CurrentProcess.writeStandardError("bench-bridge: \(msg)\n")
    CurrentProcess.exit(2)
}

/// Bench setup steps: any failure ends the run with a message (exit 2).
func must<T>(_ what: String, _ body: () throws -> T) -> T {
    do { return try body() } catch { fail("\(what): \(error)") }
}

/// posix_spawn `argv` with `fd` as fd 3 (and `extra` as fd 4 when given).
func spawn(_ argv: [String], fd3: Int32, fd4: Int32? = nil) -> Int32 {
    let files: [Processes.FileAction] = [.duplicate(fd3, to: 3)] + (fd4.map { [.duplicate($0, to: 4)] } ?? [])
    do { return try Processes.spawn(argv, files: files) } catch { fail("posix_spawn \(argv[0]): \(error)") }
}

func wait(_ pid: Int32) {
    let status = Processes.waitForExit(pid)
    if status != 0 { fail("client \(pid) exited with status \(status)") }
}

func makeBroker(_ reactor: Reactor) -> Broker {
    do {
        let catalogue = try MethodCatalogue.parse(Array(benchCatalogue.utf8))
        var config = BrokerConfiguration()
        // The daemon's own read mode (one recv per request); BENCH_PEEK=1 measures peek-and-consume.
        config.deferConsume = CurrentProcess.environment("BENCH_PEEK") != nil
        return try Broker(
            reactor: reactor, catalogue: catalogue, grants: ["com.bench": ["payment"]], services: [BenchStorage()],
            configuration: config)
    } catch { fail("broker: \(error)") }
}

/// Attaches a worker and returns the fd to give the client (the caller closes it after spawn).
func attachWorker(_ broker: Broker, _ n: Int) -> Int32 {
    do {
        let pair = try UnixSocket.pair()
        let identity = CallerIdentity(
            workerId: "w-\(n)", programId: "com.bench.app\(n)", version: "1.0.0", partnerId: "com.bench",
            declaredPermissions: ["payment"], allowedDomains: [])
        try broker.attach(workerFD: pair.daemonSide, identity: identity)
        return pair.workerSide.take()
    } catch { fail("attach: \(error)") }
}

/// The reactor alone (no broker): answers each line with a canned result carrying the request's
/// numeric id. `raw` mode measures the event loop's own floor.
final class RawEcho: LineHandler {
    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {
        var i = 0, id: Int64 = 0
        let key = Array(#""id":"#.utf8)
        while i + key.count < line.count && !line[i..<(i + key.count)].elementsEqual(key) { i += 1 }
        i += key.count
        while i < line.count, line[i] >= 0x30, line[i] <= 0x39 { id = id * 10 + Int64(line[i] - 0x30); i += 1 }
        connection.appendOutput { RPCCodec.writeResult(id: .int(id), result: ["value": "solarized-dark-high-contrast"], into: &$0) }
    }
}

let storageParams = #"{"key":"user/settings/theme-preference"}"#

func runLatency(client: String, host: Bool, raw: Bool = false, iters: String, warmup: String) {
    let reactor = must("reactor") { try Reactor() }
    must("reactor start") { try reactor.start() }
    let broker = makeBroker(reactor)
    var providerPid: Int32?
    if host {
        let fd = must("provider") { () throws -> Int32 in
            let pair = try UnixSocket.pair()
            let conn = try reactor.adopt(pair.daemonSide, handler: ProviderRouter(broker: broker))
            try broker.hostProviders.provide(methods: ["payment.pay"], connection: conn)
            return pair.workerSide.take()
        }
        providerPid = spawn([client, "provider"], fd3: fd)
        OwnedFD(adopting: fd).close()
    }
    let fd = raw
        ? must("raw") { () throws -> Int32 in
            let pair = try UnixSocket.pair()
            let peek = CurrentProcess.environment("BENCH_PEEK") != nil
            _ = try reactor.adopt(pair.daemonSide, limits: .init(deferConsume: peek), handler: RawEcho())
            return pair.workerSide.take()
        }
        : attachWorker(broker, 1)
    let argv = host
        ? [client, "lat", "broker.rtt.host", "payment.pay", #"{"orderId":"order-123","amount":99.99,"currency":"USD"}"#, iters, warmup]
        : [client, "lat", "broker.rtt", "storage.get", storageParams, iters, warmup]
    let pid = spawn(argv, fd3: fd)
    OwnedFD(adopting: fd).close()
    wait(pid)
    reactor.shutdown()  // closes the provider's connection: it exits on EOF
    if let providerPid { wait(providerPid) }
}

func runThroughput(client: String, clients: Int, seconds: String, depth: String) {
    let reactor = must("reactor") { try Reactor() }
    must("reactor start") { try reactor.start() }
    let broker = makeBroker(reactor)
    let pipeFDs = must("pipe") { () throws -> [Int32] in let p = try PipePair().takeBoth(); return [p.read, p.write] }
    let start = monotonicNanos() + 300_000_000 + UInt64(clients) * 20_000_000
    var pids: [Int32] = []
    for i in 0..<clients {
        let fd = attachWorker(broker, i + 1)
        pids.append(spawn([client, "tput", String(start), seconds, depth, "storage.get", storageParams], fd3: fd, fd4: pipeFDs[1]))
        OwnedFD(adopting: fd).close()
    }
    OwnedFD(adopting: pipeFDs[1]).close()
    var total: UInt64 = 0
    for _ in 0..<clients {
        var c: UInt64 = 0
        let n = (try? withUnsafeMutableBytes(of: &c) { p throws(SystemError) in try FileSystem.read(descriptor: pipeFDs[0], into: p) }) ?? 0
        guard n == 8 else { fail("a client died") }
        total += c
    }
    for p in pids { wait(p) }
    reactor.shutdown()
    let secs = Double(seconds) ?? 1
    print("RESULT|broker.throughput|-|-|-|\(Int(Double(total) / secs))|calls/s|storage.get via miniappd broker, \(clients) C client procs, \(depth) calls in flight each, \(seconds)s window")
}

/// In-process cost of the decode steps, per call (no sockets).
func runCPU() {
    let line = Array(#"{"jsonrpc":"2.0","id":12345,"method":"storage.get","params":{"key":"user/settings/theme-preference"}}"#.utf8)
    let n = 200_000
    var sink = 0
    let t0 = monotonicNanos()
    for _ in 0..<n {
        line.withUnsafeBufferPointer { buf in
            if let r = RPCCodec.decodeRequestFast(buf) { sink &+= r.method.utf8.count }
        }
    }
    let t1 = monotonicNanos()
    var out: [UInt8] = []
    out.reserveCapacity(256)
    let result: JSONValue = ["key": "user/settings/theme-preference", "value": "solarized-dark-high-contrast"]
    for i in 0..<n {
        out.removeAll(keepingCapacity: true)
        RPCCodec.writeResult(id: .int(Int64(i)), result: result, into: &out)
        sink &+= out.count
    }
    let t2 = monotonicNanos()
    print("decode \(Double(t1 - t0) / Double(n)) ns/call, encode \(Double(t2 - t1) / Double(n)) ns/call (\(sink))")
}

Signal.ignore(Signal.pipe)
if CommandLine.arguments.count == 2 && CommandLine.arguments[1] == "cpu" {
    runCPU()
    CurrentProcess.exit(0)
}
let args = CommandLine.arguments
guard args.count >= 5 else {
    fail("usage: bench-bridge <client> rtt|host <iters> <warmup> | tput <clients> <secs> <depth>")
}
switch args[2] {
case "rtt": runLatency(client: args[1], host: false, iters: args[3], warmup: args[4])
case "raw": runLatency(client: args[1], host: false, raw: true, iters: args[3], warmup: args[4])
case "host": runLatency(client: args[1], host: true, iters: args[3], warmup: args[4])
case "tput" where args.count >= 6: runThroughput(client: args[1], clients: Int(args[3]) ?? 8, seconds: args[4], depth: args[5])
default: fail("unknown mode \(args[2])")
}
