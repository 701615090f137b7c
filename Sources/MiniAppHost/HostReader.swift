import MiniAppJSON

#if canImport(Glibc)
import Glibc
#endif

/// The reader thread: reads and dispatches messages, expires timeouts, reconnects.
extension HostClient {
    func runReader() {
        while true {
            let (sock, gen, done) = lock.withLock { (socket, generation, closed) }
            if done { break }
            guard let sock else {
                if !reconnect() { break }
                continue
            }
            var fds = [pollfd(fd: sock.fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFd, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, pollTimeout())
            if rc < 0 && errno != EINTR {
                lost(sock, HostError(HostError.Code.internalError, "poll: \(LineSocket.errnoText())"))
                continue
            }
            if fds[1].revents != 0 { drainWake() }
            expireTimeouts()
            guard fds[0].revents != 0 else { continue }
            do {
                guard let lines = try sock.readLines() else {
                    lost(sock, HostError(HostError.Code.hostUnavailable, "miniappd closed the connection"))
                    continue
                }
                for line in lines {
                    if let violation = handle(line, generation: gen) {
                        lost(sock, violation)
                        break
                    }
                }
            } catch {
                lost(sock, error)
            }
        }
        finishStreams()
    }

    /// Milliseconds until the nearest call deadline (-1: none), and records it as `wakeAt`.
    private func pollTimeout() -> Int32 {
        lock.withLock {
            wakeAt = pending.values.map(\.deadline).min() ?? .max
            guard wakeAt != .max else { return -1 }
            let now = monotonicNanos()
            return wakeAt <= now ? 0 : Int32(min(Int64(Int32.max), Int64((wakeAt - now) / 1_000_000) + 1))
        }
    }

    func drainWake() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(wakeFd, &buf, buf.count) > 0 {}
    }

    /// Fails the calls whose deadline passed with `TIMEOUT`.
    private func expireTimeouts() {
        let now = monotonicNanos()
        let expired: [Pending] = lock.withLock {
            let ids = pending.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { pending.removeValue(forKey: $0) }
        }
        for p in expired {
            p.complete(.failure(HostError(HostError.Code.timeout, "miniappd did not answer \(p.method) in time (the call's timeout passed)")))
        }
    }

    // MARK: messages

    /// Handles one line; returns the protocol violation that ends the connection, if any.
    private func handle(_ line: ArraySlice<UInt8>, generation gen: Int) -> HostError? {
        switch HostInbound.parse(line, maxBytes: options.maxLineBytes) {
        case .failure(let violation): return violation
        case .success(.request(let method, let id, let params, let raw)): serve(method, id: id, params: params, raw: raw, generation: gen)
        case .success(.notification(let method, let params)): notify(method, params)
        case .success(.response(let id, let outcome, let raw)): return respond(id: id, outcome, raw)
        }
        return nil
    }

    /// Completes the call a response answers.
    private func respond(id: JSONValue, _ outcome: Result<JSONValue, HostError>, _ msg: JSONObject) -> HostError? {
        if id.isNull {
            // The daemon could not tie its answer to a request (UNAUTHORIZED at connect, a line
            // it could not parse): it concerns every call in flight.
            let error: HostError
            switch outcome {
            case .failure(let e): error = e
            case .success: error = HostError(HostError.Code.invalidRequest, "miniappd sent a result with id null")
            }
            let calls: [Pending] = lock.withLock {
                if error.code == HostError.Code.unauthorized { terminal = error }
                defer { pending = [:] }
                return Array(pending.values)
            }
            for p in calls { p.complete(.failure(error)) }
            return nil
        }
        let (call, issued) = lock.withLock { (id.intValue.flatMap { pending.removeValue(forKey: $0) }, nextId) }
        if let call {
            call.complete(outcome)
            return nil
        }
        if options.deliverUnhandled {
            options.onMessage?(msg)
            return nil
        }
        // A late answer to a call that already timed out here is harmless; an id this host never
        // issued means the stream is not what it seems.
        if let n = id.intValue, n > 0, n <= issued { return nil }
        return HostError(HostError.Code.invalidRequest, "miniappd answered a request this host never sent (id \(id.jsonString))")
    }

    /// Delivers a notification (`bridge.cancel` is consumed here).
    func notify(_ method: String, _ params: JSONObject) {
        if method == "bridge.cancel", let id = params["id"] {
            cancelServing(key: id.jsonString)
            return
        }
        options.onMessage?(["jsonrpc": "2.0", "method": .string(method), "params": .object(params)])
        let note = HostNotification(method: method, params: params)
        for c in lock.withLock({ Array(streams.values) }) { c.yield(note) }
    }

    private func finishStreams() {
        let all = lock.withLock { () -> [AsyncStream<HostNotification>.Continuation] in
            defer { streams = [:] }
            return Array(streams.values)
        }
        for c in all { c.finish() }
    }
}
