import CArchive
import Core
import Foundation

/// Why one archive entry could not be applied.
///
/// The extractor throws these with paths relative to the tree; `extract` turns them into the
/// one-line `AZLError` the user sees, naming the archive (as the caller named it) and the
/// entry (as the archive spells it). The folder being unpacked into is scratch space of the
/// store, deleted when the import fails, so it never appears in a message.
enum EntryFailure: Error, Equatable {
    /// A component of the entry's parent path exists, but is not a directory inside the tree.
    case parentNotDirectory(parent: String, why: String)
    /// A component of the entry's name is longer than a Linux file name can be.
    case componentTooLong(bytes: Int)
    /// The whole name is longer than a Linux path can be.
    case pathTooLong(bytes: Int)
    /// A symlink whose target is longer than a Linux symlink can hold.
    case symlinkTargetTooLong(bytes: Int)
    /// A symlink without a target libarchive could give us (`warning`: what libarchive said).
    case symlinkWithoutTarget(warning: String?)
    /// A system call on `path` (relative to the tree) failed.
    case system(Int32, String, path: String)

    /// Longest file name component and path Linux accepts (NAME_MAX, PATH_MAX less the NUL).
    static let nameMax = 255
    static let pathMax = 4095

    /// The user's error for this failure of entry `entry` (raw, as in the archive) of `archive`.
    func error(entry: String, archive: String) -> AZLError {
        let head = "entry '\(EntryFailure.shown(entry))' of \(archive)"
        let hostile = "the archive is damaged or hostile"
        let refuse = "nothing was kept; use an archive from a source you trust, or rebuild it"
        switch self {
        case .parentNotDirectory(let parent, let why):
            return AZLError(.unsafeArchive, "\(head): its parent '\(EntryFailure.shown(parent))' is not a directory inside the image (\(why)); \(hostile)",
                            hint: refuse)
        case .componentTooLong(let n):
            return AZLError(.corruptArchive, "\(head): a component of its name is \(n) bytes long, more than the \(EntryFailure.nameMax) a Linux file name can have; \(hostile)",
                            hint: refuse)
        case .pathTooLong(let n):
            return AZLError(.corruptArchive, "\(head): its name is \(n) bytes long, more than the \(EntryFailure.pathMax) a Linux path can have; \(hostile)",
                            hint: refuse)
        case .symlinkTargetTooLong(let n):
            return AZLError(.corruptArchive, "\(head): it is a symlink whose target is \(n) bytes long, more than the \(EntryFailure.pathMax) Linux allows; \(hostile)",
                            hint: refuse)
        case .symlinkWithoutTarget(let warning):
            let lib = String(cString: archive_version_string())
            let why = warning.map { "libarchive says: \(EntryFailure.shown($0))" }
                ?? "the target is empty, or only in a pax 'linkpath' or GNU long-link record with the header's own link field empty, which \(lib) does not read"
            return AZLError(.corruptArchive, "\(head): it is a symlink without a target that can be read (\(why))",
                            hint: "nothing was kept; if `tar -tvf` shows a target, unpack and repack the archive with GNU tar, whose archives libarchive reads")
        case .system(let code, let what, let path):
            var e = AZLError.errno(code, "x", path: "x")
            let reason = String(cString: strerror(code))
            let target = path.isEmpty ? "the image's root"
                : path == SafeExtractor.normalize(entry) ? "it" : "'\(EntryFailure.shown(path))' in the image"
            e.message = "\(head): \(what) \(target): \(reason)"
            if e.kind != .diskFull { e.hint = "nothing was kept" }
            return e
        }
    }

    /// `s` for a one-line message: control and format (bidi) characters and bytes that are not
    /// UTF-8 escaped, at most `limit` characters, so a hostile name can neither flood nor forge the line.
    static func shown(_ s: String, limit: Int = 200) -> String { Shown.text(s, limit: limit) }
}
