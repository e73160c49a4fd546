import Foundation

/// An advisory lock on a file (flock). Released when closed or when the process dies,
/// so a kill -9 never leaves a stale lock behind.
public final class FileLock {
    public enum Mode { case shared, exclusive }
    private var fd: Int32
    public let path: String

    /// Blocks until the lock is held.
    public init(path: String, mode: Mode) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw AZLError.errno(errno, "cannot open lock", path: path) }
        let op = mode == .shared ? LOCK_SH : LOCK_EX
        while flock(fd, op) != 0 {
            if errno == EINTR { continue }
            let e = errno
            close(fd)
            throw AZLError.errno(e, "cannot lock", path: path)
        }
    }

    /// Returns nil if the lock is held elsewhere.
    public init?(tryPath path: String, mode: Mode) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw AZLError.errno(errno, "cannot open lock", path: path) }
        let op = (mode == .shared ? LOCK_SH : LOCK_EX) | LOCK_NB
        if flock(fd, op) != 0 {
            close(fd)
            return nil
        }
    }

    public func unlock() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { unlock() }
}
