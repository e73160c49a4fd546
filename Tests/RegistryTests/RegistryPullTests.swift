import Core
import Foundation
@testable import Registry
import Testing
import TestSupport

/// One docker-registry for the whole suite, with the images pushed once; stopped at the end.
final class SharedRegistry: Sendable {
    let fixture: RegistryFixture
    let registry: RegistryFixture.Server
    let single: RegistryFixture.Pushed
    let docker: RegistryFixture.Pushed
    let multi: (index: RegistryFixture.Pushed, amd64: RegistryFixture.Pushed, arm64: RegistryFixture.Pushed)
    let multiDocker: (index: RegistryFixture.Pushed, amd64: RegistryFixture.Pushed, arm64: RegistryFixture.Pushed)
    let layers: RegistryFixture.Pushed
    let zstd: RegistryFixture.Pushed
    let plain: RegistryFixture.Pushed

    init() throws {
        let f = try RegistryFixture()
        do {
            fixture = f
            registry = try f.startRegistry()
            single = try f.pushAlpine(to: registry, repo: "test/alpine", tag: "3.20")
            docker = try f.pushAlpine(to: registry, repo: "test/alpine-docker", tag: "3.20", format: .docker)
            multi = try f.pushMultiArch(to: registry, repo: "test/multi", tag: "latest")
            multiDocker = try f.pushMultiArch(to: registry, repo: "test/multi-docker", tag: "latest", format: .docker)
            layers = try f.pushMultiLayer(to: registry, repo: "test/layers", tag: "1")
            zstd = try f.pushAlpine(to: registry, repo: "test/zstd", tag: "1", compression: .zstd)
            plain = try f.pushAlpine(to: registry, repo: "test/plain", tag: "1", compression: .none)
        } catch {
            f.stop()
            throw error
        }
    }

    @TaskLocal static var current: SharedRegistry?
}

/// Suite trait: start the registry and push the images before the suite, stop it after.
struct WithRegistry: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        if let why = RegistryFixture.unavailableReason() {
            unavailable("RegistryPullTests: \(why)")
            return
        }
        let shared = try SharedRegistry()
        defer { shared.fixture.stop() }
        try await SharedRegistry.$current.withValue(shared) { try await function() }
    }
}

/// Collects progress events from concurrent download tasks.
final class Events: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [PullEvent] = []
    func add(_ e: PullEvent) { lock.withLock { list.append(e) } }
    var all: [PullEvent] { lock.withLock { list } }
    var handler: @Sendable (PullEvent) -> Void { { [self] e in self.add(e) } }
}

