import Core
#if canImport(Glibc)
import Glibc
#endif

/// `PlanBuilder.build()`'s parts, in the order it calls them: which state folders to guard,
/// who the command runs as, its environment, the machine's layout, the user's binds, and the
/// working directory.
extension PlanBuilder {
    /// The user's state folders, resolved and existing (one that appears later makes a replayed
    /// plan miss: the plan cache depends on each path), each once; and every symlink on the
    /// way to one.
    func stateGuards(_ r: RunRequest) -> [SandboxPlan.StateGuard] {
        var guards: [SandboxPlan.StateGuard] = []
        func add(_ path: String, _ kind: SandboxPlan.StateGuard.Kind) {
            if let i = guards.firstIndex(where: { $0.path == path }) {
                if kind == .hide { guards[i].kind = .hide }
            } else {
                guards.append(.init(path: path, kind: kind))
            }
        }
        for f in r.stateFolders {
            let path = resolveHostPath(normalize(f.path))
            if hostPathExists(path) { add(path, f.hide ? .hide : .ro) }
        }
        for f in r.stateFolders {
            for link in symlinksOnTheWay(normalize(f.path)) { add(link, .pin) }
        }
        return guards
    }

    struct Identity {
        var uidMap: SandboxPlan.IDMap, gidMap: SandboxPlan.IDMap
        var uid: UInt32 = 0, gid: UInt32 = 0
        var home = "/root"
        var keepID: Bool
        /// keep-id's /etc/passwd and /etc/group with the user in them.
        var passwdFiles: [SandboxPlan.Mount] = []
    }

    /// The id maps and the ids, home and files of the user the command runs as.
    mutating func identity(_ r: RunRequest) throws -> Identity {
        let keepID = r.user == "keep-id"
        let (uidMap, gidMap) = idMaps(keepID: keepID)
        var id = Identity(uidMap: uidMap, gidMap: gidMap, keepID: keepID)
        if keepID {
            id.uid = host.uid; id.gid = host.gid; id.home = host.home
            id.passwdFiles = keepIDFiles()
        } else if let spec = r.user ?? r.imageUser, !spec.isEmpty, spec != "root" {
            (id.uid, id.gid, id.home) = try resolveUser(spec)
            guard mapped(id.uid, uidMap), mapped(id.gid, gidMap) else {
                throw AZLError(.usage, "user \(spec) (uid \(id.uid), gid \(id.gid)) does not exist in the sandbox: only the mapped ids do",
                               hint: "give your user a range in /etc/subuid and /etc/subgid (and install newuidmap), or use --user root or keep-id")
            }
        }

        return id
    }

    /// Clean defaults, then the image's, then --env.
    func environment(_ r: RunRequest, home: String) throws -> [String] {
        var env: [(String, String)] = []
        func set(_ k: String, _ v: String) {
            if let i = env.firstIndex(where: { $0.0 == k }) { env[i].1 = v } else { env.append((k, v)) }
        }
        set("PATH", PlanBuilder.defaultPath)
        set("HOME", home)
        if let term = host.environment["TERM"], !term.isEmpty { set("TERM", term) }
        set("LANG", host.environment["LANG"].flatMap { $0.isEmpty ? nil : $0 } ?? "C.UTF-8")
        // Which userland a shell is in, for prompts and tools (shell-profiles/README.md).
        set("container", "azl-shell")
        set("AZL_SHELL_IMAGE", r.imageReference ?? r.imageName)
        set("ENV", ShellProfile.path)
        set("debian_chroot", "azl-shell " + (r.imageReference ?? r.imageName))
        for kv in r.imageEnv {
            guard let eq = kv.firstIndex(of: "="), eq != kv.startIndex else { continue }
            set(String(kv[..<eq]), String(kv[kv.index(after: eq)...]))
        }
        for kv in r.env {
            if let eq = kv.firstIndex(of: "=") {
                let k = String(kv[..<eq])
                guard !k.isEmpty else { throw AZLError(.usage, "--env \(kv): empty variable name") }
                set(k, String(kv[kv.index(after: eq)...]))
            } else if let v = host.environment[kv] {
                set(kv, v)
            }
        }

        return env.map { $0.0 + "=" + $0.1 }
    }

