/// Everything the C helper (`azl-shell-sandbox`) does, decided in Swift.
///
/// A plain value: the builder computes it from options, the image and facts about the host;
/// unit tests assert on it; `encoded()` turns it into the wire format the helper reads
/// (Sources/SandboxRuntime/plan.h documents it; the two must change together and
/// `SandboxPlan.version` with them).
public struct SandboxPlan: Equatable, Sendable {
    /// 2: the kernel policy records (seccomp, caps, uname, nnp) and the `rofile` mount kind.
    /// 3: the `keeper` record. 4: `guard` records and the `guard` mount flag. 5: `live` and
    /// `remove` (environments). 6: the `binfmt`
    /// record, uname's machine, `abi-report` and `abi-call`. 7: the `overlay` mount kind and
    /// `session-bind` (environments).
    public static let version = "7"

    public enum Namespace: String, Sendable, CaseIterable { case user, mount, pid, uts, ipc, net }

    /// One line of a uid/gid map: `count` ids from `inside` map to `outside` on the host.
    public struct IDRange: Equatable, Sendable {
        public var inside: UInt32
        public var outside: UInt32
        public var count: UInt32
        public init(inside: UInt32, outside: UInt32, count: UInt32) {
            self.inside = inside; self.outside = outside; self.count = count
        }
    }

    /// A uid or gid map and who writes it: the setuid `newuidmap`/`newgidmap` at `helper`
    /// (needed for more than one line), or the supervisor itself (`helper == nil`, one line).
    public struct IDMap: Equatable, Sendable {
        public var helper: String?
        public var ranges: [IDRange]
        public init(helper: String?, ranges: [IDRange]) { self.helper = helper; self.ranges = ranges }
    }

    public struct MountFlags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readOnly = MountFlags(rawValue: 1)
        public static let recursive = MountFlags(rawValue: 2)
        /// Skip quietly when the host source does not exist.
        public static let optional = MountFlags(rawValue: 4)
        public static let nosuid = MountFlags(rawValue: 8)
        public static let nodev = MountFlags(rawValue: 16)
        public static let noexec = MountFlags(rawValue: 32)
        /// A bind the user chose (working directory, volume): the runtime checks what it opened
        /// against `guards` (device and inode), so an alias or a rename changes nothing.
        public static let guarded = MountFlags(rawValue: 64)

