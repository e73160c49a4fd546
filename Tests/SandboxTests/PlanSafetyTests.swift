import Foundation
import Core
import Testing
@testable import Sandbox
@testable import SandboxLaunch
import SandboxRuntime

/// What keeps a plan safe whatever the host looks like (the store stays read-only, symlinked
/// host paths are resolved on the host), and what makes two inputs the same plan-cache key.
struct PlanSafetyTests {
    static let store = "/home/u/.local/share/azl-shell"
    static let rootfs = store + "/trees/abc/rootfs"

    func plan(cwd: String = "/home/u", volumes: [String] = [], resolve: @escaping (String) -> String = { $0 },
              edit: (inout RunRequest) -> Void = { _ in }) throws -> SandboxPlan {
        var r = RunRequest(rootfs: PlanSafetyTests.rootfs, imageName: "alp")
        r.command = ["true"]
        r.volumes = volumes
        r.stateFolders = [(PlanSafetyTests.store, true), ("/home/u/.cache/azl-shell", true), ("/home/u/.config/azl-shell", false)]
        edit(&r)
        let host = HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/home/u", cwd: cwd)
        var b = PlanBuilder(request: r, host: host, readImageFile: { _ in nil }, hostPathExists: { _ in true },
                            resolveHostPath: resolve, symlinksOnTheWay: { _ in [] })
        return try b.build()
    }

    func binds(_ p: SandboxPlan) -> [(source: String, target: String, ro: Bool)] {
        p.mounts.compactMap {
            if case .bind(let s, let t, let f) = $0 { return (s, t, f.contains(.readOnly)) }
            return nil
        }
    }

    func guarded(_ p: SandboxPlan) -> [String] {
        p.mounts.compactMap { if case .bind(_, let t, let f) = $0, f.contains(.guarded) { return t }; return nil }
    }

