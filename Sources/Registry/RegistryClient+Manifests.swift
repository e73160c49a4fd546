import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Manifests and indexes: fetched, verified, the platform chosen.
extension Session {
    // MARK: manifests

    struct Resolved {
        var digest: Digest
        var index: Digest?
        var mediaType: String
        var body: Data
        var manifest: ManifestJSON
    }

    /// GET a manifest (by tag or digest), verified: against `expected` when given, against the
    /// reference's digest, and against the registry's `Docker-Content-Digest`.
    func fetchManifest(_ reference: String, expected: Descriptor?) async throws -> (Data, String, Digest) {
        let what = "manifest \(reference)"
        let (data, contentType, headerDigest) = try await withRetries("fetching \(what)") { () async throws -> (Data, String?, String?) in
            try await self.guarded(what) { moved in
                let resp = try await self.send("/v2/\(self.ref.repository)/manifests/\(reference)",
                                               headers: [("Accept", MediaType.acceptManifests)])
                guard resp.status.code == 200 else { throw await self.statusError(resp, what: what) }
                if let len = resp.headers.first(name: "Content-Length").flatMap(Int.init), len > Session.maxManifestBytes {
                    throw AZLError(.registry, "\(what) of \(self.ref) is \(len) bytes, more than the \(Session.maxManifestBytes) allowed")
                }
                var body = Data()
                do {
                    for try await buf in resp.body {
                        moved.add(buf.readableBytes)
                        guard body.count + buf.readableBytes <= Session.maxManifestBytes else {
                            throw AZLError(.registry, "\(what) of \(self.ref) is larger than \(Session.maxManifestBytes) bytes")
                        }
                        body.append(contentsOf: buf.readableBytesView)
                    }
                } catch let e as AZLError { throw e } catch is CancellationError { throw CancellationError() } catch {
                    throw TransientError(description: "the transfer of \(what) broke off: \(Session.describe(error))")
                }
                return (body, resp.headers.first(name: "Content-Type"), resp.headers.first(name: "Docker-Content-Digest"))
            }
        }
        let digest = Digest.of(data)
        if let expected {
            if expected.digest != digest || expected.size != Int64(data.count) {
                throw AZLError(.digestMismatch, "manifest of \(ref) does not match its digest: expected \(expected.digest) (\(expected.size) bytes), got \(digest) (\(data.count) bytes)",
                               hint: "the registry or a proxy served different content; nothing was kept")
            }
        }
        if let want = Digest(reference), want != digest {
            throw AZLError(.digestMismatch, "manifest of \(ref) does not match its digest: expected \(want), got \(digest)",
                           hint: "the registry or a proxy served different content; nothing was kept")
        }
        if let h = headerDigest, h.hasPrefix("sha256:"), Digest(h) != digest {
            throw AZLError(.digestMismatch, "manifest of \(ref) does not match the digest the registry announced: \(h), got \(digest)",
                           hint: "the registry or a proxy served different content; nothing was kept")
        }
        if let key = DuplicateKeys.find(in: data) {
            throw AZLError(.refused, "manifest \(digest) of \(ref) has the key '\(Shown.text(key, limit: 80))' twice, which tools read differently; refusing it",
                           hint: "the registry serves a malformed or hostile manifest; nothing was kept")
        }
        if ManifestParser.isAmbiguous(data) {
            throw AZLError(.refused, "manifest \(digest) of \(ref) is both an image index ('manifests') and an image manifest ('layers' or 'config'); refusing it",
                           hint: "the registry serves a malformed or hostile manifest; nothing was kept")
        }
        guard let kind = ManifestParser.kind(contentType: contentType, body: data) else {
            throw AZLError(.registry, "\(ref): the registry answered something that is not an image manifest (Content-Type \(Shown.text(contentType ?? "none", limit: 100)))")
        }
        return (data, kind, digest)
    }

    /// Resolve the reference to a single-platform image manifest.
    func resolve() async throws -> Resolved {
        try await ping()
        var (data, kind, digest) = try await fetchManifest(ref.manifestReference, expected: nil)
        var indexDigest: Digest? = nil
        var depth = 0
        while MediaType.isIndex(kind) {
            depth += 1
            guard depth <= 2 else { throw AZLError(.registry, "\(ref): image indexes nested too deep") }
            let index: IndexJSON
            do { index = try JSONDecoder().decode(IndexJSON.self, from: data) } catch {
                throw AZLError(.registry, "\(ref): the image index cannot be parsed: \(Session.decodingText(error))")
            }
            guard let chosen = ManifestParser.choose(index, platform: options.platform) else {
                let have = ManifestParser.platforms(index)
                throw AZLError(.notFound, "\(ref) has no image for platform \(options.platform)",
                               hint: have.isEmpty ? "the index lists no platforms" : "it has: " + Shown.text(have.joined(separator: ", ")) + "; choose one with --platform")
            }
            if indexDigest == nil { indexDigest = digest }
            (data, kind, digest) = try await fetchManifest(chosen.digest.description, expected: chosen)
        }
        if kind == MediaType.dockerSchema1 || kind == MediaType.dockerSchema1Signed {
            throw AZLError(.registry, "\(ref) is a Docker schema 1 image, which is not supported",
                           hint: "push it again with a current tool (schema 2 or OCI)")
        }
        guard MediaType.isManifest(kind) else {
            throw AZLError(.registry, "\(ref) is not a container image (manifest type \(Shown.text(kind, limit: 100)))")
        }
        let m: ManifestJSON
        do { m = try JSONDecoder().decode(ManifestJSON.self, from: data) } catch {
            throw AZLError(.registry, "\(ref): the image manifest cannot be parsed: \(Session.decodingText(error))")
        }
        return Resolved(digest: digest, index: indexDigest, mediaType: kind, body: data, manifest: m)
    }

    static func decodingText(_ error: Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c):
                let path = c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
                return Shown.text((path.isEmpty ? "" : path + ": ") + c.debugDescription)
            @unknown default: return Shown.text("\(e)")
            }
        }
        return Shown.text("\(error)")
    }
}
