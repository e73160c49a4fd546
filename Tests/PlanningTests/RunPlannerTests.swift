import Core
import Foundation
import Planning
import Sandbox
import Testing

/// The planning layer on its own: a request becomes a complete plan without any verb.
/// Serialized: what planning reads is recorded process-wide (one recording at a time).
@Suite(.serialized) struct RunPlannerTests {
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

    /// One way to record what a plan was made from: a caller's reads before planning (a project
    /// file, an environment's config) go into the inputs it plans with, and planning goes on
    /// recording into them; a plan made inside that (a setup step's) keeps its reads apart.
    @Test func whatTheCallerReadBeforePlanningIsAnInputAndANestedPlanKeepsItsOwn() throws {
        let dir = try tree()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let inputs = PlanInputs()
        var step = RunSpec(source: .rootfs(dir))
        step.rootOption = dir + "-state"
        var spec = try inputs.record { () throws -> RunSpec in
            PlanInputs.file(dir + "/azl-shell.toml", .content)
            _ = PlanInputs.variable("AZL_SHELL_TEST_CALLER_VARIABLE")
            _ = try RunPlanner.prepare(step)
            PlanInputs.file(dir + "/layer/meta.json", .presence)
            return RunSpec(source: .rootfs(dir))
        }
        spec.inputs = inputs
        spec.rootOption = dir + "-state"
        _ = try RunPlanner.prepare(spec)
        let read = Set(inputs.dependencies.map(\.path)), stepRead = Set(step.inputs.dependencies.map(\.path))
        #expect(read.isSuperset(of: [dir + "/azl-shell.toml", dir + "/layer/meta.json", "/etc/passwd"]), "\(read)")
        #expect(inputs.variables.contains("AZL_SHELL_TEST_CALLER_VARIABLE"))
        #expect(stepRead.contains("/etc/passwd"), "\(stepRead)")
        #expect(!stepRead.contains(dir + "/azl-shell.toml") && !stepRead.contains(dir + "/layer/meta.json"), "\(stepRead)")
        #expect(!step.inputs.variables.contains("AZL_SHELL_TEST_CALLER_VARIABLE"))
    }

    /// Which file a path was before planning read it is taken once, the first time, and only
    /// while recording: the plan cache keeps no plan of a file replaced since (PlanCache).
    @Test func theIdentityBeforeReadingIsTheFirstOneTaken() {
        let inputs = PlanInputs()
        inputs.record {
            PlanInputs.file("/state/images", .content) { [1, 2] }
            PlanInputs.file("/state/images", .content) { Issue.record("taken a second time"); return [3] }
            PlanInputs.file("/etc/passwd", .content)
        }
        PlanInputs.file("/elsewhere", .content) { Issue.record("taken with no recording under way"); return [] }
        #expect(inputs.seenBeforeReading == ["/state/images": [1, 2]])
        #expect(inputs.dependencies.map(\.path) == ["/etc/passwd", "/state/images"])
    }
}
