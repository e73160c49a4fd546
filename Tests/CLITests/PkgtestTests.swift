import Core
import Foundation
import Testing
import TestSupport

/// `azl-shell pkgtest` as the unprivileged user on the real Debian 12 and Alpine 3.20 trees.
/// The packages are built on the host as the tests' setup: .deb with dpkg-deb, .rpm with
/// rpmbuild (Debian's rpm package), .apk by hand as abuild lays it out.
@Suite(.serialized) struct PkgtestTests {
    /// One store with both images imported (Debian's import takes seconds), and the packages.
    final class Fixture: @unchecked Sendable {
        let r: Rootless
        let state: String
        let pkgs: String

        nonisolated(unsafe) static var shared: Fixture?
        static let lock = NSLock()

        static func get(sourceLocation: SourceLocation = #_sourceLocation) throws -> Fixture? {
            guard SandboxFixture.available(.debian, for: "PkgtestTests", sourceLocation: sourceLocation),
                  SandboxFixture.available(.alpineX86, for: "PkgtestTests", sourceLocation: sourceLocation) else { return nil }
            for tool in ["/usr/bin/dpkg-deb", "/usr/bin/gcc", "/usr/bin/gzip", "/usr/bin/sha256sum", "/usr/bin/sha1sum"] where !FS.exists(tool) {
                unavailable("PkgtestTests: \(tool) is missing (scripts/setup.sh installs it)", sourceLocation: sourceLocation)
                return nil
            }
            lock.lock(); defer { lock.unlock() }
            if let f = shared { return f }
            let f = try Fixture()
            shared = f
            return f
        }

        init() throws {
            r = try Rootless()
            state = r.base + "/state"
            for (name, tar) in [("deb12", RealRootfs.debian), ("alp", RealRootfs.alpineX86)] {
                let res = r.azl(["import", "--name", name, tar.path, "-q"], root: state)
                guard res.status == 0 else { throw AZLError(.io, "import \(name) failed: \(res)") }
            }
            pkgs = try r.makeDirectory("pkgs")
        }

        func azl(_ args: [String]) -> RunResult { r.azl(args, root: state) }

        /// Run as root on the host (the package builders), failing the test's setup loudly.
        func sh(_ script: String, in dir: String) throws {
            let res = Subprocess.run(["/bin/sh", "-euc", script], cwd: dir)
            guard res.status == 0 else { throw AZLError(.io, "package build failed: \(res)") }
        }

        /// A .deb from `files` (path -> shell that writes it to "$out") and maintainer scripts.
        func deb(_ name: String, arch: String = "amd64", build: String, postinst: String? = nil) throws -> String {
            let dir = try r.makeDirectory("deb-" + name)
            var script = """
                mkdir -p root/DEBIAN root/usr/bin root/usr/lib
                printf 'Package: \(name)\\nVersion: 1.0\\nArchitecture: \(arch)\\nMaintainer: t <t@example.org>\\nDescription: pkgtest\\n' > root/DEBIAN/control
                \(build)
                """
            if let postinst {
                script += "\nprintf '%s\\n' '#!/bin/sh' \(quoted(postinst)) > root/DEBIAN/postinst; chmod 755 root/DEBIAN/postinst"
            }
            script += "\ndpkg-deb -b --root-owner-group root \(pkgs)/\(name)_1.0_\(arch).deb >/dev/null"
            try sh(script, in: dir)
            r.chownTree(pkgs)
            return pkgs + "/\(name)_1.0_\(arch).deb"
        }

        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

