import Core
import Foundation
import TOMLKit

/// A TOML file azl-shell reads strictly (rootfs manifests, project files, locks): every error
/// is one line naming the file, the line and the key, so a typo is never silently ignored.
public struct TOMLFile {
    public let file: String
    public let text: String
    let kind: AZLError.Kind
    /// What the file is, said before its path ("rootfs manifest ").
    let label: String
    let hint: String

    public init(file: String, text: String, kind: AZLError.Kind, label: String, hint: String) {
        self.file = file; self.text = text; self.kind = kind; self.label = label; self.hint = hint
    }

    /// The parsed top-level table; a malformed file names the line TOMLKit stopped at.
    public func parse() throws -> TOMLTable {
        do {
            return try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            let line = e.source.begin.line
            let key = key(before: line).map { " (in `\($0)`)" } ?? ""
            throw AZLError(kind, "\(label)\(file):\(line): \(e.description)\(key)", hint: "fix the TOML at that line")
        }
    }

    /// The key assigned nearest above LINE (or on it): what a parse error is about.
    func key(before line: Int) -> String? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for l in lines.prefix(line).reversed() {
            let t = l.drop(while: { $0 == " " || $0 == "\t" })
            guard let eq = t.firstIndex(of: "="), !t.hasPrefix("#") else { continue }
            let k = t[..<eq].trimmingCharacters(in: .whitespaces)
            if !k.isEmpty, k.allSatisfy({ $0.isLetter || $0.isNumber || "_-.\"'".contains($0) }) { return k }
        }
        return nil
    }

    /// The first line at or after `from` that assigns KEY (a bare or quoted key, also inside an
    /// inline table), else `from` (TOMLKit keeps no positions of keys).
    public func line(of key: String, from: Int = 1) -> Int {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (n, l) in lines.enumerated() where n + 1 >= from {
            for form in [key, "\"\(key)\"", "'\(key)'"] {
                var rest = Substring(l)
                while let r = rest.range(of: form) {
                    let before = rest[..<r.lowerBound].last
                    let after = rest[r.upperBound...].drop(while: { $0 == " " || $0 == "\t" })
                    if (before == nil || " \t{,.[".contains(before!)) && (after.first == "=" || after.first == "]" || after.first == ".") {
                        return n + 1
                    }
                    rest = rest[r.upperBound...]
                }
            }
        }
        return from
    }

    public func error(_ msg: String, key: String, from: Int = 1) -> AZLError {
        AZLError(kind, "\(label)\(file):\(line(of: key, from: from)): \(msg)", hint: hint)
    }
    public func string(_ t: TOMLTable, _ k: String, _ owner: String, from: Int = 1) throws -> String {
        guard let v = t[k] else { throw error("\(owner) lacks `\(k)`", key: k, from: from) }
        guard let s = v.string else { throw error("`\(k)` of \(owner) must be a string", key: k, from: from) }
        return s
    }
    /// KEY's string, nil when absent.
    public func optionalString(_ t: TOMLTable, _ k: String, _ owner: String, from: Int = 1) throws -> String? {
        t[k] == nil ? nil : try string(t, k, owner, from: from)
    }
    public func int(_ t: TOMLTable, _ k: String, _ owner: String) throws -> Int {
        guard let v = t[k]?.int else { throw error("`\(k)` of \(owner) must be an integer", key: k) }
        return v
    }
    public func bool(_ t: TOMLTable, _ k: String, _ owner: String) throws -> Bool {
        guard let v = t[k]?.bool else { throw error("`\(k)` of \(owner) must be true or false", key: k) }
        return v
    }
    public func strings(_ t: TOMLTable, _ k: String, _ owner: String, from: Int = 1) throws -> [String] {
        guard let a = t[k]?.array else { throw error("`\(k)` of \(owner) must be an array of strings", key: k, from: from) }
        return try a.map { v in
            guard let s = v.string else { throw error("`\(k)` of \(owner) must hold only strings", key: k, from: from) }
            return s
        }
    }
    public func onlyKeys(_ t: TOMLTable, _ allowed: [String], in owner: String, from: Int = 1) throws {
        for k in t.keys.sorted() where !allowed.contains(k) {
            throw error("unknown key `\(k)` in \(owner)", key: k, from: from)
        }
    }
}
