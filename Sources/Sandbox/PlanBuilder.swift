import CLinux
import Core
#if canImport(Glibc)
import Glibc
#endif

/// What a user asks of a sandbox, whatever the verb: the command and the options that shape
/// its root. The planning layer's `RunSpec` and the builder's `RunRequest` both carry one.
public struct RunOptions: Sendable {
    public enum Network: String, Sendable { case host, none }
    /// How to map ids: `auto` uses /etc/subuid ranges via newuidmap when it can; `single` never does.
    public enum IDMapping: String, Sendable { case auto, single }

    /// Cached layers above the image, bottom to top (SandboxPlan.lowers: setup layers).
    public var layers: [String] = []
    /// A kept upper layer instead of a fresh one (SandboxPlan.upper: an environment's, a step's).
    public var upper: SandboxPlan.UpperLayer?
    /// Empty: the image's entrypoint and cmd.
    public var command: [String] = []
    /// `--env K=V` or `--env K` (pass K through from the host when set there).
    public var env: [String] = []
    /// `--volume SRC:DST[:ro|rw]`.
    public var volumes: [String] = []
    /// Volumes a file asked for that commands in sandboxes may have written (a project file no
    /// one has trusted): bound before `volumes`, each only when its source resolves inside the
    /// file's folder, so such a file never widens a later sandbox's view (docs/sandbox.md, "Trust").
    public var confinedVolumes: ConfinedVolumes?
    public var workdir: String?
    /// nil, `root`, `keep-id`, `UID[:GID]`, or a user name of the image.
    public var user: String?
    public var hostname: String?
    public var network: Network = .host
    public var readOnly = false
    public var idMapping: IDMapping = .auto
    public var verbose = false
    /// Bind the current directory at its path (`run`); an environment's sessions do not (their
    /// live sandbox is shared: docs/environments.md).
    public var bindWorkingDirectory = true

    public init() {}
}

/// Volumes from a file a sandbox could have written, and the folder they must stay in.
public struct ConfinedVolumes: Sendable, Equatable {
    /// The file that asked (for errors).
    public var file: String
    /// The folder every source must resolve inside (after every symlink).
    public var root: String
    public var volumes: [String]
    /// A trusted file's volumes as they resolved when the user trusted it (volume → source):
    /// one of them may lie outside the folder, but only where it resolved then, so a symlink a
    /// sandbox swaps in later moves nothing.
    public var approved: [String: String]
    public init(file: String, root: String, volumes: [String], approved: [String: String] = [:]) {
        self.file = file; self.root = root; self.volumes = volumes; self.approved = approved
    }
}

/// What the builder is given: the user's options and what the image says. Explicit options
/// win over the image.
@dynamicMemberLookup
public struct RunRequest: Sendable {
    public typealias Network = RunOptions.Network
    public typealias IDMapping = RunOptions.IDMapping

    public var options = RunOptions()
    public subscript<T>(dynamicMember key: WritableKeyPath<RunOptions, T>) -> T {
        get { options[keyPath: key] }
        set { options[keyPath: key] = newValue }
    }

    /// The cached image tree (the overlay's lowest layer).
    public var rootfs: String
    /// The image name: the default hostname.
    public var imageName: String
    /// NAME:TAG as the user knows the image, for the prompt marker (default: imageName).
    public var imageReference: String?
    public var imageEnv: [String] = []
    public var imageWorkingDir: String?
    public var imageUser: String?
    public var entrypoint: [String]?
    public var imageCmd: [String]?

    /// azl-shell's state folders of this user (`Paths.stateFolders`: every store, cache and
    /// config folder a run of theirs may use, not only this run's): hidden (or, the config
    /// folder, read-only) wherever the working directory or a volume shows one; a bind from
    /// inside a hidden one is refused. The runtime decides by device and inode.
    public var stateFolders: [(path: String, hide: Bool)] = []
    /// The kernel profile and security policy the command runs under (computed by the
    /// Kernel module); nil: none.
    public var kernel: SandboxPlan.KernelSettings?

    public init(rootfs: String, imageName: String) {
        self.rootfs = rootfs
        self.imageName = imageName
    }
}

