import Core
import Foundation

/// What a setup layer knows about itself (layers/<key>/meta.json).
public struct LayerMeta: Codable, Sendable {
    /// The image digest or the layer below.
    public var parent: Digest
    public var step: String
    /// Input path (relative to the project root) → digest of its content.
    public var inputs: [String: Digest]
    public var bytes: Int64
    public var created: Date
    public init(parent: Digest, step: String, inputs: [String: Digest], bytes: Int64, created: Date) {
        self.parent = parent; self.step = step; self.inputs = inputs; self.bytes = bytes; self.created = created
    }
}

/// Setup layers: what a project's setup step changed in the root, kept as an overlay lower
/// folder (whiteouts and all) under `layers/<key>/root`, keyed by parent + step + inputs
/// (docs/project.md). In the store, so every sandbox has them hidden and only the host decides
/// which layer a key names. Locks files that use layers (a project's azl-shell.lock, an
/// environment's record) are registered in `layer-users/`; `prune` keeps every digest they name.
extension ImageStore {
    public var layersDir: String { paths.root + "/layers" }
    var layerUsersDir: String { paths.root + "/layer-users" }
    var pinsDir: String { paths.root + "/pins" }

    public func layerDir(_ key: Digest) -> String { layersDir + "/" + key.hex }
    /// The overlay lower folder of a layer.
    public func layerRoot(_ key: Digest) -> String { layerDir(key) + "/root" }
    public func hasLayer(_ key: Digest) -> Bool { FS.exists(layerDir(key) + "/meta.json") }

    /// Held exclusive while a layer is built (a second builder of the same key waits, then
    /// finds it built) and by prune; shared by a run that uses it.
    public func layerLock(_ key: Digest, _ mode: FileLock.Mode) throws -> FileLock { try lock("layer", key, mode) }
    public func layerLockPath(_ key: Digest) -> String { paths.locks + "/layer-\(key.hex).lock" }

    public func layerMeta(_ key: Digest) -> LayerMeta? {
        guard let d = FileManager.default.contents(atPath: layerDir(key) + "/meta.json") else { return nil }
        return try? ImageStore.decoder().decode(LayerMeta.self, from: d)
    }

    /// Every stored layer with its meta.
    public func layers() -> [(key: Digest, meta: LayerMeta)] {
        ((try? FileManager.default.contentsOfDirectory(atPath: layersDir)) ?? []).sorted().compactMap { n in
            guard let k = Digest(n), let m = layerMeta(k) else { return nil }
            return (k, m)
        }
    }

    /// A work folder for a step: `root` (the overlay's upper) and `work` (its work folder),
    /// on the store's filesystem so the finished layer is renamed into place.
    public func layerScratch() throws -> Scratch {
        try FS.mkdirs(layersDir, mode: 0o700)
        let s = try scratch("setup")
        try FS.mkdirs(s.path + "/root", mode: 0o755)
        try FS.mkdirs(s.path + "/work", mode: 0o700)
        return s
    }

    /// Keep what a step wrote (SCRATCH's `root`) as the layer KEY, by one rename.
    public func commitLayer(_ key: Digest, from scratch: Scratch, meta: LayerMeta) throws {
        // The overlay's work folder is the kernel's scratch, not part of the layer.
        try? FS.removeTree(scratch.path + "/work")
        var m = meta
        m.bytes = FS.diskUsage(scratch.path + "/root")
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        enc.dateEncodingStrategy = .iso8601
        try FS.atomicWrite(try enc.encode(m), to: scratch.path + "/meta.json", mode: 0o600)
        let writer = try writerLock()
        defer { writer.unlock() }
        if hasLayer(key) { return }
        if rename(scratch.path, layerDir(key)) != 0 {
            throw AZLError.errno(errno, "cannot move setup layer into", path: layerDir(key))
        }
        FS.fsyncDirectory(layersDir)
    }

