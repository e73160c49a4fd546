import Core
import Foundation
import Testing
import TestSupport

/// The user-namespace keeper (Sources/SandboxRuntime/keeper.c): a full-range map is written
/// once and its user namespace parents the namespaces of later runs (each run still has one of
/// its own); nothing depends on the keeper, which leaves on its own.
@Suite(.serialized) struct UserNamespaceKeeperTests {
    func fixture() throws -> StoredImageFixture? {
        if let reason = SandboxFixture.unavailableReason(.alpineX86) {
            unavailable("UserNamespaceKeeperTests: \(reason)")
            return nil
        }
        let f = try StoredImageFixture()
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/newuidmap"),
              (try? String(contentsOfFile: "/etc/subuid", encoding: .utf8))?.contains(f.r.userName + ":") == true else {
            unavailable("UserNamespaceKeeperTests: no /etc/subuid range for \(f.r.userName) or no newuidmap (scripts/setup.sh adds both)")
            return nil
        }
        return f
    }

    /// What a run sees of its user namespace: its inode, the map's lines, and whether chown works.
    static let probe = ["run", "--image", "alp:3.20", "--", "sh", "-c",
                        "readlink /proc/self/ns/user; wc -l < /proc/self/uid_map; touch /tmp/f && chown 123:456 /tmp/f && stat -c %u:%g /tmp/f"]