        static let names: [(MountFlags, String)] = [
            (.readOnly, "ro"), (.recursive, "rec"), (.optional, "optional"),
            (.nosuid, "nosuid"), (.nodev, "nodev"), (.noexec, "noexec"), (.guarded, "guard"),
        ]
        var wire: String { MountFlags.names.filter { contains($0.0) }.map(\.1).joined(separator: ",") }
    }

    /// One step of building the root, after the overlay is mounted; paths are inside the new root.
    public enum Mount: Equatable, Sendable {
        /// Bind the host's `source` (absolute host path) on `target`.
        case bind(source: String, target: String, flags: MountFlags)
        case tmpfs(target: String, mode: UInt32, options: String, flags: MountFlags)
        /// procfs of the sandbox's pid namespace.
        case proc(target: String)
        /// A private devpts instance (`ptmxmode=0666`).
        case devpts(target: String)
        case mkdir(target: String, mode: UInt32)
        case symlink(target: String, pointsTo: String)
        /// Write `contents` to `target` (in the ephemeral upper layer; e.g. /etc/passwd for keep-id).
        case file(target: String, contents: String, mode: UInt32)
        /// Make the mount at `target` read-only (not recursive).
        case remountReadOnly(target: String)
        /// Bind a read-only file holding `contents` (kept on the sandbox's private staging tmpfs)
        /// over the existing file `target`: /proc/version and /proc/sys/kernel/osrelease.
        case readOnlyFile(target: String, contents: String, mode: UInt32)
        /// The host's `lower` (a folder) copy-on-write at `target`: an overlay whose upper and
        /// work directories are `layer`/upper and `layer`/work (an environment's `--home
        /// overlay`); the state folders it shows are covered as a guarded bind's are.
        case overlay(lower: String, target: String, layer: String)

        public var target: String {
            switch self {
            case .overlay(_, let t, _), .bind(_, let t, _), .tmpfs(let t, _, _, _), .proc(let t), .devpts(let t), .mkdir(let t, _),
                 .symlink(let t, _), .file(let t, _, _), .remountReadOnly(let t), .readOnlyFile(let t, _, _):
                return t
            }
        }

        var wireFields: [String] {
            func oct(_ m: UInt32) -> String { String(m, radix: 8) }
            switch self {
            case let .bind(s, t, f): return ["bind", t, s, "", f.wire, "0"]
            case let .tmpfs(t, m, o, f): return ["tmpfs", t, "", o, f.wire, oct(m)]
            case let .proc(t): return ["proc", t, "", "", MountFlags([.nosuid, .nodev, .noexec]).wire, "0"]
            case let .devpts(t): return ["devpts", t, "", "", MountFlags([.nosuid, .noexec]).wire, "0"]
            case let .mkdir(t, m): return ["mkdir", t, "", "", "", oct(m)]
            case let .symlink(t, p): return ["symlink", t, p, "", "", "0"]
            // The shell profile is a nicety: an image whose /etc/profile.d cannot hold it (a
            // dangling symlink, a file) still runs, without it.
            case let .file(t, c, m): return ["file", t, "", c, t == ShellProfile.path ? "optional" : "", oct(m)]
            case let .remountReadOnly(t): return ["remount-ro", t, "", "", "", "0"]
            case let .readOnlyFile(t, c, m): return ["rofile", t, "", c, "ro,nosuid,nodev,noexec", oct(m)]
            case let .overlay(l, t, d): return ["overlay", t, l, d, "nosuid,nodev,guard", "0"]
            }
        }
    }

    /// What the command's child applies just before exec (issue 5, docs/kernel.md): computed by
    /// the Kernel module (`KernelPolicy`), carried here as plain values so Sandbox needs no
    /// libseccomp.
    public struct KernelSettings: Equatable, Sendable {
        /// Capability masks (bit N = capability N).
        public struct Capabilities: Equatable, Sendable {
            public var bounding, effective, permitted, inheritable, ambient: UInt64
            public init(bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64 = 0, ambient: UInt64 = 0) {
                self.bounding = bounding; self.effective = effective; self.permitted = permitted
                self.inheritable = inheritable; self.ambient = ambient
            }
        }
        /// The kernel profile's uname answer and the contents of the /proc binds.
        public struct UTS: Equatable, Sendable {
            public var release: String
            public var version: String
            /// `/proc/version` (ends with a newline).
            public var procVersion: String
            /// What `uname -m` says; nil: the host's (a foreign-arch image: the target's).
            public var machine: String?
            public init(release: String, version: String, procVersion: String, machine: String? = nil) {
                self.release = release; self.version = version; self.procVersion = procVersion; self.machine = machine
            }
        }

        /// The profile's name, for --dry-run and --verbose.
        public var profile: String
        /// The seccomp program (`struct sock_filter[]`), empty for none.
        public var seccomp: [UInt8]
        /// uname(2) is notified to the sandbox's pid 1, which answers with `uts` (nil: the host's).
        public var uts: UTS?
        public var capabilities: Capabilities?
        public var noNewPrivs: Bool

        /// `--abi-report FILE`: the calls the program notifies instead of failing (pid 1 fails
        /// them the same way, counts them per program and writes FILE when the command ends).
        public struct ABIReport: Equatable, Sendable {
            public struct Call: Equatable, Sendable {
                public var auditArch: UInt32
                public var nr: Int32
                public var errno: Int32
                public var name: String
                public var reason: String
                public init(auditArch: UInt32, nr: Int32, errno: Int32, name: String, reason: String) {
                    self.auditArch = auditArch; self.nr = nr; self.errno = errno; self.name = name; self.reason = reason
                }
            }
            /// Absolute host path.
            public var path: String
            public var calls: [Call]
            public init(path: String, calls: [Call]) { self.path = path; self.calls = calls }
        }
        public var abiReport: ABIReport?

        public init(profile: String, seccomp: [UInt8], uts: UTS?, capabilities: Capabilities?, noNewPrivs: Bool) {
            self.profile = profile; self.seccomp = seccomp; self.uts = uts
            self.capabilities = capabilities; self.noNewPrivs = noNewPrivs
        }

        /// The plan records, in the order the C parser documents (plan.h).
        var records: [[String]] {
            func hex(_ v: UInt64) -> String {
                let s = String(v, radix: 16)
                return String(repeating: "0", count: 16 - s.count) + s
            }
            var out: [[String]] = []
            if !seccomp.isEmpty { out.append(["seccomp", SandboxPlan.hex(seccomp), uts != nil ? "notify-uname" : "-"]) }
            if let c = capabilities {
                out.append(["caps", hex(c.bounding), hex(c.effective), hex(c.permitted), hex(c.inheritable), hex(c.ambient)])
            }
            if let u = uts, !seccomp.isEmpty { out.append(["uname", u.release, u.version, u.machine ?? ""]) }
            if noNewPrivs { out.append(["nnp"]) }
            if let r = abiReport, !seccomp.isEmpty {
                out.append(["abi-report", r.path])
                for c in r.calls { out.append(["abi-call", String(c.auditArch), String(c.nr), String(c.errno), c.name, c.reason]) }
            }
            return out
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var namespaces: [Namespace]
    public var verbose: Bool
    /// Give the command a pty of the sandbox's own devpts when stdin and stdout are terminals.
    public var pty: Bool
    public var uidMap: IDMap
    public var gidMap: IDMap
    /// The cached image tree: the overlay's lower directory. Never written.
    public var rootfs: String
    /// Layers above `rootfs`, bottom to top (cached setup layers): read-only like it.
    public var lowers: [String] = []
    /// A kept upper layer (an environment's, a setup step's) and its overlay work folder on the
    /// same filesystem; nil: a fresh one in the sandbox's tmpfs, gone when it ends.
    public var upper: UpperLayer?
    public struct UpperLayer: Equatable, Sendable {
        public var directory: String
        public var work: String
        public init(directory: String, work: String) { self.directory = directory; self.work = work }
    }
    /// `--read-only`: the builder ends `mounts` with `.remountReadOnly("/")`, once every mountpoint exists.
    public var readOnlyRoot: Bool
    public var mounts: [Mount]
    public var hostname: String
    /// Ids inside the sandbox to run the command as.
    public var uid: UInt32
    public var gid: UInt32
    public var workingDirectory: String
    public var environment: [String]
    public var argv: [String]
    /// The kernel profile and security policy; nil: none (the command gets root's full namespaced set).
    public var kernel: KernelSettings?

    /// Keep the user namespace of a helper-written (full-range) map for the next runs, so they
    /// skip newuidmap/newgidmap (Sources/SandboxRuntime/keeper.c, docs/sandbox.md).
    public struct UserNamespaceKeeper: Equatable, Sendable {
        /// azl-shell-sandbox: what the keeper runs.
        public var program: String
        /// The keeper's state file (in the cache folder, which no sandbox can write).
        public var stateFile: String
        /// Seconds without a run before the keeper leaves.
        public var idleSeconds: UInt32
        public init(program: String, stateFile: String, idleSeconds: UInt32) {
            self.program = program; self.stateFile = stateFile; self.idleSeconds = idleSeconds
        }
    }
    public var keeper: UserNamespaceKeeper?

    /// A session of a named environment (Sources/SandboxRuntime/env.c): `directory` holds its
    /// live sandbox's socket, lock and pid file; it stops `idleSeconds` after its last session.
    public struct LiveEnvironment: Equatable, Sendable {
        public var directory: String
        public var idleSeconds: UInt32
        public init(directory: String, idleSeconds: UInt32) { self.directory = directory; self.idleSeconds = idleSeconds }
    }
    public var live: LiveEnvironment?
    /// A session's own working directory (host `source`, resolved, at `target`), bound guarded
    /// in a mount namespace of the session's own (Sources/SandboxRuntime/env.c).
    public struct SessionBind: Equatable, Sendable {
        public var source: String
        public var target: String
        public init(source: String, target: String) { self.source = source; self.target = target }
    }
    public var sessionBind: SessionBind?
    /// No command: remove this tree inside a user namespace of the plan's maps.
    public var removeTree: String?

    /// azl-shell's state folders of this user (stores, caches, the config folder), as resolved
    /// host paths: a guarded bind that shows one hides it (`hide`: stores and caches, whose
    /// lock files a command must not even open) or makes it read-only (`ro`); a guarded bind
    /// from inside a hidden one is refused. `pin`: a symlink on the way to one (`~/.local` ->
    /// /data/local), made a mountpoint where a bind shows it, so a command cannot put a folder
    /// of its own in its place. The runtime decides on device and inode
    /// (Sources/SandboxRuntime/mounts.c), not on these strings.
    public struct StateGuard: Equatable, Sendable {
        public enum Kind: String, Sendable { case hide, ro, pin }
        public var path: String
        public var kind: Kind
        public init(path: String, kind: Kind) { self.path = path; self.kind = kind }
    }
    public var guards: [StateGuard] = []

    /// A foreign-arch image's interpreter (qemu-user), registered in the sandbox's own
    /// binfmt_misc instance before pivot_root (Sources/SandboxRuntime/mounts.c, docs/sandbox.md).
    public struct Binfmt: Equatable, Sendable {
        /// The entry's name, e.g. `qemu-aarch64`.
        public var name: String
        /// ELF header bytes and mask in binfmt_misc's `\xHH` notation.
        public var magic: String
        public var mask: String
        /// The host path of the interpreter, opened at registration (flag F).
        public var interpreter: String
        public init(name: String, magic: String, mask: String, interpreter: String) {
            self.name = name; self.magic = magic; self.mask = mask; self.interpreter = interpreter
        }
    }
    public var binfmt: Binfmt?

    public init(namespaces: [Namespace], verbose: Bool = false, pty: Bool = true, uidMap: IDMap, gidMap: IDMap,
                rootfs: String, readOnlyRoot: Bool = false, mounts: [Mount], hostname: String,
                uid: UInt32 = 0, gid: UInt32 = 0, workingDirectory: String, environment: [String], argv: [String],
                kernel: KernelSettings? = nil) {
        self.namespaces = namespaces; self.verbose = verbose; self.pty = pty
        self.uidMap = uidMap; self.gidMap = gidMap; self.rootfs = rootfs; self.readOnlyRoot = readOnlyRoot
        self.mounts = mounts; self.hostname = hostname; self.uid = uid; self.gid = gid
        self.workingDirectory = workingDirectory; self.environment = environment; self.argv = argv
        self.kernel = kernel
    }

    /// The value of `KEY` in the command's environment.
    public func env(_ key: String) -> String? {
        let prefix = key + "="
        return environment.last(where: { $0.hasPrefix(prefix) }).map { String($0.dropFirst(prefix.count)) }
    }

    // MARK: wire format

    /// Records: u32 little-endian length, then NUL-terminated fields, the first naming the record.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        func record(_ fields: [String]) {
            var payload: [UInt8] = []
            for f in fields {
                payload.append(contentsOf: f.utf8)
                payload.append(0)
            }
            let n = UInt32(payload.count)
            out.append(contentsOf: [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)])
            out.append(contentsOf: payload)
        }
        func map(_ name: String, _ m: IDMap) {
            record([name, m.helper ?? ""] + m.ranges.flatMap { [String($0.inside), String($0.outside), String($0.count)] })
        }
        record(["azl-plan", SandboxPlan.version])
        record(["ns"] + namespaces.map(\.rawValue))
        var flags: [String] = []
        if verbose { flags.append("verbose") }
        if pty { flags.append("pty") }
        record(["flags"] + flags)
        map("uidmap", uidMap)
        map("gidmap", gidMap)
        record(["root", rootfs, readOnlyRoot ? "overlay-ro" : "overlay"])
        for l in lowers { record(["lower", l]) }
        if let upper { record(["upper", upper.directory, upper.work]) }
        for m in mounts { record(["mount"] + m.wireFields) }
        record(["hostname", hostname])
        record(["user", String(uid), String(gid)])
        record(["cwd", workingDirectory])
        record(["env"] + environment)
        record(["argv"] + argv)
        for r in kernel?.records ?? [] { record(r) }
        if let k = keeper { record(["keeper", k.program, k.stateFile, String(k.idleSeconds)]) }
        for g in guards { record(["guard", g.kind.rawValue, g.path]) }
        if let l = live { record(["live", l.directory, String(l.idleSeconds)]) }
        if let r = removeTree { record(["remove", r]) }
        if let b = sessionBind { record(["session-bind", b.source, b.target]) }
        if let b = binfmt { record(["binfmt", b.name, b.magic, b.mask, b.interpreter]) }
        return out
    }
}

