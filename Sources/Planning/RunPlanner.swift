import CLinux
import Core
import Foundation
import Kernel
import Sandbox
import SandboxLaunch
import SandboxRuntime
import Store

/// What a verb asks to run, in its own terms: which image (or tree), which command, which
/// options. Every verb that starts a sandbox (`run`, a matrix target, a package test, a setup
/// step, an environment) fills one of these and hands it to `RunPlanner.prepare`.
@dynamicMemberLookup
public struct RunSpec {
    public enum Source: Sendable {
        /// NAME[:TAG], an image id, a short name or a registry reference (pulled on first use).
        case image(String)
        /// An unpacked tree outside the store (absolute).
        case rootfs(String)
        /// A stored image as this record says (an environment's, pinned at its `create`).
        case record(ImageRecord)
    }

    public var source: Source
    /// The command and the options shaping its root (`spec.command`, `spec.volumes`, ...).
    public var options = RunOptions()
    public subscript<T>(dynamicMember key: WritableKeyPath<RunOptions, T>) -> T {
        get { options[keyPath: key] }
        set { options[keyPath: key] = newValue }
    }
    /// `--kernel`, `--cap-add`, `--cap-drop`.
    public var kernel: String?
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    /// `--root` (nil: $AZL_SHELL_ROOT or the XDG default).
    public var rootOption: String?
    /// How an image that is not stored yet is pulled.
    public var pull = PullSettings()
    /// `--abi-report FILE`: what the target kernel refused (docs/kernel.md).
    public var abiReport: String?
    /// Keep the plan for the next run of this process's command line. Only `run` and `exec`
    /// may: the C side finds the cache folder from their option table (plan_cache.c).
    public var cacheForCommandLine = false
    /// What planning this run read of the host (`PlanInputs.record`); the plan cache keys its
    /// entry on it. A caller that reads host facts before it plans (a project file, its lock, a
    /// step's inputs, an environment's config) records them here first.
    public var inputs = PlanInputs()
    /// The invoking user's facts when the caller already read them (an environment's session),
    /// so they are read once; nil: read while planning.
    public var host: HostFacts?
    /// Lock files held shared while the sandbox runs (the setup layers it stacks), as the image's is.
    public var holdShared: [String] = []
    /// What other requests of the same batch (a matrix's targets) planned already: the store,
    /// the image records and their opened trees, the host's facts, kernel choices and policies.
    public var shared: SharedPlanning?
    /// An environment's session: its copy-on-write home (an `.overlay` mount, put before the
    /// binds at or below its target), and the working directory to bind for this session alone
    /// (kept when `run` would bind it: not a system folder, the image or inside a store).
    public var homeOverlay: SandboxPlan.Mount?
    public var sessionBind: SandboxPlan.SessionBind?

    public init(source: Source) { self.source = source }

    public var paths: Paths { Paths.resolve(rootOption: rootOption) }
}

/// Planning's results that requests of one batch share (`RunSpec.shared`), each made once:
/// a matrix of targets over one image reads its record, opens its tree and builds each kernel's
/// policy once, not once a target. Safe from several planning threads; two threads may both
/// make a value the first time (the first kept), never wait on each other.
public final class SharedPlanning: @unchecked Sendable {
    private let lock = NSLock()
    // Keys are values, not strings: interpolating a struct into a string goes through reflection.
    private var values: [[AnyHashable]: Any] = [:]
    public init() {}

    func value<T>(_ key: [AnyHashable], _ make: () throws -> T) rethrows -> T {
        if let v = lock.withLock({ values[key] }) as? T { return v }
        let v = try make()
        return lock.withLock {
            if let first = values[key] as? T { return first }
            values[key] = v
            return v
        }
    }
}

extension RunSpec {
    /// `make()`, or the batch's value for KEY.
    func shared<T>(_ key: [AnyHashable], _ make: () throws -> T) rethrows -> T {
        guard let shared else { return try make() }
        return try shared.value(key, make)
    }
}

