import Core
import Foundation

/// A real OCI registry for tests: Debian's `docker-registry` (distribution v2) on 127.0.0.1,
/// real images pushed with `skopeo` (built with `umoci` from the distro tarballs in
/// ../shared/rootfs), and a Python proxy in front of it for bearer tokens, redirects to another
/// origin, a transfer cut halfway, a corrupted byte, tampered manifests, 503s, delayed blobs (counted
/// in flight) and an OAuth2 refresh-token token endpoint.
///
/// Everything lives under one temp folder; `stop()` (or deinit) ends every process started.
/// Images are built once per fixture and cached in an OCI layout there.
public final class RegistryFixture: @unchecked Sendable {
    /// The tools it needs, each with its Debian package.
    public static let tools: [(path: String, package: String)] = [
        ("/usr/bin/docker-registry", "docker-registry"),
        ("/usr/bin/skopeo", "skopeo"),
        ("/usr/bin/umoci", "umoci"),
        ("/usr/bin/htpasswd", "apache2-utils"),
        ("/usr/bin/python3", "python3"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/zstd", "zstd"),
        ("/usr/bin/tar", "tar"),
        ("/usr/bin/xz", "xz-utils"),
    ]

    /// Why the fixture cannot run here, or nil.
    public static func unavailableReason() -> String? {
        let missing = tools.filter { !FileManager.default.isExecutableFile(atPath: $0.path) }
        if !missing.isEmpty {
            return "missing " + missing.map { "\($0.path) (apt-get install \($0.package))" }.joined(separator: ", ")
        }
        for r in [RealRootfs.alpineX86, .alpineArm] where !FS.exists(r.path) {
            return "missing real rootfs tarball \(r.path)"
        }
        return nil
    }

    public let base: String
    let lock = NSLock()
    /// umoci layouts are not safe for concurrent writers: one build or push at a time.
    let buildLock = NSRecursiveLock()
    var processes: [Process] = []
    var built: Set<String> = []
    var counter = 0

    public init() throws {
        if let why = RegistryFixture.unavailableReason() { throw AZLError(.notFound, "registry fixture unavailable: \(why)") }
        var template = Array("/tmp/azl-registry-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw AZLError.errno(errno, "mkdtemp", path: "/tmp") }
        base = String(cString: p)
        chmod(base, 0o755)
        try FS.mkdirs(base + "/work")
        // The proxy (Tests/RegistryTests/Fixtures/registry_proxy.py), copied where the test user can read it.
        try FileManager.default.copyItem(atPath: RealRootfs.packageRoot + "/Tests/RegistryTests/Fixtures/registry_proxy.py", toPath: base + "/proxy.py")
        try sh(["/usr/bin/umoci", "init", "--layout", base + "/oci"])
    }

    deinit { stop() }

    /// Stop every registry and proxy this fixture started (by their pids), and remove its folder.
    public func stop() {
        let procs = lock.withLock { () -> [Process] in let p = processes; processes = []; return p }
        for p in procs { RegistryFixture.kill(p) }
        try? FS.removeTree(base)
    }

    /// Stop one server (a registry or proxy) of this fixture.
    public func stop(_ server: Server) {
        let p = lock.withLock { () -> Process? in
            guard let i = processes.firstIndex(where: { $0.processIdentifier == server.pid }) else { return nil }
            return processes.remove(at: i)
        }
        if let p { RegistryFixture.kill(p) }
    }

    /// SIGKILL and wait (bounded) until Foundation has reaped it. Not SIGTERM: children of the
    /// test runner inherit its blocked-signal mask, and `waitUntilExit` spins off the main thread.
    static func kill(_ p: Process) {
        guard p.isRunning else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        for _ in 0..<200 where p.isRunning { usleep(10_000) }
    }

    // MARK: servers

    /// A server the fixture started.
    public struct Server: Sendable, CustomStringConvertible {
        /// `127.0.0.1:PORT`, the registry part of an image reference.
        public let host: String
        public let port: Int
        /// The proxy's request log (JSON lines), for proxies.
        public let logPath: String?
        /// The second port a redirecting proxy sends blob downloads to (another origin).
        public let storagePort: Int?
        public let pid: Int32
        public var description: String { host }

        /// `HOST/REPO:TAG` on this server.
        public func reference(_ repoAndTag: String) -> String { host + "/" + repoAndTag }
    }

    public struct RegistryAuth: Sendable {
        public var user: String
        public var password: String
        public init(user: String, password: String) { self.user = user; self.password = password }
    }

    /// Start `docker-registry` on a free port (127.0.0.1, or every interface with `listenAll`),
    /// optionally behind htpasswd basic auth (bcrypt). Returns once it accepts connections.
    public func startRegistry(auth: RegistryAuth? = nil, listenAll: Bool = false) throws -> Server {
        let n = nextID()
        let dir = base + "/registry-\(n)"
        try FS.mkdirs(dir + "/data")
        let port = try RegistryFixture.freePort()
        var yaml = """
        version: 0.1
        log:
          level: warn
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: \(dir)/data
          delete:
            enabled: true
        http:
          addr: \(listenAll ? "0.0.0.0" : "127.0.0.1"):\(port)
          secret: azl-test-secret-\(n)

        """
        if let auth {
            let r = Subprocess.run(["/usr/bin/htpasswd", "-Bbn", auth.user, auth.password])
            guard r.status == 0 else { throw AZLError(.internal, "htpasswd failed: \(r.stderr)") }
            try Data(r.stdout.utf8).write(to: URL(fileURLWithPath: dir + "/htpasswd"))
            yaml += """
            auth:
              htpasswd:
                realm: azl-test
                path: \(dir)/htpasswd

            """
        }
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: dir + "/config.yml"))
        let p = try launch(["/usr/bin/docker-registry", "serve", dir + "/config.yml"], log: dir + "/registry.log")
        try waitForListen(port: port, process: p, log: dir + "/registry.log", what: "docker-registry")
        return Server(host: "127.0.0.1:\(port)", port: port, logPath: nil, storagePort: nil, pid: p.processIdentifier)
    }

