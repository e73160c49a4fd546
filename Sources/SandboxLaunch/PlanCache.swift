import SandboxRuntime
#if canImport(Glibc)
import Glibc
#endif

/// Plans of earlier runs, so a warm `run` skips everything but the sandbox itself.
///
/// A plan is a pure function of the command line, the environment, the working directory,
/// the user and a handful of files (the image record, /etc/subuid, /etc/passwd, the binaries,
/// ...). azl-shell-cli builds the plan as usual and, before it execs the helper, stores it
/// here with that exact input (the key, compared byte for byte) and the identity (device,
/// inode, size, mtime, ctime) of every file it depended on. The front end `azl-shell` (C only)
/// computes the same key (Sources/SandboxRuntime/plan_cache.c, from its main), and when an
/// entry's key matches and every dependency is unchanged, carries the stored plan out: no option parsing, no JSON, no Foundation, no Swift at all.
///
/// Anything else (a changed file, another environment, an option that prints, such as
/// --verbose or --dry-run, which are never stored) is a miss and takes the full path, so
/// a hit can only ever replay what that path decided for the very same input.
public struct PlanCache {
    public let directory: String
    public let key: [UInt8]
    /// Identities of content dependencies taken before planning read them (the folder of image
    /// records, an environment's config; `PlanInputs.seenBeforeReading`): one that changed
    /// meanwhile (a pull or a retag while this run planned) means the plan may be of the old
    /// content, so it is not kept.
    public var seenBeforePlanning: [String: [UInt64]] = [:]
    /// The environment variables planning read (`PlanInputs`): the entry holds their values,
    /// and a run whose values differ is a miss.
    public var variables: [String] = []

    /// Entries kept at most; the oldest go first when a store finds more.
    public static let capacity = 256

    /// The cache of this process's `azl-shell run ...`, or nil where no folder can be named
    /// (no HOME, no root) or no plan may be cached. `arguments` is the whole argv, the program
    /// name first. The input is computed by the C lookup's own code (plan_cache.c), so what is
    /// stored here is what a warm run looks for.
    public static func forThisProcess(arguments: [String]) -> PlanCache? {
        withCStrings(arguments) { argv -> PlanCache? in
            var dir: UnsafeMutablePointer<CChar>?
            var key: UnsafeMutablePointer<UInt8>?
            var len = 0
            guard azl_plan_cache_input(argv, environ, &dir, &key, &len) == 0, let dir, let key else { return nil }
            defer { free(dir); free(key) }
            return PlanCache(directory: String(cString: dir), key: Array(UnsafeBufferPointer(start: key, count: len)))
        }
    }

    /// Where entries live: as Paths resolves the cache folder (`--root DIR` → DIR/cache,
    /// AZL_SHELL_ROOT, $XDG_CACHE_HOME/azl-shell, ~/.cache/azl-shell), plus /plans. A `--root`
    /// that is really the command's word only names a folder no entry was stored in:
    /// azl-shell-cli stores only where this agrees with its own parse.
    public static func directory(arguments: [String], environment: [String], cwd: String) -> String? {
        withCStrings(arguments) { argv in
            withCStrings(environment) { envp in
                guard let d = azl_plan_cache_directory(argv, envp, cwd) else { return nil }
                defer { free(d) }
                return String(cString: d)
            }
        }
    }

    /// What every plan is computed from: the arguments after the program name, the working
    /// directory and the ids. The variables of the environment are the entry's own: those its
    /// planning read (`envSection`).
    public static func key(arguments: [String], cwd: String, uid: UInt32, gid: UInt32) -> [UInt8] {
        withCStrings(arguments) { argv in
            var out: UnsafeMutablePointer<UInt8>?
            let n = azl_plan_cache_key(argv, cwd, uid, gid, &out)
            guard n >= 0, let out else { return [] }
            defer { free(out) }
            return Array(UnsafeBufferPointer(start: out, count: n))
        }
    }

