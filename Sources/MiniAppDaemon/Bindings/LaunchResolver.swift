import MiniAppJail
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// The supervisor's `ProgramResolver` over MiniAppPackages' `PackageStore`: what a launch runs,
/// and the program's data directory. Built before the supervisor; the update service, built
/// after it, subscribes to `activations` at its construction.
final class LaunchResolver: ProgramResolver {
    /// A staged version a launch made active.
    struct Activation: Sendable {
        var programId: String
        var version: String
        var previous: String?
    }

    private let store: PackageStore
    private let dataRoot: String
    private let simulatorGrants: SimulatorGrants?
    /// Every staged version a launch activates.
    let activations = EventChannel<Activation>()

    init(store: PackageStore, dataRoot: String, simulatorGrants: SimulatorGrants? = nil) {
        self.store = store
        self.dataRoot = dataRoot
        self.simulatorGrants = simulatorGrants
    }

    func launchable(_ id: String) throws(MiniAppError) -> LaunchableProgram {
        guard Manifest.isValidId(id) else {
            throw MiniAppError(.invalidParams, "'\(id)' is not a valid program id (reverse-DNS, e.g. com.partner.app)")
        }
        do {
            // The supervisor asks only when it starts a worker (none runs): a staged update
            // becomes active now.
            if let (activated, previous) = try store.activateStaged(id) {
                activations.post(Activation(programId: id, version: activated.text, previous: previous?.text))
            }
            let a = try store.runnable(id)
            let m = a.manifest
            if a.simulated { simulatorGrants?.launched(a.partner) }
            var p = LaunchableProgram(
                id: m.id, version: m.version.text, partnerId: a.partner.id, appDir: a.directory, entryPoint: m.entryPoint,
                runtime: m.runtime, permissions: m.permissions, allowedDomains: m.allowedDomains)
            p.simulated = a.simulated
            return p
        } catch {
            throw StoreBinding.controlError(error, id: id)
        }
    }

    func dataDirectory(_ id: String) throws(MiniAppError) -> String {
        let dir = dataRoot + "/" + id
        do { try FileSystem.makeDirectory(dir, mode: 0o700) } catch {
            throw MiniAppError(.internal, "cannot create \(dir): \(error); check the state directory")
        }
        return dir
    }
}
