import Core
import Foundation
import Testing
import TestSupport

/// scripts/install.sh, the man page and scripts/package-deb.sh: azl-shell installed as a user
/// gets it, and run from there.
@Suite(.serialized) struct InstallTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static let layout = ["bin/azl-shell", "libexec/azl-shell/azl-shell-cli", "libexec/azl-shell/azl-shell-sandbox",
                         "share/bash-completion/completions/azl-shell", "share/zsh/site-functions/_azl-shell",
                         "share/fish/vendor_completions.d/azl-shell.fish", "share/man/man1/azl-shell.1",
                         "share/azl-shell/shell-profiles/azl-shell.sh", "share/azl-shell/installed-files"]

    func install(_ args: [String], env: [String: String] = [:]) -> RunResult {
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        return Subprocess.run(["/bin/sh", Self.repo + "/scripts/install.sh", "--from", Rootless.buildProductsDirectory()] + args, env: e)
    }

    /// man/azl-shell.1 is generated (scripts/gen-manpage.sh) and checked in: every verb and
    /// every option the binary shows must be on it.
    @Test func theManPageHasEveryVerbAndOption() throws {
        let r = Subprocess.run([Rootless.buildProductsDirectory() + "/azl-shell", "--experimental-dump-help"])
        #expect(r.status == 0, "\(r)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let page = try String(contentsOfFile: Self.repo + "/man/azl-shell.1", encoding: .utf8)
        func walk(_ cmd: [String: Any]) {
            for sub in cmd["subcommands"] as? [[String: Any]] ?? [] {
                let name = sub["commandName"] as? String ?? "?"
                if name != "help" { #expect(page.contains(".It Em \(name)"), "man page lacks \(name): run scripts/gen-manpage.sh") }
                walk(sub)
            }
            for arg in cmd["arguments"] as? [[String: Any]] ?? [] where arg["shouldDisplay"] as? Bool == true {
                for n in arg["names"] as? [[String: Any]] ?? [] where n["kind"] as? String == "long" {
                    let opt = n["name"] as? String ?? "?"
                    #expect(page.contains(" -\(opt)"), "man page lacks --\(opt): run scripts/gen-manpage.sh")
                }
            }
        }
        walk(try #require(json["command"] as? [String: Any]))
    }

    /// Into a prefix: the layout, the installed programs run (as the user, a real run), and
    /// --uninstall leaves the prefix as it was.
    @Test func installRunUninstall() throws {
        guard SandboxFixture.available(.alpineX86, for: "install.sh") else { return }
        let r = try Rootless()
        let prefix = try r.makeDirectory("prefix")
        try FS.mkdirs(prefix + "/share/man")   // a folder that was there stays
        // What is in it (not the folders' times: an install touches them).
        func contents() -> [String] { (FileManager.default.subpaths(atPath: prefix) ?? []).sorted() }
        let before = contents()
        let res = install(["--prefix", prefix])
        #expect(res.status == 0, "\(res)")
        for f in Self.layout { #expect(FS.exists(prefix + "/" + f), "\(f) not installed") }
        #expect(install(["--prefix", prefix]).status != 0, "a second install over the first is refused")

        let azl = prefix + "/bin/azl-shell"
        let v = r.run([azl, "--version"])
        #expect(v.status == 0 && v.stdout == "0.1.0\n", "\(v)")
        let state = try r.makeDirectory("state")
        #expect(r.run([azl, "import", "--name", "alp:3.20", RealRootfs.alpineX86.path, "-q"], env: ["AZL_SHELL_ROOT": state]).status == 0)
        let run = r.run([azl, "run", "--image", "alp:3.20", "--", "cat", "/etc/alpine-release"], env: ["AZL_SHELL_ROOT": state])
        #expect(run.status == 0 && run.stdout == "3.20.3\n", "\(run)")
        let doctor = r.run([azl, "doctor", "--json"], env: ["AZL_SHELL_ROOT": state])
        #expect(doctor.stdout.contains("\"user-namespaces\""), "\(doctor)")

        let un = install(["--prefix", prefix, "--uninstall"])
        #expect(un.status == 0, "\(un)")
        #expect(contents() == before, "uninstall left the prefix changed")
    }

    /// DESTDIR stages the files under it, for a packager; the staged programs find each other.
    @Test func destdir() throws {
        let r = try Rootless()
        let dest = try r.makeDirectory("destdir")
        let res = install(["--prefix", "/usr"], env: ["DESTDIR": dest])
        #expect(res.status == 0, "\(res)")
        for f in Self.layout { #expect(FS.exists(dest + "/usr/" + f), "\(f) not staged") }
        #expect(try String(contentsOfFile: dest + "/usr/share/azl-shell/installed-files", encoding: .utf8)
            .contains("file /usr/bin/azl-shell\n"), "the list names installed paths, not staged ones")
        let v = r.run([dest + "/usr/bin/azl-shell", "images"], env: ["AZL_SHELL_ROOT": r.base + "/s"])
        #expect(v.status == 0, "\(v)")
        #expect(install(["--prefix", "/usr", "--uninstall"], env: ["DESTDIR": dest]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dest).isEmpty)
    }

    /// The release products to package: AZL_SHELL_RELEASE_DIR, else .build/release (.ci/run builds it).
    static func releaseDirectory() -> String? {
        let candidates = [ProcessInfo.processInfo.environment["AZL_SHELL_RELEASE_DIR"], repo + "/.build/release"].compactMap { $0 }
        return candidates.first { FS.exists($0 + "/azl-shell-cli") && FS.exists($0 + "/azl-shell-sandbox") }
    }

    /// The .deb, installed with apt in a clean Debian 12 inside azl-shell itself (the archive
    /// for its Depends: needs the network), runs there.
    @Test func debInstallsInCleanDebian() throws {
        guard SandboxFixture.available(.debian, for: "the .deb") else { return }
        guard let rel = Self.releaseDirectory() else {
            return unavailable("no release build to package (swift build -c release --static-swift-stdlib; or set AZL_SHELL_RELEASE_DIR)")
        }
        let r = try Rootless()
        let out = try r.makeDirectory("deb")
        let pkg = Subprocess.run(["/bin/sh", Self.repo + "/scripts/package-deb.sh", "--from", rel, "-o", out])
        #expect(pkg.status == 0, "\(pkg)")
        guard let deb = try FileManager.default.contentsOfDirectory(atPath: out).first(where: { $0.hasSuffix(".deb") }) else {
            Issue.record("scripts/package-deb.sh left no .deb in \(out): \(pkg)")
            return
        }
        let control = Subprocess.run(["/usr/bin/dpkg-deb", "-f", out + "/" + deb, "Depends"])
        for dep in ["uidmap", "libarchive13", "libseccomp2", "libzstd1"] { #expect(control.stdout.contains(dep), "\(control)") }
        r.chownTree(out)

        let state = try r.makeDirectory("state")
        let env = ["AZL_SHELL_ROOT": state]
        #expect(r.azl(["import", "--name", "debian:12", RealRootfs.debian.path, "-q"], root: state).status == 0)
        let apt = "-o APT::Sandbox::User=root -o Acquire::Retries=2"
        let script = """
        apt-get \(apt) -qq update >/tmp/update.log 2>&1 || { echo "@@apt-unreachable"; tail -3 /tmp/update.log; exit 0; }
        DEBIAN_FRONTEND=noninteractive apt-get \(apt) -qq install -y --no-install-recommends ./\(deb) >/tmp/install.log 2>&1 || { cat /tmp/install.log; exit 3; }
        echo "@@version $(azl-shell --version)"
        echo "@@doctor"
        azl-shell doctor --json
        """
        let res = r.run([r.azlShell, "run", "--network", "host", "--image", "debian:12", "--", "sh", "-c", script],
                        env: env, cwd: out, timeout: 600)
        if res.stdout.contains("@@apt-unreachable") {
            return unavailable("Debian's archive is not reachable for apt from a sandbox (--network host): \(res.stdout)")
        }
        #expect(res.stdout.contains("@@version 0.1.0\n"), "\(res)")
        let json = res.stdout.components(separatedBy: "@@doctor\n").last ?? ""
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(res)")
        let checks = report["checks"] as? [[String: Any]] ?? []
        // Inside a sandbox, whatever it reports, it ran every check and said so.
        #expect(checks.count == DoctorCLITests.ids.count, "\(res)")
        #expect(checks.allSatisfy { ($0["summary"] as? String).map { !$0.isEmpty } ?? false })
    }
}
