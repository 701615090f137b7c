// bench-daemon-worker: the mini-program `bench-daemon` installs and launches through the real
// daemon, to take the spec's rows from *inside* a jailed worker (spec/cli-and-config.md):
//
//   launch        one storage.get; the moment its reply arrives is reported (launch.cold)
//   resume        reports, on every ui.toast reply, when it arrived (resume.warm)
//   rtt N W       N timed storage.get round trips after W warm-ups (bridge.rtt)
//   rtthost N W   N timed ui.toast round trips, answered by the bench as host (bridge.rtt.host)
//   tput T0 S D   D storage.get calls in flight from monotonic T0 for S seconds (bridge.throughput)
//   idle          blocks on the Bridge socket until stopped (daemon RSS with idle workers)
//
// Results go back as params of a `ui.toast` call (the bench is the host provider), with the
// CLOCK_MONOTONIC time they were taken: the clock is shared with the host (no time namespace),
// so the bench can subtract its own send time. Plain libc on fd 3 and no JSON library: the
// figure must be the daemon's, not a client library's. Linked as a fully static executable
// (`-static-executable`): the jail has no Swift runtime, and a static binary starts in
// ~1.2 ms against ~3.5 ms for one loading libstdc++ and the Swift runtime (measured).
import Glibc

let fd: Int32 = 3
/// Input buffer: raw memory, not an `[UInt8]`. Reading into a slice of a global array
/// (`buffer[end...].withUnsafeMutableBytes`) copies the whole array on every read (the slice
/// shares its storage, so mutating it is copy-on-write): 64 KiB of memmove per call that the
/// bridge.rtt figure then charged to the daemon.
nonisolated(unsafe) var buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 1 << 16)
var start = 0
var end = 0
var nextId = 1

@MainActor func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

@MainActor func fail(_ why: String) -> Never {
    let line = "bench-worker: \(why)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

@MainActor func send(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.append(10)
    sendBytes(bytes)
}

@MainActor func sendBytes(_ bytes: [UInt8]) {
    var off = 0
    while off < bytes.count {
        let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 { if errno == EINTR { continue }; fail("send: errno \(errno)") }
        off += n
    }
}

/// Next line from fd 3 (valid until the next call), or nil at EOF.
@MainActor func readLine() -> UnsafeBufferPointer<UInt8>? {
    while true {
        if let nl = buffer[start..<end].firstIndex(of: 10) {
            let line = UnsafeBufferPointer(rebasing: buffer[start..<nl])
            start = nl + 1
            return line
        }
        if start > 0 {
            if end > start { memmove(buffer.baseAddress!, buffer.baseAddress! + start, end - start) }
            end -= start
            start = 0
        }
        if end == buffer.count {
            let bigger = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: buffer.count * 2)
            memcpy(bigger.baseAddress!, buffer.baseAddress!, end)
            buffer.deallocate()
            buffer = bigger
        }
        let n = read(fd, buffer.baseAddress! + end, buffer.count - end)
        if n < 0 { if errno == EINTR { continue }; fail("read: errno \(errno)") }
        if n == 0 { return nil }
        end += n
    }
}

@MainActor func contains(_ line: UnsafeBufferPointer<UInt8>, _ needle: String) -> Bool {
    var needle = needle
    return needle.withUTF8 { n in
        guard line.count >= n.count, let first = n.first else { return false }
        var i = line.startIndex
        let last = line.endIndex - n.count
        while i <= last {
            if line[i] == first {
                var j = 1
                while j < n.count && line[i + j] == n[j] { j += 1 }
                if j == n.count { return true }
            }
            i += 1
        }
        return false
    }
}

/// Sends one request and waits for its answer; exits on an error answer.
@MainActor func call(_ method: String, _ params: String) {
    let id = nextId
    nextId += 1
    send("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":\"\(method)\",\"params\":\(params)}")
    while let line = readLine() {
        if contains(line, "\"method\":\"event\"") { continue }
        guard contains(line, "\"id\":\(id),") || contains(line, "\"id\":\(id)}") else { fail("unexpected answer") }
        if !contains(line, "\"result\"") { fail("error answer to \(method): \(String(decoding: line, as: UTF8.self))") }
        return
    }
    exit(0)  // EOF: the daemon closed the Bridge (stop)
}

