import Archive
import Core
import Foundation

/// An image ready to run: its record, its unpacked root, and a shared lock that keeps
/// `rmi`/`prune` from removing the tree while the sandbox uses it.
public struct RunnableImage {
    public let record: ImageRecord
    /// Absolute path of the unpacked tree (the overlay's lower directory). Never modified.
    public let rootfs: String
    /// Device nodes the archive held; the sandbox provides them.
    public let devices: [DeviceEntry]
    public let lock: FileLock
}

/// What an unpacked tree knows about itself (trees/<key>/meta.json).
public struct TreeMeta: Codable, Sendable {
    public var diffIDs: [Digest]
    public var entries: Int
    public var bytes: Int64
    public var devices: [DeviceEntry]
    public var refused: [String]
}

/// The local, content-addressed image store.
///
/// Layout under the root (created 0700: trees keep setuid bits as plain permission bits on
/// the user's own files, so no other user may reach them):
/// ```
/// blobs/sha256/<hex>      blobs as given (compressed tarballs, layers), stored once
/// blobinfo/<hex>          blob digest → diff_id (so a second import of a blob costs nothing)
/// trees/<chainid>/        rootfs/ + meta.json + ownership; keyed by the OCI chain id of its layers
/// images/<ref>.json       one record per NAME:TAG
/// layers/<key>/           setup layers: root/ (an overlay lower) + meta.json (SetupLayers.swift)
/// pins/<digest>.json      records a project lock pins (kept while a registered lock names them)
/// layer-users/<hash>      the path of a file (a lock) whose digests prune keeps
/// tmp/                    work in progress; each entry has a .lock its owner holds
/// locks/                  store.lock (prune vs. writers), blob-/tree- locks
/// ```
/// Every change becomes visible by a single rename, so a kill -9 leaves the old or the new
/// state; what a killed process left in tmp/ is removed by the next one (its lock is free).
public final class ImageStore {
    public let paths: Paths

    /// Opening the store for reading (run, images) does no writes beyond creating missing folders.
    public init(paths: Paths) throws {
        self.paths = paths
        if !FS.isDirectory(paths.root) {
            try FS.mkdirs((paths.root as NSString).deletingLastPathComponent)
            if mkdir(paths.root, 0o700) != 0 && errno != EEXIST {
                throw AZLError.errno(errno, "cannot create state directory", path: paths.root)
            }
        }
        for d in [paths.blobs, paths.trees, paths.images, paths.tmp, paths.locks, blobInfoDir] where !FS.isDirectory(d) {
            try FS.mkdirs(d, mode: 0o700)
        }
        // Every later run hides this store too, whichever store it uses itself.
        Paths.remember(root: paths.root)
    }

    var blobInfoDir: String { paths.root + "/blobinfo" }
    public func blobPath(_ d: Digest) -> String { paths.blobs + "/" + d.hex }
    public func treeDir(_ key: Digest) -> String { paths.trees + "/" + key.hex }
    public func recordPath(name: String, tag: String) -> String {
        paths.images + "/" + ImageStore.escape(name + ":" + tag) + ".json"
    }

    // MARK: temporaries

    /// A work folder in tmp/ that no other process will clean while we hold its lock.
    public final class Scratch {
        public let path: String
        let lock: FileLock
        init(_ store: ImageStore, kind: String) throws {
            let name = "\(kind)-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))"
            path = store.paths.tmp + "/" + name
            lock = try FileLock(path: path + ".lock", mode: .exclusive)
            if mkdir(path, 0o700) != 0 { throw AZLError.errno(errno, "cannot create", path: path) }
        }
        /// Remove what is left (a tree renamed into place is no longer here).
        public func discard() {
            try? FS.removeTree(path)
            unlink(path + ".lock")
            lock.unlock()
        }
        deinit { if FS.exists(path) || FS.exists(path + ".lock") { discard() } }
    }

    public func scratch(_ kind: String) throws -> Scratch { try Scratch(self, kind: kind) }