    @Test func theUsersBindsAreGuardedAndEveryStateFolderIsNamed() throws {
        // What is hidden where is decided by the runtime on device and inode (mounts.c; the
        // CLI tests attack it); the plan names the folders and marks the binds to check.
        let p = try plan(cwd: "/home/u", volumes: ["/data:/d"])
        #expect(guarded(p) == ["/d", "/home/u"], "\(p.mounts)")
        #expect(p.guards == [.init(path: PlanSafetyTests.store, kind: .hide), .init(path: "/home/u/.cache/azl-shell", kind: .hide),
                             .init(path: "/home/u/.config/azl-shell", kind: .ro)], "\(p.guards)")
        #expect(!binds(p).contains { $0.source.hasPrefix(PlanSafetyTests.store) }, "no state folder is bound by path any more")
        #expect(!guarded(p).contains("/sys") && !guarded(p).contains("/etc/resolv.conf"), "system binds are not the user's")
    }

    @Test func aBindFromInsideAHiddenStateFolderIsRefusedOrNotMade() throws {
        #expect(throws: AZLError.self) { try plan(cwd: "/srv/x", volumes: [PlanSafetyTests.store + "/trees:/t"]) }
        #expect(throws: AZLError.self) { try plan(cwd: "/srv/x", volumes: ["/home/u/.cache/azl-shell:/c"]) }
        let p = try plan(cwd: "/home/u/.cache/azl-shell/plans")
        #expect(!binds(p).contains { $0.target == "/home/u/.cache/azl-shell/plans" }, "\(binds(p))")
        // The config folder is only read-only: a bind from inside it is made (the runtime makes it read-only).
        #expect(guarded(try plan(cwd: "/srv/x", volumes: ["/home/u/.config/azl-shell:/cfg"])).contains("/cfg"))
    }

    @Test func stateFoldersAreNamedResolvedAndOnce() throws {
        // AZL_SHELL_ROOT with a trailing slash, or reached through a symlink, is the same store.
        let real = ["/link/state": PlanSafetyTests.store]
        let p = try plan(cwd: "/home/u", resolve: { real[$0] ?? $0 }) {
            $0.stateFolders = [("/link/state/", true), (PlanSafetyTests.store, true), ("/link/state/cache", true)]
        }
        #expect(p.guards.map(\.path) == [PlanSafetyTests.store, "/link/state/cache"], "\(p.guards)")
        let q = try plan(cwd: PlanSafetyTests.rootfs + "/etc", resolve: { real[$0] ?? $0 }) { $0.stateFolders = [("/link/state/", true)] }
        #expect(!binds(q).contains { $0.target == PlanSafetyTests.rootfs + "/etc" }, "the cached tree was bound")
    }

    @Test func symlinksOnTheWayToAStateFolderArePinned() throws {
        // ~/.local -> /data/local: the store really is /data/local/share/azl-shell, and the link
        // in the working directory is what a command would replace.
        var r = RunRequest(rootfs: PlanSafetyTests.rootfs, imageName: "alp")
        r.command = ["true"]
        r.stateFolders = [("/home/u/.local/share/azl-shell", true)]
        let host = HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/home/u", cwd: "/home/u")
        var b = PlanBuilder(request: r, host: host, readImageFile: { _ in nil }, hostPathExists: { _ in true },
                            resolveHostPath: { $0.replacingOccurrences(of: "/home/u/.local", with: "/data/local") },
                            symlinksOnTheWay: { $0.hasPrefix("/home/u/.local") ? ["/home/u/.local"] : [] })
        let p = try b.build()
        #expect(p.guards == [.init(path: "/data/local/share/azl-shell", kind: .hide), .init(path: "/home/u/.local", kind: .pin)], "\(p.guards)")
    }

    @Test func hostSymlinksAreFoundWhereTheyAre() throws {
        var template = Array("/tmp/azl-links-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/data/local/share", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir + "/home/.local", withDestinationPath: dir + "/data/local")
        try FileManager.default.createSymbolicLink(atPath: dir + "/data/local/sh", withDestinationPath: "share")
        #expect(hostSymlinks(dir + "/home/.local/sh/azl-shell") == [dir + "/home/.local", dir + "/data/local/sh"])
        #expect(hostSymlinks(dir + "/home/x") == [])
    }

    @Test func everyStoreCacheAndConfigOfTheUserIsAStateFolder() {
        let f = Paths.stateFolders(rootOption: "/r", environment: ["HOME": "/home/u", "AZL_SHELL_ROOT": "/a", "XDG_CACHE_HOME": "/xc"])
        let hidden = Set(f.filter(\.hide).map(\.path)), ro = Set(f.filter { !$0.hide }.map(\.path))
        #expect(hidden == ["/r", "/r/cache", "/a", "/a/cache", "/home/u/.local/share/azl-shell", "/xc/azl-shell", "/home/u/.cache/azl-shell"])
        #expect(ro == ["/home/u/.config/azl-shell"])
    }

    @Test func bindSourcesAndTheTreeAreResolvedOnTheHost() throws {
        let real = ["/etc/resolv.conf": "/run/systemd/resolve/stub-resolv.conf", "/data/link": "/data/real",
                    "/ln/trees/abc/rootfs": PlanSafetyTests.rootfs]
        let p = try plan(cwd: "/srv/x", volumes: ["/data/link:/d"], resolve: { real[$0] ?? $0 }) { $0.rootfs = "/ln/trees/abc/rootfs" }
        #expect(p.rootfs == PlanSafetyTests.rootfs)
        let b = binds(p)
        #expect(b.contains { $0.source == "/run/systemd/resolve/stub-resolv.conf" && $0.target == "/etc/resolv.conf" })
        #expect(b.contains { $0.source == "/data/real" && $0.target == "/d" })
    }

    @Test func hostnamesAndVolumeTargetsTheSandboxOwnsAreUsageErrors() throws {
        #expect(throws: AZLError.self) { try plan { $0.hostname = String(repeating: "h", count: 65) } }
        for h in ["", "a/b\nc", "-a", "a-", "a..b", "a.", String(repeating: "h", count: 64), "a_b", "\u{e4}"] {
            #expect(throws: AZLError.self, "\(h)") { try plan { $0.hostname = h } }
        }
        // 64 bytes fit the UTS name; a single label of 64 breaks RFC 1123's 63 (tested above).
        #expect(try plan { $0.hostname = String(repeating: "h", count: 62) + ".b" }.hostname.count == 64)
        #expect(throws: AZLError.self) { try plan { $0.hostname = "" } }
        for target in ["/proc", "/sys/fs", "/dev"] {
            #expect(throws: AZLError.self) { try plan(volumes: ["/tmp:" + target]) }
        }
    }

    @Test func cacheKeysTakeTheCommandLineAndEntriesTheVariablesPlanningRead() {
        let args = ["azl-shell", "run", "--image", "alp", "-e", "FOO", "--", "true"]
        func key(args a: [String] = args, cwd: String = "/w") -> [UInt8] {
            PlanCache.key(arguments: a, cwd: cwd, uid: 1000, gid: 1000)
        }
        #expect(key() != key(cwd: "/v"))
        #expect(key() != key(args: args + ["x"]))
        #expect(key(args: ["/usr/bin/azl-shell"] + args.dropFirst()) == key(), "the program's own path is not")
        // The variables are what planning read (PlanInputs), each with its value or unset.
        func env(_ e: [String], _ names: [String] = ["FOO", "HOME", "TERM"]) -> [UInt8]? { PlanCache.envSection(names: names, environment: e) }
        let base = ["HOME=/home/u", "FOO=1", "TERM=xterm"]
        #expect(env(base) == env(["TERM=xterm", "FOO=1", "HOME=/home/u"]), "the order of environ is no input")
        #expect(env(base) == env(base + ["HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET=3", "OLDPWD=/x"]), "a variable not read is none")
        #expect(env(base) != env(["HOME=/home/u", "FOO=2", "TERM=xterm"]))
        #expect(env(base) != env(["HOME=/home/u", "TERM=xterm"]), "unset is not the same as set")
        #expect(env(["HOME=/home/u", "FOO=", "TERM=xterm"]) != env(["HOME=/home/u", "TERM=xterm"]), "set and empty is not unset")
        #expect(env(base + ["FOO=2"]) == nil, "a variable read and set twice: nothing may be cached")
    }

    @Test func aPlanWhoseRecordChangedWhilePlanningIsNotKept() throws {
        var template = Array("/tmp/azl-plancache-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        defer { _ = try? FileManager.default.removeItem(atPath: dir) }
        let record = dir + "/record.json"
        try Data("a".utf8).write(to: URL(fileURLWithPath: record))
        var cache = PlanCache(directory: dir + "/plans", key: Array("k".utf8))
        cache.seenBeforePlanning[record] = PlanCache.identity(of: record, contentToo: true)
        cache.store(plan: [1, 2, 3], lockPath: "", dependencies: [.content(record)])
        #expect(FileManager.default.fileExists(atPath: cache.path), "an unchanged record: stored")
        // Written and read by the C code that owns the format (plan_cache.c).
        let entry = try [UInt8](Data(contentsOf: URL(fileURLWithPath: cache.path)))
        let plan = entry.withUnsafeBufferPointer { b -> [UInt8]? in
            var p: UnsafePointer<UInt8>?
            var n: UInt32 = 0
            guard azl_plan_cache_entry_plan(b.baseAddress, b.count, &p, &n) == 0, let p else { return nil }
            return Array(UnsafeBufferPointer(start: p, count: Int(n)))
        }
        #expect(plan == [1, 2, 3])
        unlink(cache.path)
        // A retag lands between the lookup and the store: the plan may be of the old record.
        try Data("bb".utf8).write(to: URL(fileURLWithPath: record))
        cache.store(plan: [1, 2, 3], lockPath: "", dependencies: [.content(record)])
        #expect(!FileManager.default.fileExists(atPath: cache.path), "a plan of a record that changed while planning was kept")
    }

    @Test func cacheFoldersFollowTheStateFolders() {
        func dir(_ args: [String], _ env: [String]) -> String? {
            PlanCache.directory(arguments: ["azl-shell", "run"] + args, environment: env, cwd: "/w")
        }
        #expect(dir([], ["HOME=/home/u"]) == "/home/u/.cache/azl-shell/plans")
        #expect(dir([], ["HOME=/home/u", "XDG_CACHE_HOME=/c"]) == "/c/azl-shell/plans")
        #expect(dir([], ["HOME=/home/u", "AZL_SHELL_ROOT=s"]) == "/w/s/cache/plans")
        #expect(dir(["--root", "/r", "--image", "x"], ["AZL_SHELL_ROOT=/s"]) == "/r/cache/plans")
        #expect(dir(["--root=/r"], []) == "/r/cache/plans")
        #expect(dir(["--", "cmd", "--root", "/x"], ["HOME=/h"]) == "/h/.cache/azl-shell/plans", "the command's words are not ours")
        #expect(dir([], []) == nil)
    }

    /// Issue 10, finding 1: `run --image deb dpkg --root ./sysroot -l` once read the command's
    /// own --root as ours, and replayed plans from a folder the sandbox could write.
    @Test func theCommandsOwnWordsNeverNameTheCacheFolder() {
        func dir(_ args: [String]) -> String? {
            PlanCache.directory(arguments: ["azl-shell", "run"] + args, environment: ["HOME=/h"], cwd: "/w")
        }
        let mine = "/h/.cache/azl-shell/plans"
        #expect(dir(["--image", "deb", "dpkg", "--root", "./sysroot", "-l"]) == mine)
        #expect(dir(["--image", "deb", "dpkg", "--root=./sysroot"]) == mine)
        #expect(dir(["--image", "deb", "--", "dpkg", "--root", "/x"]) == mine)
        #expect(dir(["-e", "--root", "--image", "deb", "true"]) == mine, "--root is -e's value here")
        #expect(dir(["--read-only", "--root", "/r", "true", "--root", "/x"]) == "/r/cache/plans")
        #expect(dir(["-v", "-w", "/tmp", "--root=/r", "sh", "-c", "--root=/x"]) == "/r/cache/plans")
        // What this reader cannot be sure of is no cache at all (the option parser decides).
        #expect(dir(["--no-such-option", "--root", "/x", "true"]) == nil)
        #expect(dir(["-eFOO", "--root", "/x", "true"]) == nil)
        #expect(dir(["--read-only=yes", "true"]) == nil)
    }
}
