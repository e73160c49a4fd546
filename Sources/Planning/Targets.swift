import Core
import Foundation
import SandboxLaunch

/// One place a command runs: an image, a platform and a kernel (issue 14's matrix; pkgtest's
/// steps run per target the same way).
public struct Target: Hashable, Sendable, Codable {
    /// NAME[:TAG], an image id, a short name or a registry reference.
    public var image: String
    /// `--platform` (nil: the image's own).
    public var platform: String?
    /// `--kernel` (nil: the image's profile).
    public var kernel: String?

    public init(image: String, platform: String? = nil, kernel: String? = nil) {
        self.image = image; self.platform = platform; self.kernel = kernel
    }

    /// "alpine:3.20 linux/arm64 kernel 5.15.0": what a row and a log file are named by.
    public var label: String {
        [image, platform, kernel.map { "kernel " + $0 }].compactMap { $0 }.joined(separator: " ")
    }

    /// Every combination, images outermost (the order rows are printed in).
    public static func matrix(images: [String], platforms: [String] = [], kernels: [String] = []) -> [Target] {
        let ps: [String?] = platforms.isEmpty ? [nil] : platforms
        let ks: [String?] = kernels.isEmpty ? [nil] : kernels
        return images.flatMap { i in ps.flatMap { p in ks.map { k in Target(image: i, platform: p, kernel: k) } } }
    }
}

/// How one target's run went.
public struct TargetOutcome: Sendable, Codable {
    public var target: Target
    /// The command's exit status by `run`'s rules (125: azl-shell could not start it).
    public var status: Int32
    public var seconds: Double
    /// The last lines of its output (stdout and stderr, interleaved as written).
    public var tail: [String]
    /// The full output.
    public var log: String
    /// Its ABI report (`base.abiReport` set: the log's path with `.abi` for `.log`), when written.
    public var abiReport: String?
    /// The image's architecture (OCI) and the kernel release the command saw, when it started.
    public var architecture: String?
    public var release: String?

    public var passed: Bool { status == 0 }
}

/// Running a command on targets, each in its own ephemeral root, output to a log file.
public enum Targets {
    /// Lines of output a failed target's row shows.
    public static let tailLines = 5

    /// Run `argv` on `target`, stdin from `stdin` (an fd), stdout and stderr to the file `log`
    /// (created). `base` gives everything but the image, platform and kernel (volumes, env, ...).
    public static func run(_ target: Target, argv: [String], stdin: Int32 = -1, log: String,
                           base: RunSpec = RunSpec(source: .image(""))) -> TargetOutcome {
        let started = start(target, argv: argv, stdin: stdin, log: log, base: base)
        guard let pid = started.pid else { return started.finish(status: 125) }
        return started.finish(status: Launcher.wait(pid))
    }

    /// Run `argv` on every target, at most `jobs` at once, calling `done` as each ends (on this
    /// thread). Planning is done here one target at a time (it is milliseconds, and what it
    /// reads is recorded per process: `PlanInputs`); the sandboxes run concurrently. Logs go to
    /// `logDirectory`, one file per target. Results in the targets' order.
    public static func runAll(_ targets: [Target], argv: [String], jobs: Int, logDirectory: String,
                              base: RunSpec = RunSpec(source: .image("")),
                              done: (TargetOutcome) -> Void = { _ in }) -> [TargetOutcome] {
        var results = [TargetOutcome?](repeating: nil, count: targets.count)
        var running: [pid_t: (index: Int, started: Started)] = [:]
        var next = 0
        let jobs = max(1, jobs)
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        while next < targets.count || !running.isEmpty {
            while next < targets.count && running.count < jobs {
                let i = next
                next += 1
                let s = start(targets[i], argv: argv, stdin: devNull, log: logDirectory + "/" + logName(i, targets[i]), base: base)
                if let pid = s.pid {
                    running[pid] = (i, s)
                } else {
                    results[i] = s.finish(status: 125)
                    done(results[i]!)
                }
            }
            guard !running.isEmpty else { continue }
            var st: Int32 = 0
            let pid = waitpid(-1, &st, 0)
            if pid < 0 {
                if errno == EINTR { continue }
                // No child left that we know of (ECHILD): nothing more will end.
                for (_, r) in running { results[r.index] = r.started.finish(status: 125); done(results[r.index]!) }
                running.removeAll()
                continue
            }
            guard let r = running.removeValue(forKey: pid) else { continue }
            results[r.index] = r.started.finish(status: Launcher.exitStatus(waitStatus: st))
            done(results[r.index]!)
        }
        return results.map { $0! }
    }

    /// "03-alpine_3.20-linux_arm64-kernel_5.15.0.log": ordered, and a name any filesystem takes.
    static func logName(_ index: Int, _ t: Target) -> String {
        let safe = String(t.label.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }.prefix(100))
        return String(format: "%02d-", index + 1) + safe + ".log"
    }

    /// A target whose sandbox is starting: its log is open, its clock running.
    struct Started {
        var target: Target
        var log: String
        var begin: Date
        var pid: pid_t?
        var abiReport: String?
        var architecture: String?
        var release: String?

        func finish(status: Int32) -> TargetOutcome {
            TargetOutcome(target: target, status: status, seconds: Date().timeIntervalSince(begin),
                          tail: status == 0 ? [] : Targets.tail(of: log, lines: Targets.tailLines), log: log,
                          abiReport: abiReport.flatMap { FS.exists($0) ? $0 : nil }, architecture: architecture, release: release)
        }
    }

    static func start(_ target: Target, argv: [String], stdin: Int32, log: String, base: RunSpec) -> Started {
        var s = Started(target: target, log: log, begin: Date())
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return s }
        defer { close(fd) }
        var spec = base
        spec.source = .image(target.image)
        spec.command = argv
        spec.kernel = target.kernel ?? base.kernel
        spec.pull.platform = target.platform ?? base.pull.platform
        // Pull progress, if any, belongs in the target's log, not on the matrix's stdout.
        spec.pull.quiet = true
        spec.cacheForCommandLine = false
        if base.abiReport != nil {
            spec.abiReport = (log.hasSuffix(".log") ? String(log.dropLast(4)) : log) + ".abi"
            s.abiReport = spec.abiReport
        }
        do {
            let prepared = try RunPlanner.prepare(spec)
            s.architecture = prepared.platform.architecture
            s.release = prepared.kernel.profile.release
            s.pid = try prepared.spawn(stdin: stdin >= 0 ? stdin : 0, stdout: fd, stderr: fd)
        } catch {
            // azl-shell's own error for this target: its row and log say it, the others go on.
            let line = ((error as? AZLError)?.description ?? "azl-shell: \(error)") + "\n"
            _ = try? FS.writeAll(fd: fd, Array(line.utf8), path: log)
        }
        return s
    }

    /// The last `lines` lines of the file at `path` (reads at most its last 64 KiB).
    public static func tail(of path: String, lines: Int) -> [String] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        let from = max(0, size - 65536)
        guard size > 0, lseek(fd, from, SEEK_SET) == from, let bytes = try? FS.readAll(fd: fd, limit: 65536, path: path) else { return [] }
        var all = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if all.last == "" { all.removeLast() }
        return Array(all.suffix(lines))
    }
}
