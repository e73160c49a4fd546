import Core
import Foundation
@testable import Registry
import Testing
import TestSupport

/// One hostile registry (hostile_registry.py on 127.0.0.1) for the suite.
final class SharedHostile: Sendable {
    let registry: HostileRegistry
    init() throws { registry = try HostileRegistry(arch: Platform.host.architecture) }
    @TaskLocal static var current: SharedHostile?
}

struct WithHostileRegistry: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        if let why = HostileRegistry.unavailableReason() {
            unavailable("HostileRegistryTests: \(why)")
            return
        }
        let shared = try SharedHostile()
        defer { shared.registry.stop() }
        try await SharedHostile.$current.withValue(shared) { try await function() }
    }
}

/// Issue 17: a registry that lies must not change what a digest means, reach a local socket,
/// write to the terminal, hold a pull forever, or poison a later honest pull.
@Suite(.serialized, WithHostileRegistry())
struct HostileRegistryTests {
    var hostile: HostileRegistry { SharedHostile.current!.registry }

    func pull(_ scenario: String, _ sink: DirectoryBlobSink, events: Events? = nil,
              tweak: (inout PullOptions) -> Void = { _ in }) async throws -> PulledImage {
        var o = fastOptions(events: events, retries: 1)
        tweak(&o)
        return try await client().pull(ImageReference.parse(hostile.reference(scenario)), options: o, blobStore: sink)
    }

    func failure(_ scenario: String, tweak: (inout PullOptions) -> Void = { _ in }) async throws -> (AZLError, DirectoryBlobSink) {
        let sink = try DirectoryBlobSink(directory: tempDir(scenario))
        do {
            _ = try await pull(scenario, sink, tweak: tweak)
        } catch let e as AZLError {
            return (e, sink)
        }
        Issue.record("pulling \(scenario) succeeded")
        throw AZLError(.internal, "no failure")
    }

