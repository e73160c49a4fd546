import AsyncHTTPClient
import Core
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Retries with backoff, and what a failure is called.
extension Session {
    // MARK: retries

    func withRetries<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var exhausted = false
        return try await withRetries(what, exhausted: &exhausted, body)
    }

    /// `exhausted` is set when the error thrown is transient ones that outlasted the retries.
    func withRetries<T>(_ what: String, exhausted: inout Bool, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                guard Session.isTransient(error), attempt < options.retries else {
                    if let t = error as? TransientError {
                        exhausted = true
                        throw AZLError(.registry, "\(what) for \(ref) failed after \(attempt + 1) attempts: \(t.description)")
                    }
                    exhausted = Session.isTransient(error)
                    throw error
                }
                attempt += 1
                options.progress?(.retrying(what: what, attempt: attempt, reason: Session.describe(error)))
                let delay = options.retryDelay * pow(2, Double(attempt - 1)) * Double.random(in: 0.8...1.2)
                try await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1_000_000_000))
            }
        }
    }

    static func isTransient(_ error: Error) -> Bool {
        if error is TransientError { return true }
        if error is AZLError || error is CancellationError { return false }
        if let e = error as? HTTPClientError {
            if e == .cancelled || e == .invalidURL || e == .emptyHost || e == .alreadyShutdown { return false }
            // unsupportedScheme(_:) is equal only with its scheme, which a redirect or a realm
            // chose: its text is all there is to tell it by.
            return !"\(e)".lowercased().contains("unsupported scheme")
        }
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return false }
        if error is NIOSSLError { return false }
        if let e = error as? BoringSSLError { _ = e; return false }
        if let e = error as? NIOConnectionError {
            // Refused: nothing listens there. Reported at once (a wrong port or a stopped
            // registry does not start listening during a backoff); resets and timeouts retry.
            if e.connectionErrors.allSatisfy({ ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) { return false }
            return true
        }
        return true   // IOError (ECONNRESET, EPIPE...), ChannelError and friends
    }

    /// A readable one-liner for a transport error (never includes headers).
    static func describe(_ error: Error) -> String {
        if let e = error as? AZLError { return e.message }
        if let t = error as? TransientError { return t.description }
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return "cannot connect to \(e.host):\(e.port): \(describe(first.error))" }
            if e.dnsAError != nil || e.dnsAAAAError != nil { return "cannot resolve \(e.host)" }
            return "cannot connect to \(e.host):\(e.port)"
        }
        if let e = error as? IOError { return String(cString: strerror(e.errnoCode)) }
        if let e = error as? HTTPClientError {
            if e == .remoteConnectionClosed { return "the connection was closed by the server" }
            if e == .readTimeout { return "timed out waiting for the server" }
            if e == .connectTimeout { return "timed out connecting" }
            if e == .deadlineExceeded { return "the transfer took too long" }
            return "\(e)"
        }
        if error is NIOSSLError || error is BoringSSLError { return describeTLS(error) }
        return "\(error)"
    }

    /// A TLS failure in words: BoringSSL's text names the source file each error came from,
    /// which is of no use to a user; the two usual causes get a sentence of their own (told by
    /// BoringSSL's reason names: NIOSSL hands its errors on as text only).
    static func describeTLS(_ error: Error) -> String {
        var text = "\(error)"
        while let at = text.range(of: " at /") {
            let end = text[at.upperBound...].firstIndex { $0 == "]" || $0 == ")" || $0 == "," } ?? text.endIndex
            text.removeSubrange(at.lowerBound..<end)
        }
        if text.contains("WRONG_VERSION_NUMBER") {
            return "the TLS handshake failed: the server does not speak TLS on that port (plain HTTP?)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's TLS certificate could not be verified"
        }
        return "TLS failure: " + text
    }

    /// Every error leaving `pull` is an AZLError naming the reference.
    static func wrap(_ error: Error, ref: ImageReference) -> Error {
        if let e = error as? AZLError { return e }
        if error is CancellationError { return AZLError(.registry, "pull of \(ref) was cancelled") }
        let text = describe(error)
        var hint: String? = nil
        if error is NIOSSLError || error is BoringSSLError {
            hint = "the registry's certificate could not be verified; use --tls-verify=false only if you trust the network"
        }
        return AZLError(.registry, "cannot pull \(ref) from \(ref.apiHost): \(text)", hint: hint)
    }
}
