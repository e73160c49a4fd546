import Foundation

/// One place a package is tested: an image, on a platform, under a kernel profile.
public struct Target: Equatable, Sendable {
    public var image: String
    /// OS/ARCH for the pull; nil: this machine's.
    public var platform: String?
    /// A kernel profile or release; nil: the image's.
    public var kernel: String?

    public init(image: String, platform: String? = nil, kernel: String? = nil) {
        self.image = image; self.platform = platform; self.kernel = kernel
    }

    /// "debian:12", "debian:12 linux/arm64", "debian:12 kernel=6.6".
    public var name: String {
        [image, platform, kernel.map { "kernel=\($0)" }].compactMap { $0 }.joined(separator: " ")
    }

    /// Every image on every platform under every kernel (an empty list: the default only).
    public static func matrix(images: [String], platforms: [String], kernels: [String]) -> [Target] {
        let ps: [String?] = platforms.isEmpty ? [nil] : platforms
        let ks: [String?] = kernels.isEmpty ? [nil] : kernels
        return images.flatMap { i in ps.flatMap { p in ks.map { k in Target(image: i, platform: p, kernel: k) } } }
    }
}

/// Runs a piece of work for each of several targets, at most `jobs` at once, the results in
/// the targets' order. `run --matrix` (issue 14) is to bring the project's own; this is the
/// seam pkgtest swaps it in at.
public protocol TargetRunner {
    func run<R>(_ targets: [Target], jobs: Int, _ body: @escaping (Target) -> R) -> [R]
}

/// Threads bounded by a semaphore: each target's work mostly waits for its sandbox.
public struct BoundedTargetRunner: TargetRunner {
    public init() {}

    public func run<R>(_ targets: [Target], jobs: Int, _ body: @escaping (Target) -> R) -> [R] {
        let slots = DispatchSemaphore(value: max(1, jobs))
        let done = DispatchGroup()
        let results = Slots<R>(targets.count)
        for (i, t) in targets.enumerated() {
            slots.wait()
            done.enter()
            Thread.detachNewThread {
                let r = body(t)
                results.set(i, r)
                slots.signal()
                done.leave()
            }
        }
        done.wait()
        return results.values
    }
}

/// Results filled in from several threads.
private final class Slots<R>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [R?]
    init(_ n: Int) { items = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ r: R) { lock.lock(); items[i] = r; lock.unlock() }
    var values: [R] { lock.lock(); defer { lock.unlock() }; return items.map { $0! } }
}
