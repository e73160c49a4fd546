import SandboxLaunch
#if canImport(Glibc)
import Glibc
#endif

// The entry point users run. It is kept small (Swift's core library and this one module: no
// Foundation, no option parser, no HTTP stack), because a warm `run` is timed in milliseconds:
// when the plan cache holds the plan of this very command line (PlanCache says what that
// means), the sandbox helper is exec'd from here. Everything else, and every miss, goes to
// azl-shell-cli with the same arguments and environment.
let arguments = CommandLine.arguments

if arguments.count > 2, arguments[1] == "run",
   let cache = PlanCache.forThisProcess(arguments: arguments), let entry = cache.lookup() {
    // No lock file any more means the image is gone: a miss, and azl-shell-cli says so.
    let lock = entry.lockPath.isEmpty ? -1 : ((try? Launcher.holdShared(entry.lockPath)) ?? -2)
    // Checked under the lock: no `rmi` + `prune` can come in between any more.
    // Returns only when the plan cannot be carried out here (one this build cannot read):
    // then it is a miss like any other.
    if lock != -2 && entry.isCurrent() { Launcher.runInProcess(encodedPlan: entry.plan) }
    if lock >= 0 { close(lock) }
}

do {
    let cli = try Launcher.sibling("azl-shell-cli")
    var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    execv(cli, &argv)
    fputs("azl-shell: cannot start \(cli): \(String(cString: strerror(errno)))\n", stderr)
} catch {
    fputs("\(error)\n", stderr)
}
exit(125)
