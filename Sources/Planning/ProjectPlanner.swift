import Core
import Foundation
import Manifests
import Registry
import Sandbox
import Store

/// How a verb uses a project: `run` and `setup` (and `enter`, issue 12) all go through
/// `ProjectPlanner.environment`.
public struct ProjectOptions {
    /// Fail on any drift of the lock instead of rewriting it; nil: when CI=true.
    public var frozen: Bool?
    /// Rebuild every setup layer (`setup --refresh`).
    public var refresh = false
    /// Re-resolve the image's digest (`lock --update`).
    public var updateLock = false
    /// Build missing layers; false: only say which are missing (`lock`).
    public var build = true
    /// `--image` on the command line: the project's setup on that image, no lock used.
    public var imageOverride: String?
    /// Where steps' output goes (setup: stdout; run: stderr, so the command's stdout stays its own).
    public var stepOutput: Int32 = 2
    public var rootOption: String?
    public var pull = PullSettings()
    public var verbose = false
    /// Each step's progress.
    public var progress: (ProjectPlanner.StepEvent) -> Void = { _ in }
    public init() {}
}

/// A project's environment resolved: the image (pinned by the lock), the setup layers above
/// it (built if missing), and the project's options as a RunSpec with no command yet.
public struct ProjectEnvironment {
    public var project: ProjectFile
    /// Source, layers, env, volumes, network, user, kernel and platform of the project; callers
    /// lay their own command-line options over it (they win) and set the command.
    public var spec: RunSpec
    public var image: ImageRecord
    /// Bottom to top.
    public var layerKeys: [Digest]
    public var lock: ProjectLock
}

public enum ProjectPlanner {
    public struct StepEvent: Sendable {
        public enum State: String, Sendable { case cached, running, built, failed, missing }
        public var index: Int
        public var count: Int
        public var run: String
        public var state: State
        public var key: Digest
        public var status: Int32?
    }

    /// The project file of DIRECTORY or an ancestor, parsed; nil when there is none. What was
    /// looked at is recorded into the recording under way (`PlanInputs.record`).
    public static func find(from directory: String) throws -> ProjectFile? {
        try ProjectFile.find(from: directory).map(ProjectFile.load)
    }

