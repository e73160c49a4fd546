import Core
import Foundation
@testable import Manifests
import Testing

struct ManifestsTests {
    var repoManifests: String {
        var d = (#filePath as NSString).deletingLastPathComponent
        for _ in 0..<2 { d = (d as NSString).deletingLastPathComponent }
        return d + "/rootfs-manifests"
    }

    @Test func embeddedCopyMatchesTheFiles() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: repoManifests).filter { $0.hasSuffix(".toml") }.sorted()
        #expect(Manifests.bundledFiles.map(\.name) == names, "run scripts/embed-manifests.py")
        for f in Manifests.bundledFiles {
            let disk = try String(contentsOfFile: repoManifests + "/" + f.name, encoding: .utf8)
            #expect(disk == f.text, "\(f.name) changed: run scripts/embed-manifests.py")
        }
    }

    @Test func knownImagesCarryTheDistrosFacts() throws {
        let m = try Manifests.load(userDirectory: "/nonexistent")
        let azl = try #require(m.find("azurelinux:3.0"))
        #expect(azl.reference == "mcr.microsoft.com/azurelinux/base/core:3.0")
        #expect(azl.osID == "azurelinux" && azl.osVersionID == "3.0" && azl.idLike == "" && azl.packageManager == "tdnf")
        #expect(Set(azl.arches) == ["amd64", "arm64"])
        #expect(m.kernel(for: azl)?.major == 6 && m.kernel(for: azl)?.minor == 6)
        let distroless = try #require(m.find("azurelinux-distroless:3.0"))
        #expect(distroless.reference == "mcr.microsoft.com/azurelinux/distroless/base:3.0")
        let four = try #require(m.find("azurelinux:4.0"))
        #expect(four.idLike == "fedora" && four.packageManager == "dnf5")
        #expect(m.kernel(for: four)?.minor == 18)
        let mariner = try #require(m.find("cbl-mariner:2.0"))
        #expect(mariner.reference == "mcr.microsoft.com/cbl-mariner/base/core:2.0" && mariner.osID == "mariner" && mariner.eol)
        #expect(m.kernel(for: mariner)?.release.hasSuffix(".cm2") == true)
        for short in ["debian:12", "ubuntu:24.04", "alpine:3.20"] { #expect(m.find(short) != nil, "\(short)") }
        #expect(m.images.contains { $0.osID == "fedora" })
        #expect(m.find("azl3")?.short == "azurelinux:3.0", "aliases resolve")
    }

    @Test func osReleaseSamplesAgreeWithTheManifests() throws {
        let m = try Manifests.load(userDirectory: "/nonexistent")
        let dir = (repoManifests as NSString).deletingLastPathComponent + "/../shared/rootfs/os-release"
        for (file, short) in [("azurelinux-3.0.os-release", "azurelinux:3.0"), ("mariner-2.0.os-release", "cbl-mariner:2.0")] {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            let img = try #require(m.find(short))
            #expect(text.contains("ID=\(img.osID)\n"))
            #expect(text.contains("VERSION_ID=\"\(img.osVersionID)\""))
            #expect(text.contains("ID_LIKE") == !img.idLike.isEmpty)
        }
    }

    @Test func userDirectoryOverridesAndBadFilesNameFileAndLine() throws {
        var t = Array("/tmp/azl-man-XXXXXX".utf8CString)
        let d = String(cString: mkdtemp(&t)!)
        defer { try? FileManager.default.removeItem(atPath: d) }
        let mine = """
        schema = 1
        name = "mine"
        description = "local mirror"
        [[image]]
        short = "azurelinux:3.0"
        aliases = []
        reference = "localhost:5000/azurelinux/base/core:3.0"
        arches = ["amd64"]
        os_id = "azurelinux"
        os_version_id = "3.0"
        id_like = ""
        package_manager = "tdnf"
        shell = "/bin/bash"
        env = ["A=1"]
        kernel_profile = "azurelinux-3.0"
        eol = false
        """
        try mine.write(toFile: d + "/mine.toml", atomically: true, encoding: .utf8)
        let m = try Manifests.load(userDirectory: d)
        #expect(m.find("azurelinux:3.0")?.reference == "localhost:5000/azurelinux/base/core:3.0")

        try "schema = 1\nname = \"x\"\n[[image]\nshort = 1\n".write(toFile: d + "/bad.toml", atomically: true, encoding: .utf8)
        do {
            _ = try Manifests.load(userDirectory: d)
            Issue.record("a broken manifest must fail")
        } catch let e as AZLError {
            #expect(e.kind == .manifest && e.message.contains(d + "/bad.toml:3"), "\(e)")
        }
        try (mine.replacingOccurrences(of: "eol = false", with: "eol = false\nsurprise = 1")).write(toFile: d + "/bad.toml", atomically: true, encoding: .utf8)
        #expect { try Manifests.load(userDirectory: d) } throws: { e in
            (e as? AZLError)?.message.contains("unknown key `surprise`") == true && (e as? AZLError)?.message.contains("bad.toml:17") == true
        }
    }
}

/// The quick scan `run` uses must agree with the full parse of the bundled manifests.
struct QuickIndexTests {
    @Test func bundledKeysEqualTheFullParse() throws {
        let m = try Manifests.parse(files: Manifests.bundledFiles.map { ("rootfs-manifests/" + $0.name, $0.text) })
        #expect(!Manifests.bundledKeys.isEmpty)
        #expect(Manifests.bundledKeys == m.keys)
        #expect(Manifests.bundledKeys.contains { $0.short == "alpine:3.20" && $0.osID == "alpine" && $0.kernelProfile == "alpine-3.20" })
    }

    @Test func scannerReadsStringsArraysAndComments() {
        let keys = Manifests.scanKeys("""
        schema = 1
        [[image]]
        short = "a:1"   # comment "not this"
        aliases = ["x", "y\\"z"]
        os_id = "a"
        os_version_id = "1"
        kernel_profile = "k"
        [[image]]
        short = "b"
        """)
        #expect(keys == [ManifestKey(short: "a:1", aliases: ["x", "y\"z"], osID: "a", osVersionID: "1", kernelProfile: "k"),
                         ManifestKey(short: "b", aliases: [], osID: "", osVersionID: "", kernelProfile: "")])
    }

    @Test func userManifestsAreNoticed() throws {
        let dir = NSTemporaryDirectory() + "azl-qi-\(UInt32.random(in: 0...UInt32.max))"
        #expect(!Manifests.hasUserManifests(userDirectory: dir))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(!Manifests.hasUserManifests(userDirectory: dir))
        FileManager.default.createFile(atPath: dir + "/mine.toml", contents: Data())
        #expect(Manifests.hasUserManifests(userDirectory: dir))
    }
}
