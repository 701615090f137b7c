import MiniAppModel

/// Splits one output stream of a worker into lines and bounds it: at most `maxBytes` over the
/// worker's life are delivered, the rest is dropped and counted (a chatty or hostile program must
/// not grow the daemon's memory or flood its log). Used only from the event thread.
final class JailOutputCollector: @unchecked Sendable {
    private let programId: String
    private let stream: JailOutputLine.Stream
    private let limits: JailOutputLimits
    private let sink: (@Sendable (JailOutputLine) -> Void)?
    private var pending: [UInt8] = []
    private var delivered = 0
    private(set) var dropped = 0

    init(programId: String, stream: JailOutputLine.Stream, limits: JailOutputLimits, sink: (@Sendable (JailOutputLine) -> Void)?) {
        self.programId = programId
        self.stream = stream
        self.limits = limits
        self.sink = sink
    }

    func consume(_ bytes: [UInt8]) {
        var chunk = bytes[...]
        let room = max(0, limits.maxBytesPerStream - delivered - pending.count)
        if chunk.count > room {
            dropped += chunk.count - room
            chunk = chunk.prefix(room)
        }
        for b in chunk {
            if b == 10 { emit() } else {
                pending.append(b)
                if pending.count >= limits.maxLineBytes { emit() }
            }
        }
    }

    func finish() { if !pending.isEmpty { emit() } }

    private func emit() {
        delivered += pending.count + 1
        let line = JailOutputLine(programId: programId, stream: stream, text: String(decoding: pending, as: UTF8.self))
        pending.removeAll(keepingCapacity: true)
        sink?(line)
    }
}
