import Core
import Foundation
import Testing
import TestSupport

/// Issue 17 through the CLI, as the unprivileged user, against the hostile registry: a
/// compression bomb fails and leaves nothing; names that are not UTF-8 survive import, pull
/// and a run that lists them.
@Suite(.serialized) struct HostilePullTests {
    static let latin1: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".txt".utf8)
    static let repaired: [UInt8] = Array("caf".utf8) + [0xEF, 0xBF, 0xBD] + Array(".txt".utf8)
    static let link: [UInt8] = Array("link".utf8) + [0xFF]

    func setUp(_ what: String) -> (Rootless, HostileRegistry)? {
        if let why = Rootless.unavailableReason() { Issue.record("cannot run rootless tests: \(why)"); return nil }
        if let why = HostileRegistry.unavailableReason() { unavailable("\(what): \(why)"); return nil }
        let base = RegistryFixture.Arch.native.alpine
        guard FS.exists(base.path) else { unavailable("\(what): missing \(base.path)"); return nil }
        do {
            return (try Rootless(), try HostileRegistry(baseLayer: base.path, arch: RegistryFixture.Arch.native.rawValue))
        } catch {
            Issue.record("\(error)"); return nil
        }
    }

    func list(_ dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    /// The names in `dir`, as bytes.
    func byteNames(_ dir: String) -> Set<[UInt8]> {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out = Set<[UInt8]>()
        while let e = readdir(d) {
            let n = withUnsafeBytes(of: e.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if n != [0x2E] && n != [0x2E, 0x2E] { out.insert(n) }
        }
        return out
    }

    @Test func aCompressionBombPastTheBoundFailsAndLeavesNothing() throws {
        guard let (r, hostile) = setUp("aCompressionBombPastTheBoundFailsAndLeavesNothing") else { return }
        defer { hostile.stop(); r.cleanup() }
        let root = try r.makeDirectory("state")
        // 64 MiB in a 64 KiB layer: past 200 times its size and past a 1 MiB floor.
        let res = r.azl(["pull", hostile.reference("bomb")], root: root, env: ["AZL_UNPACK_MIN_BYTES": "1048576"])
        #expect(res.status == 125, "\(res)")
        let lines = res.stderr.split(separator: "\n").filter { $0.hasPrefix("azl-shell:") }
        #expect(lines.count == 1 && lines[0].contains("unpacks to more than") && lines[0].contains("AZL_UNPACK_MAX_RATIO"), "\(res.stderr)")
        #expect(list(root + "/trees").isEmpty && list(root + "/images").isEmpty && list(root + "/tmp").isEmpty, "no tree, no record")
        let partials = list(root + "/partial").filter { !$0.hasSuffix(".lock") }
        #expect(partials.isEmpty, "no partial: \(partials)")
        let layerBlobs = try list(root + "/blobs/sha256").filter { (try FS.readFile(root + "/blobs/sha256/" + $0)).count > 10_000 }
        #expect(layerBlobs.isEmpty, "the bomb's blob is not kept: \(layerBlobs)")
        // Within the bound (a larger floor), the same image pulls.
        let ok = r.azl(["pull", "-q", hostile.reference("bomb")], root: root, env: ["AZL_UNPACK_MIN_BYTES": "\(128 << 20)"])
        #expect(ok.status == 0, "\(ok)")
    }

    @Test func nonUTF8NamesSurviveImportPullAndARunThatListsThem() throws {
        guard let (r, hostile) = setUp("nonUTF8NamesSurviveImportPullAndARunThatListsThem") else { return }
        defer { hostile.stop(); r.cleanup() }
        let want: Set<[UInt8]> = [HostilePullTests.latin1, HostilePullTests.repaired, HostilePullTests.link]

        // import: two entries that differ only in the bad byte are two files.
        let inputs = try r.makeDirectory("inputs")
        var b = TarBuilder()
        b.dir("names")
        b.file("names/" + FSName.string(HostilePullTests.latin1), "latin-1\n")
        b.file("names/" + FSName.string(HostilePullTests.repaired), "replacement\n")
        b.hardlink("names/" + FSName.string(HostilePullTests.link), to: "names/" + FSName.string(HostilePullTests.latin1))
        try b.finished().write(to: URL(fileURLWithPath: inputs + "/names.tar"))
        r.chownTree(inputs)
        let importRoot = try r.makeDirectory("import-state")
        let imp = r.azl(["import", inputs + "/names.tar", "--name", "names:1"], root: importRoot)
        #expect(imp.status == 0, "\(imp)")
        let importedTree = try #require(list(importRoot + "/trees").first)
        #expect(byteNames(importRoot + "/trees/" + importedTree + "/rootfs/names") == want)

        // pull
        let root = try r.makeDirectory("state")
        let pull = r.azl(["pull", "-q", hostile.reference("names")], root: root)
        #expect(pull.status == 0, "\(pull)")
        let tree = try #require(list(root + "/trees").first)
        #expect(byteNames(root + "/trees/" + tree + "/rootfs/names") == want)

        // run (busybox ls prints a bad byte as '?': the names are printed by the shell as they are)
        guard SandboxFixture.available(RegistryFixture.Arch.native.alpine, for: "nonUTF8NamesSurviveImportPullAndARunThatListsThem") else { return }
        let run = r.azl(["run", "--image", hostile.reference("names"), "--", "sh", "-c", "for f in /names/*; do printf '%s\\n' \"$f\"; done | od -An -tx1 | tr -d ' \\n'"], root: root)
        #expect(run.status == 0, "\(run)")
        for n in want {
            let hex = n.map { String(format: "%02x", $0) }.joined()
            #expect(run.stdout.contains(hex), "\(hex) listed: \(run.stdout)")
        }
    }
}
