import Core
import Foundation
import Testing
import TestSupport

/// The shortcuts of the warm path in the C runtime keep what the plan asks for (found by a review
/// of them, each failing on the first version).
@Suite(.serialized) struct WarmPathRegressionTests {
    /// mounts.c's one-entry parent-folder cache (last_parent) must not outlive a mount that
    /// reaches its folder through the image's symlinks: the image has /pd -> /etc/profile.d
    /// (cached by the shell profile's file), a volume at /pd lands on /etc/profile.d, and a file
    /// volume at /etc/profile.d/x whose place is a symlink (ensure_file's slow path, through
    /// parent_of) must be made and mounted in the folder that shows, not the covered one.
    @Test func aFileVolumeAfterAVolumeOnAnAliasOfItsFolderShows() throws {
        guard SandboxFixture.available(.alpineX86, for: "WarmPathRegressionTests") else { return }
        let f = try SandboxFixture.shared()
        let u = f.rootless
        let tree = try u.makeDirectory("aliasing-rootfs")
        let files = try u.makeDirectory("files")
        let dir = try u.makeDirectory("aliased")
        #expect(u.run(["/bin/cp", "-a", try f.rootfs(.alpineX86) + "/.", tree]).status == 0)
        #expect(u.run(["/bin/ln", "-s", "/etc/profile.d", tree + "/pd"]).status == 0)
        #expect(u.run(["/bin/ln", "-s", "/nonexistent", dir + "/x"]).status == 0)
        try "B\n".write(toFile: files + "/b", atomically: false, encoding: .utf8)
        u.chownTree(files)
        let res = u.run([u.azlShell, "run", "--rootfs", tree, "--volume", dir + ":/pd", "--volume", files + "/b:/etc/profile.d/x",
                         "cat", "/etc/profile.d/x"])
        #expect(res.status == 0 && res.stdout == "B\n", "the file volume is not where it was asked for: \(res)")
    }

    /// Pid 1 builds with umask 0 and mounts.c relies on that (no chmod after mkdirat/openat):
    /// an environment's pid 1 (env.c, the holder) must too, or under the user's umask 022 its
    /// /tmp and /dev/shm would lose their world-writable bits (1777 & ~022 = 1755).
    @Test func anEnvironmentsTmpIsWorldWritableWhateverTheUmask() throws {
        guard SandboxFixture.available(.alpineX86, for: "WarmPathRegressionTests") else { return }
        let f = try StoredImageFixture()
        func azl(_ args: [String]) -> RunResult {
            f.r.run(["/bin/sh", "-c", "umask 022; exec \"$0\" \"$@\"", f.r.azlShell] + args, env: ["AZL_SHELL_ROOT": f.state])
        }
        defer { _ = azl(["rm", "--force", "um"]) }
        let run = azl(["run", "--image", "alp:3.20", "--", "stat", "-c", "%a", "/tmp", "/dev/shm"])
        #expect(run.status == 0 && run.stdout == "1777\n1777\n", "run: \(run)")
        #expect(azl(["create", "um", "--image", "alp:3.20"]).status == 0)
        let env = azl(["exec", "um", "--", "stat", "-c", "%a", "/tmp", "/dev/shm"])
        #expect(env.status == 0 && env.stdout == "1777\n1777\n", "environment: \(env)")
    }

    /// The image's tree lock (held by the supervisor, not close-on-exec) never takes the place of
    /// a stdio fd the caller closed: the command would get a file of the store, which is hidden
    /// from every sandbox, and could unlock it (flock LOCK_UN) under the running sandbox. Cold
    /// (azl-shell-cli) and warm (the front end's replay) alike.
    @Test func aClosedStdioFdIsNotTheStoresLock() throws {
        guard SandboxFixture.available(.alpineX86, for: "WarmPathRegressionTests") else { return }
        let f = try StoredImageFixture()
        let out = try f.r.makeDirectory("stdio-closed")
        for closed in ["0<&-", "1>&- 2>&-", "0<&- 1>&- 2>&-"] {
            for pass in ["cold", "warm"] {
                let r = f.r.run(["/bin/sh", "-c", "exec \"$0\" \"$@\" " + closed, f.r.azlShell, "run", "--image", "alp:3.20",
                                 "--volume", out + ":/out", "--", "/bin/sh", "-c", "ls -l /proc/$$/fd/ > /out/fds", closed],
                                env: ["AZL_SHELL_ROOT": f.state])
                let fds = (try? String(contentsOfFile: out + "/fds", encoding: .utf8)) ?? "none"
                #expect(r.status == 0 && fds.contains("fds") && !fds.contains(".lock"), "\(closed), \(pass): \(fds)\n\(r)")
            }
        }
    }
}
