import ArgumentParser
import Core
import Foundation
import Manifests
import Registry
import Store

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Fetch an image from an OCI registry (or by a short name from rootfs-manifests).",
        discussion: "Examples: azl-shell pull azurelinux:3.0; azl-shell pull mcr.microsoft.com/azurelinux/base/core:3.0")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var pull: PullOptionsGroup

    @Argument(help: "A short name (see `images --available`) or a registry reference.")
    var image: String

    func run() throws {
        let store = try ImageStore(paths: global.paths)
        let record = try Puller(global: global, options: pull).pull(image, into: store)
        if !global.quiet && !pull.json { print(record.digest) }
    }
}

/// Options shared by `pull` and `run` (which pulls on first use).
struct PullOptionsGroup: ParsableArguments {
    @Option(name: .long, help: "Platform to pull from a multi-arch image: os/arch[/variant] (default: this machine).")
    var platform: String?

    @Option(name: .customLong("tls-verify"), help: "Verify TLS certificates; false also allows plain HTTP (default: true).")
    var tlsVerify: Bool = true

    @Option(name: .long, help: "Credentials USER:PASSWORD for the registry (default: the auth files).")
    var creds: String?

    @Flag(name: .long, help: "Progress as one JSON event per line.")
    var json = false
}

/// Glue between the registry client and the store: blobs land in the store's blob folder,
/// layers are unpacked by the same safe extractor as `import`, and the image config is kept.
struct Puller {
    let global: GlobalOptions
    let options: PullOptionsGroup

    func pull(_ name: String, into store: ImageStore) throws -> ImageRecord {
        // A short name from rootfs-manifests, or a reference as docker/podman take it.
        var refText = name
        var manifestShort: String?
        if let m = try? Manifests.load(), let entry = m.find(name) {
            refText = entry.reference
            manifestShort = entry.short
        }
        let ref = try ImageReference.parse(refText)
        let platform = try options.platform.map(Platform.parse) ?? .host
        let creds = try options.creds.map { c -> Credentials in
            guard let i = c.firstIndex(of: ":") else {
                throw AZLError(.usage, "--creds must be USER:PASSWORD", hint: "or log in so an auth file holds them")
            }
            return Credentials(username: String(c[..<i]), password: String(c[c.index(after: i)...]), source: "--creds")
        }
        let progress = PullProgress(mode: global.quiet ? .quiet : options.json ? .json : (isatty(2) != 0 ? .terminal : .plain),
                                    reference: ref.description)
        let writer = try store.writerLock()
        defer { writer.unlock() }
        store.cleanStaleTemporaries()
        let sink = try StoreBlobSink(store: store)
        let client = RegistryClient()
        let pulled = try client.pullSync(ref, options: PullOptions(platform: platform, tlsVerify: options.tlsVerify,
                                                                   credentials: creds, progress: progress.handle),
                                         blobStore: sink)
        guard pulled.layers.count == pulled.diffIDs.count else {
            throw AZLError(.registry, "\(ref): the manifest lists \(pulled.layers.count) layers but the config \(pulled.diffIDs.count) diff_ids",
                           hint: "the image is malformed; nothing was kept")
        }
        progress.unpacking(layers: pulled.layers.count)
        let layers = zip(pulled.layers, pulled.diffIDs).map { LayerSource(blob: $0.digest, path: $0.blobPath, expectedDiffID: $1) }
        let (key, meta) = try store.unpackLayers(layers) { i, _ in progress.unpacked(layer: i + 1, of: layers.count) }
        let config = ImageConfig(env: pulled.config.env, workingDir: pulled.config.workingDir, user: pulled.config.user,
                                 entrypoint: pulled.config.entrypoint, cmd: pulled.config.cmd)
        let tag = ref.tag ?? (ref.digest == nil ? "latest" : ref.digest!.short)
        var record = ImageRecord(name: ref.name, tag: tag, digest: pulled.repoDigest, layers: pulled.diffIDs,
                                 blobs: pulled.layers.map(\.digest) + [pulled.configDigest], tree: key, size: meta.bytes,
                                 created: Date(), source: ref.description, config: config, manifest: manifestShort)
        try store.save(record)
        if let short = manifestShort, short != record.reference, let (n, t) = try? ImageName.parse(short) {
            // The short name the user typed is a name in the store too.
            record.name = n; record.tag = t
            try store.save(record)
        }
        progress.done(record.reference, digest: record.digest)
        return record
    }
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
    private let lock = NSLock()
    private var sizes: [Digest: Int64] = [:]
    private var done: [Digest: Int64] = [:]
    private var order: [Digest] = []
    private var started = Date()
    private var drawn = 0
    private var lastDraw = Date.distantPast

