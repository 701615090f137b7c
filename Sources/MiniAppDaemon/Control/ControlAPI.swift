public import MiniAppJSON
public import MiniAppModel

/// The control API (spec/control-api.md), independent of the transport: the control server
/// decodes a request line, checks the peer, and calls `handle`, which looks the method up in
/// `ControlMethods.table` (one declaration per method: its params, its handler, how it answers)
/// and answers through `reply` exactly once (immediately, or later for `programs.stop`,
/// `programs.restart` and `packages.install`). The services answer with Swift values; this
/// layer alone turns them into JSON (ControlResults.swift).
public final class ControlAPI: Sendable {
    let facts: DaemonFacts
    let supervisor: Supervisor
    let packages: any PackageControl
    let broker: any BrokerControl
    /// Simulator mode (debug builds): `packages.install {dir}` / `{url}` of unsigned programs.
    let simulator: Bool
    let installs: InstallGate

    public init(
        facts: DaemonFacts, supervisor: Supervisor, packages: any PackageControl, broker: any BrokerControl, simulator: Bool = false,
        installLimits: InstallGate.Limits = .init()
    ) {
        self.simulator = simulator
        self.facts = facts
        self.supervisor = supervisor
        self.packages = packages
        self.broker = broker
        installs = InstallGate(installLimits)
    }

    /// The methods served (anything else is METHOD_NOT_FOUND).
    public static var methods: Set<String> { Set(ControlMethods.table.keys) }

    /// Whether a request claims the descriptor passed with it (`SCM_RIGHTS`); asked on the
    /// loop thread, in request order, before the request is handed off.
    static func takesDescriptor(method: String, params: JSONValue?) -> Bool {
        ControlMethods.table[method]?.takesDescriptor(params?.objectValue ?? [:]) ?? false
    }

    /// Serves one request. `attachment` is the descriptor passed with it, if it asked for one
    /// (`packages.install {fd: true}`).
    public func handle(
        method: String, params: JSONValue?, peer: any ControlPeer, attachment: PassedDescriptor? = nil,
        reply: @escaping @Sendable (Result<JSONValue, MiniAppError>) -> Void
    ) {
        // Same order as the Bridge (spec): method first, then params.
        guard let entry = ControlMethods.table[method] else {
            return reply(.failure(MiniAppError(.methodNotFound, "no control method \(method); see spec/control-api.md")))
        }
        if let params, params.objectValue == nil {
            return reply(.failure(MiniAppError(.invalidParams, "params must be an object")))
        }
        entry.serve(self, ControlRequest(params: params?.objectValue ?? [:], peer: peer, attachment: attachment), reply)
    }

    static let notSimulator = MiniAppError(
        .invalidParams,
        "params.dir and params.url install unsigned programs: only a debug build's miniappd --simulator accepts them; sign the program (miniapp pack) and install the zip with params.path")

    /// Rollback and removal of a running program are refused: the running worker's version
    /// would no longer be the active one.
    func refuseIfRunning(_ id: String, _ what: String) throws(MiniAppError) {
        guard !supervisor.isRunning(programId: id) else {
            throw MiniAppError(.alreadyRunning, "\(id) is running; stop it (miniapp stop WORKER) before \(what)")
        }
    }

    /// `daemon.info`.
    func info() -> DaemonInfo {
        let counts = supervisor.counts()
        return DaemonInfo(facts: facts, workersByState: counts, simulator: simulator, denials: broker.denials())
    }
}

/// One request as a method's handler sees it.
struct ControlRequest: Sendable {
    /// `params` (an object; `{}` when absent).
    var params: JSONObject
    /// The connection it came on: its identity is the kernel's, never a field it sent.
    var peer: any ControlPeer
    /// The descriptor passed with it, when the method takes one.
    var attachment: PassedDescriptor?
}

/// How a method answers: exactly once.
typealias ControlReply = @Sendable (Result<JSONValue, MiniAppError>) -> Void

/// One control method: its name, its params, its handler, and what it claims of the connection.
struct ControlMethod: Sendable {
    let name: String
    /// Claims the descriptor passed with the request (decided from its params).
    let takesDescriptor: @Sendable (JSONObject) -> Bool
    /// Decodes the params and serves the request.
    let serve: @Sendable (ControlAPI, ControlRequest, @escaping ControlReply) -> Void

    /// A method answered on the caller's thread, from its decoded params.
    static func answer<P: Sendable, R: ControlEncodable>(
        _ name: String, params decode: @escaping @Sendable (JSONObject) throws(MiniAppError) -> P,
        _ run: @escaping @Sendable (ControlAPI, P, any ControlPeer) throws(MiniAppError) -> R
    ) -> ControlMethod {
        ControlMethod(name: name, takesDescriptor: { _ in false }) { api, request, reply in
            do throws(MiniAppError) {
                reply(.success(try run(api, try decode(request.params), request.peer).json))
            } catch {
                reply(.failure(error))
            }
        }
    }

    /// A method that answers later (a stop waits for the exit; an install runs on the gate),
    /// from its decoded params; a params error is answered at once.
    static func later<P: Sendable>(
        _ name: String, params decode: @escaping @Sendable (JSONObject) throws(MiniAppError) -> P,
        takesDescriptor: @escaping @Sendable (JSONObject) -> Bool = { _ in false },
        _ run: @escaping @Sendable (ControlAPI, P, ControlRequest, @escaping ControlReply) -> Void
    ) -> ControlMethod {
        ControlMethod(name: name, takesDescriptor: takesDescriptor) { api, request, reply in
            let p: P
            do throws(MiniAppError) { p = try decode(request.params) } catch { return reply(.failure(error)) }
            run(api, p, request, reply)
        }
    }
}
