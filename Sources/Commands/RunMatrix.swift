import ArgumentParser
import Core
import Foundation
import Planning

/// `run --matrix IMAGE[,IMAGE...] [--platform P,...] [--kernel K,...] [--jobs N] [--json] -- CMD`:
/// CMD on every combination (Planning's `Targets`), a row per target, exit 0 only when all passed.
extension RunCommand {
    func runMatrix(_ list: String) throws {
        func split(_ s: String?) -> [String] {
            (s ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var images = split(list), platforms = split(pull.platform), kernels = split(policy.kernel)
        // In a project each target gets the project's options and setup, on its own image.
        let project = noProject || rootfs != nil ? nil : try ProjectPlanner.find(from: FileManager.default.currentDirectoryPath)
        if list.isEmpty, let m = project?.matrix {
            images = m.images
            if platforms.isEmpty { platforms = m.platforms }
            if kernels.isEmpty { kernels = m.kernels }
        }
        guard !images.isEmpty else {
            throw AZLError(.usage, "--matrix: no image given", hint: "--matrix IMAGE[,IMAGE...]"
                           + (list.isEmpty ? ", or matrix = [\"IMAGE\", ...] in \(project?.path ?? "the project's azl-shell.toml")" : ""))
        }
        if image != nil || rootfs != nil {
            throw AZLError(.usage, "--matrix names the images: --image and --rootfs do not go with it")
        }
        if let j = jobs, j < 1 { throw AZLError(.usage, "--jobs \(j): at least 1") }
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw AZLError(.usage, "--matrix: no command given", hint: "azl-shell run --matrix A,B -- CMD [ARGS...]") }

        let targets = Target.matrix(images: images, platforms: platforms, kernels: kernels)
        // Outside a project the options are checked once here, before anything starts.
        if project == nil { _ = try spec(target: targets[0]) }
        let dir = try logs.map(Paths.absolute) ?? defaultLogFolder()
        try FS.mkdirs(dir, mode: 0o755)
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let json = pull.json
        if !json { FileHandle.standardError.write(Data("azl-shell: \(targets.count) targets, up to \(jobs ?? max(1, cores)) at once; logs in \(dir)\n".utf8)) }
        let results = Targets.runAll(targets, argv: argv, jobs: jobs ?? max(1, cores), logDirectory: dir, specFor: { t, log in
            try spec(target: t, stepOutput: log)
        })
        if let abiReport {
            // One file: each target's report under a line naming it.
            var text = ""
            for r in results {
                text += "## \(r.target.label)\n"
                text += r.abiReport.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "# no report: the target did not start\n"
            }
            try FS.atomicWrite(Data(text.utf8), to: Paths.absolute(abiReport))
        }
        let failed = results.filter { !$0.passed }
        if json {
            struct Report: Encodable { var passed: Bool; var logs: String; var targets: [TargetOutcome] }
            print(try Render.json(Report(passed: failed.isEmpty, logs: dir, targets: results)))
        } else {
            var rows = [["IMAGE", "PLATFORM", "KERNEL", "STATUS", "TIME"]]
            for r in results {
                rows.append([r.target.image, "linux/" + (r.architecture ?? r.target.platform.map { (try? CPUArch.ofPlatform($0)) ?? $0 } ?? "?"),
                             r.release ?? r.target.kernel ?? "?", r.passed ? "ok" : "exit \(r.status)", tenths(r.seconds)])
            }
            print(Render.table(rows))
            for r in failed {
                print("\n\(r.target.label): exit \(r.status), log \(r.log)")
                for l in r.tail { print("  | " + Shown.text(l)) }
            }
            print("\n\(results.count - failed.count) of \(results.count) targets passed")
        }
        if !failed.isEmpty { throw ExitCode(1) }
    }

    /// "1.3s" (String(format:) is Foundation's slow path).
    func tenths(_ seconds: Double) -> String {
        let t = Int((seconds * 10).rounded())
        return "\(t / 10).\(t % 10)s"
    }

    /// A fresh folder under the cache: <cache>/matrix/<UTC time>-<pid>.
    func defaultLogFolder() throws -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return Paths.resolve(rootOption: global.root).cache + "/matrix/" + f.string(from: Date()) + "-\(getpid())"
    }
}
