import Core
import Foundation
import Manifests

/// Which project files the user has approved (`azl-shell trust`). A project file lies in a
/// folder that sandboxes bind and write, so its words are believed only for what stays inside
/// its folder: volumes from it must resolve there (RunOptions.confinedVolumes) and it cannot ask
/// for your real home (`home = "host"` or `"overlay"`), unless the user has trusted exactly
/// those bytes at that path (docs/project.md, "Trust"). Records live in the config folder, which
/// every sandbox sees read-only (made first where a bind would show it), one file per project:
/// `CONFIG/trusted/SHA256(path)` holding the path and the file's digest.
public enum ProjectTrust {
    public static func recordPath(for project: ProjectFile, environment env: Environment = .process) -> String {
        Paths.configDirectory(environment: env) + "/trusted/" + Digest.of(Data(project.path.utf8)).hex
    }

    /// Whether the user trusted this file as it is now (its bytes as parsed); recorded as an
    /// input of the plan, so a revoked or renewed trust is a new plan.
    public static func isTrusted(_ project: ProjectFile) -> Bool { approval(project) != nil }

    /// The trusted file's volumes as they resolved when it was trusted (volume → source); nil
    /// when the file as it is now is not trusted.
    public static func approval(_ project: ProjectFile) -> [String: String]? {
        guard let digest = project.digest else { return nil }
        let record = recordPath(for: project)
        PlanInputs.file(record, .content)
        guard let data = try? FS.readFile(record), data.count < 65536, let text = String(data: data, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 2, lines[0] == project.path, lines[1] == digest.description else { return nil }
        var approved: [String: String] = [:]
        for l in lines.dropFirst(2) {
            let f = l.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f.count == 3, f[0] == "volume" { approved[f[1]] = f[2] }
        }
        return approved
    }

    public static func trust(_ project: ProjectFile) throws {
        guard let digest = project.digest else { throw AZLError(.internal, "\(project.path) was not read from a file") }
        let record = recordPath(for: project)
        try FS.mkdirs((record as NSString).deletingLastPathComponent, mode: 0o700)
        var text = project.path + "\n" + digest.description + "\n"
        for v in project.volumes where !v.contains("\t") && !v.contains("\n") {
            text += "volume\t\(v)\t\(FS.realPath(source(of: v)))\n"
        }
        try FS.atomicWrite(Data(text.utf8), to: record, mode: 0o600)
    }

    static func source(of volume: String) -> String {
        String(volume.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    /// Forget the approval; false when there was none.
    @discardableResult
    public static func revoke(_ project: ProjectFile) -> Bool {
        unlink(recordPath(for: project)) == 0
    }

    /// What the file asks for beyond its own folder, one line each (what `trust` shows before it
    /// approves): volumes whose source resolves outside the folder, and a real home.
    public static func reach(of project: ProjectFile) -> [String] {
        let root = FS.realPath(project.root)
        var out: [String] = []
        for v in project.volumes {
            let resolved = FS.realPath(source(of: v))
            if resolved != root && !resolved.hasPrefix(root + "/") { out.append("volume \(v) (binds \(resolved))") }
        }
        if let h = project.home, h == "host" || h == "overlay" { out.append("home = \"\(h)\" (your real home in its environment)") }
        return out
    }

    /// Throws unless the project's environment may use your real home (`home` host or overlay).
    public static func requireHome(_ project: ProjectFile) throws {
        guard let h = project.home, h == "host" || h == "overlay", !isTrusted(project) else { return }
        throw AZLError(.untrusted, "\(project.path): home = \"\(h)\" shows your real home to the environment, and a command in a sandbox can write that file, so it is not believed for that",
                       hint: "if you wrote it, run `azl-shell trust` in the project")
    }
}
