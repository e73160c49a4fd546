/// What `run` honours from an image's config (OCI image config `config` object), as the
/// registry client reads it and the store keeps it. Explicit command-line options win over each.
public struct ImageConfig: Codable, Equatable, Sendable {
    public var env: [String]
    public var workingDir: String?
    public var user: String?
    public var entrypoint: [String]?
    public var cmd: [String]?

    public init(env: [String] = [], workingDir: String? = nil, user: String? = nil,
                entrypoint: [String]? = nil, cmd: [String]? = nil) {
        self.env = env; self.workingDir = workingDir; self.user = user
        self.entrypoint = entrypoint; self.cmd = cmd
    }
}
