import Core
import Foundation
import Testing
import TestSupport

/// `azl-shell pull` and `run`'s pull on first use: the real CLI, as the unprivileged user,
/// against a real `docker-registry` on 127.0.0.1 (images pushed by skopeo/umoci from the real
/// rootfs tarballs). The registry is started once for the suite and stopped at its end.
final class CLIRegistry: Sendable {
    let fixture: RegistryFixture
    let registry: RegistryFixture.Server
    /// Alpine for this machine, one gzip layer, with the fixture's Env/WorkingDir/Entrypoint/Cmd.
    let single: RegistryFixture.Pushed
    /// Three layers with file and opaque whiteouts.
    let layers: RegistryFixture.Pushed
    /// The Alpine .tar.gz itself as the one layer blob; config with PATH only.
    let tarball: RegistryFixture.Pushed
    /// amd64 + arm64 index.
    let multi: RegistryFixture.Pushed
    let r: Rootless

    init() throws {
        let f = try RegistryFixture()
        do {
            fixture = f
            registry = try f.startRegistry()
            single = try f.pushAlpine(to: registry, repo: "test/alpine", tag: "3.20")
            layers = try f.pushMultiLayer(to: registry, repo: "test/layers", tag: "1")
            tarball = try f.pushTarball(to: registry, repo: "test/tarball", tag: "1")
            multi = try f.pushMultiArch(to: registry, repo: "test/multi", tag: "latest").index
            r = try Rootless()
        } catch {
            f.stop()
            throw error
        }
    }

    @TaskLocal static var current: CLIRegistry?
}

struct WithCLIRegistry: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        if let why = Rootless.unavailableReason() {
            Issue.record("cannot run rootless tests: \(why)")
            return
        }
        if let why = RegistryFixture.unavailableReason() {
            unavailable("PullTests: \(why)")
            return
        }
        let shared = try CLIRegistry()
        defer { shared.fixture.stop(); shared.r.cleanup() }
        try await CLIRegistry.$current.withValue(shared) { try await function() }
    }
}

@Suite(.serialized, WithCLIRegistry())
struct PullTests {
    var shared: CLIRegistry { CLIRegistry.current! }
    var fixture: RegistryFixture { shared.fixture }
    var r: Rootless { shared.r }

