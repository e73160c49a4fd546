import Core
import Foundation

/// The hostile registry (Tests/RegistryTests/Fixtures/hostile_registry.py): plain HTTP on
/// 127.0.0.1, one scenario per repository name (`good`, `dupkeys`, `ambiguous`, `unixredirect`,
/// `escapes`, `tricklemanifest`, `trickleblob`, `bomb`, `helm`, `names`). Stopped by pid, and it
/// stops by itself after `lifetime` seconds.
public final class HostileRegistry: @unchecked Sendable {
    public static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Tests/RegistryTests/Fixtures/hostile_registry.py").standardized.path

    public static func unavailableReason() -> String? {
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") { return "missing /usr/bin/python3 (apt-get install python3)" }
        if !FS.exists(script) { return "missing \(script)" }
        return nil
    }

    public let base: String
    public let port: Int
    /// The Unix socket `unixredirect` sends blobs to; the registry counts connections to it.
    public let unixSocket: String
    private let process: Process

    /// `baseLayer`: a gzip rootfs put under the `names` scenario's layer (so it can be run).
    public init(baseLayer: String? = nil, arch: String = "amd64", lifetime: Int = 900) throws {
        var template = Array("/tmp/azl-hostile-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw AZLError.errno(errno, "mkdtemp", path: "/tmp") }
        base = String(cString: p)
        chmod(base, 0o755)
        unixSocket = base + "/engine.sock"
        let portFile = base + "/port"
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        proc.arguments = [HostileRegistry.script, "--port-file", portFile, "--unix-socket", unixSocket,
                          "--arch", arch, "--lifetime", "\(lifetime)"] + (baseLayer.map { ["--base-layer", $0] } ?? [])
        let log = base + "/log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let fh = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        proc.standardOutput = fh; proc.standardError = fh; proc.standardInput = FileHandle.nullDevice
        try proc.run()
        process = proc
        // The script writes the port once it listens (bounded: 30 s, it builds a 64 MiB bomb first).
        var found: Int?
        for _ in 0..<1200 {
            if let s = try? String(contentsOfFile: portFile, encoding: .utf8), let n = Int(s) { found = n; break }
            if !proc.isRunning { break }
            usleep(25_000)
        }
        guard let found else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if proc.isRunning { kill(proc.processIdentifier, SIGKILL) }
            throw AZLError(.internal, "the hostile registry did not start: \(text)")
        }
        port = found
    }

    deinit { stop() }

    public var host: String { "127.0.0.1:\(port)" }
    public func reference(_ scenario: String) -> String { "\(host)/\(scenario):latest" }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: base)
    }

    /// Connections the Unix socket has seen.
    public func unixConnections() -> Int {
        (try? String(contentsOfFile: unixSocket + ".count", encoding: .utf8)).flatMap { Int($0) } ?? 0
    }
}
