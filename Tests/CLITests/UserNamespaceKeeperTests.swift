import Core
import Foundation
import Testing
import TestSupport

/// The user-namespace keeper (Sources/SandboxRuntime/keeper.c): a full-range map is written
/// once and its user namespace reused by later runs; nothing depends on the keeper, which
/// leaves on its own.
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

    /// What a run sees of its user namespace: its inode, the map, and whether chown works.
    static let probe = ["run", "--image", "alp:3.20", "--", "sh", "-c",
                        "readlink /proc/self/ns/user; wc -l < /proc/self/uid_map; touch /tmp/f && chown 123:456 /tmp/f && stat -c %u:%g /tmp/f"]

    func lines(_ r: RunResult) -> [String] { r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } }

    /// The keepers' state files and the pids they name.
    func keepers(_ f: StoredImageFixture) -> [(file: String, pid: pid_t)] {
        let dir = f.state + "/cache/userns"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().compactMap { name in
            guard let text = try? String(contentsOfFile: dir + "/" + name, encoding: .utf8) else { return nil }
            let w = text.split(separator: " ")
            guard w.count == 4, w[0] == "azl-userns", let pid = pid_t(w[2]) else { return nil }
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

        // Warm (a plan-cache hit) and cold (--verbose is never cached): both join it.
        for extra in [[], ["--verbose"]] {
            let args = [Self.probe[0]] + extra + Array(Self.probe.dropFirst())
            let again = f.azl(args)
            #expect(again.status == 0, "\(again)")
            #expect(lines(again) == lines(first), "the same user namespace, the same map, chown works: \(again) vs \(first)")
            if !extra.isEmpty { #expect(again.stderr.contains("in the user namespace kept for this id map"), "\(again)") }
        }
        #expect(keepers(f).map(\.pid) == [k.pid], "one keeper for one map")

        // keep-id is another map: another keeper, never the default map's namespace.
        let keep = f.azl(["run", "--image", "alp:3.20", "--user", "keep-id", "--", "sh", "-c", "readlink /proc/self/ns/user; id -u"])
        #expect(keep.status == 0 && lines(keep).count == 2 && lines(keep)[1] == String(f.r.uid), "\(keep)")
        #expect(lines(keep).first != lines(first).first, "keep-id joined the default map's namespace: \(keep)")
        #expect(keepers(f).count == 2, "\(keepers(f))")
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
        try "azl-userns 1 \(shPid) \(ino)\n".write(toFile: k2.file, atomically: false, encoding: .utf8)
        chown(k2.file, f.r.uid, f.r.gid)
        let forged = f.azl(Self.probe)
        #expect(forged.status == 0 && Array(lines(forged).dropFirst()) == ["2", "123:456"], "\(forged)")
        #expect(lines(forged).first != "user:[\(ino)]", "a run joined a namespace with another map")
    }
}
