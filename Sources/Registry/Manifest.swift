import Core
import Foundation

/// The media types the client asks for and understands.
public enum MediaType {
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    public static let dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"

    /// The Accept header: all four, most preferred first.
    public static let acceptManifests = [ociIndex, dockerManifestList, ociManifest, dockerManifest].joined(separator: ", ")

    static func isIndex(_ t: String) -> Bool { t == ociIndex || t == dockerManifestList }
    static func isManifest(_ t: String) -> Bool { t == ociManifest || t == dockerManifest }
}

/// How a layer blob is compressed, from its media type.
public enum LayerCompression: String, Sendable, Codable {
    case gzip, zstd, none

    /// OCI (`tar`, `tar+gzip`, `tar+zstd`, and the nondistributable forms) and Docker
    /// (`rootfs.diff.tar.gzip`, `rootfs.diff.tar`, `rootfs.foreign.diff.tar.gzip`) layer types.
    /// nil for anything that is not a filesystem layer.
    public init?(mediaType: String) {
        let t = mediaType.lowercased()
        let ociPrefixes = ["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar"]
        let dockerPrefixes = ["application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.foreign.diff.tar"]
        for p in ociPrefixes + dockerPrefixes where t.hasPrefix(p) {
            let suffix = t.dropFirst(p.count)
            switch suffix {
            case "": self = .none; return
            case "+gzip", ".gzip": self = .gzip; return
            case "+zstd", ".zstd": self = .zstd; return
            default: return nil
            }
        }
        return nil
    }
}

/// An OCI content descriptor.
public struct Descriptor: Codable, Hashable, Sendable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var platform: PlatformJSON?
    public var urls: [String]?
    public var annotations: [String: String]?

    public struct PlatformJSON: Codable, Hashable, Sendable {
        public var architecture: String
        public var os: String
        public var variant: String?
        enum CodingKeys: String, CodingKey { case architecture, os, variant }
    }
}

/// An image index / manifest list.
struct IndexJSON: Codable {
    var schemaVersion: Int?
    var mediaType: String?
    var manifests: [Descriptor]
}

/// An image manifest (OCI or Docker schema 2).
struct ManifestJSON: Codable {
    var schemaVersion: Int?
    var mediaType: String?
    var config: Descriptor
    var layers: [Descriptor]
}

/// The parts of an image config blob we read.
struct ImageConfigJSON: Decodable {
    struct Inner: Decodable {
        var Env: [String]?
        var WorkingDir: String?
        var User: String?
        var Entrypoint: [String]?
        var Cmd: [String]?
    }
    struct RootFS: Decodable {
        var type: String?
        var diff_ids: [Digest]?
    }
    var architecture: String?
    var os: String?
    var variant: String?
    var config: Inner?
    var rootfs: RootFS?
}