    /// A fresh store owned by the user.
    struct Store {
        let r: Rootless
        let root: String
        var env: [String: String] = [:]
        func azl(_ args: [String], cwd: String? = nil, env extra: [String: String] = [:]) -> RunResult {
            r.azl(args, root: root, env: env.merging(extra) { $1 }, cwd: cwd)
        }
        func records() throws -> [[String: Any]] {
            let res = azl(["images", "--json"])
            guard res.status == 0 else { throw AZLError(.io, "images failed: \(res)") }
            return try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as? [[String: Any]] ?? []
        }
        func record(_ ref: String) throws -> [String: Any]? {
            try records().first { "\($0["name"]!):\($0["tag"]!)" == ref }
        }
        func list(_ sub: String) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + sub)) ?? []).sorted()
        }
        var trees: [String] { list("trees") }
        var blobs: [String] { list("blobs/sha256") }
        var partials: [String] { list("partial").filter { !$0.hasSuffix(".lock") } }
        func tree(_ ref: String) throws -> String {
            let t = try #require(try record(ref)?["tree"] as? String)
            return root + "/trees/" + t.dropFirst(7) + "/rootfs"
        }
    }

    func store(_ name: String = "state") throws -> Store {
        Store(r: r, root: try r.makeDirectory(name))
    }

    /// stdout lines as JSON objects; fails the test on a line that is not one.
    func events(_ res: RunResult) -> [[String: Any]] {
        res.stdout.split(separator: "\n").compactMap { line in
            let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(o != nil, "not a JSON object: \(line)")
            return o
        }
    }

    func blobGETs(_ proxy: RegistryFixture.Server) -> [RegistryFixture.ProxyRequest] {
        RegistryFixture.requests(proxy).filter { $0.isBlob && $0.method == "GET" }
    }

    /// Whether `run` can be used here; if not, says why (a failure under CI).
    func sandboxAvailable(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        SandboxFixture.available(RegistryFixture.Arch.native.alpine, for: what, sourceLocation: sourceLocation)
    }

    // MARK: pull

    @Test func pullsByFullReferenceWithPlainProgressAndLists() throws {
        let s = try store()
        let res = s.azl(["pull", shared.layers.reference])
        #expect(res.status == 0, "\(res)")
        #expect(res.stdout == shared.layers.manifestDigest + "\n", "the digest on stdout: \(res)")
        // Not a terminal: plain lines, no escape sequences.
        #expect(!res.stderr.contains("\u{1B}"), "\(res.stderr)")
        #expect(res.stderr.contains("\(shared.layers.reference): 3 layers for linux/"), "\(res.stderr)")
        #expect(res.stderr.contains("unpacking 3 layers"), "\(res.stderr)")
        #expect(res.stderr.contains("unpacked layer 3/3"), "\(res.stderr)")
        #expect(res.stderr.contains("pulled \(shared.layers.reference) \(shared.layers.manifestDigest)"), "\(res.stderr)")

        let list = s.azl(["images"])
        #expect(list.status == 0)
        let row = list.stdout.split(separator: "\n").first { $0.hasPrefix(shared.registry.host + "/test/layers ") }
        #expect(row != nil && row!.contains(" 1 ") && row!.contains(String(shared.layers.manifestDigest.prefix(19))), "\(list.stdout)")
        let rec = try #require(try s.record(shared.layers.reference))
        #expect(rec["digest"] as? String == shared.layers.manifestDigest)
        #expect(rec["layers"] as? [String] == shared.layers.diffIDs)
        #expect(rec["source"] as? String == shared.layers.reference)

        // The whiteouts were applied by the safe extractor.
        typealias ML = RegistryFixture.MultiLayer
        let t = try s.tree(shared.layers.reference)
        #expect(FS.exists(t + "/etc/os-release"))
        #expect(!FS.exists(t + "/" + ML.deletedFile))
        #expect(try FileManager.default.contentsOfDirectory(atPath: t + "/" + ML.replacedDirectory) == ML.replacedDirectoryContent)
        #expect(try FileManager.default.contentsOfDirectory(atPath: t + "/" + ML.opaqueDirectory) == ML.opaqueDirectoryContent)
        #expect(try String(contentsOfFile: t + "/" + ML.addedFile, encoding: .utf8) == "layer2\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: t).allSatisfy { !$0.hasPrefix(".wh.") })
        #expect(s.list("tmp").isEmpty && s.partials.isEmpty, "\(s.list("tmp")) \(s.partials)")
    }

    @Test func secondPullDownloadsNothingAndJSONLinesParse() throws {
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let s = try store()
        let ref = "\(proxy.host)/test/layers:1"
        let first = s.azl(["pull", "--json", ref])
        #expect(first.status == 0 && first.stderr.isEmpty, "\(first)")
        let ev = events(first)
        #expect(ev.allSatisfy { $0["event"] is String && $0["reference"] as? String == ref }, "\(first.stdout)")
        func named(_ e: [[String: Any]], _ n: String) -> [[String: Any]] { e.filter { $0["event"] as? String == n } }
        #expect(named(ev, "resolved").first?["manifest"] as? String == shared.layers.manifestDigest)
        #expect(named(ev, "layer-start").count == 3)
        #expect(named(ev, "layer-done").count == 3 && named(ev, "layer-done").allSatisfy { $0["cached"] as? Bool == false })
        #expect(named(ev, "layer-progress").allSatisfy { ($0["done"] as? Int ?? -1) <= ($0["total"] as? Int ?? -2) })
        #expect(named(ev, "unpack-start").count == 1 && named(ev, "unpacked").count == 3)
        #expect(ev.last?["event"] as? String == "done" && ev.last?["digest"] as? String == shared.layers.manifestDigest)
        let gets = blobGETs(proxy).count
        #expect(gets == 4, "three layers and the config")

        let second = s.azl(["pull", "--json", ref])
        #expect(second.status == 0, "\(second)")
        let ev2 = events(second)
        #expect(named(ev2, "layer-done").count == 3 && named(ev2, "layer-done").allSatisfy { $0["cached"] as? Bool == true }, "\(second.stdout)")
        #expect(named(ev2, "layer-progress").isEmpty && named(ev2, "unpacked").isEmpty)
        #expect(named(ev2, "unpack-skip").count == 1)
        #expect(blobGETs(proxy).count == gets, "the second pull downloads no blob")

        // --quiet: nothing at all, and still nothing downloaded.
        let quiet = s.azl(["pull", "--quiet", ref])
        #expect(quiet.status == 0 && quiet.stdout.isEmpty && quiet.stderr.isEmpty, "\(quiet)")
        #expect(blobGETs(proxy).count == gets)
        #expect(s.trees.count == 1)
    }

    @Test func quietFirstPullPrintsNothing() throws {
        let s = try store()
        let res = s.azl(["pull", "-q", shared.single.reference])
        #expect(res.status == 0 && res.stdout.isEmpty && res.stderr.isEmpty, "\(res)")
        #expect(try s.record(shared.single.reference)?["digest"] as? String == shared.single.manifestDigest)
    }

    /// Render.bytes as the product formats sizes (1000-based, one decimal under 10).
    static func bytesText(_ n: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var v = Double(n), i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(n) B" : String(format: v < 10 ? "%.1f %@" : "%.0f %@", v, units[i])
    }

    @Test func onATerminalBarsPerLayerRedrawnInPlaceThenASummaryAndQuietPrintsNothing() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            unavailable("onATerminalBarsPerLayerRedrawnInPlaceThenASummaryAndQuietPrintsNothing: no /usr/bin/script (bsdutils) to provide a terminal")
            return
        }
        // The tarball image: its one layer blob is the Alpine .tar.gz, so digest and size are known.
        let rootfs = RegistryFixture.Arch.native.alpine
        let layerShort = String(rootfs.sha256.prefix(12))
        let layerSize = try #require(try FileManager.default.attributesOfItem(atPath: rootfs.path)[.size] as? NSNumber).int64Value
        let size = Self.bytesText(layerSize)
        let ref = shared.tarball.reference

        // script(1) gives azl-shell a terminal on stderr; stdout goes to a file, so what the
        // terminal shows is the progress alone.
        let s = try store()
        let outDir = try r.makeDirectory("tty-out")
        let res = r.run(["/usr/bin/script", "-qec", "\(r.azlShell) pull '\(ref)' > \(outDir)/stdout", "/dev/null"],
                        env: ["AZL_SHELL_ROOT": s.root], timeout: 120)
        #expect(res.status == 0, "\(res)")
        let stdout = (try? String(contentsOfFile: outDir + "/stdout", encoding: .utf8)) ?? ""
        #expect(stdout == shared.tarball.manifestDigest + "\n", "the digest on stdout, not on the terminal: \(stdout)")
        #expect(try s.record(ref)?["digest"] as? String == shared.tarball.manifestDigest)
        // The terminal's line discipline turns each \n into \r\n; undo that, so that a \r left is one the renderer wrote.
        let tty = res.stdout.replacingOccurrences(of: "\r\n", with: "\n")
        let esc = "\u{1B}"
        #expect(tty.contains(esc), "a terminal gets escape sequences: \(tty.debugDescription)")
        #expect(tty.hasPrefix("\(ref): 1 layers for linux/"), "\(tty.debugDescription)")

        // Each draw of the bar: erase the line, then "  SHORT [24 cells] DONE/TOTAL RATE/s ETA".
        let barPrefix = "\(esc)[2K  \(layerShort) ["
        let bars = tty.components(separatedBy: barPrefix).dropFirst().map { String($0.prefix { $0 != "\n" }) }
        #expect(bars.count >= 2, "drawn when the layer starts and redrawn when it is done: \(tty.debugDescription)")
        for bar in bars {
            let cells = bar.prefix { $0 != "]" }
            #expect(cells.count == 24 && cells.allSatisfy { $0 == "=" || $0 == " " }, "\(bar.debugDescription)")
            let tail = bar.dropFirst(cells.count)
            #expect(tail.hasPrefix("] ") && tail.contains("/\(size) ") && tail.contains("/s "), "bytes of the layer's size and a rate: \(bar.debugDescription)")
            let words = tail.split(separator: " ").map(String.init)
            let eta = words.last ?? ""
            let isETA = words.count >= 2 && words[words.count - 2] == "ETA" && eta.hasSuffix("s") && Int(eta.dropLast()) != nil
            #expect(eta == "--" || eta == "done" || isETA, "an ETA, -- before any byte, or done: \(bar.debugDescription)")
        }
        // The first draw, as the layer starts: nothing yet, no rate, no ETA.
        #expect(bars.first == "                        ] 0 B/\(size) 0 B/s --", "\(bars.first.debugDescription)")
        // The last: full bar, every byte, a rate and "done".
        let last = bars.last ?? ""
        #expect(last.hasPrefix(String(repeating: "=", count: 24) + "] \(size)/\(size) ") && last.hasSuffix("/s done"),
                "\(last.debugDescription)")
        // Redrawn in place: one layer, so each redraw moves the cursor up one line first.
        let redraw = "\(esc)[1A" + barPrefix
        #expect(tty.components(separatedBy: redraw).count - 1 == bars.count - 1, "every draw after the first is in place: \(tty.debugDescription)")
        #expect(!tty.contains("\(esc)[J"), "nothing erased below: no retry happened")

        // Then unpack progress on one line (\r, erase line), and the summary as the last line.
        let afterBars = String(tty[try #require(tty.range(of: barPrefix, options: .backwards)).upperBound...].drop { $0 != "\n" }.dropFirst())
        let lines = afterBars.components(separatedBy: "\n")
        #expect(lines.count == 4 && lines[3].isEmpty, "\(afterBars.debugDescription)")
        #expect(lines.first == "unpacking 1 layer", "\(afterBars.debugDescription)")
        #expect(lines.count > 1 && lines[1].hasPrefix("\r\(esc)[2Kunpacked 1/1 (") && lines[1].hasSuffix(")") && lines[1].contains(" entries, "),
                "\(afterBars.debugDescription)")
        #expect(lines.count > 2 && lines[2] == "pulled \(ref) \(shared.tarball.manifestDigest)", "the summary line: \(afterBars.debugDescription)")

        // The same pull with --quiet on a terminal: nothing at all on it (stdout is the terminal too).
        let q = try store("quiet")
        let quiet = r.run(["/usr/bin/script", "-qec", "\(r.azlShell) pull --quiet '\(ref)'", "/dev/null"],
                          env: ["AZL_SHELL_ROOT": q.root], timeout: 120)
        #expect(quiet.status == 0 && quiet.stdout.isEmpty && quiet.stderr.isEmpty, "\(quiet.stdout.debugDescription) \(quiet)")
        #expect(try q.record(ref)?["digest"] as? String == shared.tarball.manifestDigest, "it did pull")
        #expect(q.trees.count == 1)
    }

    @Test func platformFromAMultiArchIndex() throws {
        let s = try store()
        let res = s.azl(["pull", "--platform", "linux/arm64", shared.multi.reference])
        #expect(res.status == 0 && res.stderr.contains("for linux/arm64"), "\(res)")
        let rec = try #require(try s.record(shared.multi.reference))
        #expect(rec["digest"] as? String == shared.multi.manifestDigest, "the index digest, as docker shows it")
        let t = try s.tree(shared.multi.reference)
        #expect(try String(contentsOfFile: t + "/etc/apk/arch", encoding: .utf8) == "aarch64\n")
        let none = s.azl(["pull", "--platform", "linux/s390x", shared.multi.reference])
        #expect(none.status == 125 && none.stderr.contains("linux/s390x") && none.stderr.contains(shared.multi.reference), "\(none)")
        #expect(none.stderr.split(separator: "\n").count == 1)
    }

    /// Issue 14: `run --platform linux/arm64` pulls that platform from the index on first use,
    /// records it, and runs it through qemu-user.
    @Test func runPullsAndRunsTheArm64ImageOfAnIndex() throws {
        #if arch(x86_64)
        guard access("/usr/bin/qemu-aarch64-static", X_OK) == 0 else {
            unavailable("PullTests: /usr/bin/qemu-aarch64-static is missing (scripts/setup.sh installs qemu-user-static)")
            return
        }
        let s = try store("xarch-state")
        let res = s.azl(["run", "--image", shared.multi.reference, "--platform", "linux/arm64", "--", "uname -m"])   // the image's entrypoint is sh -c
        #expect(res.status == 0 && res.stdout == "aarch64\n", "\(res)")
        #expect(try s.record(shared.multi.reference)?["architecture"] as? String == "arm64")
        // Stored as arm64: the other platform under the same name is refused, not run.
        let other = s.azl(["run", "--image", shared.multi.reference, "--platform", "linux/amd64", "--", "true"])
        #expect(other.status == 125 && other.stderr.contains("linux/arm64 image, not linux/amd64"), "\(other)")
        #else
        notApplicableHere("PullTests: the foreign platform of the index is arm64, this machine's own")
        #endif
    }

    @Test func shortNamesFromTheUserManifestDirectory() throws {
        let config = try r.makeDirectory("config")
        let dir = config + "/azl-shell/rootfs-manifests"
        try FS.mkdirs(dir)
        func entry(_ short: String, _ aliases: [String], _ ref: String, env: [String]) -> String {
            """
            [[image]]
            short = "\(short)"
            aliases = [\(aliases.map { "\"\($0)\"" }.joined(separator: ", "))]
            reference = "\(ref)"
            arches = ["amd64", "arm64"]
            os_id = "alpine"
            os_version_id = "3.20"
            id_like = ""
            package_manager = "apk"
            shell = "/bin/sh"
            env = [\(env.map { "\"\($0)\"" }.joined(separator: ", "))]
            kernel_profile = "alpine-3.20"
            eol = false

            """
        }
        let toml = "schema = 1\nname = \"fixture\"\ndescription = \"images on the test registry\"\n\n"
            + entry("fixture-alpine:3.20", ["fxa"], shared.single.reference, env: ["AZL_FROM_MANIFEST=yes"])
            // Overrides the bundled alpine:3.20 (docker.io cannot be reached here).
            + entry("alpine:3.20", ["alpine-3.20"], shared.tarball.reference, env: [])
            + entry("fixture-missing:1", [], shared.registry.host + "/test/alpine:nope", env: [])
        try Data(toml.utf8).write(to: URL(fileURLWithPath: dir + "/fixture.toml"))
        r.chownTree(config)
        var s = try store()
        s.env["XDG_CONFIG_HOME"] = config

        let avail = s.azl(["images", "--available"])
        #expect(avail.status == 0 && avail.stdout.contains("fixture-alpine:3.20"), "\(avail)")
        let res = s.azl(["pull", "fxa"])
        #expect(res.status == 0 && res.stdout == shared.single.manifestDigest + "\n", "\(res)")
        let short = try #require(try s.record("fixture-alpine:3.20"))
        let full = try #require(try s.record(shared.single.reference))
        #expect(short["tree"] as? String == full["tree"] as? String)
        #expect(short["manifest"] as? String == "fixture-alpine:3.20")
        let env = (short["config"] as? [String: Any])?["env"] as? [String] ?? []
        #expect(env.contains("AZL_FROM_MANIFEST=yes") && env.contains("AZL_FIXTURE=1"), "\(env)")

        let over = s.azl(["pull", "alpine:3.20"])
        #expect(over.status == 0 && over.stdout == shared.tarball.manifestDigest + "\n", "\(over)")
        #expect(try s.record("alpine:3.20")?["source"] as? String == shared.tarball.reference)

        // Errors name the full reference and the short name it came from.
        let missing = s.azl(["pull", "fixture-missing:1"])
        #expect(missing.status == 125 && missing.stderr.contains("\(shared.registry.host)/test/alpine:nope (fixture-missing:1)"), "\(missing)")

        // A broken user manifest is an error naming the file, not silently ignored.
        try Data("schema = 1\nname = \"broken\"\n[[image]\n".utf8).write(to: URL(fileURLWithPath: dir + "/zz-broken.toml"))
        r.chownTree(config)
        let broken = s.azl(["pull", "fxa"])
        #expect(broken.status == 125 && broken.stderr.contains("zz-broken.toml"), "\(broken)")
    }

    @Test func errorsAreOneLineNamingTheReferenceAndChangeNothing() throws {
        let s = try store()
        #expect(s.azl(["pull", "-q", shared.single.reference]).status == 0)
        let before = (try s.records().map { "\($0["name"]!):\($0["tag"]!) \($0["tree"]!)" }, s.trees, s.blobs)
        let host = shared.registry.host
        let port = try RegistryFixture.freePort()
        let cases: [(String, String)] = [
            ("\(host)/Test/Upper:1", "must be lowercase"),
            ("\(host)/test/alpine:bad@tag", "invalid image reference"),
            ("\(host)/test/alpine:no-such-tag", "not found"),
            ("\(host)/test/nothere:1", "not found"),
            ("127.0.0.1:\(port)/test/alpine:1", "\(port)"),
        ]
        for (ref, words) in cases {
            let started = Date()
            let res = s.azl(["pull", ref])
            #expect(res.status == 125, "\(ref): \(res)")
            #expect(res.stdout.isEmpty, "\(ref): \(res)")
            let lines = res.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("azl-shell: ") && lines[0].contains(ref) && lines[0].contains(words),
                    "\(ref): \(res.stderr)")
            #expect(Date().timeIntervalSince(started) < 20, "\(ref): reported promptly")
        }
        let after = (try s.records().map { "\($0["name"]!):\($0["tag"]!) \($0["tree"]!)" }, s.trees, s.blobs)
        #expect(after.0 == before.0 && after.1 == before.1 && after.2 == before.2, "the store is as it was")
        #expect(s.list("tmp").filter { !$0.hasSuffix(".lock") }.isEmpty && s.partials.isEmpty, "\(s.list("tmp")) \(s.partials)")
        #expect(s.azl(["images"]).status == 0)
    }

    @Test func aCorruptedBlobIsRejectedAndTheCacheUntouched() throws {
        let s = try store()
        // Something in the cache first (its layer is not one of the image pulled below).
        #expect(s.azl(["pull", "-q", shared.tarball.reference]).status == 0)
        let before = (s.trees, s.blobs, try s.records().count)
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(corrupt: true))
        defer { fixture.stop(proxy) }
        let ref = "\(proxy.host)/test/layers:1"
        let res = s.azl(["pull", ref])
        #expect(res.status == 125 && res.stderr.contains("does not match") && res.stderr.contains(ref), "\(res)")
        let recordsAfter = try s.records().count
        #expect(s.trees == before.0 && recordsAfter == before.2)
        let corrupted = Set(RegistryFixture.requests(proxy).filter { $0.corrupted == true }.compactMap(\.blobDigest))
        #expect(!corrupted.isEmpty)
        #expect(corrupted.isDisjoint(with: Set(s.blobs.map { "sha256:" + $0 })), "no corrupted blob kept")
        // Downloads the failure interrupted may stay for a later pull to resume; never a corrupted one.
        #expect(corrupted.isDisjoint(with: Set(s.partials.map { "sha256:" + $0 })), "\(s.partials)")
        for b in s.blobs { #expect(try fixture.sha256File(s.root + "/blobs/sha256/" + b) == "sha256:" + b) }
    }

    /// Everything a pull could leave in a store, for before/after comparisons.
    func contents(_ s: Store) throws -> [String] {
        try s.records().map { "record \($0["name"]!):\($0["tag"]!) \($0["tree"]!)" }.sorted()
            + s.trees.map { "tree " + $0 } + s.blobs.map { "blob " + $0 } + s.partials.map { "partial " + $0 }
            + s.list("blobinfo").map { "blobinfo " + $0 } + s.list("tmp").filter { !$0.hasSuffix(".lock") }.map { "tmp " + $0 }
    }

    @Test func aManifestThatDoesNotMatchTheDigestItWasAskedByIsRejected() throws {
        let s = try store()
        #expect(s.azl(["pull", "-q", shared.tarball.reference]).status == 0, "something in the store first")
        let before = try contents(s)
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(tamperManifests: true))
        defer { fixture.stop(proxy) }
        // By digest; and an index by tag (served as it is) whose platform manifest is then asked by digest.
        let byDigest = "\(proxy.host)/test/alpine@\(shared.single.manifestDigest)"
        let viaIndex = "\(proxy.host)/test/multi:latest"
        for ref in [byDigest, viaIndex] {
            let res = s.azl(["pull", ref])
            #expect(res.status == 125 && res.stdout.isEmpty, "\(ref): \(res)")
            let lines = res.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("azl-shell: ") && lines[0].contains("does not match") && lines[0].contains(ref),
                    "\(ref): \(res.stderr)")
        }
        // run pulls on first use: the same refusal, and the command never runs.
        let run = s.azl(["run", "--image", byDigest, "--", "echo", "ran"])
        #expect(run.status == 125 && run.stdout.isEmpty && run.stderr.contains("does not match"), "\(run)")
        let tampered = RegistryFixture.requests(proxy).filter { $0.tampered == true }
        #expect(tampered.count >= 3, "the proxy served tampered manifests: \(RegistryFixture.requests(proxy).map(\.path))")
        #expect(!RegistryFixture.requests(proxy).contains { $0.isBlob }, "no blob is fetched for a refused manifest")
        #expect(try contents(s) == before, "nothing stored")
        // The same references straight from the registry are fine.
        let good = s.azl(["pull", "-q", "\(shared.registry.host)/test/alpine@\(shared.single.manifestDigest)"])
        #expect(good.status == 0, "\(good)")
    }

    @Test(arguments: [("layer", Int64(1)), ("layer", Int64(-1)), ("config", Int64(1)), ("config", Int64(-1))])
    func aBlobOfAnotherSizeThanItsDescriptorIsRejected(_ which: String, _ delta: Int64) throws {
        // The digest in the descriptor is right; only its size is not.
        let tag = "\(which)\(delta > 0 ? "-plus" : "-minus")"
        let pushed = try fixture.pushTarball(to: shared.registry, repo: "test/badsize", tag: tag,
                                             layerSizeDelta: which == "layer" ? delta : 0, configSizeDelta: which == "config" ? delta : 0)
        let s = try store()
        let res = s.azl(["pull", "-q", pushed.reference])
        #expect(res.status == 125 && res.stdout.isEmpty, "\(res)")
        let lines = res.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("azl-shell: \(which) sha256:") && lines[0].contains(pushed.reference)
                && lines[0].contains("the manifest says"), "\(res.stderr)")
        #expect(try s.records().isEmpty && s.trees.isEmpty, "\((try? contents(s)) ?? [])")
        let layer = "sha256:" + RegistryFixture.Arch.native.alpine.sha256
        #expect(!s.blobs.contains(String(layer.dropFirst(7))) || which == "config", "the layer is not kept: \(s.blobs)")
        if which == "config" { #expect(s.blobs.isEmpty, "the config is not kept: \(s.blobs)") }
        #expect(s.partials.isEmpty && s.list("tmp").filter { !$0.hasSuffix(".lock") }.isEmpty, "\((try? contents(s)) ?? [])")
    }

    @Test func resumesACutDownload() throws {
        let proxy = try fixture.startProxy(upstream: shared.registry, .init(cutOnce: true))
        defer { fixture.stop(proxy) }
        let s = try store()
        let res = s.azl(["pull", "--json", "\(proxy.host)/test/layers:1"])
        #expect(res.status == 0, "\(res)")
        let resumed = events(res).filter { $0["event"] as? String == "resumed" }
        #expect(!resumed.isEmpty, "\(res.stdout)")
        #expect(RegistryFixture.requests(proxy).contains { $0.range != nil && $0.status == 206 })
        for b in s.blobs { #expect(try fixture.sha256File(s.root + "/blobs/sha256/" + b) == "sha256:" + b) }
    }

    @Test func twoPullsAtOnceShareEveryDownloadAndTheTree() throws {
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let s = try store()
        let ref = "\(proxy.host)/test/layers:1"
        var results = [RunResult?](repeating: nil, count: 2)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let res = s.azl(["pull", "-q", ref])
            lock.withLock { results[i] = res }
        }
        for res in results { #expect(res?.status == 0, "\(String(describing: res))") }
        let gets = blobGETs(proxy).filter { $0.status == 200 }
        #expect(gets.count == 4 && Set(gets.compactMap(\.blobDigest)).count == 4, "each blob downloaded once: \(gets.map(\.path))")
        #expect(s.trees.count == 1)
        #expect(s.list("tmp").filter { !$0.hasSuffix(".lock") }.isEmpty)
    }

    @Test func credentialsFromOptionOrAuthFileAndNoSecretPrinted() throws {
        let auth = RegistryFixture.RegistryAuth(user: "azl", password: "pa55-cli-secret")
        let reg = try fixture.startRegistry(auth: auth)
        defer { fixture.stop(reg) }
        let pushed = try fixture.pushAlpine(to: reg, repo: "private/alpine", tag: "1", auth: auth)
        let s = try store()
        let anon = s.azl(["pull", pushed.reference])
        #expect(anon.status == 125 && anon.stderr.contains(pushed.reference) && anon.stderr.contains("REGISTRY_AUTH_FILE"), "\(anon)")
        let wrong = s.azl(["pull", "--creds", "azl:wrong-cli-secret", pushed.reference])
        #expect(wrong.status == 125 && wrong.stderr.contains("denied") && wrong.stderr.contains(pushed.reference), "\(wrong)")
        #expect(!(wrong.stderr + wrong.stdout).contains("wrong-cli-secret"))
        let good = s.azl(["pull", "--creds", "azl:pa55-cli-secret", pushed.reference])
        #expect(good.status == 0 && !(good.stderr + good.stdout).contains("pa55-cli-secret"), "\(good)")
        let file = try fixture.writeAuthFile([reg.host: auth])
        let s2 = try store()
        let viaFile = s2.azl(["pull", pushed.reference], env: ["REGISTRY_AUTH_FILE": file])
        #expect(viaFile.status == 0 && !(viaFile.stderr + viaFile.stdout).contains("pa55-cli-secret"), "\(viaFile)")
    }

    /// Plain HTTP only for loopback or with `--tls-verify=false`: the same registry reached
    /// through this machine's non-loopback address is refused (one line naming the reference and
    /// TLS or the option, exit 125, nothing stored) unless the option is given.
    @Test func plainHTTPToANonLoopbackAddressNeedsTLSVerifyFalse() throws {
        guard let ip = RegistryFixture.nonLoopbackIPv4() else {
            // The machine's network, not something CI installs: said, not a failure.
            notApplicableHere("plainHTTPToANonLoopbackAddressNeedsTLSVerifyFalse: no non-loopback IPv4 address on this machine")
            return
        }
        let reg = try fixture.startRegistry(listenAll: true)
        defer { fixture.stop(reg) }
        let pushed = try fixture.pushAlpine(to: reg, repo: "test/alpine", tag: "1")
        let ref = "\(ip):\(reg.port)/test/alpine:1"
        let s = try store()
        let started = Date()
        let strict = s.azl(["pull", ref])
        #expect(strict.status == 125, "\(strict)")
        #expect(strict.stdout.isEmpty, "\(strict)")
        let lines = strict.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("azl-shell: ") && lines[0].contains(ref), "\(strict.stderr)")
        #expect(strict.stderr.contains("TLS") && strict.stderr.contains("--tls-verify=false"), "names TLS and the option: \(strict.stderr)")
        #expect(strict.stderr.contains("does not speak TLS") && !strict.stderr.contains(".build/"),
                "says why in words, without BoringSSL's source paths: \(strict.stderr)")
        #expect(Date().timeIntervalSince(started) < 60, "reported promptly")
        #expect(try s.blobs.isEmpty && s.trees.isEmpty && s.records().isEmpty, "nothing stored")
        let loose = s.azl(["pull", "-q", "--tls-verify=false", ref])
        #expect(loose.status == 0 && loose.stderr.isEmpty, "\(loose)")
        #expect(try s.record(ref)?["digest"] as? String == pushed.manifestDigest)
        #expect(!s.trees.isEmpty)
    }

    /// Docker `identitytoken` entries (an OAuth2 refresh token, what `docker login` leaves for
    /// some registries): the token is never printed, whether the pull succeeds or not, and never
    /// sent as a password. Succeeds where the token service also serves anonymous pulls.
    @Test func identityTokenIsNeverPrintedNorSentAsAPassword() throws {
        let secret = "azl-identity-\(UUID().uuidString)"
        let open = try fixture.startProxy(upstream: shared.registry, .init(bearer: true))
        defer { fixture.stop(open) }
        let file = try fixture.writeIdentityTokenAuthFile([open.host: secret])
        for mode in [["--json"], []] {
            let s = try store()
            let res = s.azl(["pull"] + mode + ["\(open.host)/test/alpine:3.20"], env: ["REGISTRY_AUTH_FILE": file])
            #expect(res.status == 0, "\(mode): \(res)")
            #expect(!(res.stdout + res.stderr).contains(secret), "\(mode): \(res)")
            #expect(try s.record("\(open.host)/test/alpine:3.20")?["digest"] as? String == shared.single.manifestDigest)
        }
        let log = RegistryFixture.requests(open)
        #expect(log.contains { $0.isToken && $0.status == 200 })
        #expect(log.allSatisfy { $0.auth != "basic" }, "the identity token is no password: \(log.map { "\($0.path) \($0.auth)" })")
        // A token service that issues tokens only for the OAuth2 refresh-token POST: whatever the
        // outcome, the token is not in what azl-shell prints.
        let oauth = try fixture.startProxy(upstream: shared.registry, .init(bearer: true, refreshToken: secret))
        defer { fixture.stop(oauth) }
        let file2 = try fixture.writeIdentityTokenAuthFile([oauth.host: secret])
        let s = try store()
        let res = s.azl(["pull", "\(oauth.host)/test/alpine:3.20"], env: ["REGISTRY_AUTH_FILE": file2])
        #expect(!(res.stdout + res.stderr).contains(secret), "\(res)")
        #expect(RegistryFixture.requests(oauth).allSatisfy { $0.auth != "basic" })
    }

    // MARK: shared storage with import

    @Test func pulledTarballAndImportedTarballShareStorage() throws {
        let tarball = RegistryFixture.Arch.native.alpine
        let sha = "sha256:" + tarball.sha256
        // Pull first, then import: the import finds blob and tree and unpacks nothing.
        let a = try store()
        #expect(a.azl(["pull", "-q", shared.tarball.reference]).status == 0)
        let imp = a.azl(["import", tarball.path, "--name", "imported:1"])
        #expect(imp.status == 0 && imp.stderr.contains("nothing unpacked"), "\(imp)")
        #expect(a.trees.count == 1)
        #expect(a.blobs.contains(String(sha.dropFirst(7))) && a.blobs.count == 2, "the layer and the config: \(a.blobs)")
        #expect(try a.record("imported:1")?["tree"] as? String == a.record(shared.tarball.reference)?["tree"] as? String)

        // Import first, then pull: the tree is there, so the layer is not even downloaded.
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let b = try store()
        #expect(b.azl(["import", tarball.path, "--name", "imported:1"]).status == 0)
        let pull = b.azl(["pull", "--json", "\(proxy.host)/test/tarball:1"])
        #expect(pull.status == 0, "\(pull)")
        let ev = events(pull)
        #expect(ev.contains { $0["event"] as? String == "layer-done" && $0["digest"] as? String == sha && $0["cached"] as? Bool == true }, "\(pull.stdout)")
        #expect(ev.contains { $0["event"] as? String == "unpack-skip" })
        #expect(blobGETs(proxy).compactMap(\.blobDigest).allSatisfy { $0 != sha }, "the layer is not downloaded")
        #expect(b.trees.count == 1)

        // An image built by umoci from the same tarball (another gzip stream, the same tar):
        // another blob, the same diff_id, so the same unpacked tree, and again no layer download.
        let single = "\(proxy.host)/test/alpine:3.20"
        #expect(b.azl(["pull", "-q", single]).status == 0)
        #expect(b.trees.count == 1, "\(b.trees)")
        let layerGETs = blobGETs(proxy).filter { ($0.sent ?? 0) > 100_000 }
        #expect(layerGETs.isEmpty, "\(layerGETs.map(\.path))")
    }

    @Test func rmiAndPruneFreeThePulledBlobsAndTree() throws {
        let s = try store()
        // Two images that share nothing: the tarball's own gzip stream, and umoci's three layers.
        for ref in [shared.tarball.reference, shared.layers.reference] {
            let res = s.azl(["pull", "-q", ref])
            try #require(res.status == 0, "\(ref): \(res)")
        }
        func blobs(_ ref: String) throws -> Set<String> {
            Set(try #require(try s.record(ref)?["blobs"] as? [String]).map { String($0.dropFirst(7)) })
        }
        let keep = try blobs(shared.tarball.reference), gone = try blobs(shared.layers.reference)
        #expect(keep.count == 2 && gone.count == 4, "layers and configs: \(keep) \(gone)")
        #expect(keep.isDisjoint(with: gone))
        let keepTree = try #require(try s.record(shared.tarball.reference)?["tree"] as? String).dropFirst(7)
        let goneTree = try #require(try s.record(shared.layers.reference)?["tree"] as? String).dropFirst(7)
        #expect(Set(s.blobs) == keep.union(gone) && Set(s.trees) == [String(keepTree), String(goneTree)])
        let keptTree = treeFingerprint(s.root + "/trees/" + keepTree)

        let rmi = s.azl(["rmi", shared.layers.reference])
        #expect(rmi.status == 0 && rmi.stderr == "removed \(shared.layers.reference) \(shared.layers.manifestDigest)\n", "\(rmi)")
        #expect(Set(s.blobs) == keep, "the removed image's blobs are gone, the other's stay: \(s.blobs)")
        #expect(s.trees == [String(keepTree)], "\(s.trees)")
        #expect(gone.allSatisfy { !FS.exists(s.root + "/blobinfo/" + $0) }, "their blobinfo went with them")
        let prune = s.azl(["prune", "--json"])
        let rep = try #require(try JSONSerialization.jsonObject(with: Data(prune.stdout.utf8)) as? [String: Any], "\(prune)")
        #expect((rep["trees"] as? [String])?.isEmpty == true && (rep["blobs"] as? [String])?.isEmpty == true, "nothing left to free: \(rep)")
        #expect(Set(s.blobs) == keep && s.trees == [String(keepTree)])
        for b in s.blobs { #expect(try fixture.sha256File(s.root + "/blobs/sha256/" + b) == "sha256:" + b) }
        #expect(treeFingerprint(s.root + "/trees/" + keepTree) == keptTree)
        #expect(s.partials.isEmpty && s.list("tmp").filter { !$0.hasSuffix(".lock") }.isEmpty)
        let recs = try s.records()
        #expect(recs.count == 1 && recs.first?["digest"] as? String == shared.tarball.manifestDigest, "\(recs)")
        let digests = s.azl(["images", "--digests"])
        #expect(digests.stdout == shared.tarball.manifestDigest + "\n", "\(digests)")
        if sandboxAvailable("rmiAndPruneFreeThePulledBlobsAndTree (run)") {
            let run = s.azl(["run", "--image", shared.tarball.reference, "--", "true"])
            #expect(run.status == 0 && run.stderr.isEmpty, "the other image still runs, without pulling: \(run)")
        }
        // By image id (the manifest digest), then nothing is left.
        let byID = s.azl(["rmi", shared.tarball.manifestDigest])
        #expect(byID.status == 0 && byID.stderr == "removed \(shared.tarball.reference) \(shared.tarball.manifestDigest)\n", "\(byID)")
        #expect(try s.blobs.isEmpty && s.trees.isEmpty && s.list("blobinfo").isEmpty && s.records().isEmpty)
    }

    // MARK: run

    @Test func runPullsOnFirstUseThenRunsWithoutTheNetwork() throws {
        guard sandboxAvailable("runPullsOnFirstUseThenRunsWithoutTheNetwork") else { return }
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let s = try store()
        let ref = "\(proxy.host)/test/tarball:1"
        let first = s.azl(["run", "--image", ref, "--", "cat", "/etc/os-release"])
        #expect(first.status == 0 && first.stdout.contains("Alpine Linux"), "\(first)")
        #expect(first.stderr.contains("pulled \(ref)"), "pull progress on stderr: \(first.stderr)")
        let requests = RegistryFixture.requests(proxy).count
        #expect(requests > 0)
        let again = s.azl(["run", "--image", ref, "--", "cat", "/etc/os-release"])
        #expect(again.status == 0 && again.stdout == first.stdout, "\(again)")
        #expect(!again.stderr.contains("pulled"), "\(again.stderr)")
        #expect(RegistryFixture.requests(proxy).count == requests, "a stored image makes no request")

        // --quiet pulls silently; --json progress goes to stderr, stdout is the command's.
        let quiet = s.azl(["run", "-q", "--image", "\(proxy.host)/test/alpine:3.20", "--", "true"])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty && quiet.stdout.isEmpty, "\(quiet)")
        // (This image's Entrypoint is /bin/sh -c: the command is one argument.)
        let json = s.azl(["run", "--json", "--image", "\(proxy.host)/test/layers:1", "--", "cat /etc/azl-layer2"])
        #expect(json.status == 0 && json.stdout == "layer2\n", "\(json)")
        #expect(json.stderr.split(separator: "\n").allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil }, "\(json.stderr)")

        // A local name that is not stored is not sent to a registry.
        let local = s.azl(["run", "--image", "nosuch:1", "--", "true"])
        #expect(local.status == 125 && local.stderr.contains("no image named nosuch:1"), "\(local)")
        // A reference that cannot be pulled: one line naming it, 125, the command never runs.
        let missing = s.azl(["run", "--image", "\(proxy.host)/test/alpine:nope", "--", "echo", "ran"])
        #expect(missing.status == 125 && missing.stdout.isEmpty && missing.stderr.split(separator: "\n").count == 1
                && missing.stderr.contains("\(proxy.host)/test/alpine:nope"), "\(missing)")
    }

    @Test func runByShortNamePullsOnce() throws {
        guard sandboxAvailable("runByShortNamePullsOnce") else { return }
        let proxy = try fixture.startProxy(upstream: shared.registry)
        defer { fixture.stop(proxy) }
        let config = try r.makeDirectory("config")
        try FS.mkdirs(config + "/azl-shell/rootfs-manifests")
        try Data("""
            schema = 1
            name = "fixture"
            description = "test"

            [[image]]
            short = "fixture-tarball:1"
            aliases = ["fxt"]
            reference = "\(proxy.host)/test/tarball:1"
            arches = ["amd64"]
            os_id = "alpine"
            os_version_id = "3.20"
            id_like = ""
            package_manager = "apk"
            shell = "/bin/sh"
            env = []
            kernel_profile = "alpine-3.20"
            eol = false

            """.utf8).write(to: URL(fileURLWithPath: config + "/azl-shell/rootfs-manifests/f.toml"))
        r.chownTree(config)
        var s = try store()
        s.env["XDG_CONFIG_HOME"] = config
        let first = s.azl(["run", "--image", "fxt", "--", "cat", "/etc/alpine-release"])
        #expect(first.status == 0 && first.stdout == "3.20.3\n", "\(first)")
        let n = RegistryFixture.requests(proxy).count
        let second = s.azl(["run", "--image", "fixture-tarball:1", "--", "cat", "/etc/alpine-release"])
        #expect(second.status == 0 && second.stdout == "3.20.3\n" && second.stderr.isEmpty, "\(second)")
        let third = s.azl(["run", "--image", "fxt", "--", "true"])
        #expect(third.status == 0, "\(third)")
        #expect(RegistryFixture.requests(proxy).count == n, "pulled once")
    }

    @Test func imageConfigIsHonouredAndOptionsWin() throws {
        guard sandboxAvailable("imageConfigIsHonouredAndOptionsWin") else { return }
        let s = try store()
        let ref = shared.single.reference
        #expect(s.azl(["pull", "-q", ref]).status == 0)
        // No command: Entrypoint (/bin/sh -c) + Cmd.
        let bare = s.azl(["run", "--image", ref])
        #expect(bare.status == 0 && bare.stdout == "hello from the fixture\n", "\(bare)")
        // Arguments replace Cmd, the Entrypoint stays; Env and WorkingDir (from / , which is
        // not bind-mounted) apply.
        let cfg = s.azl(["run", "--image", ref, "--", "echo $AZL_FIXTURE; pwd; id -u"], cwd: "/")
        #expect(cfg.status == 0 && cfg.stdout == "1\n\(RegistryFixture.imageWorkingDir)\n0\n", "\(cfg)")
        // Explicit options win.
        let over = s.azl(["run", "-e", "AZL_FIXTURE=2", "-w", "/var", "--image", ref, "--", "echo $AZL_FIXTURE; pwd"], cwd: "/")
        #expect(over.status == 0 && over.stdout == "2\n/var\n", "\(over)")
    }
}
