import Core
import Foundation
import Kernel
import TestSupport
import Testing

/// The policy as values: profiles, gating, the deny list, capabilities, the report.
struct KernelProfileTests {
    @Test func bundledProfilesComeFromKernelsToml() throws {
        let azl3 = try #require(KernelProfile.named("azurelinux-3.0"))
        #expect(azl3.release.hasSuffix(".azl3"))
        #expect((azl3.major, azl3.minor) == (6, 6))
        let cm2 = try #require(KernelProfile.named("cbl-mariner-2.0"))
        #expect((cm2.major, cm2.minor) == (5, 15))
        #expect(cm2.release.hasPrefix("5.15."))
        #expect(KernelProfile.named("nonexistent") == nil)
        // Every profile of the file is compiled in, with the file's numbers.
        let toml = try String(contentsOfFile: Fixtures.repo + "/rootfs-manifests/kernels.toml", encoding: .utf8)
        let names = toml.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("[profile.\""), let end = line.dropFirst(10).firstIndex(of: "\"") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 10)..<end])
        }
        #expect(names == KernelProfile.bundledNames)
        for p in KernelProfile.bundled {
            #expect(KernelProfile.leadingVersion(p.release).map { $0.0 } == p.major, "\(p.name)")
            #expect(!p.isHost)
            try p.validate()
        }
    }

    @Test func generatedSwiftIsUpToDate() {
        let r = Subprocess.run(["/usr/bin/env", "python3", Fixtures.repo + "/kernel-data/gen-swift.py", "--check"])
        #expect(r.status == 0, "\(r)")
    }

    @Test func releaseStringsParse() throws {
        let p = try KernelProfile.parse(release: "6.6.1-foo")
        #expect((p.major, p.minor, p.patch) == (6, 6, 1))
        #expect(p.release == "6.6.1-foo")
        #expect(p.version.contains("PREEMPT_DYNAMIC"))
        let q = try KernelProfile.parse(release: "5.15")
        #expect((q.major, q.minor, q.patch) == (5, 15, 0))
        #expect(q.version == "#1 SMP")
        let d = try KernelProfile.parse(release: "6.1.0-53-cloud-amd64")
        #expect((d.major, d.minor, d.patch) == (6, 1, 0))
        #expect(throws: AZLError.self) { try KernelProfile.parse(release: "foo") }
        #expect(throws: AZLError.self) { try KernelProfile.parse(release: "6") }
        #expect(throws: AZLError.self) { try KernelProfile.parse(release: "6.6." + String(repeating: "x", count: 70)) }
        #expect(throws: AZLError.self) { try KernelProfile.parse(release: "6.6\nx") }
        // Older than every syscall table row: it would gate read and write.
        #expect(throws: AZLError.self) { try KernelProfile.parse(release: "0.1") }
        #expect(throws: AZLError.self) { try KernelProfile.parse(release: "2.4.37") }
        #expect(try KernelProfile.parse(release: "3.10").versionString == "3.10.0")
    }

    @Test func profilesByNameReleaseAndHost() throws {
        #expect(KernelProfile.named("cbl-mariner-2.0")?.name == "cbl-mariner-2.0")
        #expect(try KernelProfile.parse(release: "5.10.0-x").minor == 10)
        let host = KernelProfile.host
        #expect(host.isHost)
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(host.release == release)
        #expect(host.major >= 3)
    }
}

struct SyscallTableTests {
    func names(_ profile: KernelProfile, _ arch: KernelArch) -> Set<String> {
        Set(SyscallTable.missing(on: profile, arch: arch).map(\.name))
    }

