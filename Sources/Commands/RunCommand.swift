import ArgumentParser
import Core
import Sandbox
import Store

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
        Exit status: the command's own; 128+N if it died of signal N; 125 for azl-shell's own
        errors; 126 for a command that cannot be executed; 127 for one that does not exist.
        """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "The image to run (NAME[:TAG] or an image id).")
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
    var network: String = "host"

    @Flag(name: .long, help: "Immutable root: only /tmp, /var/tmp and /run are writable.")
    var readOnly = false

    @Option(name: .long, help: ArgumentHelp("auto (use /etc/subuid ranges when possible) or single.", visibility: .hidden))
    var idMap: String = "auto"

    @Flag(name: .long, help: ArgumentHelp("Print the sandbox plan instead of running it.", visibility: .hidden))
    var dryRun = false

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments (default: the image's).", valueName: "CMD"))
    var command: [String] = []

    func run() throws {
        guard let net = RunRequest.Network(rawValue: network) else {
            throw AZLError(.usage, "--network \(network): expected host or none")
        }
        guard let mapping = RunRequest.IDMapping(rawValue: idMap) else {
            throw AZLError(.usage, "--id-map \(idMap): expected auto or single")
        }
        var argv = command
        if argv.first == "--" { argv.removeFirst() }

        var request: RunRequest
        var keepLocked: [String] = []
        var opened: RunnableImage?   // holds the shared lock until exec
        if let rootfs {
            let abs = rootfs.hasPrefix("/") ? rootfs : (HostFacts.current().cwd + "/" + rootfs)
            guard FS.isDirectory(abs) else { throw AZLError(.notFound, "--rootfs \(rootfs): not a directory") }
            request = RunRequest(rootfs: abs, imageName: abs.split(separator: "/").last.map(String.init) ?? "azl-shell")
        } else {
            guard let image else {
                throw AZLError(.usage, "no image given", hint: "use --image NAME; azl-shell images lists them")
            }
            let store = try ImageStore(paths: global.paths)
            let img = try store.openForRun(image)
            opened = img
            keepLocked.append(img.lock.path)
            request = RunRequest(rootfs: img.rootfs, imageName: img.record.name)
            let c = img.record.config
            request.imageEnv = c.env
            request.imageWorkingDir = c.workingDir
            request.imageUser = c.user
            request.entrypoint = c.entrypoint
            request.imageCmd = c.cmd
        }
        request.command = argv
        request.env = env
        request.volumes = volume
        request.workdir = workdir
        request.user = user
        request.hostname = hostname
        request.network = net
        request.readOnly = readOnly
        request.idMapping = mapping
        request.verbose = global.verbose

        var builder = PlanBuilder(request: request, host: HostFacts.current())
        let plan = try builder.build()
        for n in builder.notes { global.note(n) }
        if dryRun {
            print(plan.description)
            return
        }
        // The store's lock stays held until the helper has taken its own (inherited) one.
        try withExtendedLifetime(opened) { try Launcher.exec(plan, keepLocked: keepLocked) }
    }
}
