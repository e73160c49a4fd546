import Foundation
import Core
import Testing
@testable import Sandbox
@testable import SandboxLaunch

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
        r.protectedPaths = [PlanSafetyTests.store, "/home/u/.cache/azl-shell"]
        edit(&r)
        let host = HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/home/u", cwd: cwd)
        var b = PlanBuilder(request: r, host: host, readImageFile: { _ in nil }, hostPathExists: { _ in true },
                            resolveHostPath: resolve)
        return try b.build()
    }

    func binds(_ p: SandboxPlan) -> [(source: String, target: String, ro: Bool)] {
        p.mounts.compactMap {
            if case .bind(let s, let t, let f) = $0 { return (s, t, f.contains(.readOnly)) }
            return nil
        }
    }

    @Test func aWorkingDirectoryHoldingTheStoreGetsItReadOnlyOnTop() throws {
        let b = binds(try plan(cwd: "/home/u"))
        let cwd = try #require(b.firstIndex { $0.target == "/home/u" })
        #expect(!b[cwd].ro, "the working directory itself stays writable")
        let store = try #require(b.firstIndex { $0.source == PlanSafetyTests.store })
        #expect(b[store].ro && b[store].target == PlanSafetyTests.store && store > cwd, "\(b)")
        #expect(b.contains { $0.source == "/home/u/.cache/azl-shell" && $0.ro })
    }

    @Test func foldersBetweenTheBindAndTheStateAreMountpointsBelowTheReadOnlyBinds() throws {
        // Default layout, run from ~: ~/.local, ~/.local/share and ~/.cache become mountpoints
        // (bound onto themselves, writable), shallow first; then the read-only binds on top.
        let p = try plan(cwd: "/home/u")
        let b = binds(p)
        let cwd = try #require(b.firstIndex { $0.target == "/home/u" })
        let order = b[(cwd + 1)...].map { "\($0.target) \($0.ro ? "ro" : "rw")" }
        #expect(order == ["/home/u/.cache rw", "/home/u/.local rw", "/home/u/.local/share rw",
                          "/home/u/.cache/azl-shell ro", "/home/u/.local/share/azl-shell ro"] , "\(order)")
        // A cache folder inside the store is covered by the store's bind: nothing writable on top.
        let q = binds(try plan(cwd: "/data") { $0.protectedPaths = ["/data/state", "/data/state/cache"] })
        let afterStore = q.drop { !($0.source == "/data/state" && $0.ro) }.dropFirst()
        #expect(q.contains { $0.source == "/data/state" && $0.ro }, "\(q)")
        #expect(afterStore.isEmpty, "\(q)")
    }

    @Test func aVolumeInsideTheWorkingDirectoryStaysOnTopOfTheProtection() throws {
        let b = binds(try plan(cwd: "/home/u", volumes: ["/data:/home/u/.local/data"]))
        let vol = try #require(b.firstIndex { $0.target == "/home/u/.local/data" })
        let local = try #require(b.firstIndex { $0.target == "/home/u/.local" })
        #expect(local < vol, "the self-bind of ~/.local would hide the volume: \(b)")
    }

    @Test func aVolumeOfAParentOrOfTheStoreItselfCannotWriteIt() throws {
        let b = binds(try plan(cwd: "/srv/x", volumes: ["/home:/h", PlanSafetyTests.store + "/trees:/t"]))
        #expect(b.contains { $0.source == PlanSafetyTests.store && $0.target == "/h/u/.local/share/azl-shell" && $0.ro }, "\(b)")
        #expect(b.contains { $0.source == PlanSafetyTests.store + "/trees" && $0.target == "/t" && $0.ro }, "\(b)")
        let whole = binds(try plan(cwd: "/srv/x", volumes: ["/:/host"]))
        #expect(whole.contains { $0.source == PlanSafetyTests.store && $0.target == "/host" + PlanSafetyTests.store && $0.ro }, "\(whole)")
    }

    @Test func pathsAreComparedAfterResolvingThem() throws {
        // AZL_SHELL_ROOT with a trailing slash, or reached through a symlink, is the same store.
        let real = ["/link/state": PlanSafetyTests.store]
        let p = try plan(cwd: PlanSafetyTests.rootfs + "/etc", resolve: { real[$0] ?? $0 }) {
            $0.protectedPaths = ["/link/state/"]
        }
        #expect(!binds(p).contains { $0.target == PlanSafetyTests.rootfs + "/etc" }, "the cached tree was bound")
        let q = try plan(cwd: "/home/u", resolve: { real[$0] ?? $0 }) { $0.protectedPaths = ["/link/state"] }
        #expect(binds(q).contains { $0.source == PlanSafetyTests.store && $0.ro })
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

    @Test func cacheKeysTakeOnlyWhatRunReads() {
        let args = ["azl-shell", "run", "--image", "alp", "-e", "FOO", "--", "true"]
        func key(_ env: [String], args a: [String] = args, cwd: String = "/w") -> [UInt8] {
            PlanCache.key(arguments: a, environment: env, cwd: cwd, uid: 1000, gid: 1000)
        }
        let base = ["HOME=/home/u", "FOO=1", "TERM=xterm"]
        #expect(key(base) == key(["TERM=xterm", "FOO=1", "HOME=/home/u"]), "the order of environ is no input")
        #expect(key(base) == key(base + ["HYPERFINE_RANDOMIZED_ENVIRONMENT_OFFSET=3", "OLDPWD=/x"]))
        #expect(key(base) != key(["HOME=/home/u", "FOO=2", "TERM=xterm"]), "a variable named by -e is input")
        #expect(key(base) != key(base + ["LANG=C"]))
        #expect(key(base) != key(base, cwd: "/v"))
        #expect(key(base) != key(base, args: args + ["x"]))
        #expect(key(base, args: ["/usr/bin/azl-shell"] + args.dropFirst()) == key(base), "the program's own path is not")
        #expect(key(["BAR=1"], args: ["azl-shell", "run", "--env=BAR", "--", "true"])
                != key(["BAR=2"], args: ["azl-shell", "run", "--env=BAR", "--", "true"]))
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
}