/// Facts about the invoking user and host the plan depends on; `current()` reads them,
/// tests make their own.
public struct HostFacts: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var userName: String
    public var home: String
    public var cwd: String
    /// The process's (each variable planning reads is recorded: `PlanInputs`), or a test's.
    public var environment: Environment
    /// The user's ranges from /etc/subuid and /etc/subgid (first matching line of each).
    public var subuid: (start: UInt32, count: UInt32)?
    public var subgid: (start: UInt32, count: UInt32)?
    public var newuidmap: String?
    public var newgidmap: String?
    /// Host files to bind when present.
    public var hasResolvConf = true
    public var hasHosts = true

    public init(uid: UInt32, gid: UInt32, userName: String, home: String, cwd: String,
                environment: Environment = [:],
                subuid: (start: UInt32, count: UInt32)? = nil, subgid: (start: UInt32, count: UInt32)? = nil,
                newuidmap: String? = nil, newgidmap: String? = nil) {
        self.uid = uid; self.gid = gid; self.userName = userName; self.home = home; self.cwd = cwd
        self.environment = environment; self.subuid = subuid; self.subgid = subgid
        self.newuidmap = newuidmap; self.newgidmap = newgidmap
    }

    /// Read the facts of this process: a handful of syscalls and two small files.
    public static func current() -> HostFacts {
        let uid = getuid(), gid = getgid()
        var name = String(uid), home = "/"
        if let pw = getpwuid(uid) {
            name = String(cString: pw.pointee.pw_name)
            home = String(cString: pw.pointee.pw_dir)
        }
        // getpwuid reads these (through NSS's files).
        PlanInputs.file("/etc/passwd", .content)
        PlanInputs.file("/etc/group", .content)
        var cwd = "/"
        if let p = getcwd(nil, 0) { cwd = String(cString: p); free(p) }
        var facts = HostFacts(uid: uid, gid: gid, userName: name, home: home, cwd: cwd, environment: .process)
        if uid != 0 {
            facts.subuid = subordinateRange(file: "/etc/subuid", name: name, id: uid)
            facts.subgid = subordinateRange(file: "/etc/subgid", name: name, id: uid)
            facts.newuidmap = executable(["/usr/bin/newuidmap", "/bin/newuidmap", "/usr/sbin/newuidmap"])
            facts.newgidmap = executable(["/usr/bin/newgidmap", "/bin/newgidmap", "/usr/sbin/newgidmap"])
        }
        // Bound when readable: a chmod decides (content, since presence has no mode).
        PlanInputs.file("/etc/resolv.conf", .content)
        PlanInputs.file("/etc/hosts", .content)
        facts.hasResolvConf = access("/etc/resolv.conf", R_OK) == 0
        facts.hasHosts = access("/etc/hosts", R_OK) == 0
        return facts
    }

    static func executable(_ candidates: [String]) -> String? {
        candidates.first { PlanInputs.file($0, .content); return access($0, X_OK) == 0 }
    }

    /// The first `NAME:START:COUNT` (or `UID:START:COUNT`) line of `file` for this user.
    public static func subordinateRange(file: String, name: String, id: UInt32) -> (start: UInt32, count: UInt32)? {
        guard let text = readSmallFile(file) else { return nil }
        return parseSubordinate(text, name: name, id: id)
    }

    public static func parseSubordinate(_ text: String, name: String, id: UInt32) -> (start: UInt32, count: UInt32)? {
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, f[0] == name || f[0] == String(id),
                  let start = UInt32(f[1]), let count = UInt32(f[2]), count > 0 else { continue }
            return (start, count)
        }
        return nil
    }
}

/// Read a small regular file (not following a final symlink), nil if absent or unreadable.
func readSmallFile(_ path: String, limit: Int = 4 << 20) -> String? {
    PlanInputs.file(path, .content)
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    if fd < 0 { return nil }
    return readAll(fd, limit: limit)
}

