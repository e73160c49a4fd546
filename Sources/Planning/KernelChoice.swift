import CLinux
import Core
import Foundation
import Kernel
import Manifests
import Sandbox
import Store
#if canImport(Glibc)
import Glibc
#endif

/// Which kernel profile a command runs under, and why (`run` and `kernel` share this).
///
/// `--kernel SPEC` wins: `host`, a profile name (bundled, or from the user's rootfs-manifests),
/// or a release string. Otherwise the image's profile: the rootfs-manifest it was pulled as,
/// else its /etc/os-release matched against the manifests' `os_id`/`os_version_id`; no match
/// means the host's kernel (said with --verbose).
public struct KernelChoice {
    public var profile: KernelProfile
    /// "--kernel cbl-mariner-2.0", "manifest azurelinux:3.0", "/etc/os-release ID=alpine VERSION_ID=3.20.3 (alpine:3.20)".
    public var chosenBy: String
    /// Said with --verbose: why the host's kernel is used.
    public var note: String?

    public init(profile: KernelProfile, chosenBy: String, note: String? = nil) {
        self.profile = profile; self.chosenBy = chosenBy; self.note = note
    }

    /// `manifestName`: the image record's manifest short name; `rootfs`: the unpacked tree.
    public static func choose(spec: String?, manifestName: String?, rootfs: String?) throws -> KernelChoice {
        if spec?.trimmingCharacters(in: .whitespaces) == "host" { return KernelChoice(profile: .host, chosenBy: "--kernel host") }
        let catalog = Catalog()
        func profile(named name: String) -> KernelProfile? { catalog.profile(named: name) }

        if let spec {
            let s = spec.trimmingCharacters(in: .whitespaces)
            guard !s.isEmpty else { throw AZLError(.usage, "--kernel: empty value", hint: "a profile name, a kernel release, or host") }
            if let p = profile(named: s) {
                try validate(p, spec: s)
                return KernelChoice(profile: p, chosenBy: "--kernel \(s)")
            }
            do {
                return KernelChoice(profile: try KernelProfile.parse(release: s), chosenBy: "--kernel \(s)")
            } catch let e as AZLError {
                throw AZLError(e.kind, "--kernel \(s): \(e.message)", hint: e.hint)
            }
        }

        var why = "no --kernel, and the image is not one of the known distros"
        if let name = manifestName {
            if let img = catalog.find(name), let p = profile(named: img.kernelProfile) {
                return KernelChoice(profile: p, chosenBy: "manifest \(img.short)")
            }
            why = "the image's manifest \(name) is not known (or names an unknown kernel profile)"
        }
        if let rootfs, let os = osRelease(rootfs: rootfs) {
            let id = os["ID"] ?? "", vid = os["VERSION_ID"] ?? ""
            if let img = match(catalog.keys, id: id, versionID: vid), let p = profile(named: img.kernelProfile) {
                return KernelChoice(profile: p, chosenBy: "/etc/os-release ID=\(id) VERSION_ID=\(vid) (\(img.short))")
            }
            why = "/etc/os-release ID=\(id) VERSION_ID=\(vid) matches no rootfs-manifest"
        } else if rootfs != nil && manifestName == nil {
            why = "the image has no readable /etc/os-release"
        }
        if let e = catalog.error { why += " (ignored a broken rootfs-manifest: \(e))" }
        return KernelChoice(profile: .host, chosenBy: "host (\(why))",
                            note: "running with the host's kernel interface: \(why); choose one with --kernel PROFILE")
    }

    static func validate(_ p: KernelProfile, spec: String) throws {
        do { try p.validate() } catch let e as AZLError {
            throw AZLError(e.kind, "--kernel \(spec): \(e.message)", hint: e.hint)
        }
    }

