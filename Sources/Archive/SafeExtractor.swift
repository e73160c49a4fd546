import CArchive
import CLinux
import Core
import Foundation

/// What one extraction produced besides the files.
public struct ExtractResult: Sendable {
    /// Digest of the input bytes as given (compressed): the blob digest.
    public var blobDigest: Digest
    public var blobSize: Int64
    /// Digest of the uncompressed tar: the OCI diff_id.
    public var diffID: Digest
    public var entries: Int = 0
    public var bytes: Int64 = 0
    /// Device nodes we could not create rootless; the sandbox provides them.
    public var devices: [DeviceNode] = []
    /// Entries refused because they would leave the tree or cannot exist here (path: reason).
    public var refused: [String] = []
    /// Original owner/mode of entries not owned by 0:0 (or whose setuid bits we kept), per path.
    public var ownership: [OwnershipRecord] = []
}

public struct DeviceNode: Codable, Equatable, Sendable {
    public var path: String
    public var type: String  // "c" or "b"
    public var major: UInt32
    public var minor: UInt32
    public var mode: UInt32
}

public struct OwnershipRecord: Equatable, Sendable {
    public var path: String
    public var uid: Int64
    public var gid: Int64
    public var mode: UInt32
    public init(path: String, uid: Int64, gid: Int64, mode: UInt32) {
        self.path = path; self.uid = uid; self.gid = gid; self.mode = mode
    }
}

public struct ExtractOptions: Sendable {
    /// Apply OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) against what is already in the tree.
    public var ociLayer = false
    /// Refuse the archive once its regular files add up to more than this (a compression bomb).
    public var maxBytes: Int64?
    public init(ociLayer: Bool = false, maxBytes: Int64? = nil) { self.ociLayer = ociLayer; self.maxBytes = maxBytes }
}

/// Unpacks a tar into a directory as an unprivileged user, never touching anything outside it.
///
/// Every path is resolved by the kernel from a directory fd of the tree root with
/// `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` and absolute symlinks are clamped
/// to the root, so neither a hostile name, nor a symlink planted by an earlier entry, nor a
/// race with another process can lead outside the tree. The final component is never followed
/// (O_NOFOLLOW / *at calls on the parent fd). Hardlink targets are resolved the same way.
/// Directories are created owner-writable and get their archive mode after the last entry,
/// so `dr-xr-xr-x` directories in the archive can still be filled.
///
/// An entry that cannot be placed (its parent is a file or a symlink leading nowhere in the
/// tree, a name Linux cannot hold, a symlink without a target) stops the extraction with an
/// error naming the archive and the entry, never the folder being unpacked into: that is the
/// store's scratch space, deleted as the import fails.
public final class SafeExtractor {
    let rootFD: Int32
    let rootPath: String
    let options: ExtractOptions
    private var deferredDirs: [(path: String, mode: mode_t, mtime: timespec)] = []
    private var cachedParent: (path: String, fd: Int32)?
    private var retired: [Int32] = []
    /// Paths this layer created (for opaque whiteouts: keep ours, drop the lower layers').
    private var createdThisLayer = Set<String>()
    private var result: ExtractResult

