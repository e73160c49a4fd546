import Archive
import Core
import Foundation

extension ImageStore {
    public struct ImportOutcome: Sendable {
        public var record: ImageRecord
        /// True when the blob and its tree were already stored: nothing was unpacked.
        public var reused: Bool
        public var refused: [String]
        public var devices: Int
    }

    /// Import a rootfs tarball (`-` for standard input) as `name:tag`. Its architecture is
    /// `architecture` (OCI-named) when given, else read from the tree's programs.
    ///
    /// One pass reads the input, hashes it (blob digest) and its uncompressed tar (diff_id),
    /// and unpacks it into a scratch folder; the tree is then renamed into place. For a regular
    /// file the blob digest is computed first, so a second import of the same file (under any
    /// name) costs a hash and a record. The tarball itself is not copied into the store: the
    /// tree is what runs use, `blobinfo` (digest -> diff_id) is what makes a re-import free, and
    /// a second copy would cost as much disk and write time as the unpacking (`tar -xf` keeps
    /// none either). Pulled layers are kept (resume, and layers shared between images).
    public func importTarball(path: String, name: String, tag: String, architecture: String? = nil) throws -> ImportOutcome {
        let writer = try writerLock()
        defer { writer.unlock() }
        cleanStaleTemporaries()

        let fromStdin = path == "-"
        let display = fromStdin ? "standard input" : path
        let fd = fromStdin ? dup(0) : open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT {
                throw AZLError(.notFound, "cannot import \(path): no such file", hint: "check the path of the rootfs tarball")
            }
            throw AZLError.errno(e, "cannot open", path: path)
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw AZLError(.usage, "cannot import \(path): it is a directory", hint: "give a rootfs tarball (.tar, .tar.gz, .tar.xz, .tar.zst)")
        }

        var blobLock: FileLock?
        var knownDigest: Digest?
        if (st.st_mode & S_IFMT) == S_IFREG {
            let digest = try ImageStore.hashFile(fd: fd, name: display)
            knownDigest = digest
            blobLock = try lock("blob", digest, .exclusive)
            if let outcome = try reuse(blob: digest, name: name, tag: tag, source: display, architecture: architecture) {
                return outcome
            }
            if lseek(fd, 0, SEEK_SET) != 0 { throw AZLError.errno(errno, "cannot rewind", path: path) }
        }
        defer { blobLock?.unlock() }

        let s = try scratch("import")
        defer { s.discard() }
        let staged = s.path + "/tree"
        try FS.mkdirs(staged + "/rootfs", mode: 0o700)
        let result: ExtractResult
        do {
            let ex = try SafeExtractor(root: staged + "/rootfs")
            result = try ex.extract(fd: fd, name: display, knownBlobDigest: knownDigest)
        } catch let e as AZLError {
            throw ImageStore.withoutScratch(e, scratch: s.path, tree: staged + "/rootfs")
        }
        if knownDigest != nil {
            // The digest came from a first read; a file rewritten since would be recorded
            // under the wrong digest, and a later import of the real file would reuse this tree.
            var after = stat()
            fstat(fd, &after)
            if after.st_size != st.st_size || after.st_mtim.tv_sec != st.st_mtim.tv_sec || after.st_mtim.tv_nsec != st.st_mtim.tv_nsec {
                throw AZLError(.io, "\(display) changed while it was being imported", hint: "import it again once nothing writes to it")
            }
        }
        if blobLock == nil { blobLock = try lock("blob", result.blobDigest, .exclusive) }
        try recordDiffID(result.diffID, forBlob: result.blobDigest)

        let key = ImageStore.chainID([result.diffID])
        let meta = TreeMeta(diffIDs: [result.diffID], entries: result.entries, bytes: result.bytes,
                            devices: result.devices.map { DeviceEntry(path: $0.path, type: $0.type, major: $0.major, minor: $0.minor, mode: $0.mode) },
                            refused: result.refused)
        let arch = architecture ?? ImageStore.architecture(ofTree: staged + "/rootfs")
        try commitTree(key, from: s, meta: meta, ownership: result.ownership)
        let record = ImageRecord(name: name, tag: tag, digest: result.blobDigest, layers: [result.diffID],
                                 blobs: [], tree: key, size: result.bytes, created: Date(),
                                 source: fromStdin ? "-" : ImageStore.absolute(path), config: ImageConfig(), manifest: nil,
                                 architecture: arch)
        try save(record)
        return ImportOutcome(record: record, reused: false, refused: result.refused, devices: result.devices.count)
    }

    /// When the blob was unpacked before and its tree is still here, only the record is new.
    private func reuse(blob: Digest, name: String, tag: String, source: String, architecture: String?) throws -> ImportOutcome? {
        guard let diffID = knownDiffID(ofBlob: blob) else { return nil }
        let key = ImageStore.chainID([diffID])
        guard hasTree(key), let m = try? meta(key) else { return nil }
        let record = ImageRecord(name: name, tag: tag, digest: blob, layers: [diffID], blobs: [], tree: key,
                                 size: m.bytes, created: Date(), source: source == "standard input" ? "-" : ImageStore.absolute(source),
                                 config: ImageConfig(), manifest: nil,
                                 architecture: architecture ?? ImageStore.architecture(ofTree: treeDir(key) + "/rootfs"))
        try save(record)
        return ImportOutcome(record: record, reused: true, refused: m.refused, devices: m.devices.count)
    }

    /// `e` without the scratch folder's path: it is deleted as the import fails, so naming it
    /// would only send the user looking for it. (The extractor names entries, not paths; this
    /// catches anything else that would.)
    static func withoutScratch(_ e: AZLError, scratch: String, tree: String) -> AZLError {
        func clean(_ text: String) -> String {
            text.replacingOccurrences(of: tree + "/", with: "")
                .replacingOccurrences(of: tree, with: "the image's root")
                .replacingOccurrences(of: scratch, with: "the store's scratch folder")
        }
        var out = e
        out.message = clean(e.message)
        out.hint = e.hint.map(clean)
        return out
    }

    static func absolute(_ p: String) -> String {
        p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
    }

    /// SHA-256 of a whole file, streamed.
    public static func hashFile(fd: Int32, name: String) throws -> Digest {
        var h = Hasher256()
        let size = 1 << 20
        let buf = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf, size)
            if n < 0 { if errno == EINTR { continue }; throw AZLError.errno(errno, "cannot read", path: name) }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(start: buf, count: n))
        }
        return h.finalize()
    }
}
