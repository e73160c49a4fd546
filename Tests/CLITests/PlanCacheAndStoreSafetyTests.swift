import Core
import Foundation
import Testing
import TestSupport

/// The plan cache (a warm `run` replays the plan of the very same input, and nothing else) and
/// the store's safety from what is bound into the sandbox: the working directory or a volume
/// that holds the store never makes a cached tree writable.
@Suite(.serialized) struct PlanCacheAndStoreSafetyTests {
    func fixture() throws -> StoredImageFixture? {
        if let reason = SandboxFixture.unavailableReason(.alpineX86) {
            unavailable("PlanCacheAndStoreSafetyTests: \(reason)")
            return nil
        }
        return try StoredImageFixture()
    }

    @Test func aWarmRunReplaysOnlyTheSameInput() throws {
        guard let f = try fixture() else { return }
        let cmd = ["run", "--image", "alp:3.20", "-e", "FOO", "--", "sh", "-c", "echo \"foo=$FOO\"; hostname"]
        let first = f.azl(cmd, env: ["FOO": "a"])
        #expect(first.status == 0 && first.stdout == "foo=a\nalp\n", "\(first)")
        #expect(f.plans.count == 1, "the first run stores its plan: \(f.plans)")
        let entry = f.state + "/cache/plans/" + (f.plans.first ?? "")
        let stored = try FileManager.default.attributesOfItem(atPath: entry)[.modificationDate] as? Date

        // The same input, plus a variable run never reads (hyperfine adds one to every run): a hit.
        let again = f.azl(cmd, env: ["FOO": "a", "HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET": "17"])
        #expect(again.status == 0 && again.stdout == first.stdout, "\(again)")
        #expect(f.plans.count == 1, "an unrelated variable made a new plan: \(f.plans)")
        #expect(try FileManager.default.attributesOfItem(atPath: entry)[.modificationDate] as? Date == stored,
                "a hit must not rewrite the entry")

        // A variable planning read (--env FOO passes it through) is part of the input: a miss,
        // and the entry of this command line is replaced.
        let b = f.azl(cmd, env: ["FOO": "b"])
        #expect(b.status == 0 && b.stdout == "foo=b\nalp\n", "a replay ignored --env FOO: \(b)")
        let rewritten = try FileManager.default.attributesOfItem(atPath: entry)[.modificationDate] as? Date
        #expect(f.plans.count == 1 && rewritten != stored, "\(f.plans)")

        // Another working directory is another input: it is bound and is the working directory.
        let sub = try f.r.makeDirectory("elsewhere")
        let pwd = f.azl(["run", "--image", "alp:3.20", "--", "pwd"], cwd: sub)
        #expect(pwd.status == 0 && pwd.stdout == sub + "\n", "\(pwd)")