    /// `root` must exist and be a directory owned by the caller.
    public init(root: String, options: ExtractOptions = ExtractOptions()) throws {
        rootPath = root
        self.options = options
        rootFD = Glibc.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)
        if rootFD < 0 { throw AZLError.errno(errno, "cannot open the folder to unpack into", path: root) }
        result = ExtractResult(blobDigest: Digest(hex: ""), blobSize: 0, diffID: Digest(hex: ""))
    }

    deinit {
        invalidateCache()
        closeRetired()
        close(rootFD)
    }

    /// Extract the archive read from `fd`. `name` is used in messages. If `teeFD` is given,
    /// every input byte is also written there (to keep the blob while reading it once). When
    /// the caller knows the input's digest (`knownBlobDigest`), it is not computed again.
    public func extract(fd: Int32, name: String, teeFD: Int32? = nil, knownBlobDigest: Digest? = nil) throws -> ExtractResult {
        let stream = TarStream(inputFD: fd, teeFD: teeFD, sourceName: name, knownBlobDigest: knownBlobDigest)
        try stream.open()
        while let entry = try stream.next() {
            result.entries += 1
            do {
                try apply(entry, stream: stream, name: name)
            } catch let f as EntryFailure {
                // The scratch paths we work in mean nothing to the user: name the entry.
                let raw = archive_entry_pathname(entry).map { FSName.string(cString: $0) } ?? "?"
                throw f.error(entry: raw, archive: name)
            }
        }
        try stream.drain()
        try finish()
        result.blobDigest = stream.blobDigest
        result.blobSize = stream.blobBytes
        result.diffID = stream.diffID
        return result
    }

    // MARK: entries

    private func apply(_ entry: OpaquePointer, stream: TarStream, name: String) throws {
        guard let rawPath = archive_entry_pathname(entry).map({ FSName.string(cString: $0) }) else {
            result.refused.append("?: entry without a name"); return
        }
        guard let rel = SafeExtractor.normalize(rawPath) else {
            result.refused.append("\(rawPath): contains '..'"); return
        }
        let type = archive_entry_filetype(entry)
        let perm = mode_t(archive_entry_perm(entry)) & 0o7777
        let uid = archive_entry_uid(entry), gid = archive_entry_gid(entry)
        let mtime = timespec(tv_sec: archive_entry_mtime(entry), tv_nsec: Int(archive_entry_mtime_nsec(entry)))

        if rel.isEmpty {
            // The archive's "./": the root itself. Keep it owner-accessible.
            if type == AZL_AE_IFDIR { deferredDirs.append(("", perm | 0o700, mtime)) }
            return
        }
        if FSName.bytes(rel).count > EntryFailure.pathMax { throw EntryFailure.pathTooLong(bytes: FSName.bytes(rel).count) }
        if let long = rel.split(separator: "/").first(where: { FSName.bytes(String($0)).count > EntryFailure.nameMax }) {
            throw EntryFailure.componentTooLong(bytes: FSName.bytes(String(long)).count)
        }
        let (parentRel, leaf) = SafeExtractor.split(rel)

        if options.ociLayer && leaf.hasPrefix(".wh.") {
            try whiteout(parentRel: parentRel, leaf: leaf)
            return
        }

        if uid != 0 || gid != 0 || (perm & 0o6000) != 0 {
            result.ownership.append(OwnershipRecord(path: rel, uid: uid, gid: gid, mode: UInt32(perm)))
        }

        let parent = try parentFD(parentRel)

        if let hard = archive_entry_hardlink(entry).map({ FSName.string(cString: $0) }) {
            try hardlink(rel: rel, target: hard, parent: parent, leaf: leaf)
            createdThisLayer.insert(rel)
            return
        }

        switch type {
        case AZL_AE_IFDIR:
            var st = stat()
            if fstatat(parent, FSName.cPath(leaf), &st, AT_SYMLINK_NOFOLLOW) == 0 {
                if (st.st_mode & S_IFMT) != S_IFDIR {
                    try removeAt(parent, leaf, parentRel: parentRel)
                    try mkdirAt(parent, leaf, rel: rel)
                }
            } else {
                try mkdirAt(parent, leaf, rel: rel)
            }
            deferredDirs.append((rel, perm, mtime))
        case AZL_AE_IFREG:
            // Checked on the header's size, before a byte is written: the bound is never passed.
            if let max = options.maxBytes, result.bytes + archive_entry_size(entry) > max {
                throw AZLError(.tooLarge, "\(name) unpacks to more than \(max) bytes (at entry '\(EntryFailure.shown(rel))')",
                               hint: "a compression bomb, or a layer larger than the bound: raise AZL_UNPACK_MAX_RATIO / AZL_UNPACK_MIN_BYTES or free disk space; nothing was kept")
            }
            try replaceNonDirectory(parent, leaf, parentRel: parentRel)
            let fd = azl_openat_mode(parent, FSName.cPath(leaf), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd < 0 { throw EntryFailure.system(errno, "cannot create", path: rel) }
            defer { close(fd) }
            let r = archive_read_data_into_fd(stream.inner, fd)
            if r != ARCHIVE_OK && r != ARCHIVE_WARN {
                if let e = stream.callbackError { throw e }
                let err = errno
                if err == ENOSPC || err == EDQUOT { throw EntryFailure.system(err, "cannot write", path: rel) }
                throw stream.classify(stream.inner, phase: "read")
            }
            result.bytes += archive_entry_size(entry)
            // fchmod after writing: the mode is the archive's exactly, umask aside. Setuid bits
            // stay as plain permission bits: the file is ours, and the store root is 0700.
            fchmod(fd, perm)
            var times = [timespec(tv_sec: 0, tv_nsec: AZL_UTIME_OMIT), mtime]
            futimens(fd, &times)
        case AZL_AE_IFLNK:
            // libarchive 3.6 gives no target (nil) for one only in a pax `linkpath` or GNU
            // long-link record; Linux cannot make a symlink to "". Either way: refuse the entry,
            // rather than leave a link that is not what the archive meant.
            guard let target = (archive_entry_symlink(entry) ?? archive_entry_symlink_utf8(entry)).map({ FSName.string(cString: $0) }),
                  !target.isEmpty else {
                throw EntryFailure.symlinkWithoutTarget(warning: stream.lastWarning)
            }
            if FSName.bytes(target).count > EntryFailure.pathMax { throw EntryFailure.symlinkTargetTooLong(bytes: FSName.bytes(target).count) }
            try replaceNonDirectory(parent, leaf, parentRel: parentRel)
            if symlinkat(FSName.cPath(target), parent, FSName.cPath(leaf)) != 0 { throw EntryFailure.system(errno, "cannot create symlink", path: rel) }
            var times = [timespec(tv_sec: 0, tv_nsec: AZL_UTIME_OMIT), mtime]
            utimensat(parent, FSName.cPath(leaf), &times, AT_SYMLINK_NOFOLLOW)
        case AZL_AE_IFCHR, AZL_AE_IFBLK:
            // mknod of devices needs CAP_MKNOD in the initial namespace: record, don't create.
            let dev = archive_entry_rdev(entry)
            result.devices.append(DeviceNode(path: rel, type: type == AZL_AE_IFCHR ? "c" : "b",
                                             major: UInt32(azl_major(UInt64(dev))),
                                             minor: UInt32(azl_minor(UInt64(dev))), mode: UInt32(perm)))
        case AZL_AE_IFIFO:
            try replaceNonDirectory(parent, leaf, parentRel: parentRel)
            if mkfifoat(parent, FSName.cPath(leaf), perm & 0o777) != 0 { throw EntryFailure.system(errno, "cannot create fifo", path: rel) }
        case AZL_AE_IFSOCK:
            // A socket in an archive is meaningless once its process is gone.
            result.refused.append("\(rel): socket")
        default:
            result.refused.append("\(rel): unknown entry type")
        }
        createdThisLayer.insert(rel)
    }

    private func mkdirAt(_ parent: Int32, _ leaf: String, rel: String) throws {
        if mkdirat(parent, FSName.cPath(leaf), 0o700) != 0 && errno != EEXIST {
            throw EntryFailure.system(errno, "cannot create directory", path: rel)
        }
    }

    /// An existing non-directory at `leaf` is replaced; an existing directory is removed whole
    /// (a later layer or entry may turn a directory into a file).
    private func replaceNonDirectory(_ parent: Int32, _ leaf: String, parentRel: String) throws {
        var st = stat()
        guard fstatat(parent, FSName.cPath(leaf), &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        try removeAt(parent, leaf, parentRel: parentRel)
    }

    private func hardlink(rel: String, target: String, parent: Int32, leaf: String) throws {
        guard let targetRel = SafeExtractor.normalize(target), !targetRel.isEmpty else {
            result.refused.append("\(rel): hardlink to '\(target)' outside the tree"); return
        }
        // Resolve the target inside the tree; its last component is not followed, so a link to
        // a symlink links the symlink itself, as tar does.
        let tfd = azl_openat2(rootFD, FSName.cPath(targetRel), AZL_O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                              AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
        if tfd < 0 {
            result.refused.append("\(rel): hardlink target '\(target)' does not exist in the tree"); return
        }
        defer { close(tfd) }
        var st = stat()
        if fstat(tfd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
            result.refused.append("\(rel): hardlink to a directory"); return
        }
        try replaceNonDirectory(parent, leaf, parentRel: SafeExtractor.split(rel).0)
        // linkat through /proc/self/fd links the inode we resolved, not whatever a path names now.
        if linkat(AT_FDCWD, "/proc/self/fd/\(tfd)", parent, FSName.cPath(leaf), AT_SYMLINK_FOLLOW) != 0 {
            throw EntryFailure.system(errno, "cannot create hardlink", path: rel)
        }
    }

    private func whiteout(parentRel: String, leaf: String) throws {
        let parent = try parentFD(parentRel)
        if leaf == ".wh..wh..opq" {
            // Drop what lower layers put here; keep what this layer already wrote.
            try emptyDirectory(parent, keepingCreatedUnder: parentRel)
            return
        }
        let victim = String(leaf.dropFirst(4))
        guard !victim.isEmpty, victim != ".", victim != ".." else { return }
        var st = stat()
        if fstatat(parent, FSName.cPath(victim), &st, AT_SYMLINK_NOFOLLOW) == 0 {
            try removeAt(parent, victim, parentRel: parentRel)
        }
    }

    private func emptyDirectory(_ dirFD: Int32, keepingCreatedUnder parentRel: String) throws {
        for name in try SafeExtractor.list(dirFD, rel: parentRel) {
            let rel = parentRel.isEmpty ? name : parentRel + "/" + name
            if createdThisLayer.contains(rel) { continue }
            try removeAt(dirFD, name, parentRel: parentRel)
        }
    }

    /// Remove `name` under `dirFD`, recursively, never following symlinks.
    private func removeAt(_ dirFD: Int32, _ name: String, parentRel: String) throws {
        invalidateCache()
        let rel = parentRel.isEmpty ? name : parentRel + "/" + name
        if unlinkat(dirFD, FSName.cPath(name), 0) == 0 { return }
        guard errno == EISDIR || errno == EPERM else {
            if errno == ENOENT { return }
            throw EntryFailure.system(errno, "cannot replace", path: rel)
        }
        let sub = azl_openat_mode(dirFD, FSName.cPath(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0)
        if sub < 0 {
            // A directory without owner-read/exec: make it ours to empty.
            fchmodat(dirFD, FSName.cPath(name), 0o700, 0)
            let again = azl_openat_mode(dirFD, FSName.cPath(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0)
            if again < 0 { throw EntryFailure.system(errno, "cannot open", path: rel) }
            defer { close(again) }
            try removeContents(again, rel: rel)
        } else {
            defer { close(sub) }
            fchmod(sub, 0o700)
            try removeContents(sub, rel: rel)
        }
        if unlinkat(dirFD, FSName.cPath(name), AT_REMOVEDIR) != 0 && errno != ENOENT {
            throw EntryFailure.system(errno, "cannot remove", path: rel)
        }
    }

    private func removeContents(_ fd: Int32, rel: String) throws {
        for n in try SafeExtractor.list(fd, rel: rel) { try removeAt(fd, n, parentRel: rel) }
    }

    /// The names in directory `dirFD` (`rel` in the tree, for messages).
    static func list(_ dirFD: Int32, rel: String) throws -> [String] {
        // A readable fd of the same directory: parents are held as O_PATH fds, which getdents refuses.
        let dup = azl_openat_mode(dirFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
        guard dup >= 0 else { throw EntryFailure.system(errno, "cannot list", path: rel) }
        guard let d = fdopendir(dup) else { let e = errno; close(dup); throw EntryFailure.system(e, "cannot list", path: rel) }
        return FS.names(closing: d, FSName.string(cString:))
    }

    // MARK: parents

    /// A directory fd for `parentRel`, resolved inside the tree; missing directories are created.
    private func parentFD(_ parentRel: String) throws -> Int32 {
        closeRetired()
        if parentRel.isEmpty { return rootFD }
        if let c = cachedParent, c.path == parentRel { return c.fd }
        invalidateCache()
        closeRetired()
        var fd = azl_openat2(rootFD, FSName.cPath(parentRel), AZL_O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                             AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
        if fd < 0 {
            // Missing components are made; anything else is found, and named, on the way.
            fd = try createParents(parentRel)
        }
        cachedParent = (parentRel, fd)
        return fd
    }

    /// Create the missing components of `rel` one at a time, each resolved inside the tree.
    /// A component that exists as something other than a directory (or a symlink to one
    /// inside the tree) is an error for this entry, as in tar.
    private func createParents(_ rel: String) throws -> Int32 {
        var current = azl_openat_mode(rootFD, ".", AZL_O_PATH | O_DIRECTORY | O_CLOEXEC, 0)
        if current < 0 { throw EntryFailure.system(errno, "cannot open", path: "") }
        var sofar = ""
        for comp in rel.split(separator: "/").map(String.init) {
            sofar = sofar.isEmpty ? comp : sofar + "/" + comp
            var next = azl_openat2(rootFD, FSName.cPath(sofar), AZL_O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                   AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
            if next < 0 && errno == ENOENT {
                // Missing, or a symlink to something missing (then mkdir says EEXIST).
                if mkdirat(current, FSName.cPath(comp), 0o755) != 0 && errno != EEXIST {
                    let e = errno; close(current)
                    throw EntryFailure.system(e, "cannot create directory", path: sofar)
                }
                next = azl_openat2(rootFD, FSName.cPath(sofar), AZL_O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                   AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
            }
            if next < 0 {
                let e = errno; close(current)
                throw notADirectory(sofar, errno: e)
            }
            close(current)
            current = next
        }
        return current
    }

    /// Why `rel` (whose parents all resolved) cannot be opened as a directory: what is there.
    private func notADirectory(_ rel: String, errno e: Int32) -> EntryFailure {
        let fd = azl_openat2(rootFD, FSName.cPath(rel), AZL_O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                             AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
        guard fd >= 0 else { return .system(e, "cannot open directory", path: rel) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .system(e, "cannot open directory", path: rel) }
        let why: String
        switch st.st_mode & S_IFMT {
        case S_IFLNK:
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(fd, "", &buf, Int(PATH_MAX))
            let target = n >= 0 ? FSName.string(buf[..<n].map { UInt8(bitPattern: $0) }) : "?"
            let to = "a symlink to '\(EntryFailure.shown(target, limit: 100))'"
            switch e {
            case ENOENT:
                // The target itself missing, or the end of a chain of symlinks?
                let (dir, _) = SafeExtractor.split(rel)
                let hop = target.hasPrefix("/") || dir.isEmpty ? target : dir + "/" + target
                let t = n > 0 ? azl_openat2(rootFD, FSName.cPath(hop), AZL_O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                                            AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS) : -1
                if t >= 0 { close(t) }
                why = t >= 0 ? "\(to), a chain of symlinks that ends at a missing target" : "\(to), a target missing from the image"
            case ELOOP: why = "\(to) that loops, or passes more than 40 symlinks"
            case ENOTDIR: why = "\(to), which is not a directory"
            default: why = "\(to), which cannot be followed: \(String(cString: strerror(e)))"
            }
        case S_IFREG: why = "a regular file"
        case S_IFIFO: why = "a fifo"
        case S_IFSOCK: why = "a socket"
        case S_IFCHR, S_IFBLK: why = "a device"
        case S_IFDIR: return .system(e, "cannot open directory", path: rel)
        default: why = "not a directory"
        }
        return .parentNotDirectory(parent: rel, why: why)
    }

    /// Forget the cached parent after a removal (it may have named what was removed). The fd
    /// may still be in use by the entry being applied, so it is closed at the next lookup.
    private func invalidateCache() {
        if let c = cachedParent { retired.append(c.fd); cachedParent = nil }
    }

    private func closeRetired() {
        for fd in retired { close(fd) }
        retired.removeAll()
    }

    // MARK: finishing

    /// Give directories their archive modes and times, deepest first (a parent that loses
    /// owner-write or owner-exec must not stop us fixing its children).
    ///
    /// Depth is that of the directory's real place in the tree, not of the entry's name: an
    /// entry may name a directory through a symlink (`s/t` with `s -> p/q`), and ordering by
    /// the name would fix `p/q` (perhaps to 0000) before `p/q/t`. So each directory is first
    /// located (while every directory is still ours, 0700), then fixed deepest first. When
    /// one directory was named by several entries, the last entry's mode and time win.
    private func finish() throws {
        invalidateCache()
        closeRetired()
        let rootReal = SafeExtractor.fdPath(rootFD)
        var latest: [String: Int] = [:]  // real path in the tree -> index into deferredDirs
        for (i, d) in deferredDirs.enumerated() {
            if d.path.isEmpty { latest[""] = i; continue }
            let fd = azl_openat2(rootFD, FSName.cPath(d.path), AZL_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0,
                                 AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
            if fd < 0 { continue }  // replaced by a later entry: nothing to fix
            var real = d.path
            if let rootReal, let p = SafeExtractor.fdPath(fd), p.hasPrefix(rootReal + "/") {
                real = String(p.dropFirst(rootReal.count + 1))
            }
            close(fd)
            latest[real] = i
        }
        func depth(_ p: String) -> Int { p.isEmpty ? 0 : p.utf8.reduce(1) { $1 == UInt8(ascii: "/") ? $0 + 1 : $0 } }
        let order = latest.sorted { a, b in
            let da = depth(a.key), db = depth(b.key)
            return da != db ? da > db : a.value < b.value
        }
        for (real, i) in order {
            let d = deferredDirs[i]
            let fd: Int32
            if real.isEmpty {
                fd = fcntl(rootFD, F_DUPFD_CLOEXEC, 0)
            } else {
                fd = azl_openat2(rootFD, FSName.cPath(real), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0,
                                 AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
            }
            if fd < 0 { continue }
            fchmod(fd, d.mode)
            var times = [timespec(tv_sec: 0, tv_nsec: AZL_UTIME_OMIT), d.mtime]
            futimens(fd, &times)
            close(fd)
        }
        deferredDirs.removeAll()
    }

    /// The path the kernel has for an open fd (`/proc/self/fd`), or nil.
    static func fdPath(_ fd: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buf, Int(PATH_MAX))
        guard n > 0 else { return nil }
        return FSName.string(buf[..<n].map { UInt8(bitPattern: $0) })
    }

    // MARK: paths

    /// Archive name → path relative to the tree. Leading `/` and `./` are dropped (absolute
    /// names are taken as relative to the tree, as tar does); a `..` component refuses the entry.
    public static func normalize(_ raw: String) -> String? {
        var parts: [Substring] = []
        for comp in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if comp == "." { continue }
            if comp == ".." { return nil }
            parts.append(comp)
        }
        return parts.joined(separator: "/")
    }

    static func split(_ rel: String) -> (String, String) {
        if let i = rel.lastIndex(of: "/") {
            return (String(rel[..<i]), String(rel[rel.index(after: i)...]))
        }
        return ("", rel)
    }

}
