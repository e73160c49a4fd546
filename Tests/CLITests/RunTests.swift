import Core
import Foundation
import Testing
import TestSupport

/// `azl-shell run` on the real distro trees, as the unprivileged user.
/// The trees are unpacked by the user with tar and passed with the hidden `--rootfs`
/// (the same code path as a stored image after the lookup).
@Suite(.serialized) struct RunTests {
    static let distros: [RealRootfs] = [.alpineX86, .debian]

    /// The fixture, or nil (and the reason said: a failure under CI) when the tests cannot run here.
    func fixture(_ r: RealRootfs? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> SandboxFixture? {
        guard SandboxFixture.available(r, for: "RunTests", sourceLocation: sourceLocation) else { return nil }
        return try SandboxFixture.shared()
    }

    func out(_ res: RunResult) -> String { res.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test(arguments: distros) func osReleaseNamesTheDistro(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let res = try f.run(r, ["cat", "/etc/os-release"])
        #expect(res.status == 0, "\(res)")
        #expect(res.stdout.contains(r == .alpineX86 ? "Alpine Linux" : "Debian GNU/Linux"), "\(res)")
    }

    @Test(arguments: distros) func userIsRootInsideOrKeepsItsId(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let u = f.rootless
        for mapping in ["auto", "single"] {
            let root = try f.run(r, ["--id-map", mapping, "id", "-u"])
            #expect(root.status == 0 && out(root) == "0", "\(mapping): \(root)")
            let keep = try f.run(r, ["--id-map", mapping, "--user", "keep-id", "sh", "-c", "id -u; id -un; echo $HOME"])
            #expect(keep.status == 0, "\(keep)")
            // HOME is the user's home from the host's passwd (created, empty, in the ephemeral root).
            let home = String(cString: getpwuid(u.uid)!.pointee.pw_dir)
            #expect(keep.stdout.split(separator: "\n").map(String.init) == [String(u.uid), u.userName, home], "\(mapping): \(keep)")
        }
    }

    @Test func fullRangeMapLetsRootChown() throws {
        guard let f = try fixture(.alpineX86) else { return }
        guard FileManager.default.fileExists(atPath: "/usr/bin/newuidmap"),
              (try? String(contentsOfFile: "/etc/subuid", encoding: .utf8))?.contains(f.rootless.userName + ":") == true else {
            unavailable("fullRangeMapLetsRootChown: no /etc/subuid range for \(f.rootless.userName) or no newuidmap (scripts/setup.sh adds both)")
            return
        }
        let res = try f.run(.alpineX86, ["sh", "-c", "wc -l < /proc/self/uid_map; touch /tmp/f && chown 123:456 /tmp/f && stat -c %u:%g /tmp/f"])
        #expect(res.status == 0, "\(res)")
        #expect(res.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["2", "123:456"], "\(res)")
        let single = try f.run(.alpineX86, ["--id-map", "single", "sh", "-c", "touch /tmp/f && chown 123:456 /tmp/f"])
        #expect(single.status != 0, "chown to an unmapped id must fail with a single-id map: \(single)")
    }

    @Test(arguments: distros) func exitStatuses(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let cases: [([String], Int32)] = [
            (["sh", "-c", "exit 0"], 0),
            (["sh", "-c", "exit 1"], 1),
            (["sh", "-c", "exit 42"], 42),
            (["/etc/passwd"], 126),
            (["no-such-command-here"], 127),
            (["/no/such/file"], 127),
            (["sh", "-c", "kill -INT $$"], 130),
            (["sh", "-c", "kill -TERM $$"], 143),
        ]
        for (argv, want) in cases {
            let res = try f.run(r, argv)
            #expect(res.status == want, "\(argv): \(res)")
            if want == 126 || want == 127 {
                #expect(res.stderr.hasPrefix("azl-shell: ") && res.stderr.contains(argv[0]), "\(argv): \(res)")
                #expect(res.stderr.split(separator: "\n").count == 1, "one line: \(res)")
            }
        }
    }

    @Test func ourOwnErrorsAre125WithOneLine() throws {
        guard let f = try fixture() else { return }
        let res = f.rootless.run([f.rootless.azlShell, "run", "--rootfs", "/nonexistent-tree", "true"])
        #expect(res.status == 125, "\(res)")
        #expect(res.stderr.hasPrefix("azl-shell: ") && res.stderr.split(separator: "\n").count == 1, "\(res)")
        let vol = try f.run(.alpineX86, ["--volume", "/nonexistent-src:/x", "true"])
        #expect(vol.status == 125 && vol.stderr.contains("/nonexistent-src"), "\(vol)")
    }

    @Test(arguments: distros) func workingDirectoryIsSharedWithTheHost(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let work = try f.rootless.makeDirectory("work")
        let res = try f.run(r, ["sh", "-c", "pwd; echo hello > made-inside.txt"], cwd: work)
        #expect(res.status == 0 && out(res) == work, "\(res)")
        let text = try String(contentsOfFile: work + "/made-inside.txt", encoding: .utf8)
        #expect(text == "hello\n")
        var st = stat()
        #expect(stat(work + "/made-inside.txt", &st) == 0 && st.st_uid == f.rootless.uid)
    }

    @Test(arguments: distros) func writesElsewhereAreEphemeralAndNeverReachTheImage(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let tree = try f.rootfs(r)
        let before = treeFingerprint(tree)
        let write = try f.run(r, ["sh", "-c", "echo x > /etc/azl-marker && mkdir -p /usr/azl-dir && rm -rf /bin/ls /etc/os-release && echo y >> /etc/passwd"])
        #expect(write.status == 0, "\(write)")
        let next = try f.run(r, ["sh", "-c", "test ! -e /etc/azl-marker && test ! -e /usr/azl-dir && test -e /etc/os-release && ls / > /dev/null && ! grep -qx y /etc/passwd"])
        #expect(next.status == 0, "the previous run's writes must be gone: \(next)")
        #expect(treeFingerprint(tree) == before, "the cached tree changed")
    }

    @Test(arguments: distros) func procShowsOnlyTheSandbox(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        // While ls runs: pid 1 (our init), the shell, and ls itself; nothing of the host.
        let res = try f.run(r, ["sh", "-c", "ls /proc > /tmp/procs; grep -E '^[0-9]+$' /tmp/procs | sort -n | tr '\\n' ' '; echo; cat /proc/1/cmdline | tr '\\0' ' '"])
        #expect(res.status == 0, "\(res)")
        let lines = res.stdout.split(separator: "\n")
        let pids = lines.first.map { $0.split(separator: " ").compactMap { Int($0) } } ?? []
        #expect(pids == [1, 2, 3], "\(res)")
        // Pid 1 is our init, by a name of its own (neither the user's command line nor where
        // azl-shell is installed), whether the plan came from the cache or not.
        let pid1 = lines.count == 2 ? lines[1].trimmingCharacters(in: .whitespaces) : ""
        #expect(pid1 == "azl-shell-init", "\(res)")
        let again = try f.run(r, ["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/1/comm"])
        #expect(again.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } == ["azl-shell-init", "azl-shell-init"], "\(again)")
    }

    @Test(arguments: distros) func orphansAreReaped(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        // An orphan (its parent exits at once) that exits: pid 1 must reap it, or the loop
        // below never ends (a zombie keeps /proc/PID); the run's timeout fails the test then.
        let script = """
        sh -c 'true & echo $! > /tmp/orphan'
        p=$(cat /tmp/orphan)
        while grep -q '^State:' /proc/$p/status 2>/dev/null; do :; done
        echo reaped $p
        """
        let res = try f.run(r, ["sh", "-c", script], timeout: 60)
        #expect(res.status == 0 && res.stdout.hasPrefix("reaped "), "\(res)")
    }

    @Test(arguments: distros) func hostFilesOutsideMountsAreInvisible(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let secret = try f.rootless.makeDirectory("secret")
        _ = FileManager.default.createFile(atPath: secret + "/key", contents: Data("k".utf8))
        let work = try f.rootless.makeDirectory("work")
        let res = try f.run(r, ["sh", "-c", "test ! -e \(secret)/key && test ! -e \(f.rootless.binDir) && test ! -e /oldroot && test ! -e /upper && echo ok"], cwd: work)
        #expect(res.status == 0 && out(res) == "ok", "\(res)")
    }

    @Test(arguments: distros) func networkNoneHasOnlyLoopback(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let res = try f.run(r, ["--network", "none", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"])
        #expect(res.status == 0 && out(res) == "lo", "\(res)")
        if r == .alpineX86 {
            let up = try f.run(r, ["--network", "none", "ip", "link", "show", "lo"])
            #expect(up.status == 0 && up.stdout.contains("UP"), "lo must be up: \(up)")
        }
        let host = try f.run(r, ["sh", "-c", "tail -n +3 /proc/net/dev | wc -l"])
        #expect(host.status == 0 && (Int(out(host)) ?? 0) >= 1, "\(host)")
    }

    @Test(arguments: distros) func readOnlyRootRefusesWrites(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let res = try f.run(r, ["--read-only", "sh", "-c", "touch /usr/x"])
        #expect(res.status != 0 && res.stderr.contains("Read-only"), "\(res)")
        let ok = try f.run(r, ["--read-only", "sh", "-c", "touch /tmp/x /var/tmp/x /run/x && echo ok"])
        #expect(ok.status == 0 && out(ok) == "ok", "\(ok)")
    }

    @Test(arguments: distros) func onlyStandardFdsAreOpenInside(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let tree = try f.rootfs(r)
        // Leak two fds into azl-shell on purpose: the command must not see them.
        let res = f.rootless.run(["/bin/sh", "-c", "exec 7</etc/passwd 8>/dev/null; exec \"$0\" \"$@\"",
                                  f.rootless.azlShell, "run", "--rootfs", tree, "ls", "/proc/self/fd"])
        #expect(res.status == 0, "\(res)")
        // ls's own directory fd is the 4th.
        #expect(res.stdout.split(separator: "\n").map(String.init) == ["0", "1", "2", "3"], "\(res)")
    }

    @Test func environmentIsCleanAndOptionsApply() throws {
        guard let f = try fixture(.alpineX86) else { return }
        let res = try f.run(.alpineX86, ["--env", "FOO=bar", "--env", "PASSME", "--hostname", "box", "sh", "-c", "env | sort; hostname"],
                            env: ["LEAKY_SECRET": "1", "PASSME": "yes", "AZL_SHELL_ROOT": "/nonexistent-state"])
        #expect(res.status == 0, "\(res)")
        let lines = Set(res.stdout.split(separator: "\n").map(String.init))
        #expect(lines.contains("FOO=bar") && lines.contains("PASSME=yes") && lines.contains("HOME=/root") && lines.contains("box"), "\(res)")
        #expect(!res.stdout.contains("LEAKY_SECRET") && !res.stdout.contains("AZL_SHELL_ROOT") && !res.stdout.contains("nonexistent-state"), "\(res)")
        // What run sets itself, and nothing else of the host's (sh adds PWD, SHLVL; TERM only when set).
        let keys = Set(res.stdout.split(separator: "\n").compactMap { l -> String? in
            guard let eq = l.firstIndex(of: "=") else { return nil }
            return String(l[..<eq])
        })
        let allowed: Set<String> = ["PATH", "HOME", "TERM", "LANG", "container", "AZL_SHELL_IMAGE", "ENV", "debian_chroot",
                                    "FOO", "PASSME", "PWD", "SHLVL", "OLDPWD"]
        #expect(keys.subtracting(allowed).isEmpty, "unexpected variables inside: \(keys.subtracting(allowed))")
    }

    @Test func volumesBindAndCanBeReadOnly() throws {
        guard let f = try fixture(.alpineX86) else { return }
        let v = try f.rootless.makeDirectory("vol")
        let res = try f.run(.alpineX86, ["--volume", "\(v):/mnt/rw", "--volume", "\(v):/mnt/ro:ro", "sh", "-c",
                                         "echo a > /mnt/rw/a && cat /mnt/ro/a && ! touch /mnt/ro/b"])
        #expect(res.status == 0 && out(res) == "a", "\(res)")
        #expect(FileManager.default.fileExists(atPath: v + "/a") && !FileManager.default.fileExists(atPath: v + "/b"))
    }

    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func signalsAreForwardedToTheCommand(_ sig: Int32, _ want: Int32) throws {
        guard let f = try fixture(.alpineX86) else { return }
        let tree = try f.rootfs(.alpineX86)
        let p = try LiveProcess(rootless: f.rootless, [f.rootless.azlShell, "run", "--rootfs", tree, "sh", "-c", "echo ready; exec sleep 1000"])
        #expect(p.waitForLine("ready"))
        p.signal(sig)
        let (status, err) = p.wait()
        #expect(status == want, "\(err)")
    }

    @Test(arguments: [("HUP", SIGHUP), ("QUIT", SIGQUIT)])
    func hangupAndQuitReachTheCommandsTrap(_ name: String, _ sig: Int32) throws {
        guard let f = try fixture(.alpineX86) else { return }
        let tree = try f.rootfs(.alpineX86)
        // The trap is set before "ready"; `wait` returns when a trapped signal arrives.
        let script = "trap 'echo got-\(name); exit 7' \(name); echo ready; while :; do sleep 1000 & wait $!; done"
        let p = try LiveProcess(rootless: f.rootless, [f.rootless.azlShell, "run", "--rootfs", tree, "sh", "-c", script])
        p.killAfter(120)
        #expect(p.waitForLine("ready"))
        p.signal(sig)
        #expect(p.waitForLine("got-\(name)"), "the command's trap for SIG\(name) did not run")
        let (status, err) = p.wait()
        #expect(status == 7, "the command's own exit status: \(err)")
    }

    /// Pid 1 detaches the old root (the host's tree, stacked on the new "/" by pivot_root) while
    /// the command's child gets ready, and the child execs only after that: the command's very
    /// first look at its mount table never shows the host's tree. Ten fresh runs, each racing
    /// the detach if the gate were missing.
    @Test func theHostTreeIsGoneBeforeTheCommandRuns() throws {
        guard let f = try fixture(.alpineX86) else { return }
        for i in 0..<10 {
            let info = try f.run(.alpineX86, ["cat", "/proc/self/mountinfo"])
            try #require(info.status == 0, "\(info)")
            let points = info.stdout.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(separator: " ")
                return fields.count > 4 ? String(fields[4]) : nil
            }
            #expect(points.filter { $0 == "/" }.count == 1, "run \(i): a second mount at / (the old root): \(info.stdout)")
            #expect(points.count < 60 && !points.contains("/oldroot"), "run \(i): \(info.stdout)")
        }
    }

    @Test(arguments: distros) func sysIsReadOnly(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        let info = try f.run(r, ["cat", "/proc/self/mountinfo"])
        try #require(info.status == 0, "\(info)")
        // Every mount at /sys or below: its per-mount options (field 6) include ro.
        var sys: [(point: String, options: String)] = []
        for line in info.stdout.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 6, fields[4] == "/sys" || fields[4].hasPrefix("/sys/") else { continue }
            sys.append((fields[4], fields[5]))
        }
        #expect(sys.first?.point == "/sys", "\(info.stdout)")
        for m in sys { #expect(m.options.split(separator: ",").contains("ro"), "\(m.point) is mounted \(m.options)") }
        // Writing fails: a new file in every one of them, an existing attribute, a directory.
        var script = sys.map { "touch '\($0.point)/azl-write-test' 2>&1 && echo wrote \($0.point)" }
        script += ["echo 1500 2>&1 > /sys/class/net/lo/mtu && echo wrote mtu", "mkdir /sys/azl-dir 2>&1 && echo made dir",
                   "test -d /sys/kernel && echo populated"]
        let w = try f.run(r, ["sh", "-c", script.joined(separator: "; ")])
        let lines = w.stdout.split(separator: "\n").map(String.init)
        #expect(!lines.contains { $0.hasPrefix("wrote") || $0.hasPrefix("made") }, "\(w)")
        #expect(lines.last == "populated", "the host's sysfs, read-only: \(w)")
        // Every mount is read-only (checked above); a filesystem whose own permission check comes
        // first (tracefs under /sys/kernel/tracing, mounted once anything on the host opens it, and
        // debugfs under /sys/kernel/debug, which systemd mounts: root's 0700 folders) says
        // "Permission denied" instead.
        #expect(lines.dropLast().count == sys.count + 2 && lines.dropLast().allSatisfy {
            $0.contains("Read-only file system") ||
                (($0.contains("/sys/kernel/tracing") || $0.contains("/sys/kernel/debug")) && $0.contains("Permission denied"))
        }, "\(w)")
    }

    /// docs/sandbox.md: the minimal set, plus the spare procfs's covered mountpoint under a kernel profile.
    static let devRequired: Set<String> = ["null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
                                           "fd", "stdin", "stdout", "stderr"]
    static let devAllowed: Set<String> = [".azl-proc"]

    @Test(arguments: distros) func devHoldsExactlyTheMinimalSet(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        for extra in [[], ["--kernel", "host"]] {
            let res = try f.run(r, extra + ["ls", "-A", "/dev"])
            #expect(res.status == 0, "\(res)")
            let names = Set(res.stdout.split(separator: "\n").map(String.init))
            #expect(names.subtracting(Self.devAllowed) == Self.devRequired,
                    "\(extra): missing \(Self.devRequired.subtracting(names).sorted()), extra \(names.subtracting(Self.devRequired).sorted())")
        }
        // And they are what their names say.
        let script = """
        for n in null zero full random urandom tty; do [ -c /dev/$n ] || echo "not a char device: $n"; done
        [ -d /dev/pts ] && [ -c /dev/pts/ptmx ] && [ -e /dev/ptmx ] || echo "no devpts"
        [ -d /dev/shm ] && touch /dev/shm/x || echo "no writable shm"
        for n in fd stdin stdout stderr; do [ -L /dev/$n ] || echo "not a link: $n"; done
        [ "$(readlink /dev/fd)" = /proc/self/fd ] || echo "fd is $(readlink /dev/fd)"
        echo discarded > /dev/null || echo "null not writable"
        [ "$(head -c 5 /dev/zero | wc -c | tr -d ' ')" = 5 ] || echo "zero"
        [ "$(head -c 16 /dev/urandom | wc -c | tr -d ' ')" = 16 ] || echo "urandom"
        echo x 2>/dev/null > /dev/full && echo "full accepted a write"
        echo ok
        """
        let res = try f.run(r, ["sh", "-c", script])
        #expect(res.status == 0 && res.stdout == "ok\n", "\(res)")
    }

