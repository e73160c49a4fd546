import CArchive
import Core
import Foundation

/// Reads a (possibly compressed) tar from a file descriptor in one pass and hands its entries
/// to a consumer, while computing
///  - the digest of the bytes as given (the blob digest: what a registry or a file names), and
///  - the digest of the uncompressed tar (the OCI diff_id: what keys an unpacked tree, so an
///    imported tarball and a pulled layer with the same content share storage).
///
/// Two libarchive readers are chained: the outer one only removes compression (format "raw"),
/// the inner one parses tar from the outer one's output. Compression is detected by content.
/// Optionally every input byte is also written to `teeFD` (to keep the blob while reading it once).
///
/// Reading, hashing and decompressing run on a thread of their own, handing 1 MiB chunks
/// through a small ring to the thread that parses and writes files: decompression (xz, zstd)
/// is the larger half of the work, and this is how `tar -xf`, piping from `xz -d`, uses two cores.
final class TarStream {
    let inputFD: Int32
    let teeFD: Int32?
    let sourceName: String

    private(set) var blobHasher = Hasher256()
    private(set) var tarHasher = Hasher256()
    private(set) var blobBytes: Int64 = 0
    private(set) var tarBytes: Int64 = 0
    /// First I/O error seen inside a callback, reported instead of libarchive's generic text.
    var callbackError: AZLError?
    private var headers = 0

    private var outer: OpaquePointer?
    private(set) var inner: OpaquePointer?
    private var readBuffer: UnsafeMutableRawPointer
    static let bufferSize = 1 << 20

    // The ring between the decompressing thread and the extracting one.
    private static let slots = 4
    private var ring: [UnsafeMutableRawPointer]
    private var ringLength = [Int](repeating: 0, count: TarStream.slots)
    private var filled = 0, head = 0, tail = 0
    private var producerDone = false
    private var consumerHolds = false
    private var cancelled = false
    private var producerError: AZLError?
    private let cond = NSCondition()
    private var producer: Thread?
    private let producerFinished = DispatchSemaphore(value: 0)

    /// The input's digest when the caller hashed it already (a file hashed to find a reuse):
    /// then it is not hashed a second time.
    let knownBlobDigest: Digest?

    init(inputFD: Int32, teeFD: Int32?, sourceName: String, knownBlobDigest: Digest? = nil) {
        self.inputFD = inputFD
        self.teeFD = teeFD
        self.knownBlobDigest = knownBlobDigest
        self.sourceName = sourceName
        readBuffer = UnsafeMutableRawPointer.allocate(byteCount: TarStream.bufferSize, alignment: 16)
        ring = (0..<TarStream.slots).map { _ in UnsafeMutableRawPointer.allocate(byteCount: TarStream.bufferSize, alignment: 16) }
    }

    deinit {
        stopProducer()
        if let inner { archive_read_free(inner) }
        if let outer { archive_read_free(outer) }
        readBuffer.deallocate()
        for b in ring { b.deallocate() }
    }

    /// Stop and wait for the producer (on error paths the consumer stops early).
    private func stopProducer() {
        guard producer != nil else { return }
        cond.lock(); cancelled = true; cond.broadcast(); cond.unlock()
        producerFinished.wait()
        producer = nil
    }

    /// Open both readers. Throws `.notAnArchive` for input that is not a (compressed) tar.
    func open() throws {
        let ctx = Unmanaged.passUnretained(self).toOpaque()

        outer = archive_read_new()
        archive_read_support_filter_all(outer)
        archive_read_support_format_raw(outer)
        if archive_read_open(outer, ctx, nil, { _, ctx, bufOut in
            Unmanaged<TarStream>.fromOpaque(ctx!).takeUnretainedValue().readInput(bufOut!)
        }, nil) != ARCHIVE_OK {
            throw classify(outer, phase: "open")
        }
        var rawEntry: OpaquePointer?
        let r = archive_read_next_header(outer, &rawEntry)
        if r == ARCHIVE_EOF {
            throw AZLError(.notAnArchive, "\(sourceName) is empty, not a tar archive",
                           hint: "give a .tar, .tar.gz, .tar.xz or .tar.zst root filesystem")
        }
        if r != ARCHIVE_OK && r != ARCHIVE_WARN { throw classify(outer, phase: "open") }

        let t = Thread { [unowned self] in self.produce() }
        t.stackSize = 1 << 20
        producer = t
        t.start()

        inner = archive_read_new()
        archive_read_support_format_tar(inner)
        archive_read_support_format_gnutar(inner)
        if archive_read_open(inner, ctx, nil, { _, ctx, bufOut in
            Unmanaged<TarStream>.fromOpaque(ctx!).takeUnretainedValue().readDecompressed(bufOut!)
        }, nil) != ARCHIVE_OK {
            throw classify(inner, phase: "open")
        }
    }

    /// What libarchive warned about the current entry's header (a name or link it could not
    /// convert, say), or nil.
    private(set) var lastWarning: String?

    /// Next entry, or nil at the end of the archive.
    func next() throws -> OpaquePointer? {
        var entry: OpaquePointer?
        let r = archive_read_next_header(inner, &entry)
        lastWarning = r == ARCHIVE_WARN ? archive_error_string(inner).map { String(cString: $0) } : nil
        switch r {
        case ARCHIVE_OK, ARCHIVE_WARN: headers += 1; return entry
        case ARCHIVE_EOF: return nil
        default: throw classify(inner, phase: "read")
        }
    }