    public struct ProxyOptions: Sendable {
        /// Demand `Authorization: Bearer` tokens issued by the proxy's own `/token` endpoint
        /// (realm on the proxy, `service="azl-test"`, scope `repository:REPO:pull`).
        public var bearer = false
        /// With `bearer`: the token endpoint demands these basic credentials.
        public var tokenAuth: RegistryAuth? = nil
        /// The first GET of each blob larger than 64 KiB stops halfway (connection shut down).
        public var cutOnce = false
        /// Flip one byte in the middle of each blob larger than 64 KiB.
        public var corrupt = false
        /// The first N blob GETs answer 503.
        public var failFirst = 0
        /// Blob GETs answer 307 to a second port (another origin), like MCR and Docker Hub.
        public var redirectBlobs = false
        /// The host name the redirect names (`localhost`: another host than the registry's
        /// `127.0.0.1`, as a CDN is; the storage port listens on 127.0.0.1 either way).
        public var redirectHost = "127.0.0.1"
        /// The first N manifest GETs answer 500.
        public var failManifestsFirst = 0
        /// Manifest GETs by digest (`/manifests/sha256:...`) answer the same JSON with one space
        /// added after the first `{`: still a valid manifest, but bytes of another digest. The
        /// registry's headers (Docker-Content-Digest: the digest asked for) are passed on as they
        /// are, as a lying registry or proxy would. Manifests asked for by tag are untouched.
        public var tamperManifests = false
        /// Hold each blob GET this many milliseconds before answering, and log in `inFlight` how
        /// many blob GETs were being answered (this one included) when it arrived: the maximum
        /// over the log is the client's download concurrency.
        public var delayBlobsMs = 0
        /// With `bearer`: tokens come only from an OAuth2 refresh-token POST to the realm
        /// (`grant_type=refresh_token&refresh_token=THIS&service=...&scope=...`, as the Docker
        /// token spec describes for `identitytoken`); a GET for a token answers 401.
        public var refreshToken: String? = nil
        public init(bearer: Bool = false, tokenAuth: RegistryAuth? = nil, cutOnce: Bool = false, corrupt: Bool = false,
                    failFirst: Int = 0, redirectBlobs: Bool = false, redirectHost: String = "127.0.0.1", failManifestsFirst: Int = 0,
                    tamperManifests: Bool = false, delayBlobsMs: Int = 0, refreshToken: String? = nil) {
            self.bearer = bearer; self.tokenAuth = tokenAuth; self.cutOnce = cutOnce; self.corrupt = corrupt
            self.failFirst = failFirst; self.redirectBlobs = redirectBlobs; self.redirectHost = redirectHost
            self.failManifestsFirst = failManifestsFirst; self.tamperManifests = tamperManifests
            self.delayBlobsMs = delayBlobsMs; self.refreshToken = refreshToken
        }
    }

