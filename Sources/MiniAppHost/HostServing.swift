import MiniAppJSON

/// Serving host-provided Bridge methods (`bridge.call` requests from the daemon).
extension HostClient {
    /// Runs the handler of a `bridge.call` (or refuses the request). The handler starts on the
    /// reader thread, so one that answers without suspending costs no thread hop.
    func serve(_ name: String, id: JSONValue, params: JSONObject, raw: JSONObject, generation gen: Int) {
        let handler: HostHandler? = name == "bridge.call" ? lock.withLock { params["method"]?.stringValue.flatMap { providers[$0] } } : nil
        guard let handler else {
            if options.deliverUnhandled { return options.onMessage?(raw) ?? () }
            let what = name == "bridge.call" ? "the Bridge method \(params["method"]?.stringValue ?? "?")" : name
            return answer(id: id, error: HostError(HostError.Code.methodNotFound, "this host does not serve \(what)"), generation: gen)
        }
        guard let call = HostCall(id: id, params: params) else {
            return answer(id: id, error: HostError(HostError.Code.invalidParams, "bridge.call params are malformed"), generation: gen)
        }
        let key = id.jsonString
        lock.withLock { serving[key] = Serving(generation: gen) }
        let task = Task.immediate { [self] in
            let reply: JSONValue
            do {
                let result = try await handler(call)
                reply = ["jsonrpc": "2.0", "id": id, "result": result]
            } catch let e as HostError {
                reply = ["jsonrpc": "2.0", "id": id, "error": e.rpcObject]
            } catch {
                let e = HostError(HostError.Code.internalError, "the host failed to serve \(call.method)")
                reply = ["jsonrpc": "2.0", "id": id, "error": e.rpcObject]
            }
            finishServing(key: key, generation: gen, reply: reply)
        }
        let cancelNow: Bool = lock.withLock {
            guard var s = serving[key], s.generation == gen else { return false }
            s.task = task
            serving[key] = s
            return s.cancelled
        }
        if cancelNow { task.cancel() }
    }

    /// Sends a handler's answer unless the call was cancelled or its connection is gone.
    private func finishServing(key: String, generation gen: Int, reply: JSONValue) {
        let sock: LineSocket? = lock.withLock {
            guard let s = serving.removeValue(forKey: key), !s.cancelled, s.generation == generation else { return nil }
            return socket
        }
        try? sock?.send(reply.serialized())
    }

    private func answer(id: JSONValue, error: HostError, generation gen: Int) {
        let sock = lock.withLock { generation == gen ? socket : nil }
        try? sock?.send((["jsonrpc": "2.0", "id": id, "error": error.rpcObject] as JSONValue).serialized())
    }

    /// `bridge.cancel`: the daemon gave up on the call (its timeout, or the worker exited).
    func cancelServing(key: String) {
        let task: Task<Void, Never>? = lock.withLock {
            guard var s = serving[key] else { return nil }
            s.cancelled = true
            serving[key] = s
            return s.task
        }
        task?.cancel()
    }

    /// Cancels every handler in flight (the connection they would answer on is gone).
    func cancelAllServing() {
        let tasks: [Task<Void, Never>] = lock.withLock {
            defer { serving = [:] }
            return serving.values.compactMap(\.task)
        }
        for t in tasks { t.cancel() }
    }
}