    /// Read the rest of the input so the digests cover every byte (tar padding, trailing
    /// blocks, anything after the compressed stream), then wait for the producer.
    func drain() throws {
        var ptr: UnsafeRawPointer?
        while true {
            let n = withUnsafeMutablePointer(to: &ptr) { readDecompressed($0) }
            if n < 0 { throw callbackError ?? AZLError(.io, "cannot read \(sourceName)") }
            if n == 0 { break }
        }
        producerFinished.wait()
        producer = nil
        if let e = producerError { throw e }
    }

    var blobDigest: Digest { knownBlobDigest ?? blobHasher.finalize() }
    var diffID: Digest { tarHasher.finalize() }

    /// Turn libarchive's state into a typed error naming the source. libarchive gives a bad
    /// format and a truncated input no errno of their own (ARCHIVE_ERRNO_FILE_FORMAT or _MISC for
    /// both): its text is what tells them apart.
    func classify(_ a: OpaquePointer?, phase: String) -> AZLError {
        if let callbackError { return callbackError }
        let text = a.flatMap { archive_error_string($0) }.map { String(cString: $0) } ?? "unknown error"
        let lower = text.lowercased()
        if lower.contains("unrecognized archive format") || (headers == 0 && !lower.contains("truncated")) {
            return AZLError(.notAnArchive, "\(sourceName) is not a tar archive (\(text))",
                            hint: "give a .tar, .tar.gz, .tar.xz or .tar.zst root filesystem")
        }
        if lower.contains("truncated") || lower.contains("unexpected eof") || lower.contains("premature end") {
            return AZLError(.corruptArchive, "\(sourceName) is truncated (\(text))",
                            hint: "the file is incomplete: download or copy it again")
        }
        return AZLError(.corruptArchive, "\(sourceName) is damaged (\(text))",
                        hint: "check the file; nothing was imported")
    }

    // MARK: callbacks

    private func readInput(_ bufOut: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        while true {
            let n = Glibc.read(inputFD, readBuffer, TarStream.bufferSize)
            if n < 0 {
                if errno == EINTR { continue }
                callbackError = AZLError.errno(errno, "cannot read", path: sourceName)
                return -1
            }
            do { try consumeInput(n) } catch let e as AZLError { callbackError = e; return -1 } catch { return -1 }
            bufOut.pointee = UnsafeRawPointer(readBuffer)
            return n
        }
    }

    private func consumeInput(_ n: Int) throws {
        guard n > 0 else { return }
        if knownBlobDigest == nil { blobHasher.update(UnsafeRawBufferPointer(start: readBuffer, count: n)) }
        blobBytes += Int64(n)
        if let teeFD {
            var off = 0
            while off < n {
                let w = Glibc.write(teeFD, readBuffer + off, n - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    throw AZLError.errno(errno, "cannot store a copy of", path: sourceName)
                }
                off += w
            }
        }
    }

    /// The producer thread: read, tee, hash, decompress, hash, hand over.
    private func produce() {
        defer { producerFinished.signal() }
        while true {
            cond.lock()
            while filled == TarStream.slots && !cancelled { cond.wait() }
            if cancelled { cond.unlock(); return }
            let slot = head
            cond.unlock()

            let n = archive_read_data(outer, ring[slot], TarStream.bufferSize)
            if n < 0 {
                cond.lock()
                producerError = callbackError ?? classify(outer, phase: "decompress")
                producerDone = true
                cond.broadcast(); cond.unlock()
                return
            }
            if n == 0 { break }
            tarHasher.update(UnsafeRawBufferPointer(start: ring[slot], count: n))
            tarBytes += Int64(n)
            cond.lock()
            ringLength[slot] = n
            head = (head + 1) % TarStream.slots
            filled += 1
            cond.broadcast(); cond.unlock()
        }
        // Anything after the compressed stream ends (rare) still counts for the blob digest.
        var tailError: AZLError?
        while true {
            let n = Glibc.read(inputFD, readBuffer, TarStream.bufferSize)
            if n < 0 {
                if errno == EINTR { continue }
                tailError = AZLError.errno(errno, "cannot read", path: sourceName); break
            }
            if n == 0 { break }
            do { try consumeInput(n) } catch let e as AZLError { tailError = e; break } catch { break }
        }
        cond.lock()
        producerError = tailError
        producerDone = true
        cond.broadcast(); cond.unlock()
    }

    /// The inner reader's callback: release the chunk handed out last time, take the next.
    private func readDecompressed(_ bufOut: UnsafeMutablePointer<UnsafeRawPointer?>) -> Int {
        cond.lock()
        defer { cond.unlock() }
        if consumerHolds {
            consumerHolds = false
            tail = (tail + 1) % TarStream.slots
            filled -= 1
            cond.broadcast()
        }
        while filled == 0 && !producerDone { cond.wait() }
        if filled == 0 {
            if let e = producerError {
                if callbackError == nil { callbackError = e }
                return -1
            }
            return 0
        }
        consumerHolds = true
        bufOut.pointee = UnsafeRawPointer(ring[tail])
        return ringLength[tail]
    }
}
