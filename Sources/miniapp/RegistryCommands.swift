import ArgumentParser
import Foundation
import MiniAppDaemon
import MiniAppJSON
import MiniAppModel
import MiniAppPackages
import MiniAppSystem

/// `miniapp registry publish|partners`: writes a static registry tree (spec/registry.md).
struct RegistryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "Write a static registry tree (serve SITE with any HTTP server or CDN).",
        discussion: """
            SITE/mini-programs/ID/version (the version document), SITE/mini-programs/ID/VERSION.zip and \
            SITE/partners (the signed partners document). Serve it as it is, for example \
            `python3 -m http.server --directory SITE 8080`, and start miniappd with --registry URL.
            """,
        subcommands: [Publish.self, Partners.self])

    /// `miniapp registry publish --dir SITE --policy-dir DIR [--rollout F] PACKAGE.zip`.
    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a package and publish it as the newest version of its program.",
            discussion: """
                The package is verified as an install would (partner keys and permissions from \
                --policy-dir), except minHostVersion, which is copied into the version document for \
                devices to judge. A version older than the published one is refused (DOWNGRADE), the \
                same version with other content too (ALREADY_INSTALLED); publishing the same package \
                again only changes --rollout (raising it only adds devices).
                """)

        @Option(help: "The registry tree.") var dir: String
        @Option(help: "Policy directory (partners/*.json, methods.json) to verify against.") var policyDir: String
        @Option(help: "Fraction of devices that take this version, 0 to 1.") var rollout: Double = 1
        @Flag(help: "Publish a version older than the published one.") var allowDowngrade = false
        @Argument(help: "The package zip.") var package: String

        func run() throws {
            do throws(MiniAppError) {
                // The devices judge minHostVersion; publishing must not depend on this machine.
                let options = try PackageCommands.options(policyDir: policyDir, hostVersion: "\(Int32.max).0.0")
                let verifier = PackageVerifier(partners: try PartnerDirectory.load(policyDir: policyDir), options: options)
                let doc = try RegistryPublisher.publish(
                    site: dir, packagePath: package, rollout: rollout, verifier: verifier, allowDowngrade: allowDowngrade)
                print("published \(doc["id"]?.stringValue ?? "?") \(doc["version"]?.stringValue ?? "?") rollout=\(rollout) -> \(dir)/\(doc["url"]?.stringValue ?? "")")
            } catch {
                throw PackageCommands.fail(error)
            }
        }
    }

    /// `miniapp registry partners --dir SITE --key PLATFORM.pem PARTNER.json…`.
    struct Partners: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign the partner registrations with the platform key and write SITE/partners (issuedAt: now).")

        @Option(help: "The registry tree.") var dir: String
        @Option(help: "The platform private key (PEM); daemons verify with its public key (--platform-key).") var key: String
        @Argument(help: "Partner registrations (one JSON file each, as in partners/*.json).") var registrations: [String]

        func run() throws {
            do throws(MiniAppError) {
                let pem = String(decoding: try PackageCommands.readFile(key, limit: 1 << 20), as: UTF8.self)
                let rsa: RSAKey
                do { rsa = try RSAKey.privateKey(pem: pem) } catch {
                    throw MiniAppError(.keyInvalid, "\(key) is not a usable RSA private key: \(error)")
                }
                var parsed: [PartnerRegistration] = []
                for path in registrations {
                    parsed.append(try PartnerRegistration.parse(try PackageCommands.readFile(path, limit: 1 << 20), source: path))
                }
                let bytes = try RegistryPublisher.publishPartners(
                    site: dir, platformKey: rsa, registrations: parsed, issuedAt: Int64(Date().timeIntervalSince1970))
                print("wrote \(dir)/partners (\(parsed.count) partners, \(bytes.count) bytes)")
            } catch {
                throw PackageCommands.fail(error)
            }
        }
    }
}
