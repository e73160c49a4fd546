/// One entry of the security deny list: a syscall (optionally only with a given argument)
/// that fails with EPERM inside the sandbox, and why.
public struct DeniedCall: Equatable, Hashable, Sendable, Codable {
    public enum Condition: Equatable, Hashable, Sendable, Codable {
        /// Every call.
        case always
        /// `ioctl(fd, CMD, ...)` with CMD compared on its low 32 bits (the kernel reads an
        /// `unsigned int`, so garbage in the upper half must not slip past the filter).
        case ioctlCommand(UInt32)
        /// Only when `(arg[index] & mask) == value` (compared on 64 bits).
        case argMaskedEquals(index: UInt32, mask: UInt64, value: UInt64)

        /// A fixed spelling for cache keys: interpolating the enum itself goes through
        /// reflection, which cost a warm `run` more than a millisecond.
        var keyText: String {
            switch self {
            case .always: return "always"
            case .ioctlCommand(let c): return "ioctl=" + String(c, radix: 16)
            case .argMaskedEquals(let i, let m, let v):
                return "arg\(i)&" + String(m, radix: 16) + "=" + String(v, radix: 16)
            }
        }
    }

    public var name: String
    public var condition: Condition
    public var reason: String

    public init(_ name: String, _ condition: Condition = .always, reason: String) {
        self.name = name; self.condition = condition; self.reason = reason
    }

    /// "ioctl(TIOCSTI)", "userfaultfd(without UFFD_USER_MODE_ONLY)", "keyctl"
    public var label: String {
        switch condition {
        case .always: return name
        case .ioctlCommand(let c):
            let known: [UInt32: String] = [0x5412: "TIOCSTI", 0x541C: "TIOCLINUX"]
            return "\(name)(\(known[c] ?? "0x" + String(c, radix: 16)))"
        case .argMaskedEquals(let i, let m, let v):
            if name == "userfaultfd", i == 0, m == 1, v == 0 { return "userfaultfd(without UFFD_USER_MODE_ONLY)" }
            return "\(name)(arg\(i) & 0x\(String(m, radix: 16)) == 0x\(String(v, radix: 16)))"
        }
    }
}

/// The default security policy: what a build never needs and what has a history of abuse
/// (in the spirit of the docker/podman default seccomp profiles, which allow-list instead).
/// Denied calls fail with EPERM, the error a kernel gives an unprivileged caller.
/// Mount-related calls, unshare/clone with namespace flags, setns, pivot_root, chroot,
/// ptrace, seccomp and io_uring stay allowed: nested namespaces and sandboxes inside must
/// work (test suites of container tools, bubblewrap, browsers). docs/kernel.md has the table.
public enum SecurityPolicy {
    public static let defaultDenyList: [DeniedCall] = [
        DeniedCall("kexec_load", reason: "loads a new kernel to boot into; never part of a build"),
        DeniedCall("kexec_file_load", reason: "loads a new kernel to boot into; never part of a build"),
        DeniedCall("init_module", reason: "loads kernel code; modules are host-wide, never namespaced"),
        DeniedCall("finit_module", reason: "loads kernel code; modules are host-wide, never namespaced"),
        DeniedCall("delete_module", reason: "unloads host kernel modules"),
        DeniedCall("keyctl", reason: "kernel keyrings are not namespaced (keys of other containers/users); long CVE history (CVE-2016-0728)"),
        DeniedCall("add_key", reason: "kernel keyrings are not namespaced; long CVE history"),
        DeniedCall("request_key", reason: "kernel keyrings are not namespaced; can run host upcall helpers"),
        DeniedCall("open_by_handle_at", reason: "opens files by handle, bypassing the mount namespace (the 'shocker' container breakout)"),
        DeniedCall("perf_event_open", reason: "kernel and cross-process information leaks; frequent CVEs"),
        DeniedCall("bpf", reason: "eBPF verifier and map bugs are a recurring privilege-escalation path"),
        DeniedCall("userfaultfd", .argMaskedEquals(index: 0, mask: 1, value: 0),
                   reason: "kernel-mode userfaults stretch kernel race windows for exploits; as vm.unprivileged_userfaultfd=0, only UFFD_USER_MODE_ONLY stays allowed"),
        DeniedCall("ioctl", .ioctlCommand(0x5412),
                   reason: "TIOCSTI pushes bytes into a terminal's input queue: typed commands in the user's shell (CVE-2017-5226, bubblewrap)"),
        DeniedCall("ioctl", .ioctlCommand(0x541C),
                   reason: "TIOCLINUX can read and inject virtual console contents (selection paste)"),
        DeniedCall("acct", reason: "process accounting is host-wide"),
        DeniedCall("swapon", reason: "host swap configuration"),
        DeniedCall("swapoff", reason: "host swap configuration"),
        DeniedCall("reboot", reason: "a build never reboots; in a pid namespace it would kill the sandbox's pid 1"),
        DeniedCall("settimeofday", reason: "the system clock is host-wide (no time namespace for CLOCK_REALTIME)"),
        DeniedCall("clock_settime", reason: "the system clock is host-wide"),
        DeniedCall("stime", reason: "sets the system clock (i386 ABI only)"),
        DeniedCall("clock_settime64", reason: "clock_settime with a 64-bit time (i386 ABI only)"),
        DeniedCall("iopl", reason: "raw I/O port access (x86 only)"),
        DeniedCall("ioperm", reason: "raw I/O port access (x86 only)"),
        DeniedCall("vm86", reason: "virtual-8086 mode (i386 ABI only); a source of kernel bugs"),
        DeniedCall("vm86old", reason: "virtual-8086 mode (i386 ABI only)"),
    ]
}
