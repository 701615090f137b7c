import Logging
import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppSystem
import Synchronization

/// Who may use the control socket (spec/control-api.md, "Access").
///
/// The identity is the kernel's record of the connection, taken at accept time: `SO_PEERCRED`
/// (uid, primary gid) and `SO_PEERGROUPS` (supplementary groups, as of connect) — never a field
/// the peer sends, nor /proc of a pid that may have been recycled. Allowed: root, the daemon's
/// own uid, the configured uids, and any peer with a configured gid or group (by name,
/// default `miniappd`, the socket unit's group) as its primary or a supplementary group. The
/// socket file is 0660 as a first fence; this check is the one that counts (a file mode can be
/// loosened by an operator, or the socket passed by systemd with other permissions).
struct ControlAccess: Sendable {
    var uids: Set<UInt32>
    var gids: Set<UInt32>
    /// Configured group names this host does not have (they admit nobody; logged at start).
    var unknownGroups: [String] = []

    init(config: DaemonConfig, groupID: (String) -> UInt32? = UserDatabase.groupID(named:)) {
        uids = Set(config.controlAllowedUIDs + [0, CurrentProcess.effectiveUID])
        gids = Set(config.controlAllowedGIDs)
        for name in config.controlAllowedGroups {
            if let gid = groupID(name) { gids.insert(gid) } else { unknownGroups.append(name) }
        }
    }

    func allows(_ peer: PeerCredentials) -> Bool {
        uids.contains(peer.uid) || gids.contains(peer.gid) || peer.groups.contains(where: gids.contains)
    }
}

/// Serves the control API on a listening Unix socket, on the broker's reactor.
///
/// Per connection: lines are decoded with the strict JSON-RPC codec; requests run on the
/// connection's own serial queue (off the reactor thread, since a launch or an install takes
/// milliseconds and must not stall Bridge traffic), so one peer's answers keep their order
/// while different peers proceed in parallel; responses from host providers go straight to
/// the broker on the loop thread.
final class ControlServer: Sendable {
    private let reactor: Reactor
    private let api: ControlAPI
    private let broker: Broker
    private let access: ControlAccess
    private let maxMessageBytes: Int
    private let logger: Logger
    private let sessions: ControlSessions
    private let listener = Mutex<LineListener?>(nil)
    private let admission: ControlAdmission
    /// Open connections per uid (loop thread writes; counted from accept to close).
    private let openByUID = Mutex<[UInt32: Int]>([:])

    init(
        reactor: Reactor, api: ControlAPI, broker: Broker, sessions: ControlSessions, access: ControlAccess, maxMessageBytes: Int,
        logger: Logger, admission: ControlAdmission = ControlAdmission()
    ) {
        self.sessions = sessions
        self.admission = admission
        self.reactor = reactor
        self.api = api
        self.broker = broker
        self.access = access
        self.maxMessageBytes = maxMessageBytes
        self.logger = logger
    }

    /// Starts accepting on `fd` (a bound, listening socket).
    func serve(_ fd: consuming OwnedFD) throws(SystemError) {
        // Descriptors: `packages.install {fd: true}` takes one; two may wait unclaimed (a
        // client pipelining two installs), more close the connection.
        var limits = LineConnection.Limits(maxLineBytes: maxMessageBytes, maxQueuedOutputBytes: 16 << 20, maxPassedDescriptors: 2)
        limits.sharedInputBudget = admission.inputBudget
        let l = try reactor.listen(
            fd, limits: limits, descriptorReserve: admission.limits.descriptorReserve, shed: { [self] in shedLine() }
        ) { [self] creds in admit(creds) }
        listener.withLock { $0 = l }
    }

    /// The accept decision (loop thread).
    private func admit(_ creds: PeerCredentials) -> any LineHandler {
        guard access.allows(creds) else {
            admission.logRefusal(logger, "control: refused \(creds): not in controlAllowedUids, controlAllowedGids or controlAllowedGroups")
            return RefusedPeer(creds)
        }
        let refusal = openByUID.withLock { open -> String? in
            if let why = admission.refusal(uid: creds.uid, open: open) { return why }
            open[creds.uid, default: 0] += 1
            return nil
        }
        if let refusal {
            admission.logRefusal(logger, "control: refused \(creds): \(refusal)")
            return RefusedPeer(creds, MiniAppError(.rateLimited, refusal))
        }
        return ControlConnectionPeer(server: self, credentials: creds)
    }

    /// What a peer accepted into the descriptor reserve is told before it is closed.
    private func shedLine() -> [UInt8] {
        admission.logRefusal(logger, "control: refused a connection: the daemon is short of file descriptors (reserve of \(admission.limits.descriptorReserve) kept for launches)")
        var line: [UInt8] = []
        RPCCodec.writeError(id: .null, error: MiniAppError(.hostUnavailable, "the daemon is short of file descriptors; try again later"), into: &line)
        return line
    }

    /// Stops accepting new connections; the open ones keep being served.
    func stopAccepting() { listener.withLock { $0?.close() } }

