import Core
import Foundation
import Testing
import TestSupport

/// Issue 14, part 1: foreign-arch images run rootless through qemu-user registered in the
/// sandbox's own binfmt_misc, as the unprivileged user, on the real aarch64 tarballs.
@Suite(.serialized) struct CrossArchTests {
    static let shared = Result<StoredImageFixture, Error> { try StoredImageFixture(images: [("alparm:3.20", .alpineArm), ("almaarm:9", .almaArm), ("alpx:3.20", .alpineX86)]) }
    static let qemu = "/usr/bin/qemu-aarch64-static"

    /// The fixture, or nil with the reason said: the foreign tarballs are aarch64, so this
    /// machine must be an x86_64 one with qemu-user-static and a kernel of 6.7 or later.
    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> StoredImageFixture? {
        #if !arch(x86_64)
        notApplicableHere("CrossArchTests: the foreign tarballs are aarch64, this machine's own architecture")
        return nil
        #else
        guard SandboxFixture.available(.alpineX86, for: "CrossArchTests", sourceLocation: sourceLocation) else { return nil }
        for r in [RealRootfs.alpineArm, .almaArm] where !FileManager.default.fileExists(atPath: r.path) {
            unavailable("CrossArchTests: \(r.path) is missing", sourceLocation: sourceLocation)
            return nil
        }
        guard access(Self.qemu, X_OK) == 0 else {
            unavailable("CrossArchTests: \(Self.qemu) is missing (scripts/setup.sh installs qemu-user-static)", sourceLocation: sourceLocation)
            return nil
        }
        return try Self.shared.get()
        #endif
    }

    @Test func importReadsTheArchitectureFromTheTreeAndImagesShowsIt() throws {
        guard let f = try fixture() else { return }
        let json = f.azl(["images", "--json"])
        #expect(json.status == 0, "\(json)")
        let recs = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        func arch(_ name: String) -> String? { recs.first { $0["name"] as? String == name }?["architecture"] as? String }
        #expect(arch("alparm") == "arm64" && arch("almaarm") == "arm64" && arch("alpx") == "amd64", "\(recs)")
        let table = f.azl(["images"])
        let header = try #require(table.stdout.split(separator: "\n").first)
        #expect(header.contains("ARCH"))
        #expect(table.stdout.split(separator: "\n").contains { $0.hasPrefix("alparm ") && $0.contains(" arm64 ") }, "\(table)")

        // --platform overrides what the ELF headers say (the same tree, another record).
        let over = f.azl(["import", "--json", "--platform", "linux/amd64", "--name", "said-amd64", RealRootfs.alpineArm.path])
        #expect(over.status == 0 && over.stdout.contains("\"architecture\" : \"amd64\""), "\(over)")
        let bad = f.azl(["import", "--platform", "windows/amd64", "--name", "w", RealRootfs.alpineArm.path])
        #expect(bad.status == 125 && bad.stderr.contains("only linux images run"), "\(bad)")
    }

    @Test func anAarch64AlpineRunsWithTheProfilesReleaseAndAarch64Machine() throws {
        guard let f = try fixture() else { return }
        let native = f.azl(["run", "--image", "alpx:3.20", "--", "uname", "-r"])
        #expect(native.status == 0, "\(native)")
        let dir = try f.r.makeDirectory("xarch-script")
        try "#!/bin/sh\necho \"script on $(uname -m)\"\n".write(toFile: dir + "/s.sh", atomically: true, encoding: .utf8)
        f.r.chownTree(dir)
        let r = f.azl(["run", "--image", "alparm:3.20", "--platform", "linux/arm64", "--volume", dir + ":/t:ro", "--",
                        "sh", "-c", "uname -m; uname -r; sh /t/s.sh; apk --version; cat /proc/sys/fs/binfmt_misc/qemu-aarch64"])
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "aarch64", "\(r)")
        // The same distro, the same profile: the release does not depend on the architecture.
        #expect(lines.count > 1 && lines[1] == native.stdout.trimmingCharacters(in: .newlines), "\(r) vs \(native)")
        #expect(lines.contains("script on aarch64"))
        #expect(lines.contains { $0.hasPrefix("apk-tools") && $0.hasSuffix("compiled for aarch64.") }, "\(r)")
        // The sandbox's own registration, with the interpreter opened at registration.
        #expect(lines.contains("interpreter \(Self.qemu)") && lines.contains { $0.hasPrefix("flags:") && $0.contains("F") }, "\(r)")

