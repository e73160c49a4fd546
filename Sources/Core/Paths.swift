import Foundation

/// Where azl-shell keeps its state. Resolution order: `--root`, `AZL_SHELL_ROOT`,
/// `$XDG_DATA_HOME/azl-shell`, `~/.local/share/azl-shell`.
public struct Paths: Sendable {
    public let root: String
    public let cache: String

    public init(root: String, cache: String? = nil) {
        self.root = Paths.absolute(root)
        self.cache = cache.map(Paths.absolute) ?? (self.root + "/cache")
    }

    public static func resolve(rootOption: String?, environment env: [String: String] = ProcessInfo.processInfo.environment) -> Paths {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        if let r = rootOption ?? env["AZL_SHELL_ROOT"], !r.isEmpty {
            return Paths(root: r)
        }
        let data = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.local/share"
        let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.cache"
        return Paths(root: data + "/azl-shell", cache: cache + "/azl-shell")
    }

    public static func configDirectory(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let config = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        return config + "/azl-shell"
    }

    static func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        return FileManager.default.currentDirectoryPath + "/" + p
    }

    public var blobs: String { root + "/blobs/sha256" }
    public var trees: String { root + "/trees" }
    public var images: String { root + "/images" }
    public var tmp: String { root + "/tmp" }
    public var locks: String { root + "/locks" }
}
