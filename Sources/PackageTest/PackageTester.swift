import CLinux
import Core
import Foundation
import Manifests
import Planning

/// `azl-shell pkgtest`: for each target, one sandbox over a fresh ephemeral root runs the
/// driver (install, verify, libraries, smoke, remove), and its results folder becomes rows.
public struct PackageTester {
    /// Host paths of the package files (absolute).
    public var packages: [String]
    public var targets: [Target]
    public var smoke: String?
    public var offline = false
    public var jobs = 1
    /// Where every target's folder of logs goes (exists).
    public var logs: String
    /// What every target's run shares: --root, --verbose, pull settings.
    public var base: RunSpec
    public var runner: TargetRunner = BoundedTargetRunner()

    /// Where the driver sees its results folder, and the package files' folders.
    static let resultsInside = "/azl-pkgtest"
    static let packagesInside = "/azl-pkgtest-packages"

    public init(packages: [String], targets: [Target], logs: String, base: RunSpec) {
        self.packages = packages; self.targets = targets; self.logs = logs; self.base = base
    }

    /// Planning reads process-wide state (PlanInputs): one target plans at a time, they run at once.
    private static let planning = NSLock()

    public func run() -> Report {
        let indexed = Array(targets.enumerated())
        let rows = runner.run(targets, jobs: jobs) { t in
            let i = indexed.first { $0.element == t }!.offset
            return test(t, folder: logs + "/" + String(i + 1) + "-" + Self.folderName(t.label))
        }
        return Report(rows: rows.flatMap { $0 }, logs: logs)
    }

    static func folderName(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
    }

    /// The package files the sandbox sees, and the binds that show them (read-only).
    func bound() -> (inside: [String], volumes: [String]) {
        var dirs: [String] = []
        var inside: [String] = []
        for p in packages {
            let dir = (p as NSString).deletingLastPathComponent
            if !dirs.contains(dir) { dirs.append(dir) }
            inside.append("\(Self.packagesInside)/\(dirs.firstIndex(of: dir)! + 1)/\((p as NSString).lastPathComponent)")
        }
        return (inside, dirs.enumerated().map { "\($0.element):\(Self.packagesInside)/\($0.offset + 1):ro" })
    }

    func failed(_ target: Target, _ why: String) -> [StepResult] {
        Step.allCases.map {
            $0 == .install ? StepResult(target: target.label, step: $0, outcome: .failed, message: why)
                : StepResult(target: target.label, step: $0, outcome: .skipped, message: "not run: an earlier step failed")
        }
    }

    func test(_ target: Target, folder: String) -> [StepResult] {
        do {
            // A fresh folder: one an earlier target's sandbox wrote into could hold a symlink
            // where sandbox.log is opened for writing, or a status for a step not reached now.
            try FS.mkdirs(logs)
            if mkdir(folder, 0o755) != 0 {
                if errno == EEXIST {
                    throw AZLError(.exists, "\(folder) exists (an earlier pkgtest's logs?)", hint: "give --logs a new folder, or remove that one")
                }
                throw AZLError.errno(errno, "cannot create", path: folder)
            }
            let (inside, volumes) = bound()
            var spec = base
            spec.source = .image(target.image)
            spec.pull.platform = target.platform ?? base.pull.platform
            spec.kernel = target.kernel ?? base.kernel
            spec.network = offline ? .none : .host
            spec.volumes = volumes + ["\(folder):\(Self.resultsInside)"]
            spec.workdir = "/"
            spec.command = ["/bin/sh", Self.resultsInside + "/driver.sh"]
            Self.planning.lock()
            let prepared: PreparedRun
            do { defer { Self.planning.unlock() }; prepared = try RunPlanner.prepare(spec) }

            let formats = packages.map { try? PackageFormat.of($0) }
            let known = Self.knownImage(manifestName: prepared.image?.record.manifest, rootfs: prepared.plan.rootfs)
            let rootfd = open(prepared.plan.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)
            defer { if rootfd >= 0 { close(rootfd) } }
            let has: (String) -> Bool = { path in
                let fd = azl_openat2(rootfd, String(path.dropFirst()), O_PATH | O_CLOEXEC, 0, AZL_RESOLVE_IN_ROOT)
                if fd >= 0 { close(fd) }
                return fd >= 0
            }
            // The image's own format first; a package of a format the image cannot install is
            // another target's.
            let choices = Array(Set(formats.compactMap { $0 })).sorted { $0.rawValue < $1.rawValue }.compactMap { f in
                ManagerChoice.choose(f, manifest: known.map { ($0.short, $0.packageManager) }, has: has)
            }
            guard let choice = choices.first(where: { $0.chosenBy.hasPrefix("manifest") }) ?? choices.first else {
                let kinds = Array(Set(formats.compactMap { $0?.rawValue })).sorted().map { "." + $0 }.joined(separator: ", ")
                let looked = Set(formats.compactMap { $0 }).flatMap { $0.managers.map(\.program) }.sorted().joined(separator: ", ")
                return failed(target, "\(target.image) has no tool that installs \(kinds) (looked for \(looked))")
            }
            let mine = zip(formats, inside).filter { $0.0 == choice.manager.format }.map(\.1)
            let driver = Driver(manager: choice.manager, packages: mine, offline: offline, smoke: smoke,
                                results: Self.resultsInside, binds: [FileManager.default.currentDirectoryPath, Self.packagesInside])
            try FS.atomicWrite(Data(driver.script.utf8), to: folder + "/driver.sh", mode: 0o755)

            let log = open(folder + "/sandbox.log", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard log >= 0, null >= 0 else { throw AZLError.errno(errno, "cannot open", path: folder + "/sandbox.log") }
            defer { close(log); close(null) }
            let status = try prepared.run(stdin: null, stdout: log, stderr: log)
            var why: String?
            if status != 0 {
                let text = Results.text(in: folder, "sandbox.log") ?? ""
                why = "the sandbox ended with status \(status)" + (text.split(separator: "\n").last.map { ": \($0)" } ?? "")
            }
            var rows = Results.read(folder: folder, target: target.label, sandboxFailure: why)
            if rows[0].outcome == .passed {
                rows[0].message = "with \(choice.manager.rawValue) (\(choice.chosenBy))"
            }
            return rows
        } catch let e as AZLError {
            return failed(target, e.message + (e.hint.map { " (\($0))" } ?? ""))
        } catch {
            return failed(target, "\(error)")
        }
    }

    /// The rootfs-manifest image this is: the one it was pulled as, else the one its
    /// /etc/os-release matches.
    static func knownImage(manifestName: String?, rootfs: String) -> ManifestImage? {
        guard let manifests = try? Manifests.load() else { return nil }
        if let name = manifestName, let m = manifests.find(name) { return m }
        guard let os = KernelChoice.osRelease(rootfs: rootfs),
              let key = KernelChoice.match(manifests.keys, id: os["ID"] ?? "", versionID: os["VERSION_ID"] ?? "") else { return nil }
        return manifests.find(key.short)
    }
}
