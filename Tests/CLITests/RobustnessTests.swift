import Core
import Foundation
import Testing
import TestSupport

/// Issue 10, findings 7 and 8, as the unprivileged user: the host terminal without a pty, long
/// command lines, /proc/sys/kernel/version, and what `run` and `import` refuse or say.
@Suite(.serialized) struct RobustnessTests {
    static let shared = Result<StoredImageFixture, Error> { try StoredImageFixture() }

    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> StoredImageFixture? {
        guard SandboxFixture.available(.alpineX86, for: "RobustnessTests", sourceLocation: sourceLocation) else { return nil }
        return try Self.shared.get()
    }

    func oneLineError(_ r: RunResult, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let lines = r.stderr.split(separator: "\n")
        #expect(r.status == 125 && lines.count == 1 && lines.first?.hasPrefix("azl-shell: ") == true,
                "\(what): \(r)", sourceLocation: sourceLocation)
    }

    /// Without a pty (stdout a pipe, or stdin not a terminal) the command writes to the host's
    /// terminal directly; what it sets there (raw mode, no echo) is undone when it ends.
    @Test(arguments: ["| cat", "</dev/null"])
    func aNonPtyCommandLeavesTheTerminalAsItWas(_ redirect: String) throws {
        guard let f = try fixture() else { return }
        guard FS.exists("/usr/bin/script") else {
            unavailable("RobustnessTests: /usr/bin/script (bsdutils) is needed to give the test a terminal")
            return
        }
        // The command's stty works on whichever of its fds is the terminal: 2 stays one in both cases.
        let inner = "\(f.r.azlShell) run --image alp:3.20 -- sh -c 'stty raw -echo <&2; echo \"inside $(stty -g <&2)\"' \(redirect)"
        let shell = "echo \"before $(stty -g)\"; \(inner); echo \"status $?\"; echo \"after $(stty -g)\""
        let r = f.r.run(["/usr/bin/script", "-qec", shell, "/dev/null"], env: ["AZL_SHELL_ROOT": f.state], timeout: 60)
        var seen: [String: String] = [:]
        for line in r.stdout.replacingOccurrences(of: "\r", with: "").split(separator: "\n") {
            guard let sp = line.firstIndex(of: " ") else { continue }
            seen[String(line[..<sp])] = String(line[line.index(after: sp)...])
        }
        let before = try #require(seen["before"], "\(r)")
        #expect(seen["status"] == "0", "\(r)")
        #expect(seen["inside"] != nil && seen["inside"] != before, "the command did not change the terminal: \(r)")
        #expect(seen["after"] == before, "the terminal was left as the command set it: \(r)")
    }

    /// Command lines up to the kernel's own limit: 100,000 words, cold (planned) and warm (replayed).
    @Test func aHundredThousandArgumentsRun() throws {
        guard let f = try fixture() else { return }
        let words = (1...100_000).map(String.init)
        let argv = [f.r.azlShell, "run", "--image", "alp:3.20", "sh", "-c", "echo $# ${100000}", "sh"] + words
        for pass in ["cold", "warm"] {
            let r = f.r.run(argv, env: ["AZL_SHELL_ROOT": f.state], timeout: 60)
            #expect(r.status == 0 && r.stdout == "100000 100000\n", "\(pass): \(r.status) \(r.stderr.prefix(500))")
        }
    }

    @Test func procSysKernelVersionIsUnameV() throws {
        guard let f = try fixture() else { return }
        let r = f.azl(["run", "--image", "alp:3.20", "--kernel", "azurelinux-3.0", "--",
                       "sh", "-c", "cat /proc/sys/kernel/version; uname -v"])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(r.status == 0 && lines.count == 2 && lines[0] == lines[1], "\(r)")
        let host = try String(contentsOfFile: "/proc/sys/kernel/version", encoding: .utf8).trimmingCharacters(in: .newlines)
        #expect(lines.first != host, "the profile's uname -v should not be the host's: \(r)")
    }

    /// A release older than the syscall tables would gate read and write (the command died of SIGSEGV).
    @Test func aKernelReleaseOlderThanTheTablesIsRefused() throws {
        guard let f = try fixture() else { return }
        for verb in [["run", "--image", "alp:3.20", "--kernel", "0.1", "--", "true"], ["kernel", "--kernel", "0.1"]] {
            let r = f.azl(verb)
            oneLineError(r, verb.joined(separator: " "))
            #expect(r.stderr.contains("--kernel 0.1") && r.stderr.contains("older than"), "\(r)")
        }
    }

    /// RFC 1123, at most 64 bytes (a UTS name).
    @Test func hostnamesFollowRFC1123() throws {
        guard let f = try fixture() else { return }
        for h in ["a/b\nc", "-a", "a-", "a..b", "a_b", String(repeating: "h", count: 64), String(repeating: "h.", count: 32) + "h"] {
            let r = f.azl(["run", "--image", "alp:3.20", "--hostname=" + h, "--", "true"])
            oneLineError(r, "--hostname \(h.debugDescription)")
            #expect(r.stderr.contains("--hostname") && r.stderr.contains("RFC 1123"), "\(r)")
        }
        let ok = String(repeating: "h", count: 62) + ".b"
        let r = f.azl(["run", "--image", "alp:3.20", "--hostname", ok, "--", "hostname"])
        #expect(r.status == 0 && r.stdout == ok + "\n", "\(r)")
    }

    /// Names with path components or control characters are refused, saying the rule; nothing is stored.
    @Test func importRefusesNamesWithPathComponents() throws {
        guard let f = try fixture() else { return }
        let records = try FileManager.default.contentsOfDirectory(atPath: f.state + "/images").sorted()
        for n in ["../x", "./x", "a/../b", "..:5000/x", "a//b", "x\u{1b}]0;owned\u{7}", "a\nb"] {
            let r = f.azl(["import", "--name", n, RealRootfs.alpineX86.path])
            oneLineError(r, "import --name \(n.debugDescription)")
            #expect(r.stderr.contains("invalid image name") && r.stderr.contains("no '.', '..' or empty parts"), "\(r)")
            #expect(!r.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "control characters reached stderr: \(r)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.state + "/images").sorted() == records)
    }

    /// A record whose tree is gone is the store's problem, said as such: not a name to pull
    /// (a name with a registry host was pulled, and the pull's error said nothing of the tree).
    @Test func aRecordWithoutItsTreeSaysSo() throws {
        guard let f = try fixture() else { return }
        let images = f.state + "/images"
        let data = try #require(FileManager.default.contents(atPath: images + "/alp%3A3.20.json"))
        var record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        record["name"] = "localhost:1/ghost"   // port 1: nothing listens, nothing leaves the machine
        record["tag"] = "1"
        record["tree"] = "sha256:" + String(repeating: "e", count: 64)
        let ghost = images + "/localhost%3A1%2Fghost%3A1.json"
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: ghost))
        f.r.chownTree(ghost)
        defer { unlink(ghost) }
        let r = f.azl(["run", "--image", "localhost:1/ghost:1", "--", "true"])
        oneLineError(r, "run --image localhost:1/ghost:1")
        for part in ["image localhost:1/ghost:1", "unpacked tree", "is missing", "pull or import it again", "azl-shell rmi"] {
            #expect(r.stderr.contains(part), "\(part): \(r)")
        }
        #expect(!r.stderr.contains("registry"), "\(r)")
    }
}
