import CSeccomp
import Core
#if canImport(Glibc)
import Glibc
#endif

/// What the sandbox applies to the command just before exec: a seccomp program, the
/// capability sets, no_new_privs, and the uname answer. Computed here (Swift, libseccomp);
/// applied by the C helper (Sources/SandboxRuntime/seccomp_notify.h).
public struct KernelPolicy: Equatable, Sendable {
    public struct UTS: Equatable, Sendable, Codable {
        public var release: String
        public var version: String
    }

    public var profile: KernelProfile
    public var arch: KernelArch
    /// `struct sock_filter[]` (8 bytes per instruction), from libseccomp's seccomp_export_bpf.
    public var bpf: [UInt8]
    /// uname(2) goes to the sandbox's pid 1 (SECCOMP_RET_USER_NOTIF), which answers with `uts`.
    public var notifyUname: Bool
    public var uts: UTS
    /// What `/proc/version` must show (bind-mounted read-only over it), with `uts.release`
    /// in `/proc/sys/kernel/osrelease`. Only when `notifyUname`.
    public var procVersion: String
    public var capabilities: CapabilitySets
    public var noNewPrivs: Bool
    /// Syscalls the target kernel lacks: ENOSYS.
    public var gated: [Syscall]
    /// Deny-list entries in force on the native ABI: EPERM.
    public var denied: [DeniedCall]
    /// On x86_64: how the 32-bit compat ABI (i386, `int 0x80`) is filtered, and what could not be.
    /// nil when the program came from the cache.
    public var compat: CompatReport?
    /// The program was read from the cache (`FilterCache`), libseccomp was not called.
    public var fromCache = false

    public struct CompatReport: Equatable, Sendable, Codable {
        public var abi: String
        public var gatedCount: Int
        /// Gated on x86_64 but not on i386: names this libseccomp cannot translate.
        public var ungated: [String]
        public var deniedCount: Int
    }

    /// Errno values the filter returns.
    public static let gatedErrno: Int32 = ENOSYS
    public static let deniedErrno: Int32 = EPERM

    /// Build the policy for `profile` on `arch` (must be the native architecture: the BPF is
    /// for this kernel; `SyscallTable.missing` works for any arch).
    ///
    /// The filter: default ALLOW; every syscall newer than the profile's kernel -> ENOSYS (by
    /// number: Debian 12's libseccomp 2.5.4 lacks names for recent ones); the deny list ->
    /// EPERM (a call both gated and denied is gated: ENOSYS is what the target says); uname ->
    /// USER_NOTIF unless the profile is the host. Other ABIs: on x86_64 the i386 compat ABI gets
    /// the same rules (translated by libseccomp, by name) and x32 gets ENOSYS for everything
    /// (as on distro kernels, which ship x32 off); on aarch64, AArch32 gets ENOSYS.
    ///
    /// With `cacheDirectory`, the exported program is looked up there first and stored there
    /// after compiling (`FilterCache`): a warm `run` does not call libseccomp.
    public static func build(profile: KernelProfile, arch: KernelArch = .native,
                             denyList: [DeniedCall] = SecurityPolicy.defaultDenyList,
                             capsAdd: [String] = [], capsDrop: [String] = [],
                             cacheDirectory: String? = nil) throws -> KernelPolicy {
        try profile.validate()
        let caps = try CapabilitySets.with(add: capsAdd, drop: capsDrop)
        let rules = try FilterRules(profile: profile, arch: arch, denyList: denyList)
        var bpf: [UInt8]
        var compat: CompatReport? = nil
        var fromCache = false
        let cachePath = cacheDirectory.map { FilterCache.path($0, rules) }
        if let cachePath, let cached = FilterCache.load(cachePath) {
            bpf = cached
            fromCache = true
        } else {
            let compiled = try rules.compile()
            bpf = compiled.bpf
            compat = compiled.compat
            if let cachePath { FilterCache.store(bpf, at: cachePath) }
        }
        var p = KernelPolicy(
            profile: profile, arch: arch, bpf: bpf, notifyUname: rules.notifyUname,
            uts: UTS(release: profile.release, version: profile.version),
            procVersion: profile.procVersion, capabilities: caps, noNewPrivs: true,
            gated: rules.gated, denied: rules.denied, compat: compat)
        p.fromCache = fromCache
        return p
    }

    /// libseccomp's pseudo filter code of the same filter, for humans (`azl-shell kernel --filter`).
    public static func pseudoCode(profile: KernelProfile, arch: KernelArch = .native,
                                  denyList: [DeniedCall] = SecurityPolicy.defaultDenyList) throws -> String {
        try FilterRules(profile: profile, arch: arch, denyList: denyList).compile(pfc: true).pfc ?? ""
    }

    /// Instructions in the program.
    public var instructionCount: Int { bpf.count / 8 }

}

/// The rule list, separated from libseccomp so it can be inspected.
struct FilterRules {
    let profile: KernelProfile
    let arch: KernelArch
    let gated: [Syscall]
    let denied: [DeniedCall]
    /// Deny-list entries whose syscall the native ABI lacks (vm86 on x86_64): compat only.
    let compatOnlyDenied: [DeniedCall]
    let notifyUname: Bool

