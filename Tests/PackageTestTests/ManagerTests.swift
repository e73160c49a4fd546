import Core
import Foundation
import Manifests
import Planning
import Testing
@testable import PackageTest

/// The per-manager command plans as data: which tool a target uses and what it would run,
/// without a sandbox. The tdnf and dnf paths are tested only here: no RPM distro rootfs can
/// be fetched on the CI machine (the sandbox tests run rpm inside Debian instead).
@Suite struct ManagerTests {
    func known(_ short: String) throws -> (short: String, packageManager: String) {
        let m = try Manifests.parse(files: Manifests.bundledFiles)
        let img = try #require(m.find(short), "\(short) is not a bundled manifest")
        return (img.short, img.packageManager)
    }

    @Test func knownRPMDistrosUseTheirManifestsManager() throws {
        let noFiles: (String) -> Bool = { _ in false }
        let azl = try #require(ManagerChoice.choose(.rpm, manifest: try known("azurelinux:3.0"), has: noFiles))
        #expect(azl == ManagerChoice(manager: .tdnf, chosenBy: "manifest azurelinux:3.0"))
        let fedora = try #require(ManagerChoice.choose(.rpm, manifest: try known("fedora:43"), has: noFiles))
        #expect(fedora.manager == .dnf)
        let azl4 = try #require(ManagerChoice.choose(.rpm, manifest: try known("azurelinux:4.0"), has: noFiles))
        #expect(azl4.manager == .dnf5)
    }

    @Test func whatTdnfAndDnfWouldRun() {
        #expect(Manager.tdnf.install(offline: false) == "tdnf install -y $PKGS")
        #expect(Manager.tdnf.install(offline: true) == "tdnf install -y --disablerepo='*' $PKGS")
        #expect(Manager.dnf.install(offline: true) == "dnf install -y --disablerepo='*' $PKGS")
        #expect(Manager.dnf5.install(offline: false) == "dnf5 install -y $PKGS")
        #expect(Manager.tdnf.remove == "tdnf erase -y $NAMES")
        #expect(Manager.dnf.remove == "dnf remove -y $NAMES")
        for m in [Manager.tdnf, .dnf, .dnf5, .rpm] {
            #expect(m.verify == #"rpm -V "$n""#)
            #expect(m.filesOf == #"rpm -ql "$n""#)
        }
        // The driver a tdnf target runs carries exactly these commands.
        let script = Driver(manager: .tdnf, packages: ["/p/1/x.rpm"], offline: true, smoke: nil, results: "/r", binds: []).script
        #expect(script.contains("tdnf install -y --disablerepo='*' $PKGS"))
        #expect(script.contains("tdnf erase -y $NAMES"))
        #expect(script.contains("PKGS='/p/1/x.rpm'"))
        #expect(script.contains("-path '/var/lib/rpm'"))
    }

    @Test func aManifestsManagerOfAnotherFormatFallsBackToTheTree() {
        // Debian's manifest says apt; an .rpm there needs the rpm the image has.
        let tree: Set<String> = ["/usr/bin/apt-get", "/usr/bin/dpkg", "/usr/bin/rpm"]
        let c = ManagerChoice.choose(.rpm, manifest: ("debian:12", "apt"), has: tree.contains)
        #expect(c == ManagerChoice(manager: .rpm, chosenBy: "found /usr/bin/rpm in the image"))
        #expect(ManagerChoice.choose(.deb, manifest: ("debian:12", "apt"), has: tree.contains)?.manager == .apt)
        // Unknown image: detected, dependency-resolving tools first.
        #expect(ManagerChoice.choose(.deb, manifest: nil, has: ["/usr/bin/dpkg"].contains)?.manager == .dpkg)
        #expect(ManagerChoice.choose(.rpm, manifest: nil, has: ["/bin/rpm", "/usr/bin/dnf"].contains)?.manager == .dnf)
        #expect(ManagerChoice.choose(.apk, manifest: nil, has: tree.contains) == nil)
        // A distroless image (no package manager in its manifest) and nothing in the tree.
        #expect(ManagerChoice.choose(.rpm, manifest: ("azurelinux-distroless:3.0", ""), has: { _ in false }) == nil)
    }

    @Test func formatsByFileName() throws {
        #expect(try PackageFormat.of("/x/a_1.0_amd64.deb") == .deb)
        #expect(try PackageFormat.of("b-1.0-1.x86_64.RPM") == .rpm)
        #expect(try PackageFormat.of("c-1.0-r0.apk") == .apk)
        #expect(throws: AZLError.self) { try PackageFormat.of("d.tar.gz") }
        do { _ = try PackageFormat.of("d.zip") } catch let e as AZLError { #expect(e.kind == .usage) }
    }

    @Test func theRunnerKeepsOrderAndItsBound() {
        let targets = (0..<8).map { Target(image: "i\($0)") }
        let lock = NSLock()
        var running = 0, most = 0
        let out = BoundedTargetRunner().run(targets, jobs: 3) { t -> String in
            lock.lock(); running += 1; most = max(most, running); lock.unlock()
            // Some work in each, so that several are in flight at once.
            var x = 0
            for i in 0..<200_000 { x &+= i }
            lock.lock(); running -= 1; lock.unlock()
            return t.image + (x == 0 ? "" : "")
        }
        #expect(out == targets.map(\.image))
        #expect(most <= 3 && most >= 1)
    }

    @Test func theUsefulLine() {
        #expect(Results.usefulLine("Reading...\nazl-pkgtest: missing libz.so.9, needed by /usr/bin/x\n", failed: true, status: 1)
                == "missing libz.so.9, needed by /usr/bin/x")
        #expect(Results.usefulLine("progress 5%\rprogress 100%\rE: Unable to locate package\n", failed: true, status: 100)
                == "E: Unable to locate package")
        #expect(Results.usefulLine("a\nb\n", failed: true, status: 2) == "exit status 2: b")
        #expect(Results.usefulLine("", failed: false, status: 0) == "ok")
    }

    /// The results folder is the sandbox's to write: what it leaves there other than regular
    /// files (a symlink to a host file, a FIFO) decides nothing in the report.
    @Test func resultsFolderPlantsAreNotRead() throws {
        let base = FileManager.default.temporaryDirectory.path + "/azl-results-\(getpid())"
        let folder = base + "/1-target"
        try FS.mkdirs(folder)
        defer { try? FS.removeTree(base) }
        try Data("0 1 2\nHOST-SECRET-LINE\n".utf8).write(to: URL(fileURLWithPath: base + "/secret"))
        try Data("0 1 2\n".utf8).write(to: URL(fileURLWithPath: folder + "/install.status"))
        #expect(symlink(base + "/secret", folder + "/install.log") == 0)
        #expect(symlink(base + "/secret", folder + "/verify.status") == 0)
        #expect(mkfifo(folder + "/libraries.status", 0o600) == 0)
        let rows = Results.read(folder: folder, target: "t", sandboxFailure: nil)
        #expect(!rows.contains { $0.message.contains("HOST-SECRET") }, "\(rows)")
        #expect(rows[0].outcome == .passed && rows[1].outcome == .skipped && rows[2].outcome == .skipped, "\(rows)")
        #expect(Results.text(in: folder, "install.status") == "0 1 2\n")
    }
}