    @Test(arguments: KernelArch.allCases)
    func gatingUnderMariner2(arch: KernelArch) throws {
        let g = names(try #require(KernelProfile.named("cbl-mariner-2.0")), arch)
        #expect(g.isSuperset(of: ["futex_waitv", "cachestat", "fchmodat2", "statmount", "listmount", "mseal", "setxattrat"]))
        #expect(!g.contains("clone3"))
        #expect(!g.contains("process_mrelease"))   // 5.15 itself
        #expect(!g.contains("read"))
        let nrs = Dictionary(uniqueKeysWithValues: SyscallTable.missing(on: KernelProfile.named("cbl-mariner-2.0")!, arch: arch).map { ($0.name, $0.nr) })
        #expect(nrs["futex_waitv"] == 449)
        #expect(nrs["cachestat"] == 451)
        #expect(nrs["fchmodat2"] == 452)
    }

    @Test(arguments: KernelArch.allCases)
    func gatingUnderAzureLinux3(arch: KernelArch) throws {
        let g = names(try #require(KernelProfile.named("azurelinux-3.0")), arch)
        #expect(g.isSuperset(of: ["statmount", "listmount", "mseal", "setxattrat", "futex_wake"]))
        #expect(!g.contains("fchmodat2"))
        #expect(!g.contains("cachestat"))
        #expect(!g.contains("futex_waitv"))
        let nrs = Dictionary(uniqueKeysWithValues: SyscallTable.missing(on: KernelProfile.named("azurelinux-3.0")!, arch: arch).map { ($0.name, $0.nr) })
        #expect(nrs["statmount"] == 457 && nrs["listmount"] == 458 && nrs["mseal"] == 462 && nrs["setxattrat"] == 463)
    }

    @Test func hostGatesNothing() {
        for arch in KernelArch.allCases {
            #expect(SyscallTable.missing(on: .host, arch: arch).isEmpty)
        }
    }

    @Test func clone3OnlyBefore53() throws {
        #expect(names(try KernelProfile.parse(release: "5.2.21"), .x86_64).contains("clone3"))
        #expect(names(try KernelProfile.parse(release: "5.2.21"), .aarch64).contains("clone3"))
        #expect(!names(try KernelProfile.parse(release: "5.3.0"), .x86_64).contains("clone3"))
    }

    @Test func archDifferencesFollowTheTable() throws {
        #expect(SyscallTable.lookup("open", arch: .x86_64)?.nr == 2)
        #expect(SyscallTable.lookup("open", arch: .aarch64) == nil)
        #expect(SyscallTable.lookup("uname", arch: .aarch64)?.nr == 160)
        // map_shadow_stack: x86_64 6.6, aarch64 6.13
        let azl3 = try #require(KernelProfile.named("azurelinux-3.0"))
        #expect(!names(azl3, .x86_64).contains("map_shadow_stack"))
        #expect(names(azl3, .aarch64).contains("map_shadow_stack"))
    }

    /// The i386 ABI has its own numbers and versions (kernel-data/syscalls-i386.tsv).
    @Test func i386TableFollowsItsOwnNumbers() throws {
        #expect(SyscallTable.lookup("uname", abi: .i386)?.nr == 122)
        #expect(SyscallTable.lookup("olduname", abi: .i386)?.nr == 109)
        #expect(SyscallTable.lookup("oldolduname", abi: .i386)?.nr == 59)
        #expect(SyscallTable.lookup("stime", abi: .i386)?.nr == 25 && SyscallTable.lookup("stime", arch: .x86_64) == nil)
        #expect(SyscallTable.lookup("keyctl", abi: .i386)?.nr == 288)
        #expect(SyscallTable.all(.aarch32).isEmpty && !CompatABI.aarch32.mirrorsPolicy && CompatABI.i386.mirrorsPolicy)
        let g419 = Set(SyscallTable.missing(on: try KernelProfile.parse(release: "4.19.0"), abi: .i386).map(\.name))
        #expect(g419.isSuperset(of: ["clock_gettime64", "clock_settime64", "futex_time64", "semget", "msgctl", "clone3", "statmount"]))
        #expect(g419.isDisjoint(with: ["clock_gettime", "rseq", "io_pgetevents", "statx", "socket", "arch_prctl", "uname"]))
        let g515 = SyscallTable.missing(on: try #require(KernelProfile.named("cbl-mariner-2.0")), abi: .i386)
        #expect(Set(g515.map(\.nr)).isSuperset(of: Set(457...469)) && !g515.contains { $0.nr == 403 })
        #expect(SyscallTable.missing(on: .host, abi: .i386).isEmpty)
        // Numbers from 424 on are shared with x86_64 (except x86_64's own 335/336).
        let x = Dictionary(uniqueKeysWithValues: SyscallTable.all(.x86_64).filter { $0.nr >= 424 }.map { ($0.nr, $0.name) })
        let i = Dictionary(uniqueKeysWithValues: SyscallTable.all(.i386).filter { $0.nr >= 424 }.map { ($0.nr, $0.name) })
        #expect(x == i)
    }

    @Test func compiledI386TableMatchesTSV() throws {
        let text = try String(contentsOfFile: Fixtures.repo + "/kernel-data/syscalls-i386.tsv", encoding: .utf8)
        let rows = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
        let compiled = SyscallTable.all(.i386).map { "\($0.nr)\t\($0.name)\t\($0.sinceString)" }
        #expect(compiled.count == rows.count && Set(compiled) == Set(rows))
    }

    /// The compiled-in table equals the TSVs (the generator ran after the last edit).
    @Test(arguments: KernelArch.allCases)
    func compiledTableMatchesTSV(arch: KernelArch) throws {
        let text = try String(contentsOfFile: Fixtures.repo + "/kernel-data/syscalls-\(arch.rawValue).tsv", encoding: .utf8)
        var rows: [String] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            rows.append(String(line))
        }
        let compiled = SyscallTable.all(arch).map { "\($0.nr)\t\($0.name)\t\($0.sinceString)" }
        #expect(compiled.count == rows.count)
        #expect(Set(compiled) == Set(rows))
    }
}

struct CapabilityTests {
    @Test func defaultSetIsThePackageManagerSet() {
        let d = CapabilitySets.default
        let names = Set(Capability.set(d.bounding).map(\.name))
        #expect(names == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                          "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                          "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"])
        #expect(d.bounding & Capability.sysAdmin.bit == 0)
        #expect(d.effective == d.bounding && d.permitted == d.bounding)
        #expect(d.inheritable == 0 && d.ambient == 0)
        #expect(d.bounding == 0xa804_25ff)
    }

    @Test func addAndDropEditTheSet() throws {
        let a = try CapabilitySets.with(add: ["CAP_SYS_ADMIN", "net_admin"], drop: ["mknod"])
        #expect(a.bounding & Capability.sysAdmin.bit != 0)
        #expect(a.bounding & Capability.netAdmin.bit != 0)
        #expect(a.bounding & Capability.mknod.bit == 0)
        #expect(a.bounding & Capability.chown.bit != 0)
        let none = try CapabilitySets.with(add: [], drop: ["all"])
        #expect(none.bounding == 0)
        let one = try CapabilitySets.with(add: ["chown"], drop: ["ALL"])
        #expect(one.bounding == Capability.chown.bit)
        let all = try CapabilitySets.with(add: ["all"], drop: ["CAP_SYS_MODULE"])
        #expect(all.bounding == Capability.allMask & ~Capability.sysModule.bit)
        #expect(Capability.allMask == (1 << 41) - 1)
        let comma = try CapabilitySets.with(add: ["sys_ptrace,sys_nice"], drop: [])
        #expect(comma.bounding & Capability.sysPtrace.bit != 0 && comma.bounding & Capability.sysNice.bit != 0)
        #expect(throws: AZLError.self) { try CapabilitySets.with(add: ["CAP_FLY"], drop: []) }
        #expect(Capability(name: "cap_sys_admin") == .sysAdmin)
        #expect(Capability.checkpointRestore.rawValue == 40)
    }
}

struct KernelPolicyTests {
    @Test func filterForMariner2() throws {
        let p = try KernelPolicy.build(profile: #require(KernelProfile.named("cbl-mariner-2.0")))
        #expect(!p.bpf.isEmpty)
        #expect(p.bpf.count % 8 == 0)
        #expect(p.instructionCount <= 4096)
        #expect(p.notifyUname)
        #expect(p.noNewPrivs)
        #expect(p.uts.release == "5.15.138.1-1.cm2")
        #expect(p.procVersion.hasPrefix("Linux version 5.15.138.1-1.cm2 "))
        #expect(p.procVersion.contains(p.uts.version))
        let gated = Set(p.gated.map(\.name))
        #expect(gated.isSuperset(of: ["futex_waitv", "cachestat", "fchmodat2"]))
        let denied = Set(p.denied.map(\.label))
        #expect(denied.isSuperset(of: ["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
                                       "keyctl", "add_key", "request_key", "open_by_handle_at", "perf_event_open", "bpf",
                                       "userfaultfd(without UFFD_USER_MODE_ONLY)", "ioctl(TIOCSTI)", "ioctl(TIOCLINUX)"]))
        // Nested namespaces stay possible.
        for allowed in ["mount", "umount2", "unshare", "setns", "clone", "pivot_root", "fsopen", "move_mount", "open_tree"] {
            #expect(!denied.contains(allowed) && !gated.contains(allowed), "\(allowed)")
        }
        #expect(gated.isDisjoint(with: p.denied.map(\.name)))
        #expect(p.capabilities == .default)
    }

