import ArgumentParser
import Core

// Placeholder until the sandbox lands; replaced by the real `run`.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a command inside an image.")
    @OptionGroup var global: GlobalOptions
    func run() throws { throw AZLError(.internal, "run is not built yet") }
}
