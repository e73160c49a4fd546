import Crypto
import Foundation

/// A content digest in OCI form, `sha256:<64 hex>`.
public struct Digest: Hashable, Codable, Sendable, CustomStringConvertible, Comparable {
    public let hex: String

    public init?(_ string: String) {
        let s = string.hasPrefix("sha256:") ? String(string.dropFirst(7)) : string
        guard s.count == 64, s.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        hex = s
    }

    public init(hex: String) { self.hex = hex }

    public var description: String { "sha256:" + hex }
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let d = Digest(s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad digest \(s)"))
        }
        self = d
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public static func of(_ data: Data) -> Digest {
        var h = Hasher256()
        h.update(data)
        return h.finalize()
    }
}

/// Streaming SHA-256 (swift-crypto: BoringSSL's assembly on Linux).
public struct Hasher256: @unchecked Sendable {  // a value type; handed between tasks, never shared
    private var h = SHA256()
    public init() {}
    public mutating func update(_ buf: UnsafeRawBufferPointer) { h.update(bufferPointer: buf) }
    public mutating func update(_ data: Data) { h.update(data: data) }
    public func finalize() -> Digest {
        let d = h.finalize()
        return Digest(hex: d.map { String(format: "%02x", $0) }.joined())
    }
}
