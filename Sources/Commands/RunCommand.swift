import ArgumentParser
import Core
import Foundation
import Kernel
import Sandbox
import SandboxLaunch
import SandboxRuntime
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
        The command sees the target VM's kernel (uname, /proc/version; syscalls that kernel lacks
        answer ENOSYS) under a seccomp and capability policy: see `azl-shell kernel`.
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
    var network: String = "host"

    @Flag(name: .long, help: "Immutable root: only /tmp, /var/tmp and /run are writable.")
    var readOnly = false

    @Option(name: .long, help: ArgumentHelp("auto (use /etc/subuid ranges when possible) or single.", visibility: .hidden))
    var idMap: String = "auto"

    @OptionGroup(title: "Kernel and policy") var policy: KernelOptions

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
        guard let net = RunRequest.Network(rawValue: network) else {
            throw AZLError(.usage, "--network \(network): expected host or none")
        }
        guard let mapping = RunRequest.IDMapping(rawValue: idMap) else {
            throw AZLError(.usage, "--id-map \(idMap): expected auto or single")
        }
        var argv = command
        if argv.first == "--" { argv.removeFirst() }

        // Everything planning reads of the environment and the host's files from here on is
        // recorded: the plan cache keys its entry on exactly that (PlanInputs).
        let inputs = PlanInputs.start()
        defer { PlanInputs.stop() }
        let host = HostFacts.current()
        var request: RunRequest
        var keepLocked: [String] = []
        var seenBeforePlanning: [String: [UInt64]] = [:]
        var opened: RunnableImage?   // holds the shared lock until exec
        if let rootfs {
            let abs = rootfs.hasPrefix("/") ? rootfs : (host.cwd + "/" + rootfs)
            guard FS.isDirectory(abs) else { throw AZLError(.notFound, "--rootfs \(rootfs): not a directory") }
            request = RunRequest(rootfs: abs, imageName: abs.split(separator: "/").last.map(String.init) ?? "azl-shell")
        } else {
            guard let image else {
                throw AZLError(.usage, "no image given", hint: "use --image NAME; azl-shell images lists them")
            }
            let store = try ImageStore(paths: global.paths)
            // Before the record is read (PlanCache.seenBeforePlanning): records are written by a
            // rename into this folder, so a pull or retag from now on changes it.
            seenBeforePlanning[store.paths.images] = PlanCache.identity(of: store.paths.images, contentToo: true)
            let record: ImageRecord
            do {
                record = try store.lookup(image)
            } catch let missing as AZLError where missing.kind == .notFound {
                // Not stored: a registry reference or a known short name is pulled first
                // (progress on stderr, like `pull`). The stored-image path above never gets here.
                var puller = Puller(global: global, options: pull)
                puller.jsonToStderr = true
                guard let pulled = try puller.findOrPull(image, store: store) else { throw missing }
                record = pulled
            }
            // Stored but its tree gone: said as such, not pulled under that name.
            let img = try store.openForRun(record)
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
        request.imageReference = opened?.record.reference
        request.env = env
        request.volumes = volume
        request.workdir = workdir
        request.user = user
        request.hostname = hostname
        request.network = net
        request.readOnly = readOnly
        request.idMapping = mapping
        request.verbose = global.verbose
        request.stateFolders = RunCommand.stateFolders(root: global.root, shown: [host.cwd] + request.volumes.map {
            String($0.split(separator: ":", omittingEmptySubsequences: false).first ?? "")
        })

        // The kernel profile and the security policy (docs/kernel.md). A warm run reads the
        // seccomp program from the cache instead of compiling it with libseccomp.
        let choice = try KernelChoice.choose(spec: policy.kernel, manifestName: opened?.record.manifest, rootfs: request.rootfs)
        let kernelPolicy = try KernelPolicy.build(profile: choice.profile, capsAdd: policy.capAdd, capsDrop: policy.capDrop,
                                            cacheDirectory: global.paths.cache + "/seccomp")
        request.kernel = kernelPolicy.sandboxSettings
        if let n = choice.note { global.note(n) } else {
            global.note("kernel profile \(choice.profile.name) (uname -r \(choice.profile.release)), from \(choice.chosenBy)")
        }

        var builder = PlanBuilder(request: request, host: host)
        var plan = try builder.build()
        for n in builder.notes { global.note(n) }
        plan.keeper = try userNamespaceKeeper(for: plan)
        #if DEBUG
        // Tests only: planning that reads one more variable or file (named by these), to show
        // that the cache follows what planning reads with no edit of the cache's code.
        if let name = PlanInputs.variable("AZL_SHELL_TEST_READ_VARIABLE") { _ = PlanInputs.variable(name) }
        if let file = PlanInputs.variable("AZL_SHELL_TEST_READ_FILE") { PlanInputs.file(file, .content) }
        #endif
        PlanInputs.stop()
        if dryRun {
            print(plan.description)
            return
        }
        // Kept for the next run of this command line, unless this run says more than a replay
        // would (--verbose) or runs a tree outside the store (--rootfs: it may change).
        var cache: PlanCache?
        var dependencies: [PlanCache.Dependency] = []
        if let opened, !global.verbose, var c = PlanCache.forThisProcess(arguments: CommandLine.arguments),
           c.directory == global.paths.cache + "/plans" {
            c.seenBeforePlanning = seenBeforePlanning
            c.variables = inputs.variables
            cache = c
            dependencies = planDependencies(plan, inputs: inputs)
        }
        // The store's lock stays held until the helper has taken its own (inherited) one.
        try withExtendedLifetime(opened) { try plan.exec(keepLocked: keepLocked, cache: cache, dependencies: dependencies) }
    }

    /// Seconds a kept user namespace waits for the next run (AZL_SHELL_USERNS_IDLE; 0: keep none).
    static let defaultKeeperIdle: UInt32 = 300

    /// The keeper of this plan's user namespace (Sources/SandboxRuntime/keeper.c): only for a
    /// map the setuid helpers write (a one-line map costs nothing to write), one per map, its
    /// state in the cache folder. nil where that folder is not this user's alone.
    func userNamespaceKeeper(for plan: SandboxPlan) throws -> SandboxPlan.UserNamespaceKeeper? {
        guard plan.uidMap.helper != nil, plan.gidMap.helper != nil else { return nil }
        var idle = RunCommand.defaultKeeperIdle
        if let v = PlanInputs.variable("AZL_SHELL_USERNS_IDLE") {
            guard let n = UInt32(v) else {
                throw AZLError(.usage, "AZL_SHELL_USERNS_IDLE=\(v): not a number of seconds", hint: "0 keeps no user namespace between runs")
            }
            idle = n
        }
        guard idle > 0, let program = try? Launcher.helperPath() else { return nil }
        let dir = global.paths.cache + "/userns"
        guard (try? FS.mkdirs(dir, mode: 0o700)) != nil else { return nil }
        var st = stat()
        guard stat(dir, &st) == 0, st.st_uid == getuid(), st.st_mode & 0o022 == 0 else { return nil }
        // One keeper per map: keep-id and the default map, or a changed /etc/subuid, never share one.
        let maps = [plan.uidMap, plan.gidMap].map { $0.ranges.map { "\($0.inside):\($0.outside):\($0.count);" }.joined() + "/" }
        let hex = String(Array(maps.joined().utf8).withUnsafeBytes { azl_fnv1a($0.baseAddress, $0.count) }, radix: 16)
        // The state format's version in the name: a keeper of an older build (its file in the
        // old format, which this build cannot join) never stops this one from keeping its own.
        return .init(program: program, stateFile: dir + "/map-v3-" + String(repeating: "0", count: 16 - hex.count) + hex,
                     idleSeconds: idle)
    }

    /// The user's state folders (`Paths.stateFolders`). One that does not exist yet cannot be
    /// hidden, and a command could create it (a store or rootfs-manifests of its own making, for
    /// a later run to use): those that a bind of this run would show are made now, empty, so
    /// they are hidden. Not caches: whatever is in one is believed only for its MAC.
    static func stateFolders(root: String?, shown: [String]) -> [(path: String, hide: Bool)] {
        let folders = Paths.stateFolders(rootOption: root)
        let sources = shown.filter { !$0.isEmpty }.map { realPathOfExistingPart(Paths.absolute($0)) }
        for f in folders where f.kind != .cache && !FS.exists(f.path) {
            let p = realPathOfExistingPart(f.path)
            if sources.contains(where: { $0 == "/" || p.hasPrefix($0 + "/") }) { try? FS.mkdirs(p, mode: 0o700) }
        }
        return folders.map { ($0.path, $0.hide) }
    }

    /// PATH with its longest existing ancestor resolved (realpath), the rest as it is.
    static func realPathOfExistingPart(_ path: String) -> String {
        var head = path, tail = ""
        while !head.isEmpty && head != "/" {
            if let r = realpath(head, nil) { defer { free(r) }; return String(cString: r) + tail }
            let ns = head as NSString
            tail = "/" + ns.lastPathComponent + tail
            head = ns.deletingLastPathComponent
        }
        return tail.isEmpty ? "/" : tail
    }

    /// Every file a plan was computed from (besides the command line, the working directory
    /// and the ids, the key; and the variables): what planning read (`inputs`), what the plan
    /// binds as the runtime opens it, and our own programs.
    func planDependencies(_ plan: SandboxPlan, inputs: PlanInputs) -> [PlanCache.Dependency] {
        var deps: [PlanCache.Dependency] = inputs.dependencies.map {
            switch $0.kind {
            case .content: return .content($0.path)
            case .presence: return .presence($0.path)
            case .resolved: return .resolved($0.path)
            }
        }
        // Our own programs: an upgrade may plan differently (and bundles other manifests).
        if let dir = Launcher.selfDirectory() {
            deps += ["azl-shell", "azl-shell-cli", "azl-shell-sandbox"].map { .content(dir + "/" + $0) }
        }
        // What the runtime opens without following symlinks: the user's bind sources as the plan
        // names them, and the state folders (one created, moved or swapped since is a new plan).
        for case .bind(let source, _, let flags) in plan.mounts where flags.contains(.guarded) { deps.append(.resolved(source)) }
        deps += plan.guards.map { .resolved($0.path) }
        // Without its folder, a replayed plan could never start a keeper again.
        if plan.keeper != nil { deps.append(.presence(global.paths.cache + "/userns")) }
        // Which file a path is, is part of its content's identity and of its resolved one: a
        // presence check more of the same path costs a warm run a stat for nothing.
        let stronger = Set(deps.compactMap { d -> String? in
            switch d { case .content(let p), .resolved(let p): return p; case .presence: return nil }
        })
        return deps.filter { if case .presence(let p) = $0 { return !stronger.contains(p) }; return true }
    }
}
