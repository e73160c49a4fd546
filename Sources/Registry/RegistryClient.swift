import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What a pull reports as it goes. Delivered from the download tasks, possibly concurrently:
/// the handler must be thread-safe.
public enum PullEvent: Sendable, Equatable {
    /// The manifest for the chosen platform is known (`index` when it came from an index).
    case resolved(manifest: Digest, layers: Int, platform: String, index: Digest?)
    case layerStart(Digest, size: Int64)
    case layerProgress(Digest, done: Int64, total: Int64)
    case layerDone(Digest, cached: Bool)
    /// A download picked up an interrupted partial file at `from` bytes (Range request).
    case resumed(Digest, from: Int64)
    /// A transient failure (5xx, 429, connection reset) — waiting, then trying again.
    case retrying(what: String, attempt: Int, reason: String)
}

public struct PullOptions: Sendable {
    public var platform: Platform
    /// false: accept any certificate and allow plain HTTP (podman's `--tls-verify=false`).
    public var tlsVerify: Bool
    /// Layers downloaded at once.
    public var maxParallel: Int
    /// Attempts after the first, for 5xx/429 answers and dropped connections.
    public var retries: Int
    /// First backoff in seconds; doubled on each retry (with jitter).
    public var retryDelay: Double
    /// Explicit credentials (`--creds`); they win over the auth files.
    public var credentials: Credentials?
    /// Seconds to connect and finish the TLS handshake.
    public var connectTimeout: Double
    public var progress: (@Sendable (PullEvent) -> Void)?
    /// A transfer that moves fewer than `minRate` bytes a second over `rateWindow` seconds
    /// fails (a trickling server would otherwise hold a pull forever). Defaults: 1 KiB/s over
    /// 60 s, or `AZL_PULL_MIN_RATE` / `AZL_PULL_RATE_WINDOW`; 0 turns the check off.
    public var minRate: Double
    public var rateWindow: Double
    /// Asked with the image's diff_ids (from the verified config) before any layer is fetched:
    /// false when the caller already has what they unpack to (the store has the tree), and no
    /// layer is downloaded. nil: layers are always fetched (unless the sink has them).
    public var layersNeeded: (@Sendable ([Digest]) -> Bool)?

    public init(platform: Platform = .host, tlsVerify: Bool = true, maxParallel: Int = 3,
                retries: Int = 4, retryDelay: Double = 0.5, credentials: Credentials? = nil,
                connectTimeout: Double = 30, progress: (@Sendable (PullEvent) -> Void)? = nil) {
        self.platform = platform; self.tlsVerify = tlsVerify; self.maxParallel = max(1, maxParallel)
        self.retries = max(0, retries); self.retryDelay = retryDelay
        self.credentials = credentials; self.connectTimeout = connectTimeout; self.progress = progress
        let env = ProcessInfo.processInfo.environment
        minRate = env["AZL_PULL_MIN_RATE"].flatMap(Double.init).map { max(0, $0) } ?? 1024
        rateWindow = env["AZL_PULL_RATE_WINDOW"].flatMap(Double.init).map { max(0, $0) } ?? 60
    }
}

public struct PulledLayer: Sendable, Equatable {
    /// Digest of the blob as stored (compressed).
    public var digest: Digest
    public var mediaType: String
    public var size: Int64
    public var compression: LayerCompression
    /// The verified blob (the sink's path); "" when it was not fetched because
    /// `PullOptions.layersNeeded` said so and the sink does not have it.
    public var blobPath: String
    /// It was already in the sink: nothing was downloaded.
    public var cached: Bool
}

public struct PulledImage: Sendable {
    public var reference: ImageReference
    /// Digest of the image manifest for the chosen platform.
    public var manifestDigest: Digest
    /// Digest of the index the manifest was chosen from (what a tag points at for multi-arch images).
    public var indexDigest: Digest?
    public var manifestMediaType: String
    /// The manifest bytes, verified against `manifestDigest`.
    public var manifest: Data
    public var configDigest: Digest
    /// The config blob (also in the sink), verified.
    public var configPath: String
    public var config: ImageConfig
    /// The platform the image config declares.
    public var platform: Platform
    /// `rootfs.diff_ids`: digests of the uncompressed layers, bottom first.
    public var diffIDs: [Digest]
    public var layers: [PulledLayer]

    /// Digest a user sees for `reference`: the index digest for a multi-arch image, else the manifest's.
    public var repoDigest: Digest { indexDigest ?? manifestDigest }
}

/// The OCI distribution client: resolves a reference to a manifest for one platform, and
/// fetches its config and layers into a `BlobSink`, verifying each against digest and size.
public final class RegistryClient: Sendable {
    public let credentialStore: CredentialStore

    /// Credentials come from the standard auth files (see `CredentialStore`).
    public init(credentialStore: CredentialStore = CredentialStore()) {
        self.credentialStore = credentialStore
    }

