import Core
import Foundation
import Testing
import TestSupport

/// Issue 13: azl-shell.toml, setup layers and azl-shell.lock, as the unprivileged user over the
/// real Alpine tarball. Steps count their runs in files of the project folder (bound as in run).
@Suite(.serialized) struct ProjectTests {
    struct Project {
        let f: StoredImageFixture
        let dir: String
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: dir + "/" + name, atomically: false, encoding: .utf8)
            chown(dir + "/" + name, f.r.uid, f.r.gid)
        }
        func read(_ name: String) -> String { (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? "" }
        /// Lines a step appended to NAME: how often it ran.
        func runs(_ name: String) -> Int { read(name).split(separator: "\n").count }
        func azl(_ args: [String], env: [String: String] = [:], cwd: String? = nil) -> RunResult {
            f.azl(args, env: env, cwd: cwd ?? dir)
        }
        var layers: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: f.state + "/layers")) ?? []).sorted()
        }
    }

    func project(_ toml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Project? {
        guard SandboxFixture.available(.alpineX86, for: "ProjectTests", sourceLocation: sourceLocation) else { return nil }
        let f = try StoredImageFixture()
        let p = Project(f: f, dir: try f.r.makeDirectory("proj"))
        try p.write("azl-shell.toml", toml)
        return p
    }

    static let twoSteps = """
        image = "alp:3.20"
        env = { GREETING = "hello" }
        setup = [
          "echo ran >> count1; echo one > /etc/step1",
          { run = "echo ran >> count2; cp req.txt /etc/step2", inputs = ["req.txt"] },
        ]
        """

    @Test func setupRunsOnceAndIsFoundFromASubfolder() throws {
        guard let p = try project(Self.twoSteps) else { return }
        try p.write("req.txt", "a\n")
        let sub = p.dir + "/src/deep"
        try FS.mkdirs(sub)
        p.f.r.chownTree(p.dir + "/src")
        let first = p.azl(["run", "--", "sh", "-c", "cat /etc/step1 /etc/step2; echo $GREETING; pwd"], cwd: sub)
        #expect(first.status == 0 && first.stdout == "one\na\nhello\n\(sub)\n", "\(first)")
        #expect(first.stderr.contains("setup step 1/2"), "the cold run says it runs setup: \(first)")
        for _ in 0..<2 {
            let again = p.azl(["run", "--", "cat", "/etc/step1", "/etc/step2"], cwd: sub)
            #expect(again.status == 0 && again.stdout == "one\na\n" && !again.stderr.contains("setup step"), "\(again)")
        }
        #expect(p.runs("count1") == 1 && p.runs("count2") == 1, "setup ran again: \(p.read("count1")) \(p.read("count2"))")
        #expect(p.layers.count == 2, "\(p.layers)")
        // Options on the command line win over the file's.
        let over = p.azl(["run", "-e", "GREETING=bye", "--", "sh", "-c", "echo $GREETING"])
        #expect(over.status == 0 && over.stdout == "bye\n", "\(over)")
        // `setup` says the steps are cached and runs none.
        let setup = p.azl(["setup"])
        #expect(setup.status == 0 && setup.stderr.contains("step 2/2 cached"), "\(setup)")
        #expect(p.runs("count1") == 1 && p.runs("count2") == 1)
        // --refresh rebuilds them all.
        let refresh = p.azl(["setup", "--refresh"])
        #expect(refresh.status == 0 && p.runs("count1") == 2 && p.runs("count2") == 2, "\(refresh)")
    }

    @Test func aChangedStepOrInputRebuildsFromItAndNotBefore() throws {
        guard let p = try project(Self.twoSteps.replacingOccurrences(of: "inputs = [\"req.txt\"]", with: "inputs = [\"req.txt\", \"scripts/*.sh\"]")) else { return }
        try p.write("req.txt", "a\n")
        try FS.mkdirs(p.dir + "/scripts")
        p.f.r.chownTree(p.dir + "/scripts")
        try p.write("scripts/a.sh", "true\n")
        #expect(p.azl(["setup"]).status == 0)
        // The same command line twice: the second is a plan-cache replay, which must follow the inputs.
        for _ in 0..<2 { #expect(p.azl(["run", "--", "cat", "/etc/step2"]).stdout == "a\n") }
        try p.write("req.txt", "b\n")
        let input = p.azl(["run", "--", "cat", "/etc/step2"])
        #expect(input.status == 0 && input.stdout == "b\n", "\(input)")
        #expect(p.runs("count1") == 1 && p.runs("count2") == 2, "a changed input rebuilt the wrong steps")
        // A new file a glob matches is a changed input.
        try p.write("scripts/b.sh", "true\n")
        #expect(p.azl(["run", "--", "cat", "/etc/step2"]).status == 0 && p.runs("count2") == 3)
        try p.write("azl-shell.toml", Self.twoSteps)
        try p.write("azl-shell.toml", Self.twoSteps.replacingOccurrences(of: "cp req.txt", with: "cp -f req.txt"))
        let step = p.azl(["run", "--", "cat", "/etc/step1", "/etc/step2"])
        #expect(step.status == 0 && step.stdout == "one\nb\n", "\(step)")
        #expect(p.runs("count1") == 1 && p.runs("count2") == 4, "a changed step rebuilt the wrong steps")
        try p.write("azl-shell.toml", Self.twoSteps.replacingOccurrences(of: "echo one", with: "echo uno"))
        let top = p.azl(["run", "--", "cat", "/etc/step1"])
        #expect(top.status == 0 && top.stdout == "uno\n" && p.runs("count1") == 2 && p.runs("count2") == 5, "\(top)")
        // A glob that matches nothing is an error naming it.
        try FileManager.default.removeItem(atPath: p.dir + "/req.txt")
        let missing = p.azl(["run", "--", "true"])
        #expect(missing.status == 125 && missing.stderr.contains("input req.txt matches no file"), "\(missing)")
    }

    @Test func aFailingStepKeepsNothingAndNamesItself() throws {
        guard let p = try project("""
            image = "alp:3.20"
            setup = [
              "echo ran >> count1",
              "echo partial > /etc/partial; exit 3",
            ]
            """) else { return }
        let res = p.azl(["run", "--", "true"])
        #expect(res.status == 125, "\(res)")
        let lines = res.stderr.split(separator: "\n").filter { $0.hasPrefix("azl-shell: setup step 2 of") }
        #expect(lines.count == 1 && lines[0].contains("azl-shell.toml:4") && lines[0].contains("status 3"), "\(res)")
        #expect(p.layers.count == 1, "only the first step's layer is kept: \(p.layers)")
        let tmp = (try? FileManager.default.contentsOfDirectory(atPath: p.f.state + "/tmp")) ?? []
        #expect(tmp.isEmpty, "the failed step left \(tmp)")
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nsetup = [\"echo ran >> count1\", \"true\"]\n")
        let fixed = p.azl(["run", "--", "sh", "-c", "test ! -e /etc/partial"])
        #expect(fixed.status == 0 && p.runs("count1") == 1, "earlier layers stay cached: \(fixed)")
    }

    @Test func twoColdRunsAtOnceRunSetupOnce() throws {
        guard let p = try project("image = \"alp:3.20\"\nsetup = [\"echo ran >> count1; sleep 0.5\", \"echo ran >> count2\"]\n") else { return }
        var results = [RunResult?](repeating: nil, count: 2)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = p.azl(["run", "--", "cat", "count1"])
            lock.withLock { results[i] = r }
        }
        for r in results { #expect(r?.status == 0 && r?.stdout == "ran\n", "\(String(describing: r))") }
        #expect(p.runs("count1") == 1 && p.runs("count2") == 1, "setup ran twice")
    }

    @Test func malformedFileUnknownKeyAndWrongTypeNameFileLineAndKey() throws {
        guard let p = try project("image = \"alp:3.20\"\n") else { return }
        let file = p.dir + "/azl-shell.toml"
        for (toml, line, key) in [("image = \"alp:3.20\"\nnetwork = [\n", 2, "`network`"),
                                  ("image = \"alp:3.20\"\n\nimagee = \"x\"\n", 3, "`imagee`"),
                                  ("image = \"alp:3.20\"\nuser = 0\n", 2, "`user`"),
                                  ("image = \"alp:3.20\"\nsetup = [\n  \"true\",\n  { run = \"true\", input = [] },\n]\n", 4, "`input`")] {
            try p.write("azl-shell.toml", toml)
            let res = p.azl(["run", "--", "true"])
            let lines = res.stderr.split(separator: "\n")
            #expect(res.status == 125 && lines.count == 1 && lines[0].contains("\(file):\(line):") && lines[0].contains(key), "\(toml): \(res)")
        }
    }

    @Test func theLockPinsTheDigestAfterARetagAndFrozenFailsOnDrift() throws {
        guard let p = try project(Self.twoSteps) else { return }
        try p.write("req.txt", "a\n")
        #expect(p.azl(["setup"]).status == 0)
        let lock = p.read("azl-shell.lock")
        let digest = try #require(p.f.azl(["images", "--digests"]).stdout.split(separator: "\n").first.map(String.init))
        #expect(lock.contains(digest) && lock.contains("[[step]]"), "\(lock)")
        // The same tree under another digest (an uncompressed tar), under the same name.
        let tar = p.f.r.base + "/alp.tar"
        let unz = Subprocess.run(["/bin/sh", "-c", "gzip -dc \(RealRootfs.alpineX86.path) > \(tar) && chmod 644 \(tar)"])
        #expect(unz.status == 0, "\(unz)")
        #expect(p.f.azl(["import", "--name", "alp:3.20", tar, "-q"]).status == 0)
        let moved = try #require(p.f.azl(["images", "--digests"]).stdout.split(separator: "\n").first.map(String.init))
        #expect(moved != digest)
        #expect(p.f.azl(["prune"]).status == 0)
        let pinned = p.azl(["run", "--", "true"])
        #expect(pinned.status == 0 && p.runs("count1") == 1 && p.read("azl-shell.lock") == lock, "the lock's digest was not used: \(pinned)")
        // --frozen: a changed step is drift, named; nothing runs.
        try p.write("azl-shell.toml", Self.twoSteps.replacingOccurrences(of: "echo one", with: "echo uno"))
        let frozen = p.azl(["run", "--frozen", "--", "true"])
        #expect(frozen.status == 125 && frozen.stderr.contains("setup step 1") && p.runs("count1") == 1, "\(frozen)")
        let ci = p.azl(["run", "--", "true"], env: ["CI": "true"])
        #expect(ci.status == 125 && ci.stderr.contains("changed since the lock was written"), "\(ci)")
        // lock --update follows the tag: the setup runs again on the new image.
        try p.write("azl-shell.toml", Self.twoSteps)
        #expect(p.azl(["lock", "--update"]).status == 0)
        #expect(p.read("azl-shell.lock").contains(moved) && !p.read("azl-shell.lock").contains(digest))
        let updated = p.azl(["run", "--frozen", "--", "true"])
        #expect(updated.status == 0 && p.runs("count1") == 2, "\(updated)")
    }

    @Test func pruneKeepsLayersALockUsesAndARestoredStoreSkipsSetup() throws {
        guard let p = try project(Self.twoSteps) else { return }
        try p.write("req.txt", "a\n")
        #expect(p.azl(["setup"]).status == 0)
        let before = p.layers
        #expect(before.count == 2)
        let prune = p.f.azl(["prune"])
        #expect(prune.status == 0 && p.layers == before, "prune dropped layers a lock uses: \(prune)")
        let images = p.f.azl(["images"])
        #expect(images.stdout.contains("setup layers: 2"), "\(images)")

        // A CI cache: the store's folder as a tar, restored on another path.
        let tar = p.f.r.base + "/store.tar", restored = p.f.r.base + "/restored"
        let pack = p.f.r.run(["/bin/sh", "-c", "tar -C \(p.f.state) -cf \(tar) . && mkdir \(restored) && tar -C \(restored) -xf \(tar)"])
        #expect(pack.status == 0, "\(pack)")
        let res = p.f.r.azl(["run", "--", "cat", "/etc/step2"], root: restored, cwd: p.dir)
        #expect(res.status == 0 && res.stdout == "a\n" && p.runs("count1") == 1 && p.runs("count2") == 1, "setup ran again: \(res)")

        // Without the lock nothing uses the layers: prune frees them.
        try FileManager.default.removeItem(atPath: p.dir + "/azl-shell.lock")
        let freed = p.f.azl(["prune", "--json"])
        #expect(freed.status == 0 && p.layers.isEmpty && before.allSatisfy { freed.stdout.contains($0) }, "\(freed)")
    }

    /// `enter` in a project: the project's environment, named after its folder, made from the
    /// file on first use (setup layers under its own layer, the project folder bound), kept
    /// across sessions, and made again when the setup changes.
    @Test func enterInAProjectEntersItsEnvironment() throws {
        guard let p = try project(Self.twoSteps) else { return }
        try p.write("req.txt", "a\n")
        func enter(_ script: String) -> RunResult { p.f.azl(["enter"], stdin: Data(script.utf8), cwd: p.dir) }
        let first = enter("cat /etc/step1 /etc/step2; echo $GREETING; echo mine > /etc/mine; ls \(p.dir)/azl-shell.toml\n")
        #expect(first.status == 0 && first.stdout == "one\na\nhello\n\(p.dir)/azl-shell.toml\n", "\(first)")
        let name = (p.dir as NSString).lastPathComponent
        #expect(first.stderr.contains("created environment \(name) for"), "\(first)")
        let again = enter("cat /etc/mine\n")
        #expect(again.status == 0 && again.stdout == "mine\n" && !again.stderr.contains("created"), "kept across sessions: \(again)")
        #expect(p.runs("count1") == 1, "setup ran once: \(p.read("count1"))")
        // A changed setup step: a new environment over the new layers.
        try p.write("req.txt", "b\n")
        let changed = enter("cat /etc/step2; cat /etc/mine 2>/dev/null || echo fresh\n")
        #expect(changed.status == 0 && changed.stdout == "b\nfresh\n", "\(changed)")
        #expect(changed.stderr.contains("making environment \(name) again"), "\(changed)")
        let gone = p.azl(["rm", "--force", name])
        #expect(gone.status == 0, "\(gone)")
    }

    /// The trust rule for project files: the project folder is bound in sandboxes, so a file a
    /// command wrote there must not give the next run more than that folder. Volumes outside it
    /// (absolute, `..`, or a symlink planted in it) are refused until the user trusts the file's
    /// exact bytes; a volume inside it needs nothing; a changed file needs trust again.
    @Test func aProjectFileASandboxWroteCannotWidenTheNextRun() throws {
        guard SandboxFixture.available(.alpineX86, for: "ProjectTests", sourceLocation: #_sourceLocation) else { return }
        let f = try StoredImageFixture()
        let p = Project(f: f, dir: try f.r.makeDirectory("proj"))
        let secret = try f.r.makeDirectory("secret")
        try "key\n".write(toFile: secret + "/key", atomically: false, encoding: .utf8)
        try FS.mkdirs(p.dir + "/cache")
        p.f.r.chownTree(secret)
        p.f.r.chownTree(p.dir)
        // A command in a sandbox plants the file and a symlink out of the folder.
        let plant = p.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", """
            ln -s \(secret) link
            printf 'image = "alp:3.20"\\nvolumes = ["\(secret):/abs", "cache:/c"]\\n' > azl-shell.toml
            """])
        #expect(plant.status == 0, "\(plant)")
        let refused = p.azl(["run", "--", "cat", "/abs/key"])
        #expect(refused.status == 125 && refused.stderr.contains("outside the project folder") && refused.stderr.contains("azl-shell trust"), "\(refused)")
        #expect(refused.stdout.isEmpty && refused.stderr.split(separator: "\n").count == 1, "\(refused)")
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nvolumes = [\"link:/abs\"]\n")
        let viaLink = p.azl(["run", "--", "cat", "/abs/key"])
        #expect(viaLink.status == 125 && viaLink.stderr.contains("outside the project folder"), "a planted symlink: \(viaLink)")
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nvolumes = [\"../\((secret as NSString).lastPathComponent):/abs\"]\n")
        let dotdot = p.azl(["run", "--", "cat", "/abs/key"])
        #expect(dotdot.status == 125 && dotdot.stderr.contains("outside the project folder"), "a `..` source: \(dotdot)")
        // Inside the folder: believed without trust.
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nvolumes = [\"cache:/c\"]\n")
        let inside = p.azl(["run", "--", "sh", "-c", "echo x > /c/x && cat /c/x"])
        #expect(inside.status == 0 && inside.stdout == "x\n", "\(inside)")
        // The user trusts it: the volume outside is bound; any change takes that back.
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nvolumes = [\"\(secret):/abs:ro\"]\n")
        let trust = p.azl(["trust"])
        #expect(trust.status == 0 && trust.stderr.contains("volume \(secret):/abs:ro"), "trust shows what the file reaches: \(trust)")
        for _ in 0..<2 {
            let trusted = p.azl(["run", "--", "cat", "/abs/key"])
            #expect(trusted.status == 0 && trusted.stdout == "key\n", "\(trusted)")
        }
        let edit = p.azl(["run", "--no-project", "--image", "alp:3.20", "--", "sh", "-c", "echo '# more' >> azl-shell.toml"])
        #expect(edit.status == 0, "\(edit)")
        let afterEdit = p.azl(["run", "--", "cat", "/abs/key"])
        #expect(afterEdit.status == 125 && afterEdit.stderr.contains("outside the project folder"), "a changed file is not trusted: \(afterEdit)")
        #expect(p.azl(["trust"]).status == 0 && p.azl(["run", "--", "cat", "/abs/key"]).status == 0)
        // Trusted, a volume still binds only where it resolved when trusted: a folder of the
        // project swapped for a symlink out of it moves nothing.
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nvolumes = [\"\(secret):/abs:ro\", \"cache:/c\"]\n")
        #expect(p.azl(["trust"]).status == 0)
        let swap = p.azl(["run", "--", "sh", "-c", "rm -rf cache && ln -s \(secret) cache && echo swapped"])
        #expect(swap.status == 0 && swap.stdout == "swapped\n", "\(swap)")
        try FS.mkdirs(p.dir + "/sub")
        p.f.r.chownTree(p.dir)
        let moved = p.azl(["run", "--", "cat", "/c/key"], cwd: p.dir + "/sub")
        #expect(moved.status == 125 && moved.stderr.contains("when it was trusted"), "\(moved)")
        unlink(p.dir + "/cache")
        try FS.mkdirs(p.dir + "/cache")
        p.f.r.chownTree(p.dir)
        let revoke = p.azl(["trust", "--revoke"])
        #expect(revoke.status == 0 && p.azl(["run", "--", "cat", "/abs/key"]).status == 125, "\(revoke)")
        // A sandbox cannot write a trust record: the config folder is read-only in every sandbox
        // (made first where a bind would show it), even when the working directory is the home.
        let forge = p.azl(["run", "--no-project", "--image", "alp:3.20", "--", "sh", "-c",
                           "mkdir -p .config/azl-shell/trusted && echo x > .config/azl-shell/trusted/x"], cwd: f.r.home)
        #expect(forge.status != 0, "a sandbox wrote the config folder: \(forge)")
        // An environment's real home is the user's to give: refused from an untrusted file.
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nhome = \"host\"\n")
        let home = p.f.azl(["enter"], stdin: Data("true\n".utf8), cwd: p.dir)
        #expect(home.status == 125 && home.stderr.contains("home = \"host\"") && home.stderr.contains("azl-shell trust"), "\(home)")
        // A setup input that a sandbox made a symlink out of the folder is not read by the host.
        try p.write("azl-shell.toml", "image = \"alp:3.20\"\nsetup = [{ run = \"true\", inputs = [\"link/key\"] }]\n")
        let input = p.azl(["setup"])
        #expect(input.status == 125 && input.stderr.contains("leads outside the project folder"), "\(input)")
    }

    /// The project's environment checks an untrusted file's volumes at every session: a volume
    /// inside the folder is bound; once a command inside swaps it for a symlink out of the
    /// folder, the next session refuses it instead of binding where the symlink leads.
    @Test func aProjectEnvironmentKeepsItsVolumesInsideTheFolder() throws {
        guard let p = try project("image = \"alp:3.20\"\nvolumes = [\"cache:/c\"]\n") else { return }
        let secret = try p.f.r.makeDirectory("secret")
        try "key\n".write(toFile: secret + "/key", atomically: false, encoding: .utf8)
        try FS.mkdirs(p.dir + "/cache")
        p.f.r.chownTree(secret)
        p.f.r.chownTree(p.dir)
        func enter(_ script: String) -> RunResult { p.f.azl(["enter"], stdin: Data(script.utf8), cwd: p.dir) }
        let first = enter("echo hi > /c/x && cat /c/x && rmdir \(p.dir)/cache 2>/dev/null; rm -rf \(p.dir)/cache/x \(p.dir)/cache && ln -s \(secret) \(p.dir)/cache && echo swapped\n")
        #expect(first.status == 0 && first.stdout == "hi\nswapped\n", "\(first)")
        let second = enter("cat /c/key\n")
        #expect(second.status == 125 && second.stderr.contains("outside the project folder") && !second.stdout.contains("key"), "\(second)")
        let name = (p.dir as NSString).lastPathComponent
        #expect(p.azl(["rm", "--force", name]).status == 0)
    }
}