    @Test func pseudoCodeShowsTheActions() throws {
        let pfc = try KernelPolicy.pseudoCode(profile: #require(KernelProfile.named("azurelinux-3.0")))
        // setxattrat (463) is unknown to libseccomp 2.5.4 by name: added by number, ENOSYS.
        #expect(pfc.contains("$syscall == 463"))
        #expect(pfc.contains("ERRNO(38)"))
        #expect(pfc.contains("ERRNO(1)"))
        #expect(pfc.contains("0x7fc00000"))               // SECCOMP_RET_USER_NOTIF for uname
        #expect(pfc.contains("& 0xffffffff == 21522"))    // TIOCSTI on the low 32 bits
        #expect(!pfc.contains("$syscall == 452\n    action ERRNO(38)"))  // fchmodat2 exists in 6.6
        #if arch(x86_64)
        #expect(pfc.contains("filter for arch i386 (1073741827)"))   // the i386 compat ABI is filtered too, by i386 number
        #expect(pfc.contains("if ($syscall >= 454 && $syscall <= 470)\n    action ERRNO(38);"))
        #expect(pfc.contains("if ($syscall == 25)\n    action ERRNO(1);"))      // stime, i386 only
        #expect(pfc.contains("invalid architecture action\naction ERRNO(38)"))
        #endif
    }

    /// The i386 branch is a search over the numbers (the kernel runs the program once per number
    /// of both ABIs when it is installed): every i386 number must still get what the policy's
    /// lists say, checked by running the program as the kernel would.
    @Test func compatBranchAnswersEveryNumberAsTheListsSay() throws {
        #if arch(x86_64)
        for name in ["cbl-mariner-2.0", "azurelinux-3.0"] {
            let p = try KernelPolicy.build(profile: #require(KernelProfile.named(name)))
            struct Insn { var code: UInt16; var jt: Int; var jf: Int; var k: UInt32 }
            let b = p.bpf
            var prog: [Insn] = []
            for i in stride(from: 0, to: b.count, by: 8) {
                let code = UInt16(b[i]) | UInt16(b[i + 1]) << 8
                let k0 = UInt32(b[i + 4]) | UInt32(b[i + 5]) << 8
                let k1 = UInt32(b[i + 6]) << 16 | UInt32(b[i + 7]) << 24
                prog.append(Insn(code: code, jt: Int(b[i + 2]), jf: Int(b[i + 3]), k: k0 | k1))
            }
            // seccomp_data: nr, arch, ip (8 bytes), args[6] (8 bytes each, little-endian).
            func run(nr: Int32, args: [UInt64]) -> UInt32 {
                var words: [UInt32] = [UInt32(bitPattern: nr), CompatABI.i386.auditArch, 0, 0]
                for a in args + Array(repeating: 0, count: 6 - args.count) { words += [UInt32(a & 0xffff_ffff), UInt32(a >> 32)] }
                var a: UInt32 = 0, pc = 0, steps = 0
                while pc < prog.count, steps < 4096 {
                    let i = prog[pc]; steps += 1
                    switch i.code {
                    case 0x20: a = words[Int(i.k) / 4]; pc += 1
                    case 0x54: a &= i.k; pc += 1
                    case 0x05: pc += 1 + Int(i.k)
                    case 0x15: pc += 1 + (a == i.k ? i.jt : i.jf)
                    case 0x25: pc += 1 + (a > i.k ? i.jt : i.jf)
                    case 0x35: pc += 1 + (a >= i.k ? i.jt : i.jf)
                    case 0x45: pc += 1 + (a & i.k != 0 ? i.jt : i.jf)
                    case 0x06: return i.k
                    default: Issue.record("opcode \(i.code) at \(pc)"); return 0
                    }
                }
                Issue.record("no return for \(nr)"); return 0
            }
            let enosys = 0x0005_0000 | UInt32(KernelPolicy.gatedErrno), eperm = 0x0005_0000 | UInt32(KernelPolicy.deniedErrno)
            let gated = Set(p.compat.gated.map(\.nr))
            let notified = Set(p.compat.notified.compactMap { SyscallTable.lookup($0, abi: .i386)?.nr })
            var always = Set<Int32>(), ioctls = [Int32: [UInt32]](), masked = [(Int32, UInt32, UInt64, UInt64)]()
            for d in p.compat.denied {
                let nr = try #require(SyscallTable.lookup(d.name, abi: .i386)?.nr)
                switch d.condition {
                case .always: always.insert(nr)
                case .ioctlCommand(let c): ioctls[nr, default: []].append(c)
                case let .argMaskedEquals(i, m, v): masked.append((nr, i, m, v))
                }
            }
            #expect(!gated.isEmpty && !notified.isEmpty && !always.isEmpty && !ioctls.isEmpty, "\(name)")
            for nr in Int32(0)...520 {
                let plain = run(nr: nr, args: [])
                let want: UInt32 = gated.contains(nr) ? enosys : notified.contains(nr) ? 0x7fc0_0000 : always.contains(nr) ? eperm : 0x7fff_0000
                if masked.contains(where: { $0.0 == nr }) { continue }
                #expect(plain == want, "\(name): i386 \(nr) answers \(plain)")
                for cmd in ioctls[nr] ?? [] {
                    #expect(run(nr: nr, args: [3, UInt64(cmd)]) == eperm, "\(name): ioctl \(cmd)")
                    #expect(run(nr: nr, args: [3, UInt64(cmd) + 0x1_0000_0000]) == eperm, "only the int the kernel reads")
                }
            }
            for (nr, i, m, v) in masked {
                var args = [UInt64](repeating: 0, count: 6)
                args[Int(i)] = v & m
                #expect(run(nr: nr, args: args) == eperm, "\(name): \(nr) with its argument")
                args[Int(i)] = ~v & m
                #expect(run(nr: nr, args: args) == 0x7fff_0000, "\(name): \(nr) with another argument")
            }
        }
        #endif
    }

    @Test func hostProfileOnlyDenies() throws {
        let p = try KernelPolicy.build(profile: .host)
        #expect(p.gated.isEmpty)
        #expect(!p.notifyUname)
        #expect(p.denied.contains { $0.name == "keyctl" })
        #expect(!p.bpf.isEmpty)
    }

    @Test func capsOptionsReachThePolicy() throws {
        let p = try KernelPolicy.build(profile: .host, capsAdd: ["sys_admin"], capsDrop: ["net_raw"])
        #expect(p.capabilities.bounding & Capability.sysAdmin.bit != 0)
        #expect(p.capabilities.bounding & Capability.netRaw.bit == 0)
        #expect(throws: AZLError.self) { try KernelPolicy.build(profile: .host, capsAdd: ["bogus"]) }
    }

    @Test func foreignArchIsRefused() throws {
        let other: KernelArch = KernelArch.native == .x86_64 ? .aarch64 : .x86_64
        #expect(throws: AZLError.self) { try KernelPolicy.build(profile: .host, arch: other) }
    }

    @Test func reportNamesWhatIsGated() throws {
        let p = try KernelPolicy.build(profile: #require(KernelProfile.named("cbl-mariner-2.0")))
        let r = KernelReport(policy: p)
        let text = r.text()
        #expect(text.contains("cbl-mariner-2.0"))
        #expect(text.contains("5.15.138.1-1.cm2"))
        #expect(text.contains("futex_waitv(5.16)"))
        #expect(text.contains("ioctl(TIOCSTI)"))
        #expect(text.contains("CAP_SYS_ADMIN"))
        #expect(r.gated.count == p.gated.count)
        let json = try JSONEncoder().encode(r)
        let back = try JSONDecoder().decode(KernelReport.self, from: json)
        #expect(back == r)
        let host = KernelReport(policy: try KernelPolicy.build(profile: .host)).text()
        #expect(host.contains("gated syscalls  none"))
    }
}

/// The on-disk cache of exported programs (`run` reads it instead of calling libseccomp).
struct FilterCacheTests {
    func tempDir() -> String {
        NSTemporaryDirectory() + "azl-filter-cache-\(UInt32.random(in: 0...UInt32.max))"
    }

    func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".bpf") }.sorted()
    }

