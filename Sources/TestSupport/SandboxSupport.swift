import Core
import Foundation
#if canImport(Testing)
import Testing
#endif

/// Unpacked real root filesystems for sandbox tests, extracted once per test process by the
/// unprivileged user (so the trees are owned by the user, as the store's are), with `tar`.
public final class SandboxFixture: @unchecked Sendable {
    public let rootless: Rootless
    private var trees: [RealRootfs: String] = [:]
    private let lock = NSLock()

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedInstance: SandboxFixture?

    /// One fixture per process (the unpacked trees are reused by every test); removed at exit.
    public static func shared() throws -> SandboxFixture {
        sharedLock.lock()
        defer { sharedLock.unlock() }
        if let s = sharedInstance { return s }
        let s = SandboxFixture(rootless: try Rootless())
        sharedInstance = s   /* its folder goes at exit (Rootless) */
        return s
    }

    init(rootless: Rootless) { self.rootless = rootless }

    /// Why the sandbox tests cannot run here, or nil.
    public static func unavailableReason(_ r: RealRootfs? = nil) -> String? {
        if let reason = Rootless.unavailableReason() { return reason }
        if let r {
            if !r.native { return "\(r.rawValue) is not of this machine's architecture" }
            if !FileManager.default.fileExists(atPath: r.path) { return "\(r.path) is missing" }
        }
        return nil
    }

    #if canImport(Testing)   // a release build of the package builds this module too, without Testing
    /// Whether sandbox tests (on `r`, when given) can run here. When not, says why, prefixed
    /// with `what`: a tarball of another architecture is this machine's nature
    /// (`notApplicableHere`); anything else is missing (`unavailable`: a failure under CI).
    public static func available(_ r: RealRootfs? = nil, for what: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        if let r, !r.native {
            notApplicableHere("\(what): \(r.rawValue) is not of this machine's architecture")
            return false
        }
        if let reason = unavailableReason(r) {
            unavailable("\(what): \(reason)", sourceLocation: sourceLocation)
            return false
        }
        return true
    }
    #endif

    /// The unpacked tree of `r` (extracted on first use).
    public func rootfs(_ r: RealRootfs) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let t = trees[r] { return t }
        let dir = try rootless.makeDirectory("rootfs-" + String(r.rawValue.prefix(while: { $0 != "-" })))
        let res = rootless.run(["/bin/tar", "-xf", r.path, "-C", dir, "--exclude=./dev/*", "--no-same-owner"])
        guard res.status == 0 else { throw AZLError(.io, "cannot unpack \(r.rawValue): \(res)") }
        trees[r] = dir
        return dir
    }

    /// `azl-shell run --rootfs TREE ARGS...` as the user.
    public func run(_ r: RealRootfs, _ args: [String], env: [String: String] = [:], cwd: String? = nil,
                    timeout: TimeInterval = 120) throws -> RunResult {
        let tree = try rootfs(r)
        return rootless.run([rootless.azlShell, "run", "--rootfs", tree] + args, env: env, cwd: cwd, timeout: timeout)
    }
}

/// A fingerprint of a tree: every path with its type, mode, size and mtime (and symlink
/// target). Equal fingerprints mean nothing was added, removed or rewritten.
public func treeFingerprint(_ root: String) -> [String] {
    var out: [String] = []
    func walk(_ rel: String) {
        let p = root + rel
        var st = stat()
        guard lstat(p, &st) == 0 else { return }
        var line = "\(rel) \(String(st.st_mode, radix: 8)) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_uid)"
        if (st.st_mode & S_IFMT) == S_IFLNK, let t = try? FileManager.default.destinationOfSymbolicLink(atPath: p) {
            line += " -> " + t
        }
        out.append(line)
        if (st.st_mode & S_IFMT) == S_IFDIR, let names = try? FileManager.default.contentsOfDirectory(atPath: p) {
            for n in names.sorted() { walk(rel + "/" + n) }
        }
    }
    walk("")
    return out
}

