import ArgumentParser

/// `--kernel`, `--cap-add`, `--cap-drop`: one option group for every verb that builds a policy.
public struct KernelOptions: ParsableArguments {
    public init() {}

    @Option(name: .long, help: ArgumentHelp("The kernel the command sees: a profile (azl-shell kernel --list), a release such as 5.15.0, or host (default: the image's profile).", valueName: "PROFILE|RELEASE|host"))
    public var kernel: String?

    @Option(name: .customLong("cap-add"), help: ArgumentHelp("Keep this capability too (CAP_NET_ADMIN, net_admin, or all); repeatable.", valueName: "CAP"))
    public var capAdd: [String] = []

    @Option(name: .customLong("cap-drop"), help: ArgumentHelp("Drop this capability from the default set (or all); repeatable.", valueName: "CAP"))
    public var capDrop: [String] = []
}
