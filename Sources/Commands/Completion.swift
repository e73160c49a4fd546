import Core
import Manifests
import Store

/// Values shells offer when completing `--image` and image arguments: the names in the store
/// (`--root`/`$AZL_SHELL_ROOT` as for the command itself) and the known short names.
enum Completion {
    static func imageNames(_ words: [String]) -> [String] {
        var root: String?
        if let i = words.firstIndex(of: "--root"), i + 1 < words.count { root = words[i + 1] }
        var names: [String] = []
        if let store = try? ImageStore(paths: Paths.resolve(rootOption: root)), let recs = try? store.records() {
            names += recs.map(\.reference)
        }
        if let m = try? Manifests.load() {
            for i in m.images { names.append(i.short); names += i.aliases }
        }
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }

    /// The environments of the store (`--root` as for the command itself).
    static func environmentNames(_ words: [String]) -> [String] {
        var root: String?
        if let i = words.firstIndex(of: "--root"), i + 1 < words.count { root = words[i + 1] }
        return EnvironmentStore(paths: Paths.resolve(rootOption: root)).names()
    }
}
