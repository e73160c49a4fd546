import Foundation

/// What planning a run read of the host: the environment variables and the files.
///
/// A warm run replays the plan of an earlier run whose inputs were the same, so the plan cache
/// must know every input. Nothing lists them by hand: planning reads the environment through
/// `Environment` and notes each file it reads here, and the cache entry holds exactly what was
/// recorded (Sources/SandboxRuntime/plan_cache.c compares the variables, PlanCache the files).
/// Reading a new variable or file in planning makes the cache right with no second edit.
public final class PlanInputs: @unchecked Sendable {
    /// How much of a file mattered (the plan cache's dependency kinds).
    public enum Kind: UInt8, Sendable, Comparable {
        /// Which file it is and its type (a bind source, a state folder).
        case presence = 1
        /// The same, reached without following any symlink (a path the plan names as resolved).
        case resolved = 2
        /// Its content (a record, /etc/subuid, a rootfs manifest).
        case content = 0
        public static func < (a: Kind, b: Kind) -> Bool { a.rank < b.rank }
        var rank: Int { self == .presence ? 0 : self == .resolved ? 1 : 2 }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var active: PlanInputs?
    private var vars: Set<String> = []
    private var files: [String: Set<Kind>] = [:]

    public init() {}

    /// Record from now on what planning reads, into the returned inputs (one recording at a
    /// time: a process plans one run), until `stop`.
    public static func start() -> PlanInputs {
        let inputs = PlanInputs()
        lock.withLock { active = inputs }
        return inputs
    }

    /// The recording under way, or a new one: a caller that reads inputs of its own before it
    /// plans a run (an environment's session) starts it, and planning carries on into it.
    public static func startOrContinue() -> PlanInputs {
        lock.withLock {
            if let a = active { return a }
            active = PlanInputs()
            return active!
        }
    }

    public static func stop() { lock.withLock { active = nil } }

    /// The process's variable NAME (nil when unset), recorded.
    public static func variable(_ name: String) -> String? {
        lock.withLock { _ = active?.vars.insert(name) }
        // getenv, not ProcessInfo's dictionary: that is built afresh on every read (a quarter of
        // a matrix target's planning went there).
        return getenv(name).map { String(cString: $0) }
    }

    /// Planning read PATH (or looked at it, as KIND says).
    public static func file(_ path: String, _ kind: Kind) {
        guard !path.isEmpty else { return }
        lock.withLock { _ = active?.files[path, default: []].insert(kind) }
    }

    /// Add what OTHER recorded (read before this recording started).
    public func absorb(_ other: PlanInputs) {
        let (v, f) = PlanInputs.lock.withLock { (other.vars, other.files) }
        PlanInputs.lock.withLock {
            vars.formUnion(v)
            for (p, k) in f { files[p, default: []].formUnion(k) }
        }
    }

    /// The variables read, sorted.
    public var variables: [String] { PlanInputs.lock.withLock { vars.sorted() } }
    /// The files read, each with every kind it was read as, sorted by path.
    public var dependencies: [(path: String, kind: Kind)] {
        PlanInputs.lock.withLock { files.flatMap { p, kinds in kinds.map { (p, $0) } }.sorted { ($0.path, $0.kind) < ($1.path, $1.kind) } }
    }
}

/// The environment planning reads: the process's (each read recorded in `PlanInputs`), or a
/// fixed one (tests, and what a caller computed).
public struct Environment: ExpressibleByDictionaryLiteral, Sendable {
    let fixed: [String: String]?

    public static let process = Environment(fixed: nil)
    public init(_ values: [String: String]) { fixed = values }
    init(fixed: [String: String]?) { self.fixed = fixed }
    public init(dictionaryLiteral elements: (String, String)...) {
        fixed = Dictionary(elements, uniquingKeysWith: { a, _ in a })
    }

    public subscript(name: String) -> String? {
        if let fixed { return fixed[name] }
        return PlanInputs.variable(name)
    }

    /// This environment as it would be without NAME.
    public func without(_ name: String) -> Environment {
        var d = fixed ?? ProcessInfo.processInfo.environment
        d[name] = nil
        return Environment(fixed: d)
    }
}
