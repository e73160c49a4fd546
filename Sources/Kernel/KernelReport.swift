/// What `azl-shell kernel` prints: the profile in force, what uname says, what is gated and
/// denied, and the capabilities. `text` for people, the value itself (Codable) for `--json`.
public struct KernelReport: Equatable, Sendable, Codable {
    public struct Gate: Equatable, Sendable, Codable {
        public var nr: Int32
        public var name: String
        public var since: String
    }
    public struct Denial: Equatable, Sendable, Codable {
        public var call: String
        public var reason: String
    }
    /// The 32-bit compat ABI: its own numbers, gated and denied by name like the native ABI.
    public struct CompatABIReport: Equatable, Sendable, Codable {
        public var abi: String
        /// false: every call of the ABI answers ENOSYS.
        public var mirrored: Bool
        public var gated: [Gate]
        /// Deny-list entries in force there (labels, as in `denied`).
        public var denied: [String]
        /// Its uname calls answered with the profile's strings.
        public var uname: [String]
    }

    public var profile: String
    /// Why this profile: "--kernel X", "manifest azurelinux:3.0", "/etc/os-release ...", "host (...)".
    public var chosenBy: String?
    public var source: String
    public var mirrored: Bool
    public var arch: String
    /// Upstream version used for gating, "6.6.121".
    public var kernelVersion: String
    public var release: String
    public var version: String
    public var procVersion: String?
    public var gated: [Gate]
    public var gatedErrno: String
    public var denied: [Denial]
    public var deniedErrno: String
    public var compat: CompatABIReport
    public var capabilitiesKept: [String]
    public var capabilitiesDropped: [String]
    public var capabilities: CapabilitySets
    public var noNewPrivs: Bool
    public var filterInstructions: Int

    public init(policy p: KernelPolicy, chosenBy: String? = nil) {
        self.chosenBy = chosenBy
        profile = p.profile.name
        source = p.profile.source
        mirrored = p.notifyUname
        arch = p.arch.rawValue
        kernelVersion = p.profile.versionString
        release = p.uts.release
        version = p.uts.version
        procVersion = p.notifyUname ? p.procVersion : nil
        gated = p.gated.map { Gate(nr: $0.nr, name: $0.name, since: $0.sinceString) }
        gatedErrno = "ENOSYS"
        denied = p.denied.map { Denial(call: $0.label, reason: $0.reason) }
        deniedErrno = "EPERM"
        compat = CompatABIReport(abi: p.compat.abi.rawValue, mirrored: p.compat.mirrored,
                                 gated: p.compat.gated.map { Gate(nr: $0.nr, name: $0.name, since: $0.sinceString) },
                                 denied: p.compat.denied.map(\.label), uname: p.compat.notified)
        capabilitiesKept = Capability.set(p.capabilities.bounding).map(\.name)
        capabilitiesDropped = Capability.set(~p.capabilities.bounding & Capability.allMask).map(\.name)
        capabilities = p.capabilities
        noNewPrivs = p.noNewPrivs
        filterInstructions = p.instructionCount
    }

    /// The human text, wrapped at `width` columns for the name lists.
    public func text(width: Int = 100) -> String {
        func wrap(_ items: [String], indent: String) -> [String] {
            var lines: [String] = []
            var cur = indent
            for it in items {
                let piece = (cur == indent ? "" : " ") + it
                if cur.count + piece.count > width && cur != indent { lines.append(cur); cur = indent + it } else { cur += piece }
            }
            if cur != indent { lines.append(cur) }
            return lines
        }
        var out: [String] = []
        if mirrored {
            out.append("kernel profile  \(profile) (Linux \(kernelVersion), \(arch))")
        } else {
            out.append("kernel profile  host (Linux \(kernelVersion), \(arch)): the running kernel, nothing mirrored")
        }
        if let c = chosenBy, !c.isEmpty { out.append("chosen by       \(c)") }
        if !source.isEmpty { out.append("source          \(source)") }
        out.append("uname -r        \(release)")
        out.append("uname -v        \(version)")
        if mirrored { out.append("uname(2)        answered by the sandbox's init (seccomp user notification); /proc/version and /proc/sys/kernel/osrelease match") }
        if gated.isEmpty {
            out.append("gated syscalls  none")
        } else {
            out.append("gated syscalls  \(gated.count), answer ENOSYS (newer than Linux \(kernelVersion)):")
            out += wrap(gated.map { "\($0.name)(\($0.since))" }, indent: "  ")
        }
        out.append("denied syscalls \(denied.count), answer EPERM:")
        let w = denied.map(\.call.count).max() ?? 0
        for d in denied {
            out.append("  " + d.call + String(repeating: " ", count: w - d.call.count) + "  " + d.reason)
        }
        let c = compat
        let label = "32-bit \(c.abi)" + String(repeating: " ", count: max(1, 16 - 7 - c.abi.count))
        if !c.mirrored {
            out.append(label + "ENOSYS for every call")
        } else {
            out.append(label + "its own syscall numbers, the same policy:")
            if !c.uname.isEmpty {
                out.append("  answered by the sandbox's init: " + c.uname.joined(separator: " "))
            }
            if c.gated.isEmpty {
                out.append("  gated: none")
            } else {
                out.append("  gated \(c.gated.count), answer ENOSYS:")
                out += wrap(c.gated.map { "\($0.name)(\($0.since))" }, indent: "    ")
            }
            out.append("  denied \(c.denied.count), answer EPERM:")
            out += wrap(c.denied, indent: "    ")
        }
        if arch == KernelArch.x86_64.rawValue { out.append("x32             ENOSYS for every call") }
        out.append("capabilities    kept (\(capabilitiesKept.count)):")
        out += wrap(capabilitiesKept, indent: "  ")
        out.append("                dropped from the bounding set (\(capabilitiesDropped.count)):")
        out += wrap(capabilitiesDropped, indent: "  ")
        out.append("no_new_privs    \(noNewPrivs ? "set" : "not set")")
        out.append("seccomp filter  \(filterInstructions) BPF instructions")
        return out.joined(separator: "\n") + "\n"
    }
}
