import Core
import Foundation

/// An image name the way docker and podman spell it: `[HOST[:PORT]/]PATH[:TAG][@sha256:HEX]`.
///
/// Normalisation follows docker's reference grammar (distribution/reference):
/// - the first component is a registry host when it contains `.` or `:`, is `localhost`, or is a
///   bracketed IPv6 address; otherwise the host is `docker.io`;
/// - a one-component name on `docker.io` lives under `library/`;
/// - without `:tag` and without `@digest` the tag is `latest`;
/// - `index.docker.io` and `registry-1.docker.io` are spelled `docker.io`;
/// - a leading `docker://` (podman's transport prefix) is accepted and dropped.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// The registry as users write it: `docker.io`, `mcr.microsoft.com`, `localhost:5000`, `[::1]:5000`.
    public var registry: String
    /// The repository path inside the registry: `library/alpine`, `azurelinux/base/core`.
    public var repository: String
    /// The tag, when one was given (or defaulted to `latest` because no digest was given).
    public var tag: String?
    /// The manifest digest, when the reference pins one.
    public var digest: Digest?

    public init(registry: String, repository: String, tag: String?, digest: Digest?) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// The host the distribution API is served from (`docker.io` → `registry-1.docker.io`).
    public var apiHost: String {
        registry == "docker.io" ? "registry-1.docker.io" : registry
    }

    /// Host part of `registry` without the port, brackets kept off for IPv6 (`::1`).
    public var hostName: String {
        ImageNameGrammar.splitHostPort(registry).host
    }

    /// True for registries podman talks plain HTTP to without being told: localhost and loopback.
    /// Decided on the addresses the name resolves to, never on its spelling: `127.evil.example`
    /// is whatever DNS says it is.
    public var isLoopback: Bool { ImageReference.isLoopbackHost(hostName) }

    /// `localhost`, or a name or address all of whose addresses (getaddrinfo) are in
    /// 127.0.0.0/8 or ::1. A name that does not resolve is not loopback.
    public static func isLoopbackHost(_ host: String) -> Bool {
        var h = host.lowercased()
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h == "localhost" { return true }
        var flags: Int32 = 0
        #if DEBUG
        // Tests map names to addresses here (`name=address,...`) to play a name that resolves
        // elsewhere without touching DNS; release builds never read it.
        if let map = ProcessInfo.processInfo.environment["AZL_TEST_RESOLVE"] {
            for pair in map.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                if kv.count == 2 && kv[0].lowercased() == h { h = kv[1]; flags = AI_NUMERICHOST; break }
            }
        }
        #endif
        var hints = addrinfo()
        hints.ai_flags = flags
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(h, nil, &hints, &res) == 0, let first = res else { return false }
        defer { freeaddrinfo(first) }
        var any = false
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let a = p, let sa = a.pointee.ai_addr {
            switch Int32(a.pointee.ai_family) {
            case AF_INET:
                let b = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                if b >> 24 != 127 { return false }
            case AF_INET6:
                let bytes = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { s6 in
                    withUnsafeBytes(of: s6.pointee.sin6_addr) { Array($0) }
                }
                let v4mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
                let isOne = bytes[0..<15].allSatisfy { $0 == 0 } && bytes[15] == 1
                if !(isOne || (v4mapped && bytes[12] == 127)) { return false }
            default:
                return false
            }
            any = true
            p = a.pointee.ai_next
        }
        return any
    }

    /// What the manifest endpoint is asked for: the digest when there is one, else the tag.
    public var manifestReference: String {
        if let digest { return digest.description }
        return tag ?? "latest"
    }

    /// Fully qualified: `docker.io/library/alpine:latest`, `host/repo:tag@sha256:...`.
    public var description: String {
        var s = registry + "/" + repository
        if let tag { s += ":" + tag }
        if let digest { s += "@" + digest.description }
        return s
    }

    /// `registry/repository`, without tag or digest.
    public var name: String { registry + "/" + repository }

    /// Parse and normalise a reference. Errors are `AZLError(.usage, ...)` naming the input.
    public static func parse(_ input: String) throws -> ImageReference {
        func bad(_ why: String, hint: String? = nil) -> AZLError {
            AZLError(.usage, "invalid image reference '\(input)': \(why)",
                     hint: hint ?? "write it as [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], e.g. mcr.microsoft.com/azurelinux/base/core:3.0")
        }
        var s = input.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("docker://") { s = String(s.dropFirst("docker://".count)) }
        if s.isEmpty { throw bad("it is empty") }
        if s.contains(where: { $0.isWhitespace || $0.isNewline }) { throw bad("it contains whitespace") }
        if s.count > 4096 { throw bad("it is too long") }

        // @digest
        var digest: Digest? = nil
        if let at = s.firstIndex(of: "@") {
            let d = String(s[s.index(after: at)...])
            s = String(s[..<at])
            guard let colon = d.firstIndex(of: ":") else { throw bad("digest '\(d)' has no algorithm") }
            let algo = d[..<colon]
            if algo != "sha256" {
                throw bad("digest algorithm '\(algo)' is not supported", hint: "use a sha256 digest")
            }
            guard let parsed = Digest(d) else {
                throw bad("digest '\(d)' is not sha256 followed by 64 lowercase hex digits")
            }
            digest = parsed
        }
        if s.isEmpty { throw bad("no repository name before the digest") }

        // Registry host: first component when it looks like one.
        var registry = "docker.io"
        var rest = s
        if let first = ImageNameGrammar.registryPart(of: s) {
            registry = String(first)
            rest = String(s.dropFirst(first.count + 1))
            if let why = ImageNameGrammar.hostProblem(registry) { throw bad(why) }
        }
        // :tag (a colon after the last slash)
        var tag: String? = nil
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let t = String(rest[rest.index(after: colon)...])
            rest = String(rest[..<colon])
            guard ImageNameGrammar.isValidTag(t) else {
                throw bad("tag '\(t)' is not valid (letters, digits, '_', '.', '-'; up to 128, not starting with '.' or '-')")
            }
            tag = t
        }
        let lowerRegistry = registry.lowercased()
        if lowerRegistry == "index.docker.io" || lowerRegistry == "registry-1.docker.io" || lowerRegistry == "docker.io" {
            registry = "docker.io"
        }
        if rest.isEmpty { throw bad("the repository name is empty") }
        if rest != rest.lowercased() {
            throw bad("repository name '\(rest)' must be lowercase")
        }
        let components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for c in components where !ImageNameGrammar.isValidComponent(c) {
            throw bad(c.isEmpty ? "the repository name has an empty path component"
                                : "path component '\(c)' is not valid (lowercase letters, digits, and '.', '_', '__', '-' between them)")
        }
        if registry == "docker.io" && components.count == 1 { rest = "library/" + rest }
        if (registry + "/" + rest).count > 255 { throw bad("the name is longer than 255 characters") }
        if tag == nil && digest == nil { tag = "latest" }
        return ImageReference(registry: registry, repository: rest, tag: tag, digest: digest)
    }
}

