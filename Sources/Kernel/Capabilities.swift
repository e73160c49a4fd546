import Core
import Foundation

/// Linux capabilities by number (include/uapi/linux/capability.h), up to CAP_CHECKPOINT_RESTORE (40).
public enum Capability: Int, CaseIterable, Sendable, Codable, Comparable {
    case chown = 0, dacOverride, dacReadSearch, fowner, fsetid, kill, setgid, setuid, setpcap, linuxImmutable,
         netBindService, netBroadcast, netAdmin, netRaw, ipcLock, ipcOwner, sysModule, sysRawio, sysChroot,
         sysPtrace, sysPacct, sysAdmin, sysBoot, sysNice, sysResource, sysTime, sysTtyConfig, mknod, lease,
         auditWrite, auditControl, setfcap, macOverride, macAdmin, syslog, wakeAlarm, blockSuspend, auditRead,
         perfmon, bpf, checkpointRestore

    static let kernelNames = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ]

    /// "CAP_CHOWN"
    public var name: String { "CAP_" + Capability.kernelNames[rawValue] }
    public var bit: UInt64 { 1 << UInt64(rawValue) }

    public static func < (a: Capability, b: Capability) -> Bool { a.rawValue < b.rawValue }

    /// `CAP_CHOWN`, `chown`, `cap_chown` (case-insensitive). `all` is handled by `CapabilitySets`.
    public init?(name: String) {
        var n = name.uppercased().replacingOccurrences(of: "-", with: "_")
        if n.hasPrefix("CAP_") { n = String(n.dropFirst(4)) }
        guard let i = Capability.kernelNames.firstIndex(of: n) else { return nil }
        self.init(rawValue: i)
    }

    public static func set(_ mask: UInt64) -> [Capability] { allCases.filter { mask & $0.bit != 0 } }
    public static func mask(_ caps: [Capability]) -> UInt64 { caps.reduce(0) { $0 | $1.bit } }
    public static let allMask: UInt64 = mask(allCases)
}

/// The capability sets the command starts with, as the kernel's 64-bit masks.
///
/// Root inside the sandbox's user namespace starts with every capability *of that namespace*.
/// We keep the set a package manager needs (podman's historic default, see docs/kernel.md) and
/// drop the rest from the bounding set, so neither the command nor anything it execs — setuid
/// or file-capability binaries included (no_new_privs blocks those anyway) — can regain them.
/// For uid 0 the kernel recomputes permitted/effective at exec from the bounding set; for any
/// other uid the sets are empty after the switch (ambient stays empty).
public struct CapabilitySets: Equatable, Hashable, Sendable, Codable {
    public var bounding: UInt64
    public var effective: UInt64
    public var permitted: UInt64
    public var inheritable: UInt64
    public var ambient: UInt64

    public init(bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64 = 0, ambient: UInt64 = 0) {
        self.bounding = bounding; self.effective = effective; self.permitted = permitted
        self.inheritable = inheritable; self.ambient = ambient
    }

    /// Root's namespaced set for package managers; the reason for each is in docs/kernel.md.
    public static let defaultKept: [Capability] = [
        .chown, .dacOverride, .dacReadSearch, .fowner, .fsetid, .kill, .setgid, .setuid, .setpcap,
        .netBindService, .netRaw, .sysChroot, .mknod, .auditWrite, .setfcap,
    ]

    public static var `default`: CapabilitySets { .kept(Capability.mask(defaultKept)) }

    static func kept(_ m: UInt64) -> CapabilitySets {
        CapabilitySets(bounding: m, effective: m, permitted: m, inheritable: 0, ambient: 0)
    }

    /// The kept capabilities.
    public var kept: [Capability] { Capability.set(bounding) }

    /// Apply `--cap-add`/`--cap-drop` (as docker and podman do): `--cap-add all` starts from
    /// every capability, `--cap-drop all` from none, otherwise from the default; then named
    /// drops are removed and named adds added (an add wins over a drop of the same name).
    public static func with(add: [String], drop: [String]) throws -> CapabilitySets {
        func parse(_ names: [String], _ option: String) throws -> (all: Bool, caps: [Capability]) {
            var all = false
            var caps: [Capability] = []
            for raw in names.flatMap({ $0.split(separator: ",").map(String.init) }) {
                let n = raw.trimmedBlanks
                if n.lowercased() == "all" { all = true; continue }
                guard let c = Capability(name: n) else {
                    throw AZLError(.usage, "\(option) \(n): unknown capability",
                                   hint: "names like CAP_NET_ADMIN or net_admin, or 'all'")
                }
                caps.append(c)
            }
            return (all, caps)
        }
        let a = try parse(add, "--cap-add"), d = try parse(drop, "--cap-drop")
        var m: UInt64
        if a.all { m = Capability.allMask } else if d.all { m = 0 } else { m = Capability.mask(defaultKept) }
        m &= ~Capability.mask(d.caps)
        m |= Capability.mask(a.caps)
        return .kept(m)
    }
}

extension String {
    /// Without leading and trailing blanks.
    var trimmedBlanks: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