        // An rmi must never be answered from the cache.
        let rmi = f.azl(["rmi", "alp:3.20"])
        #expect(rmi.status == 0, "\(rmi)")
        let gone = f.azl(cmd, env: ["FOO": "a"])
        #expect(gone.status == 125 && gone.stderr.contains("alp:3.20"), "a removed image still ran: \(gone)")
    }

    /// Issue 11: the cache's inputs are what planning read, not a list: planning made to read
    /// one more variable or file (a debug build's test hook) misses when that input changes,
    /// with no edit of the cache's code.
    @Test func theCacheFollowsWhatPlanningRead() throws {
        guard let f = try fixture() else { return }
        let extra = f.r.base + "/extra-input"
        try "1".write(toFile: extra, atomically: false, encoding: .utf8)
        chown(extra, f.r.uid, f.r.gid)
        let cmd = ["run", "--image", "alp:3.20", "--", "true"]
        let hooks = ["AZL_SHELL_TEST_READ_VARIABLE": "EXTRA", "AZL_SHELL_TEST_READ_FILE": extra]
        func inode() -> UInt64? {
            guard let name = f.plans.first else { return nil }
            return (try? FileManager.default.attributesOfItem(atPath: f.state + "/cache/plans/" + name)[.systemFileNumber]) as? UInt64
        }
        #expect(f.azl(cmd, env: hooks.merging(["EXTRA": "a"]) { a, _ in a }).status == 0)
        let first = try #require(inode(), "stored")
        #expect(f.azl(cmd, env: hooks.merging(["EXTRA": "a"]) { a, _ in a }).status == 0)
        #expect(inode() == first, "the same inputs: a hit")
        #expect(f.azl(cmd, env: hooks.merging(["EXTRA": "b"]) { a, _ in a }).status == 0)
        let second = try #require(inode())
        #expect(second != first, "a variable planning read changed: a miss")
        #expect(f.azl(cmd, env: hooks.merging(["EXTRA": "b"]) { a, _ in a }).status == 0)
        #expect(inode() == second)
        try "22".write(toFile: extra, atomically: false, encoding: .utf8)
        #expect(f.azl(cmd, env: hooks.merging(["EXTRA": "b"]) { a, _ in a }).status == 0)
        #expect(inode() != second, "a file planning read changed: a miss")
    }

    @Test func anIgnoredSigchldOrAFifoLockDoesNotHangARun() throws {
        guard let f = try fixture() else { return }
        // A parent that ignores SIGCHLD hands that on through exec (perl, as a daemon might: shells
        // do not really ignore it); the helpers' and the command's statuses must still arrive.
        for env in [["AZL_SHELL_USERNS_IDLE": "0"], [:], [:]] {   // no keeper, a new keeper, then the cached plan joining it
            let r = f.r.run(["/usr/bin/timeout", "-k", "5", "60", "/usr/bin/perl", "-e", "$SIG{CHLD} = 'IGNORE'; exec @ARGV", f.r.azlShell,
                             "run", "--image", "alp:3.20", "--", "sh", "-c", "sleep 0 & wait; exit 3"],
                            env: env.merging(["AZL_SHELL_ROOT": f.state]) { a, _ in a })
            #expect(r.status == 3, "\(env): \(r)")
        }
        // A fifo in place of the image's tree lock: a miss (and then an error), never a hang.
        let locks = f.state + "/locks"
        let lock = try #require(try FileManager.default.contentsOfDirectory(atPath: locks).first { $0.hasPrefix("tree-") })
        unlink(locks + "/" + lock)
        #expect(mkfifo(locks + "/" + lock, 0o600) == 0)
        chown(locks + "/" + lock, f.r.uid, f.r.gid)
        let r = f.r.run(["/usr/bin/timeout", "60", f.r.azlShell, "run", "--image", "alp:3.20", "--", "sh", "-c", "exit 3"],
                        env: ["AZL_SHELL_ROOT": f.state])
        #expect(r.status != 124, "a fifo at the lock hung the run: \(r)")
    }

    /// The signals whoever started azl-shell ignored do not reach the command, those the C
    /// library keeps for its threads (34, SIGRTMIN under glibc, is musl's) included: planned and
    /// replayed alike.
    @Test func theCallersIgnoredSignalsDoNotReachTheCommand() throws {
        guard let f = try fixture() else { return }
        for run in ["planned", "replayed"] {
            let r = f.r.run(["/bin/bash", "-c", "trap '' PIPE INT 34 40; exec \"$@\"", "bash", f.r.azlShell,
                             "run", "--image", "alp:3.20", "--", "grep", "SigIgn", "/proc/self/status"],
                            env: ["AZL_SHELL_ROOT": f.state])
            #expect(r.status == 0 && r.stdout == "SigIgn:\t0000000000000000\n", "\(run): \(r)")
        }
    }

    @Test func anEmptyCommandNameIsNotFound() throws {
        guard let f = try fixture() else { return }
        let res = f.azl(["run", "--image", "alp:3.20", "--", ""])
        #expect(res.status == 127 && res.stderr.contains("command not found"), "\(res)")
    }

    @Test func aCorruptOrForeignEntryIsAMissNotACrash() throws {
        guard let f = try fixture() else { return }
        let cmd = ["run", "--image", "alp:3.20", "--", "echo", "ok"]
        #expect(f.azl(cmd).stdout == "ok\n")
        let entry = f.state + "/cache/plans/" + (f.plans.first ?? "none")
        // Truncated to its first bytes (as by a full disk without the rename): the full path decides.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: entry))
        try bytes.prefix(40).write(to: URL(fileURLWithPath: entry))
        let res = f.azl(cmd)
        #expect(res.status == 0 && res.stdout == "ok\n", "\(res)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: entry)).count == bytes.count, "the entry was not stored again")

        // In a folder others can write, an entry is never trusted: every run is a miss (a new
        // entry, so a new inode, each time).
        func inode() throws -> UInt64 { (try FileManager.default.attributesOfItem(atPath: entry)[.systemFileNumber] as? UInt64) ?? 0 }
        let hit = try inode()
        #expect(f.azl(cmd).stdout == "ok\n")
        #expect(try inode() == hit, "a trusted entry is replayed, not rewritten")
        chmod(f.state + "/cache/plans", 0o777)
        for _ in 0..<2 {
            let before = try inode()
            let res = f.azl(cmd)
            #expect(res.status == 0 && res.stdout == "ok\n", "\(res)")
            #expect(try inode() != before, "an entry in a world-writable folder was replayed")
        }
    }

    @Test func theStoreIsHiddenWhenTheWorkingDirectoryHoldsIt() throws {
        guard let f = try fixture() else { return }
        let tree = try f.tree
        let before = treeFingerprint(tree)
        // The default working directory of these tests is the folder above the store.
        let poison = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c",
                            "ls -A \(f.state) | wc -l; echo x > \(tree)/etc/poison; touch \(f.state)/images/x.json; touch ./ok"],
                           cwd: f.r.base)
        #expect(poison.stdout == "0\n", "the store is an empty folder inside: \(poison)")
        #expect(FileManager.default.fileExists(atPath: f.r.base + "/ok"), "the working directory is still writable: \(poison)")
        #expect(treeFingerprint(tree) == before, "the cached tree changed")
        #expect(!FileManager.default.fileExists(atPath: f.state + "/images/x.json"))

        // A volume of the store, or of the tree itself, is refused, naming the state folder.
        for src in [f.state, tree] {
            let v = f.azl(["run", "--image", "alp:3.20", "--volume", src + ":/s", "--", "sh", "-c", "touch /s/etc/poison /s/poison"])
            #expect(v.status == 125 && v.stderr.contains("azl-shell's own state"), "\(src): \(v)")
        }
        // A store named with a trailing slash or a `.` is the same store.
        let etc = tree + "/etc"
        for root in [f.state + "/", f.r.base + "/./state"] {
            let w = f.r.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", "touch ./poison 2>/dev/null; touch /etc/inside"], root: root, cwd: etc)
            #expect(w.status == 0, "\(root): \(w)")
        }
        #expect(treeFingerprint(tree) == before, "the cached tree changed through a non-canonical root")
    }

    @Test func theStateFoldersCannotBeMovedAsideFromHome() throws {
        guard let f = try fixture() else { return }
        // The default layout: ~/.local/share/azl-shell and ~/.cache/azl-shell, run from ~.
        let home = f.r.home
        let imp = f.r.azl(["import", "--name", "alp:3.20", RealRootfs.alpineX86.path, "-q"], cwd: home)
        #expect(imp.status == 0, "\(imp)")
        let cmd = ["run", "--image", "alp:3.20", "--", "echo", "hello"]
        #expect(f.r.azl(cmd, cwd: home).stdout == "hello\n")
        let plans = home + "/.cache/azl-shell/plans"
        let entries = try FileManager.default.contentsOfDirectory(atPath: plans)
        #expect(entries.count == 1, "\(entries)")
        // Moving a parent aside and building a writable copy in its place must fail, at every level.
        let attack = f.r.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", """
            for d in .cache .local .local/share .cache/azl-shell .local/share/azl-shell; do
              mv "$d" "$d.aside" 2>/dev/null && echo "moved $d"
            done
            mkdir -p .cache/azl-shell/plans/x 2>/dev/null && echo planted
            touch .local/share/azl-shell/images/x.json 2>/dev/null && echo wrote
            touch ./still-writable && echo ok
            """], cwd: home)
        #expect(attack.status == 0 && attack.stdout == "ok\n", "\(attack)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: plans)).isSuperset(of: entries))
        #expect(!FileManager.default.fileExists(atPath: plans + "/x"))
        #expect(!FileManager.default.fileExists(atPath: home + "/.cache.aside"))
        let again = f.r.azl(cmd, cwd: home)
        #expect(again.status == 0 && again.stdout == "hello\n", "\(again)")
    }

    @Test func inputsTheKeyCannotHoldAreNeverCached() throws {
        guard let f = try fixture() else { return }
        // A variable run reads, set twice: which one wins is environ's order, which no key keeps.
        // (env(1) would replace the first; execve with a raw environment keeps both.)
        let raw = """
            import ctypes, os, sys
            env = ["TERM=a", "TERM=b"] + [k + "=" + v for k, v in os.environ.items() if k != "TERM"]
            arr = lambda xs: (ctypes.c_char_p * (len(xs) + 1))(*[x.encode() for x in xs], None)
            ctypes.CDLL(None).execve(sys.argv[1].encode(), arr(sys.argv[1:]), arr(env))
            """
        let twice = f.r.run(["/usr/bin/python3", "-c", raw, f.r.azlShell, "run", "--image", "alp:3.20", "--", "sh", "-c", "echo $TERM"],
                            env: ["AZL_SHELL_ROOT": f.state])
        #expect(twice.status == 0 && ["a\n", "b\n"].contains(twice.stdout), "\(twice)")
        #expect(f.plans.isEmpty, "a plan was stored for a doubled variable: \(f.plans)")
        // Without HOME the state folders come from elsewhere (the passwd entry, CFFIXED_USER_HOME).
        let noHome = f.r.run(["/usr/bin/env", "-u", "HOME", f.r.azlShell, "run", "--image", "alp:3.20", "--", "true"],
                             env: ["AZL_SHELL_ROOT": f.state])
        #expect(noHome.status == 0, "\(noHome)")
        #expect(f.plans.isEmpty, "\(f.plans)")
    }

    @Test func aPlanThisBuildCannotReadIsAMissAndAFifoDoesNotHang() throws {
        guard let f = try fixture() else { return }
        let cmd = ["run", "--image", "alp:3.20", "--", "echo", "ok"]
        #expect(f.azl(cmd).stdout == "ok\n")
        let entry = f.state + "/cache/plans/" + (f.plans.first ?? "none")
        // The plan's version record, as another build would have written it.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: entry))
        let needle = Data("azl-plan\u{0}7\u{0}".utf8)   // SandboxPlan.version
        let at = try #require(bytes.range(of: needle))
        bytes[at.upperBound - 2] = UInt8(ascii: "9")
        try bytes.write(to: URL(fileURLWithPath: entry))
        let res = f.azl(cmd)
        #expect(res.status == 0 && res.stdout == "ok\n", "a plan of another version must be recomputed: \(res)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: entry)).range(of: needle) != nil, "stored again")
        // A fifo where the entry should be: read without blocking, then a miss.
        unlink(entry)
        #expect(mkfifo(entry, 0o600) == 0)
        chown(entry, f.r.uid, f.r.gid)
        let fifo = f.r.run(["/usr/bin/timeout", "20", f.r.azlShell] + cmd, env: ["AZL_SHELL_ROOT": f.state])
        #expect(fifo.status == 0 && fifo.stdout == "ok\n", "\(fifo)")
    }

    @Test func aSmallFileSizeLimitOnlyCostsTheCache() throws {
        guard let f = try fixture() else { return }
        let res = f.r.run(["/bin/sh", "-c", "ulimit -f 2; exec \"$0\" run --image alp:3.20 -- echo ran", f.r.azlShell],
                          env: ["AZL_SHELL_ROOT": f.state])
        #expect(res.status == 0 && res.stdout == "ran\n", "\(res)")
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: f.state + "/cache/plans")) ?? []).filter { $0.contains(".tmp-") }
        #expect(left.isEmpty, "\(left)")
    }

    @Test func symlinkedHostPathsResolveOnTheHost() throws {
        guard let f = try fixture() else { return }
        // A state folder reached through an absolute symlink.
        let link = f.r.base + "/statelink"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: f.state)
        lchown(link, f.r.uid, f.r.gid)
        let viaLink = f.r.azl(["run", "--image", "alp:3.20", "--", "cat", "/etc/alpine-release"], root: link)
        #expect(viaLink.status == 0 && viaLink.stdout.hasPrefix("3.20"), "\(viaLink)")

        // A volume whose source is an absolute symlink, to a folder and to a file.
        let work = try f.r.makeDirectory("work")
        try "content\n".write(toFile: work + "/file", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: work + "/dirlink", withDestinationPath: work)
        try FileManager.default.createSymbolicLink(atPath: work + "/filelink", withDestinationPath: work + "/file")
        f.r.chownTree(work)
        let v = f.azl(["run", "--image", "alp:3.20", "--volume", work + "/dirlink:/m", "--volume", work + "/filelink:/f",
                       "--", "sh", "-c", "cat /m/file /f"])
        #expect(v.status == 0 && v.stdout == "content\ncontent\n", "\(v)")
    }
}

extension StoredImageFixture {
    /// The plan-cache entries of this store.
    var plans: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + "/cache/plans")) ?? []).filter { $0.hasSuffix(".plan") }.sorted()
    }
}
