import ArgumentParser
import Core
import Foundation
import Kernel
import Planning
import Sandbox
import SandboxLaunch
import SandboxRuntime
import Store

/// Named, persistent environments (issue 12, docs/environments.md): `create`, `enter`, `exec`,
/// `list`, `stop`, `rm`. An environment is its own writable layer over a cached image; its
/// first session starts its live sandbox and later ones join it (Sources/SandboxRuntime/env.c).

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a named environment: its own persistent layer over an image.",
        discussion: "Nothing of the image is copied or chowned: the environment's layer starts empty (a few KB).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup(title: "Pull options (when the image is not stored yet)") var pull: PullOptionsGroup

    @Argument(help: ArgumentHelp("The environment's name (\(EnvironmentStore.nameRule)).", valueName: "NAME"))
    var name: String

    @Option(name: .long, help: "The image: NAME[:TAG], an image id, a known short name or a registry reference (pulled on first use).",
            completion: .custom { words, _, _ in Completion.imageNames(words) })
    var image: String

    @Option(name: .long, help: ArgumentHelp("private (default: a home of its own at your home's path), host (your home bound in) or overlay (your home as a copy-on-write layer).", valueName: "MODE"))
    var home: String = "private"

    @Option(name: [.customShort("u"), .long], help: ArgumentHelp("keep-id (default: you, with your uid, gid and home path) or root; sessions may say --user root.", valueName: "USER"))
    var user: String = "keep-id"

    @Option(name: .long, help: ArgumentHelp("Bind-mount the host's SRC at DST (add :ro for read-only).", valueName: "SRC:DST[:ro]"))
    var volume: [String] = []

    @Option(name: [.customShort("e"), .long], help: ArgumentHelp("Set KEY=VALUE in every session, or pass KEY through.", valueName: "KEY[=VALUE]"))
    var env: [String] = []

    @Option(name: .long, help: ArgumentHelp("The kernel sessions see: a profile, a release or host (default: the image's).", valueName: "PROFILE|RELEASE|host"))
    var kernel: String?

    @Option(name: .long, help: ArgumentHelp("host (default) or none (only lo).", valueName: "MODE"))
    var network: String = "host"

    @Flag(name: .long, help: "Do not forward the SSH agent and ~/.gitconfig into a private or overlay home.")
    var noForward = false

    @Option(name: .long, help: ArgumentHelp("Seconds the live sandbox stays after its last session (default 300).", valueName: "SECONDS"))
    var idle: UInt32 = 300

    func run() throws {
        try EnvironmentStore.validate(name)
        guard let h = EnvironmentConfig.Home(rawValue: home) else { throw AZLError(.usage, "--home \(home): expected private, host or overlay") }
        guard let u = EnvironmentConfig.User(rawValue: user) else { throw AZLError(.usage, "--user \(user): expected keep-id or root") }
        guard ["host", "none"].contains(network) else { throw AZLError(.usage, "--network \(network): expected host or none") }
        guard idle > 0 else { throw AZLError(.usage, "--idle 0: the live sandbox needs at least a second to be joined", hint: "give a number of seconds above 0") }
        let envs = EnvironmentStore(paths: global.paths)
        if FS.exists(envs.path(name)) { throw envs.taken(name) }
        let store = try ImageStore(paths: global.paths)
        var settings = pull.settings(quiet: global.quiet)
        settings.jsonToStderr = true
        let record = try RunPlanner.storedRecord(image, pull: settings, store: store)
        let tree = try store.openForRun(record)   // its tree is there and is the user's
        // --platform chose the image of an index above; a stored image must be for it (a foreign
        // one runs under qemu-user in every session, as `run --platform` does).
        _ = try RunPlatform.resolve(image: record.reference, recorded: record.architecture, rootfs: tree.rootfs,
                                    requested: pull.platform)
        if let k = kernel { _ = try KernelChoice.choose(spec: k, manifestName: record.manifest, rootfs: nil) }
        try envs.create(EnvironmentConfig(name: name, image: record, home: h, user: u, volumes: volume, env: env, kernel: kernel,
                                          network: network, forward: !noForward, idleSeconds: idle, created: Date()))
        global.say("created \(name) over \(record.reference)")
    }
}

/// What `enter` and `exec` share: the session's plan, from the environment's settings.
struct SessionOptions: ParsableArguments {
    @Option(name: [.customShort("u"), .long], help: ArgumentHelp("keep-id (you) or root, for this session (default: the environment's).", valueName: "USER"))
    var user: String?

    @Option(name: [.customShort("e"), .long], help: ArgumentHelp("Set KEY=VALUE for this session, or pass KEY through.", valueName: "KEY[=VALUE]"))
    var env: [String] = []

