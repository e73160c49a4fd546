import ArgumentParser
import Core
import Foundation
import Kernel
import Manifests
import Store

struct ImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List stored images.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "One JSON array of records.")
    var json = false

    @Flag(name: .long, help: "Print image ids only.")
    var digests = false

    @Flag(name: .long, help: "List the images azl-shell knows by short name (rootfs-manifests), pulled or not.")
    var available = false

    func run() throws {
        if available { return try listAvailable() }
        let store = try ImageStore(paths: global.paths)
        let recs = try store.records()
        if json {
            print(try Render.json(recs))
            return
        }
        if digests {
            for r in recs { print(r.digest) }
            return
        }
        var rows = [["NAME", "TAG", "DIGEST", "ARCH", "SIZE", "CREATED"]]
        for r in recs {
            rows.append([r.name, r.tag, r.digest.description.prefix(19) + "", r.architecture ?? "-", Render.bytes(r.size), Render.ago(r.created)])
        }
        print(Render.table(rows))
        // Setup layers are shared between projects, so they are counted once, here.
        let layers = store.layers()
        if !layers.isEmpty {
            print("setup layers: \(layers.count), \(Render.bytes(layers.reduce(0) { $0 + $1.meta.bytes })) (`azl-shell prune` drops those no lock uses)")
        }
    }
}

extension ImagesCommand {
    func listAvailable() throws {
        let m = try Manifests.load()
        if json {
            struct Entry: Encodable { var image: ManifestImage; var kernel: KernelProfile? }
            print(try Render.json(m.images.map { Entry(image: $0, kernel: m.kernel(for: $0)) }))
            return
        }
        var rows = [["SHORT NAME", "REFERENCE", "OS", "PKG", "KERNEL", "ARCHES", ""]]
        for i in m.images {
            rows.append([i.short, i.reference, "\(i.osID) \(i.osVersionID)", i.packageManager.isEmpty ? "-" : i.packageManager,
                         m.kernel(for: i)?.release ?? i.kernelProfile, i.arches.joined(separator: ","), i.eol ? "end of life" : ""])
        }
        print(Render.table(rows))
    }
}

struct RmiCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove image names, and the data only they used.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "NAME[:TAG] or image id.", completion: .custom { words, _, _ in Completion.imageNames(words) })
    var images: [String]

    @Flag(name: .long, help: "Given an image id with several names, remove them all.")
    var force = false

    func run() throws {
        let store = try ImageStore(paths: global.paths)
        let envs = EnvironmentStore(paths: global.paths)
        for i in images {
            let users = envs.users(ofTree: try store.lookup(i).tree)
            if !users.isEmpty {
                throw AZLError(.inUse, "image \(i) is used by environment\(users.count == 1 ? "" : "s") \(users.joined(separator: ", "))",
                               hint: "remove \(users.count == 1 ? "it" : "them") first with azl-shell rm")
            }
            for r in try store.remove(i, allNames: force) { global.say("removed \(r.reference) \(r.digest)") }
        }
    }
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove blobs and unpacked trees no image references.")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .long, help: "Print what was removed as JSON.")
    var json = false

    func run() throws {
        let store = try ImageStore(paths: global.paths)
        let rep = try store.prune()
        if json { print(try Render.json(rep)); return }
        global.say("removed \(rep.trees.count) trees and \(rep.blobs.count) blobs, \(Render.bytes(rep.bytes)) freed" +
                   (rep.inUse.isEmpty ? "" : "; \(rep.inUse.count) in use, kept"))
    }
}
