/// Host names as RFC 1123 has them (the hostname of a sandbox, a registry host).
public enum HostName {
    /// Dot-separated labels of ASCII letters, digits and '-', 1 to 63 bytes each, neither
    /// starting nor ending with '-'; `maxLength` bytes in all (253 in DNS; a UTS name holds 64).
    public static func isValid(_ s: String, maxLength: Int = 253) -> Bool {
        guard !s.isEmpty, s.utf8.count <= maxLength else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { l in
            !l.isEmpty && l.utf8.count <= 63 && l.first != "-" && l.last != "-"
                && l.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }
}
