/// The one grammar of image names, as docker and the OCI distribution spec write them:
/// `[HOST[:PORT]/]COMPONENT[/COMPONENT...][:TAG][@DIGEST]`. The registry client parses full
/// references with it, the store checks its local NAME[:TAG] with it, and `run` asks it
/// whether a name says where to pull from.
public enum ImageNameGrammar {
    /// The first component when it names a registry (has a '.' or ':', is `localhost`, or an
    /// IPv6 literal), as docker decides; nil for a bare name (`alpine`, `myorg/base`).
    public static func registryPart(of name: String) -> Substring? {
        guard let slash = name.firstIndex(of: "/") else { return nil }
        let first = name[..<slash]
        return first.contains(".") || first.contains(":") || first == "localhost" || first.hasPrefix("[") ? first : nil
    }

    public static func isValidTag(_ t: String) -> Bool {
        guard let first = t.unicodeScalars.first, t.unicodeScalars.count <= 128 else { return false }
        func word(_ c: Unicode.Scalar) -> Bool {
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_"
        }
        guard word(first) else { return false }
        return t.unicodeScalars.allSatisfy { word($0) || $0 == "." || $0 == "-" }
    }

    /// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
    public static func isValidComponent(_ c: String) -> Bool {
        let u = Array(c.unicodeScalars)
        if u.isEmpty { return false }
        func alnum(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "0" && c <= "9") }
        var i = 0
        guard alnum(u[0]) else { return false }
        while i < u.count {
            if alnum(u[i]) { i += 1; continue }
            // a separator: ".", "_", "__", or one or more "-"
            var j = i
            if u[j] == "." { j += 1 }
            else if u[j] == "_" { j += 1; if j < u.count && u[j] == "_" { j += 1 } }
            else if u[j] == "-" { while j < u.count && u[j] == "-" { j += 1 } }
            else { return false }
            guard j < u.count, alnum(u[j]) else { return false }
            i = j
        }
        return true
    }

    /// What is wrong with a registry HOST[:PORT] (or [V6]:PORT), said for an error; nil: nothing.
    public static func hostProblem(_ registry: String) -> String? {
        let (host, port) = splitHostPort(registry)
        if host.isEmpty { return "registry '\(registry)' has no host name" }
        if let port {
            guard let p = Int(port), port.allSatisfy(\.isNumber), p > 0, p < 65536 else { return "registry port '\(port)' is not a number from 1 to 65535" }
        }
        if registry.hasPrefix("[") {
            return host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) ? nil : "registry '\(registry)' is not a valid IPv6 address"
        }
        return HostName.isValid(host) ? nil : "registry host '\(host)' is not a valid host name"
    }

    /// `host:port` / `[v6]:port` → (host without brackets, port).
    public static func splitHostPort(_ s: String) -> (host: String, port: String?) {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return (String(s.dropFirst()), nil) }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let after = s[s.index(after: close)...]
            if after.hasPrefix(":") { return (host, String(after.dropFirst())) }
            return (host, nil)
        }
        if let colon = s.lastIndex(of: ":") {
            return (String(s[..<colon]), String(s[s.index(after: colon)...]))
        }
        return (s, nil)
    }
}