/// A plan ready to carry out, with what must stay alive until it starts: the image's shared
/// lock (so `rmi`/`prune` wait), and for `run` the plan cache entry to write.
public struct PreparedRun {
    public var plan: SandboxPlan
    /// The stored image opened for this run (nil for a tree outside the store).
    public let image: RunnableImage?
    public let kernel: KernelChoice
    /// The image's platform (a foreign one runs under qemu-user).
    public let platform: RunPlatform
    /// Said with --verbose.
    public var notes: [String]
    var keepLocked: [String]
    var cache: PlanCache?
    var dependencies: [PlanCache.Dependency]

    /// Replace this process with the sandbox (`run`).
    public func exec() throws -> Never {
        try withExtendedLifetime(image) { try plan.exec(keepLocked: keepLocked, cache: cache, dependencies: dependencies) }
    }

    /// Start the sandbox as a child with this stdio; `Launcher.wait` gives its exit status by
    /// `run`'s rules (125/126/127/128+N).
    public func spawn(stdin: Int32 = 0, stdout: Int32 = 1, stderr: Int32 = 2) throws -> pid_t {
        do {
            return try withExtendedLifetime(image) {
                try Launcher.spawn(encodedPlan: plan.encoded(), stdin: stdin, stdout: stdout, stderr: stderr, keepLocked: keepLocked)
            }
        } catch let e as LaunchError {
            throw AZLError(e)
        }
    }

    /// Spawn and wait: the exit status by `run`'s rules.
    public func run(stdin: Int32 = 0, stdout: Int32 = 1, stderr: Int32 = 2) throws -> Int32 {
        Launcher.wait(try spawn(stdin: stdin, stdout: stdout, stderr: stderr))
    }
}

/// The one place a request becomes a plan: image lookup (and pull on first use), the kernel
/// profile and policy, the state folders to guard, the plan itself, the user namespace
/// keeper, and for `run` the plan cache's entry and the files it depends on.
public enum RunPlanner {
    public static func prepare(_ spec: RunSpec) throws -> PreparedRun {
        // Everything planning reads of the environment and the host's files is recorded: the
        // plan cache keys its entry on exactly that (PlanInputs).
        var prepared = try spec.inputs.record { try plan(spec) }
        // Kept for the next run of this command line, unless this run says more than a replay
        // would (--verbose) or runs a tree outside the store (--rootfs: it may change).
        if spec.cacheForCommandLine, prepared.image != nil, !spec.verbose,
           var c = PlanCache.forThisProcess(arguments: CommandLine.arguments), c.directory == spec.paths.cache + "/plans" {
            c.seenBeforePlanning = spec.inputs.seenBeforeReading
            c.variables = spec.inputs.variables
            prepared.cache = c
            prepared.dependencies = planDependencies(prepared.plan, inputs: spec.inputs, cache: spec.paths.cache)
        }
        return prepared
    }

