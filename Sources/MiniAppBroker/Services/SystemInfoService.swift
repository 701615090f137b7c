public import MiniAppJSON
internal import MiniAppModel

/// `system.info` → `{programId, version, hostVersion}`: who the program is (from the verified
/// manifest, via the connection) and which daemon runs it (`ServicesConfig.hostVersion`), so a
/// program can adapt to host features. Takes no params (an object with members is refused).
public struct SystemInfoService: BridgeService {
    public let methods = ["system.info"]
    private let hostVersion: String

    /// `hostVersion` is the daemon's own version string, e.g. "1.4.0".
    public init(hostVersion: String) {
        self.hostVersion = hostVersion
    }

    /// Uses `config.hostVersion`.
    public init(config: ServicesConfig) {
        self.init(hostVersion: config.hostVersion)
    }

    public func handle(method: String, params: JSONValue?, caller: CallerIdentity, reply: @escaping BridgeReply) {
        do throws(MiniAppError) {
            guard method == "system.info" else { throw MiniAppError.unservedMethod(method, service: "system") }
            _ = try ServiceParams(params, method: method, allowed: [])
            reply(.success([
                "programId": .string(caller.programId), "version": .string(caller.version),
                "hostVersion": .string(hostVersion),
            ]))
        } catch {
            reply(.failure(error))
        }
    }
}