    /// Start the proxy in front of `upstream` (an open registry of this fixture). Every proxy
    /// logs its requests; with no options it is a plain logging pass-through.
    public func startProxy(upstream: Server, _ o: ProxyOptions = ProxyOptions()) throws -> Server {
        let n = nextID()
        let port = try RegistryFixture.freePort()
        let storage = o.redirectBlobs ? try RegistryFixture.freePort() : 0
        let logPath = base + "/proxy-\(n).jsonl"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        var argv = ["/usr/bin/python3", base + "/proxy.py", "--port", "\(port)", "--upstream", upstream.host, "--log", logPath]
        if o.bearer { argv.append("--bearer") }
        if let a = o.tokenAuth { argv += ["--user", a.user, "--password", a.password] }
        if o.cutOnce { argv.append("--cut-once") }
        if o.corrupt { argv.append("--corrupt") }
        if o.failFirst > 0 { argv += ["--fail-first", "\(o.failFirst)"] }
        if o.redirectBlobs { argv += ["--redirect-blobs", "--storage-port", "\(storage)", "--redirect-host", o.redirectHost] }
        if o.failManifestsFirst > 0 { argv += ["--fail-manifests-first", "\(o.failManifestsFirst)"] }
        if o.tamperManifests { argv.append("--tamper-manifests") }
        if o.delayBlobsMs > 0 { argv += ["--delay-blobs-ms", "\(o.delayBlobsMs)"] }
        if let t = o.refreshToken { argv += ["--refresh-token", t] }
        let out = base + "/proxy-\(n).out"
        let p = try launch(argv, log: out)
        try waitForListen(port: port, process: p, log: out, what: "test proxy")
        if o.redirectBlobs { try waitForListen(port: storage, process: p, log: out, what: "test proxy storage") }
        return Server(host: "127.0.0.1:\(port)", port: port, logPath: logPath, storagePort: o.redirectBlobs ? storage : nil,
                      pid: p.processIdentifier)
    }

    /// One request the proxy answered.
    public struct ProxyRequest: Decodable, Sendable {
        public var port: Int
        /// The Host header it carried (`127.0.0.1:PORT`, `localhost:PORT`).
        public var host: String?
        public var method: String
        public var path: String
        public var range: String?
        /// "none", "basic" or "bearer": the scheme of the Authorization header it carried.
        public var auth: String
        public var status: Int
        public var sent: Int?
        public var cut: Bool?
        public var corrupted: Bool?
        /// A manifest served with other bytes (`tamperManifests`).
        public var tampered: Bool?
        public var scopes: [String]?
        public var service: String?
        /// With `delayBlobsMs`: blob GETs being answered when this one arrived, itself included.
        public var inFlight: Int?
        /// Token requests: the OAuth2 `grant_type` of a POST.
        public var grantType: String?

        public var isBlob: Bool { path.contains("/blobs/sha256:") || path.hasPrefix("/storage/") }
        public var isToken: Bool { path.hasPrefix("/token") }
        /// The digest in a blob path (`sha256:...`).
        public var blobDigest: String? {
            guard let r = path.range(of: "sha256:") else { return nil }
            return String(path[r.lowerBound...].prefix(71))
        }
    }

