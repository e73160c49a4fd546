import Core
import Foundation

/// A named environment's settings, chosen at `create` (docs/environments.md).
public struct EnvironmentConfig: Codable, Equatable, Sendable {
    public enum Home: String, Codable, Sendable, CaseIterable { case `private`, host, overlay }
    public enum User: String, Codable, Sendable, CaseIterable { case keepID = "keep-id", root }

    public var name: String
    /// The image as it was when the environment was made: its tree is the environment's lower
    /// layer for good (a later pull of the same name does not move it).
    public var image: ImageRecord
    public var home: Home
    public var user: User
    public var volumes: [String]
    public var env: [String]
    public var kernel: String?
    public var network: String
    /// Forward the SSH agent and ~/.gitconfig into a private or overlay home.
    public var forward: Bool
    /// Seconds the live sandbox waits after its last session.
    public var idleSeconds: UInt32
    public var created: Date
    /// For a project's environment (`enter` in a folder with an azl-shell.toml): the project
    /// file, and its setup layers (keys, bottom to top) between the image and the environment's
    /// own layer. A changed setup makes a new environment. nil for one made with `create`.
    public var project: String?
    public var setupLayers: [Digest]?
    /// An untrusted project file's volumes, and the project folder each must resolve inside
    /// at every session (RunOptions.confinedVolumes; ProjectTrust).
    public var confinedTo: String?
    public var confinedVolumes: [String]?
    /// Those of them a trusted file may bind outside the folder, where they resolved then.
    public var confinedApproved: [String: String]?

    public init(name: String, image: ImageRecord, home: Home, user: User, volumes: [String], env: [String],
                kernel: String?, network: String, forward: Bool, idleSeconds: UInt32, created: Date) {
        self.name = name; self.image = image; self.home = home; self.user = user; self.volumes = volumes
        self.env = env; self.kernel = kernel; self.network = network; self.forward = forward
        self.idleSeconds = idleSeconds; self.created = created
    }
}

/// The environments of a store: `STORE/environments/NAME/` holds `config.json`, the writable
/// layer (`upper`, `work`), the home layer of `--home overlay` (`home-upper`, `home-work`) and
/// the live sandbox's socket, lock and pid file (Sources/SandboxRuntime/env.c). The store is
/// hidden from every sandbox, so nothing a command inside writes decides what a session does.
public struct EnvironmentStore: Sendable {
    public let paths: Paths
    public var directory: String { paths.root + "/environments" }

    public init(paths: Paths) { self.paths = paths }

    /// Letters, digits, '_', '.', '-'; starting with a letter or digit; at most 64.
    public static let nameRule = "1 to 64 of a-z, A-Z, 0-9, '_', '.', '-', starting with a letter or digit"

    public static func validate(_ name: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= 64 && name.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.-".unicodeScalars.contains($0))
        } && name.unicodeScalars.first.map { $0.isASCII && CharacterSet.alphanumerics.contains($0) } == true
        guard ok else { throw AZLError(.usage, "environment name '\(name.prefix(80))' is not valid", hint: nameRule) }
    }

    public func path(_ name: String) -> String { directory + "/" + name }

    /// Make the environment. Its folder is claimed with one mkdir (of two `create`s of one name
    /// exactly one gets it) and its config written last, by a rename: until then no other verb
    /// sees an environment there.
    public func create(_ config: EnvironmentConfig) throws {
        try EnvironmentStore.validate(config.name)
        try FS.mkdirs(directory, mode: 0o700)
        let dest = path(config.name)
        if mkdir(dest, 0o700) != 0 {
            if errno == EEXIST { throw taken(config.name) }
            throw AZLError.errno(errno, "cannot create the environment", path: dest)
        }
        do {
            for d in ["upper", "work"] { try FS.mkdirs(dest + "/" + d, mode: 0o755) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.dateEncodingStrategy = .iso8601
            try FS.atomicWrite(try enc.encode(config), to: dest + "/config.json", mode: 0o600)
        } catch {
            try? FS.removeTree(dest)
            throw error
        }
        FS.fsyncDirectory(directory)
    }

    public func taken(_ name: String) -> AZLError {
        AZLError(.exists, "environment \(name) already exists", hint: "choose another name, or remove it with azl-shell rm \(name)")
    }

    public func load(_ name: String) throws -> EnvironmentConfig {
        try EnvironmentStore.validate(name)
        let file = path(name) + "/config.json"
        guard let data = FileManager.default.contents(atPath: file) else {
            throw AZLError(.notFound, "no environment named \(name)", hint: "see azl-shell list; make one with azl-shell create \(name) --image IMAGE")
        }
        let dec = JSONDecoder()
        dec.dateDecodingStrategy = .iso8601
        do { return try dec.decode(EnvironmentConfig.self, from: data) } catch {
            throw AZLError(.io, "environment \(name): \(file) is unreadable: \(error)", hint: "remove it with azl-shell rm --force \(name)")
        }
    }

    public func names() -> [String] {
        FS.names(in: directory)
            .filter { !$0.hasPrefix(".") && FS.exists(directory + "/" + $0 + "/config.json") }.sorted()
    }

    public func all() -> [EnvironmentConfig] { names().compactMap { try? load($0) } }

    /// The environments whose layer lies over this image tree.
    public func users(ofTree tree: Digest) -> [String] { all().filter { $0.image.tree == tree }.map(\.name) }

    /// When a session last started (env.c touches DIR/last-used as a session joins).
    public func lastUsed(_ name: String) -> Date? {
        var st = stat()
        guard lstat(path(name) + "/last-used", &st) == 0 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec))
    }

    /// Bytes of the environment's own layers (its writable layer and its home layer).
    public func layerSize(_ name: String) -> Int64 {
        ["upper", "home-upper"].reduce(0) { $0 + FS.diskUsage(path(name) + "/" + $1) }
    }

    /// The live sandbox, as its holder tells: sessions (their pids) and pid 1; nil: stopped.
    public struct Live: Equatable, Sendable {
        public var sessions: [Int32]
        public var initPid: Int32
        /// The holder's answer to "q": "SESSIONS PID1 PID...".
        public init?(reply: String) {
            let f = reply.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            guard f.count >= 2, f.count == Int(f[0]) + 2 else { return nil }
            sessions = Array(f[2...])
            initPid = f[1]
        }
    }

    /// Take the environment's folder out of the store's names at once (renamed aside), then
    /// remove it; what is left that only a user namespace can remove (files of a package's
    /// ids) is returned for the caller to remove there.
    public func remove(_ name: String) throws -> String? {
        let src = path(name)
        let aside = directory + "/.removing-\(name)-\(getpid())"
        if rename(src, aside) != 0 { throw AZLError.errno(errno, "cannot remove environment \(name)", path: src) }
        FS.fsyncDirectory(directory)
        if (try? FS.removeTree(aside)) != nil, !FS.exists(aside) { return nil }
        return aside
    }
}
