import Archive
import Core
import Foundation

/// A layer to unpack: a stored blob, and (when a config names it) the diff_id it must have.
public struct LayerSource: Sendable {
    public var blob: Digest
    public var path: String
    public var expectedDiffID: Digest?
    public init(blob: Digest, path: String, expectedDiffID: Digest? = nil) {
        self.blob = blob; self.path = path; self.expectedDiffID = expectedDiffID
    }
}

extension ImageStore {
    /// The OCI chain id: what identifies a stack of layers, bottom first.
    public static func chainID(_ diffIDs: [Digest]) -> Digest {
        guard var chain = diffIDs.first else { return Digest.of(Data()) }
        for d in diffIDs.dropFirst() { chain = Digest.of(Data("\(chain) \(d)".utf8)) }
        return chain
    }

    /// The diff_id of a stored blob, if it was ever unpacked.
    public func knownDiffID(ofBlob d: Digest) -> Digest? {
        guard let s = try? String(contentsOfFile: blobInfoDir + "/" + d.hex, encoding: .utf8) else { return nil }
        return Digest(s.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func recordDiffID(_ diffID: Digest, forBlob d: Digest) throws {
        try FS.atomicWrite(Data(diffID.description.utf8), to: blobInfoDir + "/" + d.hex, mode: 0o600)
    }

    public func hasTree(_ key: Digest) -> Bool { FS.exists(treeDir(key) + "/meta.json") }

    /// Move a finished tree into place unless another process got there first. Either way the
    /// tree at `treeDir(key)` is complete afterwards and `scratch` is emptied.
    func commitTree(_ key: Digest, from scratch: Scratch, meta: TreeMeta, ownership: [OwnershipRecord]) throws {
        let staged = scratch.path + "/tree"
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try FS.atomicWrite(try enc.encode(meta), to: staged + "/meta.json", mode: 0o600)
        try FS.atomicWrite(ImageStore.encodeOwnership(ownership), to: staged + "/ownership", mode: 0o600)
        let treeLock = try lock("tree", key, .exclusive)
        defer { treeLock.unlock() }
        if hasTree(key) { return }
        if FS.exists(treeDir(key)) {
            // A directory without meta.json is not a tree (cannot happen via rename; be safe).
            try FS.removeTree(treeDir(key))
        }
        if rename(staged, treeDir(key)) != 0 {
            throw AZLError.errno(errno, "cannot move unpacked tree into", path: treeDir(key))
        }
        FS.fsyncDirectory(paths.trees)
    }

    /// Unpack `layers` in order into a tree keyed by their chain id (reusing it if present).
    /// Each blob's diff_id is checked against `expectedDiffID` when given.
    public func unpackLayers(_ layers: [LayerSource], progress: ((Int, ExtractResult) -> Void)? = nil) throws -> (key: Digest, meta: TreeMeta) {
        let known = layers.map { $0.expectedDiffID ?? knownDiffID(ofBlob: $0.blob) }
        var unpackLock: FileLock?
        defer { unpackLock?.unlock() }
        if known.allSatisfy({ $0 != nil }) {
            let key = ImageStore.chainID(known.map { $0! })
            if hasTree(key) { return (key, try meta(key)) }
            // Another process unpacking the same layers (two pulls of one image): wait for it
            // and use its tree instead of unpacking a second copy.
            unpackLock = try lock("unpack", key, .exclusive)
            if hasTree(key) { return (key, try meta(key)) }
        }
        let s = try scratch("unpack")
        defer { s.discard() }
        let staged = s.path + "/tree"
        try FS.mkdirs(staged + "/rootfs", mode: 0o700)
        var diffIDs: [Digest] = []
        var total = TreeMeta(diffIDs: [], entries: 0, bytes: 0, devices: [], refused: [])
        var ownership: [String: OwnershipRecord] = [:]
        for (i, layer) in layers.enumerated() {
            let fd = open(layer.path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw AZLError.errno(errno, "cannot open layer", path: layer.path) }
            defer { close(fd) }
            let ex = try SafeExtractor(root: staged + "/rootfs", options: ExtractOptions(ociLayer: true))
            let r = try ex.extract(fd: fd, name: "layer \(layer.blob)")
            if r.blobDigest != layer.blob {
                throw AZLError(.digestMismatch, "layer \(layer.blob) has digest \(r.blobDigest) on disk",
                               hint: "the stored blob is damaged; run `azl-shell prune` and pull again")
            }
            if let want = layer.expectedDiffID, want != r.diffID {
                throw AZLError(.digestMismatch, "layer \(layer.blob) unpacks to \(r.diffID), the image config says \(want)",
                               hint: "the image is inconsistent; nothing was kept")
            }
            try recordDiffID(r.diffID, forBlob: layer.blob)
            diffIDs.append(r.diffID)
            total.entries += r.entries
            total.bytes += r.bytes
            total.devices += r.devices.map { DeviceEntry(path: $0.path, type: $0.type, major: $0.major, minor: $0.minor, mode: $0.mode) }
            total.refused += r.refused
            for o in r.ownership { ownership[o.path] = o }
            progress?(i, r)
        }
        total.diffIDs = diffIDs
        let key = ImageStore.chainID(diffIDs)
        try commitTree(key, from: s, meta: total, ownership: ownership.values.sorted { $0.path < $1.path })
        return (key, try meta(key))
    }

    /// The ownership sidecar: one line per entry not owned by 0:0 (or with setuid/setgid bits),
    /// `uid gid mode path` with the path percent-escaped, so a later multi-uid mapping can
    /// restore what the archive said.
    static func encodeOwnership(_ records: [OwnershipRecord]) -> Data {
        var s = "# azl-shell ownership v1: uid gid mode(octal) path(percent-escaped)\n"
        for r in records {
            s += "\(r.uid) \(r.gid) \(String(r.mode, radix: 8)) \(escapePath(r.path))\n"
        }
        return Data(s.utf8)
    }

    public static func decodeOwnership(_ data: Data) -> [OwnershipRecord] {
        String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            if line.hasPrefix("#") { return nil }
            let f = line.split(separator: " ", maxSplits: 3)
            guard f.count == 4, let u = Int64(f[0]), let g = Int64(f[1]), let m = UInt32(f[2], radix: 8) else { return nil }
            return OwnershipRecord(path: String(f[3]).removingPercentEncoding ?? String(f[3]), uid: u, gid: g, mode: m)
        }
    }

    static func escapePath(_ p: String) -> String {
        var out = ""
        for u in p.utf8 {
            if u <= 0x20 || u == 0x25 || u >= 0x7f { out += String(format: "%%%02X", u) } else { out.append(Character(UnicodeScalar(u))) }
        }
        return out
    }
}

extension ImageStore {
    /// Partial downloads live outside tmp/: they must survive the process (resume with Range).
    public var partialDirectory: String { paths.root + "/partial" }

    /// Move a verified blob into place (no-op when another process stored it first).
    public func commitBlob(_ d: Digest, from path: String) throws -> String {
        let dest = blobPath(d)
        if FS.exists(dest) { unlink(path); return dest }
        if rename(path, dest) != 0 { throw AZLError.errno(errno, "cannot store blob", path: dest) }
        FS.fsyncDirectory(paths.blobs)
        return dest
    }
}
