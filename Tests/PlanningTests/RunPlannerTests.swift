import Core
import Foundation
import Planning
import Sandbox
import Testing

/// The planning layer on its own: a request becomes a complete plan without any verb.
@Suite struct RunPlannerTests {
    /// A tree outside the store that says it is Azure Linux 3.0.
    func tree() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("planner-\(UUID().uuidString)").path
        for d in ["etc", "bin", "tmp"] { try FS.mkdirs(dir + "/" + d, mode: 0o755) }
        try FS.atomicWrite(Data("ID=azurelinux\nVERSION_ID=\"3.0\"\n".utf8), to: dir + "/etc/os-release")
        return dir
    }

    @Test func aRequestBecomesAPlanWithTheImagesKernel() throws {
        let dir = try tree()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = RunSpec(source: .rootfs(dir))
        spec.command = ["uname", "-r"]
        spec.rootOption = dir + "-state"
        let prepared = try RunPlanner.prepare(spec)
        #expect(prepared.plan.rootfs == dir)
        #expect(prepared.plan.argv == ["uname", "-r"])
        #expect(prepared.kernel.profile.name == "azurelinux-3.0")
        #expect(prepared.kernel.chosenBy.contains("ID=azurelinux"))
        #expect(prepared.image == nil)
    }

    @Test func anOptionTheProfileRefusesIsAnErrorOfItsKind() throws {
        let dir = try tree()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = RunSpec(source: .rootfs(dir))
        spec.kernel = "0.1"
        spec.rootOption = dir + "-state"
        #expect(throws: AZLError.self) { try RunPlanner.prepare(spec) }
        spec.kernel = nil
        spec.source = .rootfs(dir + "/missing")
        do { _ = try RunPlanner.prepare(spec); Issue.record("a missing tree was planned") } catch let e as AZLError {
            #expect(e.kind == .notFound)
        }
    }
}
