import CSeccomp
import Core
import Foundation
import SandboxRuntime

/// The exported seccomp program, cached on disk so that a warm `run` never calls libseccomp.
///
/// One file per distinct program, `<dir>/<sha256 of what the program is made of>.bpf`: the
/// format version, libseccomp's version (as crun keys its cache), the architecture, the gated
/// syscall numbers (so a regenerated syscall table or another profile makes another key), the
/// deny list (names, numbers, conditions), and whether uname is notified. Contents: a header
/// line, the program, and the state MAC (state_mac.c, purpose "seccomp") of the key and all that
/// comes before it: the cache folder may have been written by a sandboxed command, and a program
/// copied from another profile's file (a looser one) must not pass for this one. A file that
/// fails any check (torn, edited, forged, another user's) is ignored and rewritten; without the
/// state secret nothing is cached. Writes are atomic (temp file + rename), so concurrent runs
/// share the directory safely; they are not fsynced (that cost a first run ~5 ms): what a crash
/// leaves half-written fails the MAC.
public enum FilterCache {
    /// Bump when the way the program is compiled changes without changing its inputs.
    public static let formatVersion = 3
    static let magic = "azl-seccomp-bpf \(formatVersion)\n"

    /// The key of the program `rules` compile to.
    static func key(_ rules: FilterRules) -> String {
        let v = seccomp_version().pointee
        var s = "azl-seccomp \(formatVersion)\nlibseccomp \(v.major).\(v.minor).\(v.micro)\narch \(rules.arch.rawValue)\nnotify-uname \(rules.notifyUname)\nreport \(rules.report)\ngated"
        for g in rules.gated { s += " \(g.nr)" }
        s += "\ndenied"
        for d in rules.denied {
            s += " \(d.name)/\(SyscallTable.lookup(d.name, arch: rules.arch)?.nr ?? -1)/" + d.condition.keyText
        }
        // The compat branch by its own numbers: a regenerated i386 table makes another key.
        s += "\ncompat \(rules.compatABI.rawValue) \(rules.compatABI.mirrorsPolicy)\ngated"
        for g in rules.compatGated { s += " \(g.nr)" }
        s += "\nnotified"
        for n in rules.compatNotified { s += " \(n.nr)" }
        s += "\ndenied"
        for d in rules.compatDenied {
            s += " \(d.name)/\(SyscallTable.lookup(d.name, abi: rules.compatABI)?.nr ?? -1)/" + d.condition.keyText
        }
        return Digest.of(Data(s.utf8)).hex
    }

    static func path(_ directory: String, _ rules: FilterRules) -> String {
        directory + "/" + key(rules) + ".bpf"
    }

    /// What the MAC covers: the key (the file's name) and the file's bytes before the MAC.
    static func signed(path: String, _ bytes: ArraySlice<UInt8>) -> [UInt8] {
        Array((path as NSString).lastPathComponent.utf8) + [0] + bytes
    }

    static func mac(_ secret: [UInt8], path: String, _ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: Int(AZL_STATE_MAC_LEN))
        signed(path: path, bytes).withUnsafeBytes { azl_state_mac(secret, "seccomp", $0.baseAddress, $0.count, &mac) }
        return mac
    }

    static func secret() -> [UInt8]? {
        var key = [UInt8](repeating: 0, count: Int(AZL_STATE_KEY_LEN))
        return azl_state_key(&key) == 0 ? key : nil
    }

    /// The cached program, or nil when there is none or it does not pass the checks: a regular
    /// file of this user's that nobody else may write, whose MAC is right.
    static func load(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        let limit = 4096 * 8 + 256
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == getuid(), st.st_mode & 0o022 == 0,
              st.st_size > 0, st.st_size <= limit,
              let bytes = try? FS.readAll(fd: fd, limit: limit) else { return nil }
        let head = Array(magic.utf8), macLen = Int(AZL_STATE_MAC_LEN)
        guard bytes.count > head.count + macLen, Array(bytes[0..<head.count]) == head else { return nil }
        let body = bytes[..<(bytes.count - macLen)]
        let given = Array(bytes[(bytes.count - macLen)...])
        // Compared by the C side's constant-time check (without the secret: never believed).
        guard signed(path: path, body).withUnsafeBytes({ azl_state_mac_ok("seccomp", $0.baseAddress, $0.count, given) }) != 0 else { return nil }
        let bpf = Array(bytes[head.count..<(bytes.count - macLen)])
        guard !bpf.isEmpty, bpf.count % 8 == 0, bpf.count <= 4096 * 8 else { return nil }
        return bpf
    }

    /// Store `bpf` at `path` (best effort: a read-only or full cache only costs speed).
    static func store(_ bpf: [UInt8], at path: String) {
        guard let secret = secret() else { return }
        let dir = (path as NSString).deletingLastPathComponent
        guard (try? FS.mkdirs(dir, mode: 0o700)) != nil else { return }
        var bytes = Array(magic.utf8) + bpf
        bytes += mac(secret, path: path, bytes[...])
        let tmp = dir + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let ok = (try? FS.writeAll(fd: fd, bytes)) != nil
        close(fd)
        if !ok || rename(tmp, path) != 0 { unlink(tmp) }
    }
}
