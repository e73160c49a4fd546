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
        /// `uname -m` when it is not the host's (a foreign-arch run).
        public var machine: String?
    }

    public var profile: KernelProfile
    public var arch: KernelArch
    /// The image's architecture: `arch` for a native run; another under qemu-user, whose
    /// uname then says it (`uts.machine`) and whose table adds to the gated calls.
    public var target: KernelArch
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
    /// How the 32-bit compat ABI (i386 on x86_64, AArch32 on aarch64) is filtered.
    public var compat: CompatReport
    /// The program was read from the cache (`FilterCache`), libseccomp was not called.
    public var fromCache = false
    /// `--abi-report`: gated and denied native calls are notified to the sandbox's pid 1, which
    /// fails them the same way and counts them (`reportedCalls`); nil for the usual program.
    public var report = false

    /// What pid 1 answers and reports for each notified call (with `report`).
    public struct ReportedCall: Equatable, Sendable {
        public var auditArch: UInt32
        public var nr: Int32
        public var errno: Int32
        public var name: String
        /// "statmount: added in 6.8, target kernel 6.6.64"
        public var reason: String
    }

    public var reportedCalls: [ReportedCall] {
        guard report else { return [] }
        let a = arch.auditArch
        var out = gated.map {
            ReportedCall(auditArch: a, nr: $0.nr, errno: KernelPolicy.gatedErrno, name: $0.name,
                         reason: "\($0.name): added in \($0.sinceString), target kernel \(profile.release)")
        }
        var seen = Set(out.map(\.nr))
        for d in denied {
            guard let s = SyscallTable.lookup(d.name, arch: arch), seen.insert(s.nr).inserted else { continue }
            out.append(ReportedCall(auditArch: a, nr: s.nr, errno: KernelPolicy.deniedErrno, name: d.name,
                                    reason: "\(d.label): denied by azl-shell's policy (\(d.reason))"))
        }
        return out
    }

    public struct CompatReport: Equatable, Sendable, Codable {
        public var abi: CompatABI
        /// false: every call answers ENOSYS (no table for the ABI).
        public var mirrored: Bool
        public var gated: [Syscall]
        public var denied: [DeniedCall]
        /// The ABI's uname family, answered with the profile's strings.
        public var notified: [String]
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
    /// the same policy from its own table (`CompatBranch`, by i386 number; uname, olduname and
    /// oldolduname notified) and x32 gets ENOSYS for everything (as on distro kernels, which ship
    /// x32 off); on aarch64, AArch32 gets ENOSYS.
    ///
    /// `target`: the image's architecture when it runs under qemu-user. qemu makes host
    /// syscalls, so the filter is still the host ABI's; what the target's table gates (a call
    /// the target kernel lacks on that architecture) is gated too, by the host call of the same
    /// name qemu translates it to (docs/kernel.md).
    ///
    /// With `cacheDirectory`, the exported program is looked up there first and stored there
    /// after compiling (`FilterCache`): a warm `run` does not call libseccomp.
    ///
    /// `report` (`--abi-report`): gated and denied native calls go to the sandbox's pid 1
    /// (SECCOMP_RET_USER_NOTIF) instead of failing in the filter; pid 1 fails them the same way
    /// and counts them. The program keeps its shape: only those calls pay for it.
    public static func build(profile: KernelProfile, arch: KernelArch = .native, target: KernelArch? = nil,
                             denyList: [DeniedCall] = SecurityPolicy.defaultDenyList,
                             capsAdd: [String] = [], capsDrop: [String] = [], report: Bool = false,
                             cacheDirectory: String? = nil) throws -> KernelPolicy {
        try profile.validate()
        let caps = try CapabilitySets.with(add: capsAdd, drop: capsDrop)
        let target = target ?? arch
        let rules = try FilterRules(profile: profile, arch: arch, target: target, denyList: denyList, report: report)
        var bpf: [UInt8]
        var fromCache = false
        let cachePath = cacheDirectory.map { FilterCache.path($0, rules) }
        if let cachePath, let cached = FilterCache.load(cachePath) {
            bpf = cached
            fromCache = true
        } else {
            bpf = try rules.compile().bpf
            if let cachePath { FilterCache.store(bpf, at: cachePath) }
        }
        var p = KernelPolicy(
            profile: profile, arch: arch, target: target, bpf: bpf, notifyUname: rules.notifyUname,
            uts: UTS(release: profile.release, version: profile.version, machine: target != arch ? target.rawValue : nil),
            procVersion: profile.procVersion, capabilities: caps, noNewPrivs: true,
            gated: rules.gated, denied: rules.denied, compat: rules.compatReport)
        p.fromCache = fromCache
        p.report = report
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
    let notifyUname: Bool
    /// The compat ABI's share: its own numbers, from its own table (empty without one).
    let compatABI: CompatABI
    let compatGated: [Syscall]
    let compatDenied: [DeniedCall]
    let compatNotified: [Syscall]
    /// Gated and denied native calls notified to pid 1 (`--abi-report`).
    let report: Bool

    init(profile: KernelProfile, arch: KernelArch, target: KernelArch? = nil, denyList: [DeniedCall], report: Bool = false) throws {
        guard arch == .native else {
            throw AZLError(.usage, "cannot build a seccomp filter for \(arch.rawValue) on \(KernelArch.native.rawValue)",
                           hint: "the filter is compiled for the running kernel's architecture")
        }
        self.profile = profile
        self.arch = arch
        self.report = report
        var gated = SyscallTable.missing(on: profile, arch: arch)
        if let target, target != arch {
            let have = Set(gated.map(\.name))
            gated += SyscallTable.missing(on: profile, arch: target)
                .compactMap { have.contains($0.name) ? nil : SyscallTable.lookup($0.name, arch: arch) }
            gated.sort { $0.nr < $1.nr }
        }
        self.gated = gated
        let gatedNames = Set(gated.map(\.name))
        denied = denyList.filter { SyscallTable.lookup($0.name, arch: arch) != nil && !gatedNames.contains($0.name) }
        notifyUname = !profile.isHost
        compatABI = CompatABI.of(arch)
        compatGated = SyscallTable.missing(on: profile, abi: compatABI)
        let compatGatedNames = Set(compatGated.map(\.name))
        let abi = compatABI
        compatDenied = denyList.filter { SyscallTable.lookup($0.name, abi: abi) != nil && !compatGatedNames.contains($0.name) }
        compatNotified = notifyUname
            ? abi.unameCalls.compactMap { SyscallTable.lookup($0, abi: abi) }.filter { !compatGatedNames.contains($0.name) }
            : []
    }

    var compatReport: KernelPolicy.CompatReport {
        .init(abi: compatABI, mirrored: compatABI.mirrorsPolicy, gated: compatGated, denied: compatDenied,
              notified: compatNotified.map(\.name))
    }

    /// The compat ABI's branch, nil when the ABI has no table (its calls stay ENOSYS).
    var compatBranch: CompatBranch? {
        guard compatABI.mirrorsPolicy else { return nil }
        return CompatBranch(abi: compatABI, gated: compatGated, notified: compatNotified,
                            denied: compatDenied.map { (SyscallTable.lookup($0.name, abi: compatABI)!.nr, $0.condition) })
    }

    struct Compiled {
        var bpf: [UInt8]
        var pfc: String?
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
        let enosys = report ? azl_scmp_act_notify() : azl_scmp_act_errno(UInt16(ENOSYS))
        let eperm = report ? azl_scmp_act_notify() : azl_scmp_act_errno(UInt16(EPERM))

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

        var result = Compiled(bpf: [], pfc: nil)
        var ptr: UnsafeMutablePointer<UInt8>? = nil
        var len = 0
        try check(azl_scmp_export_bpf(native, &ptr, &len), "export")
        if let ptr {
            result.bpf = Array(UnsafeBufferPointer(start: ptr, count: len))
            free(ptr)
        }
        let branch = compatBranch
        if let branch { result.bpf = branch.prefix() + result.bpf }
        if result.bpf.count / 8 > 4096 {
            throw AZLError(.internal, "the seccomp program has \(result.bpf.count / 8) instructions, more than the kernel's 4096")
        }
        if wantPfc {
            var cp: UnsafeMutablePointer<CChar>? = nil
            var clen = 0
            try check(azl_scmp_export_pfc(native, &cp, &clen), "export pfc")
            if let cp { result.pfc = (branch?.pseudoCode() ?? "") + String(cString: cp); free(cp) }
        }
        return result
    }
}
