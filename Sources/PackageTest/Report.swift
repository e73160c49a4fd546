import CLinux
import Core
import Foundation

/// One row of the report: one step of one target.
public struct StepResult: Codable, Equatable, Sendable {
    public enum Outcome: String, Codable, Sendable { case passed, failed, skipped }
    public var target: String
    public var step: Step
    public var outcome: Outcome
    public var seconds: Double
    /// The first useful line of the step's output (a failure's reason, or what was checked).
    public var message: String
    /// The step's full output.
    public var log: String?

    public init(target: String, step: Step, outcome: Outcome, seconds: Double = 0, message: String, log: String? = nil) {
        self.target = target; self.step = step; self.outcome = outcome; self.seconds = seconds
        self.message = message; self.log = log
    }
}

/// Reads what the driver left in a target's results folder.
public enum Results {
    /// The rows of one target, every step: a step without a status file was not reached
    /// (skipped after a failed install) or the sandbox ended early (`sandboxFailure` says how).
    public static func read(folder: String, target: String, sandboxFailure: String?) -> [StepResult] {
        var rows: [StepResult] = []
        var reportedEnd = false
        for step in Step.allCases {
            let log = folder + "/" + step.rawValue + ".log"
            guard let status = text(in: folder, step.rawValue + ".status") else {
                if let why = sandboxFailure, !reportedEnd {
                    reportedEnd = true
                    rows.append(StepResult(target: target, step: step, outcome: .failed, message: why))
                } else {
                    rows.append(StepResult(target: target, step: step, outcome: .skipped, message: "not run: an earlier step failed"))
                }
                continue
            }
            let f = status.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
            let rc = f.first.flatMap { Int32($0) } ?? -1
            let seconds = f.count >= 3 ? max(0, (Double(f[2]) ?? 0) - (Double(f[1]) ?? 0)) : 0
            let output = text(in: folder, step.rawValue + ".log") ?? ""
            rows.append(StepResult(target: target, step: step, outcome: rc == 0 ? .passed : .failed, seconds: seconds,
                                   message: usefulLine(output, failed: rc != 0, status: rc), log: log))
        }
        return rows
    }

    /// The start (at most `limit` bytes) of file NAME of a results folder, which the sandbox
    /// could write: a regular file only, so a symlink it left cannot show a host file in the
    /// report, nor a FIFO or /dev/zero stall or exhaust the host's reading.
    public static func text(in folder: String, _ name: String, limit: Int = 8 << 20) -> String? {
        let dir = open(folder, AZL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dir >= 0 else { return nil }
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var out = [UInt8](repeating: 0, count: min(limit, max(0, Int(st.st_size))))
        var off = 0
        while off < out.count {
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            off += n
        }
        return String(decoding: out[0..<off], as: UTF8.self)
    }

    /// What the driver itself said first ("azl-pkgtest: ..."), else for a failure the first
    /// line that looks like an error, else the last line.
    public static func usefulLine(_ text: String, failed: Bool, status: Int32) -> String {
        // Progress lines end in \r (dpkg's "Reading database ... 5%"): each counts as a line.
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if let own = lines.first(where: { $0.hasPrefix("azl-pkgtest: ") }) { return String(own.dropFirst(13)) }
        if failed {
            let errorish = ["error", "fail", "not found", "cannot", "unable", "depends", "missing", "e: "]
            if let e = lines.first(where: { l in let low = l.lowercased(); return errorish.contains { low.contains($0) } }) {
                return e
            }
            return lines.last.map { "exit status \(status): \($0)" } ?? "exit status \(status)"
        }
        return lines.last ?? "ok"
    }
}

/// The report: one row per target and step, as a table or JSON.
public struct Report: Codable, Sendable {
    public var rows: [StepResult]
    /// The folder with every target's logs.
    public var logs: String

    public init(rows: [StepResult], logs: String) { self.rows = rows; self.logs = logs }

    public var passed: Bool { !rows.isEmpty && rows.allSatisfy { $0.outcome == .passed } }

    public var table: String {
        Render.table([["TARGET", "STEP", "RESULT", "TIME", "DETAIL"]] + rows.map {
            [$0.target, $0.step.rawValue, $0.outcome.rawValue, String(format: "%.1fs", $0.seconds), $0.message]
        })
    }
}
