import Core
import Testing
@testable import Sandbox

/// Plans built in Swift, asserted on without running anything.
struct PlanBuilderTests {
    static let rootfs = "/home/u/.local/share/azl-shell/trees/abc"

    func host(subids: Bool = true) -> HostFacts {
        HostFacts(uid: 1000, gid: 1000, userName: "u", home: "/home/u", cwd: "/home/u/project",
                  environment: ["TERM": "xterm-256color", "LANG": "de_DE.UTF-8", "SECRET": "s3cret", "EDITOR": "vi"],
                  subuid: subids ? (100000, 65536) : nil, subgid: subids ? (200000, 65536) : nil,
                  newuidmap: subids ? "/usr/bin/newuidmap" : nil, newgidmap: subids ? "/usr/bin/newgidmap" : nil)
    }

    func request(_ edit: (inout RunRequest) -> Void = { _ in }) -> RunRequest {
        var r = RunRequest(rootfs: PlanBuilderTests.rootfs, imageName: "azurelinux")
        r.command = ["make", "test"]
        edit(&r)
        return r
    }

    static let passwd = "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1500:1600:b:/home/builder:/bin/sh\n"
    static let group = "root:x:0:\nwheel:x:10:\n"

    func build(_ r: RunRequest, host h: HostFacts? = nil, exists: @escaping (String) -> Bool = { _ in true }) throws -> (SandboxPlan, [String]) {
        var b = PlanBuilder(request: r, host: h ?? host(), readImageFile: {
            switch $0 {
            case "/etc/passwd": return PlanBuilderTests.passwd
            case "/etc/group": return PlanBuilderTests.group
            default: return nil
            }
        }, hostPathExists: exists)
        let p = try b.build()
        return (p, b.notes)
    }

    func index(_ p: SandboxPlan, _ target: String) -> Int? { p.mounts.firstIndex { $0.target == target } }

    @Test func namespacesShareTheNetworkByDefault() throws {
        let (p, _) = try build(request())
        #expect(p.namespaces == [.user, .mount, .pid, .uts, .ipc])
        let (q, _) = try build(request { $0.network = .none })
        #expect(q.namespaces.contains(.net))
    }

    @Test func fullRangeMapWhenSubordinateIdsExist() throws {
        let (p, notes) = try build(request())
        #expect(p.uidMap.helper == "/usr/bin/newuidmap")
        #expect(p.uidMap.ranges == [.init(inside: 0, outside: 1000, count: 1), .init(inside: 1, outside: 100000, count: 65536)])
        #expect(p.gidMap.ranges == [.init(inside: 0, outside: 1000, count: 1), .init(inside: 1, outside: 200000, count: 65536)])
        #expect(p.uid == 0 && p.gid == 0)
        #expect(notes.isEmpty)
    }

    @Test func singleMapFallbackIsSaid() throws {
        let (p, notes) = try build(request(), host: host(subids: false))
        #expect(p.uidMap == .init(helper: nil, ranges: [.init(inside: 0, outside: 1000, count: 1)]))
        #expect(p.gidMap == .init(helper: nil, ranges: [.init(inside: 0, outside: 1000, count: 1)]))
        #expect(notes.count == 1 && notes[0].contains("mapping only your own uid"))
        let (q, _) = try build(request { $0.idMapping = .single })
        #expect(q.uidMap.helper == nil && q.uidMap.ranges.count == 1)
    }

