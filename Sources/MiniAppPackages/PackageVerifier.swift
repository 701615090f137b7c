public import MiniAppModel
internal import MiniAppSystem

/// What the verifier needs besides the archive.
public struct VerifierOptions: Sendable {
    /// Archive limits.
    public var limits = ZipLimits()
    /// The host version `minHostVersion` is checked against.
    public var hostVersion: SemVer
    /// Permission names the method catalogue knows (`KnownPermissions.load`).
    public var knownPermissions: Set<String>
    /// Skip the signature (a debug build's simulator mode only; never in production).
    public var allowUnsigned = false
    /// The store runs, activates and rolls back to simulated versions (a simulator daemon);
    /// without it they are refused `SIMULATED_PACKAGE`.
    public var allowSimulated = false

    public init(hostVersion: SemVer, knownPermissions: Set<String> = PermissionName.builtIn, limits: ZipLimits = ZipLimits()) {
        self.hostVersion = hostVersion
        self.knownPermissions = knownPermissions
        self.limits = limits
    }
}

/// A package that passed steps 1–8: ready to be extracted (step 9, `PackageExtractor`).
public struct VerifiedPackage: Sendable {
    /// The validated manifest.
    public let manifest: Manifest
    /// The partner that signed it.
    public let partner: PartnerRegistration
    /// The archive (validated; its bytes are what was verified — extraction reads these, never
    /// the file again, so a file swapped after verification cannot be extracted).
    public let archive: ZipArchive
    /// The signed file lines (path, sha256, size), manifest excluded.
    public let files: [StatementEntry]
    /// Hex SHA-256 of the signed statement: identifies the content (same version, same content).
    public let contentDigest: String
}

/// What inflating an archive produced, when the extraction helper inflated it (the daemon runs
/// no zlib): the manifest's bytes and each file's SHA-256 and size. Believed for the signature
/// check only: the store re-hashes the extracted files against the signed statement before it
/// publishes them (`StagedTreeCheck`), so a lying helper can make an install fail, never
/// install bytes the partner did not sign.
public struct InflatedContent: Sendable {
    public var manifest: [UInt8]?
    public var files: [String: (sha256Hex: String, size: UInt64)]

    public init(manifest: [UInt8]?, files: [String: (sha256Hex: String, size: UInt64)]) {
        self.manifest = manifest
        self.files = files
    }
}

/// Verifies packages in the spec's order (1–8), failing closed at the first error with a stable
/// code and a message naming the entry. Stateless and `Sendable`: share one per partner snapshot.
public struct PackageVerifier: Sendable {
    /// The partner registrations (a snapshot).
    public let partners: PartnerSet
    /// Options.
    public let options: VerifierOptions

    public init(partners: PartnerSet, options: VerifierOptions) {
        self.partners = partners
        self.options = options
    }

    /// Verifies the file at `path`. `installedVersion` is the active version of the same program
    /// (step 8): older packages are `DOWNGRADE` unless `allowDowngrade`.
    public func verify(path: String, installedVersion: SemVer? = nil, allowDowngrade: Bool = false) throws(MiniAppError) -> VerifiedPackage {
        try verify(archive: ZipArchive.open(path: path, limits: options.limits), installedVersion: installedVersion, allowDowngrade: allowDowngrade)
    }

    /// Verifies archive bytes.
    public func verify(bytes: [UInt8], installedVersion: SemVer? = nil, allowDowngrade: Bool = false) throws(MiniAppError) -> VerifiedPackage {
        try verify(archive: ZipArchive(bytes: bytes, limits: options.limits), installedVersion: installedVersion, allowDowngrade: allowDowngrade)
    }

    /// Steps 2–8 on an archive that passed step 1; `inflated`: what the extraction helper
    /// reported (nil: inflate here).
    public func verify(archive: ZipArchive, inflated: InflatedContent? = nil, installedVersion: SemVer?, allowDowngrade: Bool) throws(MiniAppError) -> VerifiedPackage {
        let manifest = try readManifest(archive, inflated)                         // 2
        let partner = try partner(for: manifest)                                   // 3
        let (files, statement) = try hashEntries(archive, manifest: manifest, inflated)  // 4
        try checkSignature(manifest, statement: statement, partner: partner)
        guard manifest.minHostVersion <= options.hostVersion else {                // 5
            throw MiniAppError(.hostUpdateRequired, "\(manifest.id) \(manifest.version) needs host version \(manifest.minHostVersion) or later; this host is \(options.hostVersion). Update the host.", data: ["required": manifest.minHostVersion.text])
        }
        for p in manifest.permissions where !options.knownPermissions.contains(p) {  // 6
            throw MiniAppError(.unknownPermission, "manifest.json permission \"\(p)\" is not in the method catalogue; remove it or use one of \(options.knownPermissions.sorted().joined(separator: ", "))", data: ["entry": "manifest.json", "permission": p])
        }
        for p in manifest.permissions where !partner.permissions.contains(p) {
            throw MiniAppError(.permissionNotGranted, "manifest.json permission \"\(p)\" is not granted to partner \(partner.id); ask the platform for the grant or remove it", data: ["entry": "manifest.json", "permission": p])
        }
        guard archive.entries.contains(where: { $0.path == manifest.entryPoint && $0.kind == .file }) else {  // 7
            throw MiniAppError(.entryPointMissing, "entryPoint \"\(manifest.entryPoint)\" is not a regular file of the package", data: ["entry": manifest.entryPoint])
        }
        if let installed = installedVersion, manifest.version < installed, !allowDowngrade {  // 8
            throw MiniAppError(.downgrade, "\(manifest.id) \(manifest.version) is older than the active \(installed); pass --allow-downgrade to install it anyway", data: ["active": installed.text])
        }
        let digest = SHA256Hasher.hex(SHA256Hasher.digest(statement))
        return VerifiedPackage(manifest: manifest, partner: partner, archive: archive, files: files, contentDigest: digest)
    }

