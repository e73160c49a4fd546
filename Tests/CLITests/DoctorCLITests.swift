import Core
import Foundation
import Testing
import TestSupport

/// `azl-shell doctor` as the unprivileged user, on this machine: each check that a user can
/// break is broken here (what needs root to break is in Tests/DoctorTests, over a fake host).
@Suite(.serialized) struct DoctorCLITests {
    struct Report: Decodable {
        struct Check: Decodable { var id: String; var status: String; var summary: String; var fix: String? }
        var ok: Bool
        var checks: [Check]
        subscript(_ id: String) -> Check? { checks.first { $0.id == id } }
    }

    static let ids = ["user-namespaces", "subuid", "subgid", "newuidmap", "newgidmap", "overlay", "mount-api",
                      "seccomp-notify", "pidfd", "binfmt-userns", "qemu", "keyring", "free-space", "store-owner",
                      "cache-owner", "store-records", "store-scratch", "userns-keepers"]

    func doctor(_ f: StoredImageFixture, _ extra: [String] = []) throws -> (Report, RunResult) {
        let res = f.azl(["doctor", "--json"] + extra)
        let report = try JSONDecoder().decode(Report.self, from: Data(res.stdout.utf8))
        #expect(res.status == (report.ok ? 0 : 1), "\(res)")
        return (report, res)
    }

    @Test func aStoreInUseIsHealthyAndEveryCheckIsThere() throws {
        guard SandboxFixture.available(.alpineX86, for: "doctor") else { return }
        let f = try StoredImageFixture()
        #expect(f.azl(["run", "--image", "alp:3.20", "--", "true"]).status == 0)
        let (r, _) = try doctor(f)
        #expect(r.checks.map(\.id) == Self.ids)
        // What a run just needed works; the test user has its ranges (scripts/setup.sh).
        for id in ["user-namespaces", "subuid", "subgid", "overlay", "mount-api", "pidfd", "seccomp-notify",
                   "store-owner", "cache-owner", "store-records", "store-scratch", "userns-keepers"] {
            #expect(r[id]?.status == "ok", "\(id): \(String(describing: r[id]))")
        }
        let text = f.azl(["doctor"])
        #expect(text.stdout.contains("ok      overlay: "), "\(text)")
    }

    @Test func aUserWithoutRangesAndWithoutNewuidmapIsWarnedNotFailed() throws {
        guard SandboxFixture.available(for: "doctor") else { return }
        let f = try StoredImageFixture()
        let empty = f.r.base + "/empty-subid"
        FileManager.default.createFile(atPath: empty, contents: Data())
        let (r, res) = try doctor(f, ["--subuid-file", empty, "--subgid-file", empty, "--helper-dir", f.r.base + "/no-such-dir"])
        #expect(r["subuid"]?.status == "warning")
        #expect(r["subuid"]?.fix == "sudo usermod --add-subuids 100000-165535 \(f.r.userName)", "\(res)")
        #expect(r["subgid"]?.fix?.hasPrefix("sudo usermod --add-subgids 100000-") == true)
        #expect(r["newuidmap"]?.status == "warning")
        #expect(r["newgidmap"]?.fix?.contains("uidmap") == true)
        let text = f.azl(["doctor", "--subuid-file", empty])
        #expect(text.stdout.contains("WARNING subuid: "), "\(text)")
        #expect(text.stdout.contains("        fix: sudo usermod --add-subuids"))
    }

    @Test func aStoreOfSomeoneElseFails() throws {
        guard SandboxFixture.available(for: "doctor") else { return }
        guard geteuid() == 0 else { return notApplicableHere("making a store of another user's needs root") }
        let f = try StoredImageFixture()
        chown(f.state, 0, 0)
        defer { chown(f.state, f.r.uid, f.r.gid) }
        let (r, res) = try doctor(f)
        #expect(!r.ok)
        #expect(res.status == 1)
        #expect(r["store-owner"]?.status == "failed")
        #expect(r["store-owner"]?.fix == "sudo chown -R \(f.r.userName) \(f.state)")
        chown(f.state, f.r.uid, f.r.gid)
        try FS.mkdirs(f.state + "/cache")
        chown(f.state + "/cache", f.r.uid, f.r.gid)
        chmod(f.state + "/cache", 0o777)
        let (r2, _) = try doctor(f)
        #expect(r2["cache-owner"]?.status == "failed")
        #expect(r2["cache-owner"]?.fix == "chmod go-w \(f.state)/cache")
    }

    @Test func aDamagedStoreIsNamedWithItsFix() throws {
        guard SandboxFixture.available(.alpineX86, for: "doctor") else { return }
        let f = try StoredImageFixture()
        try FS.removeTree((try f.tree as NSString).deletingLastPathComponent)
        try FS.mkdirs(f.state + "/tmp/unpack-interrupted")
        f.r.chownTree(f.state)
        let (r, _) = try doctor(f)
        #expect(!r.ok)
        #expect(r["store-records"]?.status == "failed")
        #expect(r["store-records"]?.fix?.hasPrefix("azl-shell rmi alp:3.20") == true)
        #expect(r["store-scratch"]?.status == "warning")
        #expect(r["store-scratch"]?.summary.contains("unpack-interrupted") == true)
        // The fixes it gives work.
        #expect(f.azl(["rmi", "alp:3.20"]).status == 0)
        #expect(f.azl(["prune"]).status == 0)
        let (after, res) = try doctor(f)
        #expect(after["store-records"]?.status == "ok", "\(res)")
        #expect(after["store-scratch"]?.status == "ok", "\(res)")
    }
}