    /// The entry's record of the variables `names` with their values in `environment` (the
    /// C code that compares them on a hit writes it); nil when one is set twice there.
    public static func envSection(names: [String], environment: [String]) -> [UInt8]? {
        withCStrings(environment) { envp in
            withCStrings(names) { list in
                var out: UnsafeMutablePointer<UInt8>?
                let n = list.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: names.count + 1) {
                    azl_plan_cache_env_section(envp, $0, Int32(names.count), &out)
                }
                guard n >= 0, let out else { return nil }
                defer { free(out) }
                return Array(UnsafeBufferPointer(start: out, count: n))
            }
        }
    }

    static func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { for p in ptrs { free(p) } }
        return ptrs.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// The entry's name: the key's FNV-1a (the key itself is compared in full).
    var fileName: String {
        var name = [CChar](repeating: 0, count: 32)
        key.withUnsafeBufferPointer { azl_plan_cache_file_name($0.baseAddress, $0.count, &name) }
        return String(cString: name)
    }

    public var path: String { directory + "/" + fileName }

    /// A file a plan was computed from, and how much of it mattered.
    public enum Dependency: Hashable, Comparable, Sendable {
        /// Its content (the image record, /etc/subuid, our binaries): any change is a miss.
        case content(String)
        /// Only which file it is and its type (a bind source: a build that writes into the
        /// working directory changes nothing the plan says about it).
        case presence(String)
        /// Which file it is, reached without following a symlink: a path the plan names as
        /// resolved (bind sources, which the runtime opens so).
        case resolved(String)

        var path: String { switch self { case .content(let p), .presence(let p), .resolved(let p): return p } }
        var kind: UInt8 {
            switch self {
            case .content: return UInt8(AZL_DEP_CONTENT)
            case .presence: return UInt8(AZL_DEP_PRESENCE)
            case .resolved: return UInt8(AZL_DEP_RESOLVED)
            }
        }
    }

    // MARK: store

    /// Keep `plan` for this key. `dependencies` are the files the plan was computed from;
    /// one missing now is recorded as missing (it must still be missing for a hit). Best
    /// effort: a cache that cannot be written only costs speed. The entry is made by the C code
    /// that reads it (plan_cache.c), and nothing is kept without the user's state secret
    /// (state_mac.c): an entry is only ever believed for its MAC.
    public func store(plan: [UInt8], lockPath: String, dependencies: [Dependency]) {
        let deps = Array(Set(dependencies)).sorted()
        var cdeps = deps.map { d -> azl_plan_cache_dep in
            var c = azl_plan_cache_dep()
            c.path = UnsafePointer(strdup(d.path))
            c.kind = Int32(d.kind)
            if let seen = seenBeforePlanning[d.path], seen.count <= 9 {
                c.seen_count = Int32(seen.count)
                withUnsafeMutableBytes(of: &c.seen) { b in for (i, v) in seen.enumerated() { b.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self) } }
            }
            return c
        }
        defer { for c in cdeps { free(UnsafeMutableRawPointer(mutating: c.path)) } }
        // First: creating the folder may touch a dependency (a state folder above it).
        guard PlanCache.mkdirs(directory) else { return }
        var entry: UnsafeMutablePointer<UInt8>?
        let n = PlanCache.withCStrings(variables) { names in
            names.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: variables.count + 1) { names in
                plan.withUnsafeBufferPointer { p in
                    azl_plan_cache_entry(key, key.count, environ, names, Int32(variables.count), lockPath, &cdeps, Int32(cdeps.count),
                                         p.baseAddress, p.count, &entry)
                }
            }
        }
        guard n >= 0, let entry else { return }
        defer { free(entry) }
        let out = Array(UnsafeBufferPointer(start: entry, count: n))

        evictIfFull()
        let tmp = path + ".tmp-" + String(getpid())
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        // Under a small `ulimit -f` the write fails (EFBIG) instead of killing the run.
        let xfsz = signal(SIGXFSZ, SIG_IGN)
        defer { signal(SIGXFSZ, xfsz) }
        let ok = Launcher.writeAll(fd, out)
        close(fd)
        // One rename: a reader sees the old entry or the new one, never half of one.
        if !ok || rename(tmp, path) != 0 { unlink(tmp) }
    }

    /// At capacity, drop the oldest quarter (by mtime), and any temporaries left by a crash.
    func evictIfFull() {
        guard let d = opendir(directory) else { return }
        var entries: [(name: String, mtime: Int)] = []
        while let ent = readdir(d) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".plan") || name.contains(".plan.tmp-") else { continue }
            var st = stat()
            guard stat(directory + "/" + name, &st) == 0 else { continue }
            if name.contains(".plan.tmp-") {
                if time(nil) - st.st_mtim.tv_sec > 3600 { unlink(directory + "/" + name) }
                continue
            }
            entries.append((name, st.st_mtim.tv_sec))
        }
        closedir(d)
        guard entries.count >= PlanCache.capacity else { return }
        for e in entries.sorted(by: { $0.mtime < $1.mtime }).prefix(PlanCache.capacity / 4) {
            unlink(directory + "/" + e.name)
        }
    }

    // MARK: files

    /// What identifies a file now (plan_cache.c, which compares it on a hit): device, inode,
    /// type and, with `contentToo`, mode, size, mtime and ctime. `[0]` for a missing file.
    public static func identity(of path: String, contentToo: Bool) -> [UInt64] {
        identity(of: path, kind: Int32(contentToo ? AZL_DEP_CONTENT : AZL_DEP_PRESENCE))
    }

    static func identity(of path: String, kind: Int32) -> [UInt64] {
        var v = [UInt64](repeating: 0, count: 9)
        let n = v.withUnsafeMutableBufferPointer { azl_plan_cache_identity(path, kind, $0.baseAddress) }
        return Array(v.prefix(Int(n)))
    }

    static func mkdirs(_ path: String) -> Bool {
        var st = stat()
        if stat(path, &st) == 0 { return (st.st_mode & S_IFMT) == S_IFDIR }
        var parent = path
        while let last = parent.last, last != "/" { parent.removeLast() }
        if parent.count > 1 { parent.removeLast() }
        if !parent.isEmpty && parent != path && !mkdirs(parent) { return false }
        return mkdir(path, 0o700) == 0 || errno == EEXIST
    }
}