    /// Remove work folders whose owner died (their lock is free).
    public func cleanStaleTemporaries() {
        let names = FS.names(in: paths.tmp)
        for n in names where n.hasSuffix(".lock") {
            let base = paths.tmp + "/" + String(n.dropLast(5))
            guard let l = try? FileLock(tryPath: paths.tmp + "/" + n, mode: .exclusive) else { continue }
            try? FS.removeTree(base)
            unlink(paths.tmp + "/" + n)
            l.unlock()
        }
        // Folders without a lock file are from a process killed between mkdir and lock: stale too.
        for n in names where !n.hasSuffix(".lock") && !names.contains(n + ".lock") {
            try? FS.removeTree(paths.tmp + "/" + n)
        }
    }

    /// Writers hold this shared; prune holds it exclusive, so it never sees a tree between
    /// its rename into place and the record that references it.
    public func writerLock() throws -> FileLock { try FileLock(path: paths.locks + "/store.lock", mode: .shared) }
    func lock(_ kind: String, _ d: Digest, _ mode: FileLock.Mode) throws -> FileLock {
        try FileLock(path: paths.locks + "/\(kind)-\(d.hex).lock", mode: mode)
    }

    // MARK: records

    public func records() throws -> [ImageRecord] {
        let names = FS.names(in: paths.images)
        var out: [ImageRecord] = []
        let dec = ImageStore.decoder()
        for n in names where n.hasSuffix(".json") && !n.hasPrefix(".") {
            let p = paths.images + "/" + n
            guard let data = FileManager.default.contents(atPath: p) else { continue }
            do { out.append(try dec.decode(ImageRecord.self, from: data)) } catch {
                throw AZLError(.io, "image record \(p) is unreadable: \(error)", hint: "remove it; `azl-shell prune` then frees its data")
            }
        }
        return out.sorted { ($0.name, $0.tag) < ($1.name, $1.tag) }
    }

