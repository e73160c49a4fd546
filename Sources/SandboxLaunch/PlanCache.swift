#if canImport(Glibc)
import Glibc
#endif

/// Plans of earlier runs, so a warm `run` skips everything but the sandbox itself.
///
/// A plan is a pure function of the command line, the environment, the working directory,
/// the user and a handful of files (the image record, /etc/subuid, /etc/passwd, the binaries,
/// ...). azl-shell-cli builds the plan as usual and, before it execs the helper, stores it
/// here with that exact input (the key, compared byte for byte) and the identity (device,
/// inode, size, mtime, ctime) of every file it depended on. The lean `azl-shell` front end
/// computes the same key, and when an entry's key matches and every dependency is unchanged,
/// execs the helper with the stored plan: no option parsing, no JSON, no Foundation.
///
/// Anything else (a changed file, another environment, an option that prints, such as
/// --verbose or --dry-run, which are never stored) is a miss and takes the full path, so
/// a hit can only ever replay what that path decided for the very same input.
public struct PlanCache {
    public let directory: String
    public let key: [UInt8]

    static let magic = Array("azl-plan-cache 2\n".utf8)
    /// Entries kept at most; the oldest go first when a store finds more.
    public static let capacity = 256

    /// The cache of this process's `azl-shell run ...`, or nil where no folder can be named
    /// (no HOME, no root). `arguments` is the whole argv, the program name first.
    public static func forThisProcess(arguments: [String]) -> PlanCache? {
        var env: [String] = []
        var e = environ
        while let p = e.pointee {
            env.append(String(cString: p))
            e += 1
        }
        var cwd = ""
        if let p = getcwd(nil, 0) { cwd = String(cString: p); free(p) }
        // No cache without HOME (the state folders then come from elsewhere: the passwd entry,
        // CFFIXED_USER_HOME), nor when a variable run reads is set twice (which one wins is
        // the order of environ, which the key does not keep).
        let names = env.map { String($0.prefix { $0 != "=" }) }.filter { environmentRead.contains($0) }
        guard env.contains(where: { $0.hasPrefix("HOME=/") }), Set(names).count == names.count,
              let dir = directory(arguments: arguments, environment: env, cwd: cwd) else { return nil }
        return PlanCache(directory: dir, key: key(arguments: arguments, environment: env, cwd: cwd, uid: getuid(), gid: getgid()))
    }