    /// Move the layer KEY out of the way (`setup --refresh` replaces it; the caller holds its lock).
    public func dropLayer(_ key: Digest) throws {
        let s = try scratch("gc")
        defer { s.discard() }
        if rename(layerDir(key), s.path + "/layer") != 0 { throw AZLError.errno(errno, "cannot remove setup layer", path: layerDir(key)) }
        FS.fsyncDirectory(layersDir)
    }

    /// Remember FILE (an azl-shell.lock, an environment's record) as naming layers and images
    /// to keep: prune keeps every sha256 digest it holds while it exists.
    public func registerLayerUser(_ file: String) {
        try? FS.mkdirs(layerUsersDir, mode: 0o700)
        let entry = layerUsersDir + "/" + Digest.of(Data(file.utf8)).hex
        if (try? String(contentsOfFile: entry, encoding: .utf8)) == file { return }
        try? FS.atomicWrite(Data(file.utf8), to: entry, mode: 0o600)
    }

    /// Keep RECORD findable by its digest after its name moves on (a lock pins it).
    public func pin(_ record: ImageRecord) throws {
        try FS.mkdirs(pinsDir, mode: 0o700)
        let p = pinsDir + "/" + record.digest.hex + ".json"
        if FS.exists(p) { return }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.dateEncodingStrategy = .iso8601
        try FS.atomicWrite(try enc.encode(record), to: p, mode: 0o600)
    }

    /// The image with this digest: a named record, else a pinned one.
    public func record(digest: Digest) -> ImageRecord? {
        if let r = (try? records())?.first(where: { $0.digest == digest }) { return r }
        let p = pinsDir + "/" + digest.hex + ".json"
        PlanInputs.file(p, .content)
        guard let d = FileManager.default.contents(atPath: p) else { return nil }
        return try? ImageStore.decoder().decode(ImageRecord.self, from: d)
    }

    /// The digests registered users name (their files re-read now; a user whose file is gone
    /// is forgotten).
    func digestsInUse() -> Set<String> {
        var out = Set<String>()
        for n in (try? FileManager.default.contentsOfDirectory(atPath: layerUsersDir)) ?? [] {
            let entry = layerUsersDir + "/" + n
            guard let file = try? String(contentsOfFile: entry, encoding: .utf8),
                  let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                unlink(entry)
                continue
            }
            var rest = Substring(text)
            while let r = rest.range(of: "sha256:") {
                let hex = rest[r.upperBound...].prefix(64)
                if hex.count == 64, Digest(String(hex)) != nil { out.insert(String(hex)) }
                rest = rest[r.upperBound...]
            }
        }
        return out
    }

    /// Pinned records no user names any more are dropped; the rest keep their trees and blobs.
    func prunePins(inUse: Set<String>) -> [ImageRecord] {
        var kept: [ImageRecord] = []
        for n in (try? FileManager.default.contentsOfDirectory(atPath: pinsDir)) ?? [] where n.hasSuffix(".json") {
            let p = pinsDir + "/" + n
            guard inUse.contains(String(n.dropLast(5))), let d = FileManager.default.contents(atPath: p),
                  let r = try? ImageStore.decoder().decode(ImageRecord.self, from: d) else {
                unlink(p)
                continue
            }
            kept.append(r)
        }
        return kept
    }

    /// Layers no registered user names (prune, under the store lock). A layer in use (its lock
    /// held) is left for a later prune.
    func pruneLayers(inUse: Set<String>, report: inout PruneReport) throws {
        for n in (try? FileManager.default.contentsOfDirectory(atPath: layersDir)) ?? [] where !inUse.contains(n) {
            guard let d = Digest(n) else { continue }
            guard let l = try FileLock(tryPath: layerLockPath(d), mode: .exclusive) else {
                report.inUse.append(d.description); continue
            }
            let bytes = layerMeta(d)?.bytes ?? FS.diskUsage(layerDir(d))
            // Renamed out first: a half-deleted layer must never be found under layers/. What a
            // step left owned by another id of its namespace may stay in tmp/ (not ours to remove).
            if (try? dropLayer(d)) != nil {
                report.layers.append(d.description)
                report.bytes += bytes
            }
            unlink(layerLockPath(d))
            l.unlock()
        }
    }
}