    /// Step 3; an unsigned program (simulator) that no partner claims gets its simulator partner.
    private func partner(for manifest: Manifest) throws(MiniAppError) -> PartnerRegistration {
        do { return try partners.partner(for: manifest.id) } catch {
            guard options.allowUnsigned, error.code == .unknownPartner else { throw error }
            return PartnerRegistration.simulator(for: manifest)
        }
    }

    private func readManifest(_ archive: ZipArchive, _ inflated: InflatedContent?) throws(MiniAppError) -> Manifest {
        guard let entry = archive.entry("manifest.json"), entry.kind == .file else {
            throw MiniAppError(.manifestInvalid, "manifest.json is missing from the archive root", data: ["entry": "manifest.json"])
        }
        guard entry.uncompressedSize <= UInt64(Manifest.maxBytes) else {
            throw MiniAppError(.manifestInvalid, "manifest.json is \(entry.uncompressedSize) bytes; the limit is 64 KiB", data: ["entry": "manifest.json"])
        }
        var bytes: [UInt8] = []
        if let inflated {
            guard let m = inflated.manifest, m.count == entry.uncompressedSize else {
                throw MiniAppError(.internal, "the extraction helper did not report manifest.json as the archive declares it; retry the install")
            }
            bytes = m
        } else {
            var budget = archive.limits.maxInflatedBytes
            do {
                try archive.stream(entry, budget: &budget) { bytes.append(contentsOf: $0) }
            } catch {
                throw PackageVerifier.wrap(error)
            }
        }
        return try Manifest.parse(bytes, requireSignature: !options.allowUnsigned)
    }

    /// Step 4: every entry streamed once, hashed while inflating, real bytes counted.
    private func hashEntries(_ archive: ZipArchive, manifest: Manifest, _ inflated: InflatedContent?) throws(MiniAppError) -> ([StatementEntry], [UInt8]) {
        var budget = archive.limits.maxInflatedBytes
        var files: [StatementEntry] = []
        files.reserveCapacity(archive.entries.count)
        do {
            for e in archive.entries where e.kind == .file {
                if let inflated {
                    guard let d = inflated.files[e.path], d.size == e.uncompressedSize else {
                        throw MiniAppError(.internal, "the extraction helper did not report entry \"\(e.path)\" as the archive declares it; retry the install", data: ["entry": e.path])
                    }
                    if e.path != "manifest.json" { files.append(StatementEntry(path: e.path, sha256Hex: d.sha256Hex, size: e.uncompressedSize)) }
                    continue
                }
                let h = SHA256Hasher()
                try archive.stream(e, budget: &budget) { h.update($0) }
                if e.path != "manifest.json" {
                    files.append(StatementEntry(path: e.path, sha256Hex: SHA256Hasher.hex(h.finalize()), size: e.uncompressedSize))
                }
            }
        } catch {
            throw PackageVerifier.wrap(error)
        }
        let statement = SignatureStatement.build(canonicalManifest: try manifest.canonicalWithoutSignature(), entries: files)
        return (files, statement)
    }

    private func checkSignature(_ manifest: Manifest, statement: [UInt8], partner: PartnerRegistration) throws(MiniAppError) {
        if options.allowUnsigned && manifest.signature == nil { return }
        guard let field = manifest.signature, let sig = SignatureField.decode(field) else {
            throw MiniAppError(.badSignature, "manifest.json \"signature\" is not \"rsa-pss-sha256:\" followed by base64", data: ["entry": "manifest.json"])
        }
        let keys = partner.publicKeys.compactMap { try? RSAKey.publicKey(pem: $0) }
        guard !keys.isEmpty else {
            throw MiniAppError(.badSignature, "partner \(partner.id) has no usable RSA public key (PEM, at least 2048 bits); fix partners/\(partner.id).json")
        }
        guard RSAPSS.verify(sig, of: statement, anyOf: keys) else {
            throw MiniAppError(.badSignature, "signature of \(manifest.id) \(manifest.version) does not verify with any key of partner \(partner.id): a file or the manifest was changed after signing, or it was signed with another key or scheme (RSA-PSS SHA-256, salt 32 required)", data: ["entry": "manifest.json"])
        }
    }

    static func wrap(_ error: any Error) -> MiniAppError {
        if let e = error as? MiniAppError { return e }
        return MiniAppError(.internal, "unexpected error while reading the archive: \(error)", cause: error)
    }
}