/// A process whose stdout is read line by line while it runs: to act once it has said
/// it is ready (no sleeping), then signal it and collect its status.
public final class LiveProcess: @unchecked Sendable {
    public let process = Process()
    private let out = Pipe()
    private let err = Pipe()
    private var buffer = Data()

    public init(_ argv: [String], env: [String: String], cwd: String) throws {
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.environment = env
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// As the rootless user, like `Rootless.run`.
    public convenience init(rootless r: Rootless, _ argv: [String], env: [String: String] = [:], cwd: String? = nil) throws {
        var full = argv
        if geteuid() == 0 {
            full = ["/usr/bin/setpriv", "--reuid=\(r.uid)", "--regid=\(r.gid)", "--init-groups", "--"] + argv
        }
        try self.init(full, env: r.environment(env), cwd: cwd ?? r.base)
    }

    public var pid: pid_t { process.processIdentifier }

    /// Read stdout until a line equal to `line` arrives; false at EOF.
    public func waitForLine(_ line: String) -> Bool {
        let want = Data((line + "\n").utf8)
        while true {
            if buffer.range(of: want) != nil { return true }
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { return false }
            buffer.append(chunk)
        }
    }

    /// What stdout gave so far (as far as waitForLine read it).
    public var output: String { String(decoding: buffer, as: UTF8.self) }

    public func signal(_ sig: Int32) { kill(pid, sig) }

    /// A guard, not synchronisation: SIGKILL the process if it still runs after `seconds`, so a
    /// line that never comes ends `waitForLine` (at EOF) instead of hanging the test run.
    public func killAfter(_ seconds: Double) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [process] in
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    /// Wait for exit; the status as a shell reports it.
    public func wait() -> (status: Int32, stderr: String) {
        process.waitUntilExit()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        let s = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        return (s, String(decoding: e, as: UTF8.self))
    }
}

/// Host pids whose command line is exactly `argv`.
public func hostPids(withCommandLine argv: [String]) -> [pid_t] {
    let want = Data(argv.joined(separator: "\0").utf8) + Data([0])
    var pids: [pid_t] = []
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = pid_t(name), let h = FileHandle(forReadingAtPath: "/proc/\(name)/cmdline") else { continue }
        let d = (try? h.readToEnd()) ?? Data()
        try? h.close()
        if d == want { pids.append(pid) }
    }
    return pids
}

/// Whether `pid` still exists (a zombie counts as gone).
public func processAlive(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    guard let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}

/// The unprivileged user with real tarballs imported (by default the Alpine x86_64 one as
/// `alp:3.20`) into a store of its own (`state`): what the suites that run a stored image start from.
public final class StoredImageFixture: @unchecked Sendable {
    public let r: Rootless
    public let state: String

    /// STATEINHOME: the store where azl-shell puts it by default, in the user's home
    /// (~/.local/share/azl-shell), for what a sandbox that shows the home must not reach.
    public init(images: [(name: String, rootfs: RealRootfs)] = [("alp:3.20", .alpineX86)], stateInHome: Bool = false) throws {
        r = try Rootless()
        state = stateInHome ? r.home + "/.local/share/azl-shell" : r.base + "/state"
        for (name, rootfs) in images {
            let res = r.azl(["import", "--name", name, rootfs.path, "-q"], root: state)
            guard res.status == 0 else { throw AZLError(.io, "import of \(name) failed: \(res)") }
        }
    }

    /// azl-shell with `args` as the user, against this store.
    public func azl(_ args: [String], stdin: Data? = nil, env: [String: String] = [:], cwd: String? = nil) -> RunResult {
        r.azl(args, root: state, stdin: stdin, env: env, cwd: cwd)
    }

    /// The one unpacked tree of the store.
    public var tree: String {
        get throws {
            let trees = try FileManager.default.contentsOfDirectory(atPath: state + "/trees").filter { !$0.hasPrefix(".") }
            guard trees.count == 1 else { throw AZLError(.io, "expected one tree, found \(trees)") }
            return state + "/trees/" + trees[0] + "/rootfs"
        }
    }
}
