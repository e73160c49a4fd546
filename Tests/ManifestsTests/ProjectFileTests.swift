import Core
import Foundation
import Manifests
import Testing

/// azl-shell.toml and azl-shell.lock as text: every key, strictness, and the lock's round trip.
struct ProjectFileTests {
    let path = "/p/azl-shell.toml"

    @Test func everyKeyIsRead() throws {
        let p = try ProjectFile.parse(text: """
            image = "debian:12"
            platform = "linux/arm64"
            kernel = "debian-12"
            env = { B = "2", A = "1" }
            volumes = ["cache:/root/.cache", "/srv:/srv:ro"]
            network = "none"
            user = "keep-id"
            home = "overlay"
            setup = [
              "apt-get update",
              { run = "pip install -r requirements.txt", inputs = ["requirements.txt", "scripts/*.sh"] },
            ]
            """, path: path)
        #expect(p.image == "debian:12" && p.platform == "linux/arm64" && p.kernel == "debian-12")
        #expect(p.env == ["A=1", "B=2"])
        #expect(p.volumes == ["/p/cache:/root/.cache", "/srv:/srv:ro"])
        #expect(p.network == "none" && p.user == "keep-id" && p.home == "overlay")
        #expect(p.setup.map(\.run) == ["apt-get update", "pip install -r requirements.txt"])
        #expect(p.setup.map(\.line) == [10, 11])
        #expect(p.setup[1].inputs == ["requirements.txt", "scripts/*.sh"])
        #expect(p.root == "/p" && p.lockPath == "/p/azl-shell.lock" && p.name == "p")
    }

    @Test func errorsNameFileLineAndKey() {
        let cases: [(String, String)] = [
            ("image = \"x\"\nsetup = [\n  { run = \"a\" },\n  { run = \"b\", inptus = [] },\n]\n", "/p/azl-shell.toml:4: unknown key `inptus`"),
            ("image = 1\n", "/p/azl-shell.toml:1: `image` of the project must be a string"),
            ("image = \"x\"\nenv = { A = 1 }\n", "/p/azl-shell.toml:2: `env.A` must be a string"),
            ("image = \"x\"\nhome = \"mine\"\n", "/p/azl-shell.toml:2: `home` must be private, host or overlay"),
            ("image = \"x\"\nsetup = [{ run = \"a\", inputs = [\"../up\"] }]\n", "/p/azl-shell.toml:2: input '../up' must be relative"),
            ("image = \"x\"\nvolumes = \"a:b\"\n", "/p/azl-shell.toml:2: `volumes` of the project must be an array"),
        ]
        expectErrors(cases)
    }

    /// Each text is refused with one line holding its expected part (the file, line and key).
    func expectErrors(_ cases: [(String, String)], sourceLocation: SourceLocation = #_sourceLocation) {
        for (text, expected) in cases {
            do {
                _ = try ProjectFile.parse(text: text, path: path)
                Issue.record("accepted: \(text)", sourceLocation: sourceLocation)
            } catch let e as AZLError {
                #expect(e.kind == .project && e.exitStatus == 125 && e.message.contains(expected), "\(e.message)", sourceLocation: sourceLocation)
            } catch { Issue.record("\(error)", sourceLocation: sourceLocation) }
        }
    }

    @Test func theMatrixIsAListOfImagesOrATable() throws {
        let list = try ProjectFile.parse(text: "matrix = [\"debian:12\", \"alpine:3.20\"]\n", path: path)
        #expect(list.matrix == .init(images: ["debian:12", "alpine:3.20"]))
        let table = try ProjectFile.parse(text: """
            image = "debian:12"
            [matrix]
            images = ["debian:12"]
            platforms = ["linux/amd64", "linux/arm64"]
            kernels = ["5.15", "host"]
            """, path: path)
        #expect(table.matrix == .init(images: ["debian:12"], platforms: ["linux/amd64", "linux/arm64"], kernels: ["5.15", "host"]))
        #expect(try ProjectFile.parse(text: "image = \"x\"\n", path: path).matrix == nil)
        let cases: [(String, String)] = [
            ("image = \"x\"\nmatrix = \"debian:12\"\n", "/p/azl-shell.toml:2: `matrix` must be an array of images or"),
            ("image = \"x\"\n\nmatrix = []\n", "/p/azl-shell.toml:3: `matrix` names no image"),
            ("image = \"x\"\nmatrix = [\"a\", 1]\n", "/p/azl-shell.toml:2: `matrix` of the project must hold only strings"),
            ("image = \"x\"\nmatrix = [\"a,b\"]\n", "/p/azl-shell.toml:2: `matrix` entry 'a,b' must be one name"),
            ("image = \"x\"\n[matrix]\nimages = [\"a\"]\nkernel = [\"host\"]\n", "/p/azl-shell.toml:4: unknown key `kernel` in the matrix"),
            ("image = \"x\"\n[matrix]\nkernels = [\"host\"]\n", "/p/azl-shell.toml:2: the matrix lacks `images`"),
            ("image = \"x\"\n[matrix]\nimages = [\"a\"]\nplatforms = \"linux/arm64\"\n", "/p/azl-shell.toml:4: `platforms` of the matrix must be an array"),
        ]
        expectErrors(cases)
    }

    @Test func theLockRoundTrips() throws {
        var lock = ProjectLock(image: "debian:12")
        lock.kernel = "debian-12"
        lock.digests = ["linux/amd64": Digest.of(Data("a".utf8)), "linux/arm64": Digest.of(Data("b".utf8))]
        lock.steps = [.init(run: "echo \"quoted\" \\ and\nnewline\ttab", key: Digest.of(Data("c".utf8)))]
        let back = try ProjectLock.parse(text: lock.text, path: "/p/azl-shell.lock")
        #expect(back == lock)
        #expect(throws: AZLError.self) { try ProjectLock.parse(text: lock.text + "extra = 1\n", path: "/p/azl-shell.lock") }
    }
}