    @Option(name: [.customShort("w"), .long], help: "Working directory inside (default: the current directory when the environment shows it at the same path, else the home).")
    var workdir: String?
}

enum EnvironmentSession {
    /// Carry out a session of environment NAME running ARGV (nil: a login shell): a plan as
    /// `run` makes it (RunPlanner), over the environment's image record, with its layer as the
    /// kept upper, joined into its live sandbox.
    static func start(global: GlobalOptions, name: String, options: SessionOptions, argv: [String]?, abiReport: String? = nil) throws -> Never {
        // Everything this session's plan is made of is recorded from here (PlanInputs): an
        // `exec` keeps its plan in the plan cache, which replays it while all of it is unchanged.
        let inputs = PlanInputs()
        try inputs.record { try start(global: global, name: name, options: options, argv: argv, abiReport: abiReport, inputs: inputs) }
    }

    static func start(global: GlobalOptions, name: String, options: SessionOptions, argv: [String]?, abiReport: String?, inputs: PlanInputs) throws -> Never {
        let envs = EnvironmentStore(paths: global.paths)
        try EnvironmentStore.validate(name)
        let configFile = envs.path(name) + "/config.json"
        // Before it is read (config.json is replaced by a rename): an edit from now on is a miss.
        PlanInputs.file(configFile, .content) { PlanCache.identity(of: configFile, contentToo: true) }
        let config = try envs.load(name)
        let host = HostFacts.current()
        // Your home is where $HOME says (as toolbox and distrobox take it), the passwd one else.
        var home = host.home
        if let h = host.environment["HOME"], h.hasPrefix("/"), h != "/" { home = Paths.absolute(h) }
        let sessionUser = try options.user.map {
            guard let u = EnvironmentConfig.User(rawValue: $0) else { throw AZLError(.usage, "--user \($0): expected keep-id or root") }
            return u
        } ?? config.user
        if sessionUser == .keepID && config.user == .root {
            throw AZLError(.usage, "environment \(name) maps your id to root: it has no keep-id user", hint: "use --user root, or create an environment with --user keep-id")
        }
        let dir = envs.path(name)
        let envHome = config.user == .keepID ? home : "/root"

        var spec = RunSpec(source: .record(config.image))
        spec.cacheForCommandLine = argv != nil
        spec.inputs = inputs
        spec.host = host
        spec.rootOption = global.root
        spec.kernel = config.kernel
        spec.user = config.user.rawValue   // the environment's map: every session's plan starts the same sandbox
        spec.network = config.network == "none" ? .none : .host
        spec.verbose = global.verbose
        spec.bindWorkingDirectory = false
        spec.hostname = PlanBuilder.hostname(forImage: name)
        spec.upper = .init(directory: dir + "/upper", work: dir + "/work")
        let store = try ImageStore(paths: global.paths)
        spec.layers = (config.setupLayers ?? []).map { store.layerRoot($0) }
        var volumes = config.volumes
        if config.home == .host { volumes.append(home + ":" + home) }
        var env = config.env
        if config.home != .host && config.forward && config.user == .keepID {
            // The SSH agent (its socket where sessions find it) and your git identity, read-only:
            // `git push` works from a home of the environment's own.
            // Each only as what it should be: a sandbox that could write your home may have
            // left a symlink there, to a file or folder (or another socket) it never saw.
            if let sock = host.environment["SSH_AUTH_SOCK"], sock.hasPrefix("/"), present(sock, as: S_IFSOCK) {
                volumes.append(sock + ":" + agentSocket)
                env.append("SSH_AUTH_SOCK=" + agentSocket)
            }
            if present(home + "/.gitconfig", as: S_IFREG, within: home) { volumes.append(home + "/.gitconfig:" + envHome + "/.gitconfig:ro") }
        }
        spec.volumes = volumes
        if let root = config.confinedTo {
            spec.confinedVolumes = ConfinedVolumes(file: config.project ?? root, root: root, volumes: config.confinedVolumes ?? [],
                                                   approved: config.confinedApproved ?? [:])
        }
        spec.env = env + options.env
        if config.home == .overlay {
            // Your home copy-on-write: its upper and work folders are the environment's.
            let layer = dir + "/home"
            try FS.mkdirs(layer + "/upper", mode: 0o700)
            try FS.mkdirs(layer + "/work", mode: 0o700)
            spec.homeOverlay = .overlay(lower: FS.realPath(home), target: envHome, layer: layer)
        }
        // The working directory: where you are, when the environment shows it at that path
        // (your home copy-on-write counts: nothing written in it reaches yours), else bound
        // for this session alone.
        var shown = volumes.compactMap { v -> String? in
            let f = v.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            return f.count >= 2 && Paths.absolute(f[0]) == f[1] ? f[1] : nil
        }
        if config.home == .overlay && envHome == home { shown.append(home) }
        let sessionHome = sessionUser == .keepID ? envHome : "/root"
        let cwdShown = shown.contains { host.cwd == $0 || host.cwd.hasPrefix($0 + "/") }
        // Not the home or a folder above it: that would show your real home over one of the
        // environment's own (private) or copy-on-write (overlay).
        let aboveHome = envHome == host.cwd || envHome.hasPrefix(host.cwd == "/" ? "/" : host.cwd + "/")
        if options.workdir == nil && !cwdShown && !(config.home != .host && aboveHome) {
            spec.sessionBind = .init(source: FS.realPath(host.cwd), target: host.cwd)
        }
        // The live sandbox is built from whichever session comes first: its mounts must not
        // depend on the session (the home is made there, whoever starts it).
        spec.workdir = envHome
        let tree = store.treeDir(config.image.tree) + "/rootfs"
        spec.command = try argv ?? loginShell(host: host, user: sessionUser, roots: [dir + "/upper", tree])
        spec.abiReport = abiReport

        var prepared = try RunPlanner.prepare(spec)
        for n in prepared.notes { global.note(n) }
        var plan = prepared.plan
        // plan.keeper stays: the holder makes the live sandbox's user namespace in the kept one
        // (env.c), as a warm run does; a session joins the environment's and never the keeper's.
        plan.workingDirectory = options.workdir ?? (cwdShown || plan.sessionBind != nil ? host.cwd : sessionHome)
        plan.live = .init(directory: dir, idleSeconds: config.idleSeconds)
        // The prompt marker names the environment.
        plan.environment = plan.environment.map {
            $0.hasPrefix("AZL_SHELL_IMAGE=") ? "AZL_SHELL_IMAGE=" + name : $0.hasPrefix("debian_chroot=") ? "debian_chroot=azl-shell " + name : $0
        }
        if config.user == .keepID, home != host.home {
            plan.environment = plan.environment.map { $0.hasPrefix("HOME=") ? "HOME=" + home : $0 }
        }
        if sessionUser == .root {
            plan.uid = 0
            plan.gid = 0
            plan.environment = plan.environment.map { $0.hasPrefix("HOME=") ? "HOME=/root" : $0 }
        }
        prepared.plan = plan
        try prepared.exec()
    }

