import Foundation
import SandboxRuntime
import Testing
import TestSupport

/// The plan cache's C side reads `run`'s own options from a table of its own (plan_cache.c):
/// it must know exactly the options the parser knows, each as taking a value or not, or it could
/// take a command's word for ours (issue 10: a command's own `--root` named the cache folder).
struct RunOptionTableTests {
    @Test func runOptionTableMatchesTheParser() throws {
        let cli = Rootless.buildProductsDirectory() + "/azl-shell-cli"
        let dump = Subprocess.run([cli, "--experimental-dump-help"])
        try #require(dump.status == 0, "\(dump)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let subs = try #require((json["command"] as? [String: Any])?["subcommands"] as? [[String: Any]])
        let run = try #require(subs.first { $0["commandName"] as? String == "run" })
        var seen = 0
        for arg in try #require(run["arguments"] as? [[String: Any]]) {
            let kind = arg["kind"] as? String
            guard kind == "option" || kind == "flag" else { continue }
            for n in (arg["names"] as? [[String: Any]]) ?? [] {
                let name = ((n["kind"] as? String) == "short" ? "-" : "--") + ((n["name"] as? String) ?? "")
                #expect(azl_run_option_kind(name) == (kind == "option" ? 1 : 0), "\(name) is a\(kind == "option" ? "n option with a value" : " flag") to the parser")
                seen += 1
            }
        }
        #expect(seen > 20, "the parser's description of run was read")
        #expect(azl_run_option_kind("--no-such-option") == -1)
    }
}
