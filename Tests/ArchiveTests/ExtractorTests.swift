@testable import Archive
import Core
import Foundation
import Testing
import TestSupport

struct ExtractorTests {
    @Test(arguments: [
        ("./a/b", "a/b"), ("/etc/passwd", "etc/passwd"), ("a//b/./c/", "a/b/c"), ("./", ""), (".", ""),
    ])
    func namesAreNormalisedIntoTheTree(_ raw: String, _ want: String) {
        #expect(SafeExtractor.normalize(raw) == want)
    }

    @Test(arguments: ["../x", "a/../../x", "a/..", ".."])
    func dotDotIsRefused(_ raw: String) {
        #expect(SafeExtractor.normalize(raw) == nil)
    }

    func extract(_ b: TarBuilder, into dir: String, layer: Bool = false) throws -> ExtractResult {
        let path = dir + ".tar"
        try b.finished().write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        return try SafeExtractor(root: dir, options: ExtractOptions(ociLayer: layer)).extract(fd: fd, name: path)
    }

    func tempDir() throws -> String {
        var t = Array("/tmp/azl-ex-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&t)!)
    }

    @Test func whiteoutsRemoveLowerFilesAndOpaqueKeepsThisLayers() throws {
        let d = try tempDir()
        defer { try? FS.removeTree(d); unlink(d + ".tar") }
        var lower = TarBuilder()
        lower.file("etc/keep", "k"); lower.file("etc/gone", "g")
        lower.dir("opt/app"); lower.file("opt/app/old1", "1"); lower.file("opt/app/sub/old2", "2")
        _ = try extract(lower, into: d, layer: true)
        var upper = TarBuilder()
        upper.file("etc/.wh.gone", "")
        upper.file("opt/app/new", "n")          // before the opaque marker in stream order
        upper.file("opt/app/.wh..wh..opq", "")
        upper.file("opt/app/newer", "n2")
        upper.file(".wh.nonexistent", "")
        _ = try extract(upper, into: d, layer: true)
        #expect(FS.exists(d + "/etc/keep"))
        #expect(!FS.exists(d + "/etc/gone"))
        #expect(!FS.exists(d + "/etc/.wh.gone"))
        let app = try FileManager.default.contentsOfDirectory(atPath: d + "/opt/app").sorted()
        #expect(app == ["new", "newer"])
    }

    @Test func digestsCoverBlobAndUncompressedStream() throws {
        let d = try tempDir()
        defer { try? FS.removeTree(d); unlink(d + ".tar") }
        var b = TarBuilder()
        b.file("hello", "world")
        let r = try extract(b, into: d)
        let bytes = b.finished()
        #expect(r.blobDigest == Digest.of(bytes))
        #expect(r.diffID == Digest.of(bytes), "uncompressed: blob and diff_id agree")
        #expect(r.entries == 1)
    }

    @Test(arguments: ["gzip", "xz", "zstd"])
    func compressionIsDetectedByContent(_ tool: String) throws {
        let d = try tempDir()
        defer { try? FS.removeTree(d) }
        var b = TarBuilder()
        b.file("f", "content")
        let plain = d + "/in.tar"
        try b.finished().write(to: URL(fileURLWithPath: plain))
        let c = Subprocess.run(["/usr/bin/env", tool, "-q", "-k", plain])
        try #require(c.status == 0, "\(tool): \(c)")
        let ext = ["gzip": ".gz", "xz": ".xz", "zstd": ".zst"][tool]!
        rename(plain + ext, d + "/no-extension")
        try FS.mkdirs(d + "/out")
        let fd = open(d + "/no-extension", O_RDONLY)
        defer { close(fd) }
        let r = try SafeExtractor(root: d + "/out").extract(fd: fd, name: "x")
        #expect(try String(contentsOfFile: d + "/out/f", encoding: .utf8) == "content")
        #expect(r.diffID == Digest.of(b.finished()), "diff_id is over the decompressed tar")
        #expect(r.blobDigest != r.diffID)
    }
}