    /// The project's environment, ready to run a command in (`run`, `enter`): image pinned by
    /// the lock (written or checked), setup layers built where missing, the layers' locks to
    /// hold while it runs in `spec.holdShared`. What it reads (the lock, the steps' inputs, the
    /// layers) is recorded into the recording under way: a caller that plans a run on it records
    /// this into the `spec.inputs` it then plans with (`PlanInputs.record`).
    public static func environment(_ project: ProjectFile, options: ProjectOptions) throws -> ProjectEnvironment {
        let frozen = options.frozen ?? (PlanInputs.variable("CI") == "true")
        let paths = Paths.resolve(rootOption: options.rootOption)
        let store = try ImageStore(paths: paths)
        guard let imageName = options.imageOverride ?? project.image else {
            throw AZLError(.usage, "\(project.path) names no image", hint: "add image = \"NAME\" to it or use --image")
        }
        var pull = options.pull
        pull.platform = pull.platform ?? project.platform
        let platform = try pull.platform.map(Platform.parse) ?? Platform.host
        let platformKey = platform.description
        let useLock = options.imageOverride == nil
        let old = useLock ? try ProjectLock.load(project.lockPath) : nil
        func drift(_ what: String) -> AZLError {
            AZLError(.drift, "\(project.lockPath): \(what)",
                     hint: "run `azl-shell lock` (--update to follow the tag) and commit azl-shell.lock; --frozen is implied by CI=true")
        }
        if frozen && useLock && old == nil { throw drift("missing (--frozen needs a lock written by `azl-shell lock`)") }

        // The image: the locked digest while the file's image is the one it was resolved from.
        var record: ImageRecord?
        if let old, old.image == imageName, !options.updateLock, let d = old.digests[platformKey] {
            record = store.record(digest: d)
            // Not stored (a fresh machine): a registry image is pulled by the locked digest.
            if record == nil, (try? Puller.isPullable(imageName)) == true, let (ref, _) = try? Puller.resolve(imageName) {
                record = try? Puller(pull).findOrPull(ref.name + "@" + d.description, store: store)
            }
            if record == nil && frozen { throw drift("image \(imageName) at \(d) (locked for \(platformKey)) is neither in the store nor to be pulled") }
        } else if frozen, let old {
            throw drift(old.image != imageName ? "`image` is \(imageName) in the project file, \(old.image) in the lock"
                        : options.updateLock ? "--update and --frozen ask for opposite things" : "no digest for \(platformKey)")
        }
        if record == nil { record = try RunPlanner.storedRecord(imageName, pull: pull, store: store) }
        let image = record!

        // The layers' keys, bottom to top; each from its parent's, so a changed step or input
        // changes its key and every key above it.
        var keys: [Digest] = []
        var inputs: [[String: Digest]] = []
        for (i, step) in project.setup.enumerated() {
            let ins = try inputDigests(step, index: i, of: project)
            keys.append(layerKey(parent: keys.last ?? image.digest, step: step.run, inputs: ins))
            inputs.append(ins)
        }
        let kernelChoice = try KernelChoice.choose(spec: project.kernel, manifestName: image.manifest,
                                                   rootfs: store.treeDir(image.tree) + "/rootfs")
        var lock = ProjectLock(image: imageName)
        lock.digests = old?.image == imageName ? old?.digests ?? [:] : [:]
        lock.digests[platformKey] = image.digest
        lock.kernel = kernelChoice.profile.name
        lock.steps = zip(project.setup, keys).map { ProjectLock.Step(run: $0.run, key: $1) }
        if frozen, let old, old != lock {
            if let i = keys.indices.first(where: { $0 >= old.steps.count || old.steps[$0].key != keys[$0] }) {
                throw drift("setup step \(i + 1) (\(project.path):\(project.setup[i].line)) changed since the lock was written")
            }
            if old.steps.count != keys.count { throw drift("the project file has \(keys.count) setup steps, the lock \(old.steps.count)") }
            throw drift("the kernel profile is \(lock.kernel ?? "-"), the lock says \(old.kernel ?? "none")")
        }
        if useLock {
            // Pinned before the lock names it, so the digest stays findable after a retag.
            try store.pin(image)
            if old != lock { try FS.atomicWrite(Data(lock.text.utf8), to: project.lockPath, mode: 0o644) }
            store.registerLayerUser(project.lockPath)
            PlanInputs.file(project.lockPath, .content)
        }

        var spec = RunSpec(source: .record(image))
        spec.env = project.env
        // The file lies where sandboxes write: its volumes stay inside its folder unless trusted.
        // A trusted one's volumes outside the folder only where they resolved when it was trusted.
        if !project.volumes.isEmpty {
            spec.confinedVolumes = ConfinedVolumes(file: project.path, root: project.root, volumes: project.volumes,
                                                   approved: ProjectTrust.approval(project) ?? [:])
        }
        spec.user = project.user
        spec.kernel = project.kernel
        if let n = project.network { spec.network = RunRequest.Network(rawValue: n) ?? .host }
        spec.rootOption = options.rootOption
        spec.pull = pull
        spec.verbose = options.verbose

        var rebuilt = false
        for (i, key) in keys.enumerated() {
            let event = { (state: StepEvent.State, status: Int32?) in
                options.progress(StepEvent(index: i + 1, count: keys.count, run: project.setup[i].run, state: state, key: key, status: status))
            }
            if store.hasLayer(key) && !options.refresh && !rebuilt {
                event(.cached, nil)
            } else if !options.build {
                event(.missing, nil)
            } else {
                try build(step: i, of: project, key: key, parent: keys.indices.contains(i - 1) ? keys[i - 1] : image.digest,
                          inputs: inputs[i], below: spec, store: store, replace: options.refresh || rebuilt, output: options.stepOutput, event: event)
                rebuilt = rebuilt || options.refresh
            }
            spec.layers.append(store.layerRoot(key))
            spec.holdShared.append(store.layerLockPath(key))
            // A layer pruned since is a new plan.
            PlanInputs.file(store.layerDir(key) + "/meta.json", .presence)
        }
        return ProjectEnvironment(project: project, spec: spec, image: image, layerKeys: keys, lock: lock)
    }

