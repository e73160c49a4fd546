import Core
import Foundation
import Testing
import TestSupport

/// Named environments (issue 12) as the unprivileged user, on the real Alpine tarball: a layer
/// of their own that persists, one live sandbox shared by every session, stop and rm.
@Suite(.serialized) struct EnvironmentTests {
    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> StoredImageFixture? {
        guard SandboxFixture.available(.alpineX86, for: "EnvironmentTests", sourceLocation: sourceLocation) else { return nil }
        return try StoredImageFixture()
    }

    struct Row: Decodable { var name, status: String; var sessions: Int; var pid: Int32?; var size: Int64 }

    func list(_ f: StoredImageFixture) throws -> [Row] {
        let res = f.azl(["list", "--json"])
        guard res.status == 0 else { throw AZLError(.io, "list failed: \(res)") }
        return try JSONDecoder().decode([Row].self, from: Data(res.stdout.utf8))
    }

    /// The live sandboxes of this fixture's store: each holder (its fd 3 is the environment's
    /// folder) and its pid 1 (the holder's child); zombies are gone.
    func environmentProcesses(_ f: StoredImageFixture) -> [pid_t] {
        var holders: [pid_t] = [], inits: [(pid: pid_t, parent: pid_t)] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(name), processAlive(pid),
                  let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let comm = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            let parent = pid_t(stat[close...].split(separator: " ")[2]) ?? 0
            if comm == "azl-env", (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(name)/fd/3"))?.hasPrefix(f.state + "/") == true {
                holders.append(pid)
            } else if comm == "azl-env-init" {
                inits.append((pid, parent))
            }
        }
        return holders + inits.filter { holders.contains($0.parent) }.map(\.pid)
    }

    func oneLine125(_ res: RunResult, naming: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(res.status == 125, "\(res)", sourceLocation: sourceLocation)
        let lines = res.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains(naming), "\(res)", sourceLocation: sourceLocation)
    }

    @Test func aLayerOfItsOwnPersistsAndStaysItsOwn() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "one", "two", "three"]) }
        #expect(f.azl(["create", "one", "--image", "alp:3.20", "--idle", "60"]).status == 0)
        #expect(f.azl(["create", "two", "--image", "alp:3.20"]).status == 0)
        let w = f.azl(["exec", "one", "--", "sh", "-c", "echo kept > /etc/kept && cat /etc/kept"])
        #expect(w.status == 0 && w.stdout == "kept\n", "\(w)")
        #expect(f.azl(["exec", "one", "--", "cat", "/etc/kept"]).stdout == "kept\n")
        #expect(f.azl(["exec", "two", "--", "test", "-e", "/etc/kept"]).status == 1, "the sibling sees the change")
        #expect(f.azl(["run", "--image", "alp:3.20", "--", "test", "-e", "/etc/kept"]).status == 1, "run --image sees the change")
        // Across stop, and across a kill -9 of the live sandbox's pid 1.
        #expect(f.azl(["stop", "one"]).status == 0)
        #expect(try list(f).first { $0.name == "one" }?.status == "stopped")
        #expect(f.azl(["exec", "one", "--", "cat", "/etc/kept"]).stdout == "kept\n")
        let pid = try #require(try list(f).first { $0.name == "one" }?.pid)
        kill(pid, SIGKILL)
        // Gone first (a session joining a sandbox being killed is told to run again).
        while processAlive(pid) { sched_yield() }
        let again = f.azl(["exec", "one", "--", "cat", "/etc/kept"])
        #expect(again.status == 0 && again.stdout == "kept\n", "\(again)")
        #expect(try list(f).first { $0.name == "one" }?.pid != pid)
        // A third environment costs (almost) nothing: the image is not copied.
        let before = FS.diskUsage(f.state)
        #expect(f.azl(["create", "three", "--image", "alp:3.20"]).status == 0)
        #expect(FS.diskUsage(f.state) - before < 1 << 20)
        // Exit statuses as `run`.
        #expect(f.azl(["exec", "one", "--", "sh", "-c", "exit 7"]).status == 7)
        #expect(f.azl(["exec", "one", "--", "no-such-command"]).status == 127)
        #expect(f.azl(["exec", "one", "--", "sh", "-c", "kill -9 $$"]).status == 137)
    }

    @Test func twoSessionsShareOneLiveSandbox() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        let first = try LiveProcess(rootless: f.r, [f.r.azlShell, "exec", "dev", "--", "sh", "-c",
            "echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; cat /tmp/from-two"], env: ["AZL_SHELL_ROOT": f.state])
        first.killAfter(60)
        #expect(first.waitForLine("ready"), "\(first.output)")
        #expect(try list(f).first?.sessions == 1)
        let second = f.azl(["exec", "dev", "--", "sh", "-c", "echo hello > /tmp/from-two; ps -o args; touch /tmp/go"])
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout.contains("while [ ! -e /tmp/go ]"), "the second session does not see the first's processes: \(second)")
        #expect(first.waitForLine("hello"), "\(first.output)")
        #expect(first.wait().status == 0)
        // rm of a busy environment is refused, naming its sessions; --force stops it first.
        let busy = try LiveProcess(rootless: f.r, [f.r.azlShell, "exec", "dev", "--", "sh", "-c", "echo in; exec sleep 600"],
                                   env: ["AZL_SHELL_ROOT": f.state])
        busy.killAfter(60)
        #expect(busy.waitForLine("in"))
        oneLine125(f.azl(["rm", "dev"]), naming: "session")
        #expect(f.azl(["rm", "--force", "dev"]).status == 0)
        #expect(busy.wait().status != 0)
        #expect(!FS.exists(f.state + "/environments/dev"))
        #expect(environmentProcesses(f).isEmpty, "processes left: \(environmentProcesses(f))")
    }

    @Test func stopLeavesNoProcessAndRmLeavesNothing() throws {
        guard let f = try fixture() else { return }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        // A package's files belong to other ids: rm removes them all the same.
        let w = f.azl(["exec", "--user", "root", "dev", "--", "sh", "-c",
                       "dd if=/dev/zero of=/big bs=1M count=4 2>/dev/null && mkdir -p /opt/x && touch /opt/x/f && chown -R 1234:1234 /opt/x && chmod 0 /opt/x"])
        #expect(w.status == 0, "\(w)")
        #expect(try list(f).first?.size ?? 0 >= 4 << 20)
        // A background process left behind is ended by stop.
        #expect(f.azl(["exec", "dev", "--", "sh", "-c", "nohup sleep 600 >/dev/null 2>&1 &"]).status == 0)
        #expect(!environmentProcesses(f).isEmpty)
        #expect(f.azl(["stop", "dev"]).status == 0)
        #expect(environmentProcesses(f).isEmpty, "processes left: \(environmentProcesses(f))")
        #expect(hostPids(withCommandLine: ["sleep", "600"]).filter(processAlive).isEmpty)
        let rm = f.azl(["rm", "dev"])
        #expect(rm.status == 0, "\(rm)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: f.state + "/environments")) ?? []).isEmpty)
    }

    @Test func namesAndUnknownEnvironmentsAreOneLineErrors() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "ok-1.x"]) }
        for bad in ["a/b", "..", ".hidden", "sp ace", String(repeating: "a", count: 65), "é"] {
            oneLine125(f.azl(["create", bad, "--image", "alp:3.20"]), naming: "letter or digit")
        }
        oneLine125(f.azl(["exec", "nosuch", "--", "true"]), naming: "nosuch")
        oneLine125(f.azl(["rm", "nosuch"]), naming: "nosuch")
        oneLine125(f.azl(["stop", "nosuch"]), naming: "nosuch")
        #expect(f.azl(["create", "ok-1.x", "--image", "alp:3.20"]).status == 0)
        oneLine125(f.azl(["create", "ok-1.x", "--image", "alp:3.20"]), naming: "already exists")
        oneLine125(f.azl(["rmi", "alp:3.20"]), naming: "ok-1.x")
    }

    @Test func twoCreatesOfOneNameOneWins() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "race"]) }
        let a = try LiveProcess(rootless: f.r, [f.r.azlShell, "create", "race", "--image", "alp:3.20"], env: ["AZL_SHELL_ROOT": f.state])
        let b = f.azl(["create", "race", "--image", "alp:3.20"])
        let sa = a.wait()
        #expect([sa.status, b.status].sorted() == [0, 125], "\(sa) \(b)")
        #expect(f.azl(["exec", "race", "--", "true"]).status == 0)
    }

    @Test func homeModes() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "priv", "shared", "ov"]) }
        let realHome = f.r.home
        try Data("mine\n".utf8).write(to: URL(fileURLWithPath: realHome + "/.dotfile"))
        f.r.chownTree(realHome)
        #expect(f.azl(["create", "priv", "--image", "alp:3.20"]).status == 0)
        #expect(f.azl(["create", "shared", "--image", "alp:3.20", "--home", "host"]).status == 0)
        // The user's home path inside is the passwd one; HOME is set to it.
        let p = f.azl(["exec", "priv", "--", "sh", "-c", "cd && test ! -e .dotfile && echo private > written && cat written"])
        #expect(p.status == 0 && p.stdout == "private\n", "\(p)")
        #expect(!FS.exists(realHome + "/written"))
        let h = f.azl(["exec", "shared", "--", "sh", "-c", "cat $HOME/.dotfile"])
        #expect(h.status == 0 && h.stdout == "mine\n", "\(h)")
        // overlay: the real dotfile is read; what is written stays in the environment.
        #expect(f.azl(["create", "ov", "--image", "alp:3.20", "--home", "overlay"]).status == 0)
        let o = f.azl(["exec", "ov", "--", "sh", "-c", "cat $HOME/.dotfile && echo changed > $HOME/.dotfile && echo new > $HOME/written"])
        #expect(o.status == 0 && o.stdout == "mine\n", "\(o)")
        #expect(try String(contentsOfFile: realHome + "/.dotfile", encoding: .utf8) == "mine\n")
        #expect(!FS.exists(realHome + "/written"))
        #expect(f.azl(["stop", "ov"]).status == 0)
        let kept = f.azl(["exec", "ov", "--", "sh", "-c", "cat $HOME/.dotfile $HOME/written"])
        #expect(kept.status == 0 && kept.stdout == "changed\nnew\n", "the environment's copy was not kept: \(kept)")
        oneLine125(f.azl(["create", "bad", "--image", "alp:3.20", "--home", "elsewhere"]), naming: "overlay")
    }

    /// A second `exec NAME -- CMD` replays the first's plan from the plan cache (the entry is not
    /// written again: same inode), into a running or a stopped environment; a changed config is
    /// a miss, and a removed environment is never answered from the cache.
    @Test func aSecondExecReplaysItsPlan() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20", "--env", "FOO=one"]).status == 0)
        let cmd = ["exec", "dev", "--", "sh", "-c", "echo \"$FOO $(hostname)\"; echo s >> /tmp/sessions; wc -l < /tmp/sessions"]
        let first = f.azl(cmd)
        #expect(first.status == 0 && first.stdout == "one dev\n1\n", "\(first)")
        #expect(f.plans.count == 1, "exec stores its plan: \(f.plans)")
        let entry = f.state + "/cache/plans/" + (f.plans.first ?? "none")
        func inode() -> UInt64 { ((try? FileManager.default.attributesOfItem(atPath: entry))?[.systemFileNumber] as? UInt64) ?? 0 }
        let stored = inode()

        // Running: a replay joins the same live sandbox (its /tmp).
        let again = f.azl(cmd)
        #expect(again.status == 0 && again.stdout == "one dev\n2\n", "\(again)")
        #expect(inode() == stored && f.plans.count == 1, "the second exec was not a replay")

        // Stopped: the replayed plan starts the live sandbox afresh (a new /tmp).
        #expect(f.azl(["stop", "dev"]).status == 0)
        let cold = f.azl(cmd)
        #expect(cold.status == 0 && cold.stdout == "one dev\n1\n", "\(cold)")
        #expect(inode() == stored, "an exec into a stopped environment was not a replay")
        #expect(try list(f).first?.status == "running")

        // A changed config is a miss: the session sees the new setting, and the entry is replaced.
        let config = f.state + "/environments/dev/config.json"
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config))) as? [String: Any])
        json["env"] = ["FOO=two"]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: config))
        let changed = f.azl(cmd)
        #expect(changed.status == 0 && changed.stdout == "two dev\n2\n", "a replay ignored the changed config: \(changed)")
        #expect(inode() != stored, "the entry of the old config was kept")

        // Removed: the session is refused, not replayed.
        #expect(f.azl(["rm", "--force", "dev"]).status == 0)
        oneLine125(f.azl(cmd), naming: "dev")
    }

    /// A start writes /etc/passwd (your entry) into the layer: not again when it already holds
    /// those bytes (on disk that was a truncation and a flush every start), again when it differs.
    @Test func aStartRewritesOnlyTheFilesThatDiffer() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        #expect(f.azl(["exec", "dev", "--", "true"]).status == 0)
        let passwd = f.state + "/environments/dev/upper/etc/passwd"
        func inodeAndTime() -> [String] {
            let a = (try? FileManager.default.attributesOfItem(atPath: passwd)) ?? [:]
            return ["\(a[.systemFileNumber] ?? "-")", "\((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"]
        }
        let written = try String(contentsOfFile: passwd, encoding: .utf8), before = inodeAndTime()
        #expect(written.contains(f.r.userName + ":"), "\(written)")
        #expect(f.azl(["stop", "dev"]).status == 0)
        #expect(f.azl(["exec", "dev", "--", "true"]).status == 0)
        #expect(inodeAndTime() == before, "an unchanged /etc/passwd was written again")
        #expect(f.azl(["exec", "dev", "--", "sh", "-c", "echo extra:x:5000:5000::/:/bin/sh >> /etc/passwd"]).status == 0)
        #expect(f.azl(["stop", "dev"]).status == 0)
        #expect(f.azl(["exec", "dev", "--", "true"]).status == 0)
        #expect(try String(contentsOfFile: passwd, encoding: .utf8) == written, "a changed /etc/passwd was not written again")
    }

    /// The holder listens while pid 1 builds the root: a start that fails there (its layer is
    /// not a folder any more) says why in one line and leaves no socket, pid file or process;
    /// the next start works.
    @Test func aStartThatFailsLeavesNothingBehind() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        let dir = f.state + "/environments/dev"
        try FileManager.default.moveItem(atPath: dir + "/upper", toPath: dir + "/upper.aside")
        #expect(FileManager.default.createFile(atPath: dir + "/upper", contents: Data()))
        oneLine125(f.azl(["exec", "dev", "--", "true"]), naming: "upper")
        #expect(!FS.exists(dir + "/live.sock") && !FS.exists(dir + "/live.pid"))
        #expect(environmentProcesses(f).isEmpty, "processes left: \(environmentProcesses(f))")
        try FS.removeTree(dir + "/upper")
        try FileManager.default.moveItem(atPath: dir + "/upper.aside", toPath: dir + "/upper")
        let again = f.azl(["exec", "dev", "--", "echo", "up"])
        #expect(again.status == 0 && again.stdout == "up\n", "\(again)")
    }
}

