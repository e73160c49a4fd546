import Core
import Foundation
import Testing
import TestSupport

/// The front end `azl-shell` (Sources/azl-shell): C only, linked with musl where musl-dev is
/// installed (Package.swift), handing everything it does not replay to azl-shell-cli.
@Suite struct FrontEndTests {
    static var built: String { Rootless.buildProductsDirectory() + "/azl-shell" }

    /// With musl-dev installed (scripts/setup.sh installs it), the front end carries none of a
    /// static glibc program's startup: glibc reads GLIBC_TUNABLES and probes the CPU before
    /// main, ~0.3 ms of a warm run in a VM. Nor Swift's runtime, and no program interpreter.
    @Test func theFrontEndHasNeitherGlibcsStartupNorSwifts() throws {
        let machine = CPUArch.hostMachine
        guard FS.exists("/usr/lib/\(machine)-linux-musl/libc.a") else {
            unavailable("musl-dev is not installed: the front end was linked with glibc (apt-get install musl-dev)")
            return
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.built))
        func has(_ s: String) -> Bool { bytes.range(of: Data(s.utf8)) != nil }
        #expect(bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46]), "not an ELF file")
        #expect(!has("GLIBC_TUNABLES"), "\(Self.built) has glibc's static startup: it was not linked with musl")
        #expect(!has("swift_getTypeByMangledName"), "\(Self.built) carries Swift's runtime")
        #expect(!has("/lib64/ld-linux") && !has("/lib/ld-linux"), "\(Self.built) is not static")
    }

    /// Without azl-shell-cli beside it (or in ../libexec/azl-shell), a verb it does not replay is
    /// one line naming what is missing and where, and azl-shell's own exit status.
    @Test func aMissingCLIIsOneLineAnd125() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("azl-front-\(UInt32.random(in: 0...UInt32.max))").path
        try FS.mkdirs(dir)
        defer { try? FS.removeTree(dir) }
        try Subprocess.copyForExec([Self.built], into: dir)
        let r = Subprocess.run([dir + "/azl-shell", "images"])
        #expect(r.status == 125, "\(r)")
        #expect(r.stderr == "azl-shell: cannot find azl-shell-cli beside \(dir)/azl-shell (install azl-shell-cli in the same directory as azl-shell)\n",
                "\(r)")
    }

    /// A message is one write, whatever its length: musl's dprintf wrote a long one in 80-byte
    /// pieces, which the command or a parallel run writing to the same stderr could split. Here
    /// stderr is a datagram socket: one datagram per write.
    @Test func aLongMessageIsOneWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("azl-front-\(UInt32.random(in: 0...UInt32.max))").path
        try FS.mkdirs(dir)
        defer { try? FS.removeTree(dir) }
        try Subprocess.copyForExec([Self.built], into: dir)
        var sv: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &sv) == 0)
        defer { close(sv[0]) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: dir + "/azl-shell")
        p.arguments = ["images"]
        p.standardError = FileHandle(fileDescriptor: sv[1], closeOnDealloc: true)
        try p.run()
        p.waitUntilExit()
        var buf = [UInt8](repeating: 0, count: 8192)
        let n = recv(sv[0], &buf, buf.count, Int32(MSG_DONTWAIT))
        let first = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : "nothing (\(n))"
        #expect(p.terminationStatus == 125)
        #expect(first == "azl-shell: cannot find azl-shell-cli beside \(dir)/azl-shell (install azl-shell-cli in the same directory as azl-shell)\n",
                "first write: \(first)")
    }
}
