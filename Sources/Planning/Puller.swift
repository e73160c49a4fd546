import Archive
import Core
import Foundation
import Manifests
import Registry
import Store

/// How a pull is made and shown: `pull`'s options, and `run`'s when it pulls on first use.
public struct PullSettings: Sendable {
    /// OS/ARCH[/VARIANT]; nil: this machine's.
    public var platform: String?
    public var tlsVerify = true
    /// USER:PASSWORD.
    public var creds: String?
    public var json = false
    public var quiet = false
    /// `run` keeps stdout for the command: JSON events go to stderr there.
    public var jsonToStderr = false
    public init() {}
}

/// Glue between the registry client and the store: blobs land in the store's blob folder,
/// layers are unpacked by the same safe extractor as `import`, and the image config is kept.
public struct Puller {
    public let options: PullSettings

    public init(_ options: PullSettings) { self.options = options }

    /// What the user typed, resolved: a short name or alias from rootfs-manifests (the user's
    /// directory wins), else a reference as docker and podman take it. A reference that is a
    /// manifest's own reference keeps that manifest (for `run`'s kernel profile and env).
    public static func resolve(_ name: String) throws -> (ref: ImageReference, manifest: ManifestImage?) {
        let manifests = try Manifests.load()
        if let entry = manifests.find(name) {
            return (try ImageReference.parse(entry.reference), entry)
        }
        let ref = try ImageReference.parse(name)
        let entry = manifests.images.first { (try? ImageReference.parse($0.reference)) == ref }
        return (ref, entry)
    }

    /// A name `run` may pull when it is not stored: a reference that names its registry
    /// (`host.domain/...`, `host:port/...`, `localhost/...`, `docker://...`) or a known short
    /// name. Bare names (`myimage:1`) are local names: never sent to Docker Hub by surprise.
    public static func isPullable(_ name: String) throws -> Bool {
        if name.hasPrefix("docker://") || ImageNameGrammar.registryPart(of: name) != nil { return true }
        return try Manifests.load().find(name) != nil
    }

    /// The name a pulled reference is stored under.
    public static func storedTag(_ ref: ImageReference) -> String {
        ref.tag ?? ref.digest.map(\.short) ?? "latest"
    }

    /// `run`'s miss path: `name` is not a stored NAME:TAG. When it is a reference or a short
    /// name, find it under its normalised name (`docker.io/library/...`, a digest), else pull
    /// it. nil when the name is not one `run` should pull.
    public func findOrPull(_ name: String, store: ImageStore) throws -> ImageRecord? {
        guard try Puller.isPullable(name) else { return nil }
        let (ref, entry) = try Puller.resolve(name)
        if let entry, let r = try? store.lookup(entry.short) { return r }
        if let d = ref.digest {
            if let r = try store.records().first(where: { $0.name == ref.name && $0.digest == d }) { return r }
        } else if let r = try? store.lookup(ref.name + ":" + Puller.storedTag(ref)) {
            return r
        }
        return try pull(name, into: store)
    }

    public func pull(_ name: String, into store: ImageStore) throws -> ImageRecord {
        let (ref, entry) = try Puller.resolve(name)
        do {
            return try pull(ref, entry: entry, into: store)
        } catch var e as AZLError where name != ref.description {
            // Errors name the full reference; say which short name it came from too.
            if let r = e.message.range(of: ref.description) {
                e.message.replaceSubrange(r, with: "\(ref) (\(name))")
            }
            throw e
        }
    }