/// A fresh folder inside the suite's fixture folder (removed with it when the suite ends).
func tempDir(_ name: String) throws -> String {
    let parent = SharedRegistry.current.map { $0.fixture.base + "/sinks" } ?? NSTemporaryDirectory()
    try FS.mkdirs(parent)
    var template = Array("\(parent)/azl-regtest-\(name)-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else { throw AZLError.errno(errno, "mkdtemp", path: "/tmp") }
    return String(cString: p)
}

/// A client that ignores this machine's auth files.
func client(authFile: String? = nil) -> RegistryClient {
    RegistryClient(credentialStore: CredentialStore(files: authFile.map { [$0] } ?? []))
}

func fastOptions(_ platform: Platform = .host, events: Events? = nil, retries: Int = 4) -> PullOptions {
    PullOptions(platform: platform, retries: retries, retryDelay: 0.05, progress: events?.handler)
}

@Suite(.serialized, WithRegistry())
struct RegistryPullTests {
    var shared: SharedRegistry { SharedRegistry.current! }
    var fixture: RegistryFixture { shared.fixture }

    func ref(_ s: String) throws -> ImageReference { try ImageReference.parse(s) }

    /// Every blob in the sink matches its name; returns the digests.
    func verifySink(_ sink: DirectoryBlobSink) throws -> [Digest] {
        let ds = sink.digests()
        for d in ds {
            #expect(try fixture.sha256File(sink.path(for: d)) == d.description, "blob \(d) in the sink matches its digest")
        }
        return ds
    }

    @Test func pullsASingleImageWithItsConfig() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("single"))
        let events = Events()
        let img = try await client().pull(ref(shared.single.reference), options: fastOptions(events: events), blobStore: sink)
        #expect(img.manifestDigest.description == shared.single.manifestDigest)
        #expect(img.indexDigest == nil)
        #expect(img.manifestMediaType == MediaType.ociManifest)
        #expect(Digest.of(img.manifest) == img.manifestDigest)
        #expect(img.config == ImageConfig(env: RegistryFixture.imageEnv, workingDir: RegistryFixture.imageWorkingDir,
                                              user: RegistryFixture.imageUser, entrypoint: RegistryFixture.imageEntrypoint,
                                              cmd: RegistryFixture.imageCmd))
        #expect(img.platform.architecture == Platform.host.architecture)
        #expect(img.diffIDs.map(\.description) == shared.single.diffIDs)
        #expect(img.layers.count == 1)
        let layer = try #require(img.layers.first)
        #expect(layer.compression == .gzip)
        #expect(layer.mediaType == "application/vnd.oci.image.layer.v1.tar+gzip")
        #expect(!layer.cached)
        #expect(try fixture.sha256File(layer.blobPath) == layer.digest.description)
        // The layer is the real Alpine tarball's content: its diff_id is the sha256 of the uncompressed tar.
        #expect(try fixture.sha256Output("gzip -dc '\(layer.blobPath)'") == img.diffIDs[0].description)
        #expect(try fixture.sha256File(img.configPath) == img.configDigest.description)
        #expect(Set(try verifySink(sink)) == Set([layer.digest, img.configDigest]))
        #expect(sink.partials().isEmpty)
        let ev = events.all
        #expect(ev.contains(.resolved(manifest: img.manifestDigest, layers: 1, platform: Platform.host.description, index: nil)))
        #expect(ev.contains(.layerStart(layer.digest, size: layer.size)))
        #expect(ev.contains(.layerProgress(layer.digest, done: layer.size, total: layer.size)))
        #expect(ev.contains(.layerDone(layer.digest, cached: false)))
    }

    @Test func secondPullDownloadsNoBlob() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("second"))
        let r = try ref("\(proxy.host)/test/layers:1")
        let first = try await client().pull(r, options: fastOptions(), blobStore: sink)
        #expect(first.layers.count == 3)
        let blobGETs = RegistryFixture.requests(proxy).filter { $0.isBlob && $0.method == "GET" }.count
        #expect(blobGETs == 4)   // three layers and the config
        let events = Events()
        let second = try await client().pull(r, options: fastOptions(events: events), blobStore: sink)
        #expect(second.manifestDigest == first.manifestDigest)
        #expect(second.layers.allSatisfy { $0.cached })
        #expect(RegistryFixture.requests(proxy).filter { $0.isBlob }.count == blobGETs, "no blob requested again")
        #expect(events.all.filter { if case .layerDone(_, true) = $0 { return true }; return false }.count == 3)
    }

    /// The store says it has the unpacked tree: only the manifest and the config are fetched.
    @Test func noLayerIsFetchedWhenTheCallerHasWhatTheyUnpackTo() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("notneeded"))
        let events = Events()
        let asked = Events()
        var o = fastOptions(events: events)
        o.layersNeeded = { diffIDs in
            asked.add(.retrying(what: diffIDs.map(\.description).joined(separator: ","), attempt: 0, reason: ""))
            return false
        }
        let img = try await client().pull(ref("\(proxy.host)/test/layers:1"), options: o, blobStore: sink)
        #expect(img.layers.count == 3 && img.layers.allSatisfy { $0.cached && $0.blobPath.isEmpty })
        #expect(asked.all == [.retrying(what: shared.layers.diffIDs.joined(separator: ","), attempt: 0, reason: "")])
        let blobs = RegistryFixture.requests(proxy).filter(\.isBlob)
        #expect(blobs.map(\.blobDigest) == [img.configDigest.description], "only the config: \(blobs.map(\.path))")
        #expect(events.all.filter { if case .layerDone(_, true) = $0 { return true }; return false }.count == 3)
        #expect(sink.digests() == [img.configDigest])
    }

    @Test func pullsADockerSchema2Image() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("docker"))
        let img = try await client().pull(ref(shared.docker.reference), options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == shared.docker.manifestDigest)
        #expect(img.manifestMediaType == MediaType.dockerManifest)
        #expect(img.layers.map(\.mediaType) == ["application/vnd.docker.image.rootfs.diff.tar.gzip"])
        #expect(img.layers.map(\.compression) == [.gzip])
        #expect(img.config.env == RegistryFixture.imageEnv)
        #expect(img.diffIDs.map(\.description) == shared.docker.diffIDs)
    }

    @Test(arguments: [RegistryFixture.Format.oci, .docker])
    func choosesThePlatformFromAnIndex(_ format: RegistryFixture.Format) async throws {
        let m = format == .oci ? shared.multi : shared.multiDocker
        let sink = try DirectoryBlobSink(directory: tempDir("multi"))
        let amd = try await client().pull(ref(m.index.reference), options: fastOptions(try .parse("linux/amd64")), blobStore: sink)
        #expect(amd.indexDigest?.description == m.index.manifestDigest)
        #expect(amd.repoDigest.description == m.index.manifestDigest)
        #expect(amd.manifestDigest.description == m.amd64.manifestDigest)
        #expect(amd.platform.architecture == "amd64")
        #expect(amd.diffIDs.map(\.description) == m.amd64.diffIDs)
        let arm = try await client().pull(ref(m.index.reference), options: fastOptions(try .parse("linux/arm64/v8")), blobStore: sink)
        #expect(arm.manifestDigest.description == m.arm64.manifestDigest)
        #expect(arm.platform.architecture == "arm64")
        #expect(arm.diffIDs.map(\.description) == m.arm64.diffIDs)
        #expect(arm.layers[0].digest != amd.layers[0].digest)
        // The default is this machine.
        let native = try await client().pull(ref(m.index.reference), options: fastOptions(), blobStore: sink)
        #expect(native.platform.architecture == Platform.host.architecture)
        // A platform the index does not have: a clear error listing what it has.
        await #expect {
            _ = try await client().pull(ref(m.index.reference), options: fastOptions(try .parse("linux/s390x")), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .notFound && e.message.contains("linux/s390x") && e.message.contains(m.index.reference)
                && (e.hint ?? "").contains("linux/amd64") && (e.hint ?? "").contains("linux/arm64/v8")
                && !(e.hint ?? "").contains("unknown")
        }
    }

    @Test func pullsByDigest() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("bydigest"))
        let r = try ref("\(shared.registry.host)/test/multi@\(shared.multi.arm64.manifestDigest)")
        let img = try await client().pull(r, options: fastOptions(try .parse("linux/arm64")), blobStore: sink)
        #expect(img.manifestDigest.description == shared.multi.arm64.manifestDigest)
        // By index digest, with a tag too (the digest wins).
        let byIndex = try await client().pull(ref("\(shared.registry.host)/test/multi:whatever@\(shared.multi.index.manifestDigest)"),
                                              options: fastOptions(try .parse("linux/amd64")), blobStore: sink)
        #expect(byIndex.manifestDigest.description == shared.multi.amd64.manifestDigest)
        let missing = "sha256:" + String(repeating: "0", count: 64)
        await #expect {
            _ = try await client().pull(ref("\(shared.registry.host)/test/multi@\(missing)"), options: fastOptions(), blobStore: sink)
        } throws: { e in
            (e as? AZLError)?.kind == .notFound && (e as? AZLError)?.message.contains(missing) == true
        }
    }

    @Test func pullsAMultiLayerImageWithWhiteouts() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("layers"))
        let img = try await client().pull(ref(shared.layers.reference), options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == shared.layers.manifestDigest)
        #expect(img.layers.count == 3)
        #expect(img.diffIDs.map(\.description) == shared.layers.diffIDs)
        #expect(Set(img.diffIDs).count == 3)
        for (layer, diffID) in zip(img.layers, img.diffIDs) {
            #expect(layer.compression == .gzip)
            #expect(try fixture.sha256Output("gzip -dc '\(layer.blobPath)'") == diffID.description)
        }
        let l2 = try fixture.sh(["/usr/bin/tar", "-tzf", img.layers[1].blobPath])
        #expect(l2.contains("etc/.wh.motd"))
        #expect(l2.contains("etc/apk/keys/.wh."))
        #expect(l2.contains("etc/apk/keys/azl.pub"))
        let l3 = try fixture.sh(["/usr/bin/tar", "-tzf", img.layers[2].blobPath])
        #expect(l3.contains("etc/ssl/.wh..wh..opq"))
        #expect(l3.contains("etc/ssl/azl-opaque"))
    }

    @Test func pullsZstdAndUncompressedLayers() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("zstd"))
        let z = try await client().pull(ref(shared.zstd.reference), options: fastOptions(), blobStore: sink)
        #expect(z.layers.map(\.mediaType) == ["application/vnd.oci.image.layer.v1.tar+zstd"])
        #expect(z.layers.map(\.compression) == [.zstd])
        #expect(try fixture.sha256Output("zstd -dcq '\(z.layers[0].blobPath)'") == z.diffIDs[0].description)
        #expect(z.diffIDs.map(\.description) == shared.zstd.diffIDs)
        let p = try await client().pull(ref(shared.plain.reference), options: fastOptions(), blobStore: sink)
        #expect(p.layers.map(\.mediaType) == ["application/vnd.oci.image.layer.v1.tar"])
        #expect(p.layers.map(\.compression) == [LayerCompression.none])
        #expect(p.layers[0].digest == p.diffIDs[0])
        #expect(try fixture.sha256File(p.layers[0].blobPath) == p.diffIDs[0].description)
    }

    @Test func missingImageIsAClearError() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("missing"))
        for name in ["test/alpine:nope", "test/nosuchrepo:1"] {
            let r = "\(shared.registry.host)/\(name)"
            await #expect {
                _ = try await client().pull(ref(r), options: fastOptions(), blobStore: sink)
            } throws: { e in
                guard let e = e as? AZLError else { return false }
                return e.kind == .notFound && e.message.contains(r) && (e.message.contains("MANIFEST_UNKNOWN") || e.message.contains("NAME_UNKNOWN"))
            }
        }
        #expect(sink.digests().isEmpty)
    }

    @Test func unreachableRegistryIsAClearError() async throws {
        let port = try RegistryFixture.freePort()
        let sink = try DirectoryBlobSink(directory: tempDir("unreachable"))
        let r = "127.0.0.1:\(port)/a/b:1"
        let started = Date()
        defer { #expect(Date().timeIntervalSince(started) < 15, "a refused connection is reported at once, not at a deadline") }
        await #expect {
            _ = try await client().pull(ref(r), options: fastOptions(retries: 1), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .registry && e.message.contains(r) && e.message.contains("\(port)")
        }
    }

    @Test func basicAuthWithHtpasswd() async throws {
        let auth = RegistryFixture.RegistryAuth(user: "azl", password: "pa55-w0rd-secret")
        let reg = try fixture.startRegistry(auth: auth)
        defer { fixture.stop(reg) }
        let pushed = try fixture.pushAlpine(to: reg, repo: "private/alpine", tag: "1", auth: auth)
        let r = try ref(pushed.reference)
        let sink = try DirectoryBlobSink(directory: tempDir("basic"))
        // Anonymous: refused, naming the reference and where credentials go.
        await #expect {
            _ = try await client().pull(r, options: fastOptions(), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .registry && e.message.contains(pushed.reference) && (e.hint ?? "").contains("REGISTRY_AUTH_FILE")
        }
        // Wrong password: denied, and the password appears nowhere in the error.
        let wrong = try fixture.writeAuthFile([reg.host: .init(user: "azl", password: "wrong-secret-value")])
        await #expect {
            _ = try await client(authFile: wrong).pull(r, options: fastOptions(), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.message.contains("denied") && e.message.contains(pushed.reference)
                && !"\(e)".contains("wrong-secret-value") && !"\(e)".contains("d3JvbmctC2")
        }
        #expect(sink.digests().isEmpty)
        // Right credentials from $REGISTRY_AUTH_FILE (the environment search list).
        let good = try fixture.writeAuthFile([reg.host: auth])
        let c = RegistryClient(environment: ["HOME": "/nonexistent", "REGISTRY_AUTH_FILE": good])
        let img = try await c.pull(r, options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == pushed.manifestDigest)
        // ... and from a docker config.json under $DOCKER_CONFIG with an https:// key.
        let dockerCfg = try fixture.writeAuthFile(["https://\(reg.host)/v1/": auth], name: "config.json")
        let c2 = RegistryClient(environment: ["HOME": "/nonexistent", "DOCKER_CONFIG": (dockerCfg as NSString).deletingLastPathComponent])
        let sink2 = try DirectoryBlobSink(directory: tempDir("basic2"))
        #expect(try await c2.pull(r, options: fastOptions(), blobStore: sink2).manifestDigest == img.manifestDigest)
    }

    @Test func bearerTokenFlowAnonymous() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(bearer: true))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("bearer"))
        let img = try await client().pull(ref("\(proxy.host)/test/layers:1"), options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == shared.layers.manifestDigest)
        let log = RegistryFixture.requests(proxy)
        let tokens = log.filter { $0.isToken && $0.status == 200 }
        #expect(!tokens.isEmpty)
        #expect(tokens.allSatisfy { $0.scopes == ["test/layers"] && $0.service == "azl-test" && $0.auth == "none" })
        // Everything after the token carried it; blobs and manifests all succeeded.
        let api = log.filter { !$0.isToken && $0.path != "/v2/" }
        #expect(api.allSatisfy { $0.auth == "bearer" && $0.status == 200 })
        #expect(api.filter(\.isBlob).count == 4)
    }

    @Test func bearerTokenWithCredentials() async throws {
        let auth = RegistryFixture.RegistryAuth(user: "tokenuser", password: "t0ken-secret")
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(bearer: true, tokenAuth: auth))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("bearercreds"))
        let r = try ref("\(proxy.host)/test/alpine:3.20")
        await #expect {
            _ = try await client().pull(r, options: fastOptions(), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .registry && e.message.contains("denied") && e.message.contains(r.description)
        }
        let file = try fixture.writeAuthFile([proxy.host: auth])
        let img = try await client(authFile: file).pull(r, options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == shared.single.manifestDigest)
        #expect(RegistryFixture.requests(proxy).contains { $0.isToken && $0.status == 200 && $0.auth == "basic" })
    }

    /// Docker's `identitytoken` (an OAuth2 refresh token) is exchanged at the token realm with
    /// `POST grant_type=refresh_token` (the Docker token spec); the token endpoint issues no
    /// token to a GET. The refresh token itself is never sent to the registry.
    @Test func identityTokenIsExchangedWithARefreshTokenPOST() async throws {
        let refresh = "azl-refresh-\(UUID().uuidString)"
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(bearer: true, refreshToken: refresh))
        defer { fixture.stop(proxy) }
        // The endpoint works as the spec says (curl): the POST gets a token, a GET does not.
        let post = try fixture.sh(["/usr/bin/curl", "-sS", "-w", " %{http_code}", "-X", "POST",
                                   "--data-urlencode", "grant_type=refresh_token", "--data-urlencode", "refresh_token=\(refresh)",
                                   "--data-urlencode", "service=azl-test", "--data-urlencode", "client_id=curl",
                                   "--data-urlencode", "scope=repository:test/alpine:pull", "http://\(proxy.host)/token"])
        #expect(post.contains("access_token") && post.hasSuffix(" 200"), "\(post)")
        let sink = try DirectoryBlobSink(directory: tempDir("identitytoken"))
        let file = try fixture.writeIdentityTokenAuthFile([proxy.host: refresh])
        let img = try await client(authFile: file).pull(ref("\(proxy.host)/test/alpine:3.20"), options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == shared.single.manifestDigest)
        let log = RegistryFixture.requests(proxy)
        #expect(log.contains { $0.isToken && $0.method == "POST" && $0.grantType == "refresh_token" && $0.status == 200 },
                "\(log.map { "\($0.method) \($0.path) \($0.status)" })")
        #expect(log.filter { !$0.isToken }.allSatisfy { $0.auth != "basic" })
    }

    @Test func followsRedirectsWithoutLeakingAuthorization() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(bearer: true, redirectBlobs: true))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("redirect"))
        let img = try await client().pull(ref("\(proxy.host)/test/layers:1"), options: fastOptions(), blobStore: sink)
        #expect(img.layers.count == 3)
        let log = RegistryFixture.requests(proxy)
        let redirects = log.filter { $0.status == 307 }
        let storage = log.filter { $0.port == proxy.storagePort }
        #expect(redirects.count == 4)
        #expect(storage.count == 4)
        #expect(redirects.allSatisfy { $0.auth == "bearer" })
        #expect(storage.allSatisfy { $0.auth == "none" && $0.status == 200 }, "the registry's token must not go to another origin")
        _ = try verifySink(sink)
    }

    /// Docker Hub and MCR send blobs to a CDN on another host name: the redirect is followed
    /// (Range and all), and the registry's token is not sent there.
    @Test func redirectToAnotherHostGetsNoAuthorization() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(bearer: true, redirectBlobs: true, redirectHost: "localhost"))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("redirecthost"))
        let img = try await client().pull(ref("\(proxy.host)/test/layers:1"), options: fastOptions(), blobStore: sink)
        #expect(img.layers.count == 3)
        let log = RegistryFixture.requests(proxy)
        let redirects = log.filter { $0.status == 307 }
        let storage = log.filter { $0.port == proxy.storagePort }
        #expect(redirects.count == 4 && redirects.allSatisfy { $0.auth == "bearer" && $0.host == proxy.host })
        #expect(storage.count == 4)
        #expect(storage.allSatisfy { $0.host == "localhost:\(proxy.storagePort!)" }, "\(storage.map(\.host))")
        #expect(storage.allSatisfy { $0.auth == "none" && $0.status == 200 }, "the registry's token must not go to another host")
        _ = try verifySink(sink)
    }

    @Test func retriesAManifest500() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(failManifestsFirst: 2))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("500"))
        let events = Events()
        let img = try await client().pull(ref("\(proxy.host)/test/alpine:3.20"), options: fastOptions(events: events), blobStore: sink)
        #expect(img.manifestDigest.description == shared.single.manifestDigest)
        #expect(RegistryFixture.requests(proxy).filter { $0.status == 500 }.count == 2)
        let retries = events.all.compactMap { e -> String? in if case .retrying(let what, _, let why) = e { return what + " " + why }; return nil }
        #expect(retries.count == 2 && retries.allSatisfy { $0.contains("manifest") && $0.contains("500") }, "\(retries)")
    }

    @Test func missingBlobIsAClearError() async throws {
        let pushed = try fixture.pushAlpine(to: shared.registry, repo: "test/blobgone", tag: "1")
        let layer = try #require(fixture.layerDigests(shared.registry, repo: "test/blobgone", reference: "1").first)
        try fixture.deleteBlob(shared.registry, repo: "test/blobgone", digest: layer)
        let sink = try DirectoryBlobSink(directory: tempDir("blobgone"))
        await #expect {
            _ = try await client().pull(ref(pushed.reference), options: fastOptions(), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .notFound && e.message.contains(pushed.reference) && e.message.contains(layer)
                && e.message.contains("BLOB_UNKNOWN")
        }
        #expect(!sink.digests().contains { $0.description == layer })
        #expect(sink.partials().isEmpty, "no empty partial file left: \(sink.partials())")
    }

    @Test func retriesOn503() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(failFirst: 2))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("503"))
        let events = Events()
        let img = try await client().pull(ref("\(proxy.host)/test/alpine:3.20"), options: fastOptions(events: events), blobStore: sink)
        #expect(img.manifestDigest.description == shared.single.manifestDigest)
        #expect(RegistryFixture.requests(proxy).filter { $0.status == 503 }.count == 2)
        #expect(events.all.filter { if case .retrying = $0 { return true }; return false }.count == 2)
        // Without retries, the 503 is an error naming the reference.
        let proxy2 = try fixture.startProxy(upstream: shared.registry, .init(failFirst: 1))
        defer { fixture.stop(proxy2) }
        let r2 = "\(proxy2.host)/test/alpine:3.20"
        await #expect {
            _ = try await client().pull(ref(r2), options: fastOptions(retries: 0), blobStore: try DirectoryBlobSink(directory: tempDir("503b")))
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .registry && e.message.contains(r2) && e.message.contains("503")
        }
    }

    @Test func resumesACutTransferWithRange() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(cutOnce: true))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("cut"))
        let events = Events()
        let img = try await client().pull(ref("\(proxy.host)/test/alpine:3.20"), options: fastOptions(events: events), blobStore: sink)
        let layer = try #require(img.layers.first)
        #expect(try fixture.sha256File(layer.blobPath) == layer.digest.description)
        let log = RegistryFixture.requests(proxy).filter { $0.blobDigest == layer.digest.description }
        let cut = try #require(log.first { $0.cut == true })
        let half = try #require(cut.sent)
        #expect(half > 0 && Int64(half) < layer.size)
        // The client resumed from what it had received (at most what the proxy sent before the cut).
        let resumedFrom = events.all.compactMap { e -> Int64? in
            if case .resumed(let d, let from) = e, d == layer.digest { return from }
            return nil
        }
        #expect(resumedFrom.count == 1)
        let from = try #require(resumedFrom.first)
        #expect(from > 0 && from <= Int64(half))
        #expect(log.contains { $0.range == "bytes=\(from)-" && $0.status == 206 }, "a Range request from byte \(from): \(log)")
        #expect(log.filter { $0.status == 200 && $0.cut != true }.isEmpty, "never downloaded from the start again")
        #expect(sink.partials().isEmpty)
    }

    @Test func resumesAPartialLeftByAnEarlierPull() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(cutOnce: true))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("cut2"))
        let r = try ref("\(proxy.host)/test/alpine:3.20")
        // No retries: the cut ends the first pull, leaving the partial file.
        await #expect {
            _ = try await client().pull(r, options: fastOptions(retries: 0), blobStore: sink)
        } throws: { e in
            (e as? AZLError)?.kind == .registry && (e as? AZLError)?.message.contains(r.description) == true
        }
        let partials = sink.partials()
        #expect(partials.count == 1)
        let partial = try #require(partials.first)
        var st = stat()
        #expect(stat(sink.partialDirectory + "/" + partial, &st) == 0)
        #expect(st.st_size > 0)
        let img = try await client().pull(r, options: fastOptions(retries: 0), blobStore: sink)
        let layer = try #require(img.layers.first)
        #expect(layer.digest.hex == partial)
        #expect(RegistryFixture.requests(proxy).contains { $0.range == "bytes=\(st.st_size)-" && $0.status == 206 })
        #expect(try fixture.sha256File(layer.blobPath) == layer.digest.description)
        #expect(sink.partials().isEmpty)
    }

    @Test func rejectsACorruptedBlobAndKeepsNothingOfIt() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("corrupt"))
        // Something already in the cache, which must stay as it is.
        let before = try await client().pull(ref(shared.single.reference), options: fastOptions(), blobStore: sink)
        let kept = try verifySink(sink)
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(corrupt: true))
        defer { fixture.stop(proxy) }
        // The arm64 image: its 3.9 MB layer is not in the sink yet (the proxy corrupts blobs > 64 KiB).
        let r = "\(proxy.host)/test/multi:latest-arm64"
        await #expect {
            _ = try await client().pull(ref(r), options: fastOptions(try .parse("linux/arm64")), blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .digestMismatch && e.message.contains(r) && e.message.contains("sha256:")
        }
        let corrupted = Set(RegistryFixture.requests(proxy).filter { $0.corrupted == true }.compactMap(\.blobDigest))
        #expect(!corrupted.isEmpty)
        let after = try verifySink(sink)
        #expect(Set(kept).isSubset(of: Set(after)))
        #expect(corrupted.isDisjoint(with: Set(after.map(\.description))), "no corrupted blob was kept")
        #expect(sink.partials().isEmpty, "no partial download of it was kept")
        #expect(try fixture.sha256File(before.layers[0].blobPath) == before.layers[0].digest.description)
    }

    @Test func rejectsAManifestThatDoesNotMatchTheDigestItWasAskedBy() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(tamperManifests: true))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("tampered"))
        // Asked by digest; and the platform's manifest an index (by tag, untouched) names by digest.
        for (r, platform) in [("\(proxy.host)/test/multi@\(shared.multi.arm64.manifestDigest)", "linux/arm64"),
                              ("\(proxy.host)/test/multi:latest", "linux/amd64")] {
            await #expect {
                _ = try await client().pull(ref(r), options: fastOptions(try .parse(platform)), blobStore: sink)
            } throws: { e in
                guard let e = e as? AZLError else { return false }
                return e.kind == .digestMismatch && e.message.contains(r) && e.message.contains("does not match")
            }
        }
        #expect(RegistryFixture.requests(proxy).filter { $0.tampered == true }.count == 2, "\(RegistryFixture.requests(proxy).map(\.path))")
        #expect(!RegistryFixture.requests(proxy).contains { $0.isBlob }, "nothing fetched past a refused manifest")
        #expect(sink.digests().isEmpty && sink.partials().isEmpty)
    }

    @Test func twoPullsOfTheSameImageAtOnce() async throws {
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("concurrent"))
        let r = try ref("\(proxy.host)/test/layers:1")
        async let a = client().pull(r, options: fastOptions(), blobStore: sink)
        async let b = client().pull(r, options: fastOptions(), blobStore: sink)
        let (x, y) = try await (a, b)
        #expect(x.manifestDigest == y.manifestDigest)
        #expect(x.layers.map(\.digest) == y.layers.map(\.digest))
        #expect(x.layers.map(\.blobPath) == y.layers.map(\.blobPath))
        // Each blob was downloaded once: the other pull waited for it and found it in the sink.
        let gets = RegistryFixture.requests(proxy).filter { $0.isBlob && $0.method == "GET" && $0.status == 200 }
        #expect(gets.count == 4)
        #expect(Set(gets.compactMap(\.blobDigest)).count == 4)
        #expect(zip(x.layers, y.layers).allSatisfy { $0.cached != $1.cached })
        #expect(try verifySink(sink).count == 4)
        #expect(sink.partials().isEmpty)
    }

    /// Layers download in parallel, at most `maxParallel` at once (the default, which the CLI
    /// uses, and a smaller bound). The proxy holds each blob GET 300 ms and logs how many blob
    /// GETs it was answering when each arrived; the maximum is the client's concurrency.
    @Test(arguments: [2, PullOptions().maxParallel])
    func layersDownloadInParallelWithinTheBound(_ bound: Int) async throws {
        #expect(PullOptions().maxParallel == 3, "the documented default (docs/registry.md)")
        let layerCount = 6
        let pushed = try fixture.pushManyLayers(to: shared.registry, repo: "test/many", tag: "bound-\(bound)", count: layerCount)
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(delayBlobsMs: 300))
        defer { fixture.stop(proxy) }
        let sink = try DirectoryBlobSink(directory: tempDir("parallel"))
        var o = fastOptions()
        o.maxParallel = bound
        let img = try await client().pull(ref("\(proxy.host)/test/many:bound-\(bound)"), options: o, blobStore: sink)
        #expect(img.manifestDigest.description == pushed.manifestDigest)
        #expect(img.diffIDs.map(\.description) == pushed.diffIDs)
        #expect(img.layers.count == layerCount && img.layers.allSatisfy { !$0.cached })
        let gets = RegistryFixture.requests(proxy).filter { $0.isBlob && $0.method == "GET" }
        #expect(gets.count == layerCount + 1 && gets.allSatisfy { $0.status == 200 && $0.inFlight != nil },
                "one GET per layer and the config: \(gets.map { "\($0.path) \($0.status)" })")
        let peak = gets.compactMap(\.inFlight).max() ?? 0
        #expect(peak > 1, "layers were downloaded one at a time: \(gets.compactMap(\.inFlight))")
        #expect(peak <= bound, "more than \(bound) blob GETs at once: \(gets.compactMap(\.inFlight))")
        #expect(try verifySink(sink).count == layerCount + 1)
        #expect(sink.partials().isEmpty)
    }

    @Test func synchronousWrapper() throws {
        let sink = try DirectoryBlobSink(directory: tempDir("sync"))
        let img = try client().pullSync(ref(shared.single.reference), options: fastOptions(), blobStore: sink)
        #expect(img.manifestDigest.description == shared.single.manifestDigest)
        #expect(throws: AZLError.self) {
            _ = try client().pullSync(ref("\(shared.registry.host)/test/none:1"), options: fastOptions(), blobStore: sink)
        }
    }

    /// Plain HTTP only for loopback or with tlsVerify=false: the same registry reached through a
    /// non-loopback address is refused over HTTP unless TLS verification is off.
    @Test func plainHTTPOnlyForLoopbackOrWhenTLSVerifyIsOff() async throws {
        guard let ip = RegistryPullTests.nonLoopbackIPv4() else {
            // The machine's network, not something CI installs: said, not a failure.
            notApplicableHere("plainHTTPOnlyForLoopbackOrWhenTLSVerifyIsOff: no non-loopback IPv4 address on this machine")
            return
        }
        let reg = try fixture.startRegistry(listenAll: true)
        defer { fixture.stop(reg) }
        _ = try fixture.pushAlpine(to: reg, repo: "test/alpine", tag: "1")
        let r = try ref("\(ip):\(reg.port)/test/alpine:1")
        let sink = try DirectoryBlobSink(directory: tempDir("tls"))
        var strict = fastOptions(retries: 0)
        strict.connectTimeout = 3   // a TLS hello to a plain-HTTP server gets no answer
        await #expect {
            _ = try await client().pull(r, options: strict, blobStore: sink)
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .registry && e.message.contains(r.description)
        }
        #expect(sink.digests().isEmpty)
        var o = fastOptions()
        o.connectTimeout = 3
        o.tlsVerify = false
        let img = try await client().pull(r, options: o, blobStore: sink)
        #expect(img.layers.count == 1)
    }

    static func nonLoopbackIPv4() -> String? { RegistryFixture.nonLoopbackIPv4() }
}
