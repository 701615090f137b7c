import ArgumentParser
import MiniAppJSON
import MiniAppModel
import MiniAppPackages

/// `miniapp policy lint | explain | diff`: one command per reviewer's question.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Review policies: lint a policy directory, explain what a program can do, diff two policies or packages.",
        discussion: """
            Without --policy-dir the commands read /etc/miniappd/policies (the systemd units' \
            --policy-dir) when it holds a jail.json, else the policies built into the binary, \
            like the daemon. See policies/README.md.
            """,
        subcommands: [PolicyLintCommand.self, PolicyExplainCommand.self, PolicyDiffCommand.self])
}

/// Prints `CODE message` on stderr and exits 2 (the policies could not be read).
private func policyFailure(_ e: MiniAppError) -> ExitCode {
    var err = StandardError()
    print("\(e.code.rawValue) \(e.message)", to: &err)
    return ExitCode(2)
}

struct PolicyLintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint",
        abstract: "Check every policy file and flag risky allowances. Exit 0 clean, 1 risky, 2 invalid.",
        discussion: """
            Each finding is one line: INVALID|RISKY FILE: CODE: reason. Checked: jail.json, every \
            seccomp/*.json (schema, syscall names known to libseccomp for the listed architectures, \
            compiles), methods.json, partners/*.json (schema, keys, permissions defined, id prefixes \
            that overlap), programs/*.json and partner overrides (only lower limits), and the \
            Markdown files next to them (examples parse, permission names exist). Risky: seccomp \
            allowing ptrace, unshare/setns, mount, bpf, keyctl, io_uring_*, userfaultfd, clone \
            with namespace flags, clone3, ioctl without the TIOCSTI mask, a default allow; a jail \
            without a network namespace or Landlock, with cgroup limits off, or binding a host \
            path that holds secrets.
            """)

    @Option(help: "Policy directory (default: /etc/miniappd/policies, else the built-in policies).") var policyDir: String?
    @Flag(help: "One JSON document: {policyDir, result, findings:[{severity, file, code, message}]}.") var json = false

    func run() throws {
        let source: PolicySource
        do { source = try PolicySource.resolve(policyDir) } catch { throw policyFailure(error) }
        defer { source.cleanup() }
        let lint = PolicyLint(LoadedPolicies.load(source))
        if json { printJSON(lint.json) } else { lint.printText() }
        if lint.exitCode != 0 { throw ExitCode(lint.exitCode) }
    }
}

struct PolicyExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "What one program may do: its effective jail and every Bridge method it can or cannot call, and why.",
        discussion: """
            ID: the program installed in --state-dir (its package store, read as the daemon \
            reads it; run it on the daemon's host). PACKAGE.zip: the package, verified as an \
            install would be. Computed with the daemon's own code: the mount planner, the \
            override resolution of limits, and the permission table's decision per method. \
            Partner grants come from the policy directory's partners/*.json (the registry is \
            not asked). Exit 0, or 2 when the policies or the program cannot be read.
            """)

    @Argument(help: "A program id, or a package zip.") var program: String
    @Option(help: "Policy directory (default: /etc/miniappd/policies, else the built-in policies).") var policyDir: String?
    @Option(help: "The daemon's state directory (installed packages, uids).") var stateDir = "/var/lib/miniappd"
    @Flag(help: "Describe a rootless daemon's workers (a user namespace maps one uid).") var rootless = false
    @Flag(help: "One JSON document.") var json = false

    func run() throws {
        do {
            let source = try PolicySource.resolve(policyDir)
            defer { source.cleanup() }
            let policies = LoadedPolicies.load(source)
            let (_, _, catalogue) = try policies.valid()
            let subject = try ExplainSubject.load(program, policies: policies, stateDir: stateDir, catalogue: catalogue)
            let out = try PolicyExplain(policies: policies, subject: subject, stateDir: stateDir, rootless: rootless).build()
            if json { printJSON(.object(out)) } else { ExplainText.print(out) }
        } catch {
            throw policyFailure(error)
        }
    }
}

struct PolicyDiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two policy directories or two packages of one program. Exit 1 on any widening.",
        discussion: """
            Each line is marked WIDENING (programs get more: a permission granted or no longer \
            needed, a domain or syscall allowed, a limit loosened, a mount added, a namespace or \
            Landlock switched off) or narrowing. Packages are verified against --policy-dir. Exit \
            0 when nothing widens, 1 when something does, 2 when an input cannot be read.
            """)

    @Argument(help: "The old policy directory or package zip.") var old: String
    @Argument(help: "The new policy directory or package zip.") var new: String
    @Option(help: "Policy directory to verify packages against.") var policyDir: String?
    @Flag(help: "One JSON document: {widening, changes:[{kind, subject, change}]}.") var json = false

    func run() throws {
        let diff: PolicyDiff
        do {
            if old.hasSuffix(".zip") || new.hasSuffix(".zip") {
                let source = try PolicySource.resolve(policyDir)
                defer { source.cleanup() }
                let policies = LoadedPolicies.load(source)
                let (_, _, catalogue) = try policies.valid()
                let options = VerifierOptions(hostVersion: SemVer(PackageCommands.defaultHostVersion)!, knownPermissions: catalogue.knownPermissions)
                let verifier = PackageVerifier(partners: policies.merge.set, options: options)
                diff = PolicyDiff(old: try verifier.verify(path: old), new: try verifier.verify(path: new))
            } else {
                diff = try PolicyDiff(
                    old: LoadedPolicies.load(try PolicySource.resolve(old)), new: LoadedPolicies.load(try PolicySource.resolve(new)))
            }
        } catch {
            throw policyFailure(error)
        }
        if json { printJSON(diff.json) } else { diff.printText(old: old, new: new) }
        if diff.hasWidening { throw ExitCode(1) }
    }
}
