import Foundation
#if canImport(Testing)   // a release build of the package builds this module too, without Testing
import Testing

/// Where the tests run.
public enum TestEnvironment {
    /// True under CI: the environment variable `CI` is set (our CI sets `CI=true`; `.ci/run`
    /// sets it too). Empty, `0`, `false` and `no` count as unset, so `CI=false` runs locally.
    public static var isCI: Bool {
        guard let v = ProcessInfo.processInfo.environment["CI"] else { return false }
        return !["", "0", "false", "no"].contains(v.lowercased())
    }
}

/// A test (or a part of one) cannot run here because something it needs is missing: print
/// the reason, and under CI record a failure, because CI (`.ci/run` → `scripts/setup.sh`)
/// installs everything the tests need. The caller returns (or skips the part) afterwards.
///
/// For what no CI machine can be asked to provide (an architecture, a network interface, a
/// kernel setting), use `notApplicableHere` instead.
public func unavailable(_ reason: String, sourceLocation: SourceLocation = #_sourceLocation) {
    print("not run: \(reason)")
    if TestEnvironment.isCI {
        Issue.record("cannot run under CI (CI is set, so everything must be installed): \(reason)", sourceLocation: sourceLocation)
    }
}

/// A check that depends on this machine in a way no setup can change: print the reason only.
public func notApplicableHere(_ reason: String) {
    print("not run: \(reason)")
}
#endif