    /// Stops accepting and closes every control connection now, dropping unsent output.
    func close() {
        stopAccepting()
        sessions.closeAll()
    }

    /// Shutdown: stops accepting, then closes the connections once what is queued for them is
    /// sent, by `deadline` (`ControlSessions.closeAfterFlush`).
    func closeAfterFlush(deadline: UInt64) {
        stopAccepting()
        sessions.closeAfterFlush(deadline: deadline)
    }

    // MARK: per connection (loop thread unless noted)

    fileprivate func opened(_ peer: ControlConnectionPeer) { sessions.opened(peer) }

    fileprivate func closed(_ peer: ControlConnectionPeer) {
        openByUID.withLock { open in
            open[peer.uid, default: 1] -= 1
            if open[peer.uid] == 0 { open[peer.uid] = nil }
        }
        sessions.closed(peer)
    }

    fileprivate func received(_ line: UnsafeBufferPointer<UInt8>, from peer: ControlConnectionPeer, on conn: LineConnection) {
        let message: RPCMessage
        switch RPCCodec.parse(line).flatMap(RPCCodec.decodeMessage) {
        case .success(let m): message = m
        case .failure(let e):
            peer.reply(id: e.id, .failure(MiniAppError(e.code, e.message)))
            return
        }
        switch message {
        case .response(let r):
            // A host provider answering a `bridge.call`; only the connection the call was sent
            // to can answer it (the registry checks), anything else is ignored.
            broker.hostProviders.handleResponse(r, from: conn)
        case .request(let r):
            guard let id = r.id else { return }  // notifications to the daemon mean nothing (yet)
            let api = self.api
            // Claimed here, on the loop thread, in request order (see takePassedDescriptor).
            var attachment: PassedDescriptor?
            if ControlAPI.takesDescriptor(method: r.method, params: r.params), let fd = conn.takePassedDescriptor() { attachment = PassedDescriptor(fd) }
            peer.queue.submit { [attachment] in
                api.handle(method: r.method, params: r.params, peer: peer, attachment: attachment) { result in peer.reply(id: id, result) }
            }
        }
    }
}

/// One authorized control connection: the control API's `ControlPeer` and the reactor's handler.
final class ControlConnectionPeer: ControlPeer, LineHandler, @unchecked Sendable {
    private unowned let server: ControlServer
    private let peerCredentials: PeerCredentials
    /// Requests of this connection run here, in order (a handler may block: a launch waits for
    /// its worker). Its thread starts with the first request and ends after the close.
    let queue = WorkQueue(name: "control-peer")
    private let conn = Mutex<LineConnection?>(nil)
    private let connId = Atomic<UInt64>(0)

    init(server: ControlServer, credentials: PeerCredentials) {
        self.server = server
        self.peerCredentials = credentials
    }

    var connection: LineConnection? { conn.withLock { $0 } }
    var connectionId: UInt64 { connId.load(ordering: .relaxed) }
    var uid: UInt32 { peerCredentials.uid }
    var credentials: PeerCredentials? { peerCredentials }

    func send(_ message: JSONValue) {
        var line = message.serialized()
        line.append(10)
        connection?.send(line)
    }

    /// Answers request `id` (any thread).
    func reply(id: RPCId, _ result: Result<JSONValue, MiniAppError>) {
        var line: [UInt8] = []
        switch result {
        case .success(let v): RPCCodec.writeResult(id: id, result: v, into: &line)
        case .failure(let e): RPCCodec.writeError(id: id, error: e, into: &line)
        }
        connection?.send(line)
    }

    func connectionDidOpen(_ connection: LineConnection) {
        conn.withLock { $0 = connection }
        connId.store(connection.id, ordering: .relaxed)
        server.opened(self)
    }

    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {
        server.received(line, from: self, on: connection)
    }

    func connection(_ connection: LineConnection, didReceiveOversizeMessage size: Int) {
        reply(id: .null, .failure(MiniAppError(.messageTooLarge, "message exceeds the limit (maxMessageBytes); the connection is closed")))
    }

    func connectionDidClose(_ connection: LineConnection, reason: LineConnection.CloseReason) {
        server.closed(self)
        queue.finish()  // the requests already received still run (their answers go nowhere)
    }
}

/// A peer that is refused (not allowed, or over a connection cap): one error answer (`id: null`;
/// `UNAUTHORIZED` by default), written by the listener, which closes the connection at once.
final class RefusedPeer: ImmediateRefusal {
    let refusal: [UInt8]

    init(_ credentials: PeerCredentials, _ error: MiniAppError? = nil) {
        let e = error ?? MiniAppError(
            .unauthorized,
            "uid \(credentials.uid) may not use this control socket; ask the operator to add it to controlAllowedUids, or you to a group in controlAllowedGroups (default: miniappd)")
        var line: [UInt8] = []
        RPCCodec.writeError(id: .null, error: e, into: &line)
        refusal = line
    }

    func connection(_ connection: LineConnection, didReceiveLine line: UnsafeBufferPointer<UInt8>) {}
}
