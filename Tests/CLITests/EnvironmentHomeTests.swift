import Core
import Foundation
import Testing
import TestSupport

/// What an environment shows of the user's own (issue 12, docs/environments.md): the home copy-
/// on-write with azl-shell's state covered in it, a session's working directory bound for that
/// session alone, the SSH agent and git identity forwarded into a home of its own.
@Suite(.serialized) struct EnvironmentHomeTests {
    /// The store in the home (its default place) and a cache at the XDG default: a command in an
    /// overlay-home environment sees neither (hidden, as where a bind shows them) and cannot
    /// write them; the plan cache keeps working.
    @Test func anOverlayHomeCoversTheStoreAndCache() throws {
        guard SandboxFixture.available(.alpineX86, for: "anOverlayHomeCoversTheStoreAndCache") else { return }
        let f = try StoredImageFixture(stateInHome: true)
        defer { _ = f.azl(["rm", "--force", "ov"]) }
        let home = f.r.home, cache = f.r.home + "/.cache/azl-shell"
        try FS.mkdirs(cache + "/plans")
        try Data("host\n".utf8).write(to: URL(fileURLWithPath: cache + "/plans/kept"))
        f.r.chownTree(home)
        #expect(f.azl(["create", "ov", "--image", "alp:3.20", "--home", "overlay"]).status == 0)
        let cmd = ["exec", "ov", "--", "sh", "-c",
                   "ls -A \(f.state) \(cache); for d in \(f.state) \(f.state)/cache/plans \(cache) \(cache)/plans; do touch $d/evil 2>/dev/null || echo refused; done"]
        let res = f.azl(cmd)
        #expect(res.status == 0 && res.stdout.split(separator: "\n").filter { $0 != "refused" && !$0.hasSuffix(":") } == [],
                "a state folder shows its contents in the overlay: \(res)")
        #expect(res.stdout.components(separatedBy: "refused").count - 1 == 4, "a state folder was writable: \(res)")
        for d in [f.state, f.state + "/cache/plans", cache, cache + "/plans"] { #expect(!FS.exists(d + "/evil")) }
        #expect(try String(contentsOfFile: cache + "/plans/kept", encoding: .utf8) == "host\n")
        // Nothing of it went into the environment's own copy of the home either.
        let upper = f.state + "/environments/ov/home/upper"
        #expect(((try? FileManager.default.subpathsOfDirectory(atPath: upper)) ?? []).filter { $0.hasSuffix("evil") } == [])
        // The plan kept by the first exec is replayed, and covers them the same.
        let again = f.azl(cmd)
        #expect(again.status == 0 && again.stdout == res.stdout, "\(again)")
    }

    /// Two sessions from two folders: each has its own bound at its path (what it writes there is
    /// on the host), and neither sees the other's; a folder inside the store is not bound.
    @Test func eachSessionHasItsOwnWorkingDirectory() throws {
        guard SandboxFixture.available(.alpineX86, for: "eachSessionHasItsOwnWorkingDirectory") else { return }
        let f = try StoredImageFixture()
        defer { _ = f.azl(["rm", "--force", "dev"]) }
        let a = f.r.base + "/a", b = f.r.base + "/b"
        try FS.mkdirs(a)
        try FS.mkdirs(b)
        try Data("a\n".utf8).write(to: URL(fileURLWithPath: a + "/a-file"))
        f.r.chownTree(f.r.base)
        #expect(f.azl(["create", "dev", "--image", "alp:3.20"]).status == 0)
        let first = try LiveProcess(rootless: f.r, [f.r.azlShell, "exec", "dev", "--", "sh", "-c",
            "pwd; cat a-file; echo from-a > written; echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; test -e \(b)/from-b && echo sees-b || echo alone"],
            env: ["AZL_SHELL_ROOT": f.state], cwd: a)
        first.killAfter(60)
        #expect(first.waitForLine("ready"), "\(first.output)")
        let second = f.azl(["exec", "dev", "--", "sh", "-c", "pwd; echo from-b > from-b; test -e \(a)/a-file && echo sees-a || echo alone; touch /tmp/go"], cwd: b)
        #expect(second.status == 0 && second.stdout == "\(b)\nalone\n", "\(second)")
        #expect(first.waitForLine("alone"), "the first session sees the second's folder: \(first.output)")
        #expect(first.wait().status == 0)
        #expect(first.output == "\(a)\na\nready\nalone\n", "\(first.output)")
        #expect(try String(contentsOfFile: a + "/written", encoding: .utf8) == "from-a\n")
        #expect(FS.exists(b + "/from-b"))
        // Replayed from the plan cache, the same command binds the same folder.
        for _ in 0..<2 {
            let r = f.azl(["exec", "dev", "--", "cat", "from-b"], cwd: b)
            #expect(r.status == 0 && r.stdout == "from-b\n", "\(r)")
        }
        // State folders inside the session's folder are covered as in `run`: a cache hidden, a
        // config folder read-only.
        let w = f.r.base + "/w"
        try FS.mkdirs(w + "/cache/azl-shell")
        try FS.mkdirs(w + "/config/azl-shell")
        try Data("cached\n".utf8).write(to: URL(fileURLWithPath: w + "/cache/azl-shell/entry"))
        try Data("conf\n".utf8).write(to: URL(fileURLWithPath: w + "/config/azl-shell/f"))
        f.r.chownTree(w)
        let covered = f.azl(["exec", "dev", "--", "sh", "-c",
                             "ls -A cache/azl-shell; cat config/azl-shell/f; for d in cache/azl-shell config/azl-shell; do touch $d/evil 2>/dev/null || echo refused; done; echo mine > own"],
                            env: ["XDG_CACHE_HOME": w + "/cache", "XDG_CONFIG_HOME": w + "/config"], cwd: w)
        #expect(covered.status == 0 && covered.stdout == "conf\nrefused\nrefused\n", "\(covered)")
        #expect(!FS.exists(w + "/cache/azl-shell/evil") && !FS.exists(w + "/config/azl-shell/evil") && FS.exists(w + "/own"))
        // The store is never bound: the session starts in the home.
        let inStore = f.azl(["exec", "dev", "--", "pwd"], cwd: f.state)
        #expect(inStore.status == 0 && inStore.stdout == f.r.home + "\n", "\(inStore)")
    }

