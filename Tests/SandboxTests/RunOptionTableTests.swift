import Foundation
import SandboxRuntime
import Testing
import TestSupport

/// The plan cache's C side reads `run`'s and `exec`'s own options from a table of its own (plan_cache.c):
/// it must know exactly the options the parser knows, each as taking a value or not, or it could
/// take a command's word for ours (issue 10: a command's own `--root` named the cache folder).
struct RunOptionTableTests {
    @Test(arguments: ["run", "exec"]) func optionTableMatchesTheParser(verb: String) throws {
        let cli = Rootless.buildProductsDirectory() + "/azl-shell-cli"
        let dump = Subprocess.run([cli, "--experimental-dump-help"])
        try #require(dump.status == 0, "\(dump)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let subs = try #require((json["command"] as? [String: Any])?["subcommands"] as? [[String: Any]])
        let command = try #require(subs.first { $0["commandName"] as? String == verb })
        var seen = 0
        for arg in try #require(command["arguments"] as? [[String: Any]]) {
            let kind = arg["kind"] as? String
            guard kind == "option" || kind == "flag" else { continue }
            for n in (arg["names"] as? [[String: Any]]) ?? [] {
                let name = ((n["kind"] as? String) == "short" ? "-" : "--") + ((n["name"] as? String) ?? "")
                #expect(azl_option_kind(verb, name) == (kind == "option" ? 1 : 0), "\(verb) \(name) is a\(kind == "option" ? "n option with a value" : " flag") to the parser")
                seen += 1
            }
        }
        #expect(seen > (verb == "run" ? 20 : 10), "the parser's description of \(verb) was read")
        #expect(azl_option_kind(verb, "--no-such-option") == -1)
        // Not exec's: a word the C side took for one would find no entry the parser stored.
        #expect(azl_option_kind("exec", "--image") == -1)
    }
}
