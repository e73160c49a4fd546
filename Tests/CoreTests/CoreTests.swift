import Core
import Foundation
import Testing

struct CoreTests {
    @Test func errorsAreOneLineWithTheirExitStatus() {
        let e = AZLError(.notFound, "no image named x\nsecond", hint: "import one")
        #expect(!e.description.contains("\n"))
        #expect(e.description.hasPrefix("azl-shell: "))
        #expect(e.exitStatus == 125)
        #expect(AZLError(.notExecutable, "x").exitStatus == 126)
        #expect(AZLError(.commandNotFound, "x").exitStatus == 127)
        #expect(AZLError.errno(ENOSPC, "cannot write", path: "/p").kind == .diskFull)
    }

    @Test func pathsFollowXDGAndOverrides() {
        let env = ["HOME": "/home/u", "XDG_DATA_HOME": "/d", "XDG_CACHE_HOME": "/c"]
        #expect(Paths.resolve(rootOption: nil, environment: Environment(env)).root == "/d/azl-shell")
        #expect(Paths.resolve(rootOption: nil, environment: Environment(env)).cache == "/c/azl-shell")
        #expect(Paths.resolve(rootOption: nil, environment: ["HOME": "/home/u"]).root == "/home/u/.local/share/azl-shell")
        #expect(Paths.resolve(rootOption: nil, environment: Environment(env.merging(["AZL_SHELL_ROOT": "/r"]) { $1 })).root == "/r")
        #expect(Paths.resolve(rootOption: "/o", environment: Environment(env.merging(["AZL_SHELL_ROOT": "/r"]) { $1 })).root == "/o")
    }

    @Test func digestsParseAndHash() {
        #expect(Digest("sha256:" + String(repeating: "a", count: 64)) != nil)
        #expect(Digest("sha256:XYZ") == nil)
        #expect(Digest.of(Data("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func atomicWriteReplacesWhole() throws {
        var t = Array("/tmp/azl-core-XXXXXX".utf8CString)
        let d = String(cString: mkdtemp(&t)!)
        defer { try? FS.removeTree(d) }
        try FS.atomicWrite(Data("one".utf8), to: d + "/f")
        try FS.atomicWrite(Data("two".utf8), to: d + "/f")
        #expect(try String(contentsOfFile: d + "/f", encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: d) == ["f"])
    }
}
