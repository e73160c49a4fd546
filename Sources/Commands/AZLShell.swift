import ArgumentParser
import Core
import Foundation

/// The root command. Verbs live one per file beside this one.
public struct AZLShell: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "azl-shell",
        abstract: "Run commands in a distro's userland, rootless and daemonless.",
        version: "0.1.0",
        subcommands: [RunCommand.self, PullCommand.self, ImportCommand.self, ImagesCommand.self, RmiCommand.self, PruneCommand.self,
                      KernelCommand.self, DoctorCommand.self, PkgtestCommand.self, CreateCommand.self, EnterCommand.self,
                      ExecCommand.self, ListCommand.self, StopCommand.self, RmCommand.self, SetupCommand.self, LockCommand.self, TrustCommand.self]
    )
    public init() {}

    /// Entry point: parse, run, and turn every failure into one line and a distinct exit status.
    public static func mainEntry() -> Never {
        do {
            if let fast = fastRun() {
                try fast.run()
                Glibc.exit(0)
            }
            var command = try parseAsRoot()
            try command.run()
            Glibc.exit(0)
        } catch let e as AZLError {
            FileHandle.standardError.write(Data((e.description + "\n").utf8))
            Glibc.exit(e.exitStatus)
        } catch let e as ExitCode {
            Glibc.exit(e.rawValue)
        } catch {
            // Usage errors from ArgumentParser: its own message, but our exit status for "azl-shell's error".
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Glibc.exit(code == .validationFailure ? 125 : code.rawValue)
        }
    }
}

extension AZLShell {
    /// `run` is timed in milliseconds, and parsing through the root builds every verb's
    /// argument tree by reflection (a third of a warm run's time in a profile). So `run` is parsed
    /// on its own. Anything unusual — help, completion requests, a parse error — returns nil and
    /// goes the normal way, so users see the same messages and usage text either way.
    static func fastRun() -> RunCommand? {
        let args = Array(CommandLine.arguments.dropFirst())
        guard args.first == "run" else { return nil }
        return parseRun(Array(args.dropFirst()))
    }

    /// ArgumentParser takes time quadratic in the words it captures for CMD (100,000 took
    /// minutes), and CMD is every word from its first one on, verbatim. So it is given a prefix
    /// that holds the start of CMD (grown until it does) and the rest is appended to what it captured.
    static func parseRun(_ rest: [String]) -> RunCommand? {
        var k = 256
        while true {
            let whole = k >= rest.count
            let head = whole ? rest : Array(rest[..<k])
            if head.prefix(while: { $0 != "--" }).contains(where: { $0 == "-h" || $0 == "--help" || $0 == "help"
                    || $0.hasPrefix("--generate-completion") || $0.hasPrefix("--experimental") || $0 == "--version" }) {
                return nil
            }
            // A prefix may end inside our options (an option without its value): then CMD starts later.
            if var run = try? RunCommand.parse(head), whole || !run.command.isEmpty {
                if !whole { run.command += rest[k...] }
                return run
            }
            if whole { return nil }
            k *= 4
        }
    }
}

/// Options every verb takes.
public struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "State directory (default: $AZL_SHELL_ROOT or $XDG_DATA_HOME/azl-shell).")
    public var root: String?

    @Flag(name: .shortAndLong, help: "Say more about what is done.")
    public var verbose = false

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    public var quiet = false

    public init() {}

    public var paths: Paths { Paths.resolve(rootOption: root) }

    public func say(_ s: String) {
        if !quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }
    public func note(_ s: String) {
        if verbose && !quiet { FileHandle.standardError.write(Data(("azl-shell: " + s + "\n").utf8)) }
    }
}
