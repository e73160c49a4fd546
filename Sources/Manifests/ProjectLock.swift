import Core
import Foundation
import TOMLKit

/// `azl-shell.lock`, next to the project file and meant to be committed: the image digest
/// each platform resolved to, the kernel profile, and each setup step's key. Runs use the
/// locked digest even after the tag moved; `azl-shell lock --update` re-resolves.
public struct ProjectLock: Equatable, Sendable {
    /// The project file's `image` the digests were resolved from (a changed one re-resolves).
    public var image: String
    /// OS/ARCH → image digest.
    public var digests: [String: Digest] = [:]
    public var kernel: String?
    public struct Step: Equatable, Sendable {
        public var run: String
        public var key: Digest
        public init(run: String, key: Digest) { self.run = run; self.key = key }
    }
    public var steps: [Step] = []

    public init(image: String) { self.image = image }

    public static func load(_ path: String) throws -> ProjectLock? {
        PlanInputs.file(path, .content)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try parse(text: String(decoding: data, as: UTF8.self), path: path)
    }

    public static func parse(text: String, path: String) throws -> ProjectLock {
        let ctx = TOMLFile(file: path, text: text, kind: .project, label: "lock file ",
                           hint: "remove it and run `azl-shell lock` to write it again")
        let t = try ctx.parse()
        try ctx.onlyKeys(t, ["version", "image", "kernel", "digests", "step"], in: "the lock")
        guard try ctx.int(t, "version", "the lock") == 1 else { throw ctx.error("`version` \(t["version"]!) is not 1", key: "version") }
        var lock = ProjectLock(image: try ctx.string(t, "image", "the lock"))
        lock.kernel = try ctx.optionalString(t, "kernel", "the lock")
        if let d = t["digests"] {
            guard let table = d.table else { throw ctx.error("`digests` must be a table", key: "digests") }
            for k in table.keys {
                guard let s = table[k]?.string, let dg = Digest(s) else { throw ctx.error("`digests.\(k)` must be a sha256 digest", key: k) }
                lock.digests[k] = dg
            }
        }
        if let s = t["step"] {
            guard let a = s.array else { throw ctx.error("`step` must be an array of tables", key: "step") }
            for case let st as TOMLTable in a.map({ $0.table as Any }) {
                try ctx.onlyKeys(st, ["run", "key"], in: "a [[step]]")
                guard let key = Digest(try ctx.string(st, "key", "a [[step]]")) else { throw ctx.error("`key` must be a sha256 digest", key: "key") }
                lock.steps.append(Step(run: try ctx.string(st, "run", "a [[step]]"), key: key))
            }
        }
        return lock
    }

    /// The file's text: stable (sorted), one fact a line, so diffs in review are readable.
    public var text: String {
        var s = "# azl-shell.lock: written by azl-shell; commit it. `azl-shell lock --update` re-resolves the image.\n"
        s += "version = 1\nimage = \(Self.quote(image))\n"
        if let kernel { s += "kernel = \(Self.quote(kernel))\n" }
        s += "\n[digests]\n"
        for (k, v) in digests.sorted(by: { $0.key < $1.key }) { s += "\(Self.quote(k)) = \(Self.quote(v.description))\n" }
        for st in steps { s += "\n[[step]]\nrun = \(Self.quote(st.run))\nkey = \(Self.quote(st.key.description))\n" }
        return s
    }

    /// A TOML basic string.
    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7f { out += String(format: "\\u%04X", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
