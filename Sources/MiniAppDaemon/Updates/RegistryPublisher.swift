public import MiniAppJSON
public import MiniAppModel
public import MiniAppPackages
public import MiniAppSystem

/// Writes a static registry tree (spec/registry.md) that any HTTP server or CDN can serve:
///
///     SITE/mini-programs/<id>/version          the version document
///     SITE/mini-programs/<id>/<version>.zip    the package it names (url relative to SITE)
///     SITE/partners                            the signed partners document
///
/// Every file is replaced atomically (written beside, fsynced, renamed), the package before the
/// document that names it: a device that reads the new document always finds its package.
public enum RegistryPublisher {
    /// Verifies the package at `packagePath` with `verifier` (the installs' verifier; its host
    /// version should not hold the package back: `minHostVersion` is for the devices to judge)
    /// and publishes it with `rollout`. Refuses a version older than the one published
    /// (`DOWNGRADE`, unless `allowDowngrade`) and the same version with other bytes
    /// (`ALREADY_INSTALLED`: devices that took it would run different code under one number);
    /// the same package again only changes `rollout`. Returns the version document.
    public static func publish(
        site: String, packagePath: String, rollout: Double, verifier: PackageVerifier, allowDowngrade: Bool = false
    ) throws(MiniAppError) -> JSONValue {
        guard rollout.isFinite, rollout >= 0, rollout <= 1 else {
            throw MiniAppError(.invalidParams, "--rollout must be a fraction from 0 to 1 (0.1 = one device in ten)")
        }
        let bytes: [UInt8]
        do { bytes = try OwnedFD.open(packagePath).readAll(limit: verifier.options.limits.maxArchiveBytes) } catch {
            throw MiniAppError(.notFound, "cannot read \(packagePath): \(error)")
        }
        let verified = try verifier.verify(bytes: bytes)
        let m = verified.manifest
        let sha = SHA256Hasher.hex(SHA256Hasher.digest(bytes))
        let dir = "\(site)/mini-programs/\(m.id)"
        try checkAgainstPublished(dir + "/version", version: m.version, sha256: sha, allowDowngrade: allowDowngrade)
        try makeDirectories(site, ["mini-programs", "mini-programs/\(m.id)"])
        let zipName = "\(m.version.text).zip"
        try write(dir + "/" + zipName, bytes)
        let doc: JSONValue = [
            "id": .string(m.id), "version": .string(m.version.text), "minHostVersion": .string(m.minHostVersion.text),
            "url": .string("mini-programs/\(m.id)/\(zipName)"), "sha256": .string(sha), "size": .int(Int64(bytes.count)),
            "rollout": .double(rollout),
        ]
        try write(dir + "/version", doc.serialized() + [0x0A])
        return doc
    }

    /// Signs `registrations` with the platform key and writes `SITE/partners`:
    /// `{"issuedAt", "partners", "signature"}`, statement `miniapp-partners-v1\n` + RFC 8785 JSON
    /// of the document without `signature` + `\n`. Returns the document's bytes.
    public static func publishPartners(
        site: String, platformKey: RSAKey, registrations: [PartnerRegistration], issuedAt: Int64
    ) throws(MiniAppError) -> [UInt8] {
        var ids = Set<String>()
        for r in registrations where !ids.insert(r.id).inserted {
            throw MiniAppError(.partnerInvalid, "partner \(r.id) is listed twice; devices would block it")
        }
        var doc: JSONObject = ["issuedAt": .int(issuedAt), "partners": .array(registrations.map(\.json))]
        let statement: [UInt8]
        do { statement = Array("miniapp-partners-v1\n".utf8) + (try JSONValue.object(doc).canonicalized()) + [0x0A] } catch {
            throw MiniAppError(.internal, "cannot canonicalize the partners document: \(error)")
        }
        do { doc["signature"] = .string(SignatureField.encode(try RSAPSS.sign(statement, key: platformKey))) } catch {
            throw MiniAppError(.keyInvalid, "cannot sign with the platform key: \(error)")
        }
        let bytes = JSONValue.object(doc).serialized() + [0x0A]
        try makeDirectories(site, [])
        try write(site + "/partners", bytes)
        return bytes
    }

    private static func checkAgainstPublished(_ path: String, version: SemVer, sha256: String, allowDowngrade: Bool) throws(MiniAppError) {
        guard let bytes = try? OwnedFD.open(path).readAll(limit: 64 << 10),
            let o = (try? JSONValue.parse(bytes))?.objectValue,
            let current = o["version"]?.stringValue.flatMap(SemVer.init)
        else { return }  // nothing (readable) published yet
        if current == version, o["sha256"]?.stringValue != sha256 {
            throw MiniAppError(
                .alreadyInstalled, "\(version) is already published with different content; publish a new version number",
                data: ["version": version.text])
        }
        if version < current, !allowDowngrade {
            throw MiniAppError(
                .downgrade, "\(version) is older than the published \(current); devices never downgrade. Publish a newer version",
                data: ["active": current.text])
        }
    }

    private static func makeDirectories(_ site: String, _ relative: [String]) throws(MiniAppError) {
        for path in [site] + relative.map({ "\(site)/\($0)" }) {
            do { try FileSystem.makeDirectory(path, mode: 0o755) } catch { throw MiniAppError(.internal, "cannot create \(path): \(error)") }
        }
    }

    private static func write(_ path: String, _ bytes: [UInt8]) throws(MiniAppError) {
        do { try AtomicFile.write(path: path, bytes: bytes, mode: 0o644) } catch {
            throw MiniAppError(.internal, "cannot write \(path): \(error)")
        }
    }
}
