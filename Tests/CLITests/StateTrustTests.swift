import Core
import Foundation
import Testing
import TestSupport

/// Issue 10: nothing a sandboxed command can write decides what a later run does on the host.
/// Each test plays the attack the review found, as the unprivileged user.
@Suite(.serialized) struct StateTrustTests {
    func fixture() throws -> StoredImageFixture? {
        if let reason = SandboxFixture.unavailableReason(.alpineX86) {
            unavailable("StateTrustTests: \(reason)")
            return nil
        }
        return try StoredImageFixture()
    }

    func files(_ dir: String, suffix: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
    }

    func write(_ bytes: [UInt8], to path: String, owner r: Rootless) throws {
        try FS.mkdirs((path as NSString).deletingLastPathComponent, mode: 0o700)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        r.chownTree(r.base)
    }

    /// Finding 1: `run --image X cmd --root ./sysroot` once took the command's own `--root` as
    /// ours and replayed plans from `./sysroot/cache/plans`, which the sandbox can write. Here
    /// the attacker's entry is the real one for that command line, its command changed to leave
    /// a mark on the host: replayed neither from the command's folder nor, without its MAC,
    /// from the real one.
    @Test func aPlantedPlanIsNeverReplayed() throws {
        guard let f = try fixture() else { return }
        let work = try f.r.makeDirectory("w")
        let quiet = ": " + String(repeating: "A", count: 30)
        let evil = "touch PWNED; : " + String(repeating: "A", count: 17)
        #expect(quiet.utf8.count == evil.utf8.count)
        let cmd = ["run", "--image", "alp:3.20", "sh", "-c", quiet, "--root", "./sysroot"]
        let first = f.azl(cmd, cwd: work)
        #expect(first.status == 0, "\(first)")
        let name = try #require(f.plans.first, "no plan stored: \(first)")
        let real = try [UInt8](Data(contentsOf: URL(fileURLWithPath: f.state + "/cache/plans/" + name)))
        let at = try #require(Data(real).range(of: Data(quiet.utf8)), "the command is in the entry")
        var forged = real
        forged.replaceSubrange(at, with: Array(evil.utf8))

        try write(forged, to: work + "/sysroot/cache/plans/" + name, owner: f.r)
        let planted = f.azl(cmd, cwd: work)
        #expect(planted.status == 0, "\(planted)")
        #expect(!FileManager.default.fileExists(atPath: work + "/PWNED"), "a plan from the command's --root folder ran: \(planted)")

        try write(forged, to: f.state + "/cache/plans/" + name, owner: f.r)
        let inCache = f.azl(cmd, cwd: work)
        #expect(inCache.status == 0, "\(inCache)")
        #expect(!FileManager.default.fileExists(atPath: work + "/PWNED"), "an entry without its MAC ran: \(inCache)")
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: f.state + "/cache/plans/" + name))) != forged,
                "the forged entry is replaced by a real one")
    }

    /// Finding 2: with the default store and cache under $HOME and AZL_SHELL_ROOT elsewhere, a run
    /// from $HOME could write the default store and plan cache.
    @Test func everyStoreOfTheUserIsHiddenNotOnlyThisRuns() throws {
        guard let f = try fixture() else { return }
        let home = f.r.home
        let imp = f.r.run([f.r.azlShell, "import", "--name", "alp:3.20", RealRootfs.alpineX86.path, "-q"], cwd: home)
        #expect(imp.status == 0, "\(imp)")
        let warm = f.r.run([f.r.azlShell, "run", "--image", "alp:3.20", "--", "true"], cwd: home)
        #expect(warm.status == 0 && !files(home + "/.cache/azl-shell/plans").isEmpty, "\(warm)")
        let store = home + "/.local/share/azl-shell", cache = home + "/.cache/azl-shell"
        let attack = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", """
            ls -A \(store) | wc -l; ls -A \(cache) | wc -l
            mkdir -p \(cache)/plans 2>/dev/null && echo planted; touch \(store)/images/x.json 2>/dev/null && echo wrote
            touch ./ok && echo ok
            """], cwd: home)
        #expect(attack.status == 0 && attack.stdout == "0\n0\nok\n", "\(attack)")
        #expect(!FileManager.default.fileExists(atPath: store + "/images/x.json"))
    }

    /// Bind-mount the folder above the store at ALIAS (as root), then run from CWD, where the
    /// store is SEEN_AS: it must be empty and unwritable, the rest of the folder writable.
    func expectStoreHidden(_ f: StoredImageFixture, bindMountAt alias: String, seenAs: String, cwd: String) throws {
        let m = Subprocess.run(["/bin/mount", "--bind", f.r.base, alias])
        try #require(m.status == 0, "\(m)")
        let res = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c",
                         "ls -A \(seenAs) | wc -l; touch \(seenAs)/images/x.json 2>/dev/null && echo wrote; touch \(seenAs)/../ok && echo ok"], cwd: cwd)
        #expect(res.status == 0 && res.stdout == "0\nok\n", "the store was shown at \(seenAs): \(res)")
        #expect(!FileManager.default.fileExists(atPath: f.state + "/images/x.json"))
    }

    /// Finding 4: a second mountpoint of the folder holding the store (a bind mount of it used as
    /// the working directory) is the same folder: state is recognised by device and inode.
    @Test func aBindMountAliasOfTheStoreShowsNothing() throws {
        guard let f = try fixture() else { return }
        guard geteuid() == 0 else {
            unavailable("StateTrustTests.aBindMountAliasOfTheStoreShowsNothing: making a bind mount needs root (CI runs the tests as root)")
            return
        }
        var template = Array("/tmp/azl-alias-XXXXXX".utf8CString)
        let alias = String(cString: try #require(mkdtemp(&template)))
        defer { _ = Subprocess.run(["/bin/umount", alias]); rmdir(alias) }
        try expectStoreHidden(f, bindMountAt: alias, seenAs: "./state", cwd: alias)
        // A volume through the alias is refused as the store itself is.
        let vol = f.azl(["run", "--image", "alp:3.20", "--volume", alias + "/state/cache:/c", "--", "touch", "/c/x"])
        #expect(vol.status == 125 && vol.stderr.contains("azl-shell's own state"), "\(vol)")
    }

    /// Finding 3: a concurrent swap of a bind source (a folder) with a symlink to the plan cache,
    /// between planning and mounting, once got the real cache bound read-write 1 run in 12. Each
    /// source is now opened once, without following symlinks, and mounted from that fd.
    @Test func aSwapRaceNeverBindsTheCache() throws {
        guard let f = try fixture() else { return }
        let work = try f.r.makeDirectory("race")
        let d = work + "/d", l = work + "/l", stop = work + "/stop"
        try FS.mkdirs(d)
        FileManager.default.createFile(atPath: d + "/inside", contents: nil)
        try FileManager.default.createSymbolicLink(atPath: l, withDestinationPath: f.state + "/cache")
        f.r.chownTree(work)
        let swapper = """
            import ctypes, os, sys, time
            libc = ctypes.CDLL(None, use_errno=True)
            a, b, stop = (x.encode() for x in sys.argv[1:4])
            end, n = time.time() + 300, 0
            print("swapping", flush=True)
            while not os.path.exists(stop) and time.time() < end:
                libc.renameat2(-100, a, -100, b, 2)   # AT_FDCWD, RENAME_EXCHANGE
                n += 1
            """
        let race = try LiveProcess(rootless: f.r, ["/usr/bin/python3", "-c", swapper, d, l, stop])
        defer { FileManager.default.createFile(atPath: stop, contents: nil); _ = race.wait() }
        #expect(race.waitForLine("swapping"))
        var ran = 0, refused = 0
        for _ in 0..<30 {
            let r = f.azl(["run", "--image", "alp:3.20", "--volume", d + ":/v", "--", "sh", "-c", "touch /v/PWNED 2>/dev/null; ls /v"], cwd: work)
            if r.status == 0 {
                ran += 1
                #expect(r.stdout.contains("inside"), "the volume was not the folder: \(r)")
            } else {
                refused += 1
                #expect(r.status == 125 && (r.stderr.contains("changed while") || r.stderr.contains("own state") || r.stderr.contains("does not exist")),
                        "\(r)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: f.state + "/cache/PWNED"), "the plan cache was bound writable")
        #expect(ran + refused == 30 && ran > 0, "ran \(ran), refused \(refused)")
    }

    /// The compiled seccomp program is read from the cache on a miss: a program copied from a
    /// looser profile's file (its own MAC is right, for its own name) must not pass.
    @Test func aSeccompProgramOfAnotherProfileIsRefused() throws {
        guard let f = try fixture() else { return }
        let dir = f.state + "/cache/seccomp"
        let profile = f.azl(["run", "--image", "alp:3.20", "--", "uname", "-r"])
        #expect(profile.status == 0, "\(profile)")
        let strict = try #require(files(dir, suffix: ".bpf").first, "no program cached")
        let host = f.azl(["run", "--image", "alp:3.20", "--kernel", "host", "--", "uname", "-r"])
        #expect(host.status == 0 && host.stdout != profile.stdout, "\(host) vs \(profile)")
        let loose = try #require(files(dir, suffix: ".bpf").first { $0 != strict }, "no second program")
        try Data(contentsOf: URL(fileURLWithPath: dir + "/" + loose)).write(to: URL(fileURLWithPath: dir + "/" + strict))
        // A new command line: the plan cache misses and the policy is read from the seccomp cache.
        let after = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", "uname -r"])
        #expect(after.status == 0 && after.stdout == profile.stdout, "a swapped program answered: \(after)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + strict)) != Data(contentsOf: URL(fileURLWithPath: dir + "/" + loose)),
                "the refused file is compiled again")
        // Damaged: a miss too.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/" + strict)))
        bytes[bytes.count / 2] ^= 0xff
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + strict))
        let damaged = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", "uname -r; true"])
        #expect(damaged.status == 0 && damaged.stdout == profile.stdout, "\(damaged)")
    }

    /// Finding 5: a command that flocks the store's lock files held every later run. The store is
    /// hidden from every sandbox, so no lock can be opened, and another run goes on.
    @Test func aSandboxCannotHoldTheStoresLocks() throws {
        guard let f = try fixture() else { return }
        let holder = try LiveProcess(rootless: f.r, [f.r.azlShell, "run", "--image", "alp:3.20", "--", "sh", "-c", """
            n=0; for l in \(f.state)/locks/* \(f.state)/tmp/*; do [ -e "$l" ] && exec 9<"$l" && flock -x 9 && n=$((n+1)); done
            echo "held $n"; exec sleep 600
            """], env: ["AZL_SHELL_ROOT": f.state], cwd: f.r.base)
        defer { holder.signal(SIGKILL); _ = holder.wait() }
        #expect(holder.waitForLine("held 0"), "a lock was reachable: \(holder.output)")
        let other = f.r.run(["/usr/bin/timeout", "60", f.r.azlShell, "run", "--image", "alp:3.20", "--", "echo", "ran"],
                            env: ["AZL_SHELL_ROOT": f.state])
        #expect(other.status == 0 && other.stdout == "ran\n", "\(other)")
    }

    /// Where no secret can be had (a keyring-less container; AZL_SHELL_STATE_KEY=off says so),
    /// nothing is cached or kept, and runs are as correct as ever.
    @Test func withoutTheStateSecretNothingIsKeptAndRunsWork() throws {
        guard let f = try fixture() else { return }
        for _ in 0..<2 {
            let r = f.azl(["run", "--image", "alp:3.20", "--", "uname", "-r"], env: ["AZL_SHELL_STATE_KEY": "off"])
            #expect(r.status == 0 && r.stdout.hasPrefix("6."), "\(r)")
        }
        #expect(f.plans.isEmpty, "\(f.plans)")
        #expect(files(f.state + "/cache/seccomp", suffix: ".bpf").isEmpty)
        let states = files(f.state + "/cache/userns").compactMap { try? String(contentsOfFile: f.state + "/cache/userns/" + $0, encoding: .utf8) }
        #expect(!states.contains { $0.hasPrefix("azl-userns") }, "a keeper state was written: \(states)")
    }

    // MARK: what a red-team pass of the guards found

    /// `~/.local` a symlink to a data disk (a common dotfile layout): the store is not below the
    /// working directory, but the link is, and a command could swap it for a folder with a store
    /// of its own making. The link is pinned (a mountpoint: it cannot be removed or renamed).
    @Test func aSymlinkOnTheWayToTheStoreCannotBeReplaced() throws {
        guard let f = try fixture() else { return }
        let home = f.r.home, data = try f.r.makeDirectory("data-local")
        try FS.removeTree(home + "/.local")   // the fixture's import remembered its store there
        try FileManager.default.createSymbolicLink(atPath: home + "/.local", withDestinationPath: data)
        lchown(home + "/.local", f.r.uid, f.r.gid)
        let imp = f.r.run([f.r.azlShell, "import", "--name", "alp:3.20", RealRootfs.alpineX86.path, "-q"], cwd: home)
        #expect(imp.status == 0 && FS.isDirectory(data + "/share/azl-shell/images"), "\(imp)")
        let attack = f.r.run([f.r.azlShell, "run", "--image", "alp:3.20", "--", "sh", "-c", """
            rm .local 2>/dev/null && echo removed; mv .local .l2 2>/dev/null && echo moved
            mkdir -p .local/share/azl-shell/images 2>/dev/null && echo planted; [ -L .local ] && echo link; touch ./ok && echo ok
            """], cwd: home)
        #expect(attack.status == 0 && attack.stdout == "link\nok\n", "\(attack)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: home + "/.local")) == data)
    }

    /// A host mount below the working directory that is another mount of the folder holding the
    /// store (`mount --bind /home /srv/h`): the walk up from the store never passes it, so the
    /// bind's submounts are checked like the bind itself.
    @Test func aSubmountAliasOfTheStoreIsHidden() throws {
        guard let f = try fixture() else { return }
        guard geteuid() == 0 else {
            unavailable("StateTrustTests.aSubmountAliasOfTheStoreIsHidden: making a bind mount needs root (CI runs the tests as root)")
            return
        }
        let work = try f.r.makeDirectory("sub")
        let alias = work + "/h"
        try FS.mkdirs(alias)
        f.r.chownTree(work)
        defer { _ = Subprocess.run(["/bin/umount", alias]) }
        try expectStoreHidden(f, bindMountAt: alias, seenAs: "h/state", cwd: work)
    }

    /// A symlink a command left in the working directory must not choose what a later run binds:
    /// `ln -s ~ out`, then `--volume ./out:/out`, would give the sandbox the home folder.
    @Test func aVolumeDoesNotFollowASymlinkOutOfTheWorkingDirectory() throws {
        guard let f = try fixture() else { return }
        let work = try f.r.makeDirectory("vol")
        let plant = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", "ln -s \(f.r.home) out && mkdir in && ln -s in inlink"], cwd: work)
        #expect(plant.status == 0, "\(plant)")
        let res = f.azl(["run", "--image", "alp:3.20", "--volume", "./out:/out", "--", "touch", "/out/.profile"], cwd: work)
        #expect(res.status == 125 && res.stderr.contains("symlink inside the working directory"), "\(res)")
        #expect(!FileManager.default.fileExists(atPath: f.r.home + "/.profile"))
        // A link that stays inside the working directory is fine: the sandbox can write there anyway.
        let inside = f.azl(["run", "--image", "alp:3.20", "--volume", "./inlink:/i", "--", "touch", "/i/x"], cwd: work)
        #expect(inside.status == 0 && FileManager.default.fileExists(atPath: work + "/in/x"), "\(inside)")
    }

    /// A store used once with AZL_SHELL_ROOT is hidden from runs that do not name it.
    @Test func aStoreUsedBeforeIsHiddenFromRunsThatDoNotNameIt() throws {
        guard let f = try fixture() else { return }
        // f.state was made with AZL_SHELL_ROOT; this run uses the default store under HOME.
        let imp = f.r.run([f.r.azlShell, "import", "--name", "alp:3.20", RealRootfs.alpineX86.path, "-q"], cwd: f.r.home)
        #expect(imp.status == 0, "\(imp)")
        let res = f.r.run([f.r.azlShell, "run", "--image", "alp:3.20", "--", "sh", "-c",
                           "ls -A state | wc -l; touch state/images/x.json 2>/dev/null && echo wrote; echo ok"], cwd: f.r.base)
        #expect(res.status == 0 && res.stdout == "0\nok\n", "the other store was shown: \(res)")
    }

    /// A bind two levels above the state folders (a run from the folder holding the home): each
    /// folder on the way is made a mountpoint once, so covering the next state folder does not
    /// lay a fresh copy of the home over the covers made before it.
    @Test func everyStateFolderUnderOneBindStaysCovered() throws {
        guard let f = try fixture() else { return }
        let home = f.r.home, above = (home as NSString).deletingLastPathComponent
        let store = home + "/.local/share/azl-shell", cache = home + "/.cache/azl-shell", config = home + "/.config/azl-shell"
        for d in [store, cache, config] { try FS.mkdirs(d, mode: 0o700) }
        f.r.chownTree(home)
        let res = f.azl(["run", "--image", "alp:3.20", "--", "sh", "-c", """
            for d in \(store) \(cache) \(config); do touch $d/PWN 2>/dev/null && echo wrote $d; done
            (ls -A \(store); ls -A \(cache)) | wc -l; touch \(home)/ok && echo ok
            """], cwd: above)
        #expect(res.status == 0 && res.stdout == "0\nok\n", "\(res)")
        for d in [store, cache, config] { #expect(!FileManager.default.fileExists(atPath: d + "/PWN"), "\(d) was written") }
    }

    /// A folder of one volume swapped for a symlink (by a command of a run that binds it) does
    /// not choose what another volume of the next run binds.
    @Test func aSymlinkInAWritableVolumeDoesNotChooseAnotherVolume() throws {
        guard let f = try fixture() else { return }
        let a = try f.r.makeDirectory("vol"), secret = try f.r.makeDirectory("secret")
        try FS.mkdirs(a + "/c")
        f.r.chownTree(a)
        let args = ["run", "--image", "alp:3.20", "--volume", a + ":/a", "--volume", a + "/c:/c", "--"]
        let swap = f.azl(args + ["sh", "-c", "rmdir /a/c && ln -s \(secret) /a/c && echo swapped"], cwd: f.r.home)
        #expect(swap.status == 0 && swap.stdout == "swapped\n", "\(swap)")
        let next = f.azl(args + ["ls", "/c"], cwd: f.r.home)
        #expect(next.status == 125 && next.stderr.contains("is a symlink inside a folder this sandbox can write"), "\(next)")
    }
}