/// `enter` on a real terminal (python's pty as the user's terminal): the prompt marker, Ctrl-C
/// reaching the foreground job inside, the window size following a resize, the exit status.
@Suite(.serialized) struct EnvironmentTerminalTests {
    static let driver = #"""
import os, pty, sys, select, time, fcntl, termios, struct, signal
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
buf = b""
def until(want, secs=30):
    global buf
    end = time.time() + secs
    while want not in buf:
        left = end - time.time()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            print("TIMEOUT waiting for %r in %r" % (want, buf)); sys.exit(2)
        try: chunk = os.read(fd, 4096)
        except OSError: print("EOF waiting for %r in %r" % (want, buf)); sys.exit(2)
        buf += chunk
    i = buf.index(want) + len(want); seen = buf[:i]; buf = buf[i:]
    return seen
until(b"[azl-shell dev]"); print("PROMPT")
# The trap is set before "started" is printed: a Ctrl-C from then on interrupts the job.
os.write(fd, b"sh -c 'trap \"echo inter\"\"rupted; exit 130\" INT; echo sta\"\"rted; while :; do sleep 1; done'\n")
until(b"started\r\n")
os.write(fd, b"\x03")
until(b"interrupted"); print("INTERRUPTED")
until(b"[azl-shell dev]")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
os.write(fd, b"stty size\n")
until(b"40 100"); print("RESIZED")
os.write(fd, b"exit 3\n")
while True:
    try:
        if not os.read(fd, 4096): break
    except OSError: break
_, st = os.waitpid(pid, 0)
print("STATUS", os.waitstatus_to_exitcode(st))
"""#

    @Test func aRealTerminal() throws {
        guard SandboxFixture.available(.alpineX86, for: "EnvironmentTerminalTests") else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            unavailable("aRealTerminal: no /usr/bin/python3 to drive a pty"); return
        }
        let f = try StoredImageFixture()
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        let script = f.r.base + "/pty-driver.py"
        try Data(Self.driver.utf8).write(to: URL(fileURLWithPath: script))
        let res = f.r.run(["/usr/bin/python3", script, f.r.azlShell, "enter", "dev"], env: ["AZL_SHELL_ROOT": f.state, "TERM": "xterm"], timeout: 120)
        #expect(res.stdout.split(separator: "\n") == ["PROMPT", "INTERRUPTED", "RESIZED", "STATUS 3"], "\(res)")
    }
}
