import ArgumentParser
import Core
import Foundation
import Planning
import Sandbox

/// `azl-shell run --image NAME [options] [--] CMD [ARGS...]`: the command in a rootless sandbox
/// whose root is an overlay over the cached image, discarded when the command ends.
///
/// The hot path is short on purpose: look the image up, build the plan (a value), exec the helper.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command inside an image, rootless, with an ephemeral root.",
        discussion: """
        The current directory is bind-mounted at the same path and is the working directory.
        The command sees the target VM's kernel (uname, /proc/version; syscalls that kernel lacks
        answer ENOSYS) under a seccomp and capability policy: see `azl-shell kernel`.
        Inside a project (an azl-shell.toml in this folder or above) its image, options and setup
        layers are used; options given here win (docs/project.md).
        Exit status: the command's own; 128+N if it died of signal N; 125 for azl-shell's own
        errors; 126 for a command that cannot be executed; 127 for one that does not exist.
        """)

    @OptionGroup var global: GlobalOptions

    /// Used only when the image is not stored yet and is pulled first.
    @OptionGroup(title: "Pull options (when the image is not stored yet)") var pull: PullOptionsGroup

    @Option(name: .long, help: "The image to run: NAME[:TAG] or an image id from the store, a known short name (azurelinux:3.0) or a registry reference; those two are pulled on first use.", completion: .custom { words, _, _ in Completion.imageNames(words) })
    var image: String?

    @Option(name: .long, help: ArgumentHelp("Run in this unpacked root directory instead of a stored image.", visibility: .hidden))
    var rootfs: String?

    @Option(name: [.customShort("e"), .long], help: ArgumentHelp("Set KEY=VALUE in the command's environment, or pass KEY through from yours.", valueName: "KEY[=VALUE]"))
    var env: [String] = []

    @Option(name: .long, help: ArgumentHelp("Bind-mount the host's SRC at DST (add :ro for read-only).", valueName: "SRC:DST[:ro]"))
    var volume: [String] = []

    @Option(name: [.customShort("w"), .long], help: "Working directory inside (default: the current directory, bind-mounted).")
    var workdir: String?

    @Option(name: [.customShort("u"), .long], help: ArgumentHelp("root (default), keep-id (your own uid, gid and name), UID[:GID] or a user of the image.", valueName: "USER"))
    var user: String?

    @Option(name: .long, help: "Hostname inside (default: the image name).")
    var hostname: String?

    @Option(name: .long, help: ArgumentHelp("host (default: share the host's network) or none (only lo).", valueName: "MODE"))
    var network: String?

    @Flag(name: .long, help: "Immutable root: only /tmp, /var/tmp and /run are writable.")
    var readOnly = false

    @Option(name: .long, help: ArgumentHelp("auto (use /etc/subuid ranges when possible) or single.", visibility: .hidden))
    var idMap: String = "auto"

    @OptionGroup(title: "Kernel and policy") var policy: KernelOptions

    @Option(name: .long, defaultAsFlag: "", help: ArgumentHelp("Run CMD on every one of these images (times each --platform and --kernel, comma-separated too), each in its own root; a row per target, logs kept; exit 0 only when all passed. --json: the report as JSON. No images: the project file's `matrix`.", valueName: "IMAGE[,IMAGE...]"))
    var matrix: String? = nil

    @Option(name: .long, help: ArgumentHelp("With --matrix: targets run at once (default: the number of cores).", valueName: "N"))
    var jobs: Int?

    @Option(name: .long, help: ArgumentHelp("With --matrix: the folder for each target's log (default: a new one in the cache folder).", valueName: "DIR"))
    var logs: String?

    @Option(name: .customLong("abi-report"), help: ArgumentHelp("Write every syscall the target kernel refused (ENOSYS) or the policy denied (EPERM): name, program, calls, reason; with --matrix, a section per target.", valueName: "FILE"))
    var abiReport: String?

    @Flag(name: .long, help: "In a project: fail if azl-shell.lock does not match the project file or its image (the default when CI=true).")
    var frozen = false

    @Flag(name: .long, help: "Ignore the project file (azl-shell.toml) of this folder and above.")
    var noProject = false

    @Flag(name: .long, help: ArgumentHelp("Print the sandbox plan instead of running it.", visibility: .hidden))
    var dryRun = false

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments (default: the image's).", valueName: "CMD"))
    var command: [String] = []

    /// CMD captures everything from the first word azl-shell does not know, so that
    /// `run --image X ls -la` passes `-la` to ls as podman does. A dash word in first place is then
    /// an option of ours that does not exist (or help): say so instead of trying to run it.
    func validate() throws {
        guard let first = command.first, first.hasPrefix("-"), first != "--" else { return }
        if first == "-h" || first == "--help" { throw CleanExit.helpRequest(self) }
        throw ValidationError("Unknown option '\(first)'")
    }

    func run() throws {
        if let matrix { return try runMatrix(matrix) }
        // What the project (if any) reads before planning is an input of the plan too.
        let inputs = PlanInputs()
        var spec = try inputs.record { try self.spec() }
        spec.inputs = inputs
        spec.cacheForCommandLine = true
        let prepared = try RunPlanner.prepare(spec)
        for n in prepared.notes { global.note(n) }
        if dryRun {
            print(prepared.plan.description)
            return
        }
        try prepared.exec()
    }

    /// This command line as a request to the planning layer: inside a project, the project's
    /// environment with these options over it. A matrix target's image, platform and kernel
    /// replace the command line's (in a project, its setup runs on the target's image, its step
    /// output to `stepOutput`).
    func spec(target: Target? = nil, stepOutput: Int32 = 2) throws -> RunSpec {
        guard let mapping = RunRequest.IDMapping(rawValue: idMap) else {
            throw AZLError(.usage, "--id-map \(idMap): expected auto or single")
        }
        var settings = pull.settings(quiet: global.quiet)
        settings.jsonToStderr = true
        var spec: RunSpec
        if let rootfs {
            spec = RunSpec(source: .rootfs(rootfs))
        } else if !noProject, let project = try ProjectPlanner.find(from: FileManager.default.currentDirectoryPath) {
            var o = ProjectOptions()
            o.frozen = frozen ? true : nil
            o.imageOverride = target?.image ?? image
            o.rootOption = global.root
            o.pull = settings
            if let t = target {
                o.pull.platform = t.platform
                o.stepOutput = stepOutput
            }
            o.verbose = global.verbose
            o.progress = { [global] e in
                if e.state == .running { global.say("azl-shell: setup step \(e.index)/\(e.count): \(e.run)") }
            }
            spec = try ProjectPlanner.environment(project, options: o).spec
            settings.platform = spec.pull.platform
        } else {
            guard image != nil || matrix != nil else {
                throw AZLError(.usage, "no image given", hint: "use --image NAME, or add an azl-shell.toml to the project; azl-shell images lists them")
            }
            spec = RunSpec(source: .image(target?.image ?? image ?? ""))
            if let target { settings.platform = target.platform }
        }
        if let network {
            guard let net = RunRequest.Network(rawValue: network) else {
                throw AZLError(.usage, "--network \(network): expected host or none")
            }
            spec.network = net
        }
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        spec.command = argv
        // Later -e and --volume entries win over the project's.
        spec.env += env
        spec.volumes += volume
        spec.workdir = workdir ?? spec.workdir
        spec.user = user ?? spec.user
        spec.hostname = hostname
        spec.readOnly = readOnly
        spec.idMapping = mapping
        spec.kernel = target.map { $0.kernel ?? spec.kernel } ?? policy.kernel ?? spec.kernel
        spec.capAdd = policy.capAdd
        spec.capDrop = policy.capDrop
        spec.abiReport = abiReport
        spec.rootOption = global.root
        spec.verbose = global.verbose
        spec.pull = settings
        return spec
    }
}
