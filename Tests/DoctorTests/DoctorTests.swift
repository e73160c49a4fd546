import Core
import Doctor
import Foundation
import Testing
import TestSupport

/// A host whose every fact is set by the test: the failures that need root to cause.
struct FakeHost: HostFacts {
    var userName = "alice"
    var uid: UInt32 = 1000
    var gid: UInt32 = 1000
    var sysctls: [String: String] = [:]
    var files: [String: String] = ["/etc/subuid": "alice:100000:65536\n", "/etc/subgid": "alice:100000:65536\n"]
    var statuses: [String: (uid: UInt32, mode: UInt32)] = [
        "/usr/bin/newuidmap": (0, UInt32(S_IFREG) | 0o4755), "/usr/bin/newgidmap": (0, UInt32(S_IFREG) | 0o4755),
    ]
    var capabilities: Set<String> = []
    var free: Int64? = 100 << 30
    var userns: Int32 = 0, overlay: Int32 = 0, notify: Int32 = 0, pidfd: Int32 = 0, mountAPI: Int32 = 0
    var binfmt: Int32 = 0, keyring: Int32 = 0
    var qemu: [String] = []

    func sysctl(_ name: String) -> String? { sysctls[name] }
    func read(_ path: String) -> String? { files[path] }
    func status(_ path: String) -> (uid: UInt32, mode: UInt32)? { statuses[path] }
    func hasFileCapabilities(_ path: String) -> Bool { capabilities.contains(path) }
    func freeBytes(_ path: String) -> Int64? { free }
    func probeUserNamespace() -> Int32 { userns }
    func probeOverlay(near path: String) -> Int32 { overlay }
    func probeSeccompNotify() -> Int32 { notify }
    func probePidfd() -> Int32 { pidfd }
    func probeMountAPI() -> Int32 { mountAPI }
    func probeBinfmtInUserNamespace() -> Int32 { binfmt }
    func probeKeyring() -> Int32 { keyring }
    func qemuInterpreters() -> [String] { qemu }
}

@Suite struct DoctorTests {
    let options = DoctorOptions(paths: Paths(root: "/nonexistent/azl-doctor-store"))

    func check(_ host: FakeHost, _ id: String) -> Check {
        let r = Doctor.run(options, host: host)
        return r.checks.first { $0.id == id }!
    }

    @Test func aHealthyHostPasses() {
        let r = Doctor.run(options, host: FakeHost())
        #expect(r.ok)
        #expect(r.checks.allSatisfy { $0.status == .ok || $0.status == .info }, "\(r.checks)")
        #expect(r.text().hasSuffix("azl-shell can run here\n"))
    }

    @Test func userNamespacesOffSayWhichSysctl() {
        var h = FakeHost()
        h.userns = EPERM
        h.sysctls["user.max_user_namespaces"] = "0"
        var c = check(h, "user-namespaces")
        #expect(c.status == .failed)
        #expect(c.fix?.hasPrefix("sudo sysctl -w user.max_user_namespaces=") == true)

        h.sysctls = ["user.max_user_namespaces": "15000", "kernel.unprivileged_userns_clone": "0"]
        c = check(h, "user-namespaces")
        #expect(c.fix?.hasPrefix("sudo sysctl -w kernel.unprivileged_userns_clone=1") == true)

        h.sysctls = ["kernel.apparmor_restrict_unprivileged_userns": "1"]
        c = check(h, "user-namespaces")
        #expect(c.fix?.contains("/etc/apparmor.d/azl-shell") == true)
        #expect(c.fix?.contains("userns,") == true)
        // What needs a user namespace is not tried, and says so.
        #expect(check(h, "overlay").status == .failed)
        #expect(check(h, "mount-api").fix == "fix user-namespaces first")
        #expect(!Doctor.run(options, host: h).ok)
    }

    @Test func appArmorThatAllowsUsIsNoFailure() {
        var h = FakeHost()
        h.sysctls["kernel.apparmor_restrict_unprivileged_userns"] = "1"
        #expect(check(h, "user-namespaces").status == .ok)
    }

    @Test func subordinateRanges() {
        var h = FakeHost()
        h.files["/etc/subuid"] = "bob:100000:65536\n"
        var c = check(h, "subuid")
        #expect(c.status == .warning)
        // A start above bob's range: the fix does not overlap another user's ids.
        #expect(c.fix == "sudo usermod --add-subuids 165536-231071 alice")
        h.files["/etc/subgid"] = "1000:200000:1000\n"
        c = check(h, "subgid")
        #expect(c.status == .warning)
        #expect(c.summary.contains("1000 gids"))
        #expect(Doctor.run(options, host: h).ok, "warnings only")
    }

