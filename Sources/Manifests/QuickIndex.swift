import Core
import Foundation

/// What `run` needs from the manifests to pick a kernel profile: names, the os-release keys and
/// the kernel profile of each image. Parsing every TOML file costs milliseconds on `run`'s hot
/// path, so for the bundled manifests these few keys are scanned from the embedded text instead
/// (a test checks the scan agrees with the full parse); a user's own manifests are loaded in full.
public struct ManifestKey: Equatable, Sendable {
    public var short: String
    public var aliases: [String]
    public var osID: String
    public var osVersionID: String
    public var kernelProfile: String

    public init(short: String, aliases: [String], osID: String, osVersionID: String, kernelProfile: String) {
        self.short = short; self.aliases = aliases; self.osID = osID
        self.osVersionID = osVersionID; self.kernelProfile = kernelProfile
    }

    public init(_ i: ManifestImage) {
        self.init(short: i.short, aliases: i.aliases, osID: i.osID, osVersionID: i.osVersionID, kernelProfile: i.kernelProfile)
    }
}

extension Manifests {
    /// The keys of the bundled images, in the order `load()` lists them.
    public static let bundledKeys: [ManifestKey] = Bundled.files.flatMap { scanKeys($0.text) }

    /// The keys of every image `load()` would list.
    public var keys: [ManifestKey] { images.map(ManifestKey.init) }

    /// Whether the user's manifest directory holds any `.toml` (then `load()` is needed).
    public static func hasUserManifests(userDirectory: String? = nil) -> Bool {
        let dir = userDirectory ?? Paths.configDirectory() + "/rootfs-manifests"
        PlanInputs.file(dir, .content)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return false }
        return names.contains { $0.hasSuffix(".toml") }
    }

    /// `short`, `aliases`, `os_id`, `os_version_id`, `kernel_profile` of each `[[image]]` table:
    /// a line scanner for our own files' shapes (one `key = value` a line, basic strings, arrays
    /// of basic strings on one line), not a TOML parser.
    static func scanKeys(_ text: String) -> [ManifestKey] {
        var out: [ManifestKey] = []
        var cur: [String: [String]]? = nil
        func flush() {
            if let c = cur {
                out.append(ManifestKey(short: c["short"]?.first ?? "", aliases: c["aliases"] ?? [],
                                       osID: c["os_id"]?.first ?? "", osVersionID: c["os_version_id"]?.first ?? "",
                                       kernelProfile: c["kernel_profile"]?.first ?? ""))
            }
            cur = nil
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if line.hasPrefix("[") {
                flush()
                if line.hasPrefix("[[image]]") { cur = [:] }
                continue
            }
            guard cur != nil, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            guard ["short", "aliases", "os_id", "os_version_id", "kernel_profile"].contains(key) else { continue }
            cur?[key] = basicStrings(line[line.index(after: eq)...])
        }
        flush()
        return out
    }

    /// The basic strings ("...") of a value, up to a comment.
    static func basicStrings(_ v: Substring) -> [String] {
        var out: [String] = []
        var s: String? = nil
        var esc = false
        for ch in v {
            if var str = s {
                if esc {
                    switch ch {
                    case "n": str.append("\n")
                    case "t": str.append("\t")
                    default: str.append(ch)
                    }
                    esc = false
                    s = str
                } else if ch == "\\" {
                    esc = true
                } else if ch == "\"" {
                    out.append(str)
                    s = nil
                } else {
                    str.append(ch)
                    s = str
                }
            } else if ch == "\"" {
                s = ""
            } else if ch == "#" {
                break
            }
        }
        return out
    }
}