    @Test func keepIdKeepsTheUserAndAddsPasswdEntries() throws {
        let (p, _) = try build(request { $0.user = "keep-id" })
        #expect(p.uid == 1000 && p.gid == 1000)
        #expect(p.uidMap.ranges == [.init(inside: 0, outside: 100000, count: 1000), .init(inside: 1000, outside: 1000, count: 1),
                                    .init(inside: 1001, outside: 101000, count: 64536)])
        #expect(p.env("HOME") == "/home/u")
        guard case let .file(_, passwd, _)? = p.mounts.first(where: { $0.target == "/etc/passwd" }) else {
            Issue.record("no /etc/passwd in \(p)"); return
        }
        #expect(passwd.hasPrefix(PlanBuilderTests.passwd))
        #expect(passwd.hasSuffix("u:x:1000:1000:u:/home/u:/bin/sh\n"))
        #expect(p.mounts.contains(.mkdir(target: "/home/u", mode: 0o755)))
        let (q, _) = try build(request { $0.user = "keep-id" }, host: host(subids: false))
        #expect(q.uidMap.ranges == [.init(inside: 1000, outside: 1000, count: 1)])
    }

    @Test func imageUsersResolveAndMustBeMapped() throws {
        let (p, _) = try build(request { $0.user = "builder" })
        #expect(p.uid == 1500 && p.gid == 1600 && p.env("HOME") == "/home/builder")
        let (q, _) = try build(request { $0.imageUser = "builder:wheel" })
        #expect(q.uid == 1500 && q.gid == 10)
        let (r, _) = try build(request { $0.imageUser = "builder"; $0.user = "root" })
        #expect(r.uid == 0)
        #expect(throws: AZLError.self) { try build(request { $0.user = "builder" }, host: host(subids: false)) }
        #expect(throws: AZLError.self) { try build(request { $0.user = "nobody-here" }) }
    }

    @Test func environmentIsCleanThenImageThenOptions() throws {
        let (p, _) = try build(request {
            $0.imageEnv = ["PATH=/opt/bin:/usr/bin", "JAVA_HOME=/usr/lib/jvm"]
            $0.env = ["FOO=bar", "EDITOR", "UNSET_ON_HOST", "JAVA_HOME=/j"]
        })
        #expect(p.env("PATH") == "/opt/bin:/usr/bin")
        #expect(p.env("HOME") == "/root")
        #expect(p.env("TERM") == "xterm-256color")
        #expect(p.env("LANG") == "de_DE.UTF-8")
        #expect(p.env("FOO") == "bar")
        #expect(p.env("EDITOR") == "vi")
        #expect(p.env("JAVA_HOME") == "/j")
        #expect(p.env("SECRET") == nil)
        #expect(p.env("UNSET_ON_HOST") == nil)
        #expect(p.environment.count == Set(p.environment.map { $0.split(separator: "=")[0] }).count)
        var h = host()
        h.environment = [:]
        let (q, _) = try build(request(), host: h)
        #expect(q.env("LANG") == "C.UTF-8" && q.env("TERM") == nil && q.env("PATH") == PlanBuilder.defaultPath)
    }

    @Test func layoutOfTheTargetMachine() throws {
        let (p, _) = try build(request())
        #expect(p.mounts.first == .proc(target: "/proc"))
        #expect(p.mounts.contains(.bind(source: "/sys", target: "/sys", flags: [.recursive, .readOnly, .nosuid, .nodev, .noexec])))
        for d in ["null", "zero", "full", "random", "urandom", "tty"] {
            let i = try #require(index(p, "/dev/" + d))
            #expect(i > index(p, "/dev")!)
        }
        #expect(p.mounts.contains(.devpts(target: "/dev/pts")))
        #expect(p.mounts.contains(.symlink(target: "/dev/ptmx", pointsTo: "pts/ptmx")))
        #expect(index(p, "/dev/shm") != nil && index(p, "/tmp") != nil && index(p, "/run") != nil)
        #expect(p.mounts.contains(.bind(source: "/etc/resolv.conf", target: "/etc/resolv.conf", flags: [.readOnly, .optional])))
        #expect(p.hostname == "azurelinux")
        #expect(!p.readOnlyRoot && !p.mounts.contains(.remountReadOnly(target: "/")))
        #expect(index(p, "/var/tmp") == nil)
    }

    @Test func workingDirectoryIsBoundAndVolumesNestInside() throws {
        let (p, _) = try build(request { $0.volumes = ["/data/cache:/home/u/project/cache:ro", "rel:/srv/x"] })
        let cwd = try #require(index(p, "/home/u/project"))
        let vol = try #require(index(p, "/home/u/project/cache"))
        #expect(cwd < vol)
        #expect(index(p, "/tmp")! < cwd)
        #expect(p.mounts[cwd] == .bind(source: "/home/u/project", target: "/home/u/project", flags: [.recursive, .guarded]))
        #expect(p.mounts[vol] == .bind(source: "/data/cache", target: "/home/u/project/cache", flags: [.recursive, .readOnly, .guarded]))
        #expect(p.mounts.contains(.bind(source: "/home/u/project/rel", target: "/srv/x", flags: [.recursive, .guarded])))
        #expect(p.workingDirectory == "/home/u/project")
    }

    @Test func workdirChoices() throws {
        let (a, _) = try build(request { $0.workdir = "/src/app" })
        #expect(a.workingDirectory == "/src/app" && a.mounts.contains(.mkdir(target: "/src/app", mode: 0o755)))
        #expect(throws: AZLError.self) { try build(request { $0.workdir = "relative" }) }
        var h = host()
        h.cwd = "/"
        let (b, notes) = try build(request { $0.imageWorkingDir = "/app" }, host: h)
        #expect(b.workingDirectory == "/app")
        #expect(!b.mounts.contains { if case .bind(let s, _, _) = $0 { return s == "/" } else { return false } })
        #expect(notes.contains { $0.contains("not binding") })
        #expect(!PlanBuilder.canBindWorkingDirectory("/usr", rootfs: "/r"))
        #expect(!PlanBuilder.canBindWorkingDirectory("/r/etc", rootfs: "/r"))
        #expect(PlanBuilder.canBindWorkingDirectory("/usr/src/project", rootfs: "/r"))
    }

    @Test func readOnlyRootEndsWithRemount() throws {
        let (p, _) = try build(request { $0.readOnly = true; $0.workdir = "/work" })
        #expect(p.readOnlyRoot)
        #expect(p.mounts.last == .remountReadOnly(target: "/"))
        #expect(index(p, "/var/tmp") != nil)
        #expect(index(p, "/work")! < p.mounts.count - 1)
    }

    @Test func badVolumesAreUsageErrors() throws {
        for v in ["nocolon", "/a:relative", "/a:/b:rx", "/a:/", ":/b"] {
            #expect(throws: AZLError.self, "\(v)") { try build(request { $0.volumes = [v] }) }
        }
        #expect(throws: AZLError.self) { try build(request { $0.volumes = ["/missing:/m"] }, exists: { _ in false }) }
    }

    @Test func commandDefaults() throws {
        #expect(try build(request()).0.argv == ["make", "test"])
        #expect(try build(request { $0.command = []; $0.imageCmd = ["bash"] }).0.argv == ["bash"])
        #expect(try build(request { $0.entrypoint = ["/init"] }).0.argv == ["/init", "make", "test"])
        #expect(try build(request { $0.command = [] }).0.argv == ["/bin/sh"])
    }

    @Test func hostnames() {
        #expect(PlanBuilder.hostname(forImage: "docker.io/library/alpine:3.20") == "alpine")
        #expect(PlanBuilder.hostname(forImage: "my_image") == "my-image")
        #expect(PlanBuilder.hostname(forImage: "") == "azl-shell")
        #expect(PlanBuilder.hostname(forImage: String(repeating: "a", count: 100)).count == 63)
        // RFC 1123 labels, whatever the image name holds.
        #expect(PlanBuilder.hostname(forImage: "x/a..b-") == "a.b")
        #expect(PlanBuilder.hostname(forImage: "x/_b_") == "b")
        #expect(PlanBuilder.hostname(forImage: "x/__") == "azl-shell")
        for name in ["a..b-", "_b_", String(repeating: "ab.", count: 40)] {
            #expect(HostName.isValid(PlanBuilder.hostname(forImage: name), maxLength: PlanBuilder.utsNameMax), "\(name)")
        }
    }

    @Test func subordinateIdParsing() {
        let text = "other:1:2\nu:100000:65536\n1000:5:5\n"
        #expect(HostFacts.parseSubordinate(text, name: "u", id: 1000)! == (100000, 65536))
        #expect(HostFacts.parseSubordinate("1000:7:9\n", name: "u", id: 1000)! == (7, 9))
        #expect(HostFacts.parseSubordinate("u:x:1\nu:1:0\n", name: "u", id: 1000) == nil)
    }
}

