import Archive
import Core
import Foundation

/// An image ready to run: its record, its unpacked root, and a shared lock that keeps
/// `rmi`/`prune` from removing the tree while the sandbox uses it.
public struct RunnableImage {
    public let record: ImageRecord
    /// Absolute path of the unpacked tree (the overlay's lower directory). Never modified.
    public let rootfs: String
    /// Device nodes the archive held; the sandbox provides them.
    public let devices: [DeviceEntry]
    public let lock: FileLock
}

public final class ImageStore {
    public let paths: Paths
    public init(paths: Paths) throws { self.paths = paths }

    /// Look up `reference` (`NAME[:TAG]`, digest or digest prefix) and take a shared lock on its tree.
    public func openForRun(_ reference: String) throws -> RunnableImage {
        throw AZLError(.internal, "not built yet")
    }
}