    /// Credentials from the standard auth files for this environment.
    public convenience init(environment: [String: String]) {
        self.init(credentialStore: CredentialStore(environment: environment))
    }

    /// Fetch `ref` for `options.platform` into `blobStore`. Blobs the sink already has are not
    /// downloaded. Errors are `AZLError`s naming the reference.
    public func pull(_ ref: ImageReference, options: PullOptions = PullOptions(), blobStore: BlobSink) async throws -> PulledImage {
        let session = try Session(ref: ref, options: options, credentials: try options.credentials ?? credentialStore.credentials(for: ref))
        do {
            let image = try await session.pull(sink: blobStore)
            await session.shutdown()
            return image
        } catch {
            await session.shutdown()
            throw Session.wrap(error, ref: ref)
        }
    }

    /// `pull` for synchronous callers (a ParsableCommand): runs it on a detached task and waits.
    public func pullSync(_ ref: ImageReference, options: PullOptions = PullOptions(), blobStore: BlobSink) throws -> PulledImage {
        try RegistryClient.runSync { try await self.pull(ref, options: options, blobStore: blobStore) }
    }

    /// Run an async operation to completion from synchronous code. Must not be called from
    /// inside the Swift concurrency pool (it blocks the calling thread).
    public static func runSync<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = SyncBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }
}

final class SyncBox<T>: @unchecked Sendable { var result: Result<T, Error>? }

/// Thrown for failures worth retrying (5xx, 429, dropped connection, short body).
struct TransientError: Error, CustomStringConvertible {
    var description: String
}

/// One pull: one HTTP client, one registry origin, its auth state.
final class Session: @unchecked Sendable {
    let ref: ImageReference
    let options: PullOptions
    let credentials: Credentials?
    let http: HTTPClient
    /// Decided once, on the addresses the registry's name resolves to.
    let loopback: Bool
    // Mutable state, read and written only under `lock` (by the extensions in
    // RegistryClient+*.swift too, hence not private).
    let lock = NSLock()
    var _scheme: String?
    var _authorization: String?
    var _challenge: AuthChallenge?

    static let maxManifestBytes = 4 << 20
    static let maxConfigBytes = 32 << 20