    public func save(_ record: ImageRecord) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.dateEncodingStrategy = .iso8601
        try FS.atomicWrite(try enc.encode(record), to: recordPath(name: record.name, tag: record.tag), mode: 0o600)
    }

    /// Find a record by `NAME[:TAG]`, or by a digest (or unique prefix of at least 4 hex digits).
    public func lookup(_ reference: String) throws -> ImageRecord {
        // The folder of records: a new name an id prefix would now match, a retag, an rmi.
        PlanInputs.file(paths.images, .content)
        if let (name, tag) = try? ImageName.parse(reference) {
            let p = recordPath(name: name, tag: tag)
            PlanInputs.file(p, .content)
            if let data = FileManager.default.contents(atPath: p) {
                do { return try ImageStore.decoder().decode(ImageRecord.self, from: data) } catch {
                    throw AZLError(.io, "image record \(p) is unreadable: \(error)", hint: "remove it and import again")
                }
            }
        }
        var hex = reference.hasPrefix("sha256:") ? String(reference.dropFirst(7)) : reference
        hex = hex.lowercased()
        if hex.count >= 4, hex.allSatisfy(\.isHexDigit) {
            let matches = try records().filter { $0.digest.hex.hasPrefix(hex) || $0.tree.hex.hasPrefix(hex) }
            let distinct = Set(matches.map(\.digest))
            if distinct.count == 1 { return matches[0] }
            if distinct.count > 1 {
                throw AZLError(.usage, "image id \(reference) is ambiguous (\(distinct.count) images)", hint: "give more digits or a NAME:TAG")
            }
        }
        throw AZLError(.notFound, "no image named \(reference) in \(paths.root)",
                       hint: "see `azl-shell images`; get one with `azl-shell pull REGISTRY/REPO:TAG` or `azl-shell import FILE --name \(reference)`")
    }

    public func meta(_ tree: Digest) throws -> TreeMeta {
        let p = treeDir(tree) + "/meta.json"
        let fix = "pull or import it again, or remove the name with `azl-shell rmi`"
        guard let data = FileManager.default.contents(atPath: p) else {
            throw AZLError(.notFound, "the unpacked tree \(tree.short) is missing from \(paths.trees)", hint: fix)
        }
        do { return try JSONDecoder().decode(TreeMeta.self, from: data) } catch {
            throw AZLError(.io, "the unpacked tree \(tree.short) has an unreadable \(p): \(error)", hint: fix)
        }
    }

    public func openForRun(_ reference: String) throws -> RunnableImage {
        try openForRun(lookup(reference))
    }

    /// A record found is opened as it is: a missing tree is an error of the store (said as
    /// such), never a reason to take the name for something to pull.
    public func openForRun(_ record: ImageRecord) throws -> RunnableImage {
        let l = try lock("tree", record.tree, .shared)
        // Checked after locking: prune may have removed it just before.
        let m: TreeMeta
        do { m = try meta(record.tree) } catch var e as AZLError {
            e.message = "image \(record.reference): \(e.message)"
            throw e
        }
        // The overlay's lower folder: a real folder of the user's, never a symlink to elsewhere
        // (a tree is only ever unpacked into one; anything else was put there by someone else).
        let rootfs = treeDir(record.tree) + "/rootfs"
        var st = stat()
        guard lstat(rootfs, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else {
            throw AZLError(.permission, "image \(record.reference): its unpacked tree \(rootfs) is not a folder of yours",
                           hint: "remove it with azl-shell rmi \(record.reference) and pull or import it again")
        }
        return RunnableImage(record: record, rootfs: rootfs, devices: m.devices, lock: l)
    }

    // MARK: removal

    /// Remove a name (or, for an image id, its names: with `allNames` every one, else it must
    /// have only one, as docker and podman ask); then free what nothing references any more.
    @discardableResult
    public func remove(_ reference: String, allNames: Bool = false) throws -> [ImageRecord] {
        let r = try lookup(reference)
        var names = [r]
        let byName = (try? ImageName.parse(reference)).map { FS.exists(recordPath(name: $0.0, tag: $0.1)) } ?? false
        if !byName {
            names = try records().filter { $0.digest == r.digest }.sorted { $0.reference < $1.reference }
            if names.count > 1 && !allNames {
                throw AZLError(.usage, "image id \(reference) has \(names.count) names: \(names.map(\.reference).joined(separator: ", "))",
                               hint: "remove one by its name, or all of them with --force")
            }
        }
        for n in names {
            let p = recordPath(name: n.name, tag: n.tag)
            if unlink(p) != 0 && errno != ENOENT { throw AZLError.errno(errno, "cannot remove", path: p) }
        }
        FS.fsyncDirectory(paths.images)
        _ = try prune()
        return names
    }

    public struct PruneReport: Codable, Sendable {
        public var trees: [String] = []
        public var blobs: [String] = []
        public var layers: [String] = []
        public var bytes: Int64 = 0
        public var inUse: [String] = []
    }

    /// Remove trees and blobs no record references. A tree in use by a running sandbox
    /// (shared lock held) is left for a later prune.
    public func prune() throws -> PruneReport {
        let store = try FileLock(path: paths.locks + "/store.lock", mode: .exclusive)
        defer { store.unlock() }
        cleanStaleTemporaries()
        // What locks and environments name (setup layers, pinned image digests) stays.
        let inUse = digestsInUse()
        var report = PruneReport()
        try pruneLayers(inUse: inUse, report: &report)
        let recs = try records() + prunePins(inUse: inUse)
        // An environment's tree stays while the environment does, whatever names it has now.
        let trees = Set(recs.map(\.tree.hex)).union(EnvironmentStore(paths: paths).all().map(\.image.tree.hex))
        let blobs = Set(recs.flatMap(\.blobs).map(\.hex))
        for n in FS.names(in: paths.trees) where !trees.contains(n) {
            guard let d = Digest(n) else { continue }
            guard let l = try FileLock(tryPath: paths.locks + "/tree-\(n).lock", mode: .exclusive) else {
                report.inUse.append(d.description); continue
            }
            let bytes = FS.diskUsage(treeDir(d))
            // Rename first: a half-deleted tree must never be found under trees/.
            let s = try scratch("gc")
            let dest = s.path + "/tree"
            if rename(treeDir(d), dest) == 0 {
                FS.fsyncDirectory(paths.trees)
                s.discard()
                report.trees.append(d.description)
                report.bytes += bytes
            } else {
                s.discard()
            }
            unlink(paths.locks + "/tree-\(n).lock")
            l.unlock()
        }
        // Locks of unpacks that are over (no writer runs while prune holds store.lock).
        for n in FS.names(in: paths.locks) where n.hasPrefix("unpack-") && n.hasSuffix(".lock") {
            guard let l = try? FileLock(tryPath: paths.locks + "/" + n, mode: .exclusive) else { continue }
            unlink(paths.locks + "/" + n)
            l.unlock()
        }
        // Interrupted downloads kept for resuming (with the origin that wrote each), and the
        // locks of downloads that are over: dropped unless a pull holds the lock now.
        let partial = paths.root + "/partial"
        let names = FS.names(in: partial)
        let downloads = Set(names.map { n -> String in
            for suffix in [".lock", ".origin"] where n.hasSuffix(suffix) { return String(n.dropLast(suffix.count)) }
            return n
        })
        for n in downloads {
            guard let l = try? FileLock(tryPath: partial + "/" + n + ".lock", mode: .exclusive) else { continue }
            var st = stat()
            if stat(partial + "/" + n, &st) == 0 { report.bytes += Int64(st.st_size) }
            unlink(partial + "/" + n)
            unlink(partial + "/" + n + ".origin")
            unlink(partial + "/" + n + ".lock")
            l.unlock()
        }
        for n in FS.names(in: paths.blobs) where !blobs.contains(n) {
            guard Digest(n) != nil else { continue }
            var st = stat()
            if stat(paths.blobs + "/" + n, &st) == 0 { report.bytes += Int64(st.st_size) }
            unlink(paths.blobs + "/" + n)
            unlink(blobInfoDir + "/" + n)
            report.blobs.append("sha256:" + n)
        }
        // What an import of a tarball no record names any more left (imports keep no blob).
        let named = blobs.union(recs.map(\.digest.hex))
        for n in FS.names(in: blobInfoDir) where !named.contains(n) {
            guard Digest(n) != nil else { continue }
            unlink(blobInfoDir + "/" + n)
        }
        return report
    }

    // MARK: helpers

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }

    /// File-name-safe form of a reference (registry names hold '/' and ':').
    static func escape(_ s: String) -> String {
        var out = ""
        for u in s.utf8 {
            let c = Character(UnicodeScalar(u))
            if c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-") && !(out.isEmpty && c == ".") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", u)
            }
        }
        return out
    }
}

