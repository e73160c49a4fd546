import Core
import Foundation

/// Builds tar archives byte by byte, so tests can make the hostile ones no well-behaved tool
/// would write (`..` names, absolute paths, links out of the tree, devices, odd modes).
/// ustar headers, with a pax extended header whenever a name or link does not fit.
public struct TarBuilder {
    public enum Kind: UInt8 {
        case file = 48      // '0'
        case hardlink = 49  // '1'
        case symlink = 50   // '2'
        case char = 51      // '3'
        case block = 52     // '4'
        case directory = 53 // '5'
        case fifo = 54      // '6'
    }

    public private(set) var data = Data()
    public init() {}

    public mutating func file(_ name: String, _ content: String = "", mode: Int = 0o644, uid: Int = 0, gid: Int = 0) {
        entry(name, .file, mode: mode, uid: uid, gid: gid, content: Data(content.utf8))
    }
    public mutating func file(_ name: String, bytes: Data, mode: Int = 0o644) {
        entry(name, .file, mode: mode, content: bytes)
    }
    public mutating func dir(_ name: String, mode: Int = 0o755, uid: Int = 0, gid: Int = 0) {
        entry(name, .directory, mode: mode, uid: uid, gid: gid)
    }
    public mutating func symlink(_ name: String, to target: String) {
        entry(name, .symlink, mode: 0o777, link: target)
    }
    public mutating func hardlink(_ name: String, to target: String) {
        entry(name, .hardlink, mode: 0o644, link: target)
    }
    public mutating func device(_ name: String, char: Bool = true, major: Int, minor: Int, mode: Int = 0o666) {
        entry(name, char ? .char : .block, mode: mode, major: major, minor: minor)
    }
    public mutating func fifo(_ name: String, mode: Int = 0o644) {
        entry(name, .fifo, mode: mode)
    }
    /// A socket. tar has no typeflag for one (GNU tar and libarchive refuse to archive sockets),
    /// so this writes what a writer keeping `st_mode` would: the socket type bits (S_IFSOCK,
    /// 0140000) in the mode field and star's pax record `SCHILY.filetype=socket`, over a
    /// regular-file typeflag.
    public mutating func socket(_ name: String, mode: Int = 0o755) {
        entry(name, .file, mode: 0o140000 | mode, pax: [("SCHILY.filetype", "socket")])
    }

    /// One entry; `pax` adds records to its extended header (one is written when any are needed).
    public mutating func entry(_ name: String, _ kind: Kind, mode: Int, uid: Int = 0, gid: Int = 0,
                               link: String = "", content: Data = Data(), major: Int = 0, minor: Int = 0,
                               pax extra: [(String, String)] = []) {
        var pax: [(String, String)] = extra
        if name.utf8.count > 99 { pax.append(("path", name)) }
        if link.utf8.count > 99 { pax.append(("linkpath", link)) }
        if !pax.isEmpty {
            var body = Data()
            for (k, v) in pax {
                // A pax record's length counts itself: find the fixed point.
                let rest = " \(k)=\(v)\n".utf8.count
                var len = rest + 1
                while String(len).count + rest != len { len = String(len).count + rest }
                body += Data("\(len) \(k)=\(v)\n".utf8)
            }
            appendHeader(name: "PaxHeaders/x", type: UInt8(ascii: "x"), mode: 0o644, uid: 0, gid: 0,
                         size: body.count, link: "", major: 0, minor: 0)
            appendData(body)
        }
        appendHeader(name: String(name.prefix(99)), type: kind.rawValue, mode: mode, uid: uid, gid: gid,
                     size: kind == .file ? content.count : 0, link: String(link.prefix(99)), major: major, minor: minor)
        if kind == .file { appendData(content) }
    }

    /// The two zero blocks that end an archive.
    public func finished() -> Data { data + Data(count: 1024) }

    private mutating func appendData(_ d: Data) {
        data += d
        let pad = (512 - d.count % 512) % 512
        data += Data(count: pad)
    }

    private mutating func appendHeader(name: String, type: UInt8, mode: Int, uid: Int, gid: Int,
                                       size: Int, link: String, major: Int, minor: Int) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ off: Int, _ len: Int) {
            for (i, b) in FSName.bytes(s).prefix(len).enumerated() { h[off + i] = b }  // names are bytes (FSName)
        }
        func octal(_ v: Int, _ off: Int, _ len: Int) {
            put(String(repeating: "0", count: max(0, len - 1 - String(v, radix: 8).count)) + String(v, radix: 8), off, len - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8)
        octal(uid, 108, 8)
        octal(gid, 116, 8)
        octal(size, 124, 12)
        octal(1_700_000_000, 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6)
        put("00", 263, 2)
        put("root", 265, 32)
        put("root", 297, 32)
        octal(major, 329, 8)
        octal(minor, 337, 8)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(sum, 148, 7)
        h[155] = 32
        data += Data(h)
    }
}

extension Data {
    /// Write to a fresh file readable by everyone (the test user reads what root wrote).
    public func write(toTemp name: String, in dir: String) throws -> String {
        let p = dir + "/" + name
        try self.write(to: URL(fileURLWithPath: p))
        chmod(p, 0o644)
        return p
    }
}
