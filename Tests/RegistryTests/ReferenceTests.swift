import Core
import Foundation
@testable import Registry
import Testing

@Suite struct ImageReferenceTests {
    typealias Case = (String, String, String, String?, String?, String)
    static let cases: [Case] = [
        ("alpine", "docker.io", "library/alpine", "latest", nil, "registry-1.docker.io"),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", nil, "registry-1.docker.io"),
        ("library/alpine", "docker.io", "library/alpine", "latest", nil, "registry-1.docker.io"),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", nil, "registry-1.docker.io"),
        ("index.docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", nil, "registry-1.docker.io"),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", nil, "registry-1.docker.io"),
        ("docker://ubuntu:24.04", "docker.io", "library/ubuntu", "24.04", nil, "registry-1.docker.io"),
        ("mcr.microsoft.com/azurelinux/base/core:3.0", "mcr.microsoft.com", "azurelinux/base/core", "3.0", nil, "mcr.microsoft.com"),
        ("mcr.microsoft.com/cbl-mariner/base/core:2.0", "mcr.microsoft.com", "cbl-mariner/base/core", "2.0", nil, "mcr.microsoft.com"),
        ("localhost:5000/foo", "localhost:5000", "foo", "latest", nil, "localhost:5000"),
        ("localhost/foo:1", "localhost", "foo", "1", nil, "localhost"),
        ("127.0.0.1:41234/test/alpine:3.20", "127.0.0.1:41234", "test/alpine", "3.20", nil, "127.0.0.1:41234"),
        ("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", nil, "[::1]:5000"),
        ("quay.io/fedora/fedora:40", "quay.io", "fedora/fedora", "40", nil, "quay.io"),
        ("ghcr.io/a__b/c-d.e_f", "ghcr.io", "a__b/c-d.e_f", "latest", nil, "ghcr.io"),
        ("alpine@sha256:" + String(repeating: "ab", count: 32), "docker.io", "library/alpine", nil,
         "sha256:" + String(repeating: "ab", count: 32), "registry-1.docker.io"),
        ("mcr.microsoft.com/azurelinux/base/core:3.0@sha256:" + String(repeating: "01", count: 32), "mcr.microsoft.com",
         "azurelinux/base/core", "3.0", "sha256:" + String(repeating: "01", count: 32), "mcr.microsoft.com"),
    ]

    @Test(arguments: ImageReferenceTests.cases)
    func parses(_ input: String, _ registry: String, _ repo: String, _ tag: String?, _ digest: String?, _ apiHost: String) throws {
        let r = try ImageReference.parse(input)
        #expect(r.registry == registry)
        #expect(r.repository == repo)
        #expect(r.tag == tag)
        #expect(r.digest?.description == digest)
        #expect(r.apiHost == apiHost)
        // description is canonical and parses back to the same thing
        #expect(try ImageReference.parse(r.description) == r)
    }

    @Test func descriptionIsFullyQualified() throws {
        #expect(try ImageReference.parse("alpine").description == "docker.io/library/alpine:latest")
        #expect(try ImageReference.parse("mcr.microsoft.com/azurelinux/base/core:3.0").description
                == "mcr.microsoft.com/azurelinux/base/core:3.0")
        let d = "sha256:" + String(repeating: "cd", count: 32)
        let r = try ImageReference.parse("quay.io/a/b@" + d)
        #expect(r.description == "quay.io/a/b@" + d)
        #expect(r.manifestReference == d)
        #expect(try ImageReference.parse("quay.io/a/b:7").manifestReference == "7")
    }

    @Test(arguments: [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("docker.io/Library/alpine", "lowercase"),
        ("alpine:", "tag ''"),
        ("alpine:-bad", "tag '-bad'"),
        ("alpine:" + String(repeating: "x", count: 129), "tag"),
        ("alpine@sha256:abc", "64 lowercase hex"),
        ("alpine@sha512:" + String(repeating: "a", count: 128), "not supported"),
        ("alpine@" + String(repeating: "a", count: 64), "no algorithm"),
        ("foo//bar", "empty path component"),
        ("foo/bar/", "empty path component"),
        ("foo/-bar", "path component '-bar'"),
        ("foo/bar_", "path component 'bar_'"),
        ("foo/a___b", "path component"),
        ("example.com:99999/foo", "port"),
        ("exa_mple.com/foo", "host name"),
        ("a b", "whitespace"),
        ("mcr.microsoft.com/", "empty"),
        ("@sha256:" + String(repeating: "a", count: 64), "no repository"),
    ])
    func rejects(_ input: String, _ why: String) {
        do {
            _ = try ImageReference.parse(input)
            Issue.record("'\(input)' was accepted")
        } catch let e as AZLError {
            #expect(e.kind == .usage)
            #expect(e.message.contains("'\(input)'"), "message names the input: \(e.message)")
            #expect(e.message.contains(why), "\(e.message) should say \(why)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func loopbackHosts() throws {
        #expect(try ImageReference.parse("localhost:5000/a").isLoopback)
        #expect(try ImageReference.parse("127.0.0.1:5000/a").isLoopback)
        #expect(try ImageReference.parse("[::1]:5000/a").isLoopback)
        #expect(try ImageReference.parse("[::1]:5000/a").hostName == "::1")
        #expect(!(try ImageReference.parse("mcr.microsoft.com/a").isLoopback))
        #expect(!(try ImageReference.parse("alpine").isLoopback))
        #expect(!(try ImageReference.parse("localhost.example.com/a").isLoopback))
    }
}