    init(mode: Mode, reference: String) { self.mode = mode; self.reference = reference }

    private func emit(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    private func json(_ fields: [String: Any]) {
        var f = fields; f["reference"] = reference
        if let d = try? JSONSerialization.data(withJSONObject: f, options: [.sortedKeys, .withoutEscapingSlashes]) {
            FileHandle.standardOutput.write(d + Data("\n".utf8))
        }
    }

    func handle(_ e: PullEvent) {
        lock.lock(); defer { lock.unlock() }
        switch e {
        case let .resolved(manifest, layers, platform, index):
            started = Date()
            switch mode {
            case .json: json(["event": "resolved", "manifest": manifest.description, "layers": layers, "platform": platform, "index": index?.description ?? NSNull()])
            case .plain, .terminal: emit("\(reference): \(layers) layers for \(platform) (manifest \(manifest.short))")
            case .quiet: break
            }
        case let .layerStart(d, size):
            sizes[d] = size; done[d] = 0; order.append(d)
            if mode == .json { json(["event": "layer-start", "digest": d.description, "size": size]) }
            if mode == .plain { emit("  \(d.short): downloading \(Render.bytes(size))") }
            draw()
        case let .layerProgress(d, n, total):
            done[d] = n; sizes[d] = total
            if mode == .json { json(["event": "layer-progress", "digest": d.description, "done": n, "total": total]) }
            draw()
        case let .layerDone(d, cached):
            done[d] = sizes[d] ?? 0
            if mode == .json { json(["event": "layer-done", "digest": d.description, "cached": cached]) }
            if mode == .plain { emit("  \(d.short): \(cached ? "already stored" : "done")") }
            draw(force: true)
        case let .resumed(d, from):
            if mode == .json { json(["event": "resumed", "digest": d.description, "from": from]) }
            if mode == .plain { emit("  \(d.short): resuming at \(Render.bytes(from))") }
        case let .retrying(what, attempt, reason):
            if mode == .json { json(["event": "retrying", "what": what, "attempt": attempt, "reason": reason]) }
            if mode == .plain || mode == .terminal { emit("  retrying \(what) (attempt \(attempt)): \(reason)") }
        }
    }

    /// One line per layer: bytes, rate, ETA; redrawn in place at most 10 times a second.
    private func draw(force: Bool = false) {
        guard mode == .terminal, force || Date().timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = Date()
        var out = drawn > 0 ? "\u{1B}[\(drawn)A" : ""
        let elapsed = max(0.001, Date().timeIntervalSince(started))
        for d in order {
            let total = max(1, sizes[d] ?? 1), n = done[d] ?? 0
            let frac = Double(n) / Double(total)
            let width = 24
            let bar = String(repeating: "#", count: Int(frac * Double(width))).padding(toLength: width, withPad: " ", startingAt: 0)
            let rate = Double(n) / elapsed
            let eta = rate > 0 && n < total ? String(format: "%.0fs", Double(total - n) / rate) : (n >= total ? "done" : "--")
            out += "\u{1B}[2K  \(d.short) [\(bar)] \(Render.bytes(n))/\(Render.bytes(total)) \(Render.bytes(Int64(rate)))/s \(eta)\n"
        }
        drawn = order.count
        FileHandle.standardError.write(Data(out.utf8))
    }

    func unpacking(layers: Int) {
        lock.lock(); defer { lock.unlock() }
        switch mode {
        case .json: json(["event": "unpack-start", "layers": layers])
        case .plain, .terminal: emit("unpacking \(layers) layers")
        case .quiet: break
        }
    }

    func unpacked(layer: Int, of n: Int) {
        lock.lock(); defer { lock.unlock() }
        switch mode {
        case .json: json(["event": "unpacked", "layer": layer, "of": n])
        case .terminal: FileHandle.standardError.write(Data("\r\u{1B}[2Kunpacked \(layer)/\(n)\(layer == n ? "\n" : "")".utf8))
        default: break
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
