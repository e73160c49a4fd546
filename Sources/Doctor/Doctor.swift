import Core
import Foundation

/// One check's outcome: a line, and for what is not ok the fix for this machine.
public struct Check: Codable, Equatable, Sendable {
    /// `failed`: runs will fail; `warning`: they work, with less (a single-id map, no cache);
    /// `info`: what is not built on yet (cross-arch).
    public enum Status: String, Codable, Sendable { case ok, warning, failed, info }
    public var id: String
    public var status: Status
    public var summary: String
    public var fix: String?

    public init(_ id: String, _ status: Status, _ summary: String, fix: String? = nil) {
        self.id = id; self.status = status; self.summary = summary; self.fix = fix
    }
}

public struct DoctorReport: Codable, Sendable {
    public var ok: Bool
    public var checks: [Check]

    public init(checks: [Check]) {
        self.checks = checks
        ok = !checks.contains { $0.status == .failed }
    }

    public func text() -> String {
        var out = ""
        for c in checks {
            let mark = ["ok": "ok     ", "warning": "WARNING", "failed": "FAILED ", "info": "info   "][c.status.rawValue]!
            out += "\(mark) \(c.id): \(c.summary)\n"
            if let fix = c.fix { out += "        fix: \(fix)\n" }
        }
        let failed = checks.filter { $0.status == .failed }.count
        let warned = checks.filter { $0.status == .warning }.count
        out += failed == 0 ? "azl-shell can run here" : "azl-shell cannot run here: \(failed) check(s) failed"
        out += warned == 0 ? "\n" : " (\(warned) warning(s))\n"
        return out
    }
}

/// What to check, and where: the store and cache, and the settings tests use to stand for a
/// user without a subordinate range or a machine without newuidmap.
public struct DoctorOptions: Sendable {
    public var paths: Paths
    public var subuidFile = "/etc/subuid"
    public var subgidFile = "/etc/subgid"
    /// Where runs look for newuidmap and newgidmap (PlanBuilder's list).
    public var helperDirectories = ["/usr/bin", "/bin", "/usr/sbin"]
    /// The installed programs that create user namespaces (for an AppArmor profile).
    public var programs: [String] = []

    public init(paths: Paths) { self.paths = paths }
}

public enum Doctor {
    /// Every check, in the order a user fixes them.
    public static func run(_ o: DoctorOptions, host: HostFacts = LiveHost()) -> DoctorReport {
        let userns = userNamespaces(host, programs: o.programs)
        var checks = [userns]
        checks += subordinateIDs(host, subuid: o.subuidFile, subgid: o.subgidFile)
        checks += idMapHelpers(host, directories: o.helperDirectories)
        checks.append(overlay(host, store: o.paths.root, usernsWorks: userns.status == .ok))
        checks.append(mountAPI(host, usernsWorks: userns.status == .ok))
        checks.append(errnoCheck("seccomp-notify", host.probeSeccompNotify(), ok: "seccomp user notification works",
                                 fix: "Linux 5.0 or later, and no seccomp policy around this shell that denies seccomp()"))
        checks.append(errnoCheck("pidfd", host.probePidfd(), ok: "pidfd_open works", fix: "Linux 5.3 or later"))
        checks += binfmt(host, usernsWorks: userns.status == .ok)
        checks.append(keyring(host))
        checks.append(freeSpace(host, store: o.paths.root))
        checks += ownership(host, o.paths)
        checks += StoreChecks.all(o.paths)
        return DoctorReport(checks: checks)
    }

    static func reason(_ e: Int32) -> String { String(cString: strerror(e)) }

    static func errnoCheck(_ id: String, _ e: Int32, ok: String, fix: String) -> Check {
        e == 0 ? Check(id, .ok, ok) : Check(id, .failed, "\(id) fails: \(reason(e))", fix: fix)
    }

    // MARK: user namespaces

