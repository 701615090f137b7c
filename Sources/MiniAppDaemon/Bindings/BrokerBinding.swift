import MiniAppBroker
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// Binds the supervisor's `BridgeAttacher` and the control API's `BrokerControl` to
/// MiniAppBroker's `Broker` and the built-in services.
///
/// Grants come from `PartnerGrants`: this binding subscribes to its `changes` when built and puts
/// every refresh into the broker's permission snapshot (through a simulator daemon's
/// `SimulatorGrants`, which adds the simulated programs' grants), so a revoked permission is denied from the next call on, without restarting any
/// worker (DESIGN.md, "The permission table").
/// What an operator's overrides set on a worker's Bridge identity (see `ProgramOverrides`).
struct IdentityOverrides {
    var rateClasses: [String: RateLimit] = [:]
    var privateCIDRs: [String] = []
    var storageQuotaBytes: UInt64?
}

final class BrokerBinding: BridgeAttacher, BrokerControl {
    let broker: Broker
    let services: BuiltinServices
    let partnerGrants: PartnerGrants
    /// What an operator set for a program (its partner's and its own overrides): the rate
    /// classes it lowered and the extra private networks `net.request` may reach.
    private let overridesFor: @Sendable (_ programId: String, _ catalogue: MethodCatalogue) throws(MiniAppError) -> IdentityOverrides

    init(
        broker: Broker, services: BuiltinServices, partners: PartnerGrants, simulatorGrants: SimulatorGrants? = nil,
        overridesFor: @escaping @Sendable (String, MethodCatalogue) throws(MiniAppError) -> IdentityOverrides = { _, _ in IdentityOverrides() }
    ) {
        self.broker = broker
        self.services = services
        partnerGrants = partners
        self.overridesFor = overridesFor
        partners.changes.subscribe { [broker] change in
            if let simulatorGrants { simulatorGrants.partnersChanged(change.grants) } else { broker.updateGrants(change.grants) }
        }
    }

    /// The partners now (the package store asks at every operation).
    var partners: PartnerSet { partnerGrants.partners }

    // MARK: BridgeAttacher

    func attach(identity: CallerIdentity) throws(MiniAppError) -> Int32 {
        // Read now, for this worker: an override changed since the last launch applies; one
        // that would raise a budget refuses the launch (POLICY_INVALID).
        var identity = identity
        let overrides = try overridesFor(identity.programId, broker.permissions.snapshot.catalogue)
        for c in overrides.privateCIDRs where !isValidCIDR(c) {
            throw MiniAppError(.policyInvalid, "allowedPrivateCIDRs entry '\(c)' for \(identity.programId) is not a CIDR; fix the override", data: ["field": "allowedPrivateCIDRs"])
        }
        identity.rateClasses = overrides.rateClasses
        identity.allowedPrivateCIDRs = overrides.privateCIDRs
        identity.storageQuotaBytes = overrides.storageQuotaBytes.map { Int(clamping: $0) }
        let pair: SocketPair
        do { pair = try UnixSocket.pair() } catch {
            throw MiniAppError(.internal, "cannot create the Bridge socket pair: \(error); the daemon may be out of file descriptors")
        }
        let daemonSide = pair.daemonSide
        let workerRaw = pair.workerSide.take()
        do {
            try broker.attach(workerFD: daemonSide, identity: identity)
        } catch {
            OwnedFD(adopting: workerRaw).close()
            throw error
        }
        return workerRaw
    }

    func detach(workerId: String) { broker.detach(workerId: workerId) }

    func sendEvent(workerId: String, name: String, data: JSONValue) throws(MiniAppError) {
        guard broker.sendEvent(workerId: workerId, name: name, data: data) else {
            throw MiniAppError(.notFound, "worker \(workerId) has no Bridge connection (it is exiting)")
        }
    }

    func activity(workerId: String) -> (calls: Int64, lastCallNanos: UInt64) {
        let a = broker.activity(workerId: workerId)
        return (Int64(clamping: a.calls), a.lastCallNanos)
    }

    // MARK: BrokerControl

    func provide(methods: [String], peer: any ControlPeer) throws(MiniAppError) {
        guard let conn = (peer as? ControlConnectionPeer)?.connection else {
            throw MiniAppError(.internal, "bridge.provide needs a control socket connection")
        }
        try broker.hostProviders.provide(methods: methods, connection: conn)
    }

    func subscribeInspector(programId: String?, peer: any ControlPeer) {
        guard let conn = (peer as? ControlConnectionPeer)?.connection else { return }
        broker.inspector.subscribe(connection: conn, programId: programId)
    }

    func providerReply(_ message: JSONObject, peer: any ControlPeer) {
        guard let conn = (peer as? ControlConnectionPeer)?.connection,
            case .success(.response(let r)) = RPCCodec.decodeMessage(.object(message))
        else { return }
        conn.reactor.execute { [broker] in _ = broker.hostProviders.handleResponse(r, from: conn) }
    }

    /// Provider registrations and inspector subscriptions end by themselves: both observe the
    /// connection's close (pending provider calls then fail `HOST_UNAVAILABLE`).
    func peerClosed(_ peer: any ControlPeer) {}

    /// Re-reads the partner grants; a bad registration blocks only its own partner and is
    /// reported in the result, so this does not fail.
    func refreshPermissions() throws(MiniAppError) -> PermissionsReport { partnerGrants.refresh() }

    func setSession(userId: String, claims: JSONObject) throws(MiniAppError) {
        try services.auth.setSession(userId: userId, claims: claims)
    }

    func verificationKeys() -> [PublicJWK] { [services.auth.publicKey] }

    func denials() -> Int64 {
        let c = broker.counters()
        return Int64(clamping: c.callsByMethod.values.reduce(0) { $0 + ($1[.deny] ?? 0) })
    }
}
