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

    /// Syscalls of `arch` newer than `profile`'s kernel: the ones it must answer ENOSYS.
    /// Empty for the host profile (nothing is mirrored).
    public static func missing(on profile: KernelProfile, arch: KernelArch) -> [Syscall] {
        if profile.isHost { return [] }
        let v = profile.versionCode
        return all(arch).filter { $0.since > v }
    }
}
