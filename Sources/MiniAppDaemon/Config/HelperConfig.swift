import Foundation
import MiniAppModel
import MiniAppSystem

/// The settings of the helpers for untrusted bytes (`miniappd-helper`): the built-in seccomp
/// profiles, replaced by `seccomp/helper-<role>.json` of the policy directory when it has them
/// (an operator edits them like the worker's profile; `miniapp policy lint` checks them).
enum HelperConfig {
    static let roles = ["net", "extract"]

    static func settings(policyDir: String) -> HelperSettings {
        var s = HelperSettings()
        for role in roles {
            let path = policyDir + "/seccomp/helper-\(role).json"
            if let text = try? String(contentsOfFile: path, encoding: .utf8) { s.profiles[role] = text }
        }
        return s
    }
}
