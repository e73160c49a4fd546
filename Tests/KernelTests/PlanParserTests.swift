import Core
import Foundation
import Kernel
import Sandbox
import TestSupport
import Testing

/// The helper's plan parser (Sources/SandboxRuntime/plan.c, compiled here with a small
/// driver, Fixtures/plan_parse.c) on the kernel-policy records: what Swift writes parses to the
/// same values, and every malformed record is refused with a reason.
@Suite(.serialized)
struct PlanParserTests {
    final class Driver: @unchecked Sendable {
        let dir: String
        let exe: String
        init() throws {
            var template = Array("/tmp/azl-plan-test-XXXXXX".utf8CString)
            guard let p = mkdtemp(&template) else { throw AZLError.errno(errno, "mkdtemp", path: "/tmp") }
            dir = String(cString: p)
            TempDirectories.removeAtExit(dir)
            exe = dir + "/plan_parse"
            let sb = Fixtures.repo + "/Sources/SandboxRuntime"
            let r = Subprocess.run(["/usr/bin/env", "cc", "-O1", "-Wall", "-Werror", "-D_GNU_SOURCE", "-I", sb, "-o", exe,
                                    Fixtures.repo + "/Tests/KernelTests/Fixtures/plan_parse.c", sb + "/plan.c", sb + "/seccomp_notify.c"])
            if r.status != 0 { throw AZLError(.internal, "cc failed: \(r)") }
        }
        func parse(_ bytes: [UInt8]) throws -> RunResult {
            let f = dir + "/plan-\(UInt32.random(in: 0...UInt32.max))"
            try Data(bytes).write(to: URL(fileURLWithPath: f))
            defer { unlink(f) }
            return Subprocess.run([exe, f])
        }
    }
    static let driver = Result { try Driver() }

