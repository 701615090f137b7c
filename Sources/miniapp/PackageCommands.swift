import ArgumentParser
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// `keygen`, `pack`, `verify` (spec/cli-and-config.md), and the hidden `store-*` verbs used by
/// the crash-safety tests and handy for operators without a daemon.
enum PackageCommands {
    static let all: [any ParsableCommand.Type] = [
        KeygenCommand.self, PackCommand.self, VerifyCommand.self, StoreCommand.self, RegistryCommand.self,
    ]

    /// The host version used when `--host-version` is not given.
    static let defaultHostVersion = "1.0.0"

    /// Prints `CODE message` on stderr and exits 1 (the spec's verify output).
    static func fail(_ e: MiniAppError) -> ExitCode {
        var err = StandardError()
        print("\(e.code.rawValue) \(e.message)", to: &err)
        return ExitCode(1)
    }

    static func options(policyDir: String, hostVersion: String) throws(MiniAppError) -> VerifierOptions {
        guard let host = SemVer(hostVersion) else {
            throw MiniAppError(.invalidParams, "--host-version \(hostVersion) is not a SemVer version")
        }
        return VerifierOptions(hostVersion: host, knownPermissions: try KnownPermissions.load(policyDir: policyDir))
    }

    static func readFile(_ path: String, limit: Int = 64 << 20) throws(MiniAppError) -> [UInt8] {
        do {
            return try OwnedFD.open(path).readAll(limit: limit)
        } catch {
            throw MiniAppError(.notFound, "cannot read \(path): \(error)")
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8], mode: UInt32) throws(MiniAppError) {
        do {
            try FileSystem.removeFile(path)
            let fd = try OwnedFD.open(path, options: [.writeOnly, .create, .exclusive, .noFollow], mode: mode)
            try FileSystem.setPermissions(descriptor: fd.raw, mode)  // whatever the umask
            try fd.writeAll(bytes)
            try FileSystem.sync(descriptor: fd.raw, path)
        } catch {
            throw MiniAppError(.internal, "cannot write \(path): \(error)")
        }
    }
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        CurrentProcess.writeStandardError(string)
    }
}

/// `miniapp keygen --out PREFIX`.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Write an RSA-3072 partner key: PREFIX.key (private PEM, 0600) and PREFIX.pub.")

    @Option(help: "Output prefix.") var out: String
    @Option(help: "Key size in bits (at least 2048).") var bits: Int = 3072

    func run() throws {
        do {
            guard bits >= 2048 else { throw MiniAppError(.keyInvalid, "--bits must be at least 2048") }
            let key: RSAKey
            do { key = try RSAKey.generate(bits: bits) } catch { throw MiniAppError(.internal, "\(error)") }
            let priv: String, pub: String
            do { (priv, pub) = (try key.privatePEM(), try key.publicPEM()) } catch { throw MiniAppError(.internal, "\(error)") }
            try PackageCommands.writeFile(out + ".key", Array(priv.utf8), mode: 0o600)
            try PackageCommands.writeFile(out + ".pub", Array(pub.utf8), mode: 0o644)
            print("wrote \(out).key and \(out).pub")
        } catch let e as MiniAppError {
            throw PackageCommands.fail(e)
        }
    }
}

/// `miniapp pack DIR --key KEY --out FILE`.
struct PackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pack", abstract: "Zip DIR (with its manifest.json) and sign it (spec/package-format.md).")

    @Argument(help: "Directory with manifest.json at its root.") var dir: String
    @Option(help: "Partner private key (PEM).") var key: String
    @Option(help: "Output zip file.") var out: String

    func run() throws {
        do {
            let keyPEM = String(decoding: try PackageCommands.readFile(key, limit: 1 << 20), as: UTF8.self)
            let rsa: RSAKey
            do { rsa = try RSAKey.privateKey(pem: keyPEM) } catch {
                throw MiniAppError(.keyInvalid, "\(key) is not a usable RSA private key: \(error)")
            }
            let bytes = try PackagePacker.pack(directory: dir, key: rsa)
            try PackageCommands.writeFile(out, bytes, mode: 0o644)
            print("wrote \(out) (\(bytes.count) bytes)")
        } catch let e as MiniAppError {
            throw PackageCommands.fail(e)
        }
    }
}

/// `miniapp verify FILE --policy-dir DIR [--host-version V]`.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a package without installing it: prints OK <id> <version>, or the error code and message (exit 1).",
        discussion: """
            Partners come from DIR/partners/*.json. Known permissions come from DIR/methods.json when it \
            exists, else the built-in list: payment, geolocation, network, ui.
            """)

    @Argument(help: "Package zip.") var file: String
    @Option(help: "Policy directory (partners/*.json, methods.json).") var policyDir: String
    @Option(help: "Host version minHostVersion is checked against.") var hostVersion: String = PackageCommands.defaultHostVersion
    @Option(help: "Active version to check for a downgrade against.") var installedVersion: String?
    @Flag(help: "Accept a downgrade of --installed-version.") var allowDowngrade = false

    func run() throws {
        do {
            let options = try PackageCommands.options(policyDir: policyDir, hostVersion: hostVersion)
            let verifier = PackageVerifier(partners: try PartnerDirectory.load(policyDir: policyDir), options: options)
            let v = try verifier.verify(path: file, installedVersion: installedVersion.flatMap(SemVer.init), allowDowngrade: allowDowngrade)
            print("OK \(v.manifest.id) \(v.manifest.version)")
        } catch {
            print("\(error.code.rawValue) \(error.message)")
            throw ExitCode(1)
        }
    }
}