    private func pull(_ ref: ImageReference, entry: ManifestImage?, into store: ImageStore) throws -> ImageRecord {
        let platform = try options.platform.map(Platform.parse) ?? .host
        let creds = try options.creds.map { c -> Credentials in
            guard let i = c.firstIndex(of: ":"), i != c.startIndex else {
                throw AZLError(.usage, "--creds must be USER:PASSWORD", hint: "or put the credentials in an auth file ($REGISTRY_AUTH_FILE)")
            }
            return Credentials(username: String(c[..<i]), password: String(c[c.index(after: i)...]), source: "--creds")
        }
        let mode: PullProgress.Mode = options.quiet ? .quiet : options.json ? .json : (isatty(2) != 0 ? .terminal : .plain)
        let progress = PullProgress(mode: mode, reference: ref.description, jsonToStderr: options.jsonToStderr)
        let writer = try store.writerLock()
        defer { writer.unlock() }
        store.cleanStaleTemporaries()
        let sink = try StoreBlobSink(store: store)
        var pullOptions = PullOptions(platform: platform, tlsVerify: options.tlsVerify, credentials: creds, progress: progress.handle)
        // An unpacked tree with these layers (another image's, an import's): no layer is downloaded.
        let treeStore = UncheckedBox(store)
        pullOptions.layersNeeded = { diffIDs in !treeStore.value.hasTree(ImageStore.chainID(diffIDs)) }
        let pulled = try RegistryClient().pullSync(ref, options: pullOptions, blobStore: sink)
        guard pulled.layers.count == pulled.diffIDs.count else {
            throw AZLError(.registry, "\(ref): the manifest lists \(pulled.layers.count) layers but the config \(pulled.diffIDs.count) diff_ids",
                           hint: "the image is malformed; nothing was kept")
        }
        let layers = zip(pulled.layers, pulled.diffIDs).map { LayerSource(blob: $0.digest, path: $0.blobPath, expectedDiffID: $1) }
        if store.hasTree(ImageStore.chainID(pulled.diffIDs)) {
            progress.alreadyUnpacked(layers: layers.count)
        } else {
            progress.unpacking(layers: layers.count)
        }
        let key: Digest, meta: TreeMeta
        do {
            (key, meta) = try store.unpackLayers(layers, bound: .fromEnvironment()) { i, r in progress.unpacked(layer: i + 1, of: layers.count, result: r) }
        } catch let e as AZLError where e.kind == .tooLarge {
            // A bomb is no blob worth keeping: drop the layers this pull brought in.
            for l in pulled.layers where !l.cached && !l.blobPath.isEmpty { unlink(l.blobPath) }
            throw e
        }
        // The manifest's extra environment (e.g. DEBIAN_FRONTEND) on top of the image's own.
        var env = pulled.config.env
        for kv in entry?.env ?? [] {
            let key = kv.prefix { $0 != "=" }
            env.removeAll { $0.prefix { $0 != "=" } == key }
            env.append(kv)
        }
        let config = ImageConfig(env: env, workingDir: pulled.config.workingDir, user: pulled.config.user,
                                 entrypoint: pulled.config.entrypoint, cmd: pulled.config.cmd)
        var record = ImageRecord(name: ref.name, tag: Puller.storedTag(ref), digest: pulled.repoDigest, layers: pulled.diffIDs,
                                 blobs: pulled.layers.map(\.digest) + [pulled.configDigest], tree: key, size: meta.bytes,
                                 created: Date(), source: ref.description, config: config, manifest: entry?.short,
                                 architecture: pulled.platform.architecture)
        try store.save(record)
        if let short = entry?.short, short != record.reference, let (n, t) = try? ImageName.parse(short) {
            // The short name is a name in the store too (what `run --image SHORT` finds).
            record.name = n; record.tag = t
            try store.save(record)
        }
        progress.done(record.reference, digest: record.digest)
        return record
    }
}

/// Hands a non-Sendable value to a @Sendable closure that only reads it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// The store as the registry client's blob sink.
final class StoreBlobSink: BlobSink, @unchecked Sendable {
    let store: ImageStore
    init(store: ImageStore) throws {
        self.store = store
        try FS.mkdirs(store.partialDirectory, mode: 0o700)
    }
    func has(_ d: Digest) -> String? { FS.exists(store.blobPath(d)) ? store.blobPath(d) : nil }
    func partialPath(for d: Digest) -> String { store.partialDirectory + "/" + d.hex }
    func commit(_ d: Digest, from partialPath: String) throws -> String { try store.commitBlob(d, from: partialPath) }
}

/// Pull progress: bars on a terminal, JSON lines, plain lines for logs, or nothing.
final class PullProgress: @unchecked Sendable {
    enum Mode { case terminal, json, plain, quiet }
    let mode: Mode
    let reference: String
    let jsonOut: FileHandle
    private let lock = NSLock()
    private var sizes: [Digest: Int64] = [:]
    private var done: [Digest: Int64] = [:]
    private var begun: [Digest: Date] = [:]
    private var finished: [Digest: Date] = [:]
    private var cached: Set<Digest> = []
    private var order: [Digest] = []
    private var drawn = 0
    private var lastDraw = Date.distantPast

    init(mode: Mode, reference: String, jsonToStderr: Bool = false) {
        self.mode = mode; self.reference = reference
        jsonOut = jsonToStderr ? FileHandle.standardError : FileHandle.standardOutput
    }

