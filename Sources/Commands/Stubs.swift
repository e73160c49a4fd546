import ArgumentParser
struct ImportCommand: ParsableCommand {}
struct ImagesCommand: ParsableCommand {}
struct RmiCommand: ParsableCommand {}
struct PruneCommand: ParsableCommand {}
