import Core
import Foundation
import Testing
import TestSupport

/// `import`, `images`, `rmi`, `prune` as the unprivileged user, on hostile archives built in
/// code and on the real distro tarballs.
@Suite(.serialized) struct ImportTests {
    /// A user-owned sandbox: state root, an "outside" folder with a canary, and the tar files.
    final class Fixture {
        let r: Rootless
        let state: String
        let outside: String
        let inputs: String
        init() throws {
            r = try Rootless()
            state = r.base + "/state"
            outside = try r.makeDirectory("outside")
            inputs = try r.makeDirectory("inputs")
            try Data("canary\n".utf8).write(to: URL(fileURLWithPath: outside + "/canary"))
            r.chownTree(outside)
        }
        func azl(_ args: String...) -> RunResult { r.azl(args, root: state) }
        func azl(_ args: [String], stdin: Data? = nil) -> RunResult { r.azl(args, root: state, stdin: stdin) }
        func tar(_ b: TarBuilder, _ name: String = "t.tar") throws -> String {
            try b.finished().write(toTemp: name, in: inputs)
        }
        /// Every path under the test folder except the store, with size and mtime.
        func snapshotOutsideStore() -> [String: String] {
            var out: [String: String] = [:]
            let fm = FileManager.default
            guard let e = fm.enumerator(atPath: r.base) else { return out }
            // azl-shell's own folders in HOME (the list of stores to hide) are state too.
            let own = ["state", "home/.local", "home/.cache", "home/.config"]
            for case let rel as String in e where rel != "home" && !own.contains(where: { rel == $0 || rel.hasPrefix($0 + "/") }) {
                var st = stat()
                if lstat(r.base + "/" + rel, &st) == 0 {
                    out[rel] = "\(st.st_mode) \(st.st_size) \(st.st_mtim.tv_sec) \(st.st_nlink)"
                }
            }
            return out
        }
        func records() throws -> [[String: Any]] {
            let res = azl("images", "--json")
            guard res.status == 0 else { throw AZLError(.io, "images failed: \(res)") }
            return try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as? [[String: Any]] ?? []
        }
        func tree(of name: String) throws -> String {
            let rec = try records().first { "\($0["name"]!):\($0["tag"]!)" == name }
            let t = try #require(rec?["tree"] as? String)
            return state + "/trees/" + t.dropFirst(7) + "/rootfs"
        }
        func tmpEntries() -> [String] {
            (try? FileManager.default.contentsOfDirectory(atPath: state + "/tmp")) ?? []
        }
        /// The entries of a folder of the store (`trees`, `blobs/sha256`, `images`), sorted.
        func list(_ sub: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: state + "/" + sub)) ?? []).sorted()
        }
        /// `prune --json`, decoded.
        func prune() throws -> (trees: [String], blobs: [String], bytes: Int64, inUse: [String]) {
            let res = azl("prune", "--json")
            guard res.status == 0 else { throw AZLError(.io, "prune failed: \(res)") }
            let o = try #require(try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as? [String: Any], "\(res)")
            return (o["trees"] as? [String] ?? ["?"], o["blobs"] as? [String] ?? ["?"],
                    (o["bytes"] as? NSNumber)?.int64Value ?? -1, o["inUse"] as? [String] ?? ["?"])
        }
    }

    static let unavailable = Rootless.unavailableReason()

    @Test func hostileArchiveStaysInsideTheTree() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        let before = f.snapshotOutsideStore()
        var b = TarBuilder()
        b.dir("./")
        b.file("../escape-dotdot", "x")
        b.file("a/../../escape-mid", "x")
        b.file(f.outside + "/abs-file", "absolute")          // neutralised into the tree
        b.symlink("out", to: f.outside)                       // absolute symlink out of the tree
        b.file("out/via-symlink", "pwned")                    // parent is that symlink
        b.symlink("up", to: "../../../../../../..")
        b.file("up/" + f.outside.dropFirst() + "/via-dotdot-link", "pwned")
        b.dir("d")
        b.symlink("d", to: f.outside)                         // a directory replaced by a symlink
        b.file("d/after-replace", "pwned")
        b.hardlink("hl-abs", to: f.outside + "/canary")       // hardlink target outside
        b.hardlink("hl-dotdot", to: "../outside/canary")
        b.symlink("canary-link", to: f.outside + "/canary")
        b.file("canary-link", "overwrite through a symlink?") // must replace the link, not write through
        b.device("dev/null", major: 1, minor: 3)
        b.device("dev/sda", char: false, major: 8, minor: 0, mode: 0o660)
        b.fifo("run/fifo")
        b.file("usr/bin/setuid", "#!/bin/sh\n", mode: 0o4755)
        b.file("etc/shadow", "secret", mode: 0o640, uid: 0, gid: 42)
        b.file("home/u/file", "mine", mode: 0o600, uid: 1000, gid: 1000)
        b.dir("ro", mode: 0o555)
        b.file("ro/inside", "written into a read-only dir")
        b.dir("locked", mode: 0o000)
        b.file(String(repeating: "long/", count: 30) + "name", "long path via pax")
        let res = f.azl(["import", try f.tar(b, "evil.tar"), "--name", "evil:1"])
        #expect(res.status == 0, "\(res)")
        #expect(res.stderr.contains("refused"), "refused entries are reported: \(res.stderr)")

        // Nothing outside the store changed, but for the archive we wrote.
        var after = f.snapshotOutsideStore()
        for k in after.keys where k.hasSuffix("/evil.tar") { after.removeValue(forKey: k) }
        #expect(after == before, "files outside the store changed")
        #expect(try String(contentsOfFile: f.outside + "/canary", encoding: .utf8) == "canary\n")
        #expect(!FS.exists(f.r.base + "/escape-dotdot"))
        #expect(!FS.exists(f.outside + "/abs-file"))
        #expect(!FS.exists(f.outside + "/via-symlink"))

        let t = try f.tree(of: "evil:1")
        // Absolute names and symlinks are taken relative to the tree.
        #expect(FS.exists(t + f.outside + "/abs-file"))
        #expect(FS.exists(t + f.outside + "/via-symlink"))
        #expect(FS.exists(t + f.outside + "/via-dotdot-link"))
        #expect(FS.exists(t + f.outside + "/after-replace"))
        #expect(!FS.exists(t + "/hl-abs") && !FS.exists(t + "/hl-dotdot"))
        var st = stat()
        #expect(lstat(t + "/canary-link", &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG)
        #expect(!FS.exists(t + "/dev/null"), "device nodes are not created")
        #expect(lstat(t + "/run/fifo", &st) == 0 && (st.st_mode & S_IFMT) == S_IFIFO)
        #expect(lstat(t + "/usr/bin/setuid", &st) == 0 && st.st_mode & 0o7777 == 0o4755 && st.st_uid == f.r.uid)
        #expect(lstat(t + "/ro", &st) == 0 && st.st_mode & 0o7777 == 0o555)
        #expect(try String(contentsOfFile: t + "/ro/inside", encoding: .utf8) == "written into a read-only dir")
        #expect(lstat(t + "/locked", &st) == 0 && st.st_mode & 0o7777 == 0)
        #expect(FS.exists(t + "/" + String(repeating: "long/", count: 30) + "name"))
        // Devices and original owners are recorded for the sandbox.
        let meta = try String(contentsOfFile: (t as NSString).deletingLastPathComponent + "/meta.json", encoding: .utf8)
        #expect(meta.contains("\"dev/null\"") && meta.contains("\"dev/sda\""))
        let own = try String(contentsOfFile: (t as NSString).deletingLastPathComponent + "/ownership", encoding: .utf8)
        #expect(own.contains("0 42 640 etc/shadow"))
        #expect(own.contains("1000 1000 600 home/u/file"))
        #expect(own.contains("0 0 4755 usr/bin/setuid"))
        // The store can remove what it made, read-only directories included.
        #expect(f.azl("rmi", "evil:1").status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").isEmpty)
    }

    @Test func setgidIsAPermissionBitInTheTreeAndInTheSidecar() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        var b = TarBuilder()
        b.file("usr/bin/wall", "#!/bin/sh\n", mode: 0o2755, uid: 0, gid: 5)
        b.file("usr/bin/sg-root", "#!/bin/sh\n", mode: 0o2711)
        b.dir("var/mail", mode: 0o2775, uid: 0, gid: 8)
        b.file("usr/bin/both", "#!/bin/sh\n", mode: 0o6755, uid: 0, gid: 42)
        b.file("etc/plain", "p")
        b.socket("run/daemon.sock")
        b.file("etc/after-the-socket", "still read")
        let res = f.azl("import", try f.tar(b, "setgid.tar"), "--name", "sg:1")
        #expect(res.status == 0, "\(res)")
        let t = try f.tree(of: "sg:1")
        var st = stat()
        // Kept as permission bits on the user's own files (the store root is 0700), the user's group.
        for (path, mode) in [("usr/bin/wall", 0o2755), ("usr/bin/sg-root", 0o2711), ("usr/bin/both", 0o6755), ("var/mail", 0o2775)] {
            #expect(lstat(t + "/" + path, &st) == 0 && st.st_mode & 0o7777 == mode_t(mode) && st.st_uid == f.r.uid && st.st_gid == f.r.gid,
                    "\(path): \(String(st.st_mode, radix: 8)) \(st.st_uid):\(st.st_gid)")
        }
        // The original owner and mode are in the ownership sidecar, one line each.
        let own = try String(contentsOfFile: (t as NSString).deletingLastPathComponent + "/ownership", encoding: .utf8)
        let lines = Set(own.split(separator: "\n").map(String.init))
        for want in ["0 5 2755 usr/bin/wall", "0 0 2711 usr/bin/sg-root", "0 8 2775 var/mail", "0 42 6755 usr/bin/both"] {
            #expect(lines.contains(want), "missing '\(want)' in:\n\(own)")
        }
        #expect(!own.contains("etc/plain"))
        // No socket in the tree; the rest of the archive is there.
        #expect(lstat(t + "/run/daemon.sock", &st) != 0 || (st.st_mode & S_IFMT) != S_IFSOCK, "a socket was created")
        #expect(try String(contentsOfFile: t + "/etc/after-the-socket", encoding: .utf8) == "still read")
    }

    @Test func badInputsFailCleanlyWithOneLine() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        let junk = try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }).write(toTemp: "junk.tar.gz", in: f.inputs)
        let empty = try Data().write(toTemp: "empty.tar", in: f.inputs)
        let real = try Data(contentsOf: URL(fileURLWithPath: RealRootfs.alpineX86.path))
        let cut = try real.prefix(real.count / 2).write(toTemp: "cut.tar.gz", in: f.inputs)
        let cases: [(String, String)] = [
            (junk, "not a tar archive"), (empty, "empty"), (cut, "truncated"),
            (f.inputs + "/missing.tar", "no such file"), (f.inputs, "directory"),
        ]
        for (path, words) in cases {
            let res = f.azl("import", path, "--name", "bad:1")
            #expect(res.status == 125, "\(path): \(res)")
            let lines = res.stderr.split(separator: "\n")
            #expect(lines.count == 1 && res.stderr.contains(words) && res.stderr.contains(path), "\(path): \(res.stderr)")
        }
        let badName = f.azl("import", RealRootfs.alpineX86.path, "--name", "Bad Name")
        #expect(badName.status == 125 && badName.stderr.contains("invalid image name"))
        #expect(try f.records().isEmpty)
        #expect(f.tmpEntries().isEmpty, "nothing half-written is left: \(f.tmpEntries())")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").isEmpty)
        let unknown = f.azl("rmi", "nope:1")
        #expect(unknown.status == 125 && unknown.stderr.contains("no image named nope:1"))
    }

    @Test func fullDiskLeavesNothingBehind() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        guard geteuid() == 0 else {
            TestSupport.unavailable("fullDiskLeavesNothingBehind: needs root to mount a small tmpfs for the user; run under CI (.ci/run, as root) to cover it")
            return
        }
        let f = try Fixture()
        let small = try f.r.makeDirectory("small")
        let m = Subprocess.run(["/bin/mount", "-t", "tmpfs", "-o", "size=3m,uid=\(f.r.uid),gid=\(f.r.gid),mode=0700", "tmpfs", small])
        try #require(m.status == 0, "mount tmpfs: \(m)")
        defer { _ = Subprocess.run(["/bin/umount", small]) }
        let res = f.r.azl(["import", RealRootfs.alpineX86.path, "--name", "a:1"], root: small + "/state")
        #expect(res.status == 125, "\(res)")
        #expect(res.stderr.contains("No space left on device") && res.stderr.split(separator: "\n").count == 1, "\(res.stderr)")
        let tmp = (try? FileManager.default.contentsOfDirectory(atPath: small + "/state/tmp")) ?? []
        #expect(tmp.isEmpty, "scratch left behind: \(tmp)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: small + "/state/trees")) ?? []).isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: small + "/state/images")) ?? []).isEmpty)
    }

    @Test(arguments: RealRootfs.allCases)
    func realTarballImportsAndLists(_ image: RealRootfs) throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        let res = f.azl("import", image.path, "--name", "real:1")
        #expect(res.status == 0, "\(res)")
        let recs = try f.records()
        #expect(recs.count == 1)
        #expect(recs.first?["digest"] as? String == "sha256:" + image.sha256, "the image id is the tarball's sha256")
        let t = try f.tree(of: "real:1")
        let osr = try String(contentsOfFile: t + "/etc/os-release", encoding: .utf8)
        switch image {
        case .alpineX86, .alpineArm: #expect(osr.contains("ID=alpine"))
        case .almaArm:
            #expect(osr.contains("ID=\"almalinux\""))
            var st = stat()
            #expect(lstat(t + "/proc", &st) == 0 && st.st_mode & 0o7777 == 0o555, "dr-xr-xr-x kept")
            #expect(lstat(t + "/root", &st) == 0 && st.st_mode & 0o7777 == 0o550)
            // Hardlinks stay hardlinks.
            let linked = Subprocess.run(["/usr/bin/find", t, "-type", "f", "-links", "+1"]).stdout.split(separator: "\n").count
            #expect(linked > 700, "hardlinked files: \(linked)")
        case .debian:
            #expect(osr.contains("ID=debian"))
            var st = stat()
            #expect(lstat(t + "/usr/bin/passwd", &st) == 0 && st.st_mode & 0o7777 == 0o4755 && st.st_uid == f.r.uid)
            let own = try String(contentsOfFile: (t as NSString).deletingLastPathComponent + "/ownership", encoding: .utf8)
            #expect(own.contains(" etc/shadow"), "non-root group of /etc/shadow recorded")
        }
        let list = f.azl("images")
        #expect(list.status == 0 && list.stdout.contains("real") && list.stdout.contains(String(image.sha256.prefix(12))))
    }

    @Test func sameContentTwiceCostsNothingAndStdinWorks() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        #expect(f.azl("import", RealRootfs.alpineX86.path, "--name", "one:1").status == 0)
        let second = f.azl("import", RealRootfs.alpineX86.path, "--name", "two:2")
        #expect(second.status == 0 && second.stderr.contains("nothing unpacked"), "\(second)")
        let piped = f.azl(["import", "-", "--name", "three:3"],
                          stdin: try Data(contentsOf: URL(fileURLWithPath: RealRootfs.alpineX86.path)))
        #expect(piped.status == 0, "\(piped)")
        let recs = try f.records()
        #expect(recs.count == 3)
        #expect(Set(recs.compactMap { $0["tree"] as? String }).count == 1, "one unpacked tree for one content")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").count == 1)
        // The tarball is not copied in: the tree is what is kept.
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/blobs/sha256").isEmpty)
        // An image id with three names: refused, naming them (docker and podman ask the same).
        let id = try #require(recs.first?["digest"] as? String)
        let ambiguous = f.azl("rmi", id)
        #expect(ambiguous.status == 125 && ambiguous.stderr.contains("has 3 names: one:1, three:3, two:2")
                && ambiguous.stderr.contains("--force"), "\(ambiguous)")
        #expect(try f.records().count == 3, "a refused rmi removed something")
        // rmi of one name keeps the shared data; of the last, frees it.
        #expect(f.azl("rmi", "one:1", "two:2").status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").count == 1)
        #expect(f.azl("import", RealRootfs.alpineX86.path, "--name", "four:4").status == 0)
        let all = f.azl("rmi", "--force", String(id.dropFirst(7).prefix(12)))
        #expect(all.status == 0 && all.stderr.contains("removed four:4") && all.stderr.contains("removed three:3"), "\(all)")
        #expect(try f.records().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/blobs/sha256").isEmpty)
    }

    @Test func concurrentImportsOfOneFileBothSucceedWithOneTree() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        var results = [RunResult?](repeating: nil, count: 4)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            // Two from the file, two from stdin: the stdin ones cannot know the digest up front.
            let r = i < 2 ? f.azl("import", RealRootfs.debian.path, "--name", "c\(i):1")
                : f.azl(["import", "-", "--name", "c\(i):1"], stdin: try? Data(contentsOf: URL(fileURLWithPath: RealRootfs.alpineX86.path)))
            lock.lock(); results[i] = r; lock.unlock()
        }
        for r in results { #expect(r?.status == 0, "\(String(describing: r))") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").count == 2)
        #expect(f.tmpEntries().isEmpty)
    }

    @Test func killDuringImportLeavesOldStateThenImportWorks() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        // Start a long import, wait until it is visibly unpacking, kill -9 it.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        var argv = [f.r.azlShell, "import", RealRootfs.debian.path, "--name", "deb:1"]
        if geteuid() == 0 { argv = ["/usr/bin/setpriv", "--reuid=\(f.r.uid)", "--regid=\(f.r.gid)", "--init-groups", "--"] + argv }
        p.arguments = ["AZL_SHELL_ROOT=\(f.state)", "HOME=\(f.r.home)"] + argv
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Poll for the observable state we want to interrupt: files appearing in a scratch tree.
        var unpacking = false
        for _ in 0..<20_000 where p.isRunning {
            let scratch = f.tmpEntries().filter { $0.hasPrefix("import-") && !$0.hasSuffix(".lock") }
            if let s = scratch.first,
               let n = try? FileManager.default.contentsOfDirectory(atPath: f.state + "/tmp/" + s + "/tree/rootfs"), n.count > 3 {
                unpacking = true; break
            }
            usleep(1000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        try #require(unpacking, "the import finished before it could be interrupted")
        #expect(try f.records().isEmpty, "no record for a half import")
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/trees").isEmpty, "no half tree under trees/")
        #expect(!f.tmpEntries().isEmpty, "the killed import's scratch is still there, to be cleaned")
        // The next writer cleans up and succeeds.
        let again = f.azl("import", RealRootfs.debian.path, "--name", "deb:1")
        #expect(again.status == 0, "\(again)")
        #expect(f.tmpEntries().isEmpty, "stale scratch removed: \(f.tmpEntries())")
        let t = try f.tree(of: "deb:1")
        let count = Subprocess.run(["/usr/bin/find", t]).stdout.split(separator: "\n").count
        let listed = Subprocess.run(["/usr/bin/tar", "-tf", RealRootfs.debian.path]).stdout.split(separator: "\n").count
        #expect(count == listed, "complete tree: \(count) paths, the archive lists \(listed)")
    }

    // MARK: rmi, prune, --root

    /// A small tarball of its own content (nothing shared with the real ones).
    func tinyTar(_ f: Fixture, _ tag: String) throws -> (path: String, digest: String) {
        var b = TarBuilder()
        b.dir("etc")
        b.file("etc/os-release", "ID=tiny\nVERSION_ID=\(tag)\n")
        b.file("bin/tool", "#!/bin/sh\necho \(tag)\n", mode: 0o755)
        let path = try f.tar(b, "tiny-\(tag).tar")
        return (path, Digest.of(b.finished()).description)
    }

    @Test func rmiAndPruneFreeOnlyWhatNothingReferences() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        let alp = "sha256:" + RealRootfs.alpineX86.sha256, deb = "sha256:" + RealRootfs.debian.sha256
        // Two images that share nothing: other content, so other trees (imports keep no blob).
        for (path, name) in [(RealRootfs.alpineX86.path, "alp:1"), (RealRootfs.debian.path, "deb:1")] {
            let res = f.azl("import", path, "--name", name, "-q")
            try #require(res.status == 0, "\(name): \(res)")
        }
        var recs = try f.records()
        try #require(recs.count == 2, "\(recs)")
        #expect(recs.map { "\($0["name"]!):\($0["tag"]!)" } == ["alp:1", "deb:1"])
        #expect(recs.map { $0["digest"] as? String } == [alp, deb], "the image id of an import is the tarball's sha256")
        let alpTree = try #require(recs[0]["tree"] as? String), debTree = try #require(recs[1]["tree"] as? String)
        #expect(alpTree != debTree)
        #expect(f.list("trees") == [alpTree, debTree].map { String($0.dropFirst(7)) }.sorted())
        #expect(f.list("blobs/sha256").isEmpty, "an imported tarball is not copied in")
        // --digests: the image ids, one a line, in the listing's order.
        let digests = f.azl("images", "--digests")
        #expect(digests.status == 0 && digests.stdout == "\(alp)\n\(deb)\n", "\(digests)")

        let alpPath = f.state + "/trees/" + alpTree.dropFirst(7)
        let alpBefore = treeFingerprint(alpPath)
        // rmi of one name frees its tree at once; the other image is untouched.
        let rmi = f.azl("rmi", "deb:1")
        #expect(rmi.status == 0 && rmi.stdout.isEmpty && rmi.stderr == "removed deb:1 \(deb)\n", "\(rmi)")
        #expect(!FS.exists(f.state + "/trees/" + debTree.dropFirst(7)), "the removed image's tree is gone")
        #expect(f.list("trees") == [String(alpTree.dropFirst(7))])
        #expect(f.list("blobs/sha256").isEmpty)
        #expect(f.list("images").count == 1 && !f.list("images").contains { $0.hasPrefix("deb") }, "\(f.list("images"))")
        #expect(f.tmpEntries().filter { !$0.hasSuffix(".lock") }.isEmpty, "\(f.tmpEntries())")
        // prune then finds nothing more to free, and keeps what is referenced.
        let p1 = try f.prune()
        #expect(p1.trees.isEmpty && p1.blobs.isEmpty && p1.inUse.isEmpty && p1.bytes == 0, "\(p1)")
        // The removed import's digest -> diff_id note goes too; the kept one's stays.
        #expect(f.list("blobinfo") == [String(alp.dropFirst(7))], "\(f.list("blobinfo"))")
        #expect(treeFingerprint(alpPath) == alpBefore, "the other image's tree changed")
        // images --json: exactly the other image, as it was recorded.
        recs = try f.records()
        #expect(recs.count == 1, "\(recs)")
        if let a = recs.first {
            #expect(a["name"] as? String == "alp" && a["tag"] as? String == "1" && a["digest"] as? String == alp)
            #expect(a["tree"] as? String == alpTree && a["layers"] as? [String] == [alpTree], "one layer: the chain id is its diff_id")
            #expect((a["blobs"] as? [String])?.isEmpty == true && a["source"] as? String == RealRootfs.alpineX86.path)
            #expect(((a["size"] as? NSNumber)?.int64Value ?? 0) > 1_000_000, "\(a)")
        }
        let digestsAfter = f.azl("images", "--digests")
        #expect(digestsAfter.status == 0 && digestsAfter.stdout == "\(alp)\n", "\(digestsAfter)")
        // The other image still runs.
        if SandboxFixture.available(.alpineX86, for: "rmiAndPruneFreeOnlyWhatNothingReferences (run)") {
            let run = f.azl("run", "--image", "alp:1", "--", "true")
            #expect(run.status == 0 && run.stdout.isEmpty, "\(run)")
            let cat = f.azl("run", "--image", "alp:1", "--", "cat", "/etc/alpine-release")
            #expect(cat.status == 0 && cat.stdout == "3.20.3\n", "\(cat)")
            #expect(f.azl("run", "--image", "deb:1", "--", "true").status == 125, "the removed name no longer runs")
        }

        // What only a lost record referenced (the fix an unreadable record's error suggests:
        // remove the file, then prune) is freed by prune.
        let tiny = try tinyTar(f, "1")
        #expect(f.azl("import", tiny.path, "--name", "tiny:1", "-q").status == 0)
        let tinyTree = try #require(try f.records().first { $0["name"] as? String == "tiny" }?["tree"] as? String)
        let record = try #require(f.list("images").first { $0.hasPrefix("tiny") })
        #expect(unlink(f.state + "/images/" + record) == 0)
        let p2 = try f.prune()
        #expect(p2.trees == [tinyTree] && p2.blobs.isEmpty && p2.bytes > 0 && p2.inUse.isEmpty, "\(p2)")
        #expect(f.list("trees") == [String(alpTree.dropFirst(7))], "\(f.list("trees"))")
        #expect(treeFingerprint(alpPath) == alpBefore)

        // rmi by image id: the full digest, or a unique prefix of it.
        let tiny2 = try tinyTar(f, "2")
        #expect(f.azl("import", tiny2.path, "--name", "tiny:2", "-q").status == 0)
        let byFull = f.azl("rmi", tiny2.digest)
        #expect(byFull.status == 0 && byFull.stderr == "removed tiny:2 \(tiny2.digest)\n", "\(byFull)")
        let byPrefix = f.azl("rmi", String(alp.dropFirst(7).prefix(12)))
        #expect(byPrefix.status == 0 && byPrefix.stderr == "removed alp:1 \(alp)\n", "\(byPrefix)")
        let unknown = f.azl("rmi", "sha256:" + String(repeating: "0", count: 64))
        #expect(unknown.status == 125 && unknown.stderr.hasPrefix("azl-shell: no image named") && unknown.stderr.split(separator: "\n").count == 1,
                "\(unknown)")
        #expect(try f.records().isEmpty)
        let none = f.azl("images", "--digests")
        #expect(none.status == 0 && none.stdout.isEmpty, "\(none)")
        #expect(f.list("trees").isEmpty && f.list("blobs/sha256").isEmpty && f.list("images").isEmpty)
        #expect(f.tmpEntries().filter { !$0.hasSuffix(".lock") }.isEmpty, "\(f.tmpEntries())")
    }

    @Test func rootOptionPutsTheStateThere() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        let dir = f.r.base + "/by-option"
        let fromEnv = f.r.base + "/by-env"
        // --root wins over AZL_SHELL_ROOT, which wins over XDG_DATA_HOME (HOME here).
        let env = ["AZL_SHELL_ROOT": fromEnv]
        func azl(_ args: [String], cwd: String? = nil) -> RunResult { f.r.run([f.r.azlShell] + args, env: env, cwd: cwd) }
        let tiny = try tinyTar(f, "root")
        let imp = azl(["import", "--root", dir, tiny.path, "--name", "tiny:1"])
        #expect(imp.status == 0, "\(imp)")
        var st = stat()
        #expect(stat(dir, &st) == 0 && st.st_mode & 0o777 == 0o700 && st.st_uid == f.r.uid, "the root is created 0700, the user's")
        #expect(FS.exists(dir + "/images/tiny%3A1.json"), "\((try? FileManager.default.contentsOfDirectory(atPath: dir + "/images")) ?? [])")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/trees")) ?? []).count == 1)
        let list = azl(["images", "--root", dir, "--digests"])
        #expect(list.status == 0 && list.stdout == tiny.digest + "\n", "\(list)")
        if SandboxFixture.available(.alpineX86, for: "rootOptionPutsTheStateThere (run)") {
            let alp = azl(["import", "-q", "--root", dir, RealRootfs.alpineX86.path, "--name", "alp:1"])
            #expect(alp.status == 0, "\(alp)")
            let run = azl(["run", "--root", dir, "--image", "alp:1", "--", "cat", "/etc/alpine-release"])
            #expect(run.status == 0 && run.stdout == "3.20.3\n", "\(run)")
            #expect(FS.isDirectory(dir + "/cache/seccomp"), "run's compiled filter is cached under --root too")
            #expect(azl(["rmi", "--root", dir, "alp:1"]).status == 0)
        }
        #expect(azl(["rmi", "--root", dir, "tiny:1"]).status == 0)
        let pr = azl(["prune", "--root", dir])
        #expect(pr.status == 0 && pr.stderr.hasPrefix("removed 0 trees"), "\(pr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir + "/trees")) ?? ["?"]).isEmpty)
        // Nothing went to AZL_SHELL_ROOT or the XDG folders in HOME: at most the empty folder a
        // run makes where its working directory would show a store that does not exist yet (so
        // no command can plant one there), and the list of stores to hide.
        #expect(!FS.exists(fromEnv + "/images"), "AZL_SHELL_ROOT was used despite --root")
        let defaultStore = ((try? FileManager.default.contentsOfDirectory(atPath: f.r.home + "/.local/share/azl-shell")) ?? [])
        #expect(defaultStore == ["roots"] && !FS.exists(f.r.home + "/.cache/azl-shell"), "\(defaultStore)")
        #expect((try? String(contentsOfFile: f.r.home + "/.local/share/azl-shell/roots", encoding: .utf8))?.contains(dir + "\n") == true)
        // A relative --root is taken from the working directory.
        let work = try f.r.makeDirectory("work")
        let rel = azl(["import", "-q", "--root", "rel-state", tiny.path, "--name", "tiny:2"], cwd: work)
        #expect(rel.status == 0 && FS.exists(work + "/rel-state/images/tiny%3A2.json"), "\(rel)")
        let relList = azl(["images", "--root", work + "/rel-state", "--digests"])
        #expect(relList.stdout == tiny.digest + "\n", "\(relList)")
        #expect(!FS.exists(fromEnv + "/images"))
        // Without --root, AZL_SHELL_ROOT is the state: empty.
        let envList = azl(["images", "--json"])
        #expect(envList.status == 0 && envList.stdout.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: "")
                    .replacingOccurrences(of: " ", with: "") == "[]", "\(envList)")
    }
}