    private func emit(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    private func json(_ fields: [String: Any]) {
        var f = fields; f["reference"] = reference
        if let d = try? JSONSerialization.data(withJSONObject: f, options: [.sortedKeys, .withoutEscapingSlashes]) {
            jsonOut.write(d + Data("\n".utf8))
        }
    }

    func handle(_ e: PullEvent) {
        lock.lock(); defer { lock.unlock() }
        switch e {
        case let .resolved(manifest, layers, platform, index):
            switch mode {
            case .json: json(["event": "resolved", "manifest": manifest.description, "layers": layers, "platform": platform, "index": index?.description ?? NSNull()])
            case .plain, .terminal: emit("\(reference): \(layers) layers for \(platform) (manifest \(manifest.short))")
            case .quiet: break
            }
        case let .layerStart(d, size):
            sizes[d] = size; done[d] = 0; begun[d] = Date(); order.append(d)
            if mode == .json { json(["event": "layer-start", "digest": d.description, "size": size]) }
            draw()
        case let .layerProgress(d, n, total):
            done[d] = n; sizes[d] = total
            if mode == .json { json(["event": "layer-progress", "digest": d.description, "done": n, "total": total]) }
            draw()
        case let .layerDone(d, wasCached):
            done[d] = sizes[d] ?? 0; finished[d] = Date()
            if wasCached { cached.insert(d) }
            if mode == .json { json(["event": "layer-done", "digest": d.description, "cached": wasCached]) }
            if mode == .plain {
                let secs = finished[d]!.timeIntervalSince(begun[d] ?? finished[d]!)
                emit("  \(d.short): " + (wasCached ? "already stored" :
                    "\(Render.bytes(sizes[d] ?? 0)) in \(String(format: "%.1f", secs))s (\(Render.bytes(Int64(Double(sizes[d] ?? 0) / max(secs, 0.001))))/s)"))
            }
            draw(force: true)
        case let .resumed(d, from):
            if mode == .json { json(["event": "resumed", "digest": d.description, "from": from]) }
            if mode == .plain { emit("  \(d.short): resuming at \(Render.bytes(from))") }
        case let .retrying(what, attempt, reason):
            if mode == .json { json(["event": "retrying", "what": what, "attempt": attempt, "reason": reason]) }
            if mode == .plain || mode == .terminal {
                // Above the bars: erase them, print, redraw below.
                if mode == .terminal && drawn > 0 { FileHandle.standardError.write(Data("\u{1B}[\(drawn)A\u{1B}[J".utf8)); drawn = 0 }
                emit("  retrying \(what) (attempt \(attempt)): \(reason)")
                draw(force: true)
            }
        }
    }

    /// One line per layer: bar, bytes, rate, ETA; redrawn in place at most 10 times a second.
    private func draw(force: Bool = false) {
        guard mode == .terminal, force || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
        let now = Date()
        lastDraw = now
        var out = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
        for d in order {
            let total = max(1, sizes[d] ?? 1), n = done[d] ?? 0
            let width = 24
            let filled = Int(Double(n) / Double(total) * Double(width))
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
            var tail: String
            if cached.contains(d) {
                tail = "already stored"
            } else {
                let secs = max(0.001, (finished[d] ?? now).timeIntervalSince(begun[d] ?? now))
                let rate = Double(n) / secs
                let eta = finished[d] != nil ? "done" : rate > 0 ? String(format: "ETA %.0fs", Double(total - n) / rate) : "--"
                tail = "\(Render.bytes(n))/\(Render.bytes(total)) \(Render.bytes(Int64(rate)))/s \(eta)"
            }
            out += "\u{1B}[2K  \(d.short) [\(bar)] \(tail)\n"
        }
        drawn = order.count
        FileHandle.standardError.write(Data(out.utf8))
    }

    func unpacking(layers: Int) {
        lock.lock(); defer { lock.unlock() }
        switch mode {
        case .json: json(["event": "unpack-start", "layers": layers])
        case .plain, .terminal: emit("unpacking \(layers) layer\(layers == 1 ? "" : "s")")
        case .quiet: break
        }
    }

    func alreadyUnpacked(layers: Int) {
        lock.lock(); defer { lock.unlock() }
        switch mode {
        case .json: json(["event": "unpack-skip", "layers": layers])
        case .plain, .terminal: emit("already unpacked")
        case .quiet: break
        }
    }

    func unpacked(layer: Int, of n: Int, result r: ExtractResult) {
        lock.lock(); defer { lock.unlock() }
        switch mode {
        case .json: json(["event": "unpacked", "layer": layer, "of": n, "entries": r.entries, "bytes": r.bytes])
        case .terminal:
            FileHandle.standardError.write(Data("\r\u{1B}[2Kunpacked \(layer)/\(n) (\(r.entries) entries, \(Render.bytes(r.bytes)))\(layer == n ? "\n" : "")".utf8))
        case .plain: emit("  unpacked layer \(layer)/\(n): \(r.entries) entries, \(Render.bytes(r.bytes))")
        case .quiet: break
        }
    }

    func done(_ name: String, digest: Digest) {
        lock.lock(); defer { lock.unlock() }
        switch mode {
        case .json: json(["event": "done", "name": name, "digest": digest.description])
        case .plain, .terminal: emit("pulled \(name) \(digest)")
        case .quiet: break
        }
    }
}
