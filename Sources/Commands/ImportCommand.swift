import ArgumentParser
import Core
import Foundation
import Store

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a rootfs tarball (.tar, .tar.gz, .tar.xz, .tar.zst; detected by content) as an image.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The tarball, or - for standard input.", completion: .file())
    var file: String

    @Option(name: .long, help: "Name for the image, NAME[:TAG] (default tag: latest).")
    var name: String

    @Flag(name: .long, help: "Print the record as JSON.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("The image's platform (default: read from its programs' ELF headers).", valueName: "linux/ARCH"))
    var platform: String?

    func run() throws {
        let (n, t) = try ImageName.parse(name)
        let store = try ImageStore(paths: global.paths)
        let start = Date()
        let arch = try platform.map(CPUArch.ofPlatform)
        let out = try store.importTarball(path: file, name: n, tag: t, architecture: arch)
        if json {
            print(try Render.json(out.record))
            return
        }
        let secs = Date().timeIntervalSince(start)
        var line = "\(out.record.reference) \(out.record.digest) "
        line += out.reused ? "(already stored: nothing unpacked)" :
            "(\(Render.bytes(out.record.size)) unpacked in \(String(format: "%.1f", secs))s)"
        global.say(line)
        if !out.refused.isEmpty {
            global.say("azl-shell: refused \(out.refused.count) unsafe or impossible entries: " +
                       out.refused.prefix(5).joined(separator: "; ") + (out.refused.count > 5 ? "; ..." : ""))
        }
        if out.devices > 0 { global.note("\(out.devices) device nodes recorded; the sandbox provides /dev") }
        if global.quiet == false && !isatty(1).boolValue { print(out.record.digest) }
    }
}

extension Int32 { var boolValue: Bool { self != 0 } }
