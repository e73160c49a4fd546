import Core
import Foundation
@testable import Planning
import Testing

/// The matrix's combinations, names and output tails (running targets: CLITests/MatrixRunTests).
struct TargetsTests {
    @Test func everyCombinationImagesOutermost() {
        let t = Target.matrix(images: ["a", "b"], platforms: ["linux/amd64", "linux/arm64"], kernels: ["5.15.0"])
        #expect(t.map(\.label) == ["a linux/amd64 kernel 5.15.0", "a linux/arm64 kernel 5.15.0",
                                   "b linux/amd64 kernel 5.15.0", "b linux/arm64 kernel 5.15.0"])
        #expect(Target.matrix(images: ["a"]) == [Target(image: "a")])
    }

    @Test func logNamesAreOrderedAndPlain() {
        #expect(Targets.logName(2, Target(image: "reg.io/x/y:1", platform: "linux/arm64")) == "03-reg.io_x_y_1_linux_arm64.log")
        #expect(Targets.logName(0, Target(image: String(repeating: "z", count: 300))).count == 3 + 100 + 4)
    }

    @Test func theTailIsTheLastLines() throws {
        let path = NSTemporaryDirectory() + "/azl-tail-\(getpid())"
        defer { unlink(path) }
        try (1...8).map { "line \($0)" }.joined(separator: "\n").appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Targets.tail(of: path, lines: 3) == ["line 6", "line 7", "line 8"])
        #expect(Targets.tail(of: path + ".none", lines: 3).isEmpty)
    }

    /// Planning threads asking for one key at once all get the first value made; a failure is
    /// not kept (the next asker makes it again).
    @Test func aBatchKeepsTheFirstValueOfAKey() throws {
        let shared = SharedPlanning()
        let lock = NSLock()
        nonisolated(unsafe) var got = Set<Int>()
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            let v = shared.value(["k"]) { i }
            lock.withLock { _ = got.insert(v) }
        }
        #expect(got.count == 1)
        #expect(throws: AZLError.self) { try shared.value(["bad"]) { () throws -> Int in throw AZLError(.notFound, "no") } }
        #expect(shared.value(["bad"]) { 7 } == 7)
    }

    /// Targets that fail while being planned: a 125 row each, in the targets' order, `done`
    /// called once for each on the calling thread, the job limit released each time.
    @Test func targetsThatCannotStartEndWith125InOrder() throws {
        let dir = NSTemporaryDirectory() + "/azl-targets-\(getpid())"
        try FS.mkdirs(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let targets = (1...5).map { Target(image: "img\($0)") }
        var seen: [String] = []
        let caller = Thread.current
        let results = Targets.runAll(targets, argv: ["true"], jobs: 1, logDirectory: dir, specFor: { t, _ in
            throw AZLError(.notFound, "image \(t.image) is not here")
        }, done: { o in
            #expect(Thread.current == caller)
            seen.append(o.target.image)
        })
        #expect(results.map(\.target.image) == targets.map(\.image))
        #expect(results.allSatisfy { $0.status == 125 && !$0.passed })
        #expect(seen.sorted() == targets.map(\.image).sorted())
        #expect(results.last?.tail == ["azl-shell: image img5 is not here"], "\(String(describing: results.last))")
    }
}