    @Test func idMapHelpers() {
        var h = FakeHost()
        h.statuses["/usr/bin/newuidmap"] = (0, UInt32(S_IFREG) | 0o755)
        var c = check(h, "newuidmap")
        #expect(c.status == .failed)
        #expect(c.fix?.contains("setcap cap_setuid+ep /usr/bin/newuidmap") == true)
        h.capabilities.insert("/usr/bin/newuidmap")
        #expect(check(h, "newuidmap").status == .ok)
        h.statuses["/usr/bin/newgidmap"] = nil
        c = check(h, "newgidmap")
        #expect(c.status == .warning)
        #expect(c.fix?.contains("uidmap") == true)
    }

    @Test func kernelFeatures() {
        var h = FakeHost()
        h.overlay = EINVAL; h.notify = EINVAL; h.pidfd = ENOSYS; h.mountAPI = ENOSYS
        for id in ["overlay", "seccomp-notify", "pidfd", "mount-api"] {
            #expect(check(h, id).status == .failed, "\(id)")
            #expect(check(h, id).fix != nil, "\(id)")
        }
        // Cross-arch is not built yet: only reported.
        h.binfmt = EPERM
        #expect(check(h, "binfmt-userns").status == .info)
        h.qemu = ["qemu-aarch64-static"]
        #expect(check(h, "qemu").summary.contains("qemu-aarch64-static"))
    }

    @Test func keyringAndFreeSpace() {
        var h = FakeHost()
        h.keyring = EPERM
        #expect(check(h, "keyring").status == .warning)
        h.free = 1 << 30
        #expect(check(h, "free-space").status == .warning)
        h.free = 10 << 20
        #expect(check(h, "free-space").status == .failed)
    }

    @Test func ownershipOfStoreAndCache() {
        var h = FakeHost()
        let o = options
        h.statuses[o.paths.root] = (0, UInt32(S_IFDIR) | 0o755)
        var c = check(h, "store-owner")
        #expect(c.status == .failed)
        #expect(c.fix == "sudo chown -R alice \(o.paths.root)")
        h.statuses[o.paths.cache] = (1000, UInt32(S_IFDIR) | 0o777)
        c = check(h, "cache-owner")
        #expect(c.status == .failed)
        #expect(c.fix == "chmod go-w \(o.paths.cache)")
        h.statuses[o.paths.cache] = (1000, UInt32(S_IFDIR) | 0o700)
        #expect(check(h, "cache-owner").status == .ok)
    }

    /// A real store folder: a record without its tree, a damaged record, leftover scratch, a dead keeper.
    @Test func storeConsistency() throws {
        var template = Array("/tmp/azl-doctor-XXXXXX".utf8CString)
        let base = String(cString: mkdtemp(&template)!)
        defer { try? FS.removeTree(base) }
        let paths = Paths(root: base + "/store")
        for d in [paths.images, paths.trees, paths.tmp, paths.cache + "/userns"] { try FS.mkdirs(d) }
        let o = DoctorOptions(paths: paths)
        var r = Doctor.run(o, host: FakeHost())
        #expect(r.checks.filter { $0.id.hasPrefix("store-") || $0.id == "userns-keepers" }.allSatisfy { $0.status == .ok }, "\(r.checks)")

        let tree = String(repeating: "ab", count: 32)
        try Data("{\"name\":\"debian\",\"tag\":\"12\",\"tree\":\"sha256:\(tree)\"}".utf8).write(to: URL(fileURLWithPath: paths.images + "/debian_12.json"))
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: paths.images + "/broken.json"))
        try FS.mkdirs(paths.tmp + "/unpack-1")
        try FS.mkdirs(paths.tmp + "/unpack-2")
        let held = try FileLock(path: paths.tmp + "/unpack-2.lock", mode: .exclusive)
        defer { held.unlock() }
        try Data("azl-userns 3 1 1\n".utf8).write(to: URL(fileURLWithPath: paths.cache + "/userns/map-0"))

        r = Doctor.run(o, host: FakeHost())
        let records = r.checks.first { $0.id == "store-records" }!
        #expect(records.status == .failed)
        #expect(records.summary.contains("debian:12"))
        #expect(records.fix?.contains("azl-shell rmi debian:12") == true)
        #expect(records.fix?.contains("rm \(paths.images)/broken.json") == true)
        let scratch = r.checks.first { $0.id == "store-scratch" }!
        #expect(scratch.status == .warning)
        #expect(scratch.summary.contains("unpack-1") && !scratch.summary.contains("unpack-2"), "a held lock is a live owner")
        let keepers = r.checks.first { $0.id == "userns-keepers" }!
        #expect(keepers.status == .warning)
        #expect(keepers.fix?.hasPrefix("rm \(paths.cache)/userns/map-0") == true)
        #expect(!r.ok)
    }

    @Test func jsonRoundTrips() throws {
        let r = Doctor.run(options, host: FakeHost())
        let data = try JSONEncoder().encode(r)
        let back = try JSONDecoder().decode(DoctorReport.self, from: data)
        #expect(back.checks == r.checks)
        #expect(back.ok == r.ok)
    }
}
