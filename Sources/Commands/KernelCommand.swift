import ArgumentParser
import Core
import Foundation
import Kernel
import Planning
import Store

/// `azl-shell kernel [--image NAME] [--kernel P] [--json]`: the kernel profile `run` would use
/// and what it gates, denies and keeps (docs/kernel.md).
struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Show the kernel profile and security policy a run gets.",
        discussion: """
        The profile: --kernel if given, else the image's (its rootfs-manifest, else its
        /etc/os-release), else the host's kernel. Gated syscalls answer ENOSYS (the target
        kernel lacks them); denied ones answer EPERM.
        """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Show what a run of this image gets (NAME[:TAG] or an image id).")
    var image: String?

    @Option(name: .long, help: ArgumentHelp("Run in this unpacked root directory instead of a stored image.", visibility: .hidden))
    var rootfs: String?

    @OptionGroup(title: "Kernel and policy") var policy: KernelOptions

    @Flag(name: .long, help: "One JSON object.")
    var json = false

    @Flag(name: .long, help: "List the kernel profiles instead.")
    var list = false

    @Flag(name: .long, help: ArgumentHelp("Print libseccomp's pseudo code of the seccomp program instead.", visibility: .hidden))
    var filter = false

    func run() throws {
        if list { return try listProfiles() }
        var manifest: String?
        var tree: String?
        if let image {
            let store = try ImageStore(paths: global.paths)
            let record = try store.lookup(image)
            manifest = record.manifest
            tree = store.treeDir(record.tree) + "/rootfs"
        } else if let rootfs {
            guard FS.isDirectory(rootfs) else { throw AZLError(.notFound, "--rootfs \(rootfs): not a directory") }
            tree = rootfs
        }
        let choice: KernelChoice
        if policy.kernel == nil && tree == nil {
            choice = KernelChoice(profile: .host, chosenBy: "host (no --image and no --kernel)")
        } else {
            choice = try KernelChoice.choose(spec: policy.kernel, manifestName: manifest, rootfs: tree)
        }
        if filter {
            print(try KernelPolicy.pseudoCode(profile: choice.profile), terminator: "")
            return
        }
        let built = try KernelPolicy.build(profile: choice.profile, capsAdd: policy.capAdd, capsDrop: policy.capDrop)
        let report = KernelReport(policy: built, chosenBy: choice.chosenBy)
        if json {
            print(try Render.json(report))
        } else {
            print(report.text(), terminator: "")
        }
    }

    func listProfiles() throws {
        let profiles = KernelProfile.bundled
        if json {
            print(try Render.json(profiles))
            return
        }
        var rows = [["PROFILE", "UNAME -R", "GATES SYSCALLS NEWER THAN"]]
        for p in profiles { rows.append([p.name, p.release, "Linux \(p.major).\(p.minor)"]) }
        rows.append(["host", KernelProfile.host.release, "(nothing gated)"])
        print(Render.table(rows))
    }
}
