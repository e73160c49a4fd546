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

    public static func resolve(rootOption: String?, environment env: Environment = .process) -> Paths {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        if let r = rootOption ?? env["AZL_SHELL_ROOT"], !r.isEmpty {
            return Paths(root: r)
        }
        let data = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.local/share"
        let cache = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.cache"
        return Paths(root: data + "/azl-shell", cache: cache + "/azl-shell")
    }

    public static func configDirectory(environment env: Environment = .process) -> String {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let config = env["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        return config + "/azl-shell"
    }

    /// A folder azl-shell keeps state in: a store, a cache (whose content is believed only for
    /// its MAC) or a config folder (rootfs-manifests).
    public struct StateFolder: Sendable {
        public enum Kind: Sendable { case store, cache, config }
        public let path: String
        public let kind: Kind
        /// Hidden from every sandbox (stores, caches); a config folder is read-only instead.
        public var hide: Bool { kind != .config }
    }

    /// Every folder of this user's that azl-shell keeps state in, whichever run uses it: the
    /// stores and caches of `--root`, `AZL_SHELL_ROOT`, the stores used before and the XDG
    /// defaults (with and without the XDG variables: another shell of the user's may not set
    /// them); the config folders. A sandbox must not write what a later run trusts, whichever
    /// store that run picks.
    public static func stateFolders(rootOption: String?, environment env: Environment = .process) -> [StateFolder] {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        var out: [StateFolder] = []
        for r in [rootOption, env["AZL_SHELL_ROOT"]].compactMap({ $0 }) + rememberedRoots(environment: env) where !r.isEmpty {
            let p = Paths(root: r)
            out += [StateFolder(path: p.root, kind: .store), StateFolder(path: p.cache, kind: .cache)]
        }
        for (xdg, fallback, kind) in [("XDG_DATA_HOME", "/.local/share", StateFolder.Kind.store),
                                      ("XDG_CACHE_HOME", "/.cache", .cache), ("XDG_CONFIG_HOME", "/.config", .config)] {
            for base in [env[xdg], home + fallback].compactMap({ $0 }) where !base.isEmpty {
                out.append(StateFolder(path: absolute(base) + "/azl-shell", kind: kind))
            }
        }
        return out
    }

    /// The list of the stores this user has used other than the default one (`--root`,
    /// `AZL_SHELL_ROOT`), one absolute path a line, kept in the default store's folder, which
    /// every sandbox has hidden: a run from another shell, without that variable, hides them too.
    public static func rememberedRootsFile(environment env: Environment = .process) -> String {
        let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        let data = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.local/share"
        return absolute(data) + "/azl-shell/roots"
    }

    public static func rememberedRoots(environment env: Environment = .process) -> [String] {
        PlanInputs.file(rememberedRootsFile(environment: env), .content)
        guard let text = try? String(contentsOfFile: rememberedRootsFile(environment: env), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("/") }
    }

    /// Add ROOT to the remembered stores (not the default one), dropping those that are gone.
    /// Best effort: a store that cannot be remembered is still hidden from every run that names it.
    public static func remember(root: String, environment env: Environment = .process) {
        let defaults = resolve(rootOption: nil, environment: env.without("AZL_SHELL_ROOT"))
        let root = absolute(root)
        let known = rememberedRoots(environment: env)
        guard root != defaults.root, !known.contains(root) else { return }
        let file = rememberedRootsFile(environment: env)
        let kept = known.filter { FS.isDirectory($0) } + [root]
        try? FS.mkdirs((file as NSString).deletingLastPathComponent, mode: 0o700)
        // Two runs remembering at once: one list wins, the other's root is added by its next run.
        try? FS.atomicWrite(Data(kept.map { $0 + "\n" }.joined().utf8), to: file, mode: 0o600)
    }

    public static func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        return FileManager.default.currentDirectoryPath + "/" + p
    }

    public var blobs: String { root + "/blobs/sha256" }
    public var trees: String { root + "/trees" }
    public var images: String { root + "/images" }
    public var tmp: String { root + "/tmp" }
    public var locks: String { root + "/locks" }
}