    /// A host ssh-agent started here, with a key added, answers inside a private-home
    /// environment (the agent protocol spoken by perl of the Debian image: it has no ssh-add);
    /// ~/.gitconfig is there read-only; `--no-forward` shows neither.
    @Test func theSSHAgentAndGitIdentityAreForwarded() throws {
        guard SandboxFixture.available(.debian, for: "theSSHAgentAndGitIdentityAreForwarded") else { return }
        for tool in ["ssh-agent", "ssh-keygen", "ssh-add"] where !FileManager.default.isExecutableFile(atPath: "/usr/bin/" + tool) {
            unavailable("theSSHAgentAndGitIdentityAreForwarded: no /usr/bin/\(tool) (openssh-client) on this host"); return
        }
        let f = try StoredImageFixture(images: [("deb:12", .debian)])
        defer { _ = f.azl(["rm", "--force", "fwd", "nofwd"]) }
        let sock = f.r.base + "/agent.sock", key = f.r.base + "/id_test"
        let agent = try LiveProcess(rootless: f.r, ["/usr/bin/ssh-agent", "-D", "-a", sock])
        agent.killAfter(120)
        // SIGKILL: the test runner's blocked signals are inherited, SIGTERM among them.
        defer { agent.signal(SIGKILL); _ = agent.wait() }
        // ssh-agent prints its variables once it listens.
        #expect(agent.waitForLine("SSH_AUTH_SOCK=\(sock); export SSH_AUTH_SOCK;"), "\(agent.output)")
        #expect(f.r.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "azl-test-key", "-f", key]).status == 0)
        let added = f.r.run(["/usr/bin/ssh-add", key], env: ["SSH_AUTH_SOCK": sock])
        #expect(added.status == 0, "\(added)")
        try Data("[user]\n\tname = Azl Test\n".utf8).write(to: URL(fileURLWithPath: f.r.home + "/.gitconfig"))
        f.r.chownTree(f.r.home)
        #expect(f.azl(["create", "fwd", "--image", "deb:12"]).status == 0)
        #expect(f.azl(["create", "nofwd", "--image", "deb:12", "--no-forward"]).status == 0)
        // SSH2_AGENTC_REQUEST_IDENTITIES (11); the answer (12) holds each key's blob and comment.
        let list = #"""
        use IO::Socket::UNIX;
        my $s = IO::Socket::UNIX->new(Peer => $ENV{SSH_AUTH_SOCK}) or die "no agent: $!\n";
        print $s pack("NC", 1, 11);
        sub rd { my ($n, $b) = (shift, ""); while (length($b) < $n) { sysread($s, $b, $n - length($b), length($b)) or die "short answer\n" } $b }
        my $m = rd(unpack("N", rd(4)));
        my ($type, $n) = unpack("CN", $m);
        die "answer $type\n" unless $type == 12;
        my $o = 5;
        for (1 .. $n) { $o += 4 + unpack("N", substr($m, $o, 4)); my $l = unpack("N", substr($m, $o, 4)); print substr($m, $o + 4, $l), "\n"; $o += 4 + $l }
        """#
        let env = ["SSH_AUTH_SOCK": sock]
        let keys = f.azl(["exec", "fwd", "--", "env", "--", "perl", "-e", list], env: env)
        #expect(keys.status == 0 && keys.stdout == "azl-test-key\n", "\(keys)")
        let git = f.azl(["exec", "fwd", "--", "sh", "-c", "cat ~/.gitconfig; echo more >> ~/.gitconfig 2>/dev/null || echo read-only"], env: env)
        #expect(git.status == 0 && git.stdout == "[user]\n\tname = Azl Test\nread-only\n", "\(git)")
        let none = f.azl(["exec", "nofwd", "--", "sh", "-c", "echo \"[$SSH_AUTH_SOCK]\"; test -e /run/azl-shell/ssh-agent.sock || test -e ~/.gitconfig || echo none"], env: env)
        #expect(none.status == 0 && none.stdout == "[]\nnone\n", "\(none)")
        // A symlink left at ~/.gitconfig (by a sandbox that could write the home) is forwarded
        // only to a regular file inside the home (a dotfile manager's); one out of it is not.
        let outside = f.r.base + "/secret-file", dotfiles = f.r.home + "/dotfiles"
        try Data("SECRET\n".utf8).write(to: URL(fileURLWithPath: outside))
        try FS.mkdirs(dotfiles)
        try Data("[user]\n\tname = Dot Files\n".utf8).write(to: URL(fileURLWithPath: dotfiles + "/gitconfig"))
        for (target, expected) in [(outside, "none\n"), (dotfiles + "/gitconfig", "[user]\n\tname = Dot Files\n")] {
            unlink(f.r.home + "/.gitconfig")
            #expect(symlink(target, f.r.home + "/.gitconfig") == 0)
            f.r.chownTree(f.r.base)
            #expect(f.azl(["stop", "fwd"]).status == 0)
            let linked = f.azl(["exec", "fwd", "--", "sh", "-c", "cat ~/.gitconfig 2>/dev/null || echo none"], env: env)
            #expect(linked.status == 0 && linked.stdout == expected, "~/.gitconfig -> \(target): \(linked)")
        }
    }
}