    init(ref: ImageReference, options: PullOptions, credentials: Credentials?) throws {
        self.ref = ref
        self.options = options
        self.credentials = credentials
        loopback = ref.isLoopback
        var tls = TLSConfiguration.makeClientConfiguration()
        if !options.tlsVerify { tls.certificateVerification = .none }
        var config = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: .milliseconds(Int64(max(0.1, options.connectTimeout) * 1000)), read: .seconds(90)),
            connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, options.maxParallel + 2)),
            proxy: Session.proxy(for: ref, loopback: loopback),
            decompression: .disabled)
        config.httpVersion = .automatic
        // Fail a request on the first refused connection: `withRetries` does the backing off,
        // and an unreachable registry is reported at once instead of at the deadline.
        config.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    func shutdown() async {
        try? await http.shutdown()
    }

    /// `https_proxy` / `HTTPS_PROXY` (and `http_proxy` for plain HTTP registries), except for
    /// loopback registries and hosts listed in `no_proxy`.
    static func proxy(for ref: ImageReference, loopback: Bool) -> HTTPClient.Configuration.Proxy? {
        let env = ProcessInfo.processInfo.environment
        if loopback { return nil }
        let noProxy = (env["no_proxy"] ?? env["NO_PROXY"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        let host = ref.apiHost.lowercased()
        for n in noProxy where !n.isEmpty {
            if n == "*" || host == n || host.hasSuffix(n.hasPrefix(".") ? n : "." + n) { return nil }
        }
        guard let s = env["https_proxy"] ?? env["HTTPS_PROXY"] ?? env["http_proxy"] ?? env["HTTP_PROXY"], !s.isEmpty,
              let url = URL(string: s.contains("://") ? s : "http://" + s), let h = url.host else { return nil }
        let port = url.port ?? 3128
        if let user = url.user, let pass = url.password {
            return .server(host: h, port: port, authorization: .basic(username: user.removingPercentEncoding ?? user, password: pass.removingPercentEncoding ?? pass))
        }
        return .server(host: h, port: port)
    }

    // MARK: auth state

    var scheme: String { lock.withLock { _scheme ?? "https" } }
    var authorization: String? {
        get { lock.withLock { _authorization } }
        set { lock.withLock { _authorization = newValue } }
    }
    var origin: String { scheme + "://" + ref.apiHost }

    static func originOf(_ url: String) -> String? {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased() else { return nil }
        let port = u.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(host):\(port)"
    }

    var registryOriginKey: String? { Session.originOf(origin + "/v2/") }

    // MARK: requests

    /// One request against the registry (path starting with /v2/) or a full URL. Adds the
    /// registry's Authorization to requests for the registry's own origin only; answers a 401
    /// by authenticating once and repeating; follows redirects (Authorization dropped for
    /// other origins). Returns the final response, whose body the caller must consume.
    func send(_ pathOrURL: String, headers extra: [(String, String)] = [], timeout: TimeAmount = .seconds(60)) async throws -> HTTPClientResponse {
        var url = pathOrURL.hasPrefix("/") ? origin + pathOrURL : pathOrURL
        var reauthenticated = false
        var hops = 0
        while true {
            var req = HTTPClientRequest(url: url)
            req.method = .GET
            req.headers.add(name: "User-Agent", value: "azl-shell")
            for (k, v) in extra { req.headers.add(name: k, value: v) }
            let sameOrigin = Session.originOf(url) == registryOriginKey
            if sameOrigin, let a = authorization { req.headers.add(name: "Authorization", value: a) }
            let resp = try await http.execute(req, timeout: timeout)
            let code = resp.status.code
            if code == 401 && sameOrigin && !reauthenticated {
                let header = resp.headers[canonicalForm: "WWW-Authenticate"].map(String.init).joined(separator: ", ")
                await Session.drain(resp)
                reauthenticated = true
                try await authenticate(challengeHeader: header)
                continue
            }
            if [301, 302, 303, 307, 308].contains(code) {
                guard let loc = resp.headers.first(name: "Location"), hops < 10 else {
                    await Session.drain(resp)
                    throw AZLError(.registry, "\(ref.apiHost) sent a redirect without a location, or too many redirects")
                }
                await Session.drain(resp)
                hops += 1
                guard let nextURL = URL(string: loc, relativeTo: URL(string: url)), let next = Optional(nextURL.absoluteString) else {
                    throw AZLError(.registry, "\(ref.apiHost) redirected to an invalid location")
                }
                // Only the web's own schemes: `http+unix://`, `unix://` and friends would reach a
                // local socket (a container engine's API) on the registry's say-so.
                let nextScheme = nextURL.scheme?.lowercased() ?? ""
                guard nextScheme == "https" || nextScheme == "http" else {
                    throw AZLError(.refused, "\(ref.apiHost) redirected \(Shown.text(pathOrURL, limit: 120)) to a '\(Shown.text(nextScheme, limit: 40))' URL; only https (and http under the plain-HTTP rules) is followed",
                                   hint: "the registry is misconfigured or hostile; nothing was fetched from there")
                }
                if nextScheme == "http" && !url.lowercased().hasPrefix("http://") && options.tlsVerify {
                    throw AZLError(.registry, "\(ref.apiHost) redirected from HTTPS to plain HTTP; refusing",
                                   hint: "use --tls-verify=false only if you trust the network")
                }
                url = next
                continue
            }
            return resp
        }
    }

    static func drain(_ resp: HTTPClientResponse) async {
        _ = try? await resp.body.collect(upTo: 1 << 20)
    }

    /// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}` → "MANIFEST_UNKNOWN: ...".
    static func registryErrorText(_ resp: HTTPClientResponse) async -> String {
        guard let buf = try? await resp.body.collect(upTo: 64 << 10) else { return "" }
        let data = Data(buf.readableBytesView)
        struct Errs: Decodable { struct E: Decodable { var code: String?; var message: String? }; var errors: [E]? }
        if let e = try? JSONDecoder().decode(Errs.self, from: data), let errs = e.errors, !errs.isEmpty {
            return Shown.text(errs.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; "))
        }
        let text = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.unicodeScalars.allSatisfy({ $0.value >= 0x20 || $0 == "\n" }) ? Shown.text(text) : ""
    }

    /// Turn a non-success status into the right error. 5xx and 429 are transient.
    func statusError(_ resp: HTTPClientResponse, what: String) async -> Error {
        let code = Int(resp.status.code)
        let detail = await Session.registryErrorText(resp)
        let suffix = detail.isEmpty ? "HTTP \(code)" : "HTTP \(code) \(detail)"
        switch code {
        case 404:
            return AZLError(.notFound, "\(what) not found in \(ref.apiHost) for \(ref) (\(suffix))",
                            hint: "check the image name and tag")
        case 401, 403:
            let who = credentials.map { " as \($0.username)" } ?? " anonymously"
            return AZLError(.registry, "access to \(ref) denied by \(ref.apiHost)\(who) (\(suffix))",
                            hint: credentials == nil
                                ? "check the name; if the image is private, add credentials to $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json"
                                : "check the name and the credentials in \(credentials!.source)")
        case 429, 500...599:
            return TransientError(description: "\(what): \(suffix)")
        default:
            return AZLError(.registry, "\(ref.apiHost) answered \(suffix) for \(what) of \(ref)")
        }
    }

}
