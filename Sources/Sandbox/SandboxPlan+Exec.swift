import Core
import SandboxLaunch

extension SandboxPlan {
    /// Replace this process with the helper carrying out the plan (SandboxLaunch.Launcher).
    /// `keepLocked` are lock files to hold shared for as long as the sandbox runs (the helper
    /// inherits the flocks), so `rmi`/`prune` wait for the command to finish. With `cache`,
    /// the plan is kept for the next run of the same command line, with the files it was
    /// computed from (PlanCache).
    public func exec(keepLocked: [String] = [], cache: PlanCache? = nil, dependencies: [PlanCache.Dependency] = []) throws -> Never {
        do {
            let bytes = encoded()
            for path in keepLocked { _ = try Launcher.holdShared(path) }
            cache?.store(plan: bytes, lockPath: keepLocked.first ?? "", dependencies: dependencies)
            try Launcher.exec(encodedPlan: bytes)
        } catch let e as LaunchError {
            throw AZLError(e)
        }
    }
}

extension AZLError {
    public init(_ e: LaunchError) {
        if e.code != 0 {
            self = AZLError.errno(e.code, e.message, path: "")
            message = e.message
            if kind == .io { kind = .sandbox }
        } else {
            self = AZLError(.sandbox, e.message, hint: e.hint)
        }
    }
}
