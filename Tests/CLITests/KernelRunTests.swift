import Core
import Foundation
import Testing
import TestSupport

/// Issue 5 end to end: `azl-shell run` with kernel profiles and the security policy, and
/// `azl-shell kernel`, as the unprivileged user, on the real Alpine and Debian tarballs
/// imported into a temporary store. A probe compiled here (static, so it runs in any rootfs:
/// Tests/KernelTests/Fixtures/probe.c) calls syscalls by number and prints their errno.
@Suite(.serialized) struct KernelRunTests {
    /// The store, the probe and the expectations, made once per test process.
    final class Fixture: @unchecked Sendable {
        let rootless: Rootless
        let state: String
        /// A folder owned by the user with the static probe and tiocsti, bound at /probe.
        let probeDir: String

        init() throws {
            rootless = try SandboxFixture.shared().rootless
            state = try rootless.makeDirectory("kernel-state")
            probeDir = try rootless.makeDirectory("probe")
            let fx = KernelRunTests.repo + "/Tests/KernelTests/Fixtures"
            // probe_i386 passes pointers to its static data as 32-bit values: non-PIE keeps it below 4 GiB.
            var probes = [("probe.c", "probe", [String]()), ("tiocsti.c", "tiocsti", [])]
            #if arch(x86_64)
            probes.append(("probe_i386.c", "probe_i386", ["-no-pie"]))
            #endif
            for (src, out, flags) in probes {
                let r = Subprocess.run(["/usr/bin/env", "cc", "-O2", "-static", "-D_GNU_SOURCE"] + flags + ["-o", probeDir + "/" + out,
                                        fx + "/" + src, "-lpthread"])
                guard r.status == 0 else {
                    throw AZLError(.internal, "cannot build the static \(out) with the host's cc (needs gcc and libc6-dev): \(r)")
                }
            }
            rootless.chownTree(probeDir)
            for (name, r) in [("alpine:3.20", RealRootfs.alpineX86), ("debian:12", RealRootfs.debian)] {
                let res = rootless.azl(["import", "--name", name, r.path], root: state)
                guard res.status == 0 else { throw AZLError(.internal, "import \(name) failed: \(res)") }
            }
        }
    }

    static let repo: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static let shared = Result<Fixture, Error> { try Fixture() }

    /// The fixture, or nil with the reason said (a failure under CI) when these tests cannot run here.
    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> Fixture? {
        for r in [RealRootfs.alpineX86, .debian] {
            guard SandboxFixture.available(r, for: "KernelRunTests", sourceLocation: sourceLocation) else { return nil }
        }
        return try Self.shared.get()
    }

    static let images = ["alpine:3.20", "debian:12"]

    func run(_ f: Fixture, _ image: String, _ args: [String], env: [String: String] = [:]) -> RunResult {
        f.rootless.azl(["run", "--image", image, "--volume", f.probeDir + ":/probe:ro"] + args, root: f.state, env: env)
    }

    func lines(_ r: RunResult) -> [String] {
        var l = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if l.last == "" { l.removeLast() }
        return l
    }

