import Core
import Foundation

/// The store's consistency: what a killed or interrupted process can leave behind.
enum StoreChecks {
    static func all(_ paths: Paths) -> [Check] {
        [records(paths), scratch(paths), keepers(paths)]
    }

    /// The part of an image record these checks need.
    struct Record: Decodable { var name: String; var tag: String; var tree: Digest }

    /// Every record must decode and name a tree that is there.
    static func records(_ paths: Paths) -> Check {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: paths.images)) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        var bad: [String] = []
        var fixes: [String] = []
        for n in names {
            let p = paths.images + "/" + n
            guard let data = FileManager.default.contents(atPath: p), let r = try? JSONDecoder().decode(Record.self, from: data) else {
                bad.append("\(p) is unreadable")
                fixes.append("rm \(p)")
                continue
            }
            let tree = paths.trees + "/" + r.tree.hex
            if !FS.exists(tree + "/meta.json") || !FS.isDirectory(tree + "/rootfs") {
                bad.append("\(r.name):\(r.tag) names tree \(r.tree.short), which is missing")
                fixes.append("azl-shell rmi \(r.name):\(r.tag)")
            }
        }
        if bad.isEmpty { return Check("store-records", .ok, "\(names.count) image record(s), each with its tree") }
        return Check("store-records", .failed, bad.joined(separator: "; "),
                     fix: fixes.joined(separator: "; ") + " (then pull or import again)")
    }

    /// Work folders in tmp/ whose owner died (their lock is free): the next pull or import
    /// removes them; until then they take space.
    static func scratch(_ paths: Paths) -> Check {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: paths.tmp)) ?? []
        var stale: [String] = []
        for n in names where !n.hasSuffix(".lock") && !n.hasPrefix(".azl-doctor-") {
            let lockPath = paths.tmp + "/" + n + ".lock"
            if names.contains(n + ".lock") {
                guard let l = try? FileLock(tryPath: lockPath, mode: .exclusive) else { continue }
                l.unlock()
            }
            stale.append(paths.tmp + "/" + n)
        }
        if stale.isEmpty { return Check("store-scratch", .ok, "no leftover work folders in \(paths.tmp)") }
        return Check("store-scratch", .warning, "\(stale.count) leftover work folder(s) of interrupted pulls or imports: " + stale.joined(separator: " "),
                     fix: "azl-shell prune (or the next pull or import) removes them")
    }

    /// Keeper state files (CACHE/userns) whose keeper is gone: the keeper holds the file's lock
    /// for its whole life (Sources/SandboxRuntime/keeper.c).
    static func keepers(_ paths: Paths) -> Check {
        let dir = paths.cache + "/userns"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("map-") }
        var dead: [String] = []
        var live = 0
        for n in names {
            let fd = open(dir + "/" + n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { dead.append(dir + "/" + n) } else { live += 1 }
            close(fd)
        }
        if dead.isEmpty { return Check("userns-keepers", .ok, "\(live) kept user namespace(s), none left by a dead keeper") }
        return Check("userns-keepers", .warning, "\(dead.count) state file(s) of user-namespace keepers that died: " + dead.joined(separator: " "),
                     fix: "rm " + dead.joined(separator: " ") + " (a run also replaces them)")
    }
}