@Suite struct PlatformTests {
    @Test func parse() throws {
        #expect(try Platform.parse("linux/amd64") == Platform(os: "linux", architecture: "amd64"))
        #expect(try Platform.parse("linux/arm64/v8") == Platform(os: "linux", architecture: "arm64", variant: "v8"))
        #expect(try Platform.parse("arm64") == Platform(os: "linux", architecture: "arm64"))
        #expect(try Platform.parse("linux/x86_64").architecture == "amd64")
        #expect(try Platform.parse("linux/aarch64").architecture == "arm64")
        #expect(try Platform.parse("linux/arm/v7").description == "linux/arm/v7")
        for bad in ["", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            #expect(throws: AZLError.self, "\(bad)") { try Platform.parse(bad) }
        }
    }

    @Test func hostIsThisMachine() {
        let h = Platform.host
        #expect(h.os == "linux")
        #if arch(x86_64)
        #expect(h.architecture == "amd64")
        #elseif arch(arm64)
        #expect(h.architecture == "arm64")
        #endif
    }

    func index(_ entries: [(String, String, String?)]) throws -> IndexJSON {
        let manifests = entries.enumerated().map { i, e -> [String: Any] in
            var p: [String: Any] = ["os": e.0, "architecture": e.1]
            if let v = e.2 { p["variant"] = v }
            return ["mediaType": MediaType.ociManifest, "digest": "sha256:" + String(repeating: String(i), count: 64),
                    "size": 100 + i, "platform": p]
        }
        let data = try JSONSerialization.data(withJSONObject: ["schemaVersion": 2, "manifests": manifests])
        return try JSONDecoder().decode(IndexJSON.self, from: data)
    }

    @Test func choosesFromIndex() throws {
        let idx = try index([("linux", "amd64", nil), ("linux", "arm", "v6"), ("linux", "arm", "v7"),
                             ("linux", "arm64", "v8"), ("unknown", "unknown", nil)])
        #expect(ManifestParser.choose(idx, platform: Platform(architecture: "amd64"))?.size == 100)
        #expect(ManifestParser.choose(idx, platform: Platform(architecture: "arm64"))?.size == 103)
        #expect(ManifestParser.choose(idx, platform: Platform(architecture: "arm64", variant: "v8"))?.size == 103)
        #expect(ManifestParser.choose(idx, platform: Platform(architecture: "arm", variant: "v7"))?.size == 102)
        #expect(ManifestParser.choose(idx, platform: Platform(architecture: "arm", variant: "v6"))?.size == 101)
        #expect(ManifestParser.choose(idx, platform: Platform(architecture: "s390x")) == nil)
        #expect(ManifestParser.choose(idx, platform: Platform(os: "windows", architecture: "amd64")) == nil)
        #expect(!ManifestParser.platforms(idx).contains("unknown/unknown"))
        // arm64 without a variant in the index still satisfies arm64/v8
        let plain = try index([("linux", "arm64", nil)])
        #expect(ManifestParser.choose(plain, platform: Platform(architecture: "arm64", variant: "v8")) != nil)
    }
}

@Suite struct MediaTypeTests {
    @Test(arguments: [
        ("application/vnd.oci.image.layer.v1.tar", LayerCompression.none),
        ("application/vnd.oci.image.layer.v1.tar+gzip", .gzip),
        ("application/vnd.oci.image.layer.v1.tar+zstd", .zstd),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", .gzip),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", .gzip),
        ("application/vnd.docker.image.rootfs.diff.tar", .none),
        ("application/vnd.docker.image.rootfs.diff.tar.zstd", .zstd),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", .gzip),
    ])
    func layerTypes(_ t: String, _ c: LayerCompression) {
        #expect(LayerCompression(mediaType: t) == c)
    }

    @Test func notLayers() {
        for t in ["application/vnd.oci.image.config.v1+json", "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                  "application/vnd.oci.image.layer.v1.tar+bzip2", "application/octet-stream"] {
            #expect(LayerCompression(mediaType: t) == nil, "\(t)")
        }
    }

    @Test func acceptHeaderNamesAllFour() {
        for t in [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest] {
            #expect(MediaType.acceptManifests.contains(t))
        }
    }

    @Test func manifestKindFromBody() {
        #expect(ManifestParser.kind(contentType: "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8", body: Data()) == MediaType.dockerManifest)
        #expect(ManifestParser.kind(contentType: "application/json", body: Data(#"{"schemaVersion":2,"manifests":[]}"#.utf8)) == MediaType.ociIndex)
        #expect(ManifestParser.kind(contentType: nil, body: Data(#"{"schemaVersion":2,"config":{},"layers":[]}"#.utf8)) == MediaType.ociManifest)
        #expect(ManifestParser.kind(contentType: nil, body: Data(#"{"schemaVersion":1,"fsLayers":[]}"#.utf8)) == MediaType.dockerSchema1)
        #expect(ManifestParser.kind(contentType: "text/html", body: Data("<html>".utf8)) == nil)
    }
}