    static func userNamespaces(_ host: HostFacts, programs: [String]) -> Check {
        let e = host.probeUserNamespace()
        let restrict = host.sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1"
        if e == 0 {
            return Check("user-namespaces", .ok, "unprivileged user namespaces work"
                         + (restrict ? " (AppArmor restricts them, and allows this program)" : ""))
        }
        let what = "cannot create a user namespace: \(reason(e))"
        if host.sysctl("user.max_user_namespaces") == "0" {
            return Check("user-namespaces", .failed, what + " (user.max_user_namespaces is 0)",
                         fix: "sudo sysctl -w user.max_user_namespaces=15000, and put user.max_user_namespaces=15000 in /etc/sysctl.d/90-azl-shell.conf to keep it")
        }
        if host.sysctl("kernel.unprivileged_userns_clone") == "0" {
            return Check("user-namespaces", .failed, what + " (Debian's kernel.unprivileged_userns_clone is 0)",
                         fix: "sudo sysctl -w kernel.unprivileged_userns_clone=1, and put kernel.unprivileged_userns_clone=1 in /etc/sysctl.d/90-azl-shell.conf to keep it")
        }
        if restrict {
            let progs = programs.isEmpty ? ["/usr/bin/azl-shell", "/usr/libexec/azl-shell/azl-shell-sandbox"] : programs
            let profiles = progs.map { "profile \(($0 as NSString).lastPathComponent) \($0) flags=(unconfined) { userns, }" }
            return Check("user-namespaces", .failed, what + " (AppArmor restricts unprivileged user namespaces: kernel.apparmor_restrict_unprivileged_userns is 1)",
                         fix: "allow azl-shell with an AppArmor profile: put `abi <abi/4.0>, include <tunables/global> "
                            + profiles.joined(separator: " ") + "` in /etc/apparmor.d/azl-shell and run sudo apparmor_parser -r /etc/apparmor.d/azl-shell"
                            + " (or, for every program: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)")
        }
        return Check("user-namespaces", .failed, what,
                     fix: "a kernel with CONFIG_USER_NS, and no container or seccomp policy around this shell that denies unshare(CLONE_NEWUSER)")
    }

    // MARK: subordinate ids and the helpers