        /// The report as JSON rows, keyed "target step".
        func rows(_ res: RunResult) throws -> [String: [String: Any]] {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as? [String: Any], "\(res)")
            var out: [String: [String: Any]] = [:]
            for row in json["rows"] as? [[String: Any]] ?? [] {
                out["\(row["target"] as? String ?? "?") \(row["step"] as? String ?? "?")"] = row
            }
            return out
        }
    }

    static let steps = ["install", "verify", "libraries", "smoke", "remove"]

    /// An executable linking a shared library the same package ships, and a postinst.
    func helloDeb(_ f: Fixture) throws -> String {
        try f.deb("hello", build: """
            printf 'const char *greeting(void) { return "hello from libhello"; }\\n' > lib.c
            printf '#include <stdio.h>\\nconst char *greeting(void);\\nint main(void) { puts(greeting()); return 0; }\\n' > main.c
            gcc -shared -fPIC -Wl,-soname,libhello.so.1 -o root/usr/lib/libhello.so.1 lib.c
            gcc -o root/usr/bin/hello main.c -Lroot/usr/lib -l:libhello.so.1
            """, postinst: "ldconfig; echo hello-postinst-ran")
    }

    @Test func aDebPassesEveryStepInDebian() throws {
        guard let f = try Fixture.get() else { return }
        let deb = try helloDeb(f)
        let logs = f.r.base + "/logs-hello"
        let res = f.azl(["pkgtest", deb, "--image", "deb12", "--offline", "--json", "--logs", logs])
        #expect(res.status == 0, "\(res)")
        let rows = try f.rows(res)
        #expect(rows.count == 5, "\(res)")
        for s in Self.steps { #expect(rows["deb12 \(s)"]?["outcome"] as? String == "passed", "\(s): \(res)") }
        #expect((rows["deb12 install"]?["message"] as? String ?? "").contains("with apt (manifest debian:12)"), "\(res)")
        #expect((rows["deb12 libraries"]?["message"] as? String) == "2 ELF files checked", "\(res)")
        #expect((rows["deb12 verify"]?["message"] as? String) == "no differences from the package database", "\(res)")
        #expect((rows["deb12 remove"]?["message"] as? String) == "removed, nothing left behind", "\(res)")
        // The full logs stay in the folder named: the postinst's output, the smoke run's.
        #expect(try #require(res.stdout.range(of: logs)) != nil)
        let folder = try #require(try FileManager.default.contentsOfDirectory(atPath: logs).first)
        #expect(try String(contentsOfFile: "\(logs)/\(folder)/install.log", encoding: .utf8).contains("hello-postinst-ran"))
        #expect(try String(contentsOfFile: "\(logs)/\(folder)/smoke.log", encoding: .utf8).contains("hello from libhello"))
        // The table names the logs folder on stderr, one row per step on stdout.
        let table = f.azl(["pkgtest", deb, "--image", "deb12", "--offline"])
        #expect(table.status == 0 && table.stdout.split(separator: "\n").count == 6 && table.stderr.contains("logs: "), "\(table)")
    }

    @Test func aLibraryTheTargetLacksFailsTheLibraryStepNamingIt() throws {
        guard let f = try Fixture.get() else { return }
        let deb = try f.deb("needy", build: """
            printf 'int absent(void) { return 0; }\\n' > lib.c
            printf 'int absent(void);\\nint main(void) { return absent(); }\\n' > main.c
            gcc -shared -fPIC -Wl,-soname,libabsent.so.7 -o libabsent.so.7 lib.c
            gcc -o root/usr/bin/needy main.c -L. -l:libabsent.so.7
            """)
        let res = f.azl(["pkgtest", deb, "--image", "deb12", "--offline", "--json"])
        #expect(res.status == 1, "\(res)")
        let rows = try f.rows(res)
        #expect(rows["deb12 install"]?["outcome"] as? String == "passed", "\(res)")
        #expect(rows["deb12 libraries"]?["outcome"] as? String == "failed", "\(res)")
        #expect(rows["deb12 libraries"]?["message"] as? String == "missing libabsent.so.7, needed by /usr/bin/needy", "\(res)")
        #expect(rows["deb12 remove"]?["outcome"] as? String == "passed", "the later steps still run: \(res)")
    }

    @Test func aFailingPostinstFailsTheInstallNamingTheScript() throws {
        guard let f = try Fixture.get() else { return }
        let deb = try f.deb("badpost", arch: "all", build: "printf '#!/bin/sh\\necho x\\n' > root/usr/bin/badpost; chmod 755 root/usr/bin/badpost",
                            postinst: "echo failing on purpose >&2; exit 1")
        let res = f.azl(["pkgtest", deb, "--image", "deb12", "--offline", "--json"])
        #expect(res.status == 1, "\(res)")
        let rows = try f.rows(res)
        let install = rows["deb12 install"]?["message"] as? String ?? ""
        #expect(rows["deb12 install"]?["outcome"] as? String == "failed", "\(res)")
        #expect(install.hasPrefix("install script failed:") && install.contains("badpost package post-installation script"), "\(res)")
        for s in Self.steps.dropFirst() { #expect(rows["deb12 \(s)"]?["outcome"] as? String == "skipped", "\(s): \(res)") }
    }

    @Test func offlineAMissingDependencyIsTheFailureNamed() throws {
        guard let f = try Fixture.get() else { return }
        let deb = try f.deb("wants", arch: "all", build: "sed -i '1a Depends: azl-no-such-dependency' root/DEBIAN/control")
        let res = f.azl(["pkgtest", deb, "--image", "deb12", "--offline", "--json"])
        #expect(res.status == 1, "\(res)")
        let rows = try f.rows(res)
        #expect(rows["deb12 install"]?["outcome"] as? String == "failed", "\(res)")
        #expect((rows["deb12 install"]?["message"] as? String ?? "").contains("Depends: azl-no-such-dependency"), "\(res)")
    }

    /// No RPM distro rootfs can be fetched here: rpm runs in Debian 12 with Debian's `rpm`
    /// package, installed by apt from Debian's archive inside a sandbox of the image and kept
    /// as an image of its own. (tdnf/dnf: PackageTestTests, on the commands they would run.)
    @Test func anRpmInstallsVerifiesAndRemovesWithRpm() throws {
        guard let f = try Fixture.get() else { return }
        guard FS.exists("/usr/bin/rpmbuild") else { return unavailable("rpmbuild is missing (scripts/setup.sh installs rpm)") }
        let top = try f.r.makeDirectory("rpmbuild")
        try f.sh("""
            mkdir -p SPECS
            cat > SPECS/hello-rpm.spec <<'EOF'
            Name: hello-rpm
            Version: 1.0
            Release: 1
            Summary: pkgtest
            License: MIT
            BuildArch: noarch
            AutoReqProv: no
            %description
            pkgtest
            %install
            mkdir -p %{buildroot}/usr/bin
            printf '#!/bin/sh\\necho hello-rpm 1.0\\n' > %{buildroot}/usr/bin/hello-rpm
            chmod 755 %{buildroot}/usr/bin/hello-rpm
            %files
            /usr/bin/hello-rpm
            EOF
            rpmbuild -bb --define "_topdir \(top)" SPECS/hello-rpm.spec >/dev/null 2>&1
            cp RPMS/noarch/hello-rpm-1.0-1.noarch.rpm \(f.pkgs)/
            """, in: top)
        f.r.chownTree(f.pkgs)
        let out = try f.r.makeDirectory("debrpm")
        let made = f.azl(["run", "--image", "deb12", "--volume", "\(out):/out", "--", "sh", "-c",
                          "apt-get update -q && apt-get install -y -q --no-install-recommends rpm && rm -rf /var/lib/apt/lists/* && tar -C / --one-file-system -cf /out/root.tar ."])
        if made.status != 0 && (made.stdout + made.stderr).contains("Could not resolve") {
            return unavailable("Debian's archive cannot be reached to install rpm: \(made.stderr.suffix(300))")
        }
        #expect(made.status == 0, "\(made)")
        let imported = f.azl(["import", "--name", "debrpm", out + "/root.tar", "-q"])
        #expect(imported.status == 0, "\(imported)")
        try? FileManager.default.removeItem(atPath: out + "/root.tar")

        let res = f.azl(["pkgtest", f.pkgs + "/hello-rpm-1.0-1.noarch.rpm", "--image", "debrpm", "--offline", "--json"])
        #expect(res.status == 0, "\(res)")
        let rows = try f.rows(res)
        for s in Self.steps { #expect(rows["debrpm \(s)"]?["outcome"] as? String == "passed", "\(s): \(res)") }
        #expect(rows["debrpm install"]?["message"] as? String == "with rpm (found /usr/bin/rpm in the image)", "\(res)")
    }

    /// An .apk as abuild makes it: a gzip'd control segment (.PKGINFO, its tar end cut off)
    /// followed by the gzip'd data tar whose sha256 .PKGINFO names; files carry their SHA1.
    func helloApk(_ f: Fixture) throws -> String {
        let dir = try f.r.makeDirectory("apk")
        let exe = "#!/bin/sh\necho hello-apk 1.0\n"
        func hash(_ tool: String, _ file: String) throws -> String {
            let res = Subprocess.run(["/usr/bin/" + tool, file])
            guard res.status == 0, let h = res.stdout.split(separator: " ").first else { throw AZLError(.io, "\(tool): \(res)") }
            return String(h)
        }
        try Data(exe.utf8).write(to: URL(fileURLWithPath: dir + "/exe"))
        var data = TarBuilder()
        data.dir("usr/")
        data.dir("usr/bin/")
        data.entry("usr/bin/hello-apk", .file, mode: 0o755, content: Data(exe.utf8),
                   pax: [("APK-TOOLS.checksum.SHA1", try hash("sha1sum", dir + "/exe"))])
        try data.finished().write(to: URL(fileURLWithPath: dir + "/data.tar"))
        try f.sh("gzip -n -9 data.tar", in: dir)
        let info = "pkgname = hello-apk\npkgver = 1.0-r0\npkgdesc = pkgtest\narch = noarch\nsize = \(exe.utf8.count)\ndatahash = \(try hash("sha256sum", dir + "/data.tar.gz"))\n"
        var control = TarBuilder()
        control.file(".PKGINFO", info)
        try control.data.write(to: URL(fileURLWithPath: dir + "/control.tar"))
        try f.sh("gzip -n -9 control.tar && cat control.tar.gz data.tar.gz > \(f.pkgs)/hello-apk-1.0-r0.apk", in: dir)
        f.r.chownTree(f.pkgs)
        return f.pkgs + "/hello-apk-1.0-r0.apk"
    }

    @Test func anApkInstallsInAlpineOffline() throws {
        guard let f = try Fixture.get() else { return }
        let res = f.azl(["pkgtest", try helloApk(f), "--image", "alp", "--offline", "--json"])
        #expect(res.status == 0, "\(res)")
        let rows = try f.rows(res)
        for s in Self.steps { #expect(rows["alp \(s)"]?["outcome"] as? String == "passed", "\(s): \(res)") }
        #expect(rows["alp install"]?["message"] as? String == "with apk (manifest alpine:3.20)", "\(res)")
    }

    /// A foreign-arch target: the Alpine aarch64 tree under qemu-user (registered in the
    /// sandbox's own binfmt_misc), picked with --platform as `run` picks it.
    @Test func anApkPassesOnAlpineArm64UnderQemu() throws {
        guard let f = try Fixture.get() else { return }
        for need in [RealRootfs.alpineArm.path, "/usr/bin/qemu-aarch64-static"] where !FS.exists(need) {
            unavailable("pkgtest on arm64: \(need) is missing (../shared/rootfs; scripts/setup.sh installs qemu-user-static)")
            return
        }
        let imported = f.azl(["import", "--name", "alp-arm", RealRootfs.alpineArm.path, "-q"])
        #expect(imported.status == 0 || imported.stderr.contains("exists"), "\(imported)")
        let res = f.azl(["pkgtest", try helloApk(f), "--image", "alp-arm", "--platform", "linux/arm64", "--offline", "--json",
                         "--smoke", "uname -m | grep -x aarch64 && hello-apk"])
        #expect(res.status == 0, "\(res)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as? [String: Any])
        let rows = json["rows"] as? [[String: Any]] ?? []
        #expect(rows.count == Self.steps.count && rows.allSatisfy { $0["outcome"] as? String == "passed" }, "\(res)")
    }

    @Test func twoTargetsGiveTwoTargetsRows() throws {
        guard let f = try Fixture.get() else { return }
        let res = f.azl(["pkgtest", try helloDeb(f), try helloApk(f), "--image", "deb12,alp", "--offline", "--jobs", "2", "--json"])
        #expect(res.status == 0, "\(res)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(res.stdout.utf8)) as? [String: Any])
        let rows = json["rows"] as? [[String: Any]] ?? []
        #expect(rows.map { "\($0["target"] ?? "") \($0["step"] ?? "")" } == ["deb12", "alp"].flatMap { t in Self.steps.map { "\(t) \($0)" } }, "\(res)")
        #expect(rows.allSatisfy { $0["outcome"] as? String == "passed" }, "\(res)")
        let table = f.azl(["pkgtest", try helloDeb(f), try helloApk(f), "--image", "deb12,alp", "--offline", "--smoke", "false"])
        #expect(table.status == 1, "a failing smoke command fails both targets: \(table)")
        #expect(table.stdout.split(separator: "\n").filter { $0.contains(" smoke ") && $0.contains("failed") }.count == 2, "\(table)")
    }

    @Test func ownErrorsAreOneLineAnd125() throws {
        guard let f = try Fixture.get() else { return }
        let missing = f.azl(["pkgtest", f.pkgs + "/nosuch_1.0_amd64.deb", "--image", "deb12"])
        #expect(missing.status == 125 && missing.stderr.split(separator: "\n").count == 1 && missing.stderr.contains("nosuch_1.0_amd64.deb"), "\(missing)")
        let kind = f.azl(["pkgtest", f.state, "--image", "deb12"])
        #expect(kind.status == 125 && kind.stderr.contains("not a .deb, .rpm or .apk"), "\(kind)")
        // An image that cannot install the format is that target's failure, not ours.
        let apkOnDebian = f.azl(["pkgtest", try helloApk(f), "--image", "deb12", "--offline", "--json"])
        #expect(apkOnDebian.status == 1, "\(apkOnDebian)")
        #expect((try f.rows(apkOnDebian)["deb12 install"]?["message"] as? String ?? "").contains("has no tool that installs .apk"), "\(apkOnDebian)")
    }
}