    static func plan(_ spec: RunSpec) throws -> PreparedRun {
        let host = spec.host ?? spec.shared(["host"]) { HostFacts.current() }
        let paths = spec.paths
        var notes: [String] = []
        var request: RunRequest
        var keepLocked: [String] = []
        var opened: RunnableImage?
        switch spec.source {
        case .rootfs(let rootfs):
            let abs = Paths.absolute(rootfs)
            guard FS.isDirectory(abs) else { throw AZLError(.notFound, "--rootfs \(rootfs): not a directory") }
            request = RunRequest(rootfs: abs, imageName: abs.split(separator: "/").last.map(String.init) ?? "azl-shell")
        case .image, .record:
            let store = try spec.shared(["store", paths.root]) { try ImageStore(paths: paths) }
            // Before the record is read: records are written by a rename into this folder, so a
            // pull or retag from now on changes it.
            PlanInputs.file(store.paths.images, .content) { PlanCache.identity(of: store.paths.images, contentToo: true) }
            let record: ImageRecord
            if case .image(let name) = spec.source {
                record = try spec.shared(["record", name, spec.pull.platform]) { try storedRecord(spec, store: store) }
            } else {
                record = try storedRecord(spec, store: store)
            }
            // Stored but its tree gone: said as such, not pulled under that name.
            let img = try spec.shared(["tree", record.tree]) { try store.openForRun(record) }
            opened = img
            keepLocked.append(img.lock.path)
            keepLocked += spec.holdShared
            request = RunRequest(rootfs: img.rootfs, imageName: img.record.name)
            let c = img.record.config
            request.imageEnv = c.env
            request.imageWorkingDir = c.workingDir
            request.imageUser = c.user
            request.entrypoint = c.entrypoint
            request.imageCmd = c.cmd
            request.imageReference = img.record.reference
        }
        request.options = spec.options
        let shown = [host.cwd] + ((spec.confinedVolumes?.volumes ?? []) + spec.volumes).map {
            String($0.split(separator: ":", omittingEmptySubsequences: false).first ?? "")
        }
        request.stateFolders = spec.shared(["state folders", spec.rootOption, shown]) { stateFolders(root: spec.rootOption, shown: shown) }

        // `--platform` is the pull's (which image of an index) and the run's (the stored image must be for it).
        let platform = try RunPlatform.resolve(image: opened?.record.reference ?? request.imageName, recorded: opened?.record.architecture,
                                               rootfs: request.rootfs, requested: spec.pull.platform)
        // The kernel profile and the security policy (docs/kernel.md). A warm run reads the
        // seccomp program from the cache instead of compiling it with libseccomp.
        let choice = try spec.shared(["kernel", spec.kernel, opened?.record.manifest, request.rootfs]) {
            try KernelChoice.choose(spec: spec.kernel, manifestName: opened?.record.manifest, rootfs: request.rootfs)
        }
        let policy = try spec.shared(["policy", choice.profile, platform.kernelTarget, spec.capAdd, spec.capDrop, spec.abiReport != nil, paths.cache]) {
            try KernelPolicy.build(profile: choice.profile, target: platform.kernelTarget, capsAdd: spec.capAdd,
                                   capsDrop: spec.capDrop, report: spec.abiReport != nil, cacheDirectory: paths.cache + "/seccomp")
        }
        request.kernel = policy.sandboxSettings(abiReport: spec.abiReport.map(Paths.absolute))
        notes.append(choice.note ?? "kernel profile \(choice.profile.name) (uname -r \(choice.profile.release)), from \(choice.chosenBy)")

        var builder = PlanBuilder(request: request, host: host)
        var plan = try builder.build()
        plan.binfmt = platform.binfmt
        if let o = spec.homeOverlay {
            let t = o.target
            plan.mounts.insert(o, at: plan.mounts.firstIndex { $0.target == t || $0.target.hasPrefix(t + "/") } ?? plan.mounts.endIndex)
        }
        if let b = spec.sessionBind {
            let hidden = plan.guards.first { $0.kind == .hide && (b.source == $0.path || b.source.hasPrefix($0.path + "/")) }
            if let g = hidden {
                notes.append("not binding the current directory \(b.target): it is inside azl-shell's own state (\(g.path))")
            } else if PlanBuilder.canBindWorkingDirectory(b.source, rootfs: plan.rootfs) {
                plan.sessionBind = b
            }
        }
        notes += builder.notes
        plan.keeper = try userNamespaceKeeper(for: plan, cache: paths.cache)
        #if DEBUG
        // Tests only: planning that reads one more variable or file (named by these), to show
        // that the cache follows what planning reads with no edit of the cache's code.
        if let name = PlanInputs.variable("AZL_SHELL_TEST_READ_VARIABLE") { _ = PlanInputs.variable(name) }
        if let file = PlanInputs.variable("AZL_SHELL_TEST_READ_FILE") { PlanInputs.file(file, .content) }
        #endif
        return PreparedRun(plan: plan, image: opened, kernel: choice, platform: platform, notes: notes, keepLocked: keepLocked,
                           cache: nil, dependencies: [])
    }

    /// The image record a spec names: the one it carries, or the store's for its name, pulled
    /// first when it is not stored (a registry reference or a known short name).
    static func storedRecord(_ spec: RunSpec, store: ImageStore) throws -> ImageRecord {
        switch spec.source {
        case .record(let r): return r
        case .rootfs(let r): throw AZLError(.internal, "--rootfs \(r) has no image record")
        case .image(let image): return try storedRecord(image, pull: spec.pull, store: store)
        }
    }