    @Test func secondBuildReadsTheCacheAndGetsTheSameProgram() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let azl3 = try #require(KernelProfile.named("azurelinux-3.0"))
        let fresh = try KernelPolicy.build(profile: azl3)
        let first = try KernelPolicy.build(profile: azl3, cacheDirectory: dir)
        #expect(!first.fromCache && first.bpf == fresh.bpf)
        #expect(files(dir).count == 1)
        let second = try KernelPolicy.build(profile: azl3, cacheDirectory: dir)
        #expect(second.fromCache)
        #expect(second.bpf == fresh.bpf)
        #expect(second.gated == fresh.gated && second.denied == fresh.denied && second.uts == fresh.uts)
        // Another profile (other gated numbers), the host (no notification), another deny list: other keys.
        _ = try KernelPolicy.build(profile: #require(KernelProfile.named("cbl-mariner-2.0")), cacheDirectory: dir)
        _ = try KernelPolicy.build(profile: .host, cacheDirectory: dir)
        _ = try KernelPolicy.build(profile: azl3, denyList: Array(SecurityPolicy.defaultDenyList.dropLast(3)), cacheDirectory: dir)
        #expect(files(dir).count == 4)
        // Capabilities are not part of the program: same file.
        let capped = try KernelPolicy.build(profile: azl3, capsDrop: ["all"], cacheDirectory: dir)
        #expect(capped.fromCache && capped.capabilities.bounding == 0)
        #expect(files(dir).count == 4)
        #expect(second.compat == fresh.compat, "the compat report does not depend on the cache")
        // A deny-list change only the i386 branch sees (stime has no x86_64 number): another key.
        let noStime = try KernelPolicy.build(profile: azl3, denyList: SecurityPolicy.defaultDenyList.filter { $0.name != "stime" },
                                             cacheDirectory: dir)
        #if arch(x86_64)
        #expect(!noStime.fromCache && noStime.denied == fresh.denied && noStime.bpf != fresh.bpf)
        #expect(files(dir).count == 5)
        #endif
    }

