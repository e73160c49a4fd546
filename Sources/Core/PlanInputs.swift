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
    /// The recording under way on each thread: a matrix plans its targets on threads at once,
    /// and one target's reads are not another's.
    nonisolated(unsafe) private static var activeByThread: [pthread_t: PlanInputs] = [:]
    private static var active: PlanInputs? {
        get { activeByThread[pthread_self()] }
        set { activeByThread[pthread_self()] = newValue }
    }
    private var vars: Set<String> = []
    private var files: [String: Set<Kind>] = [:]
    private var seen: [String: [UInt64]] = [:]

    public init() {}

    /// BODY's result, with every host fact it reads recorded here. The one way reads are
    /// recorded: a caller that reads host facts of its own before it plans (a project file, an
    /// environment's config) records them into the inputs it then hands to planning, which
    /// goes on recording into them. A recording inside another (a setup step planned while a
    /// project's run is) keeps its reads; the outer one goes on after it.
    public func record<T>(_ body: () throws -> T) rethrows -> T {
        let outer = PlanInputs.lock.withLock { () -> PlanInputs? in
            defer { PlanInputs.active = self }
            return PlanInputs.active
        }
        defer { PlanInputs.lock.withLock { PlanInputs.active = outer } }
        return try body()
    }

    /// The process's variable NAME (nil when unset), recorded.
    public static func variable(_ name: String) -> String? {
        lock.withLock { _ = active?.vars.insert(name) }
        // getenv, not ProcessInfo's dictionary: that is built afresh on every read (a quarter of
        // a matrix target's planning went there).
        return getenv(name).map { String(cString: $0) }
    }

    /// Planning read PATH (or looked at it, as KIND says). IDENTITY, when given, is which file
    /// PATH is before it is read (PlanCache.identity), taken only while recording and only the
    /// first time: a file replaced between then and the plan's keeping may have been read in
    /// its old content, so that plan is not kept (`seenBeforeReading`).
    public static func file(_ path: String, _ kind: Kind, identity: (() -> [UInt64])? = nil) {
        guard !path.isEmpty, let inputs = lock.withLock({ active }) else { return }
        let id = inputs.seenBeforeReading[path] == nil ? identity?() : nil
        lock.withLock {
            inputs.files[path, default: []].insert(kind)
            if let id, inputs.seen[path] == nil { inputs.seen[path] = id }
        }
    }

    /// The identities taken before reading (`file(_:_:identity:)`), by path.
    public var seenBeforeReading: [String: [UInt64]] { PlanInputs.lock.withLock { seen } }

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
