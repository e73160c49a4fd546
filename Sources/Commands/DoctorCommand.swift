import ArgumentParser
import Core
import Doctor
import Foundation
import SandboxLaunch

/// `azl-shell doctor [--json]`: whether rootless runs can work here, and what to change if not.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check that this machine and user can run sandboxes, and say how to fix what cannot.",
        discussion: """
        Exit status 0 when no check failed (warnings allowed: runs work, with less), 1 when one did.
        """)

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "One JSON object: {\"ok\": BOOL, \"checks\": [{\"id\", \"status\", \"summary\", \"fix\"}]}.")
    var json = false

    // Stand-ins for what only root can change, for the tests (a user without a range, no newuidmap).
    @Option(name: .customLong("subuid-file"), help: ArgumentHelp("", visibility: .private))
    var subuidFile = "/etc/subuid"
    @Option(name: .customLong("subgid-file"), help: ArgumentHelp("", visibility: .private))
    var subgidFile = "/etc/subgid"
    @Option(name: .customLong("helper-dir"), help: ArgumentHelp("", visibility: .private))
    var helperDirs: [String] = []

    func run() throws {
        var o = DoctorOptions(paths: global.paths)
        o.subuidFile = subuidFile
        o.subgidFile = subgidFile
        if !helperDirs.isEmpty { o.helperDirectories = helperDirs }
        o.programs = Self.programs()
        let report = Doctor.run(o)
        print(json ? try Render.json(report) : report.text(), terminator: json ? "\n" : "")
        if !report.ok { throw ExitCode(1) }
    }

    /// The installed front end and sandbox helper: what an AppArmor profile must name.
    static func programs() -> [String] {
        guard let dir = Launcher.selfDirectory() else { return [] }
        let std = (dir as NSString).standardizingPath
        let front = std.hasSuffix("/libexec/azl-shell") ? ((std as NSString).deletingLastPathComponent as NSString)
            .deletingLastPathComponent + "/bin/azl-shell" : std + "/azl-shell"
        return [front, (try? Launcher.helperPath()).map { ($0 as NSString).standardizingPath } ?? std + "/azl-shell-sandbox"]
    }
}