    /// `KEY VALUE` lines of the probe (or of the i386 probe: `binary`, which always prints `getpid`).
    func probe(_ f: Fixture, _ image: String, _ extra: [String] = [], binary: String = "/probe/probe") throws -> [String: String] {
        let r = run(f, image, extra + ["--", binary])
        #expect(r.status == 0, "\(r)")
        var d: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            guard let sp = line.firstIndex(of: " ") else { continue }
            d[String(line[..<sp])] = String(line[line.index(after: sp)...])
        }
        try #require(d[binary == "/probe/probe" ? "uname.release" : "getpid"] != nil, "the probe printed nothing useful: \(r)")
        return d
    }

    struct Profile: Decodable {
        var profile: String
        var release: String
        var version: String
        var procVersion: String?
        var chosenBy: String?
        var kernelVersion: String
        var mirrored: Bool
        struct Gate: Decodable { var nr: Int; var name: String; var since: String }
        var gated: [Gate]
        struct Denial: Decodable { var call: String; var reason: String }
        var denied: [Denial]
        var capabilitiesKept: [String]
        var capabilitiesDropped: [String]
        var filterInstructions: Int
        struct Compat: Decodable { var abi: String; var mirrored: Bool; var gated: [Gate]; var denied: [String]; var uname: [String] }
        var compat: Compat
    }

    /// What `azl-shell kernel ARGS --json` says.
    func report(_ f: Fixture, _ args: [String]) throws -> Profile {
        let r = f.rootless.azl(["kernel"] + args + ["--json"], root: f.state)
        try #require(r.status == 0, "\(r)")
        return try JSONDecoder().decode(Profile.self, from: Data(r.stdout.utf8))
    }

    static func hostUname() -> (release: String, version: String, machine: String) {
        var u = utsname()
        uname(&u)
        func s<T>(_ v: inout T) -> String { withUnsafeBytes(of: &v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        return (s(&u.release), s(&u.version), s(&u.machine))
    }

    static let deniedKeys = ["keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
                             "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                             "open_by_handle_at", "acct", "swapon", "swapoff", "reboot", "settimeofday", "clock_settime",
                             "ioctl.TIOCSTI", "ioctl.TIOCSTI_highbits", "ioctl.TIOCLINUX"]

    // MARK: what the command sees

    @Test(arguments: images) func unameAndProcFilesShowTheImagesProfile(_ image: String) throws {
        guard let f = try fixture() else { return }
        let want = try report(f, ["--image", image])
        // Imported images carry no manifest name: the profile comes from their /etc/os-release.
        #expect(want.profile == (image == "alpine:3.20" ? "alpine-3.20" : "debian-12"), "\(want)")
        #expect(want.chosenBy?.contains("/etc/os-release") == true)
        #expect(want.release.hasPrefix(image == "alpine:3.20" ? "6.6." : "6.1."))
        #expect(want.release != Self.hostUname().release, "the profile must differ from the host for this test to mean anything")
        let r = run(f, image, ["--", "sh", "-c", "uname -r; uname -v; uname -a; cat /proc/sys/kernel/osrelease; cat /proc/version"])
        #expect(r.status == 0, "\(r)")
        let l = lines(r)
        try #require(l.count == 5, "\(r)")
        #expect(l[0] == want.release)
        #expect(l[1] == want.version)
        #expect(l[2].hasPrefix("Linux \(image.split(separator: ":")[0]) \(want.release) \(want.version) \(Self.hostUname().machine)"), "\(r)")
        #expect(l[3] == want.release)
        #expect(l[4] + "\n" == want.procVersion)
        #expect(l[4].hasPrefix("Linux version \(want.release) "))
        // The files are read-only binds: not even root inside changes them.
        let w = run(f, image, ["--", "sh", "-c", "echo 9.9.9 > /proc/sys/kernel/osrelease || echo refused; umount /proc/version || echo refused; cat /proc/sys/kernel/osrelease"])
        #expect(w.stdout.hasSuffix("refused\nrefused\n\(want.release)\n"), "\(w)")
    }

    @Test func kernelOptionPicksAProfileOrARelease() throws {
        guard let f = try fixture() else { return }
        let cm2 = try report(f, ["--kernel", "cbl-mariner-2.0"])
        #expect(cm2.release.hasPrefix("5.15.") && cm2.release.hasSuffix(".cm2"), "\(cm2)")
        for image in Self.images {
            let r = run(f, image, ["--kernel", "cbl-mariner-2.0", "--", "sh", "-c", "uname -r; uname -v; cat /proc/sys/kernel/osrelease /proc/version"])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout == "\(cm2.release)\n\(cm2.version)\n\(cm2.release)\n\(cm2.procVersion ?? "-")", "\(r)")
        }
        let adhoc = run(f, "alpine:3.20", ["--kernel", "5.4.0-150-generic", "--", "sh", "-c", "uname -r; uname -v; cat /proc/sys/kernel/osrelease"])
        #expect(adhoc.stdout == "5.4.0-150-generic\n#1 SMP\n5.4.0-150-generic\n", "\(adhoc)")
    }

    @Test(arguments: images) func kernelHostShowsTheHostsOwn(_ image: String) throws {
        guard let f = try fixture() else { return }
        let host = Self.hostUname()
        let r = run(f, image, ["--kernel", "host", "--", "sh", "-c", "uname -r; uname -v; cat /proc/sys/kernel/osrelease; cat /proc/version"])
        #expect(r.status == 0, "\(r)")
        let procVersion = try String(contentsOfFile: "/proc/version", encoding: .utf8)
        let osrelease = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
        #expect(r.stdout == "\(host.release)\n\(host.version)\n\(osrelease)\(procVersion)", "\(r)")
        // Still the deny list and the capability bounding set.
        let o = try probe(f, image, ["--kernel", "host"])
        #expect(o["keyctl"] == "EPERM" && o["status.CapBnd"] == "00000000a80425ff" && o["status.Seccomp"] == "2", "\(o)")
    }

    @Test func theImagesManifestNameWins() throws {
        guard let f = try fixture() else { return }
        // A pulled image records the manifest it was pulled as; simulate one on an imported tree.
        let imp = f.rootless.azl(["import", "--name", "pulled-as-mariner:1", RealRootfs.alpineX86.path], root: f.state)
        try #require(imp.status == 0, "\(imp)")
        let dir = f.state + "/images"
        let file = try #require((try FileManager.default.contentsOfDirectory(atPath: dir)).first { $0.hasPrefix("pulled-as-mariner") })
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/" + file))) as? [String: Any])
        json["manifest"] = "cbl-mariner:2.0"
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/" + file))
        f.rootless.chownTree(dir)
        let rep = try report(f, ["--image", "pulled-as-mariner:1"])
        #expect(rep.profile == "cbl-mariner-2.0" && rep.chosenBy == "manifest cbl-mariner:2.0", "\(rep)")
        let r = run(f, "pulled-as-mariner:1", ["--", "uname", "-r"])
        #expect(r.status == 0 && r.stdout == rep.release + "\n", "\(r)")
    }

    @Test func anUnknownDistroRunsWithTheHostKernelAndSaysSoOnce() throws {
        guard let f = try fixture() else { return }
        // A tree with nothing but the static probe: no /etc/os-release to match.
        let tree = try f.rootless.makeDirectory("bare-tree")
        try Subprocess.copyForExec([f.probeDir + "/probe"], into: tree)
        f.rootless.chownTree(tree)
        let r = f.rootless.run([f.rootless.azlShell, "run", "--verbose", "--rootfs", tree, "--", "/probe"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("uname.release \(Self.hostUname().release)\n"), "\(r)")
        let said = r.stderr.split(separator: "\n").filter { $0.contains("host's kernel interface") }
        #expect(said.count == 1 && said[0].contains("no readable /etc/os-release"), "\(r)")
        let quiet = f.rootless.run([f.rootless.azlShell, "run", "--rootfs", tree, "--", "/probe"])
        #expect(quiet.status == 0 && !quiet.stderr.contains("kernel"), "without --verbose nothing is said: \(quiet)")
    }

    // MARK: gating by kernel version

    /// Syscalls of the probe and the kernel version that added them (x86_64 and aarch64 alike).
    static let since: [(String, (Int, Int))] = [
        ("futex_waitv", (5, 16)), ("cachestat", (6, 5)), ("fchmodat2", (6, 6)), ("futex_wake", (6, 7)),
        ("statmount", (6, 8)), ("listmount", (6, 8)), ("mseal", (6, 10)), ("setxattrat", (6, 13)), ("open_tree_attr", (6, 15)),
    ]

    @Test func mariner2LacksWhatCameAfter515() throws {
        guard let f = try fixture() else { return }
        for image in Self.images {
            let o = try probe(f, image, ["--kernel", "cbl-mariner-2.0"])
            #expect(o["uname.release"]?.hasPrefix("5.15.") == true)
            for k in ["futex_waitv", "cachestat", "fchmodat2", "statmount", "mseal", "setxattrat"] {
                #expect(o[k] == "ENOSYS", "\(image) \(k): \(o[k] ?? "-")")
            }
            #expect(o["clone3"] == "EINVAL" && o["close_range"] == "0", "5.3 and 5.9 calls exist on 5.15: \(o)")
            #expect(o["pthread"] == "0" && o["fork"] == "0")
        }
    }

    @Test func azureLinux3LacksWhatCameAfter66ButHasFchmodat2() throws {
        guard let f = try fixture() else { return }
        for image in Self.images {
            let o = try probe(f, image, ["--kernel", "azurelinux-3.0"])
            #expect(o["uname.release"]?.hasSuffix(".azl3") == true)
            for k in ["statmount", "listmount", "mseal", "setxattrat"] { #expect(o[k] == "ENOSYS", "\(image) \(k)") }
            #expect(o["fchmodat2"] == "ENOENT", "fchmodat2 (6.6) reaches the kernel: \(o["fchmodat2"] ?? "-")")
            #expect(o["cachestat"] == "EBADF" && o["futex_waitv"] == "EINVAL", "\(o)")
        }
    }

    @Test func hostGatesNothing() throws {
        guard let f = try fixture() else { return }
        let h = Self.hostUname().release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        try #require(h.count == 2)
        let o = try probe(f, "debian:12", ["--kernel", "host"])
        var checked = 0
        for (k, v) in Self.since where (h[0], h[1]) >= v {
            #expect(o[k] != "ENOSYS", "\(k) exists on the host kernel and must reach it: \(o[k] ?? "-")")
            checked += 1
        }
        print("hostGatesNothing: \(checked) of \(Self.since.count) recent syscalls exist on this host (\(h[0]).\(h[1])) and were checked")
        #expect(checked >= 3, "the host kernel is too old for this test to say much")
    }

    @Test func clone3IsGatedBefore53AndEverythingStillWorks() throws {
        guard let f = try fixture() else { return }
        for image in Self.images {
            let o = try probe(f, image, ["--kernel", "5.2.21"])
            #expect(o["clone3"] == "ENOSYS" && o["close_range"] == "ENOSYS", "\(image): \(o)")
            #expect(o["pthread"] == "0", "threads fall back to clone: \(o)")     // the static probe is threaded
            #expect(o["fork"] == "0")
            #expect(o["uname.release"] == "5.2.21")
        }
        // sh, coreutils/busybox, a pipeline, a threaded dynamic program (sort --parallel in Debian).
        let script = "ls / | sort | head -1; cat /etc/hostname >/dev/null 2>&1; echo x | tr x y; find /etc -maxdepth 1 | wc -l >/dev/null; uname -r"
        for image in Self.images {
            let r = run(f, image, ["--kernel", "5.2.21", "--", "sh", "-c", script])
            #expect(r.status == 0 && r.stdout.hasSuffix("y\n5.2.21\n") && r.stdout.hasPrefix("bin\n"), "\(image): \(r)")
        }
        let threaded = run(f, "debian:12", ["--kernel", "5.2.21", "--", "sh", "-c",
                                              "seq 200000 | sort --parallel=4 -S 1M -rn | head -1"])
        #expect(threaded.status == 0 && threaded.stdout == "200000\n", "\(threaded)")
    }

    // MARK: the security policy

    @Test(arguments: images) func deniedCallsFailWithEPERM(_ image: String) throws {
        guard let f = try fixture() else { return }
        let o = try probe(f, image)
        for k in Self.deniedKeys { #expect(o[k] == "EPERM", "\(image) \(k): \(o[k] ?? "-")") }
        #expect(o["userfaultfd_user_mode_only"] != "EPERM")
        #expect(o["ioctl.FIONREAD"] == "0")
        #expect(o["status.NoNewPrivs"] == "1" && o["status.Seccomp"] == "2")
        #expect(o["unshare.user_mount"] == "0", "nested namespaces stay allowed")
        #if arch(x86_64)
        if o["i386.getpid"] == "0" { #expect(o["i386.keyctl"] == "EPERM") }
        #expect(o["x32.getpid"] == "ENOSYS")
        #endif
        // uname answered by the supervisor carries the sandbox's hostname.
        #expect(o["uname.nodename"] == image.split(separator: ":").first.map(String.init))
        let named = try probe(f, image, ["--hostname", "box"])
        #expect(named["uname.nodename"] == "box")
    }

    @Test func nestedSandboxesCanStillMountProc() throws {
        guard let f = try fixture() else { return }
        // util-linux unshare in Debian: a new user+pid+mount namespace with a fresh /proc.
        let r = run(f, "debian:12", ["--", "unshare", "-rpfm", "--mount-proc", "sh", "-c", "echo $$; test -r /proc/1/stat && echo nested-ok"])
        #expect(r.status == 0 && r.stdout == "1\nnested-ok\n", "\(r)")
        // The spare procfs that makes this possible is out of reach.
        let hidden = run(f, "debian:12", ["--", "sh", "-c", "ls -A /dev/.azl-proc | wc -l; umount /dev/.azl-proc 2>/dev/null || echo refused"])
        #expect(hidden.stdout == "0\nrefused\n", "\(hidden)")
    }

    @Test func capabilitySetsFollowCapAddAndCapDrop() throws {
        guard let f = try fixture() else { return }
        func caps(_ extra: [String]) -> [String: String] {
            let r = run(f, "alpine:3.20", extra + ["--", "grep", "^Cap", "/proc/self/status"])
            #expect(r.status == 0, "\(r)")
            var d: [String: String] = [:]
            for l in r.stdout.split(separator: "\n") {
                let p = l.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
                if p.count == 2 { d[p[0]] = p[1] }
            }
            return d
        }
        let def = caps([])
        #expect(def["CapBnd"] == "00000000a80425ff" && def["CapEff"] == "00000000a80425ff" && def["CapAmb"] == "0000000000000000", "\(def)")
        #expect(caps(["--cap-drop", "net_raw"])["CapBnd"] == "00000000a80405ff")
        #expect(caps(["--cap-drop", "CAP_NET_RAW,chown"])["CapBnd"] == "00000000a80405fe")
        #expect(caps(["--cap-add", "CAP_SYS_ADMIN"])["CapBnd"] == "00000000a82425ff")
        #expect(caps(["--cap-add", "sys_ptrace", "--cap-add", "sys_admin"])["CapBnd"] == "00000000a82c25ff")
        let none = caps(["--cap-drop", "all"])
        #expect(none["CapBnd"] == "0000000000000000" && none["CapEff"] == "0000000000000000")
        #expect(caps(["--cap-drop", "all", "--cap-add", "chown"])["CapBnd"] == "0000000000000001")
        let all = caps(["--cap-add", "all"])
        #expect(all["CapBnd"] == all["CapEff"] && all["CapBnd"] != "00000000a80425ff", "\(all)")
        // A non-root user inside: bounding reduced, nothing effective; uname still answered (the
        // supervisor writes into the memory of a process of another uid in the sandbox).
        if (try? String(contentsOfFile: "/etc/subuid", encoding: .utf8))?.contains(f.rootless.userName + ":") == true {
            let u = run(f, "alpine:3.20", ["--user", "65534:65534", "--", "sh", "-c", "id -u; grep -E '^Cap(Bnd|Eff)' /proc/self/status; uname -r"])
            let want = try report(f, ["--image", "alpine:3.20"]).release
            #expect(u.status == 0 && u.stdout == "65534\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425ff\n\(want)\n", "\(u)")
        } else {
            unavailable("capabilitySetsFollowCapAddAndCapDrop: no /etc/subuid range for \(f.rootless.userName) (scripts/setup.sh adds one): the non-root part is not checked")
        }
        // Without CAP_SYS_ADMIN root inside cannot mount over its own view.
        let m = run(f, "alpine:3.20", ["--", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused"])
        #expect(m.stdout == "refused\n", "\(m)")
        let m2 = run(f, "alpine:3.20", ["--cap-add", "sys_admin", "--", "sh", "-c", "mount -t tmpfs none /mnt && echo mounted"])
        #expect(m2.stdout == "mounted\n", "\(m2)")
    }

    @Test func tiocstiCannotPushInputToTheHostTerminal() throws {
        guard let f = try fixture() else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            unavailable("tiocstiCannotPushInputToTheHostTerminal: no /usr/bin/script (bsdutils) to provide a terminal")
            return
        }
        let out = try f.rootless.makeDirectory("tiocsti")
        // In script(1)'s terminal: stdin is that terminal; stdout goes to a file, so azl-shell
        // passes the terminal itself to the command (no pty of its own). Then whatever reached
        // the terminal's input queue is read back without waiting for a newline.
        func attempt(_ cmd: String, _ tag: String) -> (result: String, leak: String) {
            let sh = "\(cmd) > \(out)/\(tag).txt 2>&1; stty -icanon min 0 time 5; head -c 200 > \(out)/\(tag).leak"
            let r = f.rootless.run(["/usr/bin/script", "-qec", "sh -c '\(sh)'", "/dev/null"], env: ["AZL_SHELL_ROOT": f.state], timeout: 60)
            #expect(r.status == 0, "\(r)")
            let res = (try? String(contentsOfFile: "\(out)/\(tag).txt", encoding: .utf8)) ?? ""
            let leak = (try? String(contentsOfFile: "\(out)/\(tag).leak", encoding: .utf8)) ?? ""
            return (res, leak)
        }
        // The control: a process of the user on that terminal can push input (legacy TIOCSTI on).
        let control = attempt("\(f.probeDir)/tiocsti", "control")
        if control.leak.contains("echo INJECTED") {
            #expect(control.result.hasPrefix("fd0 0\n"), "\(control)")
        } else {
            // A kernel setting, not something to install: the control is not checked, the rest is.
            notApplicableHere("tiocstiCannotPushInputToTheHostTerminal: this kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti=0?), so the control is not checked: \(control)")
        }
        for extra in [[], ["--cap-add", "all", "--kernel", "host"]] {
            let inside = attempt(([f.rootless.azlShell, "run", "--image", "alpine:3.20", "--volume", f.probeDir + ":/probe:ro"] + extra
                                  + ["--", "/probe/tiocsti"]).joined(separator: " "), "inside")
            #expect(inside.result.hasPrefix("fd0 EPERM\n"), "\(extra): \(inside)")
            #expect(!inside.result.contains(" 0\n"), "no push may succeed: \(extra): \(inside)")
            #expect(!inside.leak.contains("INJECTED"), "input reached the host terminal: \(inside)")
        }
    }

    @Test func theHelperBinaryCannotBeReachedFromInside() throws {
        guard let f = try fixture() else { return }
        // The realistic case: the user's own binaries, in a folder of theirs (root inside owns them).
        // Pid 1 runs one of them: the lean azl-shell when it replays a cached plan in process,
        // azl-shell-sandbox when azl-shell-cli execs it (named azl-shell-init either way).
        let helpers = [f.rootless.binDir + "/azl-shell-sandbox", f.rootless.binDir + "/azl-shell"]
        var st = stat()
        for helper in helpers {
            try #require(stat(helper, &st) == 0)
            #expect(st.st_uid == f.rootless.uid, "the helper must belong to the test user for this test to mean anything")
        }
        let before = try helpers.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let script = """
        for p in /proc/[0-9]*; do
          n=${p#/proc/}
          first=$(tr '\\0' '\\n' < $p/cmdline 2>/dev/null | head -n1)
          case "${first##*/}" in azl-shell|azl-shell-sandbox|azl-shell-init) echo "helper-pid $n";; esac
        done
        readlink /proc/1/exe && echo readlink-ok
        (exec 3>>/proc/1/exe) 2>/dev/null && echo write-open-ok
        (exec 3</proc/1/exe) 2>/dev/null && echo read-open-ok
        ls /proc/1/fd >/dev/null 2>&1 && echo fd-ok
        head -c1 /proc/1/mem >/dev/null 2>&1 && echo mem-ok
        ls /proc/1/root/ >/dev/null 2>&1 && echo root-ok
        (exec 3>>/proc/1/exe) 2>&1 | grep -o 'Permission denied' | head -1
        echo done
        """
        for extra in [[], ["--cap-add", "all"], ["--kernel", "host", "--cap-add", "all"]] {
            for _ in 0..<2 {   // a first run (azl-shell-sandbox), then its cached plan (in process)
            let r = run(f, "debian:12", extra + ["--", "sh", "-c", script])
            #expect(r.status == 0, "\(r)")
            // pid 1 is the only process running the helper (the supervisor is outside the pid namespace),
            // and nothing of it can be opened: not for writing, not for reading, not its fds, memory or root.
            #expect(r.stdout == "helper-pid 1\nPermission denied\ndone\n", "\(extra): \(r)")
            }
        }
        #expect(try helpers.map { try Data(contentsOf: URL(fileURLWithPath: $0)) } == before)
    }

    @Test func theSupervisorIsNotDumpable() throws {
        guard let f = try fixture() else { return }
        let p = try LiveProcess(rootless: f.rootless, [f.rootless.azlShell, "run", "--image", "alpine:3.20", "--", "sh", "-c", "echo ready; exec sleep 1000"],
                                env: ["AZL_SHELL_ROOT": f.state])
        #expect(p.waitForLine("ready"))
        // A non-dumpable process's /proc/PID/exe (and fd/, mem, ...) belong to root, whatever its uid.
        var st = stat()
        #expect(lstat("/proc/\(p.pid)/exe", &st) == 0)
        #expect(st.st_uid == 0, "the supervisor (pid \(p.pid)) must be non-dumpable")
        let status = (try? String(contentsOfFile: "/proc/\(p.pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Uid:\t\(f.rootless.uid)\t"), "it still runs as the user: \(status.prefix(300))")
        p.signal(SIGTERM)
        #expect(p.wait().status == 143)
    }

    // MARK: the i386 ABI (int $0x80 from a 64-bit program)

    /// The i386 probe's output, or nil (said why) where the kernel has no IA32 emulation.
    func probeI386(_ f: Fixture, _ image: String, _ extra: [String] = []) throws -> [String: String]? {
        #if arch(x86_64)
        let o = try probe(f, image, extra, binary: "/probe/probe_i386")
        if o["getpid"] != "0" {
            notApplicableHere("this kernel has no IA32 emulation (int $0x80 answers \(o["getpid"] ?? "-")): the i386 ABI is not there to filter")
            return nil
        }
        return o
        #else
        unavailable("the i386 ABI exists on x86_64 only")
        return nil
        #endif
    }

    static let deniedI386 = ["keyctl", "add_key", "request_key", "stime", "clock_settime", "clock_settime64", "settimeofday",
                             "vm86old", "vm86", "iopl", "ioperm", "bpf", "perf_event_open", "userfaultfd", "kexec_load",
                             "init_module", "finit_module", "delete_module", "open_by_handle_at", "acct", "swapon", "swapoff",
                             "reboot", "ioctl.TIOCSTI", "ioctl.TIOCLINUX"]

    @Test func i386UnameCallsAllAnswerTheProfile() throws {
        guard let f = try fixture() else { return }
        for (image, extra) in [("alpine:3.20", [String]()), ("debian:12", ["--kernel", "cbl-mariner-2.0"]),
                               ("debian:12", ["--kernel", "4.19.0-250.azl"])] {
            guard let o = try probeI386(f, image, extra) else { return }
            let want = try report(f, ["--image", image] + extra)
            #expect(want.release != Self.hostUname().release)
            for k in ["uname", "olduname", "oldolduname"] { #expect(o[k] == "0", "\(image) \(extra) \(k): \(o)") }
            #expect(o["uname.release"] == want.release && o["uname.version"] == want.version, "\(extra): \(o)")
            #expect(o["olduname.release"] == want.release && o["olduname.version"] == want.version, "\(extra): \(o)")
            // struct oldold_utsname: 9-byte fields, cut to 8 characters as the kernel does.
            #expect(o["oldolduname.release"] == String(want.release.prefix(8)), "\(extra): \(o)")
            #expect(o["oldolduname.sysname"] == "Linux")
            #expect(o["uname.nodename"] == image.split(separator: ":").first.map(String.init))
        }
        // The host profile mirrors nothing: all three show the host's release.
        guard let h = try probeI386(f, "alpine:3.20", ["--kernel", "host"]) else { return }
        let host = Self.hostUname().release
        #expect(h["uname.release"] == host && h["olduname.release"] == host && h["oldolduname.release"] == String(host.prefix(8)), "\(h)")
    }

    @Test func i386CallsNewerThanTheProfileAnswerENOSYS() throws {
        guard let f = try fixture() else { return }
        guard let old = try probeI386(f, "debian:12", ["--kernel", "4.19.0"]) else { return }
        for k in ["clock_gettime64", "semget", "clone3", "close_range", "futex_waitv", "cachestat", "statmount", "mseal", "file_setattr"] {
            #expect(old[k] == "ENOSYS", "4.19 \(k): \(old[k] ?? "-")")
        }
        #expect(old["clock_gettime"] == "0" && old["getpid"] == "0", "\(old)")
        guard let cm2 = try probeI386(f, "alpine:3.20", ["--kernel", "cbl-mariner-2.0"]) else { return }
        for k in ["futex_waitv", "cachestat", "statmount", "mseal", "file_setattr"] {
            #expect(cm2[k] == "ENOSYS", "5.15 \(k): \(cm2[k] ?? "-")")
        }
        #expect(cm2["clock_gettime64"] == "0" && cm2["semget"] == "EINVAL" && cm2["clone3"] == "EINVAL" && cm2["close_range"] == "0", "\(cm2)")
        // What the host has reaches it (this host is newer than every call the probe makes up to 6.8).
        let h = Self.hostUname().release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard let host = try probeI386(f, "alpine:3.20", ["--kernel", "host"]) else { return }
        if h.count == 2, (h[0], h[1]) >= (6, 8) {
            #expect(host["statmount"] == "EFAULT" && host["cachestat"] == "EBADF" && host["futex_waitv"] == "EINVAL", "\(host)")
        } else {
            notApplicableHere("i386CallsNewerThanTheProfileAnswerENOSYS: the host kernel is older than 6.8; its part is not checked")
        }
    }

    @Test func i386DenyListAnswersEPERM() throws {
        guard let f = try fixture() else { return }
        for extra in [[], ["--kernel", "host", "--cap-add", "all"]] {
            guard let o = try probeI386(f, "alpine:3.20", extra) else { return }
            for k in Self.deniedI386 { #expect(o[k] == "EPERM", "\(extra) \(k): \(o[k] ?? "-")") }
            #expect(o["ioctl.FIONREAD"] == "0" && o["userfaultfd_user_mode_only"] != "EPERM", "\(o)")
        }
    }

    @Test func kernelCommandReportsTheI386ABI() throws {
        guard let f = try fixture() else { return }
        let j = try report(f, ["--kernel", "4.19.0"])
        #if arch(x86_64)
        #expect(j.compat.abi == "i386" && j.compat.mirrored)
        let gated = Dictionary(uniqueKeysWithValues: j.compat.gated.map { ($0.name, ($0.nr, $0.since)) })
        #expect(gated["clock_gettime64"].map { $0 == (403, "5.1") } == true && gated["statmount"].map { $0 == (457, "6.8") } == true, "\(gated)")
        #expect(gated["clock_gettime"] == nil && gated["io_pgetevents"] == nil && gated["rseq"] == nil)
        // A call both gated and denied is gated: 4.19 has no clock_settime64 (5.1).
        #expect(Set(j.compat.denied).isSuperset(of: ["stime", "vm86", "keyctl", "ioctl(TIOCSTI)"]) && !j.compat.denied.contains("clock_settime64"),
                "\(j.compat.denied)")
        #expect(try report(f, ["--kernel", "cbl-mariner-2.0"]).compat.denied.contains("clock_settime64"))
        #expect(j.compat.uname == ["uname", "olduname", "oldolduname"])
        #expect(!j.denied.contains { $0.call == "stime" }, "stime is not an x86_64 call")
        let t = f.rootless.azl(["kernel", "--kernel", "4.19.0"], root: f.state)
        for line in ["32-bit i386     its own syscall numbers, the same policy:", "clock_gettime64(5.1)", "clock_settime64(5.1)", " stime ",
                     "answered by the sandbox's init: uname olduname oldolduname", "x32             ENOSYS for every call"] {
            #expect(t.stdout.contains(line), "missing '\(line)' in:\n\(t.stdout)")
        }
        let host = try report(f, ["--kernel", "host"])
        #expect(host.compat.gated.isEmpty && host.compat.uname.isEmpty && host.compat.denied.contains("keyctl"))
        #else
        #expect(j.compat.abi == "aarch32" && !j.compat.mirrored && j.compat.gated.isEmpty)
        #endif
    }

    // MARK: errors and `azl-shell kernel`

    @Test func badValuesAreOneLineErrorsNamingTheOption() throws {
        guard let f = try fixture() else { return }
        let cases: [([String], String)] = [
            (["--kernel", "no-such-profile"], "--kernel no-such-profile"),
            (["--kernel", "6.6." + String(repeating: "x", count: 70)], "--kernel 6.6."),
            (["--kernel", ""], "--kernel"),
            (["--cap-add", "CAP_FLY"], "--cap-add CAP_FLY"),
            (["--cap-drop", "net_rawx"], "--cap-drop net_rawx"),
        ]
        for (args, want) in cases {
            for verb in [["run", "--image", "alpine:3.20"], ["kernel"]] {
                let r = f.rootless.azl(verb + args + (verb[0] == "run" ? ["--", "true"] : []), root: f.state)
                #expect(r.status == 125, "\(verb) \(args): \(r)")
                #expect(r.stderr.hasPrefix("azl-shell: \(want)") && r.stderr.split(separator: "\n").count == 1, "\(verb) \(args): \(r)")
                #expect(r.stdout.isEmpty)
            }
        }
    }

    @Test func kernelCommandPrintsTheProfileAndWhatItGates() throws {
        guard let f = try fixture() else { return }
        let t = f.rootless.azl(["kernel", "--kernel", "cbl-mariner-2.0"], root: f.state)
        #expect(t.status == 0, "\(t)")
        for s in ["kernel profile  cbl-mariner-2.0 (Linux 5.15.", "uname -r        5.15.", "chosen by       --kernel cbl-mariner-2.0",
                  "futex_waitv(5.16)", "cachestat(6.5)", "fchmodat2(6.6)", "answer ENOSYS", "answer EPERM",
                  "ioctl(TIOCSTI)", "keyctl", "CAP_CHOWN", "CAP_SYS_ADMIN", "no_new_privs    set"] {
            #expect(t.stdout.contains(s), "missing '\(s)' in:\n\(t.stdout)")
        }
        let j = try report(f, ["--image", "alpine:3.20"])
        #expect(j.profile == "alpine-3.20" && j.mirrored && j.kernelVersion.hasPrefix("6.6."))
        let gated = Dictionary(uniqueKeysWithValues: j.gated.map { ($0.name, $0.since) })
        #expect(gated["statmount"] == "6.8" && gated["mseal"] == "6.10" && gated["fchmodat2"] == nil, "\(gated)")
        #expect(j.gated.count == gated.count && j.gated.count > 10)
        #expect(j.denied.contains { $0.call == "keyctl" && !$0.reason.isEmpty })
        #expect(j.denied.contains { $0.call == "ioctl(TIOCSTI)" })
        #expect(j.capabilitiesKept.contains("CAP_CHOWN") && !j.capabilitiesKept.contains("CAP_SYS_ADMIN"))
        #expect(j.capabilitiesDropped.contains("CAP_SYS_ADMIN"))
        #expect(j.filterInstructions > 10)
        let dropped = try report(f, ["--image", "alpine:3.20", "--cap-drop", "all", "--cap-add", "chown"])
        #expect(dropped.capabilitiesKept == ["CAP_CHOWN"])
        let host = f.rootless.azl(["kernel", "--kernel", "host"], root: f.state)
        #expect(host.status == 0 && host.stdout.contains("gated syscalls  none") && host.stdout.contains(Self.hostUname().release), "\(host)")
        let list = f.rootless.azl(["kernel", "--list"], root: f.state)
        for p in ["azurelinux-3.0", "azurelinux-4.0", "cbl-mariner-2.0", "alpine-3.20", "debian-12", "host"] {
            #expect(list.stdout.contains(p), "\(list)")
        }
        let missing = f.rootless.azl(["kernel", "--image", "no-such-image"], root: f.state)
        #expect(missing.status == 125 && missing.stderr.hasPrefix("azl-shell: "), "\(missing)")
    }

    @Test func aWarmRunReadsTheFilterFromTheCache() throws {
        guard let f = try fixture() else { return }
        let cache = f.state + "/cache/seccomp"
        func listing() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? []) }
        let before = listing()
        // A profile no other test uses: its program is compiled and stored on the first run.
        let r = run(f, "alpine:3.20", ["--kernel", "azurelinux-3.0-hwe-6.12", "--", "true"])
        #expect(r.status == 0, "\(r)")
        let added = listing().subtracting(before)
        try #require(added.count == 1, "one new cached program in \(cache): \(added)")
        let file = cache + "/" + added.first!
        var st1 = stat(), st2 = stat()
        stat(file, &st1)
        #expect(st1.st_uid == f.rootless.uid && st1.st_mode & 0o077 == 0, "private to the user")
        let again = run(f, "alpine:3.20", ["--kernel", "azurelinux-3.0-hwe-6.12", "--", "uname", "-r"])
        #expect(again.status == 0 && again.stdout.hasPrefix("6.12."), "\(again)")
        stat(file, &st2)
        #expect(listing().subtracting(before) == added, "no new file on a warm run")
        #expect(st1.st_ino == st2.st_ino && st1.st_mtim.tv_nsec == st2.st_mtim.tv_nsec, "the cached file was read, not rewritten")
    }
}
