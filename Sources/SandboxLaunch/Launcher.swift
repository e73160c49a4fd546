import CLinux
import SandboxRuntime
#if canImport(Glibc)
import Glibc
#endif

/// A failure to hand a plan over. Plain (no Foundation, as the whole module): azl-shell-cli
/// turns it into an `AZLError`.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var hint: String?
    /// The errno behind it, 0 if none.
    public var code: Int32

    public init(_ message: String, hint: String? = nil, code: Int32 = 0) {
        self.message = message; self.hint = hint; self.code = code
    }

    static func errno(_ what: String, _ path: String) -> LaunchError {
        let e = Glibc.errno
        return LaunchError("\(what) \(path): \(String(cString: strerror(e)))", code: e)
    }

    public var description: String {
        var line = "azl-shell: \(message)"
        if let hint, !hint.isEmpty { line += " (\(hint))" }
        return line
    }
}

/// Hands a plan to the C part (SandboxRuntime): in this process when it has a single thread,
/// else through a memfd and an execve() of `azl-shell-sandbox --plan-fd N`. Either way the
/// supervisor keeps our pid, so it is what the user's shell waits for and signals; no second
/// Swift process, nothing Swift after fork.
public enum Launcher {
    /// The folder of the running binary (azl-shell, azl-shell-cli and azl-shell-sandbox live
    /// side by side).
    public static func selfDirectory() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return nil }
        buf[n] = 0
        var exe = String(cString: buf)
        while let last = exe.last, last != "/" { exe.removeLast() }
        if exe.count > 1 { exe.removeLast() }
        return exe
    }

    /// A sibling program of ours: beside the running binary, or in ../libexec/azl-shell/.
    public static func sibling(_ name: String) throws -> String {
        guard let dir = selfDirectory() else { throw LaunchError.errno("cannot find my own binary", "/proc/self/exe") }
        let candidates = [dir + "/" + name, dir + "/../libexec/azl-shell/" + name]
        if let found = candidates.first(where: { access($0, X_OK) == 0 }) { return found }
        throw LaunchError("cannot find \(name) beside \(dir)/azl-shell",
                          hint: "install \(name) in the same directory as azl-shell")
    }

    public static func helperPath() throws -> String { try sibling("azl-shell-sandbox") }

    /// Write all of `bytes` to `fd` (false with errno set; a short write without an error is
    /// ENOSPC). Core's FS.writeAll for this module, which stays without Foundation.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { if n == 0 { errno = ENOSPC }; return false }
            off += n
        }
        return true
    }

    /// A memfd, or an unnamed O_TMPFILE file on kernels without one.
    static func planFile() -> Int32 {
        let fd = azl_memfd_create("azl-shell-plan", 0)
        if fd >= 0 { return fd }
        let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY
        for dir in ["/dev/shm", "/tmp"] {
            let fd = open(dir, oTmpfile | O_RDWR, 0o600)
            if fd >= 0 { return fd }
        }
        return -1
    }

    /// Take a shared flock on `path` on an fd that is *not* close-on-exec: the helper inherits
    /// it and holds it while the sandbox runs, so `rmi`/`prune` leave the tree alone until then.
    public static func holdShared(_ path: String, closeOnExec: Bool = false) throws -> Int32 {
        // Close-on-exec for a spawn: other threads may be spawning targets of a matrix meanwhile.
        var l = open(path, O_RDONLY | O_NONBLOCK | (closeOnExec ? O_CLOEXEC : 0))   // a fifo planted there must not hang us
        if l < 0 { throw LaunchError.errno("cannot lock", path) }
        // Never 0-2 (a caller started us with one closed): the command would get the store's lock
        // as its stdio, and could unlock it under the running sandbox.
        if l < 3 {
            let high = fcntl(l, closeOnExec ? F_DUPFD_CLOEXEC : F_DUPFD, 3)
            close(l)
            if high < 0 { throw LaunchError.errno("cannot lock", path) }
            l = high
        }
        while flock(l, LOCK_SH) != 0 {
            if errno == EINTR { continue }
            let e = LaunchError.errno("cannot lock", path)
            close(l)
            throw e
        }
        return l
    }

    /// Replace this process with the helper carrying out the encoded plan `bytes`. The locks
    /// the caller holds on fds without close-on-exec go with it.
    /// Carry the plan out in this process, which must have a single thread: returns only when
    /// it cannot (threads, or a plan this build cannot read), having done nothing.
    public static func runInProcess(encodedPlan bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { azl_sandbox_run_in_process($0.baseAddress, $0.count) }
    }

    /// Start the helper carrying out `bytes` as a child with the given stdio, holding shared
    /// locks on `keepLocked` until the sandbox ends; the caller waits for the pid. Safe with
    /// threads: every fd made here is close-on-exec and reaches only this child (dup2 onto
    /// itself in the spawn's file actions clears the flag there alone), so concurrent spawns
    /// (a matrix) never inherit each other's plan or locks.
    public static func spawn(encodedPlan bytes: [UInt8], stdin: Int32 = 0, stdout: Int32 = 1, stderr: Int32 = 2,
                             keepLocked: [String] = []) throws -> pid_t {
        let helper = try helperPath()
        let fd = azl_memfd_create("azl-shell-plan", 1 /* MFD_CLOEXEC */)
        guard fd >= 0 else { throw LaunchError.errno("cannot create the plan memfd", "memfd") }
        var owned = [fd]
        defer { owned.forEach { close($0) } }
        guard writeAll(fd, bytes) else { throw LaunchError.errno("cannot write the plan", "memfd") }
        for path in keepLocked {
            let l = try holdShared(path, closeOnExec: true)
            owned.append(l)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // Above 2 first: a caller's stdio fd number may be one of ours.
        for f in owned { posix_spawn_file_actions_adddup2(&actions, f, f) }
        for (from, to) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] { posix_spawn_file_actions_adddup2(&actions, from, to) }
        let argv: [String] = ["azl-shell-sandbox", "--plan-fd", String(fd)]
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var cenv: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, helper, &actions, nil, &cargs, &cenv)
        guard rc == 0 else { errno = rc; throw LaunchError.errno("cannot start", helper) }
        return pid
    }

    /// The exit status of a spawned helper as `run` gives it: the command's own, 128+N for a
    /// signal.
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 125 }
        }
        return exitStatus(waitStatus: status)
    }

    /// A wait status as `run` gives it: the exit status, 128+N for signal N.
    public static func exitStatus(waitStatus status: Int32) -> Int32 {
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    public static func exec(encodedPlan bytes: [UInt8]) throws -> Never {
        // A process with one thread carries the plan out itself and saves an exec; one with
        // threads gets -1 back and execs the helper.
        runInProcess(encodedPlan: bytes)
        let helper = try helperPath()
        // Not close-on-exec: the helper reads it, then closes it before anything runs inside.
        let fd = planFile()
        guard fd >= 0 else { throw LaunchError.errno("cannot create the plan memfd", "memfd") }
        guard writeAll(fd, bytes) else { throw LaunchError.errno("cannot write the plan", "memfd") }
        fflush(stdout)
        fflush(stderr)
        let argv: [String] = ["azl-shell-sandbox", "--plan-fd", String(fd)]
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = [nil]
        execve(helper, &cargs, &cenv)
        throw LaunchError.errno("cannot start", helper)
    }
}
