import Core
import Foundation
import TOMLKit

/// `azl-shell.toml`: a project's environment (docs/project.md). Found from a directory upward,
/// as git finds `.git`; parsed strictly (an unknown key or a wrong type is an error naming the
/// file, line and key).
public struct ProjectFile: Equatable, Sendable {
    public static let fileName = "azl-shell.toml"
    public static let lockName = "azl-shell.lock"

    public struct Step: Equatable, Sendable {
        /// The shell command (`sh -c`), run as root inside.
        public var run: String
        /// Globs relative to the project root whose files' contents are part of the step's identity.
        public var inputs: [String]
        /// Where the step is written (for errors about it).
        public var line: Int
    }

    /// The file's absolute path and the project root (its folder).
    public var path: String
    public var root: String { (path as NSString).deletingLastPathComponent }
    public var lockPath: String { root + "/" + ProjectFile.lockName }
    /// The project's name: its folder's (environments are named after it).
    public var name: String { (root as NSString).lastPathComponent }

    public var image: String?
    public var platform: String?
    public var kernel: String?
    /// KEY=VALUE, sorted by key.
    public var env: [String] = []
    /// SRC:DST[:ro], SRC relative to the project root made absolute.
    public var volumes: [String] = []
    public var network: String?
    public var user: String?
    /// private, host or overlay: for environments (`enter`); `run` binds only the current folder.
    public var home: String?
    public var setup: [Step] = []
    /// The SHA-256 of the bytes parsed: what `azl-shell trust` approves (ProjectTrust).
    public var digest: Digest?
    /// `run --matrix` with no images named: every combination of these (as --matrix, --platform
    /// and --kernel take them; no platforms or kernels: each image's own).
    public var matrix: Matrix?

    public struct Matrix: Equatable, Sendable {
        public var images: [String]
        public var platforms: [String] = []
        public var kernels: [String] = []
        public init(images: [String], platforms: [String] = [], kernels: [String] = []) {
            self.images = images; self.platforms = platforms; self.kernels = kernels
        }
    }

    public static let keys = ["image", "platform", "kernel", "env", "volumes", "network", "user", "home", "setup", "matrix"]

    /// The project file of DIRECTORY or its nearest ancestor. Each place looked at is recorded
    /// (PlanInputs): a project file created above a folder later changes what runs there.
    public static func find(from directory: String) -> String? {
        var dir = Paths.absolute(directory)
        while true {
            let candidate = (dir == "/" ? "" : dir) + "/" + fileName
            PlanInputs.file(candidate, .presence)
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { return candidate }
            if dir == "/" || dir.isEmpty { return nil }
            dir = (dir as NSString).deletingLastPathComponent
        }
    }

