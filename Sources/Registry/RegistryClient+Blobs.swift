import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A pull: its layers and config, downloaded in parallel, resumable.
extension Session {
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
        let config = ImageConfig(env: inner?.Env ?? [], workingDir: inner?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 },
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

    func download(_ desc: Descriptor, fd: Int32, partial: String, what: String, report: Bool) async throws {
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
    func receive(_ resp: HTTPClientResponse, fd: Int32, partial: String, digest d: Digest, size: Int64, from: Int64,
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
                    try FS.writeAll(fd: fd, raw, path: partial)
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
