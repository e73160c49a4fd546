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

    @Test func setgidIsKeptAsAPermissionBitAndRecordedAndSocketsAreNotCreated() throws {
        let d = try tempDir()
        defer { try? FS.removeTree(d); unlink(d + ".tar") }
        var b = TarBuilder()
        b.file("usr/bin/wall", "#!/bin/sh\n", mode: 0o2755, uid: 0, gid: 5)    // setgid tty, as in Debian
        b.file("usr/bin/sg-root", "#!/bin/sh\n", mode: 0o2711)                 // setgid, owned 0:0
        b.dir("var/mail", mode: 0o2775, uid: 0, gid: 8)                         // a setgid directory
        b.file("etc/plain", "p")
        b.socket("run/daemon.sock")
        b.file("after-the-socket", "still read")
        let r = try extract(b, into: d)
        var st = stat()
        // The setgid bit stays, as a plain permission bit on a file that is ours: the archive's
        // group is not applied (rootless cannot; it is recorded instead).
        #expect(lstat(d + "/usr/bin/wall", &st) == 0 && st.st_mode & 0o7777 == 0o2755, "\(String(st.st_mode, radix: 8))")
        #expect(st.st_uid == geteuid() && st.st_gid == getegid())
        #expect(lstat(d + "/usr/bin/sg-root", &st) == 0 && st.st_mode & 0o7777 == 0o2711 && st.st_gid == getegid())
        #expect(lstat(d + "/var/mail", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR && st.st_mode & 0o7777 == 0o2775)
        #expect(r.ownership.contains(OwnershipRecord(path: "usr/bin/wall", uid: 0, gid: 5, mode: 0o2755)), "\(r.ownership)")
        #expect(r.ownership.contains(OwnershipRecord(path: "usr/bin/sg-root", uid: 0, gid: 0, mode: 0o2711)), "setgid at 0:0 too")
        #expect(r.ownership.contains(OwnershipRecord(path: "var/mail", uid: 0, gid: 8, mode: 0o2775)))
        #expect(!r.ownership.contains { $0.path == "etc/plain" }, "0:0 without setuid/setgid is not recorded")
        // No socket is ever made (README: sockets skipped), and what follows is still read.
        // (That the entry is skipped, rather than written as an empty file, is not asserted:
        // libarchive reads no socket type from tar; reported as a bug.)
        #expect(lstat(d + "/run/daemon.sock", &st) != 0 || (st.st_mode & S_IFMT) != S_IFSOCK, "a socket was created")
        #expect(try String(contentsOfFile: d + "/after-the-socket", encoding: .utf8) == "still read")
        #expect(r.entries == 6, "every entry read, the socket too: \(r.entries)")
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

/// Issue 17: names are bytes. A name that is not UTF-8 is kept byte for byte (and is not
/// confused with the name its bytes would be "repaired" to), in files, hardlink targets,
/// whiteouts and the ownership records; where one is shown, its bad bytes are escaped.
struct ByteNameTests {
    static let latin1 = FSName.string([0x63, 0x61, 0x66, 0xE9] + Array(".txt".utf8))          // caf\xe9.txt
    static let repaired = "caf\u{FFFD}.txt"                                                     // what String(cString:) made of it
    static let link = FSName.string(Array("link".utf8) + [0xFF])
    static let gone = FSName.string(Array("gone".utf8) + [0xFE])

    func names(_ dir: String) throws -> Set<[UInt8]> {
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        return Set(try SafeExtractor.list(fd, rel: "").map(FSName.bytes))
    }

    @Test func mappingIsOneToOneAndRoundTrips() {
        let samples: [[UInt8]] = [[0xE9], [0xEF, 0xBF, 0xBD], [0xEE, 0xBE, 0x80], Array("plain".utf8), [0xC3, 0xA9], [0xF0, 0x9F, 0x98, 0x80, 0xFF]]
        for s in samples { #expect(FSName.bytes(FSName.string(s)) == s, "\(s)") }
        #expect(Set(samples.map { FSName.string($0) }).count == samples.count)
        #expect(Shown.text(ByteNameTests.latin1) == "caf\\xe9.txt")
    }

    @Test func nonUTF8NamesSurviveExtractionByteForByte() throws {
        var t = Array("/tmp/azl-bytes-XXXXXX".utf8CString)
        let d = String(cString: mkdtemp(&t)!)
        defer { try? FS.removeTree(d); unlink(d + ".tar"); unlink(d + "2.tar") }
        var b = TarBuilder()
        b.dir("n")
        b.file("n/" + ByteNameTests.latin1, "latin-1\n", uid: 1000, gid: 1000)
        b.file("n/" + ByteNameTests.repaired, "replacement\n")
        b.hardlink("n/" + ByteNameTests.link, to: "n/" + ByteNameTests.latin1)
        b.file("n/" + ByteNameTests.gone, "x")
        try b.finished().write(to: URL(fileURLWithPath: d + ".tar"))
        let fd = open(d + ".tar", O_RDONLY)
        let r = try SafeExtractor(root: d, options: ExtractOptions(ociLayer: true)).extract(fd: fd, name: d + ".tar")
        close(fd)
        #expect(r.refused.isEmpty, "\(r.refused)")
        let want: Set<[UInt8]> = Set([ByteNameTests.latin1, ByteNameTests.repaired, ByteNameTests.link, ByteNameTests.gone].map(FSName.bytes))
        #expect(try names(d + "/n") == want, "four entries in, four files out")
        #expect(try String(contentsOfFile: d + "/n/" + ByteNameTests.repaired, encoding: .utf8) == "replacement\n")
        var s1 = stat(), s2 = stat()
        #expect(stat(FSName.cPath(d + "/n/" + ByteNameTests.latin1), &s1) == 0 && stat(FSName.cPath(d + "/n/" + ByteNameTests.link), &s2) == 0)
        #expect(s1.st_ino == s2.st_ino, "the hardlink's target was found by its bytes")
        #expect(r.ownership.map(\.path) == ["n/" + ByteNameTests.latin1])

        // A whiteout of a name that is not UTF-8 removes exactly that name.
        var w = TarBuilder()
        w.file("n/.wh." + ByteNameTests.gone)
        try w.finished().write(to: URL(fileURLWithPath: d + "2.tar"))
        let fd2 = open(d + "2.tar", O_RDONLY)
        _ = try SafeExtractor(root: d, options: ExtractOptions(ociLayer: true)).extract(fd: fd2, name: d + "2.tar")
        close(fd2)
        #expect(try names(d + "/n") == want.subtracting([FSName.bytes(ByteNameTests.gone)]))
    }

    @Test func theBoundStopsABombBeforeItIsWritten() throws {
        var t = Array("/tmp/azl-bomb-XXXXXX".utf8CString)
        let d = String(cString: mkdtemp(&t)!)
        defer { try? FS.removeTree(d); unlink(d + ".tar") }
        var b = TarBuilder()
        b.file("small", bytes: Data(count: 1000))
        b.file("big", bytes: Data(count: 5000))
        try b.finished().write(to: URL(fileURLWithPath: d + ".tar"))
        let fd = open(d + ".tar", O_RDONLY)
        defer { close(fd) }
        #expect { try SafeExtractor(root: d, options: ExtractOptions(maxBytes: 4096)).extract(fd: fd, name: "layer x") } throws: { e in
            (e as? AZLError)?.kind == .tooLarge && (e as? AZLError)?.message.contains("layer x") == true
        }
        #expect(!FileManager.default.fileExists(atPath: d + "/big"), "nothing of the entry past the bound was written")
    }
}
