import SandboxLaunch
#if canImport(Glibc)
import Glibc
#endif

// The entry point users run. A warm `run` or `exec` never gets here: when the plan cache holds the plan
// of this very command line, the constructor of PlanReplay (C, before Swift's runtime starts)
// has carried it out already (PlanCache says what a hit means). Everything else, and every
// miss, goes to azl-shell-cli with the same arguments and environment. Kept small (Swift's
// core library and SandboxLaunch: no Foundation, no option parser, no HTTP stack).
do {
    let cli = try Launcher.sibling("azl-shell-cli")
    var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) } + [nil]
    execv(cli, &argv)
    fputs("azl-shell: cannot start \(cli): \(String(cString: strerror(errno)))\n", stderr)
} catch {
    fputs("\(error)\n", stderr)
}
exit(125)
