import Core
import SandboxRuntime
import Foundation

/// What the checks read of the host. The real one asks the kernel; tests give a fake to see
/// the failures only root could cause (a sysctl off, a helper without its setuid bit).
public protocol HostFacts {
    var userName: String { get }
    var uid: UInt32 { get }
    var gid: UInt32 { get }
    /// A sysctl by its dotted name (`user.max_user_namespaces`), trimmed; nil when the kernel has none.
    func sysctl(_ name: String) -> String?
    /// A text file's content (/etc/subuid); nil when it cannot be read.
    func read(_ path: String) -> String?
    /// lstat: owner and mode; nil when there is nothing there.
    func status(_ path: String) -> (uid: UInt32, mode: UInt32)?
    /// Whether PATH carries file capabilities (the security.capability xattr getcap reads).
    func hasFileCapabilities(_ path: String) -> Bool
    /// Free bytes for an unprivileged user on the filesystem of PATH (its nearest existing folder).
    func freeBytes(_ path: String) -> Int64?
    /// The kernel probes: 0 when the thing works, else the errno that stopped it.
    func probeUserNamespace() -> Int32
    /// Overlayfs with `userxattr` in a user namespace, in a scratch folder on the filesystem of PATH.
    func probeOverlay(near path: String) -> Int32
    func probeSeccompNotify() -> Int32
    func probePidfd() -> Int32
    func probeMountAPI() -> Int32
    func probeBinfmtInUserNamespace() -> Int32
    func probeKeyring() -> Int32
    /// Executables named qemu-*-static on PATH and in /usr/bin.
    func qemuInterpreters() -> [String]
}

/// The machine this runs on.
public struct LiveHost: HostFacts {
    public let userName: String
    public let uid: UInt32
    public let gid: UInt32

    public init() {
        uid = getuid()
        gid = getgid()
        userName = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? String(uid)
    }

    public func sysctl(_ name: String) -> String? {
        read("/proc/sys/" + name.replacingOccurrences(of: ".", with: "/"))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    public func status(_ path: String) -> (uid: UInt32, mode: UInt32)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (st.st_uid, st.st_mode)
    }

    public func hasFileCapabilities(_ path: String) -> Bool { azl_probe_file_caps(path) == 0 }

    public func freeBytes(_ path: String) -> Int64? {
        var st = statvfs()
        guard statvfs(LiveHost.existing(path), &st) == 0 else { return nil }
        return Int64(st.f_bavail) * Int64(st.f_frsize)
    }

    public func probeUserNamespace() -> Int32 { azl_probe_userns() }

    public func probeOverlay(near path: String) -> Int32 {
        // Beside the store when it exists (its own tmp/), else in its nearest existing folder.
        let base = FS.isDirectory(path + "/tmp") ? path + "/tmp" : LiveHost.existing(path)
        var template = Array((base + "/.azl-doctor-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { return errno }
        let dir = String(cString: p)
        defer { try? FS.removeTree(dir) }
        return azl_probe_overlay(dir)
    }

    public func probeSeccompNotify() -> Int32 { azl_probe_seccomp_notify() }
    public func probePidfd() -> Int32 { azl_probe_pidfd() }
    public func probeMountAPI() -> Int32 { azl_probe_mount_api() }
    public func probeBinfmtInUserNamespace() -> Int32 { azl_probe_binfmt_userns() }
    public func probeKeyring() -> Int32 { azl_probe_keyring() }

    public func qemuInterpreters() -> [String] {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin"]
        var found: [String] = []
        for d in dirs {
            for n in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? []
            where n.hasPrefix("qemu-") && n.hasSuffix("-static") && !found.contains(n) {
                found.append(n)
            }
        }
        return found.sorted()
    }

    /// PATH or its nearest existing ancestor.
    static func existing(_ path: String) -> String {
        var p = path
        while !FS.isDirectory(p) && p != "/" && !p.isEmpty { p = (p as NSString).deletingLastPathComponent }
        return p.isEmpty ? "/" : p
    }
}