    init(profile: KernelProfile, arch: KernelArch, denyList: [DeniedCall]) throws {
        guard arch == .native else {
            throw AZLError(.usage, "cannot build a seccomp filter for \(arch.rawValue) on \(KernelArch.native.rawValue)",
                           hint: "the filter is compiled for the running kernel's architecture")
        }
        self.profile = profile
        self.arch = arch
        gated = SyscallTable.missing(on: profile, arch: arch)
        let gatedNames = Set(gated.map(\.name))
        denied = denyList.filter { SyscallTable.lookup($0.name, arch: arch) != nil && !gatedNames.contains($0.name) }
        compatOnlyDenied = denyList.filter { SyscallTable.lookup($0.name, arch: arch) == nil }
        notifyUname = !profile.isHost
    }

    struct Compiled {
        var bpf: [UInt8]
        var pfc: String?
        var compat: KernelPolicy.CompatReport?
    }

    private func check(_ rc: Int32, _ what: String) throws {
        if rc < 0 {
            throw AZLError(.internal, "libseccomp: \(what): \(String(cString: strerror(-rc)))")
        }
    }

    private func newContext() throws -> scmp_filter_ctx {
        guard let ctx = seccomp_init(azl_scmp_act_allow()) else {
            throw AZLError(.internal, "libseccomp: seccomp_init failed")
        }
        // x32 (on x86_64) and AArch32 (on aarch64) calls match no architecture of the
        // filter: ENOSYS, as on distro kernels built or booted without those ABIs.
        try check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, azl_scmp_act_errno(UInt16(ENOSYS))), "badarch")
        // Binary search over syscall numbers instead of a linear chain.
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        return ctx
    }

    private func addRule(_ ctx: scmp_filter_ctx, _ action: UInt32, _ nr: Int32, _ c: DeniedCall.Condition) -> Int32 {
        switch c {
        case .always:
            return azl_scmp_rule(ctx, action, nr)
        case .ioctlCommand(let cmd):
            return azl_scmp_rule_masked_eq(ctx, action, nr, 1, 0xffff_ffff, UInt64(cmd))
        case let .argMaskedEquals(i, m, v):
            return azl_scmp_rule_masked_eq(ctx, action, nr, i, m, v)
        }
    }

    func compile(pfc wantPfc: Bool = false) throws -> Compiled {
        let native = try newContext()
        defer { seccomp_release(native) }
        let enosys = azl_scmp_act_errno(UInt16(ENOSYS))
        let eperm = azl_scmp_act_errno(UInt16(EPERM))

        // Native ABI: raw numbers from our table (libseccomp accepts any number on the native arch).
        for s in gated {
            try check(azl_scmp_rule(native, enosys, s.nr), "gate \(s.name) (\(s.nr))")
        }
        for d in denied {
            let nr = SyscallTable.lookup(d.name, arch: arch)!.nr
            try check(addRule(native, eperm, nr, d.condition), "deny \(d.label)")
        }
        if notifyUname, let u = SyscallTable.lookup("uname", arch: arch) {
            try check(azl_scmp_rule(native, azl_scmp_act_notify(), u.nr), "notify uname")
        }

        var compat: KernelPolicy.CompatReport? = nil
        if arch == .x86_64 {
            // The i386 ABI (int 0x80, 32-bit binaries): a classic way around a filter that only
            // knows x86_64 numbers. Same rules, translated by libseccomp through the names it
            // knows (its own numbers, or pseudo-numbers for i386-only calls such as vm86).
            let c32 = try newContext()
            // seccomp_merge consumes c32 on success; release it ourselves on any failure before.
            var merged = false
            defer { if !merged { seccomp_release(c32) } }
            try check(seccomp_arch_add(c32, azl_scmp_arch_x86()), "add i386")
            try check(seccomp_arch_remove(c32, azl_scmp_arch_native()), "remove native from the i386 filter")
            var ungated: [String] = []
            var gatedCount = 0, deniedCount = 0
            for s in gated {
                let nr = seccomp_syscall_resolve_name(s.name)
                if nr == __NR_SCMP_ERROR || azl_scmp_rule(c32, enosys, nr) < 0 { ungated.append(s.name) } else { gatedCount += 1 }
            }
            for d in denied + compatOnlyDenied {
                let nr = seccomp_syscall_resolve_name(d.name)
                if nr != __NR_SCMP_ERROR, addRule(c32, eperm, nr, d.condition) == 0 { deniedCount += 1 }
            }
            if notifyUname {
                try check(azl_scmp_rule(c32, azl_scmp_act_notify(), seccomp_syscall_resolve_name("uname")), "notify i386 uname")
            }
            try check(seccomp_merge(native, c32), "merge the i386 filter")
            merged = true
            compat = .init(abi: "i386", gatedCount: gatedCount, ungated: ungated, deniedCount: deniedCount)
        }

        var result = Compiled(bpf: [], pfc: nil, compat: compat)
        var ptr: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        try check(azl_scmp_export_bpf(native, &ptr, &len), "export")
        if let ptr {
            result.bpf = Array(UnsafeBufferPointer(start: ptr, count: len))
            free(ptr)
        }
        if wantPfc {
            var cp: UnsafeMutablePointer<CChar>? = nil
            var clen = 0
            try check(azl_scmp_export_pfc(native, &cp, &clen), "export pfc")
            if let cp { result.pfc = String(cString: cp); free(cp) }
        }
        return result
    }
}
