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

/// How far a pulled layer may unpack: `ratio` times its compressed size, but at least
/// `floorBytes` (small layers of sparse or zero-filled files compress far better than that
/// ratio), and never more than the free space of the store's filesystem.
public struct UnpackBound: Sendable, Equatable {
    public var ratio: Int64
    public var floorBytes: Int64
    public init(ratio: Int64 = 200, floorBytes: Int64 = 1 << 30) { self.ratio = ratio; self.floorBytes = floorBytes }

    /// `AZL_UNPACK_MAX_RATIO` and `AZL_UNPACK_MIN_BYTES` override the defaults.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> UnpackBound {
        var b = UnpackBound()
        if let r = env["AZL_UNPACK_MAX_RATIO"].flatMap(Int64.init), r > 0 { b.ratio = r }
        if let f = env["AZL_UNPACK_MIN_BYTES"].flatMap(Int64.init), f >= 0 { b.floorBytes = f }
        return b
    }

    func limit(compressed: Int64, free: Int64?) -> Int64 {
        let (scaled, over) = compressed.multipliedReportingOverflow(by: ratio)
        let byRatio = max(floorBytes, over ? Int64.max : scaled)
        return min(byRatio, free ?? Int64.max)
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
    /// With `bound`, a layer that unpacks past it fails (`.tooLarge`) and nothing is kept.
    public func unpackLayers(_ layers: [LayerSource], bound: UnpackBound? = nil,
                             progress: ((Int, ExtractResult) -> Void)? = nil) throws -> (key: Digest, meta: TreeMeta) {
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
            var maxBytes: Int64? = nil
            if let bound {
                var st = stat(), vfs = statvfs()
                let compressed = fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
                let free = statvfs(staged, &vfs) == 0 ? Int64(vfs.f_bavail) * Int64(vfs.f_frsize) : nil
                maxBytes = bound.limit(compressed: compressed, free: free)
            }
            let ex = try SafeExtractor(root: staged + "/rootfs", options: ExtractOptions(ociLayer: true, maxBytes: maxBytes))
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
            return OwnershipRecord(path: unescapePath(f[3]), uid: u, gid: g, mode: m)
        }
    }

    /// The name's bytes (FSName), so one that is not UTF-8 comes back byte for byte.
    static func escapePath(_ p: String) -> String {
        var out = ""
        for u in FSName.bytes(p) {
            if u <= 0x20 || u == 0x25 || u >= 0x7f { out += String(format: "%%%02X", u) } else { out.append(Character(UnicodeScalar(u))) }
        }
        return out
    }

    static func unescapePath(_ s: Substring) -> String {
        var bytes: [UInt8] = []
        let u = Array(s.utf8)
        var i = 0
        while i < u.count {
            if u[i] == 0x25, i + 2 < u.count, let b = UInt8(String(decoding: u[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                bytes.append(b); i += 3
            } else {
                bytes.append(u[i]); i += 1
            }
        }
        return FSName.string(bytes)
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
