import MiniAppBroker
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

extension InstalledPackage: ControlEncodable {
    /// `packages.install`: `{id, version, active}`.
    var json: JSONValue { ["id": .string(id), "version": .string(version), "active": .bool(active)] }
}

/// `packages.list`: `{packages:[{id, active, versions, pending}]}` (`null` for no version).
struct PackageList: ControlEncodable {
    var packages: [PackageListing]
    var json: JSONValue {
        [
            "packages": .array(
                packages.map { p in
                    [
                        "id": .string(p.id), "active": p.active.map { .string($0) } ?? .null,
                        "versions": .array(p.versions.map { .string($0) }), "pending": p.pending.map { .string($0) } ?? .null,
                    ]
                })
        ]
    }
}

extension RolledBackPackage: ControlEncodable {
    /// `packages.rollback`: `{id, active}`.
    var json: JSONValue { ["id": .string(id), "active": .string(active)] }
}

extension UpdateCheckResult: ControlEncodable {
    /// One `updates.check` entry: `{id, from, to, staged, active?, outcome, code?, message?,
    /// reason?, required?, rollout?}`.
    var json: JSONValue {
        var e: JSONObject = [
            "id": .string(id), "from": .string(from), "outcome": .string(outcome.rawValue),
            "staged": .bool(outcome == .staged || outcome == .activated),
        ]
        if let to { e["to"] = .string(to) }
        if outcome == .staged || outcome == .activated { e["active"] = .bool(outcome == .activated) }
        if let rollout, rollout < 1 { e["rollout"] = .double(rollout) }
        if let error {
            e["code"] = .string(error.code.rawValue)
            e["message"] = .string(error.message)
            for key in ["reason", "required"] { if let v = error.data[key] { e[key] = .string(v) } }
        }
        return .object(e)
    }
}

extension UpdateCheckReport: ControlEncodable {
    /// `updates.check`: `{updates:[…]}`.
    var json: JSONValue { ["updates": .array(reported.map(\.json))] }
}

/// `updates.status`: `{programs:[{id, active, previous, staged, rejected?, lastCheck?}]}`.
struct UpdateStatusList: ControlEncodable {
    var programs: [ProgramUpdateStatus]
    var json: JSONValue { ["programs": .array(programs.map(\.json))] }
}

extension ProgramUpdateStatus {
    var json: JSONValue {
        func text(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
        var o: JSONObject = ["id": .string(id), "active": text(active), "previous": text(previous), "staged": text(staged)]
        if let rejected { o["rejected"] = ["version": .string(rejected.version), "reason": .string(rejected.reason)] }
        if let lastCheck {
            // The check's entry without its id (the program's own), with when it ran.
            var e = lastCheck.result.json.objectValue ?? [:]
            e["at"] = .int(lastCheck.atSeconds)
            e["id"] = nil
            o["lastCheck"] = .object(e)
        }
        return .object(o)
    }
}

extension PermissionsReport: ControlEncodable {
    /// `permissions.refresh`: `{partners:[{id, origin, permissions}], blocked:[{id, origin,
    /// problems}], invalid:[{source, code, message}], registry:{status, code?, message?, issuedAt}}`.
    var json: JSONValue {
        let m = merge
        let partners: [JSONValue] = m.set.partners.keys.sorted().map { id in
            [
                "id": .string(id), "origin": .string(m.origins[id]?.rawValue ?? "local"),
                "permissions": .array((m.set.partners[id]?.permissions ?? []).sorted().map { .string($0) }),
            ]
        }
        let blocked: [JSONValue] = m.blocked.map { b in
            ["id": .string(b.id), "origin": .string(b.origin.rawValue), "problems": .array(b.problems.map { .string($0) })]
        }
        let invalid: [JSONValue] = m.unattributed.map { e in
            ["source": .string(e.source), "code": .string(e.error?.code.rawValue ?? ""), "message": .string(e.error?.message ?? "")]
        }
        return ["partners": .array(partners), "blocked": .array(blocked), "invalid": .array(invalid), "registry": registry.json]
    }
}

extension PermissionsReport.Registry {
    var json: JSONValue {
        var r: JSONObject = ["status": .string(status.rawValue)]
        if let error {
            r["code"] = .string(error.code.rawValue)
            r["message"] = .string(error.message)
        }
        r["issuedAt"] = issuedAt.map { .int($0) } ?? .null
        return .object(r)
    }
}

/// `auth.keys`: the RFC 7517 JWK Set `{keys:[{kty, crv, x, kid, use, alg}]}`.
struct VerificationKeys: ControlEncodable {
    var keys: [PublicJWK]
    var json: JSONValue { ["keys": .array(keys.map(\.json))] }
}

/// `programs.stop`: `{status}` (the exit code, or 128 + the signal number).
struct StoppedWorker: ControlEncodable {
    var status: Int32
    var json: JSONValue { ["status": .int(Int64(status))] }
}
