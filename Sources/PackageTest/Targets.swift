import Foundation
import Planning

/// Runs a piece of work for each of several targets (Planning's `Target`, shared with `run
/// --matrix`), at most `jobs` at once, the results in the targets' order.
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
