import Core
import Kernel
import Sandbox
import Store

/// The platform a run is for and what running it takes (issue 14): the image's architecture
/// (recorded, else read from its tree), checked against `--platform`, and for a foreign one
/// the qemu-user registration and the kernel mirror's target. `RunPlanner.prepare` resolves it for every verb.
public struct RunPlatform: Sendable {
    /// OCI-named: `amd64`, `arm64`.
    public var architecture: String
    /// The kernel policy's target (`KernelPolicy.build(target:)`): nil for a native run.
    public var kernelTarget: KernelArch?
    /// The sandbox's own binfmt_misc registration: nil for a native run.
    public var binfmt: SandboxPlan.Binfmt?

    public var isForeign: Bool { architecture != CPUArch.host }

    /// `image`: the name errors say; `recorded`: the record's architecture (nil for a record of
    /// an older build, or `--rootfs`); `requested`: `--platform`.
    public static func resolve(image: String, recorded: String?, rootfs: String, requested: String?) throws -> RunPlatform {
        let known = recorded ?? ImageStore.architecture(ofTree: rootfs)
        var arch = known ?? CPUArch.host
        if let requested {
            let want = try CPUArch.ofPlatform(requested)
            if let known, CPUArch.oci(known) != want {
                throw AZLError(.usage, "\(image) is a linux/\(known) image, not linux/\(want) (--platform \(requested))",
                               hint: "drop --platform, or pull the other platform under another name: azl-shell pull --platform \(requested) REF")
            }
            arch = want
        }
        arch = CPUArch.oci(arch)
        var p = RunPlatform(architecture: arch)
        guard p.isForeign else { return p }
        p.binfmt = try CrossArch.binfmt(forImage: image, architecture: arch, hostRelease: KernelProfile.host.release)
        p.kernelTarget = CPUArch.machine(ofOCI: arch).flatMap { KernelArch(name: $0) }
        return p
    }
}
