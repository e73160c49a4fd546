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
    public var config: ContainerConfig
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

    /// Resolve `ref` to its manifest digest for `platform` (and the index digest) without
    /// fetching any blob.
    public func resolve(_ ref: ImageReference, options: PullOptions = PullOptions()) async throws -> (manifest: Digest, index: Digest?) {
        let session = try Session(ref: ref, options: options, credentials: try options.credentials ?? credentialStore.credentials(for: ref))
        do {
            let r = try await session.resolve()
            await session.shutdown()
            return (r.digest, r.index)
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
    private let lock = NSLock()
    private var _scheme: String?
    private var _authorization: String?
    private var _challenge: AuthChallenge?

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

    // MARK: auth

    /// Decide HTTPS or HTTP, and learn the registry's auth challenge from `GET /v2/`.
    /// Non-loopback registries: HTTPS only, or HTTPS then HTTP with --tls-verify=false.
    /// Loopback registries: plain HTTP first (a TLS hello sent to a plain-HTTP server just hangs
    /// until a timeout), accepted only when it answers like a registry (200 or 401); then HTTPS.
    func ping() async throws {
        let schemes: [String]
        if loopback { schemes = ["http", "https"] }
        else if options.tlsVerify { schemes = ["https"] }
        else { schemes = ["https", "http"] }
        var lastError: Error?
        var firstError: Error?
        for (i, s) in schemes.enumerated() {
            let isLast = i + 1 == schemes.count
            lock.withLock { _scheme = s }
            do {
                var exhausted = false
                let resp: HTTPClientResponse
                do {
                    resp = try await withRetries("contacting \(ref.apiHost)", exhausted: &exhausted) {
                        try await self.sendPing(timeout: .seconds(isLast ? 60 : 5))
                    }
                } catch let e as AZLError where !isLast && exhausted {
                    // Transport failures on this scheme: try the next one.
                    firstError = firstError ?? e
                    lastError = e
                    continue
                }
                let code = resp.status.code
                if code == 401 {
                    let header = resp.headers[canonicalForm: "WWW-Authenticate"].map(String.init).joined(separator: ", ")
                    await Session.drain(resp)
                    try await authenticate(challengeHeader: header)
                    return
                }
                let detail = code == 200 ? "" : await Session.registryErrorText(resp)
                await Session.drain(resp)
                if code == 200 { return }
                if !isLast {
                    lastError = AZLError(.registry, "\(s)://\(ref.apiHost)/v2/ answered HTTP \(code)")
                    continue
                }
                if code == 404 {
                    throw AZLError(.registry, "\(ref.apiHost) does not serve the registry API (GET /v2/ answered 404) for \(ref)",
                                   hint: "check the registry host name")
                }
                // Some registries answer /v2/ oddly but serve manifests; carry on and let those requests tell.
                _ = detail
                return
            } catch let e as AZLError {
                throw e
            } catch {
                firstError = firstError ?? error
                lastError = error
                if isLast { break }
            }
        }
        // A loopback registry is spoken to in plain HTTP first: when HTTPS then fails because the
        // server does not speak TLS, the plain-HTTP failure is the one that says what is wrong.
        if loopback, let first = firstError, let last = lastError, last is NIOSSLError || last is BoringSSLError {
            throw first
        }
        throw lastError ?? AZLError(.registry, "cannot reach \(ref.apiHost)")
    }

    private func sendPing(timeout: TimeAmount) async throws -> HTTPClientResponse {
        var req = HTTPClientRequest(url: origin + "/v2/")
        req.headers.add(name: "User-Agent", value: "azl-shell")
        let resp = try await http.execute(req, timeout: timeout)
        if resp.status.code >= 500 {
            let e = await statusError(resp, what: "/v2/")
            throw e
        }
        return resp
    }

    /// Answer a challenge: fetch a bearer token (with basic credentials when we have them) or
    /// use basic auth. Throws a "denied" error when there is nothing we can answer with.
    func authenticate(challengeHeader: String) async throws {
        let challenges = AuthChallenge.parse(challengeHeader)
        if let bearer = challenges.first(where: { $0.scheme == "bearer" }) {
            let token = try await fetchToken(bearer)
            authorization = "Bearer " + token
            return
        }
        if challenges.contains(where: { $0.scheme == "basic" }) {
            guard let c = credentials, c.identityToken == nil || !c.password.isEmpty else {
                throw AZLError(.registry, "\(ref.apiHost) requires a login to pull \(ref)",
                               hint: "add credentials to $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json")
            }
            guard scheme == "https" || loopback else {
                throw AZLError(.registry, "\(ref.apiHost) asks for a password over plain HTTP; refusing to send it")
            }
            authorization = c.basicHeader
            return
        }
        throw AZLError(.registry, "access to \(ref) denied by \(ref.apiHost): unsupported authentication challenge '\(challenges.first?.scheme ?? "none")'")
    }

    /// Credentials go to a token realm over HTTPS, or over plain HTTP to loopback by address.
    static func realmIsSafe(scheme: String, host: String) -> Bool {
        scheme == "https" || ImageReference.isLoopbackHost(host)
    }

    /// The token flow: `GET realm?service=...&scope=repository:REPO:pull`.
    func fetchToken(_ ch: AuthChallenge) async throws -> String {
        guard let realm = ch.parameters["realm"], var comps = URLComponents(string: realm),
              let rs = comps.scheme?.lowercased(), rs == "https" || rs == "http" else {
            throw AZLError(.registry, "\(ref.apiHost) sent a bearer challenge without a usable realm")
        }
        var items = comps.queryItems ?? []
        if let service = ch.parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
        var scopes = Set((ch.parameters["scope"] ?? "").split(separator: " ").map(String.init))
        scopes.insert("repository:\(ref.repository):pull")
        for s in scopes.sorted() { items.append(URLQueryItem(name: "scope", value: s)) }
        comps.queryItems = items
        // '+' in a query is a space to many servers; encode it.
        comps.percentEncodedQuery = comps.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        guard let url = comps.url?.absoluteString else {
            throw AZLError(.registry, "\(ref.apiHost) sent a bearer challenge with an invalid realm")
        }
        var req = HTTPClientRequest(url: url)
        req.headers.add(name: "User-Agent", value: "azl-shell")
        let anonymous = req
        let realmHost = comps.host?.lowercased() ?? ""
        let realmIsSafe = Session.realmIsSafe(scheme: rs, host: realmHost)
        if let c = credentials, let refresh = c.identityToken, realmIsSafe {
            // Docker's identitytoken is an OAuth2 refresh token: the token service takes it in a
            // form POST (the distribution token spec's "OAuth2 token" flow), not as a password.
            var form = URLComponents()
            form.queryItems = [URLQueryItem(name: "grant_type", value: "refresh_token"),
                               URLQueryItem(name: "refresh_token", value: refresh),
                               URLQueryItem(name: "client_id", value: "azl-shell")]
                + (ch.parameters["service"].map { [URLQueryItem(name: "service", value: $0)] } ?? [])
                + [URLQueryItem(name: "scope", value: scopes.sorted().joined(separator: " "))]
            var post = comps
            post.queryItems = (comps.queryItems ?? []).filter { $0.name != "service" && $0.name != "scope" }
            if post.queryItems?.isEmpty == true { post.queryItems = nil }
            req = HTTPClientRequest(url: post.url?.absoluteString ?? url)
            req.method = .POST
            req.headers.add(name: "User-Agent", value: "azl-shell")
            req.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            let body = (form.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
            req.body = .bytes(ByteBuffer(string: body))
        } else if let c = credentials, realmIsSafe, !(c.identityToken != nil && c.password.isEmpty) {
            req.headers.add(name: "Authorization", value: c.basicHeader)
        }
        func ask(_ req: HTTPClientRequest) async throws -> HTTPClientResponse {
            try await withRetries("getting a token from \(realmHost)") { () async throws -> HTTPClientResponse in
                let r = try await self.http.execute(req, timeout: .seconds(60))
                if r.status.code >= 500 || r.status.code == 429 {
                    let e = await self.statusError(r, what: "token")
                    throw e
                }
                return r
            }
        }
        var resp = try await ask(req)
        // A token service without the OAuth2 POST (404/405, as some registries answer): the
        // plain GET, as docker falls back to; the identity token is no password to send there.
        if req.method == .POST, resp.status.code == 404 || resp.status.code == 405 {
            _ = try? await resp.body.collect(upTo: 1 << 20)
            resp = try await ask(anonymous)
        }
        let code = resp.status.code
        guard code == 200 else {
            let detail = await Session.registryErrorText(resp)
            let who = credentials.map { $0.identityToken != nil ? " the identity token from \($0.source)" : " for user \($0.username) (credentials from \($0.source))" } ?? " anonymously"
            throw AZLError(.registry, "access to \(ref) denied: the token service \(Shown.text(realmHost)) refused\(who) (HTTP \(code)\(detail.isEmpty ? "" : " " + detail))",
                           hint: credentials == nil ? "the image may be private: add credentials to $REGISTRY_AUTH_FILE or ~/.docker/config.json"
                               : credentials?.identityToken != nil ? "log in again: the identity token may have expired" : "check the user name and password")
        }
        let body = try await resp.body.collect(upTo: 1 << 20)
        struct TokenJSON: Decodable { var token: String?; var access_token: String? }
        guard let t = try? JSONDecoder().decode(TokenJSON.self, from: Data(body.readableBytesView)),
              let token = t.token ?? t.access_token, !token.isEmpty else {
            throw AZLError(.registry, "the token service \(Shown.text(realmHost)) for \(ref.apiHost) answered without a token")
        }
        return token
    }

    // MARK: retries

    func withRetries<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var exhausted = false
        return try await withRetries(what, exhausted: &exhausted, body)
    }

    /// `exhausted` is set when the error thrown is transient ones that outlasted the retries.
    func withRetries<T>(_ what: String, exhausted: inout Bool, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                guard Session.isTransient(error), attempt < options.retries else {
                    if let t = error as? TransientError {
                        exhausted = true
                        throw AZLError(.registry, "\(what) for \(ref) failed after \(attempt + 1) attempts: \(t.description)")
                    }
                    exhausted = Session.isTransient(error)
                    throw error
                }
                attempt += 1
                options.progress?(.retrying(what: what, attempt: attempt, reason: Session.describe(error)))
                let delay = options.retryDelay * pow(2, Double(attempt - 1)) * Double.random(in: 0.8...1.2)
                try await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1_000_000_000))
            }
        }
    }

    static func isTransient(_ error: Error) -> Bool {
        if error is TransientError { return true }
        if error is AZLError || error is CancellationError { return false }
        if let e = error as? HTTPClientError {
            if e == .cancelled || e == .invalidURL || e == .emptyHost || e == .alreadyShutdown { return false }
            return !"\(e)".lowercased().contains("unsupported scheme")
        }
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return false }
        if error is NIOSSLError { return false }
        if let e = error as? BoringSSLError { _ = e; return false }
        if let e = error as? NIOConnectionError {
            // Refused: nothing listens there. Reported at once (a wrong port or a stopped
            // registry does not start listening during a backoff); resets and timeouts retry.
            if e.connectionErrors.allSatisfy({ ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) { return false }
            return true
        }
        return true   // IOError (ECONNRESET, EPIPE...), ChannelError and friends
    }

    /// A readable one-liner for a transport error (never includes headers).
    static func describe(_ error: Error) -> String {
        if let e = error as? AZLError { return e.message }
        if let t = error as? TransientError { return t.description }
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return "cannot connect to \(e.host):\(e.port): \(describe(first.error))" }
            if e.dnsAError != nil || e.dnsAAAAError != nil { return "cannot resolve \(e.host)" }
            return "cannot connect to \(e.host):\(e.port)"
        }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        if let e = error as? HTTPClientError {
            if e == .remoteConnectionClosed { return "the connection was closed by the server" }
            if e == .readTimeout { return "timed out waiting for the server" }
            if e == .connectTimeout { return "timed out connecting" }
            if e == .deadlineExceeded { return "the transfer took too long" }
            return "\(e)"
        }
        if error is NIOSSLError || error is BoringSSLError { return describeTLS(error) }
        return "\(error)"
    }

    /// A TLS failure in words: BoringSSL's text names the source file each error came from,
    /// which is of no use to a user; the two usual causes get a sentence of their own.
    static func describeTLS(_ error: Error) -> String {
        var text = "\(error)"
        while let at = text.range(of: " at /") {
            let end = text[at.upperBound...].firstIndex { $0 == "]" || $0 == ")" || $0 == "," } ?? text.endIndex
            text.removeSubrange(at.lowerBound..<end)
        }
        if text.contains("WRONG_VERSION_NUMBER") {
            return "the TLS handshake failed: the server does not speak TLS on that port (plain HTTP?)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's TLS certificate could not be verified"
        }
        return "TLS failure: " + text
    }

    /// Every error leaving `pull` is an AZLError naming the reference.
    static func wrap(_ error: Error, ref: ImageReference) -> Error {
        if let e = error as? AZLError { return e }
        if error is CancellationError { return AZLError(.registry, "pull of \(ref) was cancelled") }
        let text = describe(error)
        var hint: String? = nil
        if error is NIOSSLError || error is BoringSSLError {
            hint = "the registry's certificate could not be verified; use --tls-verify=false only if you trust the network"
        }
        return AZLError(.registry, "cannot pull \(ref) from \(ref.apiHost): \(text)", hint: hint)
    }

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

    // MARK: stalls

    /// Bytes a transfer has moved, read by its watchdog.
    final class Moved: @unchecked Sendable {
        private let lock = NSLock()
        private var n: Int64 = 0
        func add(_ k: Int) { lock.withLock { n += Int64(k) } }
        var value: Int64 { lock.withLock { n } }
    }

    /// Run `body` (a request and its body) under a watchdog: when, over the last `rateWindow`
    /// seconds, it moved fewer than `minRate` bytes a second, it is cancelled and the pull
    /// fails (`.stalled`). The HTTP read timeout alone restarts with every byte.
    func guarded<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Moved) async throws -> T) async throws -> T {
        let moved = Moved()
        let window = options.rateWindow, rate = options.minRate
        guard window > 0, rate > 0 else { return try await body(moved) }
        let windowNs = UInt64(window * 1e9)
        let host = ref.apiHost
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body(moved) }
            group.addTask {
                // Samples (time, bytes); the oldest kept is the newest at least a window old.
                var samples: [(UInt64, Int64)] = [(DispatchTime.now().uptimeNanoseconds, 0)]
                while true {
                    try await Task.sleep(nanoseconds: max(10_000_000, windowNs / 20))
                    let now = DispatchTime.now().uptimeNanoseconds, v = moved.value
                    samples.append((now, v))
                    while samples.count > 1 && now - samples[1].0 >= windowNs { samples.removeFirst() }
                    if now - samples[0].0 >= windowNs && Double(v - samples[0].1) < rate * window {
                        throw AZLError(.stalled, "\(host) sent \(what) of \(self.ref) at less than \(Int(rate)) bytes/s over \(Shown.text(String(window))) s; giving up",
                                       hint: "the registry or the network is stalled: try again later (the floor is AZL_PULL_MIN_RATE bytes/s over AZL_PULL_RATE_WINDOW seconds)")
                    }
                }
            }
            defer { group.cancelAll() }
            while let r = try await group.next() {
                if let r { return r }
            }
            throw CancellationError()
        }
    }

    // MARK: pull

    func pull(sink: BlobSink) async throws -> PulledImage {
        let r = try await resolve()
        let m = r.manifest
        var layers: [(Descriptor, LayerCompression)] = []
        for l in m.layers {
            guard let c = LayerCompression(mediaType: l.mediaType) else {
                throw AZLError(.registry, "\(ref): layer \(l.digest.short) has media type \(Shown.text(l.mediaType, limit: 100)), which is not a filesystem layer azl-shell can unpack")
            }
            guard l.size >= 0 else { throw AZLError(.registry, "\(ref): layer \(l.digest.short) has a negative size") }
            layers.append((l, c))
        }
        options.progress?(.resolved(manifest: r.digest, layers: layers.count, platform: options.platform.description, index: r.index))

        // An artifact (a Helm chart, a signature) may carry tar layers; only an image config
        // makes it a container image.
        guard m.config.mediaType == MediaType.ociConfig || m.config.mediaType == MediaType.dockerConfig else {
            throw AZLError(.registry, "\(ref) is not a container image: its config has media type \(Shown.text(m.config.mediaType, limit: 100))",
                           hint: "it is an artifact of another kind; pull it with a tool made for it")
        }
        // The config first: it is small, and its diff_ids must agree with the layers.
        guard m.config.size >= 0, m.config.size <= Int64(Session.maxConfigBytes) else {
            throw AZLError(.registry, "\(ref): the image config is \(m.config.size) bytes; refusing")
        }
        let (configPath, _) = try await fetchBlob(m.config, sink: sink, what: "config", report: false)
        let configData = try FS.readFile(configPath)
        if let key = DuplicateKeys.find(in: configData) {
            throw AZLError(.refused, "image config \(m.config.digest) of \(ref) has the key '\(Shown.text(key, limit: 80))' twice, which tools read differently; refusing it",
                           hint: "the registry serves a malformed or hostile image; nothing was kept")
        }
        let cfg: ImageConfigJSON
        do { cfg = try JSONDecoder().decode(ImageConfigJSON.self, from: configData) } catch {
            throw AZLError(.registry, "\(ref): the image config \(m.config.digest.short) cannot be parsed: \(Session.decodingText(error))")
        }
        let diffIDs = cfg.rootfs?.diff_ids ?? []
        guard diffIDs.count == layers.count else {
            throw AZLError(.registry, "\(ref): the image config lists \(diffIDs.count) layer digests (rootfs.diff_ids) but the manifest has \(layers.count) layers")
        }

        // Layers, at most maxParallel at once; each distinct digest once.
        var unique: [Descriptor] = []
        var seen = Set<Digest>()
        for (l, _) in layers where seen.insert(l.digest).inserted { unique.append(l) }
        var results: [Digest: (String, Bool)] = [:]
        if let needed = options.layersNeeded, !needed(diffIDs) {
            // What they unpack to is there already: nothing to download.
            for l in unique {
                options.progress?(.layerStart(l.digest, size: l.size))
                options.progress?(.layerDone(l.digest, cached: true))
                results[l.digest] = (sink.has(l.digest) ?? "", true)
            }
            unique = []
        }
        try await withThrowingTaskGroup(of: (Digest, String, Bool).self) { group in
            var next = 0
            func startNext() {
                guard next < unique.count else { return }
                let d = unique[next]
                next += 1
                group.addTask {
                    let (p, cached) = try await self.fetchBlob(d, sink: sink, what: "layer", report: true)
                    return (d.digest, p, cached)
                }
            }
            for _ in 0..<min(options.maxParallel, unique.count) { startNext() }
            while let (d, p, cached) = try await group.next() {
                results[d] = (p, cached)
                startNext()
            }
        }
        let pulled = layers.map { (l, c) in
            PulledLayer(digest: l.digest, mediaType: l.mediaType, size: l.size, compression: c,
                        blobPath: results[l.digest]!.0, cached: results[l.digest]!.1)
        }
        let inner = cfg.config
        let config = ContainerConfig(env: inner?.Env ?? [], workingDir: inner?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 },
                                     user: inner?.User.flatMap { $0.isEmpty ? nil : $0 },
                                     entrypoint: inner?.Entrypoint, cmd: inner?.Cmd)
        let platform = Platform(os: cfg.os ?? options.platform.os, architecture: cfg.architecture ?? options.platform.architecture, variant: cfg.variant)
        return PulledImage(reference: ref, manifestDigest: r.digest, indexDigest: r.index, manifestMediaType: r.mediaType,
                           manifest: r.body, configDigest: m.config.digest, configPath: configPath, config: config,
                           platform: platform, diffIDs: diffIDs, layers: pulled)
    }

    // MARK: blobs

    /// Fetch one blob into the sink (or find it there), holding the digest's lock.
    func fetchBlob(_ desc: Descriptor, sink: BlobSink, what: String, report: Bool) async throws -> (String, Bool) {
        let d = desc.digest
        try FS.mkdirs((sink.lockPath(for: d) as NSString).deletingLastPathComponent)
        let lock = try await Session.acquire(sink.lockPath(for: d))
        defer { lock.unlock() }
        if report { options.progress?(.layerStart(d, size: desc.size)) }
        if let p = sink.has(d) {
            if report { options.progress?(.layerDone(d, cached: true)) }
            return (p, true)
        }
        let partial = sink.partialPath(for: d)
        try await withRetries("downloading \(what) \(d.short)") {
            try await self.download(desc, to: partial, what: what, report: report)
        }
        let final = try sink.commit(d, from: partial)
        unlink(Session.originPath(partial))
        if report { options.progress?(.layerDone(d, cached: false)) }
        return (final, false)
    }

    /// flock off the cooperative pool: another pull of the same blob may hold it for minutes.
    static func acquire(_ path: String) async throws -> FileLock {
        if let l = try FileLock(tryPath: path, mode: .exclusive) { return l }
        return try await withCheckedThrowingContinuation { cont in
            Thread.detachNewThread {
                do { cont.resume(returning: try FileLock(path: path, mode: .exclusive)) } catch { cont.resume(throwing: error) }
            }
        }
    }

    /// One attempt: resume `partial` if it holds a prefix written from this registry's origin,
    /// stream the rest while hashing, and verify digest and size. A mismatch deletes the partial
    /// file; a dropped connection leaves it (TransientError) for the next attempt.
    func download(_ desc: Descriptor, to partial: String, what: String, report: Bool) async throws {
        let d = desc.digest
        let size = desc.size
        let fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw AZLError.errno(errno, "cannot write", path: partial) }
        defer { close(fd) }
        do {
            try await download(desc, fd: fd, partial: partial, what: what, report: report)
        } catch {
            // Nothing received: leave no empty partial (nor its origin) behind.
            var st = stat()
            if fstat(fd, &st) == 0 && st.st_size == 0 { unlink(partial); unlink(Session.originPath(partial)) }
            throw error
        }
    }

    /// Where the origin (scheme://host:port) that wrote a partial file is kept: a partial is
    /// resumed only from that origin, so another registry's bytes never prefix an honest blob.
    static func originPath(_ partial: String) -> String { partial + ".origin" }

    private struct Overrun: Error {}

    private func download(_ desc: Descriptor, fd: Int32, partial: String, what: String, report: Bool) async throws {
        let d = desc.digest
        let size = desc.size
        func mismatch(_ why: String) -> AZLError {
            ftruncate(fd, 0)
            unlink(partial)
            unlink(Session.originPath(partial))
            return AZLError(.digestMismatch, "\(what) \(d) of \(ref) does not match its digest: \(why)",
                            hint: "the registry or a proxy served different content; nothing was kept")
        }
        var st = stat()
        fstat(fd, &st)
        var have = Int64(st.st_size)
        let origin = registryOriginKey ?? self.origin
        let wroteIt = (try? String(contentsOfFile: Session.originPath(partial), encoding: .utf8)) == origin
        if have > size || (have > 0 && !wroteIt) { ftruncate(fd, 0); have = 0 }
        if have == 0 && !wroteIt {
            try FS.atomicWrite(Data(origin.utf8), to: Session.originPath(partial), mode: 0o600)
        }
        // Re-hash what an earlier attempt left.
        var hasher = Hasher256()
        if have > 0 {
            let chunk = 1 << 20
            let buf = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
            defer { buf.deallocate() }
            var off: Int64 = 0
            while off < have {
                let n = pread(fd, buf, min(chunk, Int(have - off)), off_t(off))
                if n < 0 { if errno == EINTR { continue }; throw AZLError.errno(errno, "cannot read", path: partial) }
                if n == 0 { break }
                hasher.update(UnsafeRawBufferPointer(start: buf, count: n))
                off += Int64(n)
            }
            have = off
        }
        if have == size {
            guard hasher.finalize() == d else {
                // A complete-length partial that is wrong: discard it and fetch afresh.
                ftruncate(fd, 0)
                throw TransientError(description: "a stale partial download of \(d.short) was discarded")
            }
            return
        }
        var headers: [(String, String)] = []
        if have > 0 { headers.append(("Range", "bytes=\(have)-")) }
        let path = "/v2/\(ref.repository)/blobs/\(d)"
        let resp = try await guarded("\(what) \(d)") { _ in
            try await self.send(path, headers: headers, timeout: .hours(6))
        }
        let code = resp.status.code
        var offset = have
        switch code {
        case 200:
            if have > 0 { ftruncate(fd, 0); hasher = Hasher256(); offset = 0 }
        case 206:
            let cr = resp.headers.first(name: "Content-Range") ?? ""
            let start = cr.split(whereSeparator: { $0 == " " || $0 == "-" }).dropFirst().first.flatMap { Int64($0) }
            guard start == have else {
                await Session.drain(resp)
                ftruncate(fd, 0)
                throw TransientError(description: "the server answered the range request with '\(Shown.text(cr, limit: 80))'; starting over")
            }
            if report { options.progress?(.resumed(d, from: have)) }
        case 416:
            await Session.drain(resp)
            ftruncate(fd, 0)
            throw TransientError(description: "the server refused to resume at byte \(have); starting over")
        default:
            throw await statusError(resp, what: "\(what) \(d)")
        }
        if let len = resp.headers.first(name: "Content-Length").flatMap(Int64.init), offset + len != size {
            await Session.drain(resp)
            throw mismatch("the registry sends \(offset + len) bytes, the manifest says \(size)")
        }
        if lseek(fd, off_t(offset), SEEK_SET) < 0 { throw AZLError.errno(errno, "cannot seek", path: partial) }
        if ftruncate(fd, off_t(offset)) != 0 { throw AZLError.errno(errno, "cannot truncate", path: partial) }
        let start = hasher
        let got: Hasher256, done: Int64
        do {
            (got, done) = try await guarded("\(what) \(d)") { moved in
                try await self.receive(resp, fd: fd, partial: partial, digest: d, size: size, from: offset,
                                       hasher: start, report: report, moved: moved)
            }
        } catch is Overrun {
            throw mismatch("more than the \(size) bytes the manifest says")
        }
        if done < size {
            throw TransientError(description: "the transfer of \(d.short) ended at \(done) of \(size) bytes")
        }
        let digest = got.finalize()
        guard digest == d else { throw mismatch("got \(digest)") }
        if fsync(fd) != 0 { throw AZLError.errno(errno, "cannot sync", path: partial) }
    }

    /// Stream a blob's body to `fd` from `from`, hashing it; returns the hasher and the bytes held.
    private func receive(_ resp: HTTPClientResponse, fd: Int32, partial: String, digest d: Digest, size: Int64, from: Int64,
                         hasher start: Hasher256, report: Bool, moved: Moved) async throws -> (Hasher256, Int64) {
        var hasher = start
        var done = from
        var lastReport = DispatchTime.now().uptimeNanoseconds
        do {
            for try await buf in resp.body {
                let n = Int64(buf.readableBytes)
                moved.add(buf.readableBytes)
                if done + n > size { throw Overrun() }
                try buf.withUnsafeReadableBytes { raw in
                    hasher.update(raw)
                    var off = 0
                    while off < raw.count {
                        let w = write(fd, raw.baseAddress! + off, raw.count - off)
                        if w < 0 {
                            if errno == EINTR { continue }
                            throw AZLError.errno(errno, "cannot write", path: partial)
                        }
                        off += w
                    }
                }
                done += n
                if report {
                    let now = DispatchTime.now().uptimeNanoseconds
                    if now - lastReport >= 100_000_000 || done == size {
                        lastReport = now
                        options.progress?(.layerProgress(d, done: done, total: size))
                    }
                }
            }
        } catch let e as AZLError {
            throw e
        } catch let e as Overrun {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw TransientError(description: "the transfer of \(d.short) broke off at \(done) of \(size) bytes: \(Session.describe(error))")
        }
        return (hasher, done)
    }
}
