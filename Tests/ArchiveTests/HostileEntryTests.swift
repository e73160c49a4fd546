@testable import Archive
import Core
import Foundation
import Testing
import TestSupport

/// Entries that cannot be placed inside the tree: a parent that is a symlink to nothing, a
/// file, a loop, a chain to a missing directory; names no Linux file system can hold; a symlink
/// whose target libarchive does not give us. Each archive is refused whole, with one line that
/// names the archive (as given) and the entry (as the archive spells it), never a scratch path;
/// nothing changes outside the store and nothing is left in it. Then directory modes and times
/// (deepest first), and that parents through symlinks to real directories still work.
@Suite(.serialized) struct HostileEntryTests {
    static let unavailable = Rootless.unavailableReason()

    /// A user-owned sandbox with an "outside" folder whose content must not change.
    final class Fixture {
        let r: Rootless
        let outside: String
        let inputs: String
        init() throws {
            r = try Rootless()
            outside = try r.makeDirectory("outside")
            inputs = try r.makeDirectory("inputs")
            try Data("canary\n".utf8).write(to: URL(fileURLWithPath: outside + "/canary"))
            r.chownTree(outside)
        }
        /// A fresh, empty state root for one import.
        func freshState(_ name: String) -> String { r.base + "/state-" + name }
        /// Import `file` (a name inside `inputs`, given relative: that is how it must be named).
        func importing(_ file: String, state: String) -> RunResult {
            r.azl(["import", file, "--name", "bad:1"], root: state, cwd: inputs)
        }
        func snapshot(_ dir: String) -> [String: String] {
            var out: [String: String] = [:]
            guard let e = FileManager.default.enumerator(atPath: dir) else { return out }
            for case let rel as String in e {
                var st = stat()
                if lstat(dir + "/" + rel, &st) == 0 { out[rel] = "\(st.st_mode) \(st.st_size) \(st.st_mtim.tv_sec)" }
            }
            return out
        }
        /// Entries of the store's folders that must be empty after a refused import.
        func leftovers(_ state: String) -> [String] {
            var found: [String] = []
            for sub in ["tmp", "trees", "images", "blobs/sha256", "blobinfo"] {
                for n in (try? FileManager.default.contentsOfDirectory(atPath: state + "/" + sub)) ?? [] {
                    found.append(sub + "/" + n)
                }
            }
            return found
        }
    }

    struct Case: CustomStringConvertible {
        var file: String
        var data: Data
        /// The entry as the message must name it (possibly cut, then "…").
        var entry: String
        var words: [String]
        var kind: AZLError.Kind
        var description: String { file }
    }

    /// A symlink whose target is only in a pax `linkpath` record, the header's own link field
    /// empty (valid: GNU tar and Python read it; libarchive 3.6 returns no target).
    static func paxOnlySymlink(_ name: String, to target: String) -> Data {
        func record(_ k: String, _ v: String) -> Data {
            let rest = " \(k)=\(v)\n".utf8.count
            var len = rest + 1
            while String(len).count + rest != len { len = String(len).count + rest }
            return Data("\(len) \(k)=\(v)\n".utf8)
        }
        func header(_ name: String, type: UInt8, size: Int) -> Data {
            var h = [UInt8](repeating: 0, count: 512)
            func put(_ s: String, _ off: Int) { for (i, b) in s.utf8.enumerated() { h[off + i] = b } }
            func octal(_ v: Int, _ off: Int, _ len: Int) {
                let s = String(v, radix: 8)
                put(String(repeating: "0", count: len - 1 - s.count) + s, off)
            }
            put(name, 0); octal(0o777, 100, 8); octal(0, 108, 8); octal(0, 116, 8)
            octal(size, 124, 12); octal(1_700_000_000, 136, 12); h[156] = type
            put("ustar", 257); put("00", 263)
            for i in 148..<156 { h[i] = 32 }
            octal(h.reduce(0) { $0 + Int($1) }, 148, 7)
            h[155] = 32
            return Data(h)
        }
        let body = record("linkpath", target)
        var d = header("PaxHeaders/x", type: UInt8(ascii: "x"), size: body.count)
        d += body + Data(count: (512 - body.count % 512) % 512)
        d += header(name, type: UInt8(ascii: "2"), size: 0)
        return d
    }