/// Image names as users type them: `NAME[:TAG]`, NAME lowercase path components
/// optionally behind a registry host (`host[:port]/`).
public enum ImageName {
    public static func parse(_ s: String) throws -> (name: String, tag: String) {
        var name = s
        var tag = "latest"
        if let colon = s.lastIndex(of: ":"), !s[colon...].contains("/") {
            name = String(s[..<colon])
            tag = String(s[s.index(after: colon)...])
        }
        guard isValidName(name) else {
            throw AZLError(.usage, "invalid image name '\(s)'", hint: nameRule)
        }
        guard isValidTag(tag) else {
            throw AZLError(.usage, "invalid tag '\(tag)' in '\(s)'", hint: "a tag is letters, digits, _ . - (at most 128)")
        }
        return (name, tag)
    }

    /// What isValidName accepts, said in errors.
    public static let nameRule = "a name is lowercase letters and digits with . _ __ or - between them, in parts separated by '/' (no '.', '..' or empty parts), optionally after a registry HOST[:PORT]/; e.g. alpine:3.20 or myorg/base:1"

    static func isValidName(_ n: String) -> Bool {
        guard !n.isEmpty, n.count <= 255 else { return false }
        var rest = Substring(n)
        if let host = ImageNameGrammar.registryPart(of: n) {
            // Stored names are lowercase throughout: one image, one name.
            guard ImageNameGrammar.hostProblem(String(host)) == nil, !host.contains(where: \.isUppercase) else { return false }
            rest = rest.dropFirst(host.count + 1)
        }
        return rest.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { ImageNameGrammar.isValidComponent(String($0)) }
    }

    static func isValidTag(_ t: String) -> Bool { ImageNameGrammar.isValidTag(t) }
}
