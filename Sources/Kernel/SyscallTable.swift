/// One syscall of an architecture's native ABI and the first kernel that has it there.
public struct Syscall: Equatable, Hashable, Sendable, Codable {
    public var nr: Int32
    public var name: String
    /// `major * 1_000_000 + minor * 1000 + patch`.
    public var since: Int

    public init(nr: Int32, name: String, since: Int) { self.nr = nr; self.name = name; self.since = since }

    /// "5.3", "2.6.16"
    public var sinceString: String {
        let ma = since / 1_000_000, mi = since / 1000 % 1000, pa = since % 1000
        return pa == 0 ? "\(ma).\(mi)" : "\(ma).\(mi).\(pa)"
    }
}

/// The 32-bit compat ABI of an architecture: what a 64-bit kernel also accepts from the same
/// process (i386 through `int $0x80` on x86_64, AArch32 on aarch64).
public enum CompatABI: String, Sendable, Codable, CaseIterable {
    case i386
    case aarch32

    public static func of(_ arch: KernelArch) -> CompatABI {
        switch arch {
        case .x86_64: return .i386
        case .aarch64: return .aarch32
        }
    }

    /// `AUDIT_ARCH_*`, what `seccomp_data.arch` says for a call of this ABI.
    public var auditArch: UInt32 {
        switch self {
        case .i386: return 0x4000_0003         // EM_386 | __AUDIT_ARCH_LE
        case .aarch32: return 0x4000_0028      // EM_ARM | __AUDIT_ARCH_LE
        }
    }

    /// The ABI follows the profile (gating, deny list, uname) from its own table; without a
    /// table every call answers ENOSYS (docs/kernel.md says why for AArch32).
    public var mirrorsPolicy: Bool { SyscallTable.generatedCompatRows[self] != nil }

    /// The uname family of the ABI, answered by the sandbox's init like the native uname.
    public var unameCalls: [String] {
        switch self {
        case .i386: return ["uname", "olduname", "oldolduname"]
        case .aarch32: return []
        }
    }
}

/// The per-architecture syscall tables of kernel-data/ (compiled in, see gen-swift.py).
public enum SyscallTable {
    /// Every syscall of `arch`, by number.
    public static func all(_ arch: KernelArch) -> [Syscall] {
        cache[arch] ?? []
    }

    private static let cache: [KernelArch: [Syscall]] = {
        var out: [KernelArch: [Syscall]] = [:]
        for (arch, rows) in generatedRows {
            out[arch] = rows.map { Syscall(nr: $0.nr, name: $0.name, since: $0.since) }
        }
        return out
    }()

    private static let byName: [KernelArch: [String: Syscall]] = {
        var out: [KernelArch: [String: Syscall]] = [:]
        for arch in KernelArch.allCases {
            var d: [String: Syscall] = [:]
            for s in all(arch) { d[s.name] = s }
            out[arch] = d
        }
        return out
    }()

    /// The syscall called `name` on `arch`, nil if that ABI has none (e.g. `open` on aarch64).
    public static func lookup(_ name: String, arch: KernelArch) -> Syscall? {
        byName[arch]?[name]
    }

    /// Every syscall of a compat ABI, by number (empty for an ABI without a table).
    public static func all(_ abi: CompatABI) -> [Syscall] {
        compatCache[abi]?.rows ?? []
    }

    public static func lookup(_ name: String, abi: CompatABI) -> Syscall? {
        compatCache[abi]?.byName[name]
    }

    /// Syscalls of a compat ABI newer than `profile`'s kernel.
    public static func missing(on profile: KernelProfile, abi: CompatABI) -> [Syscall] {
        if profile.isHost { return [] }
        let v = profile.versionCode
        return all(abi).filter { $0.since > v }
    }

    private static let compatCache: [CompatABI: (rows: [Syscall], byName: [String: Syscall])] = {
        var out: [CompatABI: (rows: [Syscall], byName: [String: Syscall])] = [:]
        for (abi, rows) in generatedCompatRows {
            let r = rows.map { Syscall(nr: $0.nr, name: $0.name, since: $0.since) }
            out[abi] = (r, Dictionary(r.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }))
        }
        return out
    }()

    /// Syscalls of `arch` newer than `profile`'s kernel: the ones it must answer ENOSYS.
    /// Empty for the host profile (nothing is mirrored).
    public static func missing(on profile: KernelProfile, arch: KernelArch) -> [Syscall] {
        if profile.isHost { return [] }
        let v = profile.versionCode
        return all(arch).filter { $0.since > v }
    }
}
