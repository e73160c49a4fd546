/// Text that came from outside (a registry's error, a media type, a file name) made safe for a
/// one-line message: control characters (C0, DEL, C1) and bidi/format characters are written
/// as escapes, so a hostile server cannot move the cursor, retitle the terminal or hide text.
public enum Shown {
    public static func text(_ s: String, limit: Int = 300) -> String {
        var out = ""
        var n = 0
        for u in s.unicodeScalars {
            if n >= limit { out += "…"; break }
            n += 1
            let v = u.value
            if v < 0x20 || v == 0x7f {
                out += "\\x" + hex(v, 2)
            } else if (0x80...0x9f).contains(v) || u.properties.generalCategory == .format
                        || u.properties.generalCategory == .lineSeparator || u.properties.generalCategory == .paragraphSeparator {
                out += "\\u{" + hex(v, 4) + "}"
            } else if v == 0x5c {
                out += "\\\\"
            } else if let raw = FSName.rawByte(u) {
                // A byte of a file name that is not UTF-8 (see FSName).
                out += "\\x" + hex(UInt32(raw), 2)
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func hex(_ v: UInt32, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// File names are bytes on Linux; Swift Strings are Unicode. A name is carried in a String
/// losslessly: valid UTF-8 stays as it is, and every byte that is not part of valid UTF-8
/// becomes one scalar U+EF80+(byte-0x80) in a private-use block (as MirBSD's OPTU-8 does).
/// Scalars of that block that really occur in a name are carried the same way, byte by byte,
/// so the mapping is one-to-one: two names that differ in any byte stay two Strings.
/// `bytes(_:)` gives the name back exactly; pass `cPath(_:)` to system calls.
public enum FSName {
    static let base: UInt32 = 0xEF00

    static func rawByte(_ u: Unicode.Scalar) -> UInt8? {
        (0xEF80...0xEFFF).contains(u.value) ? UInt8(u.value - base) : nil
    }

    /// Bytes (no NUL) to a String.
    public static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let b = Array(bytes)
        if b.allSatisfy({ $0 < 0x80 }) { return String(decoding: b, as: UTF8.self) }
        var out = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            let c = b[i]
            if c < 0x80 { out.append(Unicode.Scalar(c)); i += 1; continue }
            var len = 0
            if c & 0xE0 == 0xC0 { len = 2 } else if c & 0xF0 == 0xE0 { len = 3 } else if c & 0xF8 == 0xF0 { len = 4 }
            if len > 0, i + len <= b.count {
                var it = b[i..<(i + len)].makeIterator()
                var dec = UTF8()
                if case .scalarValue(let s) = dec.decode(&it), UTF8.width(s) == len,
                   !(0xEF80...0xEFFF).contains(s.value) {
                    out.append(s); i += len; continue
                }
            }
            out.append(Unicode.Scalar(base + UInt32(c))!)
            i += 1
        }
        return String(out)
    }

    /// A C string (as `String(cString:)` would read it) to a String, losslessly.
    public static func string(cString p: UnsafePointer<CChar>) -> String {
        var n = 0
        while p[n] != 0 { n += 1 }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) { string(UnsafeBufferPointer(start: $0, count: n)) }
    }

    /// The exact bytes of a name made by `string`.
    public static func bytes(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            if let raw = rawByte(u) { out.append(raw) } else { out.append(contentsOf: String(u).utf8) }
        }
        return out
    }

    /// NUL-terminated bytes for a system call.
    public static func cPath(_ s: String) -> [CChar] {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return Array(s.utf8CString) }
        return bytes(s).map { CChar(bitPattern: $0) } + [0]
    }
}
