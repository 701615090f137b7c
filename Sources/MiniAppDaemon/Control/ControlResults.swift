import MiniAppJSON
import MiniAppModel

/// A method's answer as the control API sends it: the one place Swift values become the
/// result members of spec/control-api.md.
protocol ControlEncodable: Sendable {
    var json: JSONValue { get }
}

/// `{}`: the method did what was asked and has nothing to report.
struct Empty: ControlEncodable {
    var json: JSONValue { [:] }
}

extension JSONValue: ControlEncodable {
    /// Answers already shaped by a service that speaks JSON itself (the store, the grants).
    var json: JSONValue { self }
}

extension StartedWorker: ControlEncodable {
    /// `programs.launch` (and `program.restarted`'s `worker`): `{workerId, id, version, pid,
    /// startMicros, warm}`; `programs.prewarm`: `{workerId, id, version, pid, prewarmed: true}`.
    var json: JSONValue {
        var o: JSONObject = ["workerId": .string(workerId), "id": .string(id), "version": .string(version), "pid": .int(Int64(pid))]
        if prewarmed {
            o["prewarmed"] = true
        } else {
            o["startMicros"] = .int(startMicros)
            o["warm"] = .bool(warm)
        }
        return .object(o)
    }
}

extension WorkerListing: ControlEncodable {
    var json: JSONValue {
        var o: JSONObject = [
            "workerId": .string(workerId), "id": .string(id), "version": .string(version), "state": .string(state),
            "pid": .int(Int64(pid)), "memoryBytes": .int(memoryBytes), "cpuMicros": .int(cpuMicros), "bridgeCalls": .int(bridgeCalls),
        ]
        if let data {
            o["dataBytes"] = .int(Int64(clamping: data.usedBytes))
            o["dataCapacityBytes"] = .int(Int64(clamping: data.capacityBytes))
            o["dataInodes"] = .int(Int64(clamping: data.usedInodes))
            o["dataCapacityInodes"] = .int(Int64(clamping: data.capacityInodes))
        }
        return .object(o)
    }
}

extension PrewarmedListing: ControlEncodable {
    var json: JSONValue {
        [
            "workerId": .string(workerId), "id": .string(id), "version": .string(version), "pid": .int(Int64(pid)),
            "memoryBytes": .int(memoryBytes), "bridgeCalls": .int(bridgeCalls),
        ]
    }
}

/// `programs.list`.
struct ProgramList: ControlEncodable {
    var workers: [WorkerListing]
    var prewarmed: [PrewarmedListing]
    var json: JSONValue { ["workers": .array(workers.map(\.json)), "prewarmed": .array(prewarmed.map(\.json))] }
}

/// `daemon.info`.
struct DaemonInfo: ControlEncodable {
    var facts: DaemonFacts
    var workersByState: [String: Int]
    var simulator: Bool
    var denials: Int64

    var json: JSONValue {
        [
            "version": .string(facts.version), "hostVersion": .string(facts.hostVersion), "mode": .string(facts.mode),
            "cgroups": .string(facts.cgroups), "workers": .int(Int64(workersByState.values.reduce(0, +))),
            "dataLimits": .string(facts.dataLimits),
            "workersByState": .object(JSONObject(workersByState.map { ($0.key, .int(Int64($0.value))) })),
            "simulator": .bool(simulator), "denials": .int(denials),
        ]
    }
}
