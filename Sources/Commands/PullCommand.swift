import ArgumentParser
import Archive
import Core
import Foundation
import Manifests
import Planning
import Registry
import Store

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Fetch an image from an OCI registry (or by a short name from rootfs-manifests).",
        discussion: """
        Examples: azl-shell pull azurelinux:3.0; azl-shell pull mcr.microsoft.com/azurelinux/base/core:3.0

        Progress goes to stderr: bars on a terminal, plain lines otherwise, nothing with --quiet; \
        --json prints one JSON event per line on stdout instead. The image digest is printed on \
        stdout at the end (not with --quiet or --json). Credentials come from --creds, else \
        $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, \
        ~/.docker/config.json.
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var pull: PullOptionsGroup

    @Argument(help: "A short name (see `images --available`) or a registry reference.")
    var image: String

    func run() throws {
        let store = try ImageStore(paths: global.paths)
        let record = try Puller(pull.settings(quiet: global.quiet)).pull(image, into: store)
        if !global.quiet && !pull.json { print(record.digest) }
    }
}

/// Options shared by `pull` and `run` (which pulls on first use).
struct PullOptionsGroup: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The platform: which image of a multi-arch index to pull; run also checks the stored image is for it and runs a foreign one through qemu-user (default: this machine; run: the image's).", valueName: "OS/ARCH[/VARIANT]"))
    var platform: String?

    @Option(name: .customLong("tls-verify"), help: ArgumentHelp("Verify TLS certificates; false also allows plain HTTP.", valueName: "true|false"))
    var tlsVerify: Bool = true

    @Option(name: .long, help: ArgumentHelp("Credentials for the registry (default: the auth files).", valueName: "USER:PASSWORD"))
    var creds: String?

    @Flag(name: .long, help: "Pull progress as one JSON event per line (stdout for pull, stderr for run).")
    var json = false

    func settings(quiet: Bool) -> PullSettings {
        var s = PullSettings()
        s.platform = platform; s.tlsVerify = tlsVerify; s.creds = creds; s.json = json; s.quiet = quiet
        return s
    }
}