    /// Whether PATH exists as a file of TYPE, recorded as an input of the plan: itself, not a
    /// symlink, or with WITHIN a symlink (a dotfile manager's) to such a file inside that folder,
    /// which whoever could plant the link there could read anyway.
    static func present(_ path: String, as type: mode_t, within: String? = nil) -> Bool {
        PlanInputs.file(path, .presence)
        var st = stat()
        guard lstat(path, &st) == 0 else { return false }
        if st.st_mode & S_IFMT == type { return true }
        guard st.st_mode & S_IFMT == S_IFLNK, let within else { return false }
        let target = FS.realPath(path)
        PlanInputs.file(target, .presence)
        return stat(target, &st) == 0 && st.st_mode & S_IFMT == type && target.hasPrefix(FS.realPath(Paths.absolute(within)) + "/")
    }

    /// Where a forwarded SSH agent's socket is inside.
    static let agentSocket = "/run/azl-shell/ssh-agent.sock"

    /// Your login shell when the environment has it (its layer, then the image), else bash, else
    /// sh; as a login shell.
    static func loginShell(host: HostFacts, user: EnvironmentConfig.User, roots: [String]) -> [String] {
        var candidates = ["/bin/bash", "/bin/sh"]
        if user == .keepID, let pw = getpwuid(host.uid), let s = pw.pointee.pw_shell.map({ String(cString: $0) }), s.hasPrefix("/") {
            candidates.insert(s, at: 0)
        }
        func present(_ p: String) -> Bool {
            var st = stat()
            return roots.contains { !$0.isEmpty && lstat($0 + p, &st) == 0 }
        }
        return [candidates.first(where: present) ?? "/bin/sh", "-l"]
    }
}

