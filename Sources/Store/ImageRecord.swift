import Core
import Foundation

/// A device node an archive held that we could not create rootless; the sandbox provides it.
public struct DeviceEntry: Codable, Equatable, Sendable {
    public var path: String      // relative to the tree root, no leading slash
    public var type: String      // "c" or "b"
    public var major: UInt32
    public var minor: UInt32
    public var mode: UInt32
    public init(path: String, type: String, major: UInt32, minor: UInt32, mode: UInt32) {
        self.path = path; self.type = type; self.major = major; self.minor = minor; self.mode = mode
    }
}

/// A name in the store (`NAME:TAG`) and what it points at.
public struct ImageRecord: Codable, Equatable, Sendable {
    public var name: String
    public var tag: String
    /// The image id: the manifest/config digest for pulled images, the blob digest for imports.
    public var digest: Digest
    /// Uncompressed layer digests (OCI diff_ids), bottom first.
    public var layers: [Digest]
    /// Compressed blobs this record keeps alive (what `prune` must not remove).
    public var blobs: [Digest]
    /// Key of the unpacked tree: the OCI chain id of `layers`.
    public var tree: Digest
    public var size: Int64
    public var created: Date
    /// Where it came from: a file path, `-`, or a registry reference.
    public var source: String
    public var config: ImageConfig
    /// The rootfs-manifest short name this image was pulled as, when there is one.
    public var manifest: String?
    /// The CPU architecture, OCI-named (`amd64`, `arm64`): the pulled platform's, or read from an
    /// imported tree's programs (`import --platform` overrides). nil: not known (a record of an
    /// older build, a tree without programs): taken as this machine's.
    public var architecture: String?

    public var reference: String { "\(name):\(tag)" }

    public init(name: String, tag: String, digest: Digest, layers: [Digest], blobs: [Digest], tree: Digest,
                size: Int64, created: Date, source: String, config: ImageConfig, manifest: String? = nil,
                architecture: String? = nil) {
        self.name = name; self.tag = tag; self.digest = digest; self.layers = layers; self.blobs = blobs
        self.tree = tree; self.size = size; self.created = created; self.source = source
        self.config = config; self.manifest = manifest; self.architecture = architecture
    }
}
