import CLinux
import Core
#if canImport(Glibc)
import Glibc
#endif

/// Files of an unpacked tree, read as the image sees them.
public enum TreeFile {
    /// BODY over the first of PATHS that is a regular file, each resolved inside the tree (an
    /// absolute symlink in the image never reads a host file); its first non-nil answer.
    public static func first<T>(in rootfs: String, of paths: [String], _ body: (Int32) -> T?) -> T? {
        let root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { return nil }
        defer { close(root) }
        for path in paths {
            let fd = azl_openat2(root, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0, AZL_RESOLVE_IN_ROOT | AZL_RESOLVE_NO_MAGICLINKS)
            if fd < 0 { continue }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if let v = body(fd) { return v }
        }
        return nil
    }
}

extension ImageStore {
    /// Programs nearly every rootfs has: the shell, busybox (Alpine's /bin/sh links to it), env.
    static let archProbes = ["bin/sh", "usr/bin/sh", "bin/busybox", "usr/bin/env", "bin/ls", "usr/bin/ls"]

    /// The OCI architecture of an unpacked tree, from the ELF header of its first program
    /// found (resolved inside the tree: an absolute symlink in the image never reads a host
    /// file). nil for a tree without one (a data-only image).
    public static func architecture(ofTree rootfs: String) -> String? {
        TreeFile.first(in: rootfs, of: archProbes) { fd in
            var h = [UInt8](repeating: 0, count: 20)
            guard h.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, 20, 0) }) == 20 else { return nil }
            return elfArchitecture(h)
        }
    }

    /// e_machine of an ELF header (its first 20 bytes), in the header's own byte order.
    static func elfArchitecture(_ h: [UInt8]) -> String? {
        guard h.count >= 20, h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46 else { return nil }
        let machine = h[5] == 2 ? UInt16(h[18]) << 8 | UInt16(h[19]) : UInt16(h[19]) << 8 | UInt16(h[18])
        return CPUArch.oci(elfMachine: machine)
    }
}
