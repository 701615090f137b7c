public import MiniAppModel

/// The policies compiled into the binaries (the repo's policies/ at build time): what the
/// daemon runs on without `--policy-dir`, and what the CLI's policy commands read when neither
/// `--policy-dir` nor the system directory is there.
public enum BuiltInPolicies {
    /// The system policy directory the systemd units pass as `--policy-dir`.
    public static let systemDirectory = "/etc/miniappd/policies"

    /// Writes the built-in files under `dir` (replaced as a whole) and returns `dir`.
    public static func write(to dir: String) throws(MiniAppError) -> String {
        try StateLayout(root: dir).materialize(EmbeddedPolicies.files, into: dir)
    }

    /// The file names and contents, relative to the policy directory.
    public static var files: [(String, String)] { EmbeddedPolicies.files }
}
