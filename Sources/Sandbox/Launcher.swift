import CLinux
import Core
#if canImport(Glibc)
import Glibc
#endif

/// Hands a plan to the C helper: the plan goes into a memfd, and this process execve()s
/// `azl-shell-sandbox --plan-fd N`. The helper keeps our pid, so it is the supervisor the
/// user's shell waits for and signals; no second Swift process, nothing Swift after fork.
public enum Launcher {
    /// The helper beside the running azl-shell binary (or in ../libexec/azl-shell/).
    public static func helperPath() throws -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { throw AZLError.errno(errno, "cannot find my own binary", path: "/proc/self/exe") }
        buf[n] = 0
        let exe = String(cString: buf)
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let candidates = [dir + "/azl-shell-sandbox", dir + "/../libexec/azl-shell/azl-shell-sandbox"]
        if let found = candidates.first(where: { access($0, X_OK) == 0 }) { return found }
        throw AZLError(.sandbox, "cannot find azl-shell-sandbox beside \(exe)",
                       hint: "install the azl-shell-sandbox helper in the same directory as azl-shell")
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

    /// Replace this process with the helper carrying out `plan`. `keepLocked` are lock files
    /// (held shared by the caller) to keep locked for as long as the sandbox runs: the helper
    /// inherits a shared flock on each, so `rmi`/`prune` wait for the command to finish.
    public static func exec(_ plan: SandboxPlan, keepLocked: [String] = []) throws -> Never {
        let helper = try helperPath()
        let bytes = plan.encoded()
        // Not close-on-exec: the helper reads it, then closes it before anything runs inside.
        let fd = planFile()
        guard fd >= 0 else { throw AZLError.errno(errno, "cannot create the plan memfd", path: "memfd") }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AZLError.errno(errno, "cannot write the plan", path: "memfd")
            }
            off += n
        }
        for path in keepLocked {
            let l = open(path, O_RDONLY)   // inherited by the helper on purpose
            if l < 0 || flock(l, LOCK_SH) != 0 { throw AZLError.errno(errno, "cannot lock", path: path) }
        }
        fflush(stdout)
        fflush(stderr)
        let argv: [String] = ["azl-shell-sandbox", "--plan-fd", String(fd)]
        var cargs = argv.map { strdup($0) } + [nil]
        var cenv: [UnsafeMutablePointer<CChar>?] = [nil]
        execve(helper, &cargs, &cenv)
        throw AZLError(.sandbox, "cannot start \(helper): \(String(cString: strerror(errno)))")
    }
}
