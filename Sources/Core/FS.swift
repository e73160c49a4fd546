import Foundation

/// Small filesystem helpers over POSIX calls, each failing with a typed error naming the path.
public enum FS {
    /// realpath(3), or the path itself when it cannot be resolved (it does not exist yet).
    public static func realPath(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    public static func mkdirs(_ path: String, mode: mode_t = 0o755) throws {
        var st = stat()
        if stat(path, &st) == 0 { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != path { try mkdirs(parent, mode: mode) }
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw AZLError.errno(errno, "cannot create directory", path: path)
        }
    }

    /// The names in a folder (none when it cannot be listed: absent, or not a folder).
    public static func names(in dir: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Write `data` to `path` atomically: temp file in the same directory, fsync, rename,
    /// fsync the directory. Readers see the old or the new content, never a torn file.
    public static func atomicWrite(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = dir + "/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-" + (path as NSString).lastPathComponent
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        if fd < 0 { throw AZLError.errno(errno, "cannot write", path: tmp) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        do { try writeAll(fd: fd, data, path: path) } catch { close(fd); throw error }
        if fsync(fd) != 0 { let e = errno; close(fd); throw AZLError.errno(e, "cannot sync", path: path) }
        close(fd)
        if rename(tmp, path) != 0 { throw AZLError.errno(errno, "cannot rename into", path: path) }
        ok = true
        fsyncDirectory(dir)
    }

    /// All of `bytes` to `fd` (retrying short writes and EINTR).
    public static func writeAll<B: ContiguousBytes>(fd: Int32, _ bytes: B, path: String = "") throws {
        try bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw AZLError.errno(errno, "cannot write", path: path)
                }
                if n == 0 { throw AZLError.errno(EIO, "cannot write", path: path) }
                off += n
            }
        }
    }

    /// `fd` to its end, failing past `limit` bytes.
    public static func readAll(fd: Int32, limit: Int, path: String = "") throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw AZLError.errno(errno, "cannot read", path: path) }
            if n == 0 { return out }
            out += buf[0..<n]
            if out.count > limit { throw AZLError.errno(EFBIG, "cannot read", path: path) }
        }
    }

    public static func fsyncDirectory(_ dir: String) {
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    public static func readFile(_ path: String) throws -> Data {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw AZLError.errno(FS.exists(path) ? EACCES : ENOENT, "cannot read", path: path)
        }
        return d
    }

    /// Remove a tree we own, even where the archive left directories without owner-write
    /// (`dr-xr-xr-x`): make each directory writable before emptying it. Never follows symlinks.
    public static func removeTree(_ path: String) throws {
        var st = stat()
        if lstat(path, &st) != 0 { return }
        if (st.st_mode & S_IFMT) != S_IFDIR {
            if unlink(path) != 0 && errno != ENOENT { throw AZLError.errno(errno, "cannot remove", path: path) }
            return
        }
        if (st.st_mode & 0o700) != 0o700 { chmod(path, (st.st_mode & 0o7777) | 0o700) }
        guard let dir = opendir(path) else {
            // A folder of another id (a subordinate one: apt's `partial` folders in a setup
            // layer) cannot be read, but one that is empty can still be removed.
            let e = errno
            if rmdir(path) == 0 { return }
            throw AZLError.errno(e, "cannot open directory", path: path)
        }
        for n in names(closing: dir) { try removeTree(path + "/" + n) }
        if rmdir(path) != 0 && errno != ENOENT { throw AZLError.errno(errno, "cannot remove", path: path) }
    }

    /// The names in the open directory D but `.` and `..`, each as DECODE reads it; D is closed.
    public static func names(closing d: OpaquePointer, _ decode: (UnsafePointer<CChar>) -> String = { String(cString: $0) }) -> [String] {
        defer { closedir(d) }
        var names: [String] = []
        while let ent = readdir(d) {
            let name = withUnsafePointer(to: ent.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256, decode) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Total allocated bytes of a tree (du-like, hardlinks counted once).
    public static func diskUsage(_ path: String) -> Int64 {
        var seen = Set<UInt64>()
        var total: Int64 = 0
        func walk(_ p: String) {
            var st = stat()
            if lstat(p, &st) != 0 { return }
            if st.st_nlink > 1 && (st.st_mode & S_IFMT) != S_IFDIR {
                if !seen.insert(UInt64(st.st_ino)).inserted { return }
            }
            total += Int64(st.st_blocks) * 512
            if (st.st_mode & S_IFMT) == S_IFDIR, let d = opendir(p) {
                for n in names(closing: d) { walk(p + "/" + n) }
            }
        }
        walk(path)
        return total
    }
}
