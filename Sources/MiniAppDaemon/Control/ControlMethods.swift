import MiniAppJSON
import MiniAppModel
import MiniAppSystem

/// The control API's methods (spec/control-api.md), one declaration each: name, params,
/// handler. A method not in this table is METHOD_NOT_FOUND.
enum ControlMethods {
    static let table: [String: ControlMethod] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    static let all: [ControlMethod] = daemon + packages + programs + broker

    static let daemon: [ControlMethod] = [
        .answer("daemon.info", params: NoParams.init) { api, _, _ throws(MiniAppError) in api.info() }
    ]

    static let packages: [ControlMethod] = [
        .later("packages.install", params: InstallParams.init, takesDescriptor: InstallParams.takesDescriptor) { api, p, request, reply in
            api.install(p, request, reply)
        },
        .answer("packages.list", params: NoParams.init) { api, _, _ throws(MiniAppError) in PackageList(packages: try api.packages.list()) },
        .answer("packages.rollback", params: ProgramParams.init) { api, p, _ throws(MiniAppError) in
            try api.refuseIfRunning(p.id, "rolling it back")
            return try api.packages.rollback(id: p.id)
        },
        .answer("packages.remove", params: ProgramParams.init) { api, p, _ throws(MiniAppError) in
            try api.refuseIfRunning(p.id, "removing it")
            try api.packages.remove(id: p.id)
            return Empty()
        },
        .answer("updates.check", params: OptionalProgramParams.init) { api, p, _ throws(MiniAppError) in try api.packages.checkUpdates(id: p.id) },
        .answer("updates.status", params: OptionalProgramParams.init) { api, p, _ throws(MiniAppError) in
            UpdateStatusList(programs: try api.packages.updateStatus(id: p.id))
        },
    ]

    static let programs: [ControlMethod] = [
        .answer("programs.launch", params: LaunchParams.init) { api, p, _ throws(MiniAppError) in
            // Before the launch, in the background: a launch never waits for the registry,
            // and one refused (HOST_UPDATE_REQUIRED) may be fixed by what the check finds.
            api.packages.launchRequested(id: p.id)
            return try api.supervisor.launch(p.id, args: p.args)
        },
        .answer("programs.prewarm", params: ProgramParams.init) { api, p, _ throws(MiniAppError) in try api.supervisor.prewarm(p.id) },
        .answer("programs.suspend", params: WorkerParams.init) { api, p, _ throws(MiniAppError) in
            try api.supervisor.suspend(p.workerId)
            return Empty()
        },
        .answer("programs.resume", params: WorkerParams.init) { api, p, _ throws(MiniAppError) in
            try api.supervisor.resume(p.workerId)
            return Empty()
        },
        .later("programs.stop", params: StopParams.init) { api, p, _, reply in
            do throws(MiniAppError) {
                try api.supervisor.stop(p.workerId, graceMillis: p.graceMillis) { status in reply(.success(StoppedWorker(status: status).json)) }
            } catch {
                reply(.failure(error))
            }
        },
        .later("programs.restart", params: ProgramParams.init) { api, p, _, reply in api.restart(p.id, reply) },
        .answer("programs.list", params: NoParams.init) { api, _, _ throws(MiniAppError) in
            ProgramList(workers: api.supervisor.list(), prewarmed: api.supervisor.prewarmedList())
        },
        .answer("programs.send", params: SendParams.init) { api, p, _ throws(MiniAppError) in
            try api.supervisor.send(p.workerId, name: p.name, data: p.data)
            return Empty()
        },
    ]

    static let broker: [ControlMethod] = [
        .answer("bridge.provide", params: ProvideParams.init) { api, p, peer throws(MiniAppError) in
            try api.broker.provide(methods: p.methods, peer: peer)
            return Empty()
        },
        .answer("session.set", params: SessionParams.init) { api, p, _ throws(MiniAppError) in
            try api.broker.setSession(userId: p.userId, claims: p.claims)
            return Empty()
        },
        .answer("inspector.subscribe", params: InspectorParams.init) { api, p, peer throws(MiniAppError) in
            api.broker.subscribeInspector(programId: p.programId, peer: peer)
            return Empty()
        },
        .answer("permissions.refresh", params: NoParams.init) { api, _, _ throws(MiniAppError) in try api.broker.refreshPermissions() },
        .answer("auth.keys", params: NoParams.init) { api, _, _ throws(MiniAppError) in VerificationKeys(keys: api.broker.verificationKeys()) },
    ]
}

extension ControlAPI {
    /// `packages.install`: off the connection's queue, on the install gate's bounded pool, so a
    /// slow or hostile install never holds up another request (of this peer or any other).
    /// `{dir}` / `{url}` (an unsigned program) only in simulator mode.
    func install(_ p: InstallParams, _ request: ControlRequest, _ reply: @escaping ControlReply) {
        let job: @Sendable (UInt64) throws(MiniAppError) -> JSONValue
        do throws(MiniAppError) { job = try installJob(p, request) } catch { return reply(.failure(error)) }
        let refused = installs.start(uid: request.peer.uid, { deadline -> Result<JSONValue, MiniAppError> in
            do throws(MiniAppError) { return .success(try job(deadline)) } catch { return .failure(error) }
        }, then: reply)
        if let refused { reply(.failure(refused)) }
    }

    /// The install a request asks for, checked before it takes a place in the gate.
    private func installJob(_ p: InstallParams, _ request: ControlRequest) throws(MiniAppError)
        -> @Sendable (UInt64) throws(MiniAppError) -> JSONValue
    {
        let packages = self.packages
        switch p.source {
        case .simulated(let dir, let url):
            guard simulator else { throw Self.notSimulator }
            return { _ throws(MiniAppError) in try packages.installSimulated(dir: dir, url: url).json }
        case .descriptor:
            guard let attachment = request.attachment else {
                throw MiniAppError(
                    .invalidParams, "params.fd is true but no descriptor came with the request; attach it (SCM_RIGHTS) to the sendmsg that carries the request line")
            }
            return { deadline throws(MiniAppError) in
                try packages.install(from: .descriptor(attachment), allowDowngrade: p.allowDowngrade, deadline: deadline).json
            }
        case .path(let path):
            let source = PackageSource.path(path, request.peer.credentials)
            return { deadline throws(MiniAppError) in
                try packages.install(from: source, allowDowngrade: p.allowDowngrade, deadline: deadline).json
            }
        }
    }

    /// Where `programs.restart` launches once the stop is done: a launch blocks (the spawn), and
    /// the stop waiter runs on the worker-exits thread. Four at once, then in order.
    static let relaunches = WorkQueue(name: "relaunch", width: 4)

    /// `programs.restart {id}`: stops the program's worker (if one runs) and launches it again,
    /// which activates a staged version; answers with the launch (`workerId`, `version`, …).
    func restart(_ id: String, _ reply: @escaping ControlReply) {
        let launch: @Sendable () -> Void = { [supervisor] in
            do throws(MiniAppError) { reply(.success(try supervisor.launch(id).json)) } catch { reply(.failure(error)) }
        }
        guard let wid = supervisor.workerId(programId: id) else { return launch() }
        do throws(MiniAppError) {
            // The stop waiter runs on the worker-exits thread, which must not block in a launch.
            try supervisor.stop(wid, graceMillis: nil) { _ in Self.relaunches.submit(launch) }
        } catch where error.code == .notFound {
            launch()  // it ended meanwhile
        } catch {
            reply(.failure(error))
        }
    }
}