    static func cases(outside: String) -> [Case] {
        func tar(_ build: (inout TarBuilder) -> Void) -> Data {
            var b = TarBuilder(); build(&b); return b.finished()
        }
        let long300 = String(repeating: "c", count: 300)
        let deep = Array(repeating: String(repeating: "p", count: 100), count: 45).joined(separator: "/") + "/x"
        return [
            Case(file: "esc.tar", data: tar { $0.symlink("esc", to: outside + "/canary-dir"); $0.file("esc/f1", "pwned") },
                 entry: "esc/f1", words: ["its parent 'esc' is not a directory inside the image", "a target missing from the image", "damaged or hostile"],
                 kind: .unsafeArchive),
            Case(file: "file-parent.tar", data: tar { $0.file("f", "x"); $0.file("f/x", "y") },
                 entry: "f/x", words: ["its parent 'f' is not a directory", "a regular file"], kind: .unsafeArchive),
            Case(file: "loop.tar", data: tar { $0.symlink("a", to: "a"); $0.file("a/x", "y") },
                 entry: "a/x", words: ["its parent 'a'", "loops"], kind: .unsafeArchive),
            Case(file: "chain.tar", data: tar {
                     $0.symlink("l1", to: "l2"); $0.symlink("l2", to: "/l3"); $0.symlink("l3", to: outside + "/no-such-dir")
                     $0.file("./l1/x", "pwned")
                 },
                 entry: "./l1/x", words: ["its parent 'l1'", "a symlink to 'l2'", "chain of symlinks that ends at a missing target"],
                 kind: .unsafeArchive),
            Case(file: "nested.tar", data: tar {
                     $0.dir("d"); $0.symlink("d/e", to: "../../../gone"); $0.file("/d/e/f/g", "pwned")
                 },
                 entry: "/d/e/f/g", words: ["its parent 'd/e'", "a symlink to '../../../gone'"], kind: .unsafeArchive),
            Case(file: "fifo-parent.tar", data: tar { $0.fifo("p"); $0.file("p/x", "y") },
                 entry: "p/x", words: ["its parent 'p'", "a fifo"], kind: .unsafeArchive),
            Case(file: "control-chars.tar", data: tar { $0.symlink("n\nx\u{1b}[1m", to: "/nowhere"); $0.file("n\nx\u{1b}[1m/f", "y") },
                 entry: "n\\x0ax\\x1b[1m/f", words: ["its parent 'n\\x0ax\\x1b[1m'"], kind: .unsafeArchive),
            Case(file: "long-component.tar", data: tar { $0.file("d/" + long300 + "/x", "y") },
                 entry: String(("d/" + long300).prefix(200)) + "…", words: ["300 bytes long", "255"], kind: .corruptArchive),
            Case(file: "long-leaf.tar", data: tar { $0.dir("d"); $0.file("d/" + long300, "y") },
                 entry: String(("d/" + long300).prefix(200)) + "…", words: ["300 bytes long"], kind: .corruptArchive),
            Case(file: "long-path.tar", data: tar { $0.file(deep, "y") },
                 entry: String(deep.prefix(200)) + "…", words: ["\(deep.utf8.count) bytes long", "4095"], kind: .corruptArchive),
            Case(file: "pax-linkpath.tar", data: { () -> Data in
                     var b = TarBuilder(); b.file("before", "x")
                     return b.data + paxOnlySymlink("s", to: "before") + Data(count: 1024)
                 }(),
                 entry: "s", words: ["symlink without a target", "pax 'linkpath'"], kind: .corruptArchive),
        ]
    }