/// Finds a key that occurs twice in one JSON object, at any depth. Foundation's decoders keep
/// one of the two silently and Go's and Python's keep the other, so a document with one is read
/// differently by different tools under one digest: it is refused, not interpreted.
enum DuplicateKeys {
    /// The first duplicated key (`path.key`), or nil. Assumes nothing about validity: a
    /// document that is not JSON is left to the decoder to refuse.
    static func find(in data: Data) -> String? {
        let b = [UInt8](data)
        var i = 0
        // One entry per open container: keys seen (nil for an array), the key path.
        var stack: [(keys: Set<[UInt8]>?, path: String)] = []
        var pendingKey: String? = nil
        var expectKey = false
        while i < b.count {
            let c = b[i]
            switch c {
            case UInt8(ascii: "{"):
                let parent = stack.last?.path ?? ""
                let path = pendingKey.map { parent.isEmpty ? $0 : parent + "." + $0 } ?? parent
                stack.append((Set(), path)); pendingKey = nil; expectKey = true; i += 1
            case UInt8(ascii: "["):
                let parent = stack.last?.path ?? ""
                let path = pendingKey.map { parent.isEmpty ? $0 : parent + "." + $0 } ?? parent
                stack.append((nil, path)); pendingKey = nil; expectKey = false; i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if !stack.isEmpty { stack.removeLast() }
                pendingKey = nil; expectKey = false; i += 1
            case UInt8(ascii: ","):
                expectKey = stack.last?.keys != nil; pendingKey = nil; i += 1
            case UInt8(ascii: "\""):
                var j = i + 1
                var raw: [UInt8] = []
                while j < b.count && b[j] != UInt8(ascii: "\"") {
                    if b[j] == UInt8(ascii: "\\") && j + 1 < b.count { raw.append(b[j]); j += 1 }
                    raw.append(b[j]); j += 1
                }
                if expectKey, stack.last?.keys != nil {
                    // Compared decoded: `"a"` and `"\u0061"` are one key to every parser.
                    let quoted = Data([UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")])
                    let key = (try? JSONDecoder().decode(String.self, from: quoted)) ?? String(decoding: raw, as: UTF8.self)
                    let k = Array(key.utf8)
                    if stack[stack.count - 1].keys!.contains(k) {
                        let parent = stack.last!.path
                        return parent.isEmpty ? key : parent + "." + key
                    }
                    stack[stack.count - 1].keys!.insert(k)
                    pendingKey = key
                    expectKey = false
                }
                i = j + 1
            default:
                i += 1
            }
        }
        return nil
    }
}

enum ManifestParser {
    /// What a manifest body is, from the Content-Type header and, when that is missing or
    /// generic, from the body's own `mediaType` / shape.
    static func kind(contentType: String?, body: Data) -> String? {
        let ct = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if let ct, MediaType.isIndex(ct) || MediaType.isManifest(ct) || ct == MediaType.dockerSchema1 || ct == MediaType.dockerSchema1Signed {
            return ct
        }
        struct Probe: Decodable {
            var mediaType: String?
            var schemaVersion: Int?
            var manifests: [AnyDecodable]?
            var layers: [AnyDecodable]?
            var fsLayers: [AnyDecodable]?
        }
        struct AnyDecodable: Decodable { init(from decoder: Decoder) throws {} }
        guard let p = try? JSONDecoder().decode(Probe.self, from: body) else { return nil }
        if let mt = p.mediaType { return mt }
        if p.schemaVersion == 1 || p.fsLayers != nil { return MediaType.dockerSchema1 }
        if p.manifests != nil { return MediaType.ociIndex }
        if p.layers != nil { return MediaType.ociManifest }
        return nil
    }

    /// A document that is both an index and a manifest: which one it is would depend on the
    /// Content-Type header, so one digest would name two root filesystems (skopeo refuses it too).
    static func isAmbiguous(_ body: Data) -> Bool {
        struct Probe: Decodable {
            var manifests: AnyDecodable?
            var layers: AnyDecodable?
            var config: AnyDecodable?
        }
        struct AnyDecodable: Decodable { init(from decoder: Decoder) throws {} }
        guard let p = try? JSONDecoder().decode(Probe.self, from: body) else { return false }
        return p.manifests != nil && (p.layers != nil || p.config != nil)
    }

    /// Choose the manifest for `platform` from an index: an exact match (variant included) first,
    /// then the same os/architecture with any variant. Attestation entries (`unknown/unknown`) never match.
    static func choose(_ index: IndexJSON, platform: Platform) -> Descriptor? {
        let candidates = index.manifests.filter { MediaType.isManifest($0.mediaType) || MediaType.isIndex($0.mediaType) }
        func plat(_ d: Descriptor) -> Platform? {
            guard let p = d.platform else { return nil }
            return Platform(os: p.os, architecture: p.architecture, variant: p.variant)
        }
        let want = Platform.canonicalVariant(platform.architecture, platform.variant)
        if let exact = candidates.first(where: { d in
            guard let p = plat(d) else { return false }
            return p.os == platform.os && p.architecture == platform.architecture
                && Platform.canonicalVariant(p.architecture, p.variant) == want
        }) { return exact }
        return candidates.first(where: { d in plat(d).map { platform.matches($0) } ?? false })
    }

    static func platforms(_ index: IndexJSON) -> [String] {
        index.manifests.compactMap { d in
            d.platform.map { Platform(os: $0.os, architecture: $0.architecture, variant: $0.variant).description }
        }.filter { $0 != "unknown/unknown" }
    }
}
