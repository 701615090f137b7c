
/// A seccomp profile in the OCI / Docker JSON format (runtime-spec `linux.seccomp`, moby
/// `profiles/seccomp/default.json`), parsed and validated without any syscall. Syscall names are
/// checked against the kernel tables by the compiler (MiniAppSystem `SeccompCompiler`), which
/// also runs before anything is spawned.
public struct SeccompProfile: Sendable, Equatable {
    public var defaultAction: SeccompAction
    /// errno for `SCMP_ACT_ERRNO` actions that give none (Docker: 1 = EPERM).
    public var defaultErrnoRet: UInt32?
    /// `SCMP_ARCH_*` names the filter accepts; any other ABI hits the bad-arch action (kill).
    public var architectures: [String]
    /// Docker's arch map: the native arch plus sub-architectures it admits.
    public var archMap: [ArchMapEntry]
    public var syscalls: [SeccompRule]
    /// The profile's top-level remark for reviewers (`"comment"`), if any.
    public var comment: String?

    /// One `archMap` entry.
    public struct ArchMapEntry: Sendable, Equatable {
        public var architecture: String
        public var subArchitectures: [String]
    }

    public init(defaultAction: SeccompAction, defaultErrnoRet: UInt32? = nil, architectures: [String] = [],
                archMap: [ArchMapEntry] = [], syscalls: [SeccompRule] = []) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.archMap = archMap
        self.syscalls = syscalls
    }
}

/// What the filter does with a matching call.
public enum SeccompAction: Sendable, Equatable, Hashable {
    case allow, log, trap, killThread, killProcess
    /// `SCMP_ACT_ERRNO` with an explicit errno, or nil: use `errnoRet`/`defaultErrnoRet`/EPERM.
    case errno(UInt32?)
    case trace(UInt32?)

    /// Parses `SCMP_ACT_*`.
    public init?(name: String) {
        switch name {
        case "SCMP_ACT_ALLOW": self = .allow
        case "SCMP_ACT_LOG": self = .log
        case "SCMP_ACT_TRAP": self = .trap
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": self = .killThread
        case "SCMP_ACT_KILL_PROCESS": self = .killProcess
        case "SCMP_ACT_ERRNO": self = .errno(nil)
        case "SCMP_ACT_TRACE": self = .trace(nil)
        default: return nil
        }
    }
}

/// Comparison operators of the format.
public enum SeccompOp: String, Sendable, Equatable {
    case ne = "SCMP_CMP_NE", lt = "SCMP_CMP_LT", le = "SCMP_CMP_LE", eq = "SCMP_CMP_EQ"
    case ge = "SCMP_CMP_GE", gt = "SCMP_CMP_GT", maskedEq = "SCMP_CMP_MASKED_EQ"
}

/// One argument comparison; for `maskedEq`, `value` is the mask and `valueTwo` the datum
/// (`(arg & value) == valueTwo`).
public struct SeccompArg: Sendable, Equatable {
    public var index: UInt32
    public var value: UInt64
    public var valueTwo: UInt64
    public var op: SeccompOp
    public init(index: UInt32, value: UInt64, valueTwo: UInt64 = 0, op: SeccompOp) {
        self.index = index; self.value = value; self.valueTwo = valueTwo; self.op = op
    }
}

/// `includes`/`excludes` of a rule: it applies only when the conditions (granted capabilities,
/// architecture, kernel version) hold.
public struct SeccompCondition: Sendable, Equatable {
    public var caps: [String] = []
    public var arches: [String] = []
    public var minKernel: String?
    public init() {}
    public var isEmpty: Bool { caps.isEmpty && arches.isEmpty && minKernel == nil }
}

/// One entry of `syscalls`.
public struct SeccompRule: Sendable, Equatable {
    public var names: [String]
    public var action: SeccompAction
    public var errnoRet: UInt32?
    public var args: [SeccompArg]
    public var includes: SeccompCondition
    public var excludes: SeccompCondition
    /// The rule's rationale for reviewers (`"comment"`, as in Docker's profiles).
    public var comment: String?
    public init(names: [String], action: SeccompAction, errnoRet: UInt32? = nil, args: [SeccompArg] = [],
                includes: SeccompCondition = .init(), excludes: SeccompCondition = .init()) {
        self.names = names; self.action = action; self.errnoRet = errnoRet; self.args = args
        self.includes = includes; self.excludes = excludes
    }
}
