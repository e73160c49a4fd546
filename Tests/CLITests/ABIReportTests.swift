import Core
import Foundation
import Testing
import TestSupport

/// Issue 14, part 3: `run --abi-report FILE`, as the unprivileged user, with a static probe that
/// calls cachestat (6.5) and fchmodat2 (6.6) by number.
@Suite(.serialized) struct ABIReportTests {
    final class Fixture: @unchecked Sendable {
        let store: StoredImageFixture
        let probeDir: String
        init() throws {
            store = try StoredImageFixture(images: [("alpine:3.20", .alpineX86)])
            probeDir = try store.r.makeDirectory("abi-probe")
            let src = KernelRunTests.repo + "/Tests/KernelTests/Fixtures/abi_probe.c"
            let cc = Subprocess.run(["/usr/bin/env", "cc", "-O2", "-static", "-D_GNU_SOURCE", "-o", probeDir + "/probe", src])
            guard cc.status == 0 else { throw AZLError(.internal, "cannot build the static probe (needs gcc and libc6-dev): \(cc)") }
            store.r.chownTree(probeDir)
        }
    }
    static let shared = Result<Fixture, Error> { try Fixture() }

    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> Fixture? {
        guard SandboxFixture.available(.alpineX86, for: "ABIReportTests", sourceLocation: sourceLocation) else { return nil }
        return try Self.shared.get()
    }

    /// The probe in alpine:3.20 with `options`, its report written to `report` (in the probe's folder).
    func probe(_ f: Fixture, _ options: [String], report: String, matrix: Bool = false) -> RunResult {
        f.store.azl(["run", matrix ? "--matrix" : "--image", "alpine:3.20"] + options + ["--abi-report", f.probeDir + "/" + report,
                     "--volume", f.probeDir + ":/probe:ro", "--", "/probe/probe"])
    }

    /// The report's rows (header dropped), split on tabs.
    func rows(_ path: String) throws -> [[String]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("# syscall\tprogram\tcalls\terrno\treason\n"), "\(text)")
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test func aFiveFifteenProfileListsTheProbesNewerCallsByName() throws {
        guard let f = try fixture() else { return }
        let r = probe(f, ["--kernel", "cbl-mariner-2.0"], report: "report-515.tsv")
        #expect(r.status == 0, "\(r)")
        // Failed as without the report: the program sees what the target kernel says.
        #expect(r.stdout == "cachestat ENOSYS\nfchmodat2 ENOSYS\nadd_key EPERM\ngetpid 0\n", "\(r)")
        let got = try rows(f.probeDir + "/report-515.tsv")
        #expect(got.count == 3, "\(got)")
        #expect(got.contains(["cachestat", "/probe/probe", "3", "ENOSYS", "cachestat: added in 6.5, target kernel 5.15.138.1-1.cm2"]), "\(got)")
        #expect(got.contains(["fchmodat2", "/probe/probe", "1", "ENOSYS", "fchmodat2: added in 6.6, target kernel 5.15.138.1-1.cm2"]), "\(got)")
    }

    @Test func theHostKernelListsNone() throws {
        guard let f = try fixture() else { return }
        let r = probe(f, ["--kernel", "host"], report: "report-host.tsv")
        // The host's kernel has both calls: they fail on their arguments, not for being missing.
        #expect(r.status == 0 && !r.stdout.contains("ENOSYS") && r.stdout.hasSuffix("fchmodat2 ENOENT\nadd_key EPERM\ngetpid 0\n"), "\(r)")
        // Nothing the kernel lacks; the policy's denial is still the policy's.
        let got = try rows(f.probeDir + "/report-host.tsv")
        #expect(got.map(\.first) == ["add_key"], "\(got)")
    }

    @Test func aDeniedCallIsReportedWithThePolicysReason() throws {
        guard let f = try fixture() else { return }
        let r = probe(f, [], report: "report-denied.tsv")
        #expect(r.status == 0 && r.stdout.contains("add_key EPERM\n"), "\(r)")
        let row = try #require(try rows(f.probeDir + "/report-denied.tsv").first { $0.first == "add_key" })
        #expect(row.count == 5 && row[1] == "/probe/probe" && row[2] == "1" && row[3] == "EPERM"
                && row[4].hasPrefix("add_key: denied by azl-shell's policy (kernel keyrings"), "\(row)")
    }

    @Test func aMatrixWritesASectionPerTarget() throws {
        guard let f = try fixture() else { return }
        let r = probe(f, ["--kernel", "cbl-mariner-2.0,host"], report: "report-matrix.tsv", matrix: true)
        #expect(r.status == 0, "\(r)")
        let text = try String(contentsOfFile: f.probeDir + "/report-matrix.tsv", encoding: .utf8)
        let sections = text.components(separatedBy: "## ").filter { !$0.isEmpty }
        #expect(sections.count == 2, "\(text)")
        #expect(sections.first?.hasPrefix("alpine:3.20 kernel cbl-mariner-2.0\n") == true && sections.first?.contains("cachestat\t/probe/probe\t3") == true, "\(text)")
        #expect(sections.last?.hasPrefix("alpine:3.20 kernel host\n") == true && sections.last?.contains("cachestat\t") == false, "\(text)")
    }

    /// `exec --abi-report FILE NAME`: the session's own calls, in an environment whose live
    /// sandbox another session (without the option) started; a second time from the plan cache.
    @Test func anEnvironmentSessionWritesItsOwnReport() throws {
        guard let f = try fixture() else { return }
        defer { _ = f.store.azl(["rm", "--force", "abi"]) }
        let c = f.store.azl(["create", "abi", "--image", "alpine:3.20", "--kernel", "cbl-mariner-2.0", "--volume", f.probeDir + ":/probe:ro"])
        #expect(c.status == 0, "\(c)")
        let plain = f.store.azl(["exec", "abi", "--", "/probe/probe"])
        #expect(plain.status == 0 && plain.stdout.hasPrefix("cachestat ENOSYS\n"), "\(plain)")
        let report = f.probeDir + "/report-exec.tsv"
        for round in 1...2 {
            unlink(report)
            let r = f.store.azl(["exec", "--abi-report", report, "abi", "--", "/probe/probe"])
            #expect(r.status == 0 && r.stdout == "cachestat ENOSYS\nfchmodat2 ENOSYS\nadd_key EPERM\ngetpid 0\n", "round \(round): \(r)")
            let got = try rows(report)
            #expect(got.contains(["cachestat", "/probe/probe", "3", "ENOSYS", "cachestat: added in 6.5, target kernel 5.15.138.1-1.cm2"]), "round \(round): \(got)")
            #expect(got.contains { $0.first == "fchmodat2" && $0.count == 5 && $0[2] == "1" }, "round \(round): \(got)")
            #expect(got.contains { $0.first == "add_key" && $0[3] == "EPERM" }, "round \(round): \(got)")
        }
        // A bad place for the report is azl-shell's own one-line error.
        let bad = f.store.azl(["exec", "--abi-report", "/nonexistent/dir/r.tsv", "abi", "--", "true"])
        #expect(bad.status == 125 && bad.stderr.contains("/nonexistent/dir/r.tsv") && bad.stderr.split(separator: "\n").count == 1, "\(bad)")
    }
}
