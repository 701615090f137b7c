/// The daemon's version; also the default host version packages are checked against.
public enum DaemonVersion {
    /// Semantic version of this build.
    public static let current = "1.0.0"
}
