import ArgumentParser
import Core
import Foundation
import PackageTest
import Planning

/// `azl-shell pkgtest PACKAGE_FILE... --image IMAGE[,IMAGE...]`: a package author's smoke test
/// on every target, each in a fresh ephemeral root (docs/pkgtest.md).
struct PkgtestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pkgtest",
        abstract: "Install, verify, smoke-test and remove package files on each target image.",
        discussion: """
        For each image (x platform x kernel), in a fresh ephemeral root: install the .deb, .rpm or .apk
        files with the image's own tool (apt/dpkg, tdnf/dnf/rpm, apk), verify them (dpkg --verify,
        rpm -V, apk audit), check that every ELF file they installed finds its shared libraries, run
        the smoke command, remove them and report what they left behind.
        Exit status: 0 when every target passed every step, 1 when one failed, 125 for azl-shell's own errors.
        """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("The images to test on, comma-separated (as run --image takes them).", valueName: "IMAGE[,IMAGE...]"),
            completion: .custom { words, _, _ in Completion.imageNames(words) })
    var image: String

    @Option(name: .long, help: ArgumentHelp("Platforms to pull the images for, comma-separated (default: this machine's).", valueName: "OS/ARCH[,...]"))
    var platform: String?

    @Option(name: .long, help: ArgumentHelp("Kernel profiles to test under, comma-separated (default: each image's).", valueName: "K[,K...]"))
    var kernel: String?

    @Option(name: .long, help: ArgumentHelp("The smoke command, run with sh -c (default: each installed /usr/bin executable with --version).", valueName: "CMD"))
    var smoke: String?

    @Flag(name: .long, help: "Install from the package files and what the image has only (no network).")
    var offline = false

    @Option(name: .long, help: "Targets tested at once (default: the number of cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: ArgumentHelp("The folder for every target's logs (default: a new one in $TMPDIR).", valueName: "DIR"))
    var logs: String?

    @Flag(name: .long, help: "The report as JSON.")
    var json = false

    @Option(name: .customLong("tls-verify"), help: ArgumentHelp("Verify TLS certificates when pulling; false also allows plain HTTP.", valueName: "true|false"))
    var tlsVerify: Bool = true

    @Option(name: .long, help: ArgumentHelp("Credentials for the registry (default: the auth files).", valueName: "USER:PASSWORD"))
    var creds: String?

    @Argument(help: ArgumentHelp("The package files (.deb, .rpm, .apk).", valueName: "PACKAGE_FILE"))
    var packages: [String]

    static func list(_ s: String?) -> [String] {
        (s ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        let files = packages.map { Paths.absolute($0) }
        for (given, f) in zip(packages, files) {
            _ = try PackageFormat.of(given)
            guard FS.exists(f), !FS.isDirectory(f) else { throw AZLError(.notFound, "\(given): no such package file") }
            // The driver lists the files in one shell word each.
            guard !f.contains(where: { " \t\n'\"\\*?[$`".contains($0) }) else {
                throw AZLError(.usage, "\(given): a package file name with spaces or shell characters", hint: "rename or link it")
            }
        }
        guard jobs > 0 else { throw AZLError(.usage, "--jobs \(jobs): must be at least 1") }
        let targets = Target.matrix(images: Self.list(image), platforms: Self.list(platform), kernels: Self.list(kernel))
        guard !targets.isEmpty else { throw AZLError(.usage, "--image: no image given", hint: "--image debian:12,alpine:3.20") }

        let folder: String
        if let logs {
            folder = Paths.absolute(logs)
            try FS.mkdirs(folder)
        } else {
            let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            var template = Array((tmp + "/azl-pkgtest-XXXXXX").utf8CString)
            guard let p = mkdtemp(&template) else { throw AZLError.errno(errno, "cannot create the logs folder in", path: tmp) }
            folder = String(cString: p)
        }

        var base = RunSpec(source: .image(""))
        base.rootOption = global.root
        base.verbose = global.verbose
        base.pull.tlsVerify = tlsVerify
        base.pull.creds = creds
        base.pull.quiet = global.quiet || json
        base.pull.jsonToStderr = true
        var tester = PackageTester(packages: files, targets: targets, logs: folder, base: base)
        tester.smoke = smoke
        tester.offline = offline
        tester.jobs = jobs
        let report = tester.run()
        if json {
            print(try Render.json(report))
        } else {
            print(report.table)
            global.say("logs: \(folder)")
        }
        if !report.passed { throw ExitCode(1) }
    }
}