    /// Every request the proxy has logged so far.
    public static func requests(_ proxy: Server) -> [ProxyRequest] {
        guard let path = proxy.logPath, let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONDecoder().decode(ProxyRequest.self, from: Data($0.utf8))
        }
    }

    /// Write an auth file with only Docker `identitytoken`s (`{"auths": {KEY: {"identitytoken": T}}}`),
    /// as `docker login` leaves for registries that issue OAuth2 refresh tokens; returns its path.
    public func writeIdentityTokenAuthFile(_ entries: [String: String], name: String = "config.json") throws -> String {
        try writeAuths(entries.mapValues { ["identitytoken": $0] }, name: name)
    }

    /// Write an auth file (`{"auths": {KEY: {"auth": base64(user:password)}}}`); returns its path.
    public func writeAuthFile(_ entries: [String: RegistryAuth], name: String = "auth.json") throws -> String {
        var auths: [String: [String: String]] = [:]
        for (k, a) in entries { auths[k] = ["auth": Data("\(a.user):\(a.password)".utf8).base64EncodedString()] }
        return try writeAuths(auths, name: name)
    }

    /// `{"auths": AUTHS}` in a fresh folder of its own; returns the file's path.
    func writeAuths(_ auths: [String: [String: String]], name: String) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: ["auths": auths], options: [.sortedKeys])
        let dir = base + "/auth-\(nextID())"
        try FS.mkdirs(dir)
        let path = dir + "/" + name
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: images

    public enum Arch: String, Sendable {
        case amd64, arm64
        public static var native: Arch {
            #if arch(arm64)
            return .arm64
            #else
            return .amd64
            #endif
        }
        public var alpine: RealRootfs { self == .amd64 ? .alpineX86 : .alpineArm }
    }
    public enum Format: String, Sendable { case oci, docker }
    public enum Compression: String, Sendable { case gzip, zstd, none }

    /// What was pushed.
    public struct Pushed: Sendable {
        public let reference: String
        /// Digest of the manifest (or index) the tag now names.
        public let manifestDigest: String
        /// diff_ids of the image, bottom first (sha256 of each uncompressed layer).
        public let diffIDs: [String]
    }

    /// The config every fixture image carries (what `run` must honour).
    public static let imageEnv = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "AZL_FIXTURE=1"]
    public static let imageWorkingDir = "/tmp"
    public static let imageUser = "0:0"
    public static let imageEntrypoint = ["/bin/sh", "-c"]
    public static let imageCmd = ["echo hello from the fixture"]

    /// Alpine 3.20.3 for `arch` as one layer. `.gzip`: umoci layout pushed with skopeo (`-f oci`
    /// or `-f v2s2`). `.zstd`: a copy whose layer also carries a unique nonce file (so skopeo's
    /// blob cache cannot substitute the gzip blob), pushed with `--dest-compress-format zstd`.
    /// `.none`: the uncompressed tar uploaded with the distribution API directly (skopeo always
    /// compresses for registries).
    @discardableResult
    public func pushAlpine(to server: Server, repo: String, tag: String, arch: Arch = .native, format: Format = .oci,
                           compression: Compression = .gzip, auth: RegistryAuth? = nil) throws -> Pushed {
        buildLock.lock(); defer { buildLock.unlock() }
        let ref = server.reference("\(repo):\(tag)")
        switch compression {
        case .gzip:
            let t = try alpineLayoutTag(arch)
            let digest = try skopeoPush(source: "oci:\(base)/oci:\(t)", dest: ref, format: format, auth: auth)
            return Pushed(reference: ref, manifestDigest: digest, diffIDs: try diffIDs(layoutTag: t))
        case .zstd:
            let n = nextID()
            let tar = base + "/work/alpine-\(arch.rawValue)-nonce-\(n).tar"
            try sh(["/bin/sh", "-c", "gzip -dc '\(arch.alpine.path)' > '\(tar)'"])
            let nd = base + "/work/nonce-\(n)"
            try FS.mkdirs(nd + "/etc")
            try Data("\(UUID().uuidString)\n".utf8).write(to: URL(fileURLWithPath: nd + "/etc/azl-nonce"))
            try sh(["/usr/bin/tar", "--owner=0", "--group=0", "--numeric-owner", "-rf", tar, "-C", nd, "etc/azl-nonce"])
            let t = "alpine-\(arch.rawValue)-zstd-\(n)"
            try newImage(tag: t, arch: arch)
            try sh(["/usr/bin/umoci", "raw", "add-layer", "--image", "\(base)/oci:\(t)", tar])
            unlink(tar)
            let dir = base + "/work/dir-\(n)"
            try sh(["/usr/bin/skopeo", "copy", "-q", "--dest-decompress", "oci:\(base)/oci:\(t)", "dir:\(dir)"])
            let digest = try skopeoPush(source: "dir:\(dir)", dest: ref, format: format, auth: auth,
                                        extra: ["--dest-compress-format", "zstd"])
            try? FS.removeTree(dir)
            return Pushed(reference: ref, manifestDigest: digest, diffIDs: try diffIDs(layoutTag: t))
        case .none:
            let n = nextID()
            let tar = base + "/work/alpine-\(arch.rawValue)-\(n).tar"
            try sh(["/bin/sh", "-c", "gzip -dc '\(arch.alpine.path)' > '\(tar)'"])
            defer { unlink(tar) }
            let layerDigest = try sha256File(tar)
            let size = try fileSize(tar)
            let t = try alpineLayoutTag(arch)
            var config = try JSONSerialization.jsonObject(with: layoutBlob(configOf: t)) as! [String: Any]
            config["rootfs"] = ["type": "layers", "diff_ids": [layerDigest]]
            let configData = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
            let configPath = base + "/work/config-\(n).json"
            try configData.write(to: URL(fileURLWithPath: configPath))
            let configDigest = try sha256File(configPath)
            try uploadBlob(server, repo: repo, file: tar, digest: layerDigest)
            try uploadBlob(server, repo: repo, file: configPath, digest: configDigest)
            let docker = format == .docker
            let mediaType = docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json"
            let manifest: [String: Any] = [
                "schemaVersion": 2,
                "mediaType": mediaType,
                "config": ["mediaType": docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json",
                           "digest": configDigest, "size": configData.count],
                "layers": [["mediaType": docker ? "application/vnd.docker.image.rootfs.diff.tar" : "application/vnd.oci.image.layer.v1.tar",
                            "digest": layerDigest, "size": size]],
            ]
            let mdata = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
            let digest = try putManifest(server, repo: repo, tag: tag, data: mdata, mediaType: mediaType)
            return Pushed(reference: ref, manifestDigest: digest, diffIDs: [layerDigest])
        }
    }

    /// A real rootfs tarball pushed as it is: the `.tar.gz` file itself is the one layer blob
    /// (`tar+gzip`), so its digest is the file's sha256, as `import` names it. The config has
    /// only `Env` (PATH) — no entrypoint, cmd or working directory.
    ///
    /// `layerSizeDelta` / `configSizeDelta` make the manifest's descriptor lie about the blob's
    /// size by that many bytes (the digest stays right): a blob of another size than its
    /// descriptor says, which a client must refuse. The registry stores such manifests as given.
    @discardableResult
    public func pushTarball(to server: Server, repo: String, tag: String, rootfs: RealRootfs = Arch.native.alpine,
                            layerSizeDelta: Int64 = 0, configSizeDelta: Int64 = 0) throws -> Pushed {
        buildLock.lock(); defer { buildLock.unlock() }
        guard rootfs.rawValue.hasSuffix(".tar.gz") else { throw AZLError(.usage, "pushTarball takes a .tar.gz rootfs") }
        let ref = server.reference("\(repo):\(tag)")
        let layerDigest = try sha256File(rootfs.path)
        let diffID = try sha256Output("gzip -dc '\(rootfs.path)'")
        let arch: Arch = (rootfs == .alpineArm || rootfs == .almaArm) ? .arm64 : .amd64
        let config: [String: Any] = [
            "architecture": arch.rawValue, "os": "linux",
            "config": ["Env": [RegistryFixture.imageEnv[0]]],
            "rootfs": ["type": "layers", "diff_ids": [diffID]],
        ]
        let configData = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        let configPath = base + "/work/config-\(nextID()).json"
        try configData.write(to: URL(fileURLWithPath: configPath))
        let configDigest = try sha256File(configPath)
        try uploadBlob(server, repo: repo, file: rootfs.path, digest: layerDigest)
        try uploadBlob(server, repo: repo, file: configPath, digest: configDigest)
        let manifest: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest,
                       "size": Int64(configData.count) + configSizeDelta],
            "layers": [["mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layerDigest,
                        "size": try fileSize(rootfs.path) + layerSizeDelta]],
        ]
        let mdata = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        let digest = try putManifest(server, repo: repo, tag: tag, data: mdata, mediaType: "application/vnd.oci.image.manifest.v1+json")
        return Pushed(reference: ref, manifestDigest: digest, diffIDs: [diffID])
    }

    /// Delete a blob from an open registry (`DELETE /v2/REPO/blobs/DIGEST`): its manifests then
    /// name a blob the registry answers 404 for.
    public func deleteBlob(_ server: Server, repo: String, digest: String) throws {
        try sh(["/usr/bin/curl", "-sSf", "-X", "DELETE", "http://\(server.host)/v2/\(repo)/blobs/\(digest)"])
    }

    /// The layer digests of a pushed manifest (by tag or digest) on an open registry.
    public func layerDigests(_ server: Server, repo: String, reference: String) throws -> [String] {
        let raw = try getManifest(server, repo: repo, reference: reference,
                                  accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        let m = try JSONSerialization.jsonObject(with: raw) as? [String: Any]
        return ((m?["layers"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }
    }

    /// A multi-arch image: Alpine amd64 and arm64 pushed as `TAG-amd64` / `TAG-arm64`, and `TAG`
    /// an OCI image index (or a Docker manifest list with `.docker`) over both, plus an
    /// `unknown/unknown` entry like the attestations Docker Hub images carry (must never be chosen).
    public func pushMultiArch(to server: Server, repo: String, tag: String, format: Format = .oci)
        throws -> (index: Pushed, amd64: Pushed, arm64: Pushed) {
        buildLock.lock(); defer { buildLock.unlock() }
        let amd = try pushAlpine(to: server, repo: repo, tag: tag + "-amd64", arch: .amd64, format: format)
        let arm = try pushAlpine(to: server, repo: repo, tag: tag + "-arm64", arch: .arm64, format: format)
        let mt = format == .docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json"
        let listType = format == .docker ? "application/vnd.docker.distribution.manifest.list.v2+json" : "application/vnd.oci.image.index.v1+json"
        var entries: [[String: Any]] = []
        for (p, arch, variant) in [(amd, "amd64", nil as String?), (arm, "arm64", "v8" as String?), (arm, "unknown", nil as String?)] {
            let raw = try getManifest(server, repo: repo, reference: p.manifestDigest, accept: mt)
            var plat: [String: Any] = ["os": arch == "unknown" ? "unknown" : "linux", "architecture": arch]
            if let variant { plat["variant"] = variant }
            entries.append(["mediaType": mt, "digest": p.manifestDigest, "size": raw.count, "platform": plat])
        }
        let index: [String: Any] = ["schemaVersion": 2, "mediaType": listType, "manifests": entries]
        let data = try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys])
        let digest = try putManifest(server, repo: repo, tag: tag, data: data, mediaType: listType)
        return (Pushed(reference: server.reference("\(repo):\(tag)"), manifestDigest: digest, diffIDs: []), amd, arm)
    }

    /// What the multi-layer image holds, for tests that unpack it.
    public enum MultiLayer {
        /// Layer 2 deletes this file (`etc/.wh.motd`).
        public static let deletedFile = "etc/motd"
        /// Layer 2 replaces this directory: one `.wh.` per old entry, then `azl.pub`.
        public static let replacedDirectory = "etc/apk/keys"
        public static let replacedDirectoryContent = ["azl.pub"]
        /// Layer 2 adds this file with content "layer2\n".
        public static let addedFile = "etc/azl-layer2"
        /// Layer 3 makes this directory opaque (`etc/ssl/.wh..wh..opq`) and adds one file.
        public static let opaqueDirectory = "etc/ssl"
        public static let opaqueDirectoryContent = ["azl-opaque"]
    }

    /// Three layers from a real rootfs (Alpine for this machine by default, or Debian 12): the
    /// rootfs; an umoci repack that deletes a file and replaces a directory (file whiteouts) and
    /// adds a file; a layer with an opaque whiteout and one file.
    @discardableResult
    public func pushMultiLayer(to server: Server, repo: String, tag: String, rootfs: RealRootfs? = nil,
                               format: Format = .oci) throws -> Pushed {
        buildLock.lock(); defer { buildLock.unlock() }
        let t = try multiLayerLayoutTag(rootfs ?? Arch.native.alpine)
        let ref = server.reference("\(repo):\(tag)")
        let digest = try skopeoPush(source: "oci:\(base)/oci:\(t)", dest: ref, format: format, auth: nil)
        return Pushed(reference: ref, manifestDigest: digest, diffIDs: try diffIDs(layoutTag: t))
    }

    /// An image of `count` small gzip layers (one file `azl-layer-N` each, unique content) and a
    /// minimal config, uploaded with the distribution API: more layers than the client downloads
    /// at once, for tests of download concurrency.
    @discardableResult
    public func pushManyLayers(to server: Server, repo: String, tag: String, count: Int) throws -> Pushed {
        buildLock.lock(); defer { buildLock.unlock() }
        let n = nextID()
        let dir = base + "/work/many-\(n)"
        try FS.mkdirs(dir + "/files")
        var layers: [[String: Any]] = []
        var diffIDs: [String] = []
        for i in 0..<count {
            let name = "azl-layer-\(i)"
            try Data("layer \(i) \(UUID().uuidString)\n".utf8).write(to: URL(fileURLWithPath: dir + "/files/" + name))
            let tar = dir + "/\(name).tar"
            try sh(["/usr/bin/tar", "--owner=0", "--group=0", "--numeric-owner", "-cf", tar, "-C", dir + "/files", name])
            diffIDs.append(try sha256File(tar))
            try sh(["/bin/sh", "-c", "gzip -n -c '\(tar)' > '\(tar).gz'"])
            let digest = try sha256File(tar + ".gz")
            try uploadBlob(server, repo: repo, file: tar + ".gz", digest: digest)
            layers.append(["mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": try fileSize(tar + ".gz")])
        }
        let config: [String: Any] = [
            "architecture": Arch.native.rawValue, "os": "linux",
            "config": ["Env": [RegistryFixture.imageEnv[0]]],
            "rootfs": ["type": "layers", "diff_ids": diffIDs],
        ]
        let configData = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        let configPath = dir + "/config.json"
        try configData.write(to: URL(fileURLWithPath: configPath))
        let configDigest = try sha256File(configPath)
        try uploadBlob(server, repo: repo, file: configPath, digest: configDigest)
        let manifest: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configData.count],
            "layers": layers,
        ]
        let mdata = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        let digest = try putManifest(server, repo: repo, tag: tag, data: mdata, mediaType: "application/vnd.oci.image.manifest.v1+json")
        try? FS.removeTree(dir)
        return Pushed(reference: server.reference("\(repo):\(tag)"), manifestDigest: digest, diffIDs: diffIDs)
    }
}
