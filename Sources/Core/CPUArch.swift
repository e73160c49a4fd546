#if canImport(Glibc)
import Glibc
#endif

/// CPU architectures by the names images carry (OCI: `amd64`, `arm64`) and the names the
/// kernel says (`uname -m`: `x86_64`, `aarch64`), and how an ELF header names them. Records,
/// `--platform` and `images` use the OCI name; the sandbox, qemu and uname the kernel's.
public enum CPUArch {
    /// (OCI name, uname machine, ELF e_machine).
    static let known: [(oci: String, machine: String, elf: UInt16)] = [
        ("amd64", "x86_64", 62), ("arm64", "aarch64", 183), ("386", "i686", 3), ("arm", "armv7l", 40),
        ("riscv64", "riscv64", 243), ("ppc64le", "ppc64le", 21), ("s390x", "s390x", 22),
    ]

    /// The OCI name of any spelling (`x86_64` → `amd64`, `aarch64` → `arm64`); unknown ones lowercased.
    public static func oci(_ name: String) -> String {
        switch name.lowercased() {
        case "x86_64", "x86-64", "amd64": return "amd64"
        case "aarch64", "arm64": return "arm64"
        case "armhf", "armv7l", "armv7", "arm": return "arm"
        case "i386", "i486", "i586", "i686", "386": return "386"
        default: return name.lowercased()
        }
    }

    /// `uname -m` of an OCI architecture, nil for one azl-shell does not know.
    public static func machine(ofOCI name: String) -> String? {
        known.first { $0.oci == oci(name) }?.machine
    }

    /// The OCI architecture of an ELF header's e_machine.
    public static func oci(elfMachine: UInt16) -> String? {
        known.first { $0.elf == elfMachine }?.oci
    }

    /// This machine's `uname -m`.
    public static var hostMachine: String {
        var u = utsname()
        uname(&u)
        return withUnsafePointer(to: u.machine) {
            $0.withMemoryRebound(to: CChar.self, capacity: 65) { String(cString: $0) }
        }
    }

    /// This machine's OCI architecture.
    public static var host: String { oci(hostMachine) }

    /// The architecture of `--platform OS/ARCH[/VARIANT]` (or a bare ARCH), OCI-named; only
    /// `linux` images run.
    public static func ofPlatform(_ platform: String) throws -> String {
        let parts = platform.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw AZLError(.usage, "invalid platform '\(platform)'", hint: "write it as OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64")
        }
        if parts.count > 1 && parts[0].lowercased() != "linux" {
            throw AZLError(.usage, "--platform \(platform): only linux images run", hint: "use linux/amd64 or linux/arm64")
        }
        return oci(parts.count == 1 ? parts[0] : parts[1])
    }
}
