import Core
import Foundation
import SandboxRuntime
import Testing
import TestSupport

/// The older way of building the root (mounts.c: staging tmpfs on /tmp, pivot_root into it,
/// the host's tree at /oldroot), which kernels that cannot mount onto a detached tree take.
/// This kernel can, so the helper is built here from its sources with AZL_TEST_PIVOT_STAGING,
/// which makes it take that way, and given the very plans azl-shell stored for these command
/// lines in its plan cache (`azl-shell-sandbox --plan-fd N`, as azl-shell-cli runs it).
@Suite(.serialized) struct PivotStagingTests {
    static let repo = RealRootfs.packageRoot

    /// The plan of a plan-cache entry, read by the C code that owns the format (plan_cache.c).
    static func plan(ofEntry bytes: [UInt8]) -> [UInt8]? {
        bytes.withUnsafeBufferPointer { b -> [UInt8]? in
            var plan: UnsafePointer<UInt8>?
            var len: UInt32 = 0
            guard azl_plan_cache_entry_plan(b.baseAddress, b.count, &plan, &len) == 0, let plan else { return nil }
            return Array(UnsafeBufferPointer(start: plan, count: Int(len)))
        }
    }

    @Test func theOlderWayBuildsTheSameSandbox() throws {
        if let reason = SandboxFixture.unavailableReason(.alpineX86) {
            unavailable("PivotStagingTests: \(reason)")
            return
        }
        let f = try StoredImageFixture()
        let bin = try f.r.makeDirectory("bin-pivot")
        let rt = Self.repo + "/Sources/SandboxRuntime"
        let sources = try FileManager.default.contentsOfDirectory(atPath: rt).filter { $0.hasSuffix(".c") }.map { rt + "/" + $0 }
        let cc = Subprocess.run(["/usr/bin/env", "cc", "-O1", "-Wall", "-Werror", "-D_GNU_SOURCE", "-DAZL_TEST_PIVOT_STAGING",
                                 "-I", rt, "-I", rt + "/include", "-o", bin + "/azl-shell-sandbox"]
                                + sources + [Self.repo + "/Sources/azl-shell-sandbox/main.c", "-lnettle"])
        #expect(cc.status == 0, "\(cc)")
        f.r.chownTree(bin)
        let work = try f.r.makeDirectory("work")
        let plans = f.state + "/cache/plans"
        func entries() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: plans)) ?? []) }
        /// The command line run as usual (which stores its plan), then its plan through the built helper.
        func run(_ args: [String], cwd: String? = nil) throws -> (usual: RunResult, older: RunResult) {
            let before = entries()
            let usual = f.r.run([f.r.azlShell, "run", "--image", "alp:3.20"] + args, env: ["AZL_SHELL_ROOT": f.state], cwd: cwd ?? work)
            let new = entries().subtracting(before)
            let name = try #require(new.count == 1 ? new.first : nil, "no plan stored for \(args): \(usual)")
            let entry = try [UInt8](Data(contentsOf: URL(fileURLWithPath: plans + "/" + name)))
            let plan = try #require(Self.plan(ofEntry: entry), "an entry this test cannot read")
            let file = work + "/plan-" + name
            try Data(plan).write(to: URL(fileURLWithPath: file))
            chown(file, f.r.uid, f.r.gid)
            let older = f.r.run(["/bin/sh", "-c", "exec 3<\"$0\" && exec \"$1\" --plan-fd 3", file, bin + "/azl-shell-sandbox"],
                                env: ["AZL_SHELL_ROOT": f.state], cwd: cwd ?? work)
            return (usual, older)
        }
        let script = """
            head -1 /etc/os-release; echo x > /etc/marker && cat /etc/marker; echo out > here
            awk '$5 ~ /^\\/oldroot/' /proc/self/mountinfo | wc -l; ls /dev | tr '\\n' ' '; echo; cat /proc/sys/kernel/osrelease
            grep -c 'upperdir=/upper.2,' /proc/self/mountinfo
            """
        let (usual, res) = try run(["--", "sh", "-c", script])
        #expect(res.status == 0, "\(res)")
        let lines = res.stdout.split(separator: "\n").map(String.init)
        #expect(lines.last == "1", "not the older way (its overlay's upper is /upper.2): \(res)")
        #expect(Array(lines.dropLast()) == Array(usual.stdout.split(separator: "\n").map(String.init).dropLast()),
                "the two ways differ: \(res) vs \(usual)")
        #expect(lines.count == 6 && lines[0] == "NAME=\"Alpine Linux\"" && lines[1] == "x" && lines[2] == "0", "\(res)")
        #expect(lines.count == 6 && lines[3].hasPrefix("fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"), "\(res)")
        #expect(lines.count == 6 && lines[4].hasPrefix("6.6."), "the kernel profile's release: \(res)")
        #expect((try? String(contentsOfFile: work + "/here", encoding: .utf8)) == "out\n", "the working directory is bound")
        let again = try run(["--", "cat", "/etc/marker"])
        #expect(again.older.status != 0 && again.usual.status != 0, "a write survived into the next run: \(again)")
        let ro = try run(["--read-only", "--", "sh", "-c", "touch /usr/x"])
        #expect(ro.older.status != 0 && ro.older.stderr.contains("Read-only"), "\(ro)")
        let tmp = try run(["--read-only", "--", "sh", "-c", "touch /tmp/x /run/x && echo ok"])
        #expect(tmp.older.status == 0 && tmp.older.stdout == "ok\n", "\(tmp)")
        // State folders are found the same way with the host at /oldroot: hidden.
        let hidden = try run(["--", "sh", "-c", "ls -A \(f.state) | wc -l; touch ./ok && echo ok"], cwd: f.r.base)
        #expect(hidden.older.status == 0 && hidden.older.stdout == "0\nok\n", "\(hidden)")
    }
}