    static func encode(_ records: [[String]]) -> [UInt8] {
        var out: [UInt8] = []
        for fields in records {
            var payload: [UInt8] = []
            for f in fields { payload += Array(f.utf8) + [0] }
            let n = UInt32(payload.count)
            out += [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)] + payload
        }
        return out
    }

    static let base: [[String]] = [
        ["azl-plan", SandboxPlan.version], ["ns", "user", "mount", "pid"], ["uidmap", "", "0", "1000", "1"],
        ["gidmap", "", "0", "1000", "1"], ["root", "/t", "overlay"], ["argv", "sh"],
    ]
    static let caps = ["caps", "00000000a80425ff", "00000000a80425ff", "00000000a80425ff", "0000000000000000", "0000000000000000"]

    func parse(_ extra: [[String]]) throws -> RunResult {
        try Self.driver.get().parse(Self.encode(Self.base + extra))
    }

    @Test func whatSwiftWritesTheHelperReads() throws {
        let policy = try KernelPolicy.build(profile: #require(KernelProfile.named("cbl-mariner-2.0")), capsDrop: ["net_raw"])
        let c = policy.capabilities
        var req = RunRequest(rootfs: "/t", imageName: "x")
        req.kernel = SandboxPlan.KernelSettings(
            profile: policy.profile.name, seccomp: policy.bpf,
            uts: .init(release: policy.uts.release, version: policy.uts.version, procVersion: policy.procVersion),
            capabilities: .init(bounding: c.bounding, effective: c.effective, permitted: c.permitted), noNewPrivs: true)
        var b = PlanBuilder(request: req, host: HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/h", cwd: "/"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let r = try Self.driver.get().parse(try b.build().encoded())
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("bpf_len \(policy.bpf.count)"))
        #expect(lines.contains("bpf_first " + policy.bpf.prefix(8).map { String(format: "%02x", $0) }.joined()))
        #expect(lines.contains("notify_uname 1"))
        #expect(lines.contains("caps \(String(c.bounding, radix: 16)) \(String(c.bounding, radix: 16)) \(String(c.bounding, radix: 16)) 0 0"))
        #expect(c.bounding == 0xa80405ff)
        #expect(lines.contains("uname 5.15.138.1-1.cm2|\(policy.uts.version)|"))
        #expect(lines.contains("nnp 1"))
        #expect(lines.contains("rofile /proc/version 444 \(policy.procVersion.utf8.count)"))
        #expect(lines.contains("rofile /proc/sys/kernel/osrelease 444 \("5.15.138.1-1.cm2\n".utf8.count)"))
    }

    @Test func aKeptUserNamespaceAsSwiftWritesIt() throws {
        var req = RunRequest(rootfs: "/t", imageName: "x")
        req.kernel = nil
        var b = PlanBuilder(request: req, host: HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/h", cwd: "/",
                                                           subuid: (100000, 65536), subgid: (100000, 65536),
                                                           newuidmap: "/usr/bin/newuidmap", newgidmap: "/usr/bin/newgidmap"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        var plan = try b.build()
        plan.keeper = .init(program: "/opt/azl/azl-shell-sandbox", stateFile: "/h/.cache/azl-shell/userns/map-1", idleSeconds: 300)
        let r = try Self.driver.get().parse(plan.encoded())
        #expect(r.status == 0 && r.stdout.contains("keeper /opt/azl/azl-shell-sandbox /h/.cache/azl-shell/userns/map-1 300\n"), "\(r)")
        #expect(plan.description.contains("user namespace kept in /h/.cache/azl-shell/userns/map-1 (idle 300 s)"))
    }

    /// Issue 14: a foreign-arch run's records as Swift writes them (the register line's fields
    /// and uname's machine) reach the helper unchanged.
    @Test func aForeignArchPlanAsSwiftWritesIt() throws {
        let policy = try KernelPolicy.build(profile: #require(KernelProfile.named("cbl-mariner-2.0")),
                                            target: KernelArch.native == .x86_64 ? .aarch64 : .x86_64)
        let machine = try #require(policy.uts.machine)
        var req = RunRequest(rootfs: "/t", imageName: "x")
        req.kernel = SandboxPlan.KernelSettings(
            profile: policy.profile.name, seccomp: policy.bpf,
            uts: .init(release: policy.uts.release, version: policy.uts.version, procVersion: policy.procVersion, machine: machine),
            capabilities: nil, noNewPrivs: true)
        var b = PlanBuilder(request: req, host: HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/h", cwd: "/"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        var plan = try b.build()
        let interp = "/usr/bin/qemu-\(machine)-static"
        let bf = try #require(try CrossArch.binfmt(forImage: "x", architecture: machine, hostMachine: KernelArch.native.rawValue,
                                                   hostRelease: "6.18.0", interpreterExists: { $0 == interp }))
        plan.binfmt = bf
        let r = try Self.driver.get().parse(plan.encoded())
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("uname 5.15.138.1-1.cm2|\(policy.uts.version)|\(machine)\n"), "\(r)")
        #expect(r.stdout.contains("binfmt qemu-\(machine)|\(bf.magic)|\(bf.mask)|\(interp)\n"), "\(r)")
        #expect(bf.magic.hasPrefix(#"\x7fELF\x02\x01\x01"#) && bf.mask.hasPrefix(#"\xff\xff"#))
        #expect(plan.description.contains("qemu-\(machine) -> \(interp) (flags FOC)"))
    }

    @Test func anABIReportAsSwiftWritesIt() throws {
        let policy = try KernelPolicy.build(profile: #require(KernelProfile.named("cbl-mariner-2.0")), report: true)
        var req = RunRequest(rootfs: "/t", imageName: "x")
        var settings = SandboxPlan.KernelSettings(profile: policy.profile.name, seccomp: policy.bpf, uts: nil, capabilities: nil, noNewPrivs: true)
        settings.abiReport = .init(path: "/h/report.tsv", calls: policy.reportedCalls.map {
            .init(auditArch: $0.auditArch, nr: $0.nr, errno: $0.errno, name: $0.name, reason: $0.reason)
        })
        req.kernel = settings
        var b = PlanBuilder(request: req, host: HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/h", cwd: "/"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let r = try Self.driver.get().parse(try b.build().encoded())
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("abi-report /h/report.tsv \(policy.reportedCalls.count)\n"), "\(r)")
        let c = try #require(policy.reportedCalls.first { $0.name == "cachestat" })
        #expect(r.stdout.contains("abi-call \(c.auditArch) \(c.nr) 38 cachestat|\(c.reason)\n"), "\(r)")
    }

    @Test func aPlanWithoutPolicyRecordsStillParses() throws {
        let r = try parse([])
        #expect(r.status == 0 && r.stdout.contains("bpf_len 0\n") && r.stdout.contains("nnp 0\n"), "\(r)")
    }

    @Test(arguments: [
        ([["seccomp", "0600000000007f", "-"]], "seccomp program size"),                                // 7 bytes
        ([["seccomp", "06000000000000zz", "-"]], "bad hex"),
        ([["seccomp", "", "-"]], "seccomp program size"),
        ([["seccomp", String(repeating: "0", count: 16 * 4097), "-"]], "seccomp program size"),        // > BPF_MAXINSNS
        ([["seccomp", "060000000000ff7f"]], "bad seccomp record"),
        ([["seccomp", "060000000000ff7f", "notify-all"]], "unknown seccomp option"),
        ([["seccomp", "060000000000ff7f", "-"], ["seccomp", "060000000000ff7f", "-"]], "bad seccomp record"),
        ([["seccomp", "060000000000ff7f", "notify-uname"]], "without a uname record"),
        ([["uname", "6.6.1", "#1", ""]], "without a uname record"),
        ([["seccomp", "060000000000ff7f", "notify-uname"], ["uname", String(repeating: "6", count: 65), "#1", ""]], "longer than 64"),
        ([["seccomp", "060000000000ff7f", "notify-uname"], ["uname", "", "#1", ""]], "longer than 64"),
        ([["seccomp", "060000000000ff7f", "notify-uname"], ["uname", "6.6.1", "#1", String(repeating: "a", count: 65)]], "longer than 64"),
        ([["seccomp", "060000000000ff7f", "notify-uname"], ["uname", "6.6.1", "#1"]], "bad uname record"),
        ([["abi-call", "3221225534", "451", "38", "cachestat", "r"]], "without an abi-report record"),
        ([["seccomp", "060000000000ff7f", "-"], ["abi-report", "/r"], ["abi-call", "3221225534", "451", "0", "cachestat", "r"]], "bad abi-call record"),
        ([["seccomp", "060000000000ff7f", "-"], ["abi-report", "/r"], ["abi-call", "3221225534", "451", "38", "", "r"]], "bad abi-call record"),
        ([["seccomp", "060000000000ff7f", "-"], ["abi-report", "r"]], "bad abi-report record"),
        ([["abi-report", "/r"]], "without a seccomp program"),
        ([["binfmt", "qemu-aarch64", "\\x7fELF", "\\xff", "usr/bin/qemu-aarch64-static"]], "bad binfmt record"),
        ([["binfmt", "qemu-aarch64", "\\x7fELF", "\\xff"]], "bad binfmt record"),
        ([["binfmt", "qemu:aarch64", "\\x7fELF", "\\xff", "/usr/bin/q"]], "bad binfmt field"),
        ([["binfmt", "qemu-aarch64", "\\x7fELF", "\\xff", "/usr/bin/q:FOC"]], "bad binfmt field"),
        ([["binfmt", "q", "\\x7f", "\\xff", "/q"], ["binfmt", "q", "\\x7f", "\\xff", "/q"]], "bad binfmt record"),
        ([["caps", "a80425ff", "0", "0", "0", "0"]], "bad capability mask"),
        ([["caps", "00000000a80425fg", "0000000000000000", "0000000000000000", "0000000000000000", "0000000000000000"]], "bad capability mask"),
        ([Array(caps.prefix(5))], "bad caps record"),
        ([caps, caps], "bad caps record"),
        ([["nnp", "1"]], "bad nnp record"),
        ([["mount", "rofile", "/proc/version", "", "x", "ro", "10000"]], "bad mode"),
        ([["mount", "overlay", "/home/u", "home/u", "/s/env/home", "guard", "0"]], "bad overlay mount"),
        ([["mount", "overlay", "/home/u", "/home/u", "", "guard", "0"]], "bad overlay mount"),
        ([["session-bind", "/w", "w"]], "bad session-bind record"),
        ([["session-bind", "/w"]], "bad session-bind record"),
        ([["session-bind", "/w", "/w"], ["session-bind", "/v", "/v"]], "bad session-bind record"),
        ([["seccomp-v3", "00"]], "unknown plan record"),
        ([["keeper", "/bin/azl-shell-sandbox", "/c/userns/map-1"]], "bad keeper record"),
        ([["keeper", "/bin/azl-shell-sandbox", "/c/userns/map-1", "0"]], "bad keeper record"),
        ([["keeper", "azl-shell-sandbox", "/c/userns/map-1", "300"]], "bad keeper record"),
        ([["keeper", "/bin/azl-shell-sandbox", "/c/userns/map-1", "300"]], "whose maps no helper writes"),
    ] as [([[String]], String)])
    func malformedRecordsAreRefused(_ extra: [[String]], _ reason: String) throws {
        let r = try parse(extra)
        #expect(r.status == 1, "\(r)")
        #expect(r.stdout.hasPrefix("error: ") && r.stdout.contains(reason), "\(r)")
    }

    /// An environment's copy-on-write home and a session's own working directory.
    @Test func theOverlayHomeAndASessionBindAreRead() throws {
        var plan = SandboxPlan(namespaces: [.user, .mount, .pid], uidMap: .init(helper: nil, ranges: [.init(inside: 0, outside: 1000, count: 1)]),
                               gidMap: .init(helper: nil, ranges: [.init(inside: 0, outside: 1000, count: 1)]), rootfs: "/t",
                               mounts: [.overlay(lower: "/h/u", target: "/home/u", layer: "/s/environments/dev/home")], hostname: "dev",
                               workingDirectory: "/w", environment: [], argv: ["sh"])
        plan.sessionBind = .init(source: "/data/w", target: "/w")
        let r = try Self.driver.get().parse(plan.encoded())
        // flags: nosuid (8), nodev (16), guard (64)
        #expect(r.status == 0 && r.stdout.contains("overlay /home/u /h/u /s/environments/dev/home 58\n") && r.stdout.contains("session-bind /data/w /w\n"), "\(r)")
    }

    @Test func truncatedPlansAreRefused() throws {
        let good = Self.encode(Self.base + [["seccomp", "060000000000ff7f", "-"], Self.caps, ["nnp"]])
        #expect(try Self.driver.get().parse(good).status == 0)
        // Every proper prefix that cuts a record is refused, never read past its end.
        var lengths: [Int] = []
        var i = 0
        while i < good.count {
            let n = Int(good[i]) | Int(good[i + 1]) << 8 | Int(good[i + 2]) << 16 | Int(good[i + 3]) << 24
            i += 4 + n
            lengths.append(i)
        }
        for cut in stride(from: 1, to: good.count, by: 7) where !lengths.contains(cut) {
            let r = try Self.driver.get().parse(Array(good.prefix(cut)))
            #expect(r.status == 1 && r.stdout.hasPrefix("error: "), "cut at \(cut): \(r)")
        }
    }
}

/// Folders the compiled fixtures live in: static, so never deinitialized; removed at exit.
enum TempDirectories {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths: [String] = []

    static func removeAtExit(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        if paths.isEmpty {
            atexit {
                for p in TempDirectories.paths { try? FileManager.default.removeItem(atPath: p) }
            }
        }
        paths.append(path)
    }
}
