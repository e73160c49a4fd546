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
}
