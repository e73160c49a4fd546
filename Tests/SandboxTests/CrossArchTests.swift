import Core
import Sandbox
import Testing

/// Issue 14: what a foreign-arch run registers, and when it cannot run (no file is read:
/// the interpreter's presence is given).
struct CrossArchPlanningTests {
    static let foreign = CPUArch.host == "amd64" ? "arm64" : "amd64"

    @Test(arguments: [("6.6.64", false), ("6.7", true), ("6.7.0-rc1", true), ("6.18.44-fc-v1272", true), ("5.15.138.1-1.cm2", false),
                      ("7.0.1", true), ("garbage", false)])
    func userNamespaceBinfmtIsForKernelsFrom6_7(_ release: String, _ has: Bool) {
        #expect(CrossArch.kernelHasUserNamespaceBinfmt(release: release) == has)
    }

    @Test func theHostsOwnArchitectureNeedsNothing() throws {
        #expect(try CrossArch.binfmt(forImage: "x", architecture: CPUArch.hostMachine, hostRelease: "6.18.0") == nil)
        #expect(try CrossArch.binfmt(forImage: "x", architecture: CPUArch.host, hostRelease: "5.4.0") == nil)
    }

    @Test func aForeignImageRegistersItsQemuWithTheSettingsPath() throws {
        let machine = try #require(CPUArch.machine(ofOCI: Self.foreign))
        let b = try #require(try CrossArch.binfmt(forImage: "x", architecture: Self.foreign, hostRelease: "6.18.0",
                                                  interpreterExists: { $0 == "/usr/bin/qemu-\(machine)-static" }))
        #expect(b.name == "qemu-\(machine)" && b.interpreter == "/usr/bin/qemu-\(machine)-static")
        // The ELF machine in the magic (bytes 18-19) is the target's.
        #expect(b.magic.hasSuffix(machine == "aarch64" ? #"\xb7\x00"# : #"\x3e\x00"#))
    }

    @Test func aMissingInterpreterNamesTheFileAndThePackage() {
        #expect {
            try CrossArch.binfmt(forImage: "img:1", architecture: Self.foreign, hostRelease: "6.18.0", interpreterExists: { _ in false })
        } throws: { e in
            guard let e = e as? AZLError else { return false }
            return e.kind == .notFound && e.description.contains("qemu-user-static") && e.description.contains("img:1")
                && !e.description.contains("\n")
        }
    }

    @Test func anArchitectureWithoutATableIsRefused() {
        #expect {
            try CrossArch.binfmt(forImage: "img:1", architecture: "riscv64", hostRelease: "6.18.0", interpreterExists: { _ in true })
        } throws: { e in (e as? AZLError)?.kind == .usage }
    }

    @Test func platformsParseToOCIArchitectures() throws {
        #expect(try CPUArch.ofPlatform("linux/arm64") == "arm64")
        #expect(try CPUArch.ofPlatform("linux/arm64/v8") == "arm64")
        #expect(try CPUArch.ofPlatform("aarch64") == "arm64")
        #expect(try CPUArch.ofPlatform("linux/x86_64") == "amd64")
        #expect(throws: AZLError.self) { try CPUArch.ofPlatform("windows/amd64") }
        #expect(throws: AZLError.self) { try CPUArch.ofPlatform("linux//") }
    }
}
