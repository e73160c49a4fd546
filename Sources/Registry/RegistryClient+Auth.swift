import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The registry's auth: the ping that finds its scheme and challenge, the Bearer token flow.
extension Session {
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

    func sendPing(timeout: TimeAmount) async throws -> HTTPClientResponse {
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
}