extension SandboxPlan: CustomStringConvertible {
    /// A readable rendering (`run --dry-run`), one step a line.
    public var description: String {
        func ranges(_ m: IDMap) -> String {
            m.ranges.map { "\($0.inside):\($0.outside):\($0.count)" }.joined(separator: ",") + " via " + (m.helper ?? "direct write")
        }
        var lines = [
            "plan version \(SandboxPlan.version)",
            "namespaces \(namespaces.map(\.rawValue).joined(separator: " "))",
            "uidmap \(ranges(uidMap))",
            "gidmap \(ranges(gidMap))",
            "root overlay of \(([rootfs] + lowers).joined(separator: " + "))\(readOnlyRoot ? " (read-only)" : "")"
                + (upper.map { ", upper \($0.directory)" } ?? ""),
        ]
        for m in mounts {
            let f = m.wireFields
            lines.append("mount \(f[0]) \(f[1])" + (f[2].isEmpty ? "" : " <- \(f[2])")
                         + (f[4].isEmpty ? "" : " [\(f[4])]") + (f[0] == "file" || f[0] == "rofile" ? " (\(f[3].utf8.count) bytes)" : ""))
        }
        lines += [
            "hostname \(hostname)", "user \(uid):\(gid)", "cwd \(workingDirectory)",
            "env " + environment.joined(separator: " "),
            "argv " + argv.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " "),
        ]
        if let k = kernel {
            var line = "kernel profile \(k.profile)"
            if let u = k.uts { line += ": uname \(u.release) '\(u.version)'\(u.machine.map { " \($0)" } ?? "") (answered by the sandbox's init)" }
            lines.append(line)
            if !k.seccomp.isEmpty { lines.append("seccomp program of \(k.seccomp.count / 8) instructions") }
            if let c = k.capabilities {
                lines.append("capabilities bounding \(String(c.bounding, radix: 16)) effective \(String(c.effective, radix: 16))"
                             + " permitted \(String(c.permitted, radix: 16)) inheritable \(String(c.inheritable, radix: 16)) ambient \(String(c.ambient, radix: 16))")
            }
            if k.noNewPrivs { lines.append("no_new_privs") }
            if let r = k.abiReport { lines.append("ABI report to \(r.path): \(r.calls.count) calls notified to the sandbox's init") }
        }
        if let b = binfmt { lines.append("binfmt_misc of the sandbox's own: \(b.name) -> \(b.interpreter) (flags FOC)") }
        if let k = keeper { lines.append("user namespace kept in \(k.stateFile) (idle \(k.idleSeconds) s)") }
        if let l = live { lines.append("a session of the environment in \(l.directory) (its sandbox stops \(l.idleSeconds) s after the last)") }
        if let r = removeTree { lines.append("remove \(r)") }
        if let b = sessionBind { lines.append("this session's working directory \(b.target) <- \(b.source), in a mount namespace of its own") }
        for g in guards {
            lines.append(g.kind == .pin ? "symlink \(g.path) on the way to a state folder: pinned wherever a bind shows it"
                                        : "state folder \(g.path): \(g.kind == .hide ? "hidden" : "read-only") wherever a bind shows it")
        }
        return lines.joined(separator: "\n")
    }
}
