import Core
import Foundation

/// Building images with umoci from the real tarballs, pushing them with skopeo or by hand, and
/// the fixture's process and file helpers.
extension RegistryFixture {
    // MARK: building (umoci)

    func alpineLayoutTag(_ arch: Arch) throws -> String {
        let t = "alpine-\(arch.rawValue)"
        if lock.withLock({ built.contains(t) }) { return t }
        let tar = base + "/work/alpine-\(arch.rawValue).tar"
        try sh(["/bin/sh", "-c", "gzip -dc '\(arch.alpine.path)' > '\(tar)'"])
        try newImage(tag: t, arch: arch)
        try sh(["/usr/bin/umoci", "raw", "add-layer", "--image", "\(base)/oci:\(t)", tar])
        unlink(tar)
        lock.withLock { _ = built.insert(t) }
        return t
    }

    func newImage(tag t: String, arch: Arch) throws {
        let img = "\(base)/oci:\(t)"
        try sh(["/usr/bin/umoci", "new", "--image", img])
        var argv = ["/usr/bin/umoci", "config", "--image", img, "--os", "linux", "--architecture", arch.rawValue,
                    "--config.workingdir", RegistryFixture.imageWorkingDir, "--config.user", RegistryFixture.imageUser]
        for e in RegistryFixture.imageEnv { argv += ["--config.env", e] }
        for e in RegistryFixture.imageEntrypoint { argv += ["--config.entrypoint", e] }
        for c in RegistryFixture.imageCmd { argv += ["--config.cmd", c] }
        try sh(argv)
    }

    func multiLayerLayoutTag(_ rootfs: RealRootfs) throws -> String {
        let t = "multilayer-" + rootfs.rawValue.replacingOccurrences(of: ".", with: "-")
        if lock.withLock({ built.contains(t) }) { return t }
        let n = nextID()
        let tar = base + "/work/ml-\(n).tar"
        let decompress = rootfs.rawValue.hasSuffix(".xz") ? "xz -dc" : "gzip -dc"
        try sh(["/bin/sh", "-c", "\(decompress) '\(rootfs.path)' > '\(tar)'"])
        let arch: Arch = (rootfs == .alpineArm || rootfs == .almaArm) ? .arm64 : .amd64
        try newImage(tag: t, arch: arch)
        let img = "\(base)/oci:\(t)"
        try sh(["/usr/bin/umoci", "raw", "add-layer", "--image", img, tar])
        unlink(tar)
        // Layer 2: unpack, delete a file, replace a directory, add a file; repack.
        let bundle = base + "/work/bundle-\(n)"
        try sh(["/usr/bin/umoci", "unpack", "--image", img, bundle])
        let root = bundle + "/rootfs/"
        typealias ML = RegistryFixture.MultiLayer
        unlink(root + ML.deletedFile)
        try? FS.removeTree(root + ML.replacedDirectory)
        try FS.mkdirs(root + ML.replacedDirectory)
        try Data("azl\n".utf8).write(to: URL(fileURLWithPath: root + ML.replacedDirectory + "/azl.pub"))
        try Data("layer2\n".utf8).write(to: URL(fileURLWithPath: root + ML.addedFile))
        try sh(["/usr/bin/umoci", "repack", "--image", img, bundle])
        try? FS.removeTree(bundle)
        // Layer 3: an opaque whiteout (umoci never writes one) plus a file, added verbatim.
        let l3 = base + "/work/l3-\(n)"
        try FS.mkdirs(l3 + "/" + ML.opaqueDirectory)
        FileManager.default.createFile(atPath: l3 + "/" + ML.opaqueDirectory + "/.wh..wh..opq", contents: Data())
        try Data("opaque\n".utf8).write(to: URL(fileURLWithPath: l3 + "/" + ML.opaqueDirectory + "/azl-opaque"))
        let l3tar = base + "/work/l3-\(n).tar"
        try sh(["/usr/bin/tar", "--owner=0", "--group=0", "--numeric-owner", "--no-recursion", "-cf", l3tar, "-C", l3,
                ML.opaqueDirectory, ML.opaqueDirectory + "/.wh..wh..opq", ML.opaqueDirectory + "/azl-opaque"])
        try sh(["/usr/bin/umoci", "raw", "add-layer", "--image", img, l3tar])
        lock.withLock { _ = built.insert(t) }
        return t
    }