    /// One step, run once (a second builder of the same key waits for the first and uses its
    /// layer): as root, on top of the layers below, with the project folder bound and current
    /// as in `run`; what it wrote becomes the layer KEY when it exits 0, else nothing is kept.
    static func build(step i: Int, of project: ProjectFile, key: Digest, parent: Digest, inputs: [String: Digest],
                      below: RunSpec, store: ImageStore, replace: Bool, output: Int32,
                      event: (StepEvent.State, Int32?) -> Void) throws {
        let lock = try store.layerLock(key, .exclusive)
        defer { lock.unlock() }
        if store.hasLayer(key) && !replace { return event(.cached, nil) }
        event(.running, nil)
        let scratch = try store.layerScratch()
        defer { scratch.discard() }
        var spec = below
        spec.upper = .init(directory: scratch.path + "/root", work: scratch.path + "/work")
        spec.command = ["/bin/sh", "-c", project.setup[i].run]
        spec.user = "root"
        spec.workdir = project.root
        // Its own recording: what the step's plan read is not the project run's input.
        spec.inputs = PlanInputs()
        let here = FileManager.default.currentDirectoryPath
        guard chdir(project.root) == 0 else { throw AZLError.errno(errno, "cannot enter the project folder", path: project.root) }
        defer { _ = chdir(here) }
        // Steps run unattended: no terminal to read from, the same in CI as at a desk.
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(null) }
        let status = try RunPlanner.prepare(spec).run(stdin: null, stdout: output, stderr: output)
        guard status == 0 else {
            event(.failed, status)
            throw AZLError(.setupFailed, "setup step \(i + 1) of \(project.path):\(project.setup[i].line) (\(project.setup[i].run)) exited with status \(status); nothing of it was kept",
                           hint: "fix the step; the steps before it stay cached")
        }
        if replace, store.hasLayer(key) { try store.dropLayer(key) }
        try store.commitLayer(key, from: scratch, meta: LayerMeta(parent: parent, step: project.setup[i].run, inputs: inputs, bytes: 0, created: Date()))
        event(.built, nil)
    }

    /// What identifies a layer: its parent, the step's text and its inputs' contents.
    static func layerKey(parent: Digest, step: String, inputs: [String: Digest]) -> Digest {
        var s = "azl-shell setup layer v1\n\(parent)\n\(step.utf8.count)\n\(step)\n"
        for (path, d) in inputs.sorted(by: { $0.key < $1.key }) { s += "\(path)\0\(d)\n" }
        return Digest.of(Data(s.utf8))
    }

    /// The files a step's `inputs` globs match (relative path → content digest), each recorded
    /// as read; a glob that matches no file is an error naming it.
    static func inputDigests(_ step: ProjectFile.Step, index: Int, of project: ProjectFile) throws -> [String: Digest] {
        var out: [String: Digest] = [:]
        for pattern in step.inputs {
            let full = project.root + "/" + pattern
            // A glob: the folder a new match would appear in (the deepest one it names as is);
            // a plain path is followed as a file (a build writing beside it is no new input).
            let fixed = full.split(separator: "/").prefix { !$0.contains(where: { "*?[".contains($0) }) }
            if fixed.count < full.split(separator: "/").count { PlanInputs.file("/" + fixed.joined(separator: "/"), .content) }
            else { PlanInputs.file(full, .content) }
            var g = glob_t()
            defer { globfree(&g) }
            var matches: [String] = []
            if glob(full, 0, nil, &g) == 0 {
                for k in 0..<Int(g.gl_pathc) { if let p = g.gl_pathv[k] { matches.append(String(cString: p)) } }
            }
            let files = matches.filter { var st = stat(); return stat($0, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG }
            guard !files.isEmpty else {
                throw AZLError(.notFound, "setup step \(index + 1) of \(project.path):\(step.line): input \(pattern) matches no file in \(project.root)",
                               hint: "create it or fix the step's `inputs`")
            }
            for f in files {
                // A symlink a sandbox left in the project must not have the host read (and hash
                // into the lock) a file outside it.
                let real = FS.realPath(f), root = FS.realPath(project.root)
                guard real.hasPrefix(root + "/") else {
                    throw AZLError(.untrusted, "setup step \(index + 1) of \(project.path):\(step.line): input \(f) leads outside the project folder (to \(real))",
                                   hint: "inputs are files of the project; remove the symlink or copy the file in")
                }
                PlanInputs.file(f, .content)
                out[String(f.dropFirst(project.root.count + 1))] = Digest.of(try FS.readFile(f))
            }
        }
        return out
    }
}