/// `call` for the timed loop: the request is assembled once and only its id's digits change per
/// call, and the answer is matched by parsing its id. No String is built per call (the anchors'
/// C clients build none either): the figure must be the daemon's.
struct TimedRequest {
    private let prefix: [UInt8]
    private var bytes: [UInt8] = []

    init(_ method: String, _ params: String) {
        prefix = Array("{\"jsonrpc\":\"2.0\",\"method\":\"\(method)\",\"params\":\(params),\"id\":".utf8)
        bytes.reserveCapacity(prefix.count + 24)
    }

    @MainActor mutating func call() {
        let id = nextId
        nextId += 1
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: prefix)
        appendDigits(id)
        bytes.append(UInt8(ascii: "}"))
        bytes.append(10)
        sendBytes(bytes)
        while let line = readLine() {
            if contains(line, "\"method\":\"event\"") { continue }
            guard answerId(line) == id else { fail("unexpected answer") }
            if !contains(line, "\"result\"") { fail("error answer: \(String(decoding: line, as: UTF8.self))") }
            return
        }
        exit(0)  // EOF: the daemon closed the Bridge (stop)
    }

    private mutating func appendDigits(_ v: Int) {
        var div = 1
        while div <= v / 10 { div *= 10 }
        var rest = v
        while div > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / div))
            rest %= div
            div /= 10
        }
    }
}

/// The number after the first `"id":` of an answer, or -1.
@MainActor func answerId(_ line: UnsafeBufferPointer<UInt8>) -> Int {
    let key = Array("\"id\":".utf8)
    guard line.count > key.count else { return -1 }
    var i = 0
    while i + key.count <= line.count {
        var j = 0
        while j < key.count && line[i + j] == key[j] { j += 1 }
        if j == key.count {
            var v = 0, k = i + key.count
            while k < line.count, line[k] >= 48, line[k] <= 57 { v = v * 10 + Int(line[k] - 48); k += 1 }
            return k > i + key.count ? v : -1
        }
        i += 1
    }
    return -1
}

@MainActor func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
}

let args = CommandLine.arguments
let mode = args.count > 1 ? args[1] : "idle"
let getParams = "{\"key\":\"bench\"}"
switch mode {
case "launch":
    call("storage.get", getParams)
    let t = now()
    call("ui.toast", "{\"message\":\"launch\",\"t\":\(t)}")
    while readLine() != nil {}
case "resume":
    while true { call("ui.toast", "{\"message\":\"resume\",\"t\":\(now())}") }
case "rtt", "rtthost":
    let n = Int(args[2])!, w = Int(args[3])!
    let (method, params) = mode == "rtt" ? ("storage.get", getParams) : ("ui.toast", "{\"message\":\"x\"}")
    var request = TimedRequest(method, params)
    for _ in 0..<w { request.call() }
    var samples = [UInt64](repeating: 0, count: n)
    let t0 = now()
    for i in 0..<n {
        let a = now()
        request.call()
        samples[i] = now() - a
    }
    let wall = Double(now() - t0) / 1e9
    samples.sort()
    call("ui.toast", "{\"message\":\"report\",\"p50\":\(percentile(samples, 0.5)),\"p99\":\(percentile(samples, 0.99)),\"p999\":\(percentile(samples, 0.999)),\"rate\":\(Double(n) / wall)}")
case "tput":
    let t0 = UInt64(args[2])!, secs = UInt64(args[3])!, depth = Int(args[4])!
    while now() < t0 { usleep(100) }
    let stop = t0 + secs * 1_000_000_000
    var inFlight = 0, done = 0
    let request = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"storage.get\",\"params\":\(getParams)}"
    while now() < stop {
        while inFlight < depth { send(request); inFlight += 1 }
        guard let line = readLine() else { exit(0) }
        if contains(line, "\"method\":\"event\"") { continue }
        if !contains(line, "\"result\"") { fail("error answer in tput: \(String(decoding: line, as: UTF8.self))") }
        inFlight -= 1
        done += 1
    }
    while inFlight > 0, readLine() != nil { inFlight -= 1 }
    call("ui.toast", "{\"message\":\"report\",\"count\":\(done)}")
default:
    while readLine() != nil {}
}