        // Without --platform the recorded architecture decides; --kernel host still says aarch64 (qemu's answer).
        let host = f.azl(["run", "--image", "alparm:3.20", "--kernel", "host", "--", "uname", "-m"])
        #expect(host.status == 0 && host.stdout == "aarch64\n", "\(host)")
    }

    /// The "micro" AlmaLinux image ships no rpm or dnf: its shell and coreutils stand in.
    @Test func anAarch64AlmaLinuxRunsItsShellAndCoreutils() throws {
        guard let f = try fixture() else { return }
        let r = f.azl(["run", "--image", "almaarm:9", "--kernel", "azurelinux-3.0", "--", "bash", "-c", "uname -m; uname -r; ls --version | head -n 1"])
        #expect(r.status == 0, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3 && lines[0] == "aarch64", "\(r)")
        #expect(lines.count == 3 && lines[1] == "6.6.121.1-2.azl3", "\(r)")
        #expect(lines.count == 3 && lines[2].hasPrefix("ls (GNU coreutils)"), "\(r)")
    }

    @Test func aMissingInterpreterIsOneLineNamingThePackage() throws {
        guard let f = try fixture() else { return }
        let r = f.azl(["run", "--image", "alparm:3.20", "--", "true"], env: ["AZL_SHELL_QEMU_AARCH64": "/nonexistent/qemu-aarch64-static"])
        #expect(r.status == 125, "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("qemu-user-static")
                && r.stderr.contains("/nonexistent/qemu-aarch64-static"), "\(r)")
        // A setting that names it is followed (and a cached plan does not outlive the change).
        let ok = f.azl(["run", "--image", "alparm:3.20", "--", "uname", "-m"], env: ["AZL_SHELL_QEMU_AARCH64": Self.qemu])
        #expect(ok.status == 0 && ok.stdout == "aarch64\n", "\(ok)")
    }

    @Test func aPlatformTheStoredImageIsNotForIsRefused() throws {
        guard let f = try fixture() else { return }
        let r = f.azl(["run", "--image", "alpx:3.20", "--platform", "linux/arm64", "--", "true"])
        #expect(r.status == 125 && r.stderr.contains("linux/amd64 image, not linux/arm64"), "\(r)")
    }

    /// An environment over a foreign image: every session runs under qemu-user as `run` does;
    /// a platform the stored image is not for is refused at create.
    @Test func anEnvironmentOverAnAarch64ImageRunsItsSessionsUnderQemu() throws {
        guard let f = try fixture() else { return }
        let c = f.azl(["create", "armdev", "--image", "alparm:3.20", "--platform", "linux/arm64"])
        #expect(c.status == 0, "\(c)")
        defer { _ = f.azl(["rm", "--force", "armdev"]) }
        let r = f.azl(["exec", "armdev", "--", "sh", "-c", "uname -m; echo kept > /etc/armdev"])
        #expect(r.status == 0 && r.stdout == "aarch64\n", "\(r)")
        let again = f.azl(["exec", "armdev", "--", "cat", "/etc/armdev"])
        #expect(again.status == 0 && again.stdout == "kept\n", "\(again)")
        let wrong = f.azl(["create", "wrongdev", "--image", "alpx:3.20", "--platform", "linux/arm64"])
        #expect(wrong.status == 125 && wrong.stderr.contains("not linux/arm64"), "\(wrong)")
    }
}