    /// The first manifest image whose os_id is ID and whose os_version_id is VERSION_ID or
    /// its prefix up to a dot (Alpine's VERSION_ID is the point release, 3.20.3).
    public static func match(_ images: [ManifestKey], id: String, versionID: String) -> ManifestKey? {
        guard !id.isEmpty else { return nil }
        return images.first { $0.osID == id && $0.osVersionID == versionID }
            ?? images.first { $0.osID == id && !$0.osVersionID.isEmpty && versionID.hasPrefix($0.osVersionID + ".") }
    }

    /// KEY=VALUE pairs of the tree's /etc/os-release (else /usr/lib/os-release), resolved
    /// inside the tree: a symlink in the image cannot make us read a host file.
    public static func osRelease(rootfs: String) -> [String: String]? {
        TreeFile.first(in: rootfs, of: ["etc/os-release", "usr/lib/os-release"]) { fd in
            guard let bytes = try? FS.readAll(fd: fd, limit: 16384) else { return nil }
            return parseOSRelease(String(decoding: bytes, as: UTF8.self))
        }
    }

    /// os-release(5): KEY=value, the value optionally in double or single quotes.
    static func parseOSRelease(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let l = line.trimmingCharacters(in: .whitespaces)
            guard !l.hasPrefix("#"), let eq = l.firstIndex(of: "=") else { continue }
            let key = String(l[..<eq])
            var v = String(l[l.index(after: eq)...])
            if v.count >= 2, let f = v.first, f == "\"" || f == "'", v.last == f {
                v = String(v.dropFirst().dropLast())
                if f == "\"" {
                    var r = "", esc = false
                    for ch in v {
                        if esc { r.append(ch); esc = false } else if ch == "\\" { esc = true } else { r.append(ch) }
                    }
                    v = r
                }
            }
            out[key] = v
        }
        return out
    }
}

/// The manifests' names, os-release keys and kernel profiles. Without manifests of the user's
/// own, the bundled keys and profiles compiled into the binary (no TOML parsing on `run`'s hot
/// path); otherwise every manifest, parsed. A broken user manifest does not stop `run`: the
/// bundled ones still count, and the error is said with --verbose.
public final class Catalog {
    private(set) var keys: [ManifestKey]
    private var kernels: [String: KernelProfile] = [:]
    private(set) var error: String?

    public init() {
        keys = Manifests.bundledKeys
        guard Manifests.hasUserManifests() else { return }
        do {
            let m = try Manifests.load()
            keys = m.keys
            kernels = m.kernels
        } catch {
            self.error = "\(error)"
        }
    }

    public func find(_ name: String) -> ManifestKey? {
        keys.first { $0.short == name } ?? keys.first { $0.aliases.contains(name) }
    }

    public func profile(named name: String) -> KernelProfile? {
        kernels[name] ?? KernelProfile.named(name)
    }
}

extension KernelPolicy {
    /// What the sandbox's C part applies (SandboxPlan records).
    public var sandboxSettings: SandboxPlan.KernelSettings {
        sandboxSettings(abiReport: nil)
    }

    /// With `abiReport` (an absolute path; the policy built with `report`), the calls pid 1 reports.
    public func sandboxSettings(abiReport: String?) -> SandboxPlan.KernelSettings {
        let c = capabilities
        var s = SandboxPlan.KernelSettings(
            profile: profile.isHost ? "host" : profile.name, seccomp: bpf,
            uts: notifyUname ? .init(release: uts.release, version: uts.version, procVersion: procVersion, machine: uts.machine) : nil,
            capabilities: .init(bounding: c.bounding, effective: c.effective, permitted: c.permitted,
                                inheritable: c.inheritable, ambient: c.ambient),
            noNewPrivs: noNewPrivs)
        if let abiReport {
            s.abiReport = .init(path: abiReport, calls: reportedCalls.map {
                .init(auditArch: $0.auditArch, nr: $0.nr, errno: $0.errno, name: $0.name, reason: $0.reason)
            })
        }
        return s
    }
}