    @Test func anHonestImageFromItPulls() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("good"))
        let img = try await pull("good", sink)
        #expect(img.layers.count == 1 && sink.partials().isEmpty)
    }

    @Test func duplicateKeysAreRefusedNamingTheDigest() async throws {
        let (e, sink) = try await failure("dupkeys")
        #expect(e.kind == .refused && e.message.contains("'layers' twice") && e.message.contains("sha256:"), "\(e)")
        #expect(!e.description.contains("\n"))
        #expect(sink.digests().isEmpty, "no blob of it was fetched")
    }

    @Test func aDocumentThatIsBothIndexAndManifestIsRefused() async throws {
        let (e, sink) = try await failure("ambiguous")
        #expect(e.kind == .refused && e.message.contains("both an image index") && e.message.contains("sha256:"), "\(e)")
        #expect(sink.digests().isEmpty)
    }

    @Test func duplicateKeyScanFindsThemAtAnyDepthAndOnlyThem() {
        #expect(DuplicateKeys.find(in: Data(#"{"a":1,"b":{"c":1,"c":2}}"#.utf8)) == "b.c")
        #expect(DuplicateKeys.find(in: Data(#"{"a":1,"\u0061":2}"#.utf8)) == "a")
        #expect(DuplicateKeys.find(in: Data(#"{"a":[{"x":1},{"x":2}],"s":"a,\"a\":"}"#.utf8)) == nil)
        #expect(DuplicateKeys.find(in: Data(#"{"layers":[],"config":{},"layers":[]}"#.utf8)) == "layers")
    }

    @Test func aRedirectToAUnixSocketIsRefusedWithoutAConnection() async throws {
        let (e, sink) = try await failure("unixredirect")
        #expect(e.kind == .refused && e.message.contains("'http+unix'"), "\(e)")
        #expect(hostile.unixConnections() == 0, "nothing connected to the socket")
        #expect(sink.partials().isEmpty, "no empty partial left: \(sink.partials())")
    }

    @Test func whatTheRegistrySaysIsShownWithControlCharactersEscaped() async throws {
        let (e, _) = try await failure("escapes")
        let line = e.description
        #expect(!line.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "\(line.debugDescription)")
        #expect(line.contains("MANIFEST_UNKNOWN\\x1b]0;pwned\\x07"), "\(line)")
        #expect(Shown.text("a\u{1b}[2Jb\u{9b}c\u{202e}") == "a\\x1b[2Jb\\u{009b}c\\u{202e}")
    }

    @Test func aTricklingManifestFailsWithinTheWindow() async throws {
        let start = Date()
        let (e, _) = try await failure("tricklemanifest") { $0.minRate = 100; $0.rateWindow = 2 }
        #expect(e.kind == .stalled && e.message.contains(hostile.host) && e.message.contains("manifest"), "\(e)")
        #expect(Date().timeIntervalSince(start) < 20, "stopped near the 2 s window")
    }

    @Test func aTricklingBlobFailsWithinTheWindowNamingIt() async throws {
        let start = Date()
        let (e, _) = try await failure("trickleblob") { $0.minRate = 100; $0.rateWindow = 2 }
        #expect(e.kind == .stalled && e.message.contains(hostile.host) && e.message.contains("layer sha256:"), "\(e)")
        #expect(Date().timeIntervalSince(start) < 20, "stopped near the 2 s window")
    }

    @Test func aPartialFromAnotherRegistryIsNotResumed() async throws {
        let sink = try DirectoryBlobSink(directory: tempDir("poison"))
        // Learn the layer's digest, then drop it and plant a garbage prefix "from" elsewhere.
        let first = try await pull("good", sink)
        let layer = first.layers[0].digest
        unlink(sink.path(for: layer))
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: sink.partialPath(for: layer)))
        try Data("http://evil.example:80".utf8).write(to: URL(fileURLWithPath: sink.partialPath(for: layer) + ".origin"))
        let events = Events()
        let again = try await pull("good", sink, events: events) { $0.retries = 0 }
        #expect(again.layers[0].digest == layer && !again.layers[0].cached)
        #expect(!events.all.contains { if case .resumed = $0 { return true }; return false }, "\(events.all)")
        #expect(sink.partials().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: sink.partialPath(for: layer) + ".origin"), "the origin note goes with the partial")
    }

    @Test func anArtifactWithTarLayersIsRefused() async throws {
        let (e, sink) = try await failure("helm")
        #expect(e.kind == .registry && e.message.contains("not a container image") && e.message.contains("helm"), "\(e)")
        #expect(sink.digests().isEmpty)
    }

    @Test func loopbackIsDecidedOnTheAddressNotTheSpelling() throws {
        // 192.0.2.1 is TEST-NET-1: nothing connects to it here; only the decision is made.
        setenv("AZL_TEST_RESOLVE", "127.evil.example=192.0.2.1,near.example=127.0.0.9", 1)
        let evil = try ImageReference.parse("127.evil.example:5000/a")
        #expect(!evil.isLoopback, "a name that starts with 127. but resolves elsewhere is not loopback")
        #expect(try ImageReference.parse("near.example:5000/a").isLoopback)
        #expect(!Session.realmIsSafe(scheme: "http", host: "127.evil.example"), "no credentials to its realm in clear")
        #expect(Session.realmIsSafe(scheme: "http", host: "127.0.0.1"))
        #expect(Session.realmIsSafe(scheme: "https", host: "127.evil.example"))
        let s = try Session(ref: evil, options: PullOptions(), credentials: nil)
        #expect(!s.loopback, "the session speaks HTTPS only to it")
        try RegistryClient.runSync { await s.shutdown() }
    }

    @Test func aPlainHTTPFailureOnLoopbackIsReportedAsSuch() async throws {
        // Something that accepts and closes at once: plain HTTP fails, HTTPS then fails its
        // handshake; the error is the first one, not "the server does not speak TLS".
        let port = try RegistryFixture.freePort()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 16)
        let stop = Atomicish()
        let t = Thread {
            while !stop.value {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&pfd, 1, 100) > 0 { let c = accept(fd, nil, nil); if c >= 0 { close(c) } }
            }
        }
        t.start()
        defer { stop.value = true }
        let sink = try DirectoryBlobSink(directory: tempDir("plainfail"))
        do {
            _ = try await client().pull(ImageReference.parse("127.0.0.1:\(port)/x:1"), options: fastOptions(retries: 0), blobStore: sink)
            Issue.record("pull succeeded")
        } catch let e as AZLError {
            #expect(!e.message.contains("TLS"), "\(e)")
            #expect(e.kind == .registry && e.message.contains("127.0.0.1:\(port)"), "\(e)")
        }
    }
}

final class Atomicish: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool {
        get { lock.withLock { v } }
        set { lock.withLock { v = newValue } }
    }
}