    /// The machine: /proc (with the kernel profile's files), /sys, /dev, /tmp, /run, the host's
    /// resolver files, keep-id's passwd, the prompt marker.
    func layout(_ r: RunRequest, _ id: Identity) -> [SandboxPlan.Mount] {
        var mounts: [SandboxPlan.Mount] = [.proc(target: "/proc")]
        // The kernel profile's release in the files that show it, as uname(2) does.
        if let k = r.kernel, let u = k.uts, !k.seccomp.isEmpty {
            mounts += [
                .readOnlyFile(target: "/proc/sys/kernel/osrelease", contents: u.release + "\n", mode: 0o444),
                .readOnlyFile(target: "/proc/version", contents: u.procVersion, mode: 0o444),
                .readOnlyFile(target: "/proc/sys/kernel/version", contents: u.version + "\n", mode: 0o444),
            ]
        }
        mounts += [
            .bind(source: "/sys", target: "/sys", flags: [.recursive, .readOnly, .nosuid, .nodev, .noexec]),
            .tmpfs(target: "/dev", mode: 0o755, options: "", flags: [.nosuid, .noexec]),
        ]
        for d in ["null", "zero", "full", "random", "urandom", "tty"] {
            // No nosuid/noexec: they mean nothing on a device node (only a regular file is
            // executed), and each costs a mount_setattr() on every run.
            mounts.append(.bind(source: "/dev/" + d, target: "/dev/" + d, flags: []))
        }
        mounts += [
            .devpts(target: "/dev/pts"),
            .symlink(target: "/dev/ptmx", pointsTo: "pts/ptmx"),
            .tmpfs(target: "/dev/shm", mode: 0o1777, options: "", flags: [.nosuid, .nodev]),
            .symlink(target: "/dev/fd", pointsTo: "/proc/self/fd"),
            .symlink(target: "/dev/stdin", pointsTo: "/proc/self/fd/0"),
            .symlink(target: "/dev/stdout", pointsTo: "/proc/self/fd/1"),
            .symlink(target: "/dev/stderr", pointsTo: "/proc/self/fd/2"),
            .tmpfs(target: "/tmp", mode: 0o1777, options: "", flags: [.nosuid, .nodev]),
            .tmpfs(target: "/run", mode: 0o755, options: "", flags: [.nosuid, .nodev]),
        ]
        if let k = r.kernel, k.uts != nil, !k.seccomp.isEmpty {
            // The files bound over /proc make that procfs "not fully visible" to the kernel,
            // which then refuses a fresh procfs in a nested user namespace (mount_too_revealing:
            // `unshare -rpf --mount-proc`, bubblewrap's --proc, rootless podman). A spare procfs
            // without anything on it keeps those working; it is covered by an empty read-only
            // tmpfs, so no path reaches it (and mounts copied into a nested namespace are locked).
            // Its mountpoint is a directory of /dev's tmpfs.
            mounts += [
                .proc(target: PlanBuilder.spareProc + "/proc"),
                .tmpfs(target: PlanBuilder.spareProc, mode: 0o500, options: "", flags: [.readOnly, .nosuid, .nodev, .noexec]),
            ]
        }
        if r.readOnly {
            mounts.append(.tmpfs(target: "/var/tmp", mode: 0o1777, options: "", flags: [.nosuid, .nodev]))
        }
        if host.hasResolvConf {
            mounts.append(.bind(source: resolveHostPath("/etc/resolv.conf"), target: "/etc/resolv.conf", flags: [.readOnly, .optional]))
        }
        if host.hasHosts {
            mounts.append(.bind(source: resolveHostPath("/etc/hosts"), target: "/etc/hosts", flags: [.readOnly, .optional]))
        }
        mounts += id.passwdFiles
        // The prompt marker and $container for interactive shells (shell-profiles/).
        mounts.append(.file(target: ShellProfile.path, contents: ShellProfile.text, mode: 0o644))
        if id.keepID { mounts.append(.mkdir(target: id.home, mode: 0o755)) }

        return mounts
    }

    struct UserBinds {
        var mounts: [SandboxPlan.Mount]
        var targets: Set<String>
        /// The current directory, and whether it is bound at its own path.
        var cwd: String
        var bindsCwd: Bool
    }