/// Read fd to its end (at most `limit` bytes), then close it.
func readAll(_ fd: Int32, limit: Int = 4 << 20) -> String? {
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while bytes.count < limit {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: buf[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Computes a `SandboxPlan` from a request and host facts. Pure: no syscall but reading
/// the image's /etc/passwd and /etc/group (through `readImageFile`) and stat of volume sources.
public struct PlanBuilder {
    public var request: RunRequest
    public var host: HostFacts
    /// Reads a file of the image by its path inside (e.g. "/etc/passwd").
    public var readImageFile: (String) -> String?
    /// Whether a host path exists (volume sources).
    public var hostPathExists: (String) -> Bool
    /// The host path with every symlink resolved (realpath): the helper finds bind sources
    /// under /oldroot, where an absolute symlink would point into the sandbox's staging root,
    /// and the protected-path checks compare real paths. Unresolvable paths stay as they are.
    public var resolveHostPath: (String) -> String
    /// The symlinks met resolving a host path (each where it really is: its folder resolved):
    /// a state folder reached through `~/.local -> /data/local` is only as safe as that link.
    public var symlinksOnTheWay: (String) -> [String]
    /// Things worth saying with --verbose (e.g. the single-id fallback).
    public internal(set) var notes: [String] = []

    /// Where the spare procfs lives, under an empty read-only tmpfs (see `build`).
    public static let spareProc = "/dev/.azl-proc"
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    /// Host directories never bound as the working directory: they would hide the image's own.
    static let systemDirectories: Set<String> = [
        "/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/var", "/boot",
        "/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/home", "/opt", "/srv", "/mnt", "/media",
    ]

    public init(request: RunRequest, host: HostFacts,
                readImageFile: ((String) -> String?)? = nil, hostPathExists: ((String) -> Bool)? = nil,
                resolveHostPath: ((String) -> String)? = nil, symlinksOnTheWay: ((String) -> [String])? = nil) {
        self.request = request
        self.host = host
        self.symlinksOnTheWay = symlinksOnTheWay ?? hostSymlinks
        let root = request.rootfs
        self.readImageFile = readImageFile ?? { readImageFileInRoot(root, $0) }
        // What these look at of the host is an input of the plan: which file each path is.
        self.hostPathExists = hostPathExists ?? { PlanInputs.file($0, .presence); return access($0, F_OK) == 0 }
        self.resolveHostPath = resolveHostPath ?? { PlanInputs.file($0, .presence); return FS.realPath($0) }
    }

    public mutating func build() throws -> SandboxPlan {
        var r = request
        r.rootfs = resolveHostPath(r.rootfs)
        let guards = stateGuards(r)
        if let h = r.hostname, !HostName.isValid(h, maxLength: PlanBuilder.utsNameMax) {
            throw AZLError(.usage, "--hostname \(h.prefix(80)): not a valid host name",
                           hint: "RFC 1123: labels of letters, digits and '-' separated by '.', 1 to 63 each, not starting or ending with '-'; at most \(PlanBuilder.utsNameMax) in all, what uname(2) holds")
        }
        var namespaces: [SandboxPlan.Namespace] = [.user, .mount, .pid, .uts, .ipc]
        if r.network == .none { namespaces.append(.net) }

        let id = try identity(r)
        // Mounts: the machine's layout first, then the user's binds, deepest last.
        var mounts = layout(r, id)
        let binds = try userBinds(r, guards: guards)
        mounts += binds.mounts
        let workdir = try workingDirectory(r, id, binds)
        if !binds.targets.contains(workdir) && workdir != "/" {
            mounts.append(.mkdir(target: workdir, mode: 0o755))
        }
        if r.readOnly { mounts.append(.remountReadOnly(target: "/")) }

        // The command: entrypoint + (arguments or the image's cmd), else a shell.
        var argv = (r.entrypoint ?? []) + (r.command.isEmpty ? (r.imageCmd ?? []) : r.command)
        if argv.isEmpty { argv = ["/bin/sh"] }

        var plan = SandboxPlan(
            namespaces: namespaces, verbose: r.verbose, pty: true, uidMap: id.uidMap, gidMap: id.gidMap,
            rootfs: r.rootfs, readOnlyRoot: r.readOnly, mounts: mounts,
            hostname: r.hostname ?? PlanBuilder.hostname(forImage: r.imageName),
            uid: id.uid, gid: id.gid, workingDirectory: workdir,
            environment: try environment(r, home: id.home), argv: argv, kernel: r.kernel)
        plan.guards = guards
        plan.lowers = r.layers
        plan.upper = r.upper
        return plan
    }

    // MARK: pieces

    mutating func idMaps(keepID: Bool) -> (SandboxPlan.IDMap, SandboxPlan.IDMap) {
        typealias R = SandboxPlan.IDRange
        func full(_ id: UInt32, _ sub: (start: UInt32, count: UInt32)) -> [R] {
            if !keepID { return [R(inside: 0, outside: id, count: 1), R(inside: 1, outside: sub.start, count: sub.count)] }
            // keep-id: the user keeps their id; subordinate ids fill in below and above it.
            var r: [R] = []
            let below = min(id, sub.count)
            if below > 0 { r.append(R(inside: 0, outside: sub.start, count: below)) }
            r.append(R(inside: id, outside: id, count: 1))
            if sub.count > below { r.append(R(inside: id + 1, outside: sub.start + below, count: sub.count - below)) }
            return r
        }
        if request.idMapping == .auto, let su = host.subuid, let sg = host.subgid,
           let nu = host.newuidmap, let ng = host.newgidmap {
            return (.init(helper: nu, ranges: full(host.uid, su)), .init(helper: ng, ranges: full(host.gid, sg)))
        }
        if host.uid != 0 {
            notes.append(request.idMapping == .single
                ? "mapping only your own uid and gid (--id-map single)"
                : "no /etc/subuid and /etc/subgid range for \(host.userName) (or no newuidmap/newgidmap): mapping only your own uid and gid, so chown to other ids will fail")
        }
        let u = keepID ? host.uid : 0, g = keepID ? host.gid : 0
        return (.init(helper: nil, ranges: [R(inside: u, outside: host.uid, count: 1)]),
                .init(helper: nil, ranges: [R(inside: g, outside: host.gid, count: 1)]))
    }

    func mapped(_ id: UInt32, _ m: SandboxPlan.IDMap) -> Bool {
        m.ranges.contains { id >= $0.inside && UInt64(id) < UInt64($0.inside) + UInt64($0.count) }
    }

    /// `UID[:GID]`, `NAME[:GROUP]`, looked up in the image's /etc/passwd and /etc/group.
    func resolveUser(_ spec: String) throws -> (UInt32, UInt32, String) {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let passwd = readImageFile("/etc/passwd") ?? ""
        let entries = passwd.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        var uid: UInt32, gid: UInt32? = nil, home = "/"
        if let n = UInt32(parts[0]) {
            uid = n
            if let e = entries.first(where: { $0.count >= 7 && $0[2] == parts[0] }) { gid = UInt32(e[3]); home = e[5] }
        } else if let e = entries.first(where: { $0.count >= 7 && $0[0] == parts[0] }), let n = UInt32(e[2]) {
            uid = n; gid = UInt32(e[3]); home = e[5]
        } else {
            throw AZLError(.usage, "no user \(parts[0]) in the image's /etc/passwd")
        }
        if parts.count == 2 {
            if let n = UInt32(parts[1]) { gid = n } else {
                let groups = (readImageFile("/etc/group") ?? "").split(separator: "\n")
                    .map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
                guard let g = groups.first(where: { $0.count >= 3 && $0[0] == parts[1] }), let n = UInt32(g[2]) else {
                    throw AZLError(.usage, "no group \(parts[1]) in the image's /etc/group")
                }
                gid = n
            }
        }
        return (uid, gid ?? uid, home.isEmpty ? "/" : home)
    }

    /// /etc/passwd and /etc/group of the image plus an entry for the invoking user.
    func keepIDFiles() -> [SandboxPlan.Mount] {
        let shell = "/bin/sh"
        var passwd = readImageFile("/etc/passwd") ?? "root:x:0:0:root:/root:/bin/sh\n"
        var group = readImageFile("/etc/group") ?? "root:x:0:\n"
        func has(_ text: String, name: String, id: UInt32) -> Bool {
            text.split(separator: "\n").contains {
                let f = $0.split(separator: ":", omittingEmptySubsequences: false)
                return f.count >= 3 && (f[0] == name || f[2] == String(id))
            }
        }
        if !passwd.isEmpty && !passwd.hasSuffix("\n") { passwd += "\n" }
        if !group.isEmpty && !group.hasSuffix("\n") { group += "\n" }
        var files: [SandboxPlan.Mount] = []
        if !has(passwd, name: host.userName, id: host.uid) {
            passwd += "\(host.userName):x:\(host.uid):\(host.gid):\(host.userName):\(host.home):\(shell)\n"
            files.append(.file(target: "/etc/passwd", contents: passwd, mode: 0o644))
        }
        if !has(group, name: host.userName, id: host.gid) {
            group += "\(host.userName):x:\(host.gid):\n"
            files.append(.file(target: "/etc/group", contents: group, mode: 0o644))
        }
        return files
    }

    func parseVolume(_ v: String) throws -> (String, String, Bool) {
        let f = v.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 2 || f.count == 3, !f[0].isEmpty, !f[1].isEmpty else {
            throw AZLError(.usage, "--volume \(v): expected SRC:DST or SRC:DST:ro")
        }
        var ro = false
        if f.count == 3 {
            switch f[2] {
            case "ro": ro = true
            case "rw", "": ro = false
            default: throw AZLError(.usage, "--volume \(v): unknown option '\(f[2])' (ro or rw)")
            }
        }
        let src = normalize(f[0].hasPrefix("/") ? f[0] : host.cwd + "/" + f[0])
        guard f[1].hasPrefix("/") else { throw AZLError(.usage, "--volume \(v): the target must be an absolute path inside the image") }
        let dst = normalize(f[1])
        guard dst != "/" else { throw AZLError(.usage, "--volume \(v): cannot mount over the image's root") }
        for own in ["/proc", "/sys", "/dev"] where dst == own || dst.hasPrefix(own + "/") {
            throw AZLError(.usage, "--volume \(v): \(own) is the sandbox's own", hint: "choose another target path")
        }
        guard hostPathExists(src) else { throw AZLError(.notFound, "--volume \(v): \(src) does not exist") }
        return (src, dst, ro)
    }

    public static func canBindWorkingDirectory(_ cwd: String, rootfs: String) -> Bool {
        if systemDirectories.contains(cwd) { return false }
        for p in ["/proc/", "/sys/", "/dev/", "/run/"] where cwd.hasPrefix(p) { return false }
        let root = rootfs.hasSuffix("/") ? String(rootfs.dropLast()) : rootfs
        if cwd == root || cwd.hasPrefix(root + "/") { return false }   // inside the cached tree: never writable
        return true
    }

    /// A UTS name (hostname) holds at most this many bytes (__NEW_UTS_LEN).
    public static let utsNameMax = 64

    /// A valid hostname from an image name: its last path component, letters, digits, '-' and '.'.
    public static func hostname(forImage name: String) -> String {
        let base = name.split(separator: "/").last.map(String.init) ?? name
        let noTag = base.split(separator: ":").first.map(String.init) ?? base
        let s = String(noTag.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") ? $0 : "-" })
        // Labels as RFC 1123 wants them: no empty ones, no '-' at either end.
        var out = ""
        for label in s.split(separator: ".") {
            let l = label.drop { $0 == "-" }.reversed().drop { $0 == "-" }.reversed()
            guard !l.isEmpty, out.utf8.count + (out.isEmpty ? 0 : 1) + min(l.count, 63) <= 63 else { continue }
            out += (out.isEmpty ? "" : ".") + String(l.prefix(63))
        }
        return out.isEmpty ? "azl-shell" : out
    }
}

/// The symlinks resolving PATH goes through, each as its resolved folder + its name (at most 40
/// hops, as the kernel); the walk stops where a component does not exist.
func hostSymlinks(_ path: String) -> [String] {
    var links: [String] = []
    var todo = path.split(separator: "/").map(String.init)
    var at = ""   // resolved so far ("" is /)
    var hops = 0
    while !todo.isEmpty {
        let c = todo.removeFirst()
        if c == "." || c.isEmpty { continue }
        if c == ".." { at = String(at[..<(at.lastIndex(of: "/") ?? at.startIndex)]); continue }
        let next = at + "/" + c
        var st = stat()
        guard lstat(next, &st) == 0 else { break }
        if (st.st_mode & S_IFMT) != S_IFLNK { at = next; continue }
        links.append(next)
        hops += 1
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(next, &buf, Int(PATH_MAX))
        guard n > 0, hops <= 40 else { break }
        let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if target.hasPrefix("/") { at = "" }
        todo = target.split(separator: "/").map(String.init) + todo
    }
    return links
}

/// A small regular file of the image, resolved inside the tree (openat2 RESOLVE_IN_ROOT): an
/// image whose /etc is a symlink to a host folder cannot make us read the host's files.
func readImageFileInRoot(_ root: String, _ path: String) -> String? {
    let dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC)
    guard dir >= 0 else { return nil }
    defer { close(dir) }
    let rel = String(path.drop { $0 == "/" })
    let fd = azl_openat2(dir, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0, AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
    guard fd >= 0 else { return nil }
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { close(fd); return nil }
    return readAll(fd)
}

/// Lexically clean an absolute path: no empty, "." or ".." components, no trailing slash.
func normalize(_ path: String) -> String {
    var out: [Substring] = []
    for c in path.split(separator: "/") {
        if c == "." { continue }
        if c == ".." { if !out.isEmpty { out.removeLast() }; continue }
        out.append(c)
    }
    return "/" + out.joined(separator: "/")
}

func depth(_ path: String) -> Int { path.split(separator: "/").count }

/// The folder holding PATH (lexically).
func parentOf(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
    return String(path[..<slash])
}