    /// The store's record of IMAGE, pulled first when it is not stored (a registry reference or
    /// a known short name); a name that is neither is the lookup's not-found error.
    public static func storedRecord(_ image: String, pull: PullSettings, store: ImageStore) throws -> ImageRecord {
        do { return try store.lookup(image) } catch let missing as AZLError where missing.kind == .notFound {
            guard let pulled = try Puller(pull).findOrPull(image, store: store) else { throw missing }
            return pulled
        }
    }

    /// Seconds a kept user namespace waits for the next run (AZL_SHELL_USERNS_IDLE; 0: keep none).
    public static let defaultKeeperIdle: UInt32 = 300

    /// The keeper of this plan's user namespace (Sources/SandboxRuntime/keeper.c): only for a
    /// map the setuid helpers write (a one-line map costs nothing to write), one per map, its
    /// state in the cache folder. nil where that folder is not this user's alone.
    static func userNamespaceKeeper(for plan: SandboxPlan, cache: String) throws -> SandboxPlan.UserNamespaceKeeper? {
        guard plan.uidMap.helper != nil, plan.gidMap.helper != nil else { return nil }
        var idle = defaultKeeperIdle
        if let v = PlanInputs.variable("AZL_SHELL_USERNS_IDLE") {
            guard let n = UInt32(v) else {
                throw AZLError(.usage, "AZL_SHELL_USERNS_IDLE=\(v): not a number of seconds", hint: "0 keeps no user namespace between runs")
            }
            idle = n
        }
        guard idle > 0, let program = try? Launcher.helperPath() else { return nil }
        let dir = cache + "/userns"
        guard (try? FS.mkdirs(dir, mode: 0o700)) != nil else { return nil }
        var st = stat()
        guard stat(dir, &st) == 0, st.st_uid == getuid(), st.st_mode & 0o022 == 0 else { return nil }
        // One keeper per map: keep-id and the default map, or a changed /etc/subuid, never share one.
        let maps = [plan.uidMap, plan.gidMap].map { $0.ranges.map { "\($0.inside):\($0.outside):\($0.count);" }.joined() + "/" }
        let hex = String(Array(maps.joined().utf8).withUnsafeBytes { azl_fnv1a($0.baseAddress, $0.count) }, radix: 16)
        // The state format's version in the name: a keeper of an older build (its file in the
        // old format, which this build cannot join) never stops this one from keeping its own.
        return .init(program: program, stateFile: dir + "/map-v4-" + String(repeating: "0", count: 16 - hex.count) + hex,
                     idleSeconds: idle)
    }

    /// The user's state folders (`Paths.stateFolders`). One that does not exist yet cannot be
    /// hidden, and a command could create it (a store or rootfs-manifests of its own making, for
    /// a later run to use): those that a bind of this run would show are made now, empty, so
    /// they are hidden. Not caches: whatever is in one is believed only for its MAC.
    public static func stateFolders(root: String?, shown: [String]) -> [(path: String, hide: Bool)] {
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
    static func planDependencies(_ plan: SandboxPlan, inputs: PlanInputs, cache: String) -> [PlanCache.Dependency] {
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
        for case .overlay(let lower, _, let layer) in plan.mounts { deps += [.resolved(lower), .resolved(layer)] }
        if let b = plan.sessionBind { deps.append(.resolved(b.source)) }
        deps += plan.guards.map { .resolved($0.path) }
        // Without its folder, a replayed plan could never start a keeper again.
        if plan.keeper != nil { deps.append(.presence(cache + "/userns")) }
        // Which file a path is, is part of its content's identity and of its resolved one: a
        // presence check more of the same path costs a warm run a stat for nothing.
        let stronger = Set(deps.compactMap { d -> String? in
            switch d { case .content(let p), .resolved(let p): return p; case .presence: return nil }
        })
        return deps.filter { if case .presence(let p) = $0 { return !stronger.contains(p) }; return true }
    }
}
