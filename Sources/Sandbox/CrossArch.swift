import Core
#if canImport(Glibc)
import Glibc
#endif

/// Running an image of another CPU architecture through qemu-user, rootless (issue 14).
///
/// The interpreter is registered in the sandbox's own binfmt_misc instance (Linux 6.7 and
/// later give every user namespace one), with flag F: the kernel opens the host's
/// qemu-ARCH-static at registration, so the image needs nothing of qemu and root sets up
/// nothing. On an older kernel a host registration of root's with flag F serves instead.
public enum CrossArch {
    /// ELF header match of each machine's executables, as qemu's scripts/qemu-binfmt-conf.sh.
    static let magic: [String: (magic: String, mask: String)] = [
        "aarch64": (#"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"#,
                    #"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"#),
        "x86_64": (#"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"#,
                   #"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"#),
    ]

    /// Where qemu-user-static puts the interpreter of `machine`; AZL_SHELL_QEMU_<MACHINE>
    /// (AZL_SHELL_QEMU_AARCH64) names another.
    public static func interpreter(machine: String) -> String {
        PlanInputs.variable("AZL_SHELL_QEMU_" + machine.uppercased()) ?? "/usr/bin/qemu-\(machine)-static"
    }

    /// Kernels from 6.7 mount a binfmt_misc instance of its own in a user namespace.
    public static func kernelHasUserNamespaceBinfmt(release: String) -> Bool {
        let n = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard n.count == 2 else { return false }
        return n[0] > 6 || (n[0] == 6 && n[1] >= 7)
    }

    /// The registration a run of an image for `architecture` (OCI-named) needs: nil when this
    /// machine runs it itself, or (older kernels) root registered the interpreter with flag F.
    /// `hostRelease`: `uname -r`. Throws one line naming the package to install when it cannot run.
    public static func binfmt(forImage image: String, architecture: String,
                              hostMachine: String = CPUArch.hostMachine,
                              hostRelease: String,
                              interpreterExists: (String) -> Bool = CrossArch.isExecutableFile) throws -> SandboxPlan.Binfmt? {
        let arch = CPUArch.oci(architecture)
        if arch == CPUArch.oci(hostMachine) { return nil }
        guard let machine = CPUArch.machine(ofOCI: arch), let m = magic[machine] else {
            throw AZLError(.usage, "cannot run \(image): it is a linux/\(arch) image, and azl-shell runs linux/amd64 and linux/arm64 ones",
                           hint: "choose another image or --platform")
        }
        let name = "qemu-\(machine)"
        if !kernelHasUserNamespaceBinfmt(release: hostRelease) {
            let host = "/proc/sys/fs/binfmt_misc/" + name
            PlanInputs.file(host, .content)
            if let text = readSmallFile(host), text.split(separator: "\n").contains(where: { $0.hasPrefix("flags:") && $0.contains("F") }),
               text.hasPrefix("enabled") {
                return nil
            }
            throw AZLError(.notFound, "cannot run \(image) (linux/\(arch)): this kernel (\(hostRelease)) has no binfmt_misc of a user namespace's own (6.7 and later) and root registered no \(name) with flag F",
                           hint: "install qemu-user-static and qemu-user-binfmt (or binfmt-support) as root")
        }
        let path = interpreter(machine: machine)
        PlanInputs.file(path, .content)
        guard path.hasPrefix("/"), interpreterExists(path) else {
            throw AZLError(.notFound, "cannot run \(image) (linux/\(arch)) on this \(hostMachine) machine: its interpreter \(path) is missing",
                           hint: "install qemu-user-static: apt-get install qemu-user-static, or dnf install qemu-user-static")
        }
        return SandboxPlan.Binfmt(name: name, magic: m.magic, mask: m.mask, interpreter: path)
    }

    public static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }
}
