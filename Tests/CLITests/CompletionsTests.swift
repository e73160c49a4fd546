import Foundation
import Testing
import TestSupport

/// completions/ is generated from the CLI and checked in; it must say what the binary says.
@Suite struct CompletionsTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let files = [("bash", "azl-shell.bash"), ("zsh", "_azl-shell"), ("fish", "azl-shell.fish")]

    @Test(arguments: files)
    func checkedInCompletionsMatchTheBinary(shell: String, file: String) throws {
        let bin = Rootless.buildProductsDirectory() + "/azl-shell"
        let r = Subprocess.run([bin, "--generate-completion-script", shell])
        #expect(r.status == 0, "\(r)")
        let disk = try String(contentsOfFile: Self.repo + "/completions/" + file, encoding: .utf8)
        #expect(!r.stdout.isEmpty)
        #expect(disk == r.stdout, "completions/\(file) is stale: run scripts/gen-completions.sh")
        // Every verb is offered.
        for verb in ["run", "pull", "import", "images", "rmi", "prune", "kernel", "doctor", "pkgtest"] {
            #expect(disk.contains(verb), "\(file) does not offer \(verb)")
        }
    }
}
