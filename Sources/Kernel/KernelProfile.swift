import Core
#if canImport(Glibc)
import Glibc
#endif

/// The CPU architectures azl-shell knows syscall tables for (their native 64-bit ABIs).
public enum KernelArch: String, Sendable, Codable, CaseIterable {
    case x86_64
    case aarch64

    /// The architecture this binary runs on.
    public static var native: KernelArch {
        #if arch(x86_64)
        return .x86_64
        #elseif arch(arm64)
        return .aarch64
        #else
        #error("azl-shell supports x86_64 and aarch64 only")
        #endif
    }

    /// `AUDIT_ARCH_*`: what `seccomp_data.arch` says for a native call.
    public var auditArch: UInt32 {
        switch self {
        case .x86_64: return 0xC000_003E
        case .aarch64: return 0xC000_00B7
        }
    }

    /// Accepts our names and the OCI/Debian spellings (`amd64`, `arm64`).
    public init?(name: String) {
        switch name.lowercased() {
        case "x86_64", "amd64", "x86-64": self = .x86_64
        case "aarch64", "arm64": self = .aarch64
        default: return nil
        }
    }
}

/// What the target VM's kernel reports about itself, and the version syscalls are gated by.
///
/// The bundled profiles come from `rootfs-manifests/kernels.toml` (compiled in as Swift
/// constants by `kernel-data/gen-swift.py`, so looking one up costs no I/O). `--kernel RELEASE`
/// makes an ad-hoc profile from any release string; `host` is the running kernel and turns
/// the mirroring off (no gating, no uname answer).
public struct KernelProfile: Equatable, Hashable, Sendable, Codable {
    public var name: String
    /// What `uname -r` prints.
    public var release: String
    /// What `uname -v` prints.
    public var version: String
    public var major: Int
    public var minor: Int
    public var patch: Int
    /// Where the release string came from (kernels.toml `source`).
    public var source: String
    /// The running kernel: nothing is mirrored.
    public var isHost: Bool

    public init(name: String, release: String, version: String, major: Int, minor: Int, patch: Int,
                source: String = "", isHost: Bool = false) {
        self.name = name; self.release = release; self.version = version
        self.major = major; self.minor = minor; self.patch = patch
        self.source = source; self.isHost = isHost
    }

    /// `major * 1_000_000 + minor * 1000 + patch`, the same encoding as the syscall table.
    public var versionCode: Int { KernelProfile.code(major, minor, patch) }

    static func code(_ major: Int, _ minor: Int, _ patch: Int) -> Int {
        major * 1_000_000 + min(minor, 999) * 1000 + min(patch, 999)
    }

    /// "6.6.121"
    public var versionString: String { "\(major).\(minor).\(patch)" }

    /// A bundled profile by name (`azurelinux-3.0`, `cbl-mariner-2.0`, ...).
    public static func named(_ name: String) -> KernelProfile? {
        bundled.first { $0.name == name }
    }

    public static var bundledNames: [String] { bundled.map(\.name) }

    /// The running kernel, from uname(2).
    public static var host: KernelProfile {
        var u = utsname()
        uname(&u)
        let release = utsField(&u.release)
        let version = utsField(&u.version)
        let (ma, mi, pa) = leadingVersion(release) ?? (0, 0, 0)
        return KernelProfile(name: "host", release: release, version: version, major: ma, minor: mi, patch: pa,
                             source: "uname(2) of this machine", isHost: true)
    }

    /// An ad-hoc profile for `--kernel RELEASE`: the numbers come from the release's leading
    /// `MAJOR.MINOR[.PATCH]` ("6.6.1-foo" -> 6.6.1). Without `version`, `uname -v` says
    /// "#1 SMP PREEMPT_DYNAMIC" (kernels >= 5.18, where distros build with PREEMPT_DYNAMIC)
    /// or "#1 SMP": the format real kernels print, without a build date we cannot know.
    public static func parse(release: String, version: String? = nil) throws -> KernelProfile {
        guard let (ma, mi, pa) = leadingVersion(release) else {
            // Said without an option's name: the caller names where the value came from.
            throw AZLError(.usage, "not a profile name, 'host', or a kernel release starting with MAJOR.MINOR",
                           hint: "profiles: " + bundledNames.joined(separator: ", "))
        }
        let v = version ?? (code(ma, mi, pa) >= code(5, 18, 0) ? "#1 SMP PREEMPT_DYNAMIC" : "#1 SMP")
        let p = KernelProfile(name: release, release: release, version: v, major: ma, minor: mi, patch: pa,
                              source: "--kernel \(release)")
        try p.validate()
        return p
    }

    /// uname(2) fields hold 64 bytes and a NUL; control characters would corrupt output. A
    /// release older than the syscall tables' oldest would gate what they list from the start
    /// (read, write: every program dies at once).
    public func validate() throws {
        if !isHost, let oldest = SyscallTable.all(.native).min(by: { $0.since < $1.since }), versionCode < oldest.since {
            throw AZLError(.usage, "kernel release '\(release)' is older than \(oldest.sinceString), the oldest kernel azl-shell's \(KernelArch.native.rawValue) syscall table knows",
                           hint: "give a release from \(oldest.sinceString) on, a profile name (azl-shell kernel --list), or host")
        }
        for (what, s) in [("release", release), ("version", version)] {
            if s.utf8.count > 64 {
                throw AZLError(.usage, "kernel \(what) '\(s)' is longer than the 64 bytes uname(2) can hold")
            }
            if s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                throw AZLError(.usage, "kernel \(what) '\(s)' contains control characters")
            }
        }
    }

    /// `MAJOR.MINOR[.PATCH]` at the start of `s`; nil without at least MAJOR.MINOR.
    public static func leadingVersion(_ s: String) -> (Int, Int, Int)? {
        var nums: [Int] = []
        var cur: Int? = nil
        for ch in s.utf8 {
            if ch >= 48 && ch <= 57 {
                cur = (cur ?? 0) * 10 + Int(ch - 48)
                if cur! > 1_000_000 { return nil }
            } else if ch == 46 /* . */, let c = cur, nums.count < 2 {
                nums.append(c); cur = nil
            } else {
                break
            }
        }
        if let c = cur { nums.append(c) }
        guard nums.count >= 2 else { return nil }
        return (nums[0], nums[1], nums.count > 2 ? nums[2] : 0)
    }

    /// What `/proc/version` shows for this profile (the kernel's linux_banner format:
    /// "Linux version RELEASE (USER@HOST) (COMPILER) VERSION"). The build user, host and
    /// compiler of the target kernel are not recorded in the profiles, so those say so.
    public var procVersion: String {
        "Linux version \(release) (azl-shell@kernel-profile) (\(name)) \(version)\n"
    }
}

func utsField<T>(_ field: inout T) -> String {
    withUnsafeBytes(of: &field) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}