    @Test func aDamagedCacheFileIsIgnoredAndRewritten() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let azl3 = try #require(KernelProfile.named("azurelinux-3.0"))
        let good = try KernelPolicy.build(profile: azl3, cacheDirectory: dir)
        let path = dir + "/" + (try #require(files(dir).first))
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        for damage in [original.prefix(original.count - 8), original.dropLast(1), Data("junk".utf8),
                       { var d = original; d[d.count - 1] ^= 0xff; return d }()] {
            try Data(damage).write(to: URL(fileURLWithPath: path))
            let p = try KernelPolicy.build(profile: azl3, cacheDirectory: dir)
            #expect(!p.fromCache, "a damaged file must not be used")
            #expect(p.bpf == good.bpf)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == original, "rewritten")
        }
        // An unwritable cache costs only speed.
        let p = try KernelPolicy.build(profile: azl3, cacheDirectory: "/proc/azl-no-such-dir")
        #expect(p.bpf == good.bpf && !p.fromCache)
    }
}

enum Fixtures {
    /// The package root (this file is Tests/KernelTests/KernelPolicyTests.swift).
    static let repo: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()
}

/// Issue 14: a foreign-arch image under qemu-user. qemu makes host syscalls, so the filter
/// stays the host ABI's; the target's gated calls are gated by the host call of the same name.
struct ForeignTargetPolicyTests {
    static let other: KernelArch = KernelArch.native == .x86_64 ? .aarch64 : .x86_64

