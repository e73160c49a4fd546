import ArgumentParser
import Core
import Foundation
import Manifests
import Planning

/// The project of the current folder (azl-shell.toml here or above), or a usage error.
func currentProject() throws -> ProjectFile {
    let here = FileManager.default.currentDirectoryPath
    guard let p = try ProjectPlanner.find(from: here) else {
        throw AZLError(.usage, "no \(ProjectFile.fileName) in \(here) or any folder above it", hint: "write one: see docs/project.md")
    }
    return p
}

/// `azl-shell setup [--refresh]`: the project's setup steps into cached layers, each step's
/// output shown; `--refresh` rebuilds them all.
struct SetupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Run the project's setup steps (azl-shell.toml) into cached layers.",
        discussion: """
        Each step runs once, as root, over the layers of the steps before it, with the project folder \
        bound and current; what it changed is kept as a layer keyed by its parent, its text and its \
        inputs' contents. `run` uses the layers at once. A failing step keeps nothing and names itself. \
        --json prints one JSON event per step on stderr (the steps' output goes to stdout).
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup(title: "Pull options (when the image is not stored yet)") var pull: PullOptionsGroup

    @Flag(name: .long, help: "Rebuild every layer, cached or not.")
    var refresh = false

    @Flag(name: .long, help: "Fail if azl-shell.lock does not match the project file or its image (the default when CI=true).")
    var frozen = false

    func run() throws {
        var o = ProjectOptions()
        o.frozen = frozen ? true : nil
        o.refresh = refresh
        o.stepOutput = 1
        o.rootOption = global.root
        o.pull = pull.settings(quiet: global.quiet)
        o.verbose = global.verbose
        o.progress = progressPrinter(json: pull.json, global: global)
        let env = try ProjectPlanner.environment(try currentProject(), options: o)
        if !pull.json { global.say("azl-shell: \(env.layerKeys.count) setup layers ready on \(env.lock.image) (\(env.image.digest.short))") }
    }
}

/// Step events as plain lines (no bars) or JSON lines, on stderr.
func progressPrinter(json: Bool, global: GlobalOptions) -> (ProjectPlanner.StepEvent) -> Void {
    { e in
        if json {
            var o: [String: Any] = ["event": "step", "index": e.index, "count": e.count, "run": e.run,
                                    "state": e.state.rawValue, "key": e.key.description]
            if let s = e.status { o["status"] = Int(s) }
            if let d = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]) {
                FileHandle.standardError.write(d + Data("\n".utf8))
            }
        } else if e.state != .failed {
            global.say("azl-shell: step \(e.index)/\(e.count) \(e.state.rawValue): \(e.run)")
        }
    }
}

/// `azl-shell lock [--update]`: write azl-shell.lock (the image's digest, the kernel profile,
/// each step's key); --update re-resolves the image's tag.
struct LockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Write the project's azl-shell.lock (image digest, kernel profile, setup step keys).",
        discussion: "Runs use the locked digest even after the tag moved; --update resolves the tag again. Commit the lock.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup(title: "Pull options (when the image is not stored yet)") var pull: PullOptionsGroup

    @Flag(name: .long, help: "Resolve the image again (a tag that moved is followed).")
    var update = false

    func run() throws {
        var o = ProjectOptions()
        o.frozen = false
        o.updateLock = update
        o.build = false
        o.rootOption = global.root
        o.pull = pull.settings(quiet: global.quiet)
        let project = try currentProject()
        let env = try ProjectPlanner.environment(project, options: o)
        global.say("azl-shell: \(project.lockPath): \(env.lock.image) at \(env.image.digest), \(env.layerKeys.count) setup steps")
    }
}

/// `azl-shell trust [--revoke]`: approve the project file as it is now for what reaches beyond
/// its folder (volumes outside it, a real home). A sandbox can write the project folder, so
/// without this the file is believed only inside it (ProjectTrust).
struct TrustCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "Allow the project file to bind what lies outside its folder (volumes, your real home).",
        discussion: """
        Commands in sandboxes can write the project folder, so a project file is believed only for \
        what stays inside it until you trust it: volumes outside the folder and home = "host" or \
        "overlay" are refused. `trust` shows what the file reaches and approves these exact bytes at \
        this path; any change to the file needs a new `trust`. --revoke takes it back.
        """)

    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Take the approval back.") var revoke = false

    func run() throws {
        let project = try currentProject()
        if revoke {
            let had = ProjectTrust.revoke(project)
            global.say(had ? "azl-shell: \(project.path) is no longer trusted" : "azl-shell: \(project.path) was not trusted")
            return
        }
        let reach = ProjectTrust.reach(of: project)
        try ProjectTrust.trust(project)
        global.say("azl-shell: trusted \(project.path) (\(project.digest?.short ?? "-"))" + (reach.isEmpty ? ": it reaches nothing outside its folder" : ", which reaches:"))
        for r in reach { global.say("  " + r) }
    }
}