    /// The first line of FILE for NAME or UID (as shadow's newuidmap reads it).
    static func range(in text: String?, name: String, uid: UInt32) -> (start: UInt64, count: UInt64)? {
        for line in (text ?? "").split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, f[0] == name || f[0] == String(uid), let s = UInt64(f[1]), let c = UInt64(f[2]) else { continue }
            return (s, c)
        }
        return nil
    }

    /// A start above every range FILE gives anyone (the usual 100000 when it is empty).
    static func freeStart(_ text: String?) -> UInt64 {
        var end: UInt64 = 100000
        for line in (text ?? "").split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            if f.count == 3, let s = UInt64(f[1]), let c = UInt64(f[2]) { end = max(end, s + c) }
        }
        return end
    }

    static func subordinateIDs(_ host: HostFacts, subuid: String, subgid: String) -> [Check] {
        let want: UInt64 = 65536
        return [("subuid", subuid, "uids"), ("subgid", subgid, "gids")].map { id, file, kind in
            let text = host.read(file)
            let start = freeStart(text)
            let fix = "sudo usermod --add-sub\(kind) \(start)-\(start + want - 1) \(host.userName)"
            guard let r = range(in: text, name: host.userName, uid: host.uid) else {
                return Check(id, .warning, "\(file) gives \(host.userName) no range: runs map only your own \(kind.dropLast()) (chown to other ids fails)", fix: fix)
            }
            if r.count < want {
                return Check(id, .warning, "\(file) gives \(host.userName) \(r.count) \(kind), fewer than the \(want) a distro's users and groups need", fix: fix)
            }
            return Check(id, .ok, "\(file): \(host.userName) has \(r.count) \(kind) from \(r.start)")
        }
    }

    static func idMapHelpers(_ host: HostFacts, directories: [String]) -> [Check] {
        [("newuidmap", "cap_setuid"), ("newgidmap", "cap_setgid")].map { name, cap in
            guard let path = directories.map({ $0 + "/" + name }).first(where: { host.status($0) != nil }) else {
                return Check(name, .warning, "\(name) is not installed: runs map only your own ids",
                             fix: "sudo apt-get install uidmap (Debian, Ubuntu) or sudo dnf install shadow-utils (Fedora, Azure Linux)")
            }
            let st = host.status(path)!
            if st.uid == 0 && st.mode & UInt32(S_ISUID) != 0 { return Check(name, .ok, "\(path) is setuid root") }
            if host.hasFileCapabilities(path) { return Check(name, .ok, "\(path) has file capabilities") }
            return Check(name, .failed, "\(path) is neither setuid root nor has file capabilities: it cannot write id maps",
                         fix: "sudo chown root \(path) && sudo chmod u+s \(path) (or sudo setcap \(cap)+ep \(path))")
        }
    }

    // MARK: kernel features

    static func overlay(_ host: HostFacts, store: String, usernsWorks: Bool) -> Check {
        guard usernsWorks else { return Check("overlay", .failed, "overlayfs not tried: no user namespace", fix: "fix user-namespaces first") }
        let e = host.probeOverlay(near: store)
        if e == 0 { return Check("overlay", .ok, "overlayfs with userxattr mounts on the store's filesystem (\(store))") }
        return Check("overlay", .failed, "overlayfs with userxattr does not mount on the store's filesystem (\(store)): \(reason(e))",
                     fix: "Linux 5.11 or later with overlayfs, and a store on a local filesystem with user xattrs (ext4, xfs, btrfs, tmpfs): point --root or AZL_SHELL_ROOT at one")
    }

    static func mountAPI(_ host: HostFacts, usernsWorks: Bool) -> Check {
        guard usernsWorks else { return Check("mount-api", .failed, "the mount API not tried: no user namespace", fix: "fix user-namespaces first") }
        return errnoCheck("mount-api", host.probeMountAPI(), ok: "fsopen, fsmount, mount_setattr and open_tree work",
                          fix: "Linux 5.12 or later")
    }

    static func binfmt(_ host: HostFacts, usernsWorks: Bool) -> [Check] {
        let e = usernsWorks ? host.probeBinfmtInUserNamespace() : EPERM
        let qemu = host.qemuInterpreters()
        return [
            Check("binfmt-userns", .info, e == 0 ? "binfmt_misc mounts in a user namespace (for cross-arch runs, not built yet)"
                  : "binfmt_misc does not mount in a user namespace (\(reason(e)); Linux 6.7 or later): cross-arch runs, not built yet, will need it"),
            Check("qemu", .info, qemu.isEmpty ? "no qemu-*-static interpreters (qemu-user-static; for cross-arch runs, not built yet)"
                  : "interpreters: " + qemu.joined(separator: " ")),
        ]
    }

    static func keyring(_ host: HostFacts) -> Check {
        let e = host.probeKeyring()
        if e == 0 { return Check("keyring", .ok, "the user keyring holds the key that authenticates the caches") }
        return Check("keyring", .warning, "no user keyring (\(reason(e))): nothing is cached between runs (plans, compiled filters, kept user namespaces), so runs are slower",
                     fix: "allow keyctl and add_key in the seccomp policy of the container around this shell")
    }

    static func freeSpace(_ host: HostFacts, store: String) -> Check {
        guard let free = host.freeBytes(store) else { return Check("free-space", .warning, "cannot read the free space of \(store)") }
        let mib = free >> 20
        let fix = "free disk space, or point --root or AZL_SHELL_ROOT at a larger filesystem"
        if mib < 256 { return Check("free-space", .failed, "\(mib) MiB free for the store (\(store)): too little to unpack an image", fix: fix) }
        if mib < 2048 { return Check("free-space", .warning, "\(mib) MiB free for the store (\(store)): a few images at most", fix: fix) }
        return Check("free-space", .ok, "\(mib / 1024) GiB free for the store (\(store))")
    }

    // MARK: ownership

    /// The store and cache must be the user's, and writable by nobody else: runs trust what is in them.
    static func ownership(_ host: HostFacts, _ paths: Paths) -> [Check] {
        [("store-owner", paths.root), ("cache-owner", paths.cache)].map { id, dir in
            guard let st = host.status(dir) else { return Check(id, .ok, "\(dir) is not created yet") }
            if st.mode & UInt32(S_IFMT) != UInt32(S_IFDIR) {
                return Check(id, .failed, "\(dir) is not a folder", fix: "remove it; the next run makes the folder")
            }
            if st.uid != host.uid {
                return Check(id, .failed, "\(dir) belongs to uid \(st.uid), not to \(host.userName)",
                             fix: "sudo chown -R \(host.userName) \(dir)")
            }
            if st.mode & 0o022 != 0 {
                return Check(id, .failed, "\(dir) is writable by others (mode \(String(st.mode & 0o7777, radix: 8)))",
                             fix: "chmod go-w \(dir)")
            }
            return Check(id, .ok, "\(dir) is yours, writable only by you")
        }
    }
}