    /// The config blob of a layout tag.
    func layoutBlob(configOf tag: String) throws -> Data {
        let index = try JSONSerialization.jsonObject(with: FS.readFile(base + "/oci/index.json")) as! [String: Any]
        let manifests = index["manifests"] as! [[String: Any]]
        guard let m = manifests.first(where: { (($0["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"]) == tag }) else {
            throw AZLError(.notFound, "no tag \(tag) in the fixture layout")
        }
        let md = (m["digest"] as! String).dropFirst(7)
        let manifest = try JSONSerialization.jsonObject(with: FS.readFile(base + "/oci/blobs/sha256/\(md)")) as! [String: Any]
        let cd = ((manifest["config"] as! [String: Any])["digest"] as! String).dropFirst(7)
        return try FS.readFile(base + "/oci/blobs/sha256/\(cd)")
    }

    func diffIDs(layoutTag t: String) throws -> [String] {
        let c = try JSONSerialization.jsonObject(with: layoutBlob(configOf: t)) as! [String: Any]
        return ((c["rootfs"] as? [String: Any])?["diff_ids"] as? [String]) ?? []
    }

    // MARK: pushing

    func skopeoPush(source: String, dest: String, format: Format, auth: RegistryAuth?, extra: [String] = []) throws -> String {
        let df = base + "/work/digest-\(nextID())"
        var argv = ["/usr/bin/skopeo", "copy", "-q", "--dest-tls-verify=false", "--digestfile", df,
                    "-f", format == .docker ? "v2s2" : "oci"]
        if let auth { argv += ["--dest-creds", "\(auth.user):\(auth.password)"] }
        argv += extra + [source, "docker://" + dest]
        try sh(argv)
        return String(decoding: try FS.readFile(df), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func uploadBlob(_ server: Server, repo: String, file: String, digest: String) throws {
        let r = try sh(["/usr/bin/curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST", "http://\(server.host)/v2/\(repo)/blobs/uploads/"])
        guard let line = r.split(whereSeparator: { $0.isNewline }).first(where: { $0.lowercased().hasPrefix("location:") }) else {
            throw AZLError(.internal, "registry gave no upload location: \(r)")
        }
        var loc = line.dropFirst("location:".count).trimmingCharacters(in: .whitespaces)
        if loc.hasPrefix("/") { loc = "http://\(server.host)" + loc }
        loc += (loc.contains("?") ? "&" : "?") + "digest=" + digest
        try sh(["/usr/bin/curl", "-sSf", "-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + file, loc])
    }

    func putManifest(_ server: Server, repo: String, tag: String, data: Data, mediaType: String) throws -> String {
        let f = base + "/work/manifest-\(nextID()).json"
        try data.write(to: URL(fileURLWithPath: f))
        try sh(["/usr/bin/curl", "-sSf", "-X", "PUT", "-H", "Content-Type: \(mediaType)", "--data-binary", "@" + f,
                "http://\(server.host)/v2/\(repo)/manifests/\(tag)"])
        return Digest.of(data).description
    }

    /// The raw manifest bytes for `reference` (tag or digest) on an open registry.
    public func getManifest(_ server: Server, repo: String, reference: String, accept: String) throws -> Data {
        let f = base + "/work/get-\(nextID())"
        try sh(["/usr/bin/curl", "-sSf", "-H", "Accept: \(accept)", "-o", f, "http://\(server.host)/v2/\(repo)/manifests/\(reference)"])
        return try FS.readFile(f)
    }

    // MARK: helpers

    public func sha256File(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw AZLError.errno(errno, "cannot open", path: path) }
        defer { close(fd) }
        var h = Hasher256()
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf, 1 << 20)
            if n < 0 { if errno == EINTR { continue }; throw AZLError.errno(errno, "cannot read", path: path) }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(start: buf, count: n))
        }
        return h.finalize().description
    }

    /// sha256 of a shell command's standard output (e.g. a decompressed layer).
    public func sha256Output(_ shellCommand: String) throws -> String {
        let f = base + "/work/out-\(nextID())"
        try sh(["/bin/sh", "-c", "\(shellCommand) > '\(f)'"])
        defer { unlink(f) }
        return try sha256File(f)
    }

    /// Run a command (fails with its stderr); returns stdout.
    @discardableResult
    public func sh(_ argv: [String]) throws -> String {
        let r = Subprocess.run(argv, env: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": base, "TMPDIR": base + "/work"], timeout: 600)
        guard r.status == 0 else {
            throw AZLError(.internal, "fixture command failed (\(r.status)): \(argv.joined(separator: " ")): \(r.stderr)\(r.stdout)")
        }
        return r.stdout
    }

    func fileSize(_ path: String) throws -> Int64 {
        var st = stat()
        if stat(path, &st) != 0 { throw AZLError.errno(errno, "cannot stat", path: path) }
        return Int64(st.st_size)
    }

    func nextID() -> Int { lock.withLock { counter += 1; return counter } }

    func launch(_ argv: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        p.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": base]
        FileManager.default.createFile(atPath: log, contents: nil)
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = fh
        p.standardError = fh
        p.standardInput = FileHandle.nullDevice
        try p.run()
        lock.withLock { processes.append(p) }
        return p
    }

    /// Poll (bounded: 10 s) until something accepts TCP connections on 127.0.0.1:port.
    func waitForListen(port: Int, process: Process, log: String, what: String) throws {
        for _ in 0..<400 {
            if !process.isRunning {
                let text = (try? String(decoding: FS.readFile(log), as: UTF8.self)) ?? ""
                throw AZLError(.internal, "\(what) exited before it was ready: \(text)")
            }
            if RegistryFixture.canConnect(port: port) { return }
            usleep(25_000)
        }
        throw AZLError(.internal, "\(what) did not listen on 127.0.0.1:\(port) within 10 s")
    }

    /// A non-loopback IPv4 address of this machine (for a registry reached other than by
    /// loopback, which must then be HTTPS unless TLS verification is off), or nil.
    public static func nonLoopbackIPv4() -> String? {
        var ifap: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&ifap) == 0, let first = ifap else { return nil }
        defer { freeifaddrs(ifap) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let cur = p {
            if let a = cur.pointee.ifa_addr, a.pointee.sa_family == sa_family_t(AF_INET) {
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(a, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let s = String(cString: host)
                    if !s.hasPrefix("127.") { return s }
                }
            }
            p = cur.pointee.ifa_next
        }
        return nil
    }

    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if fd < 0 { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A port nothing listens on right now (bind to 0, read it back, close).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if fd < 0 { throw AZLError.errno(errno, "socket", path: "127.0.0.1") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !ok { throw AZLError.errno(errno, "bind", path: "127.0.0.1:0") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