    /// The working directory and --volume binds, each guarded: the runtime hides the state
    /// folders it shows right after binding it (before any deeper bind, so a volume inside it
    /// is not hidden by them).
    mutating func userBinds(_ r: RunRequest, guards: [SandboxPlan.StateGuard]) throws -> UserBinds {
        let cwd = normalize(host.cwd)
        let resolvedCwd = resolveHostPath(cwd)
        var bindCwd = r.bindWorkingDirectory && PlanBuilder.canBindWorkingDirectory(resolvedCwd, rootfs: r.rootfs)
        if !r.bindWorkingDirectory {
        } else if bindCwd, let g = guards.first(where: { $0.kind == .hide && (resolvedCwd == $0.path || resolvedCwd.hasPrefix($0.path + "/")) }) {
            bindCwd = false
            notes.append("not binding the current directory \(cwd): it is inside azl-shell's own state (\(g.path))")
        } else if !bindCwd {
            notes.append("not binding the current directory \(cwd) (a system directory or the image itself)")
        }
        var binds: [(target: String, source: String, readOnly: Bool)] = []
        if bindCwd { binds.append((cwd, resolvedCwd, false)) }
        let confined = r.confinedVolumes
        let confinedRoot = confined.map { resolveHostPath(normalize($0.root)) }
        let all = (confined?.volumes ?? []) + r.volumes
        let parsed = try all.map { v -> (src: String, dst: String, ro: Bool, source: String) in
            let (src, dst, ro) = try parseVolume(v)
            return (src, dst, ro, resolveHostPath(src))
        }
        // What commands in this sandbox can write: a symlink there must not choose what a later
        // run binds (`ln -s ~ out` in the working directory, then `--volume ./out:/out`, or a
        // folder of one volume swapped for a link while another volume names it).
        let writable = (bindCwd ? [resolvedCwd] : []) + parsed.filter { !$0.ro }.map(\.source)
        for (i, (v, p)) in zip(all, parsed).enumerated() {
            let (src, dst, ro, source) = p
            // Decided on the resolved path that goes into the plan, which the C part opens
            // without following a symlink: a swap after this cannot move the bind out.
            if let confined, let root = confinedRoot, i < confined.volumes.count, source != root, !source.hasPrefix(root + "/"),
               confined.approved[v] != source {
                let was = confined.approved[v].map { " (it bound \($0) when it was trusted)" } ?? ""
                throw AZLError(.untrusted, "\(confined.file): volume '\(v)' binds \(source)\(was), outside the project folder \(root); a command in a sandbox can write that file and folder, so it is not believed for that",
                               hint: "if you wrote it, run `azl-shell trust` in the project (or give the volume with --volume)")
            }
            if let g = guards.first(where: { $0.kind == .hide && (source == $0.path || source.hasPrefix($0.path + "/")) }) {
                throw AZLError(.usage, "--volume \(v): \(source) is inside azl-shell's own state (\(g.path))",
                               hint: "bind another folder; the store and caches are never shown to a sandbox")
            }
            func inside(_ path: String, _ area: String) -> Bool { path == area || path.hasPrefix(area == "/" ? "/" : area + "/") }
            for link in symlinksOnTheWay(src) {
                let at = resolveHostPath(parentOf(link))
                if let area = writable.first(where: { inside(at, $0) }), !inside(source, area) {
                    let what = area == resolvedCwd && bindCwd ? "the working directory" : "a folder this sandbox can write (\(area))"
                    throw AZLError(.usage, "--volume \(v): \(link) is a symlink inside \(what) (to \(source)), which a command in the sandbox can write",
                                   hint: "name \(source) itself if that is what to bind")
                }
            }
            binds.append((dst, source, ro))
        }
        // Parents before children: a volume inside the working directory lands on top of it.
        binds = binds.enumerated().sorted { a, b in
            let da = depth(a.element.target), db = depth(b.element.target)
            return da != db ? da < db : a.offset < b.offset
        }.map(\.element)
        var mounts: [SandboxPlan.Mount] = []
        for b in binds {
            mounts.append(.bind(source: b.source, target: b.target, flags: b.readOnly ? [.recursive, .readOnly, .guarded] : [.recursive, .guarded]))
        }

        return UserBinds(mounts: mounts, targets: Set(binds.map(\.target)), cwd: cwd, bindsCwd: bindCwd)
    }

    /// --workdir, else the current directory where it is bound, else the image's, else home or /.
    func workingDirectory(_ r: RunRequest, _ id: Identity, _ b: UserBinds) throws -> String {
        let workdir: String
        if let w = r.workdir {
            guard w.hasPrefix("/") else { throw AZLError(.usage, "--workdir \(w): must be an absolute path inside the image") }
            workdir = normalize(w)
        } else if b.bindsCwd {
            workdir = b.cwd
        } else if let w = r.imageWorkingDir, w.hasPrefix("/") {
            workdir = normalize(w)
        } else {
            workdir = id.keepID ? id.home : "/"
        }
        return workdir
    }
}
