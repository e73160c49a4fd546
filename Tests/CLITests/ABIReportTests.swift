import Core
import Foundation
import Testing
import TestSupport

/// Issue 14, part 3: `run --abi-report FILE`, as the unprivileged user, with a static probe that
/// calls cachestat (6.5) and fchmodat2 (6.6) by number.
@Suite(.serialized) struct ABIReportTests {
    final class Fixture: @unchecked Sendable {
        let rootless: Rootless
        let state: String
        let probeDir: String
        init() throws {
            rootless = try SandboxFixture.shared().rootless
            state = try rootless.makeDirectory("abi-state")
            probeDir = try rootless.makeDirectory("abi-probe")
            let src = KernelRunTests.repo + "/Tests/KernelTests/Fixtures/abi_probe.c"
            let cc = Subprocess.run(["/usr/bin/env", "cc", "-O2", "-static", "-D_GNU_SOURCE", "-o", probeDir + "/probe", src])
            guard cc.status == 0 else { throw AZLError(.internal, "cannot build the static probe (needs gcc and libc6-dev): \(cc)") }
            rootless.chownTree(probeDir)
            let res = rootless.azl(["import", "-q", "--name", "alpine:3.20", RealRootfs.alpineX86.path], root: state)
            guard res.status == 0 else { throw AZLError(.internal, "import failed: \(res)") }
        }
    }
    static let shared = Result<Fixture, Error> { try Fixture() }

    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> Fixture? {
        guard SandboxFixture.available(.alpineX86, for: "ABIReportTests", sourceLocation: sourceLocation) else { return nil }
        return try Self.shared.get()
    }

    /// The report's rows (header dropped), split on tabs.
    func rows(_ path: String) throws -> [[String]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("# syscall\tprogram\tcalls\terrno\treason\n"), "\(text)")
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test func aFiveFifteenProfileListsTheProbesNewerCallsByName() throws {
        guard let f = try fixture() else { return }
        let report = f.probeDir + "/report-515.tsv"
        let r = f.rootless.azl(["run", "--image", "alpine:3.20", "--kernel", "cbl-mariner-2.0", "--abi-report", report,
                                "--volume", f.probeDir + ":/probe:ro", "--", "/probe/probe"], root: f.state)
        #expect(r.status == 0, "\(r)")
        // Failed as without the report: the program sees what the target kernel says.
        #expect(r.stdout == "cachestat ENOSYS\nfchmodat2 ENOSYS\nadd_key EPERM\ngetpid 0\n", "\(r)")
        let got = try rows(report)
        #expect(got.count == 3, "\(got)")
        #expect(got.contains(["cachestat", "/probe/probe", "3", "ENOSYS", "cachestat: added in 6.5, target kernel 5.15.138.1-1.cm2"]), "\(got)")
        #expect(got.contains(["fchmodat2", "/probe/probe", "1", "ENOSYS", "fchmodat2: added in 6.6, target kernel 5.15.138.1-1.cm2"]), "\(got)")
    }

    @Test func theHostKernelListsNone() throws {
        guard let f = try fixture() else { return }
        let report = f.probeDir + "/report-host.tsv"
        let r = f.rootless.azl(["run", "--image", "alpine:3.20", "--kernel", "host", "--abi-report", report,
                                "--volume", f.probeDir + ":/probe:ro", "--", "/probe/probe"], root: f.state)
        // The host's kernel has both calls: they fail on their arguments, not for being missing.
        #expect(r.status == 0 && !r.stdout.contains("ENOSYS") && r.stdout.hasSuffix("fchmodat2 ENOENT\nadd_key EPERM\ngetpid 0\n"), "\(r)")
        // Nothing the kernel lacks; the policy's denial is still the policy's.
        let got = try rows(report)
        #expect(got.map(\.first) == ["add_key"], "\(got)")
    }

    @Test func aDeniedCallIsReportedWithThePolicysReason() throws {
        guard let f = try fixture() else { return }
        let report = f.probeDir + "/report-denied.tsv"
        let r = f.rootless.azl(["run", "--image", "alpine:3.20", "--abi-report", report,
                                "--volume", f.probeDir + ":/probe:ro", "--", "/probe/probe"], root: f.state)
        #expect(r.status == 0 && r.stdout.contains("add_key EPERM\n"), "\(r)")
        let row = try #require(try rows(report).first { $0.first == "add_key" })
        #expect(row.count == 5 && row[1] == "/probe/probe" && row[2] == "1" && row[3] == "EPERM"
                && row[4].hasPrefix("add_key: denied by azl-shell's policy (kernel keyrings"), "\(row)")
    }

    @Test func aMatrixWritesASectionPerTarget() throws {
        guard let f = try fixture() else { return }
        let report = f.probeDir + "/report-matrix.tsv"
        let r = f.rootless.azl(["run", "--matrix", "alpine:3.20", "--kernel", "cbl-mariner-2.0,host", "--abi-report", report,
                                "--volume", f.probeDir + ":/probe:ro", "--", "/probe/probe"], root: f.state)
        #expect(r.status == 0, "\(r)")
        let text = try String(contentsOfFile: report, encoding: .utf8)
        let sections = text.components(separatedBy: "## ").filter { !$0.isEmpty }
        #expect(sections.count == 2, "\(text)")
        #expect(sections.first?.hasPrefix("alpine:3.20 kernel cbl-mariner-2.0\n") == true && sections.first?.contains("cachestat\t/probe/probe\t3") == true, "\(text)")
        #expect(sections.last?.hasPrefix("alpine:3.20 kernel host\n") == true && sections.last?.contains("cachestat\t") == false, "\(text)")
    }
}