/// The platform an image is for, as an OCI index names it.
public struct Platform: Hashable, Sendable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public init(os: String = "linux", architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = Platform.normaliseArchitecture(architecture)
        self.variant = variant.flatMap { $0.isEmpty ? nil : $0 }
    }

    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    /// This machine, from uname: `x86_64` → `amd64`, `aarch64` → `arm64`.
    public static var host: Platform {
        var p = Platform(os: "linux", architecture: CPUArch.hostMachine)
        if p.architecture == "arm" { p.variant = "v7" }
        return p
    }

    /// `linux/arm64`, `linux/arm64/v8`, `linux/arm/v7`, `amd64` (os defaults to linux).
    public static func parse(_ s: String) throws -> Platform {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        func bad() -> AZLError {
            AZLError(.usage, "invalid platform '\(s)'", hint: "write it as OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64")
        }
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") } }) else {
            throw bad()
        }
        switch parts.count {
        case 1: return Platform(os: "linux", architecture: parts[0].lowercased())
        case 2: return Platform(os: parts[0].lowercased(), architecture: parts[1].lowercased())
        default: return Platform(os: parts[0].lowercased(), architecture: parts[1].lowercased(), variant: parts[2].lowercased())
        }
    }

    static func normaliseArchitecture(_ a: String) -> String { CPUArch.oci(a) }

    /// Does an index entry's platform satisfy this request? `arm64` and `arm64/v8` are the same.
    func matches(_ other: Platform) -> Bool {
        guard os == other.os, architecture == other.architecture else { return false }
        let want = Platform.canonicalVariant(architecture, variant)
        let have = Platform.canonicalVariant(other.architecture, other.variant)
        return want == nil || want == have
    }

    static func canonicalVariant(_ arch: String, _ v: String?) -> String? {
        if arch == "arm64" && (v == nil || v == "v8") { return nil }
        return v
    }
}
