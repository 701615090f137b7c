/// Error codes of the jail. Stable strings, like every `ErrorCode`.
extension ErrorCode {
    /// A policy file (jail.json, a seccomp profile) or a launch request is invalid; `data.field`
    /// names the offending field. Raised before anything is spawned.
    public static let policyInvalid: ErrorCode = "POLICY_INVALID"
    /// A step of building the jail failed; `data.step` and `data.errno` say which and why.
    public static let jailSetupFailed: ErrorCode = "JAIL_SETUP_FAILED"
    /// A facility the policy requires is missing on this host (cgroup controller, Landlock,
    /// delegated cgroup in rootless mode); the message says how to provide it or relax the policy.
    public static let jailUnavailable: ErrorCode = "JAIL_UNAVAILABLE"
}