    /// The inode of the user namespace that parents `pid`'s (NS_GET_PARENT), or nil.
    func parentUserNamespace(of pid: pid_t) -> UInt64? {
        let fd = open("/proc/\(pid)/ns/user", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let parent = ioctl(fd, UInt(0xb702))   // NS_GET_PARENT = _IO(0xb7, 0x2)
        guard parent >= 0 else { return nil }
        defer { close(parent) }
        var st = stat()
        return fstat(parent, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    /// The inode the keeper's state file records.
    func keptInode(_ file: String) -> UInt64? {
        let w = ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: " ")
        return w.count >= 4 ? UInt64(w[3].trimmingCharacters(in: .whitespacesAndNewlines)) : nil
    }

    /// A sandbox left running (`sleep 600` inside) and the host pid of that sleep.
    func liveSandbox(_ f: StoredImageFixture, _ extra: [String] = [], env: [String: String] = [:]) throws -> (LiveProcess, pid_t) {
        let marker = String(UInt32.random(in: 100000...999999))
        let live = try LiveProcess(rootless: f.r, [f.r.azlShell, "run"] + extra + ["--image", "alp:3.20", "--", "sh", "-c",
                                                   "echo ready; exec sleep \(marker)"],
                                   env: env.merging(["AZL_SHELL_ROOT": f.state]) { a, _ in a })
        _ = live.waitForLine("ready")
        let deadline = Date().addingTimeInterval(20)
        var pids: [pid_t] = []
        while pids.isEmpty && Date() < deadline {
            pids = hostPids(withCommandLine: ["sleep", marker])
            if pids.isEmpty { usleep(10_000) }
        }
        return (live, try #require(pids.first, "the sandbox's sleep"))
    }

    func lines(_ r: RunResult) -> [String] { r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } }

    /// The keepers' state files and the pids they name.
    func keepers(_ f: StoredImageFixture) -> [(file: String, pid: pid_t)] {
        let dir = f.state + "/cache/userns"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().compactMap { name in
            guard let text = try? String(contentsOfFile: dir + "/" + name, encoding: .utf8) else { return nil }
            let w = text.split(separator: " ")
            guard w.count == 8, w[0] == "azl-userns", let pid = pid_t(w[2]) else { return nil }
            return (dir + "/" + name, pid)
        }
    }

    /// Poll (no sleeps as synchronisation): true once `pid` is gone, false after `seconds`.
    func waitGone(_ pid: pid_t, seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while processAlive(pid) && Date() < deadline { usleep(20_000) }
        return !processAlive(pid)
    }

    @Test func aSecondRunJoinsTheKeptNamespaceWithTheFullMap() throws {
        guard let f = try fixture() else { return }
        let first = f.azl(Self.probe)
        #expect(first.status == 0, "\(first)")
        #expect(Array(lines(first).dropFirst()) == ["2", "123:456"], "\(first)")
        let kept = keepers(f)
        #expect(kept.count == 1 && processAlive(kept[0].pid), "the first run leaves one keeper: \(kept)")
        guard let k = kept.first else { return }
        // The keeper: its own session, cwd /, nothing open but /dev/null and its state file.
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(k.pid)/fd")) ?? []).sorted()
        let targets = fds.map { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(k.pid)/fd/\($0)")) ?? "?" }
        #expect(fds == ["0", "1", "2", "3"] && targets == ["/dev/null", "/dev/null", "/dev/null", k.file], "\(fds) \(targets)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(k.pid)/cwd")) == "/")
        let cmdline = (try? String(contentsOfFile: "/proc/\(k.pid)/cmdline", encoding: .utf8)) ?? ""
        #expect(cmdline.hasPrefix("azl-shell-sandbox\0--userns-keeper\0"), "\(cmdline)")

        // The keeper's limits are its hard ones (a run's own namespace keeps the run's).
        let limits = (try? String(contentsOfFile: "/proc/\(k.pid)/limits", encoding: .utf8)) ?? ""
        let nproc = limits.split(separator: "\n").first { $0.hasPrefix("Max processes") }?.split(separator: " ").filter { !$0.isEmpty }
        #expect(nproc.map { $0.count >= 4 && $0[2] == $0[3] } == true, "\(limits)")

        // Warm (a plan-cache hit) and cold (--verbose is never cached): both run in it, each in a
        // user namespace of its own whose parent is the kept one; the map and chown as before.
        for extra in [[], ["--verbose"]] {
            let args = [Self.probe[0]] + extra + Array(Self.probe.dropFirst())
            let again = f.azl(args)
            #expect(again.status == 0 && Array(lines(again).dropFirst()) == ["2", "123:456"], "\(again)")
            #expect(lines(again).first != lines(first).first, "two runs shared one user namespace: \(again) vs \(first)")
            if !extra.isEmpty { #expect(again.stderr.contains("in the user namespace kept for this id map"), "\(again)") }
        }
        let (live, sleeper) = try liveSandbox(f)
        defer { live.signal(SIGKILL); _ = live.wait() }
        #expect(parentUserNamespace(of: sleeper) == keptInode(k.file), "a warm run's namespace is not the keeper's child")
        #expect(keepers(f).map(\.pid) == [k.pid], "one keeper for one map")

        // keep-id is another map: another keeper.
        let keep = f.azl(["run", "--image", "alp:3.20", "--user", "keep-id", "--", "id", "-u"])
        #expect(keep.status == 0 && lines(keep) == [String(f.r.uid)], "\(keep)")
        #expect(keepers(f).count == 2, "\(keepers(f))")
    }

    @Test func whatOneRunSetsInItsUserNamespaceStaysItsOwn() throws {
        guard let f = try fixture() else { return }
        #expect(f.azl(Self.probe).status == 0)
        try #require(keepers(f).count == 1)
        // With CAP_SYS_RESOURCE a run may set its namespace's limits: no later run may inherit them.
        let set = f.azl(["run", "--cap-add", "sys_resource", "--image", "alp:3.20", "--", "sh", "-c",
                         "echo 0 > /proc/sys/user/max_mnt_namespaces && echo 0 > /proc/sys/user/max_user_namespaces && echo set"])
        #expect(set.status == 0 && set.stdout == "set\n", "\(set)")
        for _ in 0..<2 {
            let later = f.azl(["run", "--verbose", "--image", "alp:3.20", "--", "cat", "/proc/sys/user/max_mnt_namespaces"])
            #expect(later.status == 0 && later.stdout != "0\n" && later.stderr.contains("kept for this id map"), "\(later)")
        }
    }

    @Test func aKeeperWithLowerLimitsThanTheRunIsNotJoined() throws {
        guard let f = try fixture() else { return }
        // The first run (and so the keeper) under a hard process limit lower than the next run's soft one.
        let low = f.r.run(["/bin/bash", "-c", "ulimit -S -u 4000 && ulimit -H -u 4000 && exec \"$0\" \"$@\"", f.r.azlShell] + Self.probe,
                          env: ["AZL_SHELL_ROOT": f.state])
        #expect(low.status == 0, "\(low)")
        try #require(keepers(f).count == 1)
        let high = f.r.run(["/bin/bash", "-c", "ulimit -S -u 5000 && exec \"$0\" \"$@\"", f.r.azlShell, "run", "--verbose"]
                           + Array(Self.probe.dropFirst()), env: ["AZL_SHELL_ROOT": f.state])
        #expect(high.status == 0 && Array(lines(high).dropFirst()) == ["2", "123:456"], "\(high)")
        #expect(!high.stderr.contains("kept for this id map"), "a run joined a keeper whose limits are lower than its own: \(high)")
        let same = f.r.run(["/bin/bash", "-c", "ulimit -S -u 3000 && exec \"$0\" \"$@\"", f.r.azlShell, "run", "--verbose"]
                           + Array(Self.probe.dropFirst()), env: ["AZL_SHELL_ROOT": f.state])
        #expect(same.status == 0 && same.stderr.contains("kept for this id map"), "\(same)")
    }

    @Test func theKeeperLeavesWhenIdleOrWhenItsFileIsGone() throws {
        guard let f = try fixture() else { return }
        let idle = f.azl(Self.probe, env: ["AZL_SHELL_USERNS_IDLE": "1"])
        #expect(idle.status == 0, "\(idle)")
        let k = try #require(keepers(f).first, "no keeper started")
        #expect(waitGone(k.pid, seconds: 20), "the keeper outlived AZL_SHELL_USERNS_IDLE=1")

        let again = f.azl(Self.probe)
        #expect(again.status == 0 && Array(lines(again).dropFirst()) == ["2", "123:456"], "\(again)")
        let k2 = try #require(keepers(f).first, "no new keeper after the old one left")
        #expect(k2.pid != k.pid && processAlive(k2.pid))
        try FS.removeTree(f.state + "/cache")
        #expect(waitGone(k2.pid, seconds: 20), "the keeper outlived its state file")
        let fresh = f.azl(Self.probe)
        #expect(fresh.status == 0 && Array(lines(fresh).dropFirst()) == ["2", "123:456"], "\(fresh)")
    }

    @Test func noKeeperWhenTurnedOffAndRunsDifferInNamespace() throws {
        guard let f = try fixture() else { return }
        let env = ["AZL_SHELL_USERNS_IDLE": "0"]
        let a = f.azl(Self.probe, env: env)
        #expect(a.status == 0 && Array(lines(a).dropFirst()) == ["2", "123:456"], "\(a)")
        #expect(keepers(f).isEmpty, "\(keepers(f))")
        // Two runs at once (a freed namespace's inode number is soon reused): each its own.
        let live = try LiveProcess(rootless: f.r, [f.r.azlShell, "run", "--image", "alp:3.20", "--", "sh", "-c",
                                                   "readlink /proc/self/ns/user; echo ready; exec sleep 600"],
                                   env: env.merging(["AZL_SHELL_ROOT": f.state]) { a, _ in a })
        defer { live.signal(SIGKILL); _ = live.wait() }
        #expect(live.waitForLine("ready"))
        let b = f.azl(Self.probe, env: env)
        #expect(b.status == 0 && !live.output.contains(lines(b).first ?? "-"), "two runs shared a user namespace with the keeper off: \(b) \(live.output)")
        #expect(keepers(f).isEmpty, "\(keepers(f))")
        let bad = f.azl(Self.probe, env: ["AZL_SHELL_USERNS_IDLE": "soon"])
        #expect(bad.status == 125 && bad.stderr.contains("AZL_SHELL_USERNS_IDLE=soon"), "\(bad)")
    }

    @Test func aDeadForgedOrForeignKeeperIsNeverJoined() throws {
        guard let f = try fixture() else { return }
        let first = f.azl(Self.probe)
        let k = try #require(keepers(f).first, "no keeper started: \(first)")
        kill(k.pid, SIGKILL)
        #expect(waitGone(k.pid, seconds: 20))
        // Dead: its file is unlocked, so the next run maps its own namespace and keeps that one.
        let afterKill = f.azl(Self.probe)
        #expect(afterKill.status == 0 && Array(lines(afterKill).dropFirst()) == ["2", "123:456"], "\(afterKill)")
        let k2 = try #require(keepers(f).first)
        #expect(k2.pid != k.pid && processAlive(k2.pid))
        kill(k2.pid, SIGKILL)
        #expect(waitGone(k2.pid, seconds: 20))

        // A file naming another process of the user, whose user namespace has a one-id map,
        // locked by that process: the map differs, so it is not joined.
        let other = try LiveProcess(rootless: f.r, ["/usr/bin/unshare", "--user", "--map-root-user", "/bin/sh", "-c",
                                                    "exec 3<\(k2.file); flock -x 3; echo ready; exec sleep 600"])
        defer { other.signal(SIGKILL); _ = other.wait() }
        #expect(other.waitForLine("ready"))
        // "ready" comes just before the exec: wait for the sleep itself.
        let deadline = Date().addingTimeInterval(20)
        var holders: [pid_t] = []
        while holders.isEmpty && Date() < deadline {
            holders = hostPids(withCommandLine: ["sleep", "600"])
            if holders.isEmpty { usleep(10_000) }
        }
        let shPid = try #require(holders.first, "the foreign holder")
        let ns = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(shPid)/ns/user")
        let ino = ns.filter(\.isNumber)
        let big = String(UInt64.max)
        try "azl-userns 4 \(shPid) \(ino) \(big) \(big) \(big) \(big)\n".write(toFile: k2.file, atomically: false, encoding: .utf8)
        chown(k2.file, f.r.uid, f.r.gid)
        let forged = f.azl([Self.probe[0], "--verbose"] + Array(Self.probe.dropFirst()))
        #expect(forged.status == 0 && Array(lines(forged).dropFirst()) == ["2", "123:456"], "\(forged)")
        #expect(!forged.stderr.contains("kept for this id map"), "a run joined a namespace with another map: \(forged)")
    }

    /// The host pid of environment NAME's pid 1 (`list --json`), nil when it is stopped.
    func livePid(_ f: StoredImageFixture, _ name: String) -> pid_t? {
        struct Row: Decodable { var name: String; var pid: Int32? }
        let rows = try? JSONDecoder().decode([Row].self, from: Data(f.azl(["list", "--json"]).stdout.utf8))
        return rows?.first { $0.name == name }?.pid
    }

    /// Issue 12's speed: a stopped environment's live sandbox starts in the kept user namespace,
    /// as a warm run does (its maps written directly, no newuidmap/newgidmap per start). It
    /// outlives the keeper; a start with the keeper off maps its own namespace, as before.
    @Test func anEnvironmentStartsInTheKeptNamespace() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        let probe = ["exec", "dev", "--", "sh", "-c", "wc -l < /proc/self/uid_map; id -u"]
        let want = ["3", String(f.r.uid)]   // keep-id: your id between two subordinate ranges
        let first = f.azl(probe)
        #expect(first.status == 0 && lines(first) == want, "\(first)")
        let k = try #require(keepers(f).first, "the start kept no user namespace")
        #expect(keepers(f).count == 1)
        let pid1 = try #require(livePid(f, "dev"), "dev is not running")
        #expect(parentUserNamespace(of: pid1) == keptInode(k.file), "the live sandbox's namespace is not the keeper's child")

        // The keeper gone: sessions still join, and the next start keeps a new namespace.
        kill(k.pid, SIGKILL)
        #expect(waitGone(k.pid, seconds: 20))
        let joined = f.azl(probe)
        #expect(joined.status == 0 && lines(joined) == want, "\(joined)")
        #expect(f.azl(["stop", "dev"]).status == 0)
        let restarted = f.azl(probe)
        #expect(restarted.status == 0 && lines(restarted) == want, "\(restarted)")
        let k2 = try #require(keepers(f).first { processAlive($0.pid) }, "no new keeper")
        #expect(k2.pid != k.pid)
        #expect(parentUserNamespace(of: try #require(livePid(f, "dev"))) == keptInode(k2.file))

        // The keeper off: the helpers map the sandbox's own namespace, a child of ours.
        #expect(f.azl(["stop", "dev"]).status == 0)
        let off = f.azl(probe, env: ["AZL_SHELL_USERNS_IDLE": "0"])
        #expect(off.status == 0 && lines(off) == want, "\(off)")
        var own = stat()
        #expect(stat("/proc/self/ns/user", &own) == 0)
        #expect(parentUserNamespace(of: try #require(livePid(f, "dev"))) == UInt64(own.st_ino), "started in a kept namespace with the keeper off")
    }

    /// Issue 10: the state file decides which namespace a run joins, and the cache folder may be
    /// written by someone else (a sandboxed command, before it was hidden): without the MAC of
    /// the user's secret, a line is not believed, however right it looks.
    @Test func aStateFileWhoseMacIsWrongIsNeverJoined() throws {
        guard let f = try fixture() else { return }
        let verbose = [Self.probe[0], "--verbose"] + Array(Self.probe.dropFirst())
        _ = f.azl(Self.probe)
        let k = try #require(keepers(f).first, "no keeper started")
        let joined = f.azl(verbose)
        #expect(joined.status == 0 && joined.stderr.contains("kept for this id map"), "the live keeper is joined: \(joined)")
        // The real line, its MAC changed in one digit; the keeper still holds the lock.
        var text = try String(contentsOfFile: k.file, encoding: .utf8)
        let last = try #require(text.dropLast().last)
        text = String(text.dropLast(2)) + (last == "0" ? "1" : "0") + "\n"
        try text.write(toFile: k.file, atomically: false, encoding: .utf8)
        let forged = f.azl(verbose)
        #expect(forged.status == 0 && !forged.stderr.contains("kept for this id map"), "a line without its MAC was believed: \(forged)")
        #expect(Array(lines(forged).dropFirst()) == ["2", "123:456"], "the run maps its own namespace instead: \(forged)")
    }
}
