public import MiniAppModel
public import MiniAppSystem
import MiniAppJSON

/// `miniapp pack`: zips a directory deterministically and signs it per the spec.
public enum PackagePacker {
    /// Packs `directory` (which holds `manifest.json`) and signs it with `key`. Symlinks and
    /// special files in the directory are refused rather than followed.
    public static func pack(directory: String, key: RSAKey) throws(MiniAppError) -> [UInt8] {
        var files: [(String, [UInt8], UInt32)] = []
        try walk(directory, prefix: "", into: &files)
        guard let manifestBytes = files.first(where: { $0.0 == "manifest.json" })?.1 else {
            throw MiniAppError(.manifestInvalid, "\(directory)/manifest.json is missing")
        }
        return try pack(manifest: manifestBytes, files: files.filter { $0.0 != "manifest.json" }.map { ($0.0, $0.1, $0.2) }, key: key)
    }

    /// Packs in-memory files (path, content, Unix mode) with a manifest, signing with `key`.
    public static func pack(manifest manifestBytes: [UInt8], files: [(String, [UInt8], UInt32)], key: RSAKey) throws(MiniAppError) -> [UInt8] {
        let manifest = try Manifest.parse(manifestBytes, requireSignature: false)
        let entries = files.map { f in
            StatementEntry(path: f.0, sha256Hex: SHA256Hasher.hex(SHA256Hasher.digest(f.1)), size: UInt64(f.1.count))
        }
        let statement = SignatureStatement.build(canonicalManifest: try manifest.canonicalWithoutSignature(), entries: entries)
        let sig: [UInt8]
        do { sig = try RSAPSS.sign(statement, key: key) } catch { throw MiniAppError(.keyInvalid, "signing failed: \(error)") }
        var doc = manifest.document
        doc["signature"] = .string(SignatureField.encode(sig))
        var zipEntries = [ZipWriter.Entry(name: "manifest.json", data: JSONValue.object(doc).serialized())]
        for f in files.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }) {
            zipEntries.append(ZipWriter.Entry(name: f.0, data: f.1, unixMode: 0o100000 | (f.2 & 0o111 != 0 ? 0o755 : 0o644)))
        }
        var writer = ZipWriter()
        return writer.write(zipEntries)
    }

    /// An **unsigned** zip of `directory` (a simulator daemon's `packages.install {dir}`): the
    /// same walk (symlinks and special files refused, paths checked), names starting with `.`
    /// skipped (`.git`, editor swap files), and the archive limits applied while reading, so a
    /// huge directory is refused before it is all in memory.
    public static func packUnsigned(directory: String, limits: ZipLimits) throws(MiniAppError) -> [UInt8] {
        var files: [(String, [UInt8], UInt32)] = []
        try walk(directory, prefix: "", into: &files, skipHidden: true, budget: limits)
        guard let manifest = files.first(where: { $0.0 == "manifest.json" })?.1 else {
            throw MiniAppError(.manifestInvalid, "\(directory)/manifest.json is missing", data: ["entry": "manifest.json"])
        }
        var entries = [ZipWriter.Entry(name: "manifest.json", data: manifest)]
        for f in files.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }) where f.0 != "manifest.json" {
            entries.append(ZipWriter.Entry(name: f.0, data: f.1, unixMode: 0o100000 | (f.2 & 0o111 != 0 ? 0o755 : 0o644)))
        }
        var writer = ZipWriter()
        return writer.write(entries)
    }

    private static func walk(
        _ dir: String, prefix: String, into files: inout [(String, [UInt8], UInt32)], skipHidden: Bool = false,
        budget: ZipLimits? = nil
    ) throws(MiniAppError) {
        let names: [String]
        do { names = try FileSystem.list(dir) } catch { throw MiniAppError(.notFound, "cannot open directory \(dir)") }
        for name in names.sorted() where !(skipHidden && name.hasPrefix(".")) {
            let rel = prefix.isEmpty ? name : prefix + "/" + name
            let st: FileStatus
            do { st = try FileSystem.status(dir + "/" + name, followSymlinks: false) } catch { throw MiniAppError(.notFound, "cannot stat \(dir)/\(name)") }
            if let problem = PackagePath.problem(rel) { throw MiniAppError(.badPath, "\(rel) \(problem)") }
            switch st.kind {
            case .directory: try walk(dir + "/" + name, prefix: rel, into: &files, skipHidden: skipHidden, budget: budget)
            case .regular:
                let f: OwnedFD
                do { f = try OwnedFD.open(dir + "/" + name, options: .noFollow) } catch { throw MiniAppError(.notFound, "\(error)") }
                let bytes: [UInt8]
                do { bytes = try f.readAll(limit: 200 << 20) } catch { throw MiniAppError(.archiveTooLarge, "\(rel): \(error)") }
                files.append((rel, bytes, st.permissions))
                if let budget { try checkBudget(files, budget) }
            default:
                throw MiniAppError(.badEntryType, "\(rel) is not a regular file or directory (symlinks and devices cannot be packed)", data: ["entry": rel])
            }
        }
    }

    private static func checkBudget(_ files: [(String, [UInt8], UInt32)], _ limits: ZipLimits) throws(MiniAppError) {
        guard files.count <= limits.maxEntries else {
            throw MiniAppError(.tooManyEntries, "the directory has more than \(limits.maxEntries) files")
        }
        let total = files.reduce(UInt64(0)) { $0 + UInt64($1.1.count) }
        guard total <= limits.maxInflatedBytes else {
            throw MiniAppError(.archiveTooLarge, "the directory holds more than \(limits.maxInflatedBytes) bytes of files")
        }
    }
}
