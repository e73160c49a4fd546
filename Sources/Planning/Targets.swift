import CLinux
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
        let started = start(target, argv: argv, stdin: stdin, log: log) { _, _ in spec(for: target, base: base) }
        guard let pid = started.pid else { return started.finish(status: 125) }
        return started.finish(status: Launcher.wait(pid))
    }

    /// `base` for `target`: its image, platform and kernel over the rest.
    public static func spec(for target: Target, base: RunSpec) -> RunSpec {
        var spec = base
        spec.source = .image(target.image)
        spec.kernel = target.kernel ?? base.kernel
        spec.pull.platform = target.platform ?? base.pull.platform
        return spec
    }

    /// Run `argv` on every target, at most `jobs` at once, calling `done` as each ends (on this
    /// thread). Each target's request is `specFor(target, its log's fd)` (default: `base` with
    /// the target's image, platform and kernel). Targets are planned on worker threads, one per
    /// core, and each starts as soon as it is planned and a job is free, so planning the next
    /// ones overlaps the running ones; this thread only reaps. Logs go to `logDirectory`, one
    /// file per target. Results in the targets' order.
    public static func runAll(_ targets: [Target], argv: [String], jobs: Int, logDirectory: String,
                              base: RunSpec = RunSpec(source: .image("")),
                              specFor: ((Target, Int32) throws -> RunSpec)? = nil,
                              done: (TargetOutcome) -> Void = { _ in }) -> [TargetOutcome] {
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        let run = MatrixRun(count: targets.count, jobs: max(1, jobs))
        let shared = SharedPlanning()
        let make: (Target, Int32) throws -> RunSpec = { t, log in
            var s = try specFor?(t, log) ?? spec(for: t, base: base)
            s.shared = shared
            return s
        }
        let planners = min(targets.count, max(1, min(jobs, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))))
        let workers = (0..<planners).map { _ in
            Thread {
                while let i = run.nextToPlan() {
                    let s = start(targets[i], argv: argv, stdin: devNull, log: logDirectory + "/" + logName(i, targets[i]), make: make)
                    run.started(i, s)
                }
            }
        }
        workers.forEach { $0.start() }
        return run.reap(done: done)
    }

    /// What the planners and the reaping thread share of a `runAll`. The reaper waits on each
    /// running target's pidfd and reaps that pid alone: a child of a planner's own (a project's
    /// setup step) is never taken from it, as `waitpid(-1)` would.
    final class MatrixRun: @unchecked Sendable {
        private let cond = NSCondition()
        private var next = 0, free: Int
        let count: Int
        private var running: [(index: Int, started: Started, pidfd: Int32)] = []
        /// Ended, to be reported by the reaping thread.
        private var ended: [(Int, TargetOutcome)] = []
        /// Written when a target starts or ends, to wake the reaper from its poll.
        private var wake: [Int32] = [-1, -1]

        init(count: Int, jobs: Int) {
            self.count = count
            free = jobs
            _ = pipe2(&wake, O_CLOEXEC | O_NONBLOCK)
        }
        deinit { wake.forEach { close($0) } }

        /// The next target to plan, once a job is free for it; nil when all are taken.
        func nextToPlan() -> Int? {
            cond.lock(); defer { cond.unlock() }
            while free == 0 && next < count { cond.wait() }
            guard next < count else { return nil }
            free -= 1
            next += 1
            return next - 1
        }

        func started(_ i: Int, _ s: Started) {
            cond.lock(); defer { cond.unlock() }
            if let pid = s.pid {
                let fd = azl_pidfd_open(pid)
                // No pidfd (not expected): waited for as its turn comes, blocking.
                running.append((i, s, fd))
            } else {
                end(i, s.finish(status: 125))
            }
            var b: UInt8 = 1
            _ = write(wake[1], &b, 1)
        }

        /// With the lock held.
        private func end(_ i: Int, _ outcome: TargetOutcome) {
            ended.append((i, outcome))
            free += 1
            cond.broadcast()
        }

        func reap(done: (TargetOutcome) -> Void) -> [TargetOutcome] {
            var results = [TargetOutcome?](repeating: nil, count: count)
            var reported = 0
            while reported < count {
                cond.lock()
                let now = ended
                ended.removeAll()
                let watched = running
                cond.unlock()
                for (i, o) in now { results[i] = o; reported += 1; done(o) }
                guard reported < count else { break }
                if let blind = watched.first(where: { $0.pidfd < 0 }) {
                    finish(blind, status: Launcher.wait(blind.started.pid!))
                    continue
                }
                var fds = [pollfd(fd: wake[0], events: Int16(POLLIN), revents: 0)] + watched.map { pollfd(fd: $0.pidfd, events: Int16(POLLIN), revents: 0) }
                guard poll(&fds, nfds_t(fds.count), -1) > 0 else { continue }
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wake[0], &drain, drain.count) > 0 {}
                for (k, w) in watched.enumerated() where fds[k + 1].revents != 0 {
                    var st: Int32 = 0
                    let pid = waitpid(w.started.pid!, &st, WNOHANG)
                    if pid == w.started.pid! { finish(w, status: Launcher.exitStatus(waitStatus: st)) }
                    else if pid < 0 && errno == ECHILD { finish(w, status: 125) }
                }
            }
            return results.map { $0! }
        }

        private func finish(_ w: (index: Int, started: Started, pidfd: Int32), status: Int32) {
            cond.lock(); defer { cond.unlock() }
            if w.pidfd >= 0 { close(w.pidfd) }
            running.removeAll { $0.index == w.index }
            end(w.index, w.started.finish(status: status))
        }
    }

    /// "03-alpine_3.20-linux_arm64-kernel_5.15.0.log": ordered, and a name any filesystem takes.
    static func logName(_ index: Int, _ t: Target) -> String {
        let safe = String(t.label.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }.prefix(100))
        return (index < 9 ? "0" : "") + String(index + 1) + "-" + safe + ".log"
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

    static func start(_ target: Target, argv: [String], stdin: Int32, log: String,
                      make: (Target, Int32) throws -> RunSpec) -> Started {
        var s = Started(target: target, log: log, begin: Date())
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return s }
        defer { close(fd) }
        do {
            var spec = try make(target, fd)
            spec.command = argv
            // Pull progress, if any, belongs in the target's log, not on the matrix's stdout.
            spec.pull.quiet = true
            spec.cacheForCommandLine = false
            if spec.abiReport != nil {
                spec.abiReport = (log.hasSuffix(".log") ? String(log.dropLast(4)) : log) + ".abi"
                s.abiReport = spec.abiReport
            }
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
