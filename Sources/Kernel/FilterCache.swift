import Core
import Foundation

/// The exported seccomp program, cached on disk so that a warm `run` never calls libseccomp.
///
/// One file per distinct program, `<dir>/<sha256 of what the program is made of>.bpf`: the
/// format version, the architecture, the gated syscall numbers (so a regenerated syscall table
/// or another profile makes another key), the deny list (names, numbers, conditions), and whether
/// uname is notified. Contents: a header line, the sha256 of the program, the program. A file
/// that fails any check (torn, edited, truncated) is ignored and rewritten. Writes are atomic
/// (temp file + rename), so concurrent runs share the directory safely; they are not fsynced
/// (that cost a first run ~5 ms): what a crash leaves half-written fails the checksum.
public enum FilterCache {
    /// Bump when the way the program is compiled changes without changing its inputs.
    public static let formatVersion = 1
    static let magic = "azl-seccomp-bpf \(formatVersion)\n"

    /// The key of the program `rules` compile to.
    static func key(_ rules: FilterRules) -> String {
        var s = "azl-seccomp \(formatVersion)\narch \(rules.arch.rawValue)\nnotify-uname \(rules.notifyUname)\ngated"
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

    /// The cached program, or nil when there is none or it does not pass the checks.
    static func load(_ path: String) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = [UInt8](data)
        let head = Array(magic.utf8)
        guard bytes.count > head.count + 65, Array(bytes[0..<head.count]) == head,
              bytes[head.count + 64] == 10 /* \n */ else { return nil }
        let sum = String(decoding: bytes[head.count..<(head.count + 64)], as: UTF8.self)
        let bpf = Array(bytes[(head.count + 65)...])
        guard !bpf.isEmpty, bpf.count % 8 == 0, bpf.count <= 4096 * 8,
              Digest.of(Data(bpf)).hex == sum else { return nil }
        return bpf
    }

    /// Store `bpf` at `path` (best effort: a read-only or full cache only costs speed).
    static func store(_ bpf: [UInt8], at path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        guard (try? FS.mkdirs(dir, mode: 0o700)) != nil else { return }
        var bytes = Array(magic.utf8)
        bytes += Array(Digest.of(Data(bpf)).hex.utf8)
        bytes.append(10)
        bytes += bpf
        let tmp = dir + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        var off = 0, ok = true
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = false; break }
            off += n
        }
        close(fd)
        if !ok || rename(tmp, path) != 0 { unlink(tmp) }
    }
}