    @Test func theFilterIsTheHostsAndGatesTheTargetsMissingCallsByName() throws {
        let p = try #require(KernelProfile.named("cbl-mariner-2.0"))
        let native = try KernelPolicy.build(profile: p)
        let foreign = try KernelPolicy.build(profile: p, target: Self.other)
        #expect(foreign.arch == .native && foreign.target == Self.other)
        #expect(native.uts.machine == nil && foreign.uts.machine == Self.other.rawValue)
        #expect(Set(native.gated).isSubset(of: Set(foreign.gated)))
        let targetMissing = SyscallTable.missing(on: p, arch: Self.other)
        #expect(targetMissing.contains { $0.name == "cachestat" })
        for s in targetMissing {
            if let host = SyscallTable.lookup(s.name, arch: .native) { #expect(foreign.gated.contains(host), "\(s.name)") }
        }
        #expect(foreign.gated.map(\.nr) == foreign.gated.map(\.nr).sorted())
    }

    @Test func theHostProfileGatesNothingOnEitherArchitecture() throws {
        let foreign = try KernelPolicy.build(profile: .host, target: Self.other)
        #expect(foreign.gated.isEmpty && !foreign.notifyUname)
    }
}

/// Issue 14: `--abi-report`. The gated and denied calls are notified instead of failed in the
/// filter (pid 1 fails them the same way); the program is otherwise the same.
struct ABIReportPolicyTests {
    @Test func reportModeNotifiesExactlyTheGatedAndDeniedCalls() throws {
        let p = try #require(KernelProfile.named("cbl-mariner-2.0"))
        let plain = try KernelPolicy.build(profile: p)
        let report = try KernelPolicy.build(profile: p, report: true)
        #expect(plain.reportedCalls.isEmpty)
        // libseccomp merges neighbouring numbers with one action: no longer than the usual program.
        #expect(report.bpf != plain.bpf && report.instructionCount <= plain.instructionCount, "\(report.instructionCount) vs \(plain.instructionCount)")
        let calls = report.reportedCalls
        let cachestat = try #require(calls.first { $0.name == "cachestat" })
        #expect(cachestat.errno == ENOSYS && cachestat.reason == "cachestat: added in 6.5, target kernel 5.15.138.1-1.cm2")
        #expect(cachestat.auditArch == KernelArch.native.auditArch)
        let addKey = try #require(calls.first { $0.name == "add_key" })
        #expect(addKey.errno == EPERM && addKey.reason.hasPrefix("add_key: denied by azl-shell's policy ("))
        #expect(Set(calls.map(\.nr)).count == calls.count, "one answer per number")
        #expect(Set(plain.gated.map(\.name)).isSubset(of: Set(calls.map(\.name))))
    }

    @Test func theReportProgramIsCachedApart() throws {
        let dir = NSTemporaryDirectory() + "/azl-filter-cache-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try #require(KernelProfile.named("cbl-mariner-2.0"))
        let plain = try KernelPolicy.build(profile: p, cacheDirectory: dir)
        let report = try KernelPolicy.build(profile: p, report: true, cacheDirectory: dir)
        #expect(!report.fromCache && report.bpf != plain.bpf)
    }
}