struct EnterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "enter", abstract: "An interactive login shell in an environment.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var session: SessionOptions
    @Argument(help: "The environment (default: the project's, in a folder with an azl-shell.toml).",
              completion: .custom { words, _, _ in Completion.environmentNames(words) })
    var name: String?

    func run() throws {
        let n = try name ?? EnterCommand.projectEnvironment(global: global)
        try EnvironmentSession.start(global: global, name: n, options: session, argv: nil)
    }

    /// The project's environment, named after its folder: made from the project file on first
    /// use (its image, options and setup layers, the project folder bound at its own path), and
    /// made again when the setup changed (its own layer starts over, as a changed image would).
    static func projectEnvironment(global: GlobalOptions) throws -> String {
        let project = try currentProject()
        var o = ProjectOptions()
        o.rootOption = global.root
        o.verbose = global.verbose
        o.progress = { e in if e.state == .running { global.say("azl-shell: setup step \(e.index)/\(e.count): \(e.run)") } }
        try ProjectTrust.requireHome(project)
        let pe = try ProjectPlanner.environment(project, options: o)
        let name = String(project.name.map { $0.isLetter || $0.isNumber || "_.-".contains($0) ? $0 : "-" }
            .drop { !($0.isLetter || $0.isNumber) }.prefix(64))
        guard (try? EnvironmentStore.validate(name)) != nil else {
            throw AZLError(.usage, "the project folder \(project.root) gives no environment name", hint: "create one: azl-shell create NAME --image ..., then azl-shell enter NAME")
        }
        let envs = EnvironmentStore(paths: global.paths)
        if FS.exists(envs.path(name)) {
            let old = try envs.load(name)
            if old.project == project.path && old.setupLayers == pe.layerKeys && old.image.digest == pe.image.digest { return name }
            guard old.project == project.path else {
                throw AZLError(.exists, "an environment named \(name) exists and is not this project's (\(project.path))", hint: "remove it (azl-shell rm \(name)) or enter another by name")
            }
            global.say("azl-shell: the project's setup changed: making environment \(name) again")
            try RmCommand.remove(name, from: envs, force: false)
        }
        let spec = pe.spec
        let user = EnvironmentConfig.User(rawValue: project.user ?? "keep-id") ?? .keepID
        let home = EnvironmentConfig.Home(rawValue: project.home ?? "private") ?? .private
        var config = EnvironmentConfig(name: name, image: pe.image, home: home, user: user,
                                       volumes: spec.volumes + [project.root + ":" + project.root], env: spec.env, kernel: spec.kernel,
                                       network: spec.network == .none ? "none" : "host", forward: true,
                                       idleSeconds: UInt32(RunPlanner.defaultKeeperIdle), created: Date())
        config.project = project.path
        config.setupLayers = pe.layerKeys
        if let c = spec.confinedVolumes { config.confinedTo = c.root; config.confinedVolumes = c.volumes; config.confinedApproved = c.approved }
        try envs.create(config)
        // prune keeps the layers this environment's record names.
        try ImageStore(paths: global.paths).registerLayerUser(envs.path(name) + "/config.json")
        global.say("azl-shell: created environment \(name) for \(project.path)")
        return name
    }
}

struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in an environment.",
        discussion: "Exit status: the command's own; 128+N if it died of signal N; 125 for azl-shell's own errors; 126 not executable; 127 not found.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var session: SessionOptions
    @Option(name: .customLong("abi-report"), help: ArgumentHelp("Write every syscall of this session's command that the target kernel refused (ENOSYS) or the policy denied (EPERM): name, program, calls, reason (before NAME, as every option).", valueName: "FILE"))
    var abiReport: String?
    @Argument(help: "The environment.", completion: .custom { words, _, _ in Completion.environmentNames(words) })
    var name: String
    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command and its arguments.", valueName: "CMD"))
    var command: [String] = []

    func run() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw AZLError(.usage, "no command given", hint: "azl-shell exec \(name) -- CMD ARGS..., or azl-shell enter \(name)") }
        try EnvironmentSession.start(global: global, name: name, options: session, argv: argv, abiReport: abiReport)
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List environments.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Row: Codable {
        var name, image, status: String
        var sessions: Int
        /// The live sandbox's pid 1 as the host sees it (running only).
        var pid: Int32?
        var size: Int64
        var created: Date
        var lastUsed: Date?
    }

    func run() throws {
        let envs = EnvironmentStore(paths: global.paths)
        let rows = envs.all().map { c -> Row in
            let live = envs.live(c.name)
            return Row(name: c.name, image: c.image.reference, status: live == nil ? "stopped" : "running",
                       sessions: live?.sessions.count ?? 0, pid: live?.initPid, size: envs.layerSize(c.name), created: c.created, lastUsed: envs.lastUsed(c.name))
        }
        if json { print(try Render.json(rows)); return }
        let f = ISO8601DateFormatter()
        var table = [["NAME", "IMAGE", "STATUS", "SIZE", "CREATED", "LAST USED"]]
        for r in rows {
            table.append([r.name, r.image, r.status == "running" ? "running (\(r.sessions) session\(r.sessions == 1 ? "" : "s"))" : "stopped",
                          Render.bytes(r.size), f.string(from: r.created), r.lastUsed.map { f.string(from: $0) } ?? "-"])
        }
        let widths = (0..<6).map { i in table.map { $0[i].count }.max() ?? 0 }
        for row in table {
            print(row.enumerated().map { i, s in i == 5 ? s : s.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop an environment's live sandbox (SIGTERM to everything inside, SIGKILL after 5 s).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The environments.", completion: .custom { words, _, _ in Completion.environmentNames(words) })
    var names: [String]

    func run() throws {
        let envs = EnvironmentStore(paths: global.paths)
        for n in names {
            _ = try envs.load(n)
            global.say(try envs.stop(n) ? "stopped \(n)" : "\(n) was not running")
        }
    }
}

struct RmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove environments and their layers.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .shortAndLong, help: "Stop one with sessions inside first.") var force = false
    @Argument(help: "The environments.", completion: .custom { words, _, _ in Completion.environmentNames(words) })
    var names: [String]

    func run() throws {
        let envs = EnvironmentStore(paths: global.paths)
        for n in names {
            try RmCommand.remove(n, from: envs, force: force)
            global.say("removed \(n)")
        }
    }

    /// Stop environment N (refused while sessions are inside, unless FORCE) and remove it.
    static func remove(_ n: String, from envs: EnvironmentStore, force: Bool) throws {
        let config = try envs.load(n)
        if let live = envs.live(n), !live.sessions.isEmpty, !force {
            throw AZLError(.inUse, "environment \(n) has \(live.sessions.count) session\(live.sessions.count == 1 ? "" : "s") inside (pid \(live.sessions.map(String.init).joined(separator: ", ")))",
                               hint: "leave them, or stop them with azl-shell rm --force \(n)")
        }
        // The live lock held from the last stop through the rename: no sandbox starts on the
        // folder in between (a session could start one after a stop), and one that takes the
        // lock after it finds its folder gone (env.c). Nothing then writes while it is removed.
        var held: FileLock?
        for _ in 0..<100 where held == nil {
            try envs.stop(n)
            held = try FileLock(tryPath: envs.path(n) + "/live.lock", mode: .exclusive)
        }
        guard let held else {
            throw AZLError(.inUse, "environment \(n): its live sandbox keeps starting again", hint: "leave its sessions, then azl-shell rm --force \(n)")
        }
        let left = try envs.remove(n)
        held.unlock()
        if let left { try removeInUserNamespace(left, config: config) }
    }

    /// What only a user namespace of the environment's map can remove (files of a package's ids).
    static func removeInUserNamespace(_ path: String, config: EnvironmentConfig) throws {
        var request = RunRequest(rootfs: "/", imageName: config.name)
        request.user = config.user.rawValue
        var builder = PlanBuilder(request: request, host: HostFacts.current())
        var plan = try builder.build()
        plan.removeTree = path
        // A child, not an exec: the caller goes on (the next name, a recreated environment).
        let status: Int32
        do { status = Launcher.wait(try Launcher.spawn(encodedPlan: plan.encoded())) } catch let e as LaunchError { throw AZLError(e) }
        guard status == 0 else {
            throw AZLError(.io, "cannot remove \(path) (status \(status))", hint: "remove it with: podman unshare rm -rf \(path), or azl-shell rm again")
        }
    }
}

extension EnvironmentStore {
    /// Send the live sandbox's holder one request and read its answer; nil when none serves.
    /// The socket is in the store, out of every sandbox's reach, and the peer must be this user
    /// (Sources/SandboxRuntime/env.c).
    func request(_ name: String, _ req: UInt8) -> String? {
        var buf = [CChar](repeating: 0, count: 8192)
        guard azl_env_request(path(name), CChar(bitPattern: req), &buf, buf.count) == 0 else { return nil }
        return String(cString: buf)
    }

    func live(_ name: String) -> Live? { request(name, UInt8(ascii: "q")).flatMap(Live.init(reply:)) }

    /// Stop the live sandbox (SIGTERM to everything inside, SIGKILL after the grace period) and
    /// wait until it is gone; false when none was running.
    @discardableResult
    func stop(_ name: String) throws -> Bool {
        guard request(name, UInt8(ascii: "s")) != nil else { return false }
        // The holder keeps the lock until the sandbox (and so its overlay) is gone.
        let lock = try FileLock(path: path(name) + "/live.lock", mode: .shared)
        lock.unlock()
        return true
    }
}
