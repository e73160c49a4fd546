import Core
import Foundation

/// The outcome of running a command: status as a shell reports it (128+N for signal N).
public struct RunResult: CustomStringConvertible, Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var description: String { "status \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
}

/// Runs the built azl-shell binaries as an ordinary user.
///
/// Under CI the tests run as root (SwiftPM resolves from a root-owned mirror), so the rootless
/// parts are started as the unprivileged test user (`AZL_TEST_USER`, default `azltest`) with
/// setpriv, from a temp folder that user can read: the clone itself may sit where it cannot enter.
/// Run by a non-root developer, the binaries are simply run as that developer.
public final class Rootless: @unchecked Sendable {
    public let uid: uid_t
    public let gid: gid_t
    public let userName: String
    /// A private folder owned by the user: binaries, HOME, and scratch space live here.
    public let base: String
    public let binDir: String
    public let home: String
    let viaSetpriv: Bool

    /// Why rootless tests cannot run here, or nil if they can.
    public static func unavailableReason() -> String? {
        if geteuid() != 0 { return nil }
        let name = ProcessInfo.processInfo.environment["AZL_TEST_USER"] ?? "azltest"
        if getpwnam(name) == nil {
            return "running as root and the unprivileged test user '\(name)' does not exist: create it (useradd -m \(name)) or run as a non-root user; .ci/run does this"
        }
        return nil
    }

