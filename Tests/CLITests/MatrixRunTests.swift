import Core
import Foundation
import Testing
import TestSupport

/// Issue 14, part 2: `run --matrix` over real images, as the unprivileged user.
@Suite(.serialized) struct MatrixRunTests {
    static let shared = Result<StoredImageFixture, Error> { try StoredImageFixture(images: [("debian:12", .debian), ("alpine:3.20", .alpineX86)]
            + (FileManager.default.fileExists(atPath: RealRootfs.alpineArm.path) ? [("alparm:3.20", .alpineArm)] : [])) }

    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> StoredImageFixture? {
        for r in [RealRootfs.alpineX86, .debian] {
            guard SandboxFixture.available(r, for: "MatrixRunTests", sourceLocation: sourceLocation) else { return nil }
        }
        return try Self.shared.get()
    }

    /// The aarch64 Alpine joins the matrix where it can run (x86_64 with qemu-user-static).
    var foreignRuns: Bool {
        #if arch(x86_64)
        return access("/usr/bin/qemu-aarch64-static", X_OK) == 0 && FileManager.default.fileExists(atPath: RealRootfs.alpineArm.path)
        #else
        return false
        #endif
    }

    @Test func oneFailingTargetFailsTheMatrixAndKeepsItsLog() throws {
        guard let f = try fixture() else { return }
        if !foreignRuns { unavailable("MatrixRunTests: the aarch64 Alpine target needs x86_64 and /usr/bin/qemu-aarch64-static") }
        let images = ["debian:12", "alpine:3.20"] + (foreignRuns ? ["alparm:3.20"] : [])
        let logs = try f.r.makeDirectory("matrix-logs-1")
        // Fails on Alpine only (Debian has /etc/debian_version), after a line the row must show.
        let script = "echo on $(uname -m); test -e /etc/debian_version || { echo no debian here; exit 7; }"
        let r = f.azl(["run", "--matrix", images.joined(separator: ","), "--logs", logs, "--", "sh", "-c", script])
        #expect(r.status == 1, "\(r)")
        let rows = r.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first?.hasPrefix("IMAGE") == true, "\(r)")
        #expect(rows.contains { $0.hasPrefix("debian:12 ") && $0.contains(" ok ") }, "\(r)")
        #expect(rows.contains { $0.hasPrefix("alpine:3.20 ") && $0.contains("linux/amd64") && $0.contains("exit 7") }, "\(r)")
        if foreignRuns {
            #expect(rows.contains { $0.hasPrefix("alparm:3.20 ") && $0.contains("linux/arm64") && $0.contains("exit 7") }, "\(r)")
            #expect(rows.contains("  | on aarch64"), "\(r)")
        }
        // The failure is named with its log, and the last lines of its output.
        #expect(rows.contains("alpine:3.20: exit 7, log \(logs)/02-alpine_3.20.log"), "\(r)")
        #expect(rows.contains("  | no debian here"), "\(r)")
        #expect(rows.last == "1 of \(images.count) targets passed", "\(r)")
        let log = try String(contentsOfFile: logs + "/02-alpine_3.20.log", encoding: .utf8)
        #expect(log == "on x86_64\nno debian here\n")
        #expect(try String(contentsOfFile: logs + "/01-debian_12.log", encoding: .utf8) == "on x86_64\n")
    }

    @Test func allPassingIsExitZeroAndJSONSaysEachTarget() throws {
        guard let f = try fixture() else { return }
        let r = f.azl(["run", "--matrix", "alpine:3.20", "--kernel", "cbl-mariner-2.0,host", "--json", "--", "uname", "-r"])
        #expect(r.status == 0, "\(r)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(report["passed"] as? Bool == true)
        let targets = try #require(report["targets"] as? [[String: Any]])
        #expect(targets.count == 2)
        #expect(targets.map { ($0["target"] as? [String: Any])?["kernel"] as? String } == ["cbl-mariner-2.0", "host"])
        #expect(targets.first?["release"] as? String == "5.15.138.1-1.cm2")
        let log = try #require(targets.first?["log"] as? String)
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "5.15.138.1-1.cm2\n")
    }

    /// Two targets that can only both finish when they run at the same time: one reads a fifo
    /// the other writes (bounded by `timeout`, so a serial run fails instead of hanging).
    @Test func targetsRunAtTheSameTime() throws {
        guard let f = try fixture() else { return }
        let dir = try f.r.makeDirectory("matrix-fifo")
        #expect(mkfifo(dir + "/p", 0o666) == 0)
        f.r.chownTree(dir)
        let script = "if [ -e /etc/debian_version ]; then echo ping > /x/p; else timeout 60 cat /x/p; fi"
        let r = f.azl(["run", "--matrix", "alpine:3.20,debian:12", "--jobs", "2", "--volume", dir + ":/x", "--json",
                                "--", "sh", "-c", script])
        #expect(r.status == 0, "\(r)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let reader = try #require((report["targets"] as? [[String: Any]])?.first?["log"] as? String)
        #expect(try String(contentsOfFile: reader, encoding: .utf8) == "ping\n")
    }

    @Test func badMatrixOptionsAreOneLine() throws {
        guard let f = try fixture() else { return }
        for (args, needle) in [(["--matrix", "alpine:3.20", "--jobs", "0"], "--jobs 0"),
                               (["--matrix", "alpine:3.20", "--image", "debian:12"], "--image"),
                               (["--matrix", ","], "no image given")] {
            let r = f.azl(["run"] + args + ["--", "true"])
            #expect(r.status == 125 && r.stderr.contains(needle) && r.stderr.split(separator: "\n").count == 1, "\(args): \(r)")
        }
    }

    /// `matrix = ...` in azl-shell.toml: `run --matrix` with no images runs the file's list, each
    /// image with the project's options and its own run of the setup; the command line's
    /// --kernel replaces the file's kernels.
    @Test func aProjectsMatrixRunsWhenNoImageIsNamed() throws {
        guard let f = try fixture() else { return }
        let dir = try f.r.makeDirectory("matrix-project")
        try """
            image = "alpine:3.20"
            env = { GREETING = "hi" }
            setup = ["echo set up > /etc/setup-ran"]

            [matrix]
            images = ["debian:12", "alpine:3.20"]
            kernels = ["cbl-mariner-2.0"]
            """.write(toFile: dir + "/azl-shell.toml", atomically: false, encoding: .utf8)
        f.r.chownTree(dir)
        let script = "cat /etc/setup-ran; echo $GREETING; uname -r; test -e /etc/debian_version && echo debian || echo other"
        let r = f.azl(["run", "--matrix", "--json", "--", "sh", "-c", script], cwd: dir)
        #expect(r.status == 0, "\(r)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let targets = try #require(report["targets"] as? [[String: Any]])
        #expect(targets.map { ($0["target"] as? [String: Any])?["image"] as? String } == ["debian:12", "alpine:3.20"], "\(r)")
        let logs = try targets.map { try String(contentsOfFile: try #require($0["log"] as? String), encoding: .utf8) }
        #expect(logs == ["set up\nhi\n5.15.138.1-1.cm2\ndebian\n", "set up\nhi\n5.15.138.1-1.cm2\nother\n"], "\(logs)")
        let host = f.azl(["run", "--matrix", "--kernel", "host", "--", "uname", "-r"], cwd: dir)
        #expect(host.status == 0 && !host.stdout.contains("5.15.138") && host.stdout.hasSuffix("2 of 2 targets passed\n"), "\(host)")
        // A bad matrix is the file's one-line error; no list at all says where to put one.
        try "image = \"alpine:3.20\"\nmatrix = []\n".write(toFile: dir + "/azl-shell.toml", atomically: false, encoding: .utf8)
        let bad = f.azl(["run", "--matrix", "--", "true"], cwd: dir)
        #expect(bad.status == 125 && bad.stderr.contains("azl-shell.toml:2: `matrix` names no image") && bad.stderr.split(separator: "\n").count == 1, "\(bad)")
        try "image = \"alpine:3.20\"\n".write(toFile: dir + "/azl-shell.toml", atomically: false, encoding: .utf8)
        let none = f.azl(["run", "--matrix", "--", "true"], cwd: dir)
        #expect(none.status == 125 && none.stderr.contains("no image given") && none.stderr.contains(dir + "/azl-shell.toml")
                && none.stderr.split(separator: "\n").count == 1, "\(none)")
    }
}
