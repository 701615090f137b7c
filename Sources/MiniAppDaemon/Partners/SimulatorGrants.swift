import MiniAppModel
import MiniAppPackages
import Synchronization

/// The grants of simulated programs no partner file claims (a simulator daemon only): partner
/// `simulator:<program id>` → what the program's manifest declares, merged into every grants
/// snapshot the broker receives. The permission check itself is unchanged — the broker still
/// denies a method the manifest does not declare, and a partner file that claims the program
/// caps it as in production.
final class SimulatorGrants: Sendable {
    private struct State {
        var simulated: [String: Set<String>] = [:]
        var partners: [String: Set<String>] = [:]
    }

    private let state = Mutex(State())
    private let apply: @Sendable ([String: Set<String>]) -> Void

    /// `apply` receives every merged snapshot (the broker's `updateGrants`), under this
    /// object's lock, so two publications never reach the broker out of order; the first one,
    /// of the `partners` grants in effect, now.
    init(partners: [String: Set<String>], apply: @escaping @Sendable ([String: Set<String>]) -> Void) {
        self.apply = apply
        partnersChanged(partners)
    }

    /// New partner grants (each `PartnerGrants` refresh, through the broker binding).
    func partnersChanged(_ grants: [String: Set<String>]) {
        state.withLock { s in
            s.partners = grants
            apply(Self.merged(s))
        }
    }

    /// A simulated program is launched with `partner` (a simulator partner or a real one).
    func launched(_ partner: PartnerRegistration) {
        guard partner.id.hasPrefix(PartnerRegistration.simulatorPrefix) else { return }
        state.withLock { s in
            guard s.simulated[partner.id] != partner.permissions else { return }
            s.simulated[partner.id] = partner.permissions
            apply(Self.merged(s))
        }
    }

    private static func merged(_ s: State) -> [String: Set<String>] { s.partners.merging(s.simulated) { real, _ in real } }
}
