import Foundation

/// Every failure azl-shell reports: one line naming the thing and the fix, and an exit status.
///
/// Exit statuses follow podman: 125 for our own errors, 126 for a command that cannot be
/// executed, 127 for one that does not exist. Kinds stay distinct so callers and tests can
/// tell "not an archive" from "disk full" without parsing text.
public struct AZLError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Codable {
        case usage              // bad option or argument
        case notFound           // unknown image name, missing file
        case notAnArchive       // input is not a tar (or compressed tar)
        case corruptArchive     // truncated or damaged archive
        case unsafeArchive      // an entry that would escape the tree (only when we refuse the whole archive)
        case diskFull           // ENOSPC / EDQUOT
        case permission         // EACCES / EPERM on our own state
        case io                 // any other I/O failure
        case locked             // state is locked by another process and we could not wait
        case sandbox            // could not set up the sandbox
        case notExecutable      // 126
        case commandNotFound    // 127
        case registry           // registry / network failure
        case digestMismatch     // content did not match its digest
        case manifest           // a rootfs manifest failed to parse
        case refused            // a registry answer refused for safety (ambiguous document, redirect scheme)
        case stalled            // a transfer slower than the minimum rate over the window
        case tooLarge           // a layer unpacks past the size bound
        case exists             // a name that is taken (an environment)
        case inUse              // still used (an environment with sessions, an image an environment uses)
        case project            // azl-shell.toml or azl-shell.lock is malformed (file:line: key)
        case drift              // --frozen: the lock no longer matches the project file or the store
        case setupFailed        // a setup step exited non-zero (nothing of it kept)
        case untrusted          // a project file asks for more than its folder and is not trusted (`azl-shell trust`)
        case `internal`
    }

    public var kind: Kind
    /// One line: what went wrong, naming the file/image/option.
    public var message: String
    /// What to do about it (optional, printed after the message on the same line).
    public var hint: String?

    public init(_ kind: Kind, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    public var exitStatus: Int32 {
        switch kind {
        case .notExecutable: return 126
        case .commandNotFound: return 127
        default: return 125
        }
    }

    /// The single line printed to stderr.
    public var description: String {
        var line = "azl-shell: \(message)"
        if let hint, !hint.isEmpty { line += " (\(hint))" }
        // One line, and nothing a name given by the user could use to drive the terminal.
        return String(String.UnicodeScalarView(line.unicodeScalars.map {
            $0 == "\n" ? " " : ($0.value < 0x20 || $0.value == 0x7f) ? "?" : $0
        }))
    }

    /// Map an errno from an operation on `path` into a typed error with a useful hint.
    public static func errno(_ code: Int32, _ what: String, path: String) -> AZLError {
        let reason = String(cString: strerror(code))
        switch code {
        case ENOSPC, EDQUOT:
            return AZLError(.diskFull, "\(what) \(path): \(reason)",
                            hint: "free disk space or point --root at a larger filesystem; nothing was kept")
        case EACCES, EPERM, EROFS:
            return AZLError(.permission, "\(what) \(path): \(reason)",
                            hint: "check ownership and permissions of that path")
        case ENOENT:
            return AZLError(.notFound, "\(what) \(path): \(reason)")
        default:
            return AZLError(.io, "\(what) \(path): \(reason)")
        }
    }
}