    /// In process, as the test runner: the error's kind and text, and that the folder being
    /// unpacked into (scratch, in the store) is never named.
    @Test func extractorNamesTheEntryNotTheFolder() throws {
        var t = Array("/tmp/azl-hostile-XXXXXX".utf8CString)
        let base = String(cString: try #require(mkdtemp(&t)))
        defer { try? FS.removeTree(base) }
        let outside = base + "/outside"
        try FS.mkdirs(outside)
        for c in Self.cases(outside: outside) {
            let root = base + "/root-" + c.file
            try FS.mkdirs(root)
            let path = try c.data.write(toTemp: c.file, in: base)
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            do {
                _ = try SafeExtractor(root: root).extract(fd: fd, name: c.file)
                Issue.record("\(c): extracted, should be refused")
            } catch let e as AZLError {
                #expect(e.kind == c.kind, "\(c): \(e)")
                #expect(e.exitStatus == 125)
                #expect(e.message.hasPrefix("entry '\(c.entry)' of \(c.file): "), "\(c): \(e)")
                for w in c.words { #expect(e.description.contains(w), "\(c): '\(w)' in \(e)") }
                #expect(!e.description.contains(root) && !e.description.contains(base + "/root"), "\(c): names the folder: \(e)")
                #expect(!e.description.contains("\n"), "\(c): \(e)")
                #expect(e.description.count < 700, "\(c): too long: \(e)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "\(c): wrote outside")
        }
    }

    /// Through the CLI, as the unprivileged user: exit 125, one line, nothing outside touched,
    /// nothing left in the store.
    @Test func importRefusesTheArchiveWithOneLineNamingTheEntry() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        let before = f.snapshot(f.outside)
        for c in Self.cases(outside: f.outside) {
            _ = try c.data.write(toTemp: c.file, in: f.inputs)
            let state = f.freshState(c.file)
            let res = f.importing(c.file, state: state)
            #expect(res.status == 125, "\(c): \(res)")
            let lines = res.stderr.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
            #expect(lines.count == 1, "\(c): one line: \(res.stderr)")
            let line = String(lines.first ?? "")
            #expect(line.hasPrefix("azl-shell: entry '\(c.entry)' of \(c.file): "), "\(c): \(line)")
            for w in c.words { #expect(line.contains(w), "\(c): '\(w)' in \(line)") }
            #expect(!line.contains("import-") && !line.contains(state) && !line.contains("/tree/rootfs"),
                    "\(c): names a scratch path: \(line)")
            #expect(res.stdout.isEmpty, "\(c): \(res)")
            #expect(f.leftovers(state).isEmpty, "\(c): left in the store: \(f.leftovers(state))")
            #expect(f.snapshot(f.outside) == before, "\(c): files outside changed")
            #expect(!FS.exists(f.outside + "/canary-dir") && !FS.exists(f.outside + "/no-such-dir"))
        }
        #expect(try String(contentsOfFile: f.outside + "/canary", encoding: .utf8) == "canary\n")
        // Standard input is named as such.
        let c = Self.cases(outside: f.outside)[0]
        let res = f.r.azl(["import", "-", "--name", "bad:1"], root: f.freshState("stdin"), stdin: c.data)
        #expect(res.status == 125 && res.stderr.hasPrefix("azl-shell: entry 'esc/f1' of standard input: "), "\(res)")
        #expect(f.leftovers(f.freshState("stdin")).isEmpty)
    }

    /// Directories get their archive mode and time deepest first, by where they really are:
    /// a parent losing owner-exec (0000) must not stop its children being fixed, also when a
    /// child was named through a symlink. Parents that are symlinks to directories in the tree
    /// still work, and the last entry for a directory wins.
    @Test func directoryModesAndTimesAreAppliedDeepestFirst() throws {
        if let why = Self.unavailable { Issue.record("cannot run rootless tests: \(why)"); return }
        let f = try Fixture()
        var b = TarBuilder()
        b.dir("a/b", mode: 0o751)
        b.file("a/b/f", "f")
        b.dir("a", mode: 0o000)
        b.dir("p/q", mode: 0o000)
        b.symlink("s", to: "p/q")
        b.dir("s/t", mode: 0o751)          // really p/q/t: deeper than p/q
        b.dir("r", mode: 0o700)
        b.dir("r", mode: 0o755)            // named twice: the last wins
        b.dir("usr/lib", mode: 0o755)
        b.symlink("lib", to: "/usr/lib")   // the merged-/usr layout, absolute
        b.file("lib/x", "through a symlink to a directory in the tree")
        _ = try b.finished().write(toTemp: "modes.tar", in: f.inputs)
        let state = f.freshState("modes")
        let res = f.importing("modes.tar", state: state)
        try #require(res.status == 0, "\(res)")
        let trees = (try? FileManager.default.contentsOfDirectory(atPath: state + "/trees")) ?? []
        try #require(trees.count == 1, "\(trees)")
        let t = state + "/trees/" + trees[0] + "/rootfs"
        func mode(_ p: String) -> (mode: mode_t, mtime: Int)? {
            var st = stat()
            guard lstat(t + "/" + p, &st) == 0 else { return nil }
            return (st.st_mode & 0o7777, st.st_mtim.tv_sec)
        }
        let archiveTime = 1_700_000_000
        func check(_ p: String, _ want: mode_t) {
            let m = mode(p)
            #expect(m?.mode == want, "\(p): mode \(String(m?.mode ?? 0o7777, radix: 8)), want \(String(want, radix: 8))")
            #expect(m?.mtime == archiveTime, "\(p): mtime \(m?.mtime ?? -1), want the archive's")
        }
        check("a", 0o000); check("p/q", 0o000); check("r", 0o755); check("usr/lib", 0o755)
        if geteuid() != 0 {
            // Run by the owner, not root: open the 0000 parents to look inside (mtime stays).
            chmod(t + "/a", 0o700); chmod(t + "/p/q", 0o700)
        }
        check("a/b", 0o751); check("p/q/t", 0o751)
        #expect(FS.exists(t + "/a/b/f") && FS.exists(t + "/usr/lib/x"))
        // The store can still remove what it made.
        #expect(f.r.azl(["rmi", "bad:1"], root: state).status == 0)
    }
}