    public init() throws {
        if geteuid() == 0 {
            let name = ProcessInfo.processInfo.environment["AZL_TEST_USER"] ?? "azltest"
            guard let pw = getpwnam(name) else {
                throw AZLError(.usage, Rootless.unavailableReason() ?? "no test user")
            }
            uid = pw.pointee.pw_uid
            gid = pw.pointee.pw_gid
            userName = name
            viaSetpriv = true
        } else {
            uid = getuid()
            gid = getgid()
            userName = String(cString: getpwuid(getuid())!.pointee.pw_name)
            viaSetpriv = false
        }
        var template = Array("/tmp/azl-test-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw AZLError.errno(errno, "mkdtemp", path: "/tmp") }
        base = String(cString: p)
        binDir = base + "/bin"
        home = base + "/home"
        try FS.mkdirs(binDir)
        try FS.mkdirs(home)
        // Copy the built products (binaries and resource bundles) where the user can read them.
        let built = Rootless.buildProductsDirectory()
        let products = ((try? FileManager.default.contentsOfDirectory(atPath: built)) ?? []).filter {
            $0 == "azl-shell" || ($0.hasPrefix("azl-shell-") && !$0.contains(".")) || $0.hasSuffix(".resources")
        }
        if !products.isEmpty { try Subprocess.copyForExec(products.map { built + "/" + $0 }, into: binDir) }
        guard FS.exists(binDir + "/azl-shell") else {
            throw AZLError(.notFound, "built azl-shell not found in \(built)", hint: "run swift build first")
        }
        if viaSetpriv {
            chownTree(base)
        }
        chmod(base, 0o755)
        Rootless.removeAtExit(base)
    }

    /// Folders left when the process exits are removed then: the fixtures a suite shares live in
    /// statics, which are never deinitialised, and each holds stores of unpacked images (~0.5 GB).
    private static let leftLock = NSLock()
    nonisolated(unsafe) private static var left: Set<String> = []
    nonisolated(unsafe) private static var atExitInstalled = false

    private static func removeAtExit(_ base: String) {
        leftLock.lock()
        defer { leftLock.unlock() }
        left.insert(base)
        if !atExitInstalled {
            atExitInstalled = true
            atexit {
                Rootless.leftLock.lock()
                let all = Rootless.left
                Rootless.left = []
                Rootless.leftLock.unlock()
                for b in all { try? FS.removeTree(b) }
            }
        }
    }

    private static func removed(_ base: String) {
        leftLock.lock()
        left.remove(base)
        leftLock.unlock()
    }

    /// The folder holding the build products: beside the test bundle.
    public static func buildProductsDirectory() -> String {
        if let d = ProcessInfo.processInfo.environment["AZL_SHELL_BUILD_DIR"] { return d }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        // swift-testing on Linux runs `<name>PackageTests.xctest` from the products folder.
        while !dir.isEmpty && dir != "/" && !FS.exists(dir + "/azl-shell") {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir
    }

    public var azlShell: String { binDir + "/azl-shell" }

    /// Make a fresh folder owned by the test user.
    public func makeDirectory(_ name: String) throws -> String {
        let p = base + "/" + name + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try FS.mkdirs(p)
        if viaSetpriv { chown(p, uid, gid) }
        return p
    }

    public func chownTree(_ path: String) {
        guard viaSetpriv else { return }
        lchown(path, uid, gid)
        if let items = FileManager.default.enumerator(atPath: path) {
            for case let rel as String in items { lchown(path + "/" + rel, uid, gid) }
        }
    }

    /// The environment a user's shell would have: nothing of the test runner's leaks in.
    public func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env: [String: String] = [
            "HOME": home,
            "USER": userName,
            "LOGNAME": userName,
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Run `argv` as the user. `argv[0]` is looked up as given (use `azlShell` for ours).
    public func run(_ argv: [String], stdin: Data? = nil, env extra: [String: String] = [:],
                    cwd: String? = nil, timeout: TimeInterval = 300) -> RunResult {
        var full = argv
        if viaSetpriv {
            full = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--init-groups", "--"] + argv
        }
        return Subprocess.run(full, stdin: stdin, env: environment(extra), cwd: cwd ?? base, timeout: timeout)
    }

    /// Run azl-shell with `args` as the user, against `root` as its state directory.
    public func azl(_ args: [String], root: String? = nil, stdin: Data? = nil, env: [String: String] = [:],
                    cwd: String? = nil) -> RunResult {
        var e = env
        if let root { e["AZL_SHELL_ROOT"] = root }
        return run([azlShell] + args, stdin: stdin, env: e, cwd: cwd)
    }

    public func cleanup() {
        // The user's trees may hold read-only directories; FS.removeTree copes as root or owner.
        try? FS.removeTree(base)
        Rootless.removed(base)
    }

    deinit { cleanup() }
}

/// Spawning with captured output, for tests and benchmarks.
public enum Subprocess {
    /// Copies files that will be executed, by `cp` in a child process. Tests run in parallel
    /// threads that spawn processes all the time: a copy written by this process holds a writable
    /// fd that a concurrently forked child inherits until its exec, and an exec of the copy in
    /// that window fails with ETXTBSY ("Text file busy"). Only `cp` ever has the copy open for writing.
    public static func copyForExec(_ sources: [String], into folder: String) throws {
        let r = run(["/bin/cp", "-R", "--"] + sources + [folder + "/"])
        guard r.status == 0 else {
            throw AZLError(.io, "cannot copy \(sources.joined(separator: " ")) into \(folder): \(r.stderr)")
        }
    }

    public static func run(_ argv: [String], stdin: Data? = nil, env: [String: String]? = nil,
                           cwd: String? = nil, timeout: TimeInterval = 300) -> RunResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        if let env { p.environment = env }
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let outPipe = Pipe(), errPipe = Pipe()
        p.standardOutput = outPipe
        p.standardError = errPipe
        let inPipe = Pipe()
        p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
        do { try p.run() } catch {
            return RunResult(status: 127, stdout: "", stderr: "cannot start \(argv[0]): \(error)")
        }
        if let stdin {
            DispatchQueue.global().async {
                try? inPipe.fileHandleForWriting.write(contentsOf: stdin)
                try? inPipe.fileHandleForWriting.close()
            }
        }
        var out = Data(), err = Data()
        let g = DispatchGroup()
        g.enter(); DispatchQueue.global().async { out = outPipe.fileHandleForReading.readDataToEndOfFile(); g.leave() }
        g.enter(); DispatchQueue.global().async { err = errPipe.fileHandleForReading.readDataToEndOfFile(); g.leave() }
        if g.wait(timeout: .now() + timeout) == .timedOut {
            p.terminate()
            kill(p.processIdentifier, SIGKILL)
        }
        p.waitUntilExit()
        g.wait()
        let status: Int32 = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return RunResult(status: status, stdout: String(decoding: out, as: UTF8.self),
                         stderr: String(decoding: err, as: UTF8.self))
    }
}

/// The real distro tarballs in ../shared/rootfs, pinned by sha256 (SOURCES.md there).
public enum RealRootfs: String, CaseIterable, Sendable {
    case alpineX86 = "alpine-minirootfs-3.20.3-x86_64.tar.gz"
    case alpineArm = "alpine-minirootfs-3.20.3-aarch64.tar.gz"
    case almaArm = "almalinux-9-docker-aarch64-micro.tar.xz"
    case debian = "debian-12-bookworm-minbase-slim-amd64.tar.xz"

    public var sha256: String {
        switch self {
        case .alpineX86: return "d4e6fd67dcf75e40c451560ac7265166c2b72a0f38ddc9aae756a7de3d1efa0c"
        case .alpineArm: return "041fa34a81788242df9e78fa69b97ab45b8ec47ddbf88864755610414a7bf3de"
        case .almaArm: return "3985fda13201f635fc207d5128fe2140af66ac6c2fc0a0b86ce0249a4730259d"
        case .debian: return "d79df7473d15fcffb5d9af0a87a8025ba267adcc1096bbc068b1a9f12bc2569f"
        }
    }

    /// Runs natively on this machine (same architecture).
    public var native: Bool {
        #if arch(x86_64)
        return self == .alpineX86 || self == .debian
        #else
        return self == .alpineArm || self == .almaArm
        #endif
    }

    public static var directory: String {
        if let d = ProcessInfo.processInfo.environment["AZL_SHARED_ROOTFS"] { return d }
        return (packageRoot as NSString).deletingLastPathComponent + "/shared/rootfs"
    }

    /// The package's root folder (Sources/TestSupport/X.swift, two levels up).
    public static var packageRoot: String {
        var dir = (#filePath as NSString).deletingLastPathComponent
        for _ in 0..<2 { dir = (dir as NSString).deletingLastPathComponent }
        return dir
    }

    public var path: String { RealRootfs.directory + "/" + rawValue }
}
