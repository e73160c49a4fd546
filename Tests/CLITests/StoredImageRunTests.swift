import Core
import Foundation
import Testing
import TestSupport

/// `run --image` through the store (import, then run by name), as the unprivileged user:
/// the shell profile and the image's identity inside, and the cached tree left untouched.
@Suite(.serialized) struct StoredImageRunTests {
    func fixture(sourceLocation: SourceLocation = #_sourceLocation) throws -> StoredImageFixture? {
        guard SandboxFixture.available(.alpineX86, for: "StoredImageRunTests", sourceLocation: sourceLocation) else { return nil }
        return try StoredImageFixture()
    }

    @Test func interactiveShellShowsTheImageInItsPrompt() throws {
        guard let f = try fixture() else { return }
        // sh -i reads $ENV (the profile) even without a terminal.
        let res = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-i"],
                        stdin: Data("echo \"PS1=$PS1\"; echo \"container=$container\"; exit 0\n".utf8))
        #expect(res.status == 0, "\(res)")
        #expect(res.stdout.contains("PS1=[azl-shell alp:3.20] "), "\(res)")
        #expect(res.stdout.contains("container=azl-shell"), "\(res)")
        let env = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c",
                         "echo $AZL_SHELL_IMAGE; echo $debian_chroot; cat /etc/profile.d/zz-azl-shell.sh | head -1"])
        #expect(env.status == 0, "\(env)")
        #expect(env.stdout.split(separator: "\n").prefix(3).map(String.init)
                == ["alp:3.20", "azl-shell alp:3.20", "# azl-shell: sourced by login and interactive shells inside the sandbox"], "\(env)")
    }

    @Test func writesNeverReachTheCachedTree() throws {
        guard let f = try fixture() else { return }
        let before = treeFingerprint(try f.tree)
        let w = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c",
                       "echo x > /etc/written && rm /bin/ls && mkdir /usr/new && cat /etc/written"])
        #expect(w.status == 0 && w.stdout == "x\n", "\(w)")
        let again = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", "test ! -e /etc/written && test -e /bin/ls && test ! -e /usr/new"])
        #expect(again.status == 0, "a write survived into the next run: \(again)")
        #expect(treeFingerprint(try f.tree) == before, "the cached tree changed")
    }

    @Test func unknownImageIsOneLineAnd125() throws {
        guard let f = try fixture() else { return }
        let res = f.azl(["run", "--image", "nosuch-image-xyz", "--", "true"])
        #expect(res.status == 125, "\(res)")
        let lines = res.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("nosuch-image-xyz"), "\(res)")
    }

    @Test func optionsAndTheCommandsOwnDashes() throws {
        guard let f = try fixture() else { return }
        let help = f.azl(["run", "--help"])
        #expect(help.status == 0 && help.stdout.contains("OVERVIEW: Run a command inside an image"), "\(help)")
        let bogus = f.azl(["run", "--bogus", "--image", "alp:3.20"])
        #expect(bogus.status == 125 && bogus.stderr.contains("Unknown option '--bogus'"), "\(bogus)")
        // After the first word that is not ours, everything is the command's, as with podman run.
        let ls = f.azl(["run", "--image", "alp:3.20", "-w", "/etc", "ls", "-d", "-1", "/etc/os-release"])
        #expect(ls.status == 0 && ls.stdout == "/etc/os-release\n", "\(ls)")
        let dashdash = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", "echo \"$0 $1\"", "--help", "-x"])
        #expect(dashdash.status == 0 && dashdash.stdout == "--help -x\n", "\(dashdash)")
    }
}