@Suite struct AuthTests {
    @Test func parsesChallenges() {
        let c = AuthChallenge.parse(#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#)
        #expect(c == [AuthChallenge(scheme: "bearer", parameters: ["realm": "https://auth.docker.io/token",
                                                                 "service": "registry.docker.io",
                                                                 "scope": "repository:library/alpine:pull"])])
        let two = AuthChallenge.parse(#"Basic realm="x y", Bearer realm="https://a/t",scope="repository:a/b:pull,push""#)
        #expect(two.map(\.scheme) == ["basic", "bearer"])
        #expect(two[0].parameters["realm"] == "x y")
        #expect(two[1].parameters["scope"] == "repository:a/b:pull,push")
        let bare = AuthChallenge.parse(#"Bearer realm=https://mcr.microsoft.com/oauth2/token,service=mcr.microsoft.com"#)
        #expect(bare.first?.parameters["realm"] == "https://mcr.microsoft.com/oauth2/token")
        #expect(bare.first?.parameters["service"] == "mcr.microsoft.com")
        let esc = AuthChallenge.parse(#"Basic realm="a \"quoted\" realm""#)
        #expect(esc.first?.parameters["realm"] == #"a "quoted" realm"#)
    }

    func write(_ json: String) throws -> String {
        let dir = NSTemporaryDirectory() + "azl-auth-\(UUID().uuidString)"
        try FS.mkdirs(dir)
        let p = dir + "/auth.json"
        try Data(json.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Remove what `write` made (the folder of each file).
    func remove(_ paths: String...) {
        for p in paths { try? FileManager.default.removeItem(atPath: (p as NSString).deletingLastPathComponent) }
    }

    func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    @Test func credentialLookupOrderAndKeys() throws {
        let first = try write(#"{"auths":{"quay.io":{"auth":"\#(b64("q:first"))"}}}"#)
        let docker = try write(#"""
        {"auths":{"https://index.docker.io/v1/":{"auth":"\#(b64("hubuser:hub:pass"))"},
                  "mcr.microsoft.com/azurelinux":{"auth":"\#(b64("ns:nspass"))"},
                  "https://mcr.microsoft.com":{"auth":"\#(b64("host:hostpass"))"},
                  "quay.io":{"auth":"\#(b64("q:second"))"},
                  "localhost:5000":{"username":"u","password":"p"}},
         "credsStore":"desktop"}
        """#)
        defer { remove(first, docker) }
        let store = CredentialStore(files: [first, "/nonexistent/auth.json", docker])
        let hub = try store.credentials(for: ImageReference.parse("alpine"))
        #expect(hub?.username == "hubuser")
        #expect(hub?.password == "hub:pass")   // only the first colon splits
        #expect(hub?.source == docker)
        #expect(try store.credentials(for: ImageReference.parse("mcr.microsoft.com/azurelinux/base/core:3.0"))?.username == "ns")
        #expect(try store.credentials(for: ImageReference.parse("mcr.microsoft.com/cbl-mariner/base/core:2.0"))?.username == "host")
        #expect(try store.credentials(for: ImageReference.parse("quay.io/a/b"))?.password == "first")
        #expect(try store.credentials(for: ImageReference.parse("localhost:5000/x"))?.password == "p")
        #expect(try store.credentials(for: ImageReference.parse("ghcr.io/x/y")) == nil)
    }

    @Test func environmentSearchList() {
        let s = CredentialStore(environment: ["HOME": "/h", "REGISTRY_AUTH_FILE": "/r/auth.json", "XDG_RUNTIME_DIR": "/run/user/1"])
        #expect(s.files == ["/r/auth.json", "/run/user/1/containers/auth.json", "/h/.config/containers/auth.json", "/h/.docker/config.json"])
        let d = CredentialStore(environment: ["HOME": "/h", "DOCKER_CONFIG": "/dc", "XDG_CONFIG_HOME": "/xc"])
        #expect(d.files == ["/xc/containers/auth.json", "/dc/config.json"])
    }

    @Test func badAuthFileIsAnErrorNamingIt() throws {
        let p = try write("{not json")
        defer { remove(p) }
        #expect {
            _ = try CredentialStore(files: [p]).credentials(for: ImageReference.parse("alpine"))
        } throws: { e in
            (e as? AZLError)?.message.contains(p) == true
        }
    }

    @Test func secretsAreNeverPrinted() {
        let c = Credentials(username: "me", password: "s3cr3t-pw", source: "/x/auth.json")
        #expect(!"\(c)".contains("s3cr3t"))
        #expect(!String(reflecting: c).contains("s3cr3t"))
        #expect("\(c)".contains("me"))
    }
}