    /// Read and parse PATH (recorded as planning's input).
    public static func load(_ path: String) throws -> ProjectFile {
        PlanInputs.file(path, .content)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AZLError.errno(errno == 0 ? EACCES : errno, "cannot read project file", path: path)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw AZLError(.project, "project file \(path):1: not UTF-8 text", hint: "save it as UTF-8")
        }
        var p = try parse(text: text, path: path)
        p.digest = Digest.of(data)
        return p
    }

    public static func parse(text: String, path: String) throws -> ProjectFile {
        let ctx = TOMLFile(file: path, text: text, kind: .project, label: "project file ",
                           hint: "see docs/project.md for the keys")
        let t = try ctx.parse()
        try ctx.onlyKeys(t, keys, in: "the project file")
        var p = ProjectFile(path: path)
        p.image = try ctx.optionalString(t, "image", "the project")
        p.platform = try ctx.optionalString(t, "platform", "the project")
        p.kernel = try ctx.optionalString(t, "kernel", "the project")
        p.network = try ctx.optionalString(t, "network", "the project")
        if let n = p.network, n != "host", n != "none" { throw ctx.error("`network` must be host or none, not \(n)", key: "network") }
        p.user = try ctx.optionalString(t, "user", "the project")
        p.home = try ctx.optionalString(t, "home", "the project")
        if let h = p.home, !["private", "host", "overlay"].contains(h) {
            throw ctx.error("`home` must be private, host or overlay, not \(h)", key: "home")
        }
        if let e = t["env"] {
            guard let table = e.table else { throw ctx.error("`env` must be a table of strings", key: "env") }
            let from = ctx.line(of: "env")
            p.env = try table.keys.sorted().map { k in
                guard let v = table[k]?.string else { throw ctx.error("`env.\(k)` must be a string", key: k, from: from) }
                guard !k.isEmpty, !k.contains("=") else { throw ctx.error("`env` key '\(k)' is not a variable name", key: k, from: from) }
                return k + "=" + v
            }
        }
        if t["volumes"] != nil {
            p.volumes = try ctx.strings(t, "volumes", "the project").map { v in
                guard !v.isEmpty, !v.hasPrefix(":") else { throw ctx.error("volume '\(v)' is not SRC:DST[:ro]", key: "volumes") }
                return v.hasPrefix("/") ? v : p.root + "/" + v
            }
        }
        if let s = t["setup"] {
            let from = ctx.line(of: "setup")
            guard let steps = s.array else { throw ctx.error("`setup` must be an array of steps", key: "setup") }
            var line = from
            for v in steps {
                if let run = v.string {
                    line = max(line, ctx.lineContaining(run, from: line))
                    p.setup.append(Step(run: run, inputs: [], line: line))
                } else if let step = v.table {
                    // An unknown key is looked for from this step on: `run` repeats in every step.
                    try ctx.onlyKeys(step, ["run", "inputs"], in: "a setup step", from: line)
                    let run = try ctx.string(step, "run", "a setup step", from: line)
                    line = max(line, ctx.lineContaining(run, from: line))
                    let inputs = step["inputs"] == nil ? [] : try ctx.strings(step, "inputs", "a setup step", from: line)
                    for i in inputs where i.hasPrefix("/") || i.split(separator: "/").contains("..") {
                        throw ctx.error("input '\(i)' must be relative to the project root, inside it", key: "inputs", from: line)
                    }
                    p.setup.append(Step(run: run, inputs: inputs, line: line))
                } else {
                    throw ctx.error("each `setup` step must be a string or { run = \"...\", inputs = [...] }", key: "setup")
                }
            }
        }
        if t["matrix"] != nil { p.matrix = try parseMatrix(t, ctx) }
        return p
    }

    /// `matrix = ["debian:12", ...]` or `matrix = { images = [...], platforms = [...], kernels = [...] }`.
    static func parseMatrix(_ project: TOMLTable, _ ctx: TOMLFile) throws -> Matrix {
        let from = ctx.line(of: "matrix")
        func nonEmpty(_ list: [String], _ key: String) throws -> [String] {
            for v in list where v.isEmpty || v.contains(",") || v.contains(where: \.isWhitespace) {
                throw ctx.error("`\(key)` entry '\(v)' must be one name, without commas or blanks", key: key, from: from)
            }
            return list
        }
        if project["matrix"]?.array != nil {
            let images = try nonEmpty(ctx.strings(project, "matrix", "the project", from: from), "matrix")
            guard !images.isEmpty else { throw ctx.error("`matrix` names no image", key: "matrix", from: from) }
            return Matrix(images: images)
        }
        guard let t = project["matrix"]?.table else {
            throw ctx.error("`matrix` must be an array of images or { images = [...], platforms = [...], kernels = [...] }", key: "matrix", from: from)
        }
        try ctx.onlyKeys(t, ["images", "platforms", "kernels"], in: "the matrix", from: from)
        guard t["images"] != nil else { throw ctx.error("the matrix lacks `images`", key: "matrix", from: from) }
        var r = Matrix(images: try nonEmpty(ctx.strings(t, "images", "the matrix", from: from), "images"))
        guard !r.images.isEmpty else { throw ctx.error("`images` of the matrix names no image", key: "images", from: from) }
        if t["platforms"] != nil { r.platforms = try nonEmpty(ctx.strings(t, "platforms", "the matrix", from: from), "platforms") }
        if t["kernels"] != nil { r.kernels = try nonEmpty(ctx.strings(t, "kernels", "the matrix", from: from), "kernels") }
        return r
    }
}

extension TOMLFile {
    /// The first line at or after FROM holding TEXT's first line (a step's own line).
    func lineContaining(_ s: String, from: Int) -> Int {
        let needle = String(s.split(separator: "\n", omittingEmptySubsequences: true).first ?? "")
        guard !needle.isEmpty else { return from }
        for (n, l) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where n + 1 >= from {
            if l.contains(needle) { return n + 1 }
        }
        return from
    }
}
