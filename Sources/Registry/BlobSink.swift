import Core
import Foundation

/// Where downloaded blobs go: the content-addressed store implements this.
///
/// The client calls, for each blob, with an exclusive `FileLock` on `lockPath(for:)` held:
/// `has` (skip the download when it answers a path), else streams into `partialPath` —
/// resuming with `Range` when that file already holds a prefix — verifies digest and size,
/// and calls `commit`. On a digest or size mismatch it deletes the partial file; on a
/// network failure it leaves it for the next attempt to resume.
public protocol BlobSink: Sendable {
    /// The path of a complete, verified blob with this digest, or nil.
    func has(_ digest: Digest) -> String?
    /// Where to stream the blob. May already hold a prefix of it from an interrupted download.
    /// Its directory must exist.
    func partialPath(for digest: Digest) -> String
    /// Atomically move the verified blob at `partialPath` into place; returns its final path.
    func commit(_ digest: Digest, from partialPath: String) throws -> String
    /// A file to `flock` while one digest is downloaded, so that two pulls of the same image
    /// (threads or processes) never write the same partial file. Default: `partialPath + ".lock"`.
    func lockPath(for digest: Digest) -> String
}

extension BlobSink {
    public func lockPath(for digest: Digest) -> String { partialPath(for: digest) + ".lock" }
}

/// A plain directory of blobs: `DIR/sha256/HEX`, partial downloads in `DIR/partial/HEX`.
/// Used by the tests and the benchmark; the image store has its own sink.
public final class DirectoryBlobSink: BlobSink, @unchecked Sendable {
    public let directory: String
    public var blobsDirectory: String { directory + "/sha256" }
    public var partialDirectory: String { directory + "/partial" }

    public init(directory: String) throws {
        self.directory = directory
        try FS.mkdirs(directory + "/sha256")
        try FS.mkdirs(directory + "/partial")
    }

    public func path(for d: Digest) -> String { blobsDirectory + "/" + d.hex }

    public func has(_ d: Digest) -> String? {
        let p = path(for: d)
        return FS.exists(p) ? p : nil
    }

    public func partialPath(for d: Digest) -> String { partialDirectory + "/" + d.hex }

    public func commit(_ d: Digest, from partialPath: String) throws -> String {
        let dest = path(for: d)
        if rename(partialPath, dest) != 0 { throw AZLError.errno(errno, "cannot move blob into", path: dest) }
        FS.fsyncDirectory(blobsDirectory)
        return dest
    }

    /// Every complete blob's digest.
    public func digests() -> [Digest] {
        FS.names(in: blobsDirectory).compactMap { Digest($0) }.sorted()
    }

    /// Every partial file (not lock files, nor the origin each partial's writer is noted in).
    public func partials() -> [String] {
        FS.names(in: partialDirectory)
            .filter { !$0.hasSuffix(".lock") && !$0.hasSuffix(".origin") }.sorted()
    }
}