/// The wire format, decoded independently of the C parser (which must agree: plan.h).
struct PlanEncodingTests {
    func records(_ bytes: [UInt8]) -> [[String]] {
        var out: [[String]] = []
        var i = 0
        while i + 4 <= bytes.count {
            let n = Int(bytes[i]) | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2]) << 16 | Int(bytes[i + 3]) << 24
            let payload = Array(bytes[(i + 4)..<(i + 4 + n)])
            var fields = payload.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            fields.removeLast()   // after the final NUL
            out.append(fields)
            i += 4 + n
        }
        #expect(i == bytes.count)
        return out
    }

    @Test func encodesEveryRecordInOrder() throws {
        let plan = SandboxPlan(
            namespaces: [.user, .mount, .pid], verbose: true, pty: true,
            uidMap: .init(helper: "/usr/bin/newuidmap", ranges: [.init(inside: 0, outside: 1000, count: 1), .init(inside: 1, outside: 100000, count: 65536)]),
            gidMap: .init(helper: nil, ranges: [.init(inside: 0, outside: 1000, count: 1)]),
            rootfs: "/trees/x", mounts: [
                .proc(target: "/proc"),
                .tmpfs(target: "/tmp", mode: 0o1777, options: "size=10m", flags: [.nosuid, .nodev]),
                .bind(source: "/h", target: "/h", flags: [.recursive, .readOnly]),
                .file(target: "/etc/passwd", contents: "a:b\n", mode: 0o644),
            ],
            hostname: "box", uid: 0, gid: 0, workingDirectory: "/h", environment: ["A=1", "B="], argv: ["sh", "-c", ""])
        let r = records(plan.encoded())
        #expect(r[0] == ["azl-plan", SandboxPlan.version])
        #expect(r[1] == ["ns", "user", "mount", "pid"])
        #expect(r[2] == ["flags", "verbose", "pty"])
        #expect(r[3] == ["uidmap", "/usr/bin/newuidmap", "0", "1000", "1", "1", "100000", "65536"])
        #expect(r[4] == ["gidmap", "", "0", "1000", "1"])
        #expect(r[5] == ["root", "/trees/x", "overlay"])
        #expect(r[6] == ["mount", "proc", "/proc", "", "", "nosuid,nodev,noexec", "0"])
        #expect(r[7] == ["mount", "tmpfs", "/tmp", "", "size=10m", "nosuid,nodev", "1777"])
        #expect(r[8] == ["mount", "bind", "/h", "/h", "", "ro,rec", "0"])
        #expect(r[9] == ["mount", "file", "/etc/passwd", "", "a:b\n", "", "644"])
        #expect(r[10] == ["hostname", "box"])
        #expect(r[11] == ["user", "0", "0"])
        #expect(r[12] == ["cwd", "/h"])
        #expect(r[13] == ["env", "A=1", "B="])
        #expect(r[14] == ["argv", "sh", "-c", ""])
        #expect(r.count == 15)
    }

    static let kernel = SandboxPlan.KernelSettings(
        profile: "cbl-mariner-2.0", seccomp: [0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x7f],
        uts: .init(release: "5.15.138.1-1.cm2", version: "#1 SMP x", procVersion: "Linux version 5.15.138.1-1.cm2 (p) #1 SMP x\n"),
        capabilities: .init(bounding: 0xa80425ff, effective: 0xa80425ff, permitted: 0xa80425ff),
        noNewPrivs: true)

    @Test func encodesTheKernelPolicyLast() throws {
        var b = PlanBuilder(request: { var r = RunRequest(rootfs: "/t", imageName: "a"); r.kernel = Self.kernel; return r }(),
                            host: HostFacts(uid: 1, gid: 1, userName: "u", home: "/h", cwd: "/"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let r = records(try b.build().encoded())
        let tail = Array(r.suffix(4))
        #expect(tail[0] == ["seccomp", "060000000000ff7f", "notify-uname"])
        #expect(tail[1] == ["caps", "00000000a80425ff", "00000000a80425ff", "00000000a80425ff", "0000000000000000", "0000000000000000"])
        #expect(tail[2] == ["uname", "5.15.138.1-1.cm2", "#1 SMP x", ""])
        #expect(tail[3] == ["nnp"])
        #expect(r.contains(["mount", "rofile", "/proc/version", "", "Linux version 5.15.138.1-1.cm2 (p) #1 SMP x\n", "ro,nosuid,nodev,noexec", "444"]))
        #expect(r.contains(["mount", "rofile", "/proc/sys/kernel/osrelease", "", "5.15.138.1-1.cm2\n", "ro,nosuid,nodev,noexec", "444"]))

        // The host profile: no uname notification, so no uname record and no /proc binds.
        var host = Self.kernel
        host.uts = nil
        var hb = PlanBuilder(request: { var r = RunRequest(rootfs: "/t", imageName: "a"); r.kernel = host; return r }(),
                             host: HostFacts(uid: 1, gid: 1, userName: "u", home: "/h", cwd: "/"),
                             readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let hr = records(try hb.build().encoded())
        #expect(hr.contains(["seccomp", "060000000000ff7f", "-"]))
        #expect(!hr.contains { $0.first == "uname" })
        #expect(!hr.contains { $0.count > 1 && $0[1] == "rofile" })
        #expect(hr.contains(["nnp"]))
    }

    @Test func procFilesAreBoundRightAfterProcAndASpareProcStaysHidden() throws {
        var b = PlanBuilder(request: { var r = RunRequest(rootfs: "/t", imageName: "a"); r.kernel = Self.kernel; return r }(),
                            host: HostFacts(uid: 1, gid: 1, userName: "u", home: "/h", cwd: "/"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let p = try b.build()
        #expect(Array(p.mounts.prefix(3)) == [
            .proc(target: "/proc"),
            .readOnlyFile(target: "/proc/sys/kernel/osrelease", contents: "5.15.138.1-1.cm2\n", mode: 0o444),
            .readOnlyFile(target: "/proc/version", contents: Self.kernel.uts!.procVersion, mode: 0o444),
        ])
        // The spare procfs: a proc in /dev's tmpfs, then an empty read-only tmpfs over it, after /dev exists.
        let spare = PlanBuilder.spareProc
        let i = try #require(p.mounts.firstIndex(of: .proc(target: spare + "/proc")))
        guard case .tmpfs(spare, _, _, let f2) = p.mounts[i + 1] else {
            Issue.record("\(p.mounts)"); return
        }
        #expect(f2.contains(.readOnly))
        #expect(p.mounts.filter { $0.target.hasPrefix(spare) }.count == 2)
        #expect(p.mounts.firstIndex { $0.target == "/dev" }! < i)
        #expect(p.description.contains("kernel profile cbl-mariner-2.0: uname 5.15.138.1-1.cm2"))
        #expect(p.description.contains("mount rofile /proc/version"))
        // Without a kernel policy none of this is there.
        var nb = PlanBuilder(request: RunRequest(rootfs: "/t", imageName: "a"),
                             host: HostFacts(uid: 1, gid: 1, userName: "u", home: "/h", cwd: "/"),
                             readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let np = try nb.build()
        #expect(np.kernel == nil)
        #expect(!np.mounts.contains { $0.target.hasPrefix(spare) || $0.target == "/proc/version" })
    }

    @Test func descriptionNamesEveryStep() throws {
        var b = PlanBuilder(request: RunRequest(rootfs: "/t", imageName: "alpine"),
                            host: HostFacts(uid: 1, gid: 1, userName: "u", home: "/h", cwd: "/w"),
                            readImageFile: { _ in nil }, hostPathExists: { _ in true })
        let p = try b.build()
        let d = p.description
        #expect(d.contains("root overlay of /t"))
        #expect(d.contains("mount bind /w <- /w [rec,guard]"))
        #expect(d.contains("argv /bin/sh"))
    }
}
