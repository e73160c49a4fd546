import Core
import Kernel
import Foundation
import TOMLKit

/// One known image: a short name users type, the registry reference behind it, and the facts
/// about its distro and target VM (rootfs-manifests/*.toml, schema 1).
public struct ManifestImage: Codable, Equatable, Sendable {
    public var short: String
    public var aliases: [String]
    public var reference: String
    public var arches: [String]
    public var archNotes: String?
    public var tagScheme: String?
    public var osID: String
    public var osVersionID: String
    public var idLike: String
    public var packageManager: String
    public var shell: String
    public var env: [String]
    public var kernelProfile: String
    public var eol: Bool
    public var notes: String?
    /// The family (file `name`) and the file it came from.
    public var family: String
    public var file: String
}

/// The bundled manifests, with the user's directory layered on top (same short name wins).
public struct Manifests: Sendable {
    public private(set) var images: [ManifestImage] = []
    public private(set) var kernels: [String: KernelProfile] = [:]

    /// `userDirectory`: `$XDG_CONFIG_HOME/azl-shell/rootfs-manifests` unless given.
    public static func load(userDirectory: String? = nil) throws -> Manifests {
        var m = Manifests()
        for f in Bundled.files { try m.add(text: f.text, file: "rootfs-manifests/" + f.name) }
        let dir = userDirectory ?? Paths.configDirectory() + "/rootfs-manifests"
        PlanInputs.file(dir, .content)
        if let names = try? FileManager.default.contentsOfDirectory(atPath: dir) {
            for n in names.sorted() where n.hasSuffix(".toml") {
                let p = dir + "/" + n
                PlanInputs.file(p, .content)
                guard let text = try? String(contentsOfFile: p, encoding: .utf8) else {
                    throw AZLError(.manifest, "cannot read rootfs manifest \(p)", hint: "check its permissions")
                }
                try m.add(text: text, file: p)
            }
        }
        try m.validate()
        return m
    }

    /// Parse a bundled set only (tests, and the check that the embedded copy is current).
    public static func parse(files: [(name: String, text: String)]) throws -> Manifests {
        var m = Manifests()
        for f in files { try m.add(text: f.text, file: f.name) }
        try m.validate()
        return m
    }

    public static var bundledFiles: [(name: String, text: String)] { Bundled.files }

    /// Find by short name or alias (`azurelinux:3.0`, `azl3`); a bare family name matches its
    /// alias if one is declared.
    public func find(_ name: String) -> ManifestImage? {
        images.first { $0.short == name } ?? images.first { $0.aliases.contains(name) }
    }

    public func kernel(for image: ManifestImage) -> KernelProfile? { kernels[image.kernelProfile] }

    // MARK: parsing

    mutating func add(text: String, file: String) throws {
        let ctx = TOMLFile(file: file, text: text, kind: .manifest, label: "rootfs manifest ",
                           hint: "see rootfs-manifests/README.md for the schema")
        let table = try ctx.parse()
        guard let schema = table["schema"]?.int else { throw ctx.error("missing `schema = 1`", key: "schema") }
        guard schema == 1 else { throw ctx.error("schema \(schema) is not supported (this azl-shell reads schema 1)", key: "schema") }

        if let profiles = table["profile"]?.table {
            for key in profiles.keys.sorted() {
                guard let p = profiles[key]?.table else { throw ctx.error("profile \(key) is not a table", key: key) }
                try ctx.onlyKeys(p, ["release", "version", "major", "minor", "patch", "source"], in: "profile \(key)")
                kernels[key] = KernelProfile(
                    name: key, release: try ctx.string(p, "release", key), version: try ctx.string(p, "version", key),
                    major: try ctx.int(p, "major", key), minor: try ctx.int(p, "minor", key), patch: try ctx.int(p, "patch", key),
                    source: p["source"]?.string ?? "rootfs-manifests")
            }
        }
        guard let imgs = table["image"]?.array else {
            if table["profile"] == nil { throw ctx.error("no [[image]] or [profile.*] tables", key: "schema") }
            return
        }
        try ctx.onlyKeys(table, ["schema", "name", "description", "image"], in: "the file")
        let family = try ctx.string(table, "name", "the file")
        for case let i as TOMLTable in imgs.map({ $0.table as Any }) {
            try ctx.onlyKeys(i, ["short", "aliases", "reference", "arches", "arch_notes", "tag_scheme", "os_id",
                                 "os_version_id", "id_like", "package_manager", "shell", "env", "kernel_profile", "eol", "notes"],
                             in: "an [[image]]")
            let short = try ctx.string(i, "short", "[[image]]")
            let img = ManifestImage(
                short: short, aliases: try ctx.strings(i, "aliases", short), reference: try ctx.string(i, "reference", short),
                arches: try ctx.strings(i, "arches", short), archNotes: i["arch_notes"]?.string, tagScheme: i["tag_scheme"]?.string,
                osID: try ctx.string(i, "os_id", short), osVersionID: try ctx.string(i, "os_version_id", short),
                idLike: try ctx.string(i, "id_like", short), packageManager: try ctx.string(i, "package_manager", short),
                shell: try ctx.string(i, "shell", short), env: try ctx.strings(i, "env", short),
                kernelProfile: try ctx.string(i, "kernel_profile", short), eol: try ctx.bool(i, "eol", short),
                notes: i["notes"]?.string, family: family, file: file)
            for e in img.env where !e.contains("=") || e.hasPrefix("=") {
                throw ctx.error("env entry '\(e)' of \(short) is not NAME=value", key: "env")
            }
            // A later file (the user's) replaces an entry with the same short name.
            images.removeAll { $0.short == short }
            images.append(img)
        }
    }

    func validate() throws {
        var seen: [String: String] = [:]
        for i in images {
            for n in [i.short] + i.aliases {
                if let other = seen[n], other != i.short {
                    throw AZLError(.manifest, "rootfs manifest \(i.file): name '\(n)' of \(i.short) is already used by \(other)",
                                   hint: "short names and aliases must be unique across all manifests")
                }
                seen[n] = i.short
            }
            if kernels[i.kernelProfile] == nil {
                throw AZLError(.manifest, "rootfs manifest \(i.file): \(i.short) names kernel profile '\(i.kernelProfile)', which no kernels.toml defines",
                               hint: "add [profile.\"\(i.kernelProfile)\"] or fix the name")
            }
        }
    }
}
