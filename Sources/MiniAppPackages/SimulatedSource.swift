public import MiniAppModel

/// Where a simulator daemon reads an unsigned program from (`packages.install {dir}` / `{url}`).
public enum SimulatedSource: Sendable {
    /// A program directory (with `manifest.json`), read directly.
    case directory(String)
    /// A zip as a loopback dev server sent it (read by the daemon, bounded by the archive limit).
    case zip([UInt8])
}

extension PartnerRegistration {
    /// The partner a simulator gives an unsigned program that no partner file claims: granted
    /// exactly what the manifest declares (a partner file, when one claims the program, caps
    /// that as in production: `PERMISSION_NOT_GRANTED`). Its id cannot collide with a real
    /// partner's: partner ids have no `:`.
    public static func simulator(for manifest: Manifest) -> PartnerRegistration {
        PartnerRegistration(id: simulatorPrefix + manifest.id, idPrefixes: [manifest.id], publicKeys: [], permissions: Set(manifest.permissions))
    }

    /// `simulator:` — the id prefix of simulator partners.
    public static let simulatorPrefix = "simulator:"
}
