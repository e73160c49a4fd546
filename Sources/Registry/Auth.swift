import Core
import Foundation

/// A user name and password (or token) for one registry. Its description never shows the secret.
public struct Credentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var username: String
    public var password: String
    /// Docker's `identitytoken` (an OAuth2 refresh token), when the auth file holds one instead.
    public var identityToken: String?
    /// Which file they came from (for messages; never the content).
    public var source: String

    public init(username: String, password: String, identityToken: String? = nil, source: String = "") {
        self.username = username; self.password = password
        self.identityToken = identityToken; self.source = source
    }

    public var description: String { "credentials for '\(username)' from \(source.isEmpty ? "the caller" : source)" }
    public var debugDescription: String { description }

    var basicHeader: String {
        "Basic " + Data((username + ":" + password).utf8).base64EncodedString()
    }
}

/// Finds credentials the way podman and docker do, in this order:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
/// `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/...`), `$DOCKER_CONFIG/config.json`
/// (default `~/.docker/config.json`). In each file, `auths` keys are matched most specific first:
/// `host/namespace/repo`, ..., `host`, with `https://` prefixes and `/v1/`, `/v2/` suffixes
/// ignored; `docker.io` also matches `https://index.docker.io/v1/`. Credential helpers
/// (`credHelpers`, `credsStore`) are not run.
public struct CredentialStore: Sendable {
    public var files: [String]

    public init(files: [String]) { self.files = files }

    /// The standard search list for this environment.
    public init(environment env: [String: String] = ProcessInfo.processInfo.environment) {
        var files: [String] = []
        func nonEmpty(_ k: String) -> String? { env[k].flatMap { $0.isEmpty ? nil : $0 } }
        let home = nonEmpty("HOME") ?? NSHomeDirectory()
        if let f = nonEmpty("REGISTRY_AUTH_FILE") { files.append(f) }
        if let r = nonEmpty("XDG_RUNTIME_DIR") { files.append(r + "/containers/auth.json") }
        files.append((nonEmpty("XDG_CONFIG_HOME") ?? home + "/.config") + "/containers/auth.json")
        files.append((nonEmpty("DOCKER_CONFIG") ?? home + "/.docker") + "/config.json")
        self.files = files
    }

    /// Credentials for `ref`, or nil. A file that exists but cannot be parsed is an error naming it.
    public func credentials(for ref: ImageReference) throws -> Credentials? {
        let wanted = CredentialStore.candidateKeys(for: ref)
        for file in files {
            guard FS.exists(file) else { continue }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw AZLError(.permission, "cannot read registry auth file \(file)", hint: "check its permissions")
            }
            struct AuthFile: Decodable {
                struct Entry: Decodable { var auth: String?; var username: String?; var password: String?; var identitytoken: String? }
                var auths: [String: Entry]?
            }
            let parsed: AuthFile
            do { parsed = try JSONDecoder().decode(AuthFile.self, from: data) } catch {
                throw AZLError(.usage, "registry auth file \(file) is not valid JSON",
                               hint: "it should look like {\"auths\": {\"HOST\": {\"auth\": \"BASE64(user:password)\"}}}")
            }
            guard let auths = parsed.auths else { continue }
            var byKey: [String: AuthFile.Entry] = [:]
            for (k, v) in auths { byKey[CredentialStore.normaliseKey(k)] = v }
            for key in wanted {
                guard let e = byKey[key] else { continue }
                if let auth = e.auth, !auth.isEmpty {
                    guard let raw = Data(base64Encoded: auth.trimmingCharacters(in: .whitespacesAndNewlines)),
                          let s = String(data: raw, encoding: .utf8), let colon = s.firstIndex(of: ":") else {
                        throw AZLError(.usage, "registry auth file \(file): the 'auth' entry for \(key) is not base64 of USER:PASSWORD")
                    }
                    return Credentials(username: String(s[..<colon]), password: String(s[s.index(after: colon)...]),
                                       identityToken: e.identitytoken.flatMap { $0.isEmpty ? nil : $0 }, source: file)
                }
                if let u = e.username, let p = e.password {
                    return Credentials(username: u, password: p, source: file)
                }
                if let t = e.identitytoken, !t.isEmpty {
                    return Credentials(username: "<token>", password: "", identityToken: t, source: file)
                }
            }
        }
        return nil
    }

    static func normaliseKey(_ k: String) -> String {
        var s = k.lowercased()
        for p in ["https://", "http://"] where s.hasPrefix(p) { s = String(s.dropFirst(p.count)) }
        while s.hasSuffix("/") { s.removeLast() }
        for suffix in ["/v1", "/v2"] where s.hasSuffix(suffix) { s = String(s.dropLast(suffix.count)) }
        if s == "index.docker.io" || s == "registry-1.docker.io" { s = "docker.io" }
        if s.hasPrefix("index.docker.io/") || s.hasPrefix("registry-1.docker.io/") {
            s = "docker.io/" + s.split(separator: "/", maxSplits: 1)[1]
        }
        return s
    }

    /// `host/a/b/c`, `host/a/b`, `host/a`, `host` — most specific first.
    static func candidateKeys(for ref: ImageReference) -> [String] {
        let host = ref.registry.lowercased()
        var keys: [String] = []
        var parts = ref.repository.split(separator: "/").map(String.init)
        while !parts.isEmpty {
            keys.append(host + "/" + parts.joined(separator: "/"))
            parts.removeLast()
        }
        keys.append(host)
        return keys
    }
}

/// One `WWW-Authenticate` challenge: its scheme and parameters.
struct AuthChallenge: Equatable {
    var scheme: String          // lowercased: "bearer", "basic"
    var parameters: [String: String]

    /// Parse a header value (RFC 7235): `Bearer realm="https://x",service="y",scope="a:b:pull"`.
    /// Values may be quoted (with backslash escapes) or bare tokens; several challenges may be
    /// listed with commas. Returns them in order.
    static func parse(_ header: String) -> [AuthChallenge] {
        var result: [AuthChallenge] = []
        let chars = Array(header)
        var i = 0
        func skipSpace() { while i < chars.count && (chars[i] == " " || chars[i] == "\t") { i += 1 } }
        func token() -> String {
            let start = i
            while i < chars.count && chars[i] != " " && chars[i] != "\t" && chars[i] != "," && chars[i] != "=" { i += 1 }
            return String(chars[start..<i])
        }
        while i < chars.count {
            skipSpace()
            while i < chars.count && chars[i] == "," { i += 1; skipSpace() }
            let scheme = token()
            if scheme.isEmpty { break }
            var params: [String: String] = [:]
            while true {
                skipSpace()
                let save = i
                let name = token()
                skipSpace()
                guard !name.isEmpty, i < chars.count, chars[i] == "=" else { i = save; break }
                i += 1
                skipSpace()
                var value = ""
                if i < chars.count && chars[i] == "\"" {
                    i += 1
                    while i < chars.count && chars[i] != "\"" {
                        if chars[i] == "\\" && i + 1 < chars.count { i += 1 }
                        value.append(chars[i]); i += 1
                    }
                    i += 1
                } else {
                    let start = i
                    while i < chars.count && chars[i] != "," && chars[i] != " " { i += 1 }
                    value = String(chars[start..<i])
                }
                params[name.lowercased()] = value
                skipSpace()
                if i < chars.count && chars[i] == "," { i += 1 } else { break }
            }
            result.append(AuthChallenge(scheme: scheme.lowercased(), parameters: params))
        }
        return result
    }
}