    @Test(arguments: distros) func hostsAndResolvConfAreTheHostsAndReadOnly(_ r: RealRootfs) throws {
        guard let f = try fixture(r) else { return }
        for file in ["/etc/hosts", "/etc/resolv.conf"] {
            guard let host = FileManager.default.contents(atPath: file) else {
                notApplicableHere("hostsAndResolvConfAreTheHostsAndReadOnly: this machine has no \(file)")
                continue
            }
            for extra in [[], ["--read-only"]] {
                let res = try f.run(r, extra + ["cat", file])
                #expect(res.status == 0 && res.stdout == String(decoding: host, as: UTF8.self), "\(file) \(extra): \(res)")
            }
            // Root inside cannot change the host's file through it (a read-only bind; the host's
            // root owns it, so the permission check may refuse first).
            let w = try f.run(r, ["sh", "-c", "echo 10.9.9.9 azl-injected >> \(file)"])
            #expect(w.status != 0 && (w.stderr.contains("Read-only") || w.stderr.contains("Permission denied")), "\(w)")
            #expect(FileManager.default.contents(atPath: file) == host, "the host's \(file) changed")
        }
    }

    @Test func onATerminalTheCommandGetsItsOwnPty() throws {
        guard let f = try fixture(.alpineX86) else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            unavailable("onATerminalTheCommandGetsItsOwnPty: no /usr/bin/script (bsdutils) to provide a terminal")
            return
        }
        let tree = try f.rootfs(.alpineX86)
        // script(1) gives azl-shell a terminal; inside, the command's terminal is a pty of the
        // sandbox's devpts (its controlling terminal, in its own session), not the host's.
        let inner = "\(f.rootless.azlShell) run --rootfs \(tree) -- sh -c 'tty; readlink /proc/self/fd/0; [ $(cut -d\" \" -f6 /proc/$$/stat) = $$ ] && echo session-leader; exit 7'"
        let res = f.rootless.run(["/usr/bin/script", "-qec", inner, "/dev/null"], timeout: 60)
        #expect(res.status == 7, "\(res)")
        let lines = res.stdout.replacingOccurrences(of: "\r", with: "").split(separator: "\n").map { $0.trimmingCharacters(in: .controlCharacters) }
        #expect(lines.contains("/dev/pts/0") && lines.contains("session-leader"), "\(res)")
    }

    @Test func nothingSurvivesWhenAzlShellIsKilled() throws {
        guard let f = try fixture(.alpineX86) else { return }
        let tree = try f.rootfs(.alpineX86)
        let marker = String(UInt32.random(in: 100000...999999))
        let p = try LiveProcess(rootless: f.rootless, [f.rootless.azlShell, "run", "--rootfs", tree, "sh", "-c",
                                                        "sleep \(marker) & p=$!; until [ \"$(cat /proc/$p/comm)\" = sleep ]; do :; done; echo ready; wait"])
        #expect(p.waitForLine("ready"))
        let inner = hostPids(withCommandLine: ["sleep", marker])
        #expect(inner.count == 1, "the inner sleep is visible from the host as one process")
        p.signal(SIGKILL)
        _ = p.wait()
        // The kernel kills the sandbox asynchronously after its supervisor dies: poll for it.
        let deadline = Date().addingTimeInterval(20)
        while inner.contains(where: processAlive) && Date() < deadline { sched_yield() }
        #expect(!inner.contains(where: processAlive), "a process outlived azl-shell")
    }

    @Test func runsAStoredImageAndNeverModifiesIt() throws {
        guard let f = try fixture(.alpineX86) else { return }
        let state = try f.rootless.makeDirectory("state")
        let imp = f.rootless.azl(["import", "--name", "alpine:3.20", RealRootfs.alpineX86.path], root: state)
        #expect(imp.status == 0, "\(imp)")
        let trees = (try? FileManager.default.contentsOfDirectory(atPath: state + "/trees")) ?? []
        let tree = try #require(trees.map { state + "/trees/" + $0 + "/rootfs" }.first { FileManager.default.fileExists(atPath: $0) },
                                "no unpacked tree in \(state)/trees")
        let before = treeFingerprint(tree)
        let res = f.rootless.azl(["run", "--image", "alpine:3.20", "--", "sh", "-c",
                                  "head -1 /etc/os-release; hostname; echo x > /etc/marker; rm -f /bin/busybox"], root: state)
        #expect(res.status == 0, "\(res)")
        #expect(res.stdout.hasPrefix("NAME=\"Alpine Linux\"\nalpine\n"), "\(res)")
        #expect(treeFingerprint(tree) == before, "the stored tree changed")
        let missing = f.rootless.azl(["run", "--image", "no-such-image", "true"], root: state)
        #expect(missing.status == 125 && missing.stderr.hasPrefix("azl-shell: "), "\(missing)")
    }

    @Test func hundredParallelRunsAllSucceed() async throws {
        guard let f = try fixture(.alpineX86) else { return }
        _ = try f.rootfs(.alpineX86)
        let results = await withTaskGroup(of: (Int, RunResult?).self) { group in
            var all: [(Int, RunResult?)] = []
            var next = 0
            func add() {
                let i = next
                next += 1
                group.addTask { (i, try? f.run(.alpineX86, ["sh", "-c", "echo run-\(i)"])) }
            }
            for _ in 0..<8 { add() }   // bounded: 8 at a time
            while let r = await group.next() {
                all.append(r)
                if next < 100 { add() }
            }
            return all
        }
        #expect(results.count == 100)
        for (i, res) in results {
            #expect(res?.status == 0 && res?.stdout == "run-\(i)\n", "\(i): \(String(describing: res))")
        }
    }
}
