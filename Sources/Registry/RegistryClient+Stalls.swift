import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The watchdog that ends a transfer making less than the minimum rate.
extension Session {
    // MARK: stalls

    /// Bytes a transfer has moved, read by its watchdog.
    final class Moved: @unchecked Sendable {
        private let lock = NSLock()
        private var n: Int64 = 0
        func add(_ k: Int) { lock.withLock { n += Int64(k) } }
        var value: Int64 { lock.withLock { n } }
    }

    /// Run `body` (a request and its body) under a watchdog: when, over the last `rateWindow`
    /// seconds, it moved fewer than `minRate` bytes a second, it is cancelled and the pull
    /// fails (`.stalled`). The HTTP read timeout alone restarts with every byte.
    func guarded<T: Sendable>(_ what: String, _ body: @escaping @Sendable (Moved) async throws -> T) async throws -> T {
        let moved = Moved()
        let window = options.rateWindow, rate = options.minRate
        guard window > 0, rate > 0 else { return try await body(moved) }
        let windowNs = UInt64(window * 1e9)
        let host = ref.apiHost
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body(moved) }
            group.addTask {
                // Samples (time, bytes); the oldest kept is the newest at least a window old.
                var samples: [(UInt64, Int64)] = [(DispatchTime.now().uptimeNanoseconds, 0)]
                while true {
                    try await Task.sleep(nanoseconds: max(10_000_000, windowNs / 20))
                    let now = DispatchTime.now().uptimeNanoseconds, v = moved.value
                    samples.append((now, v))
                    while samples.count > 1 && now - samples[1].0 >= windowNs { samples.removeFirst() }
                    if now - samples[0].0 >= windowNs && Double(v - samples[0].1) < rate * window {
                        throw AZLError(.stalled, "\(host) sent \(what) of \(self.ref) at less than \(Int(rate)) bytes/s over \(Shown.text(String(window))) s; giving up",
                                       hint: "the registry or the network is stalled: try again later (the floor is AZL_PULL_MIN_RATE bytes/s over AZL_PULL_RATE_WINDOW seconds)")
                    }
                }
            }
            defer { group.cancelAll() }
            while let r = try await group.next() {
                if let r { return r }
            }
            throw CancellationError()
        }
    }
}