    /// Where entries live: as Paths resolves the cache folder (`--root DIR` → DIR/cache,
    /// AZL_SHELL_ROOT, $XDG_CACHE_HOME/azl-shell, ~/.cache/azl-shell), plus /plans. A `--root`
    /// that is really the command's word only names a folder no entry was stored in:
    /// azl-shell-cli stores only where this agrees with its own parse.
    public static func directory(arguments: [String], environment: [String], cwd: String) -> String? {
        func value(_ name: String) -> String? {
            let prefix = name + "="
            for kv in environment where kv.hasPrefix(prefix) {
                let v = String(kv.dropFirst(prefix.count))
                return v.isEmpty ? nil : v
            }
            return nil
        }
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : cwd + "/" + p }
        let ours = arguments.dropFirst().prefix { $0 != "--" }
        var root: String?
        var it = ours.makeIterator()
        while let a = it.next() {
            if a == "--root" { root = it.next() } else if a.hasPrefix("--root=") { root = String(a.dropFirst(7)) }
        }
        if let r = root ?? value("AZL_SHELL_ROOT"), !r.isEmpty { return absolute(r) + "/cache/plans" }
        if let c = value("XDG_CACHE_HOME") { return absolute(c) + "/azl-shell/plans" }
        if let h = value("HOME") { return absolute(h) + "/.cache/azl-shell/plans" }
        return nil
    }

    /// The variables `run` reads (state folders, and what PlanBuilder copies into the
    /// command's environment). A variable named on the command line (`--env NAME`) counts too.
    /// Nothing else of the environment may change a plan: keep this list with PlanBuilder.
    /// (Timing tools such as hyperfine add a variable of their own to every run.)
    public static let environmentRead: Set<String> = [
        "HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "AZL_SHELL_ROOT", "TERM", "LANG", "CFFIXED_USER_HOME",
        "AZL_SHELL_USERNS_IDLE",
    ]

    /// Everything a plan is computed from that is not a file: the arguments after the program
    /// name, the variables of the environment that `run` reads, the working directory and the ids.
    public static func key(arguments: [String], environment: [String], cwd: String, uid: UInt32, gid: UInt32) -> [UInt8] {
        var k = magic
        func field(_ s: String) { k.append(contentsOf: s.utf8); k.append(0) }
        field("uid=" + String(uid))
        field("gid=" + String(gid))
        field("cwd=" + cwd)
        field("argc=" + String(arguments.count - 1))
        var names = environmentRead
        for a in arguments.dropFirst() {
            field(a)
            names.insert(a)
            if a.hasPrefix("--env=") { names.insert(String(a.dropFirst(6))) }
            if a.hasPrefix("-e") { names.insert(String(a.dropFirst(a.hasPrefix("-e=") ? 3 : 2))) }
        }
        // Sorted: the order of environ is no input to a plan (strace, env(1) reorder it).
        for e in environment.filter({ names.contains(String($0.prefix { $0 != "=" })) }).sorted() { field(e) }
        return k
    }

    /// FNV-1a of the key: only names the file; the key itself is compared in full.
    var fileName: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ".plan"
    }

    public var path: String { directory + "/" + fileName }

    // MARK: hit

    /// A stored plan whose key matches and whose dependencies are all unchanged.
    /// A file a plan was computed from, and how much of it mattered.
    public enum Dependency: Hashable, Comparable, Sendable {
        /// Its content (the image record, /etc/subuid, our binaries): any change is a miss.
        case content(String)
        /// Only which file it is and its type (a bind source: a build that writes into the
        /// working directory changes nothing the plan says about it).
        case presence(String)

        var path: String { switch self { case .content(let p), .presence(let p): return p } }
        var kind: UInt8 { if case .content = self { return 0 } else { return 1 } }
        var identity: [UInt64] { PlanCache.identity(of: path, contentToo: kind == 0) }
    }

    public struct Entry {
        public var plan: [UInt8]
        /// The image's tree lock, to hold shared while the sandbox runs ("" for none).
        public var lockPath: String
        var dependencies: [(dependency: Dependency, identity: [UInt64])]

        /// Every dependency still is the file it was. Checked under the image's lock: before it,
        /// an `rmi` + `prune` could still come in between.
        public func isCurrent() -> Bool {
            dependencies.allSatisfy { $0.dependency.identity == $0.identity }
        }
    }

    public func lookup() -> Entry? {
        // Only what this user wrote, in a folder only this user can write: a plan is carried
        // out with the user's own rights, so nobody else may plant one (a shared --root).
        var st = stat()
        guard stat(directory, &st) == 0, st.st_uid == getuid(), st.st_mode & 0o022 == 0,
              let bytes = PlanCache.readFile(path, ownedBy: getuid()) else { return nil }
        var r = Reader(bytes: bytes)
        guard let m = r.take(PlanCache.magic.count), Array(m) == PlanCache.magic,
              let k = r.chunk(), k == key,
              let lock = r.chunk(), let n = r.u32(), n < 1024 else { return nil }
        var deps: [(Dependency, [UInt64])] = []
        for _ in 0..<n {
            guard let p = r.chunk(), let kind = r.take(1)?.first, let c = r.u32(), c <= 16 else { return nil }
            var id: [UInt64] = []
            for _ in 0..<c {
                guard let v = r.u64() else { return nil }
                id.append(v)
            }
            let path = String(decoding: p, as: UTF8.self)
            deps.append((kind == 0 ? .content(path) : .presence(path), id))
        }
        guard let plan = r.chunk(), r.atEnd else { return nil }
        // Not checked here: the caller checks every dependency once it holds the image's lock.
        return Entry(plan: plan, lockPath: String(decoding: lock, as: UTF8.self), dependencies: deps)
    }

    // MARK: store

    /// Keep `plan` for this key. `dependencies` are the files the plan was computed from;
    /// one missing now is recorded as missing (it must still be missing for a hit). Best
    /// effort: a cache that cannot be written only costs speed.
    public func store(plan: [UInt8], lockPath: String, dependencies: [Dependency]) {
        // First: creating the folder may touch a dependency (a state folder above it).
        guard PlanCache.mkdirs(directory) else { return }
        var out = PlanCache.magic
        func u32(_ v: UInt32) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        func chunk(_ b: [UInt8]) { u32(UInt32(b.count)); out.append(contentsOf: b) }
        chunk(key)
        chunk(Array(lockPath.utf8))
        let deps = Array(Set(dependencies)).sorted()
        u32(UInt32(deps.count))
        for d in deps {
            chunk(Array(d.path.utf8))
            out.append(d.kind)
            let id = d.identity
            u32(UInt32(id.count))
            for v in id { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        }
        chunk(plan)

        evictIfFull()
        let tmp = path + ".tmp-" + String(getpid())
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return }
        // Under a small `ulimit -f` the write fails (EFBIG) instead of killing the run.
        let xfsz = signal(SIGXFSZ, SIG_IGN)
        defer { signal(SIGXFSZ, xfsz) }
        var off = 0, ok = true
        while off < out.count {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = false; break }
            off += n
        }
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

    /// What identifies a file (device, inode, type) and, with `contentToo`, its version: mode,
    /// size, mtime and ctime (a rename over it, an edit and a chmod all change one). `[0]` for a
    /// missing file. Symlinks are followed: a link aimed elsewhere is another file.
    static func identity(of path: String, contentToo: Bool) -> [UInt64] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [0] }
        if !contentToo { return [1, UInt64(st.st_dev), UInt64(st.st_ino), UInt64(st.st_mode & S_IFMT)] }
        return [1, UInt64(st.st_dev), UInt64(st.st_ino), UInt64(st.st_mode), UInt64(bitPattern: Int64(st.st_size)),
                UInt64(bitPattern: Int64(st.st_mtim.tv_sec)), UInt64(st.st_mtim.tv_nsec),
                UInt64(bitPattern: Int64(st.st_ctim.tv_sec)), UInt64(st.st_ctim.tv_nsec)]
    }

    static func readFile(_ path: String, ownedBy uid: uid_t, limit: Int = 1 << 20) -> [UInt8]? {
        // O_NONBLOCK: a fifo planted at the path must not hang us before the type check.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == uid, st.st_mode & 0o022 == 0,
              st.st_size > 0, st.st_size <= limit else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            off += n
        }
        return bytes
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

    struct Reader {
        let bytes: [UInt8]
        var pos = 0
        var atEnd: Bool { pos == bytes.count }
        mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, bytes.count - pos >= n else { return nil }
            defer { pos += n }
            return bytes[pos..<pos + n]
        }
        mutating func u32() -> UInt32? {
            guard let b = take(4) else { return nil }
            return b.reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        mutating func u64() -> UInt64? {
            guard let b = take(8) else { return nil }
            return b.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        mutating func chunk() -> [UInt8]? {
            guard let n = u32(), let b = take(Int(n)) else { return nil }
            return Array(b)
        }
    }
}
