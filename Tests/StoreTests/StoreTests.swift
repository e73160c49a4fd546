import Archive
import Core
import Foundation
@testable import Store
import Testing

struct StoreTests {
    @Test(arguments: [
        ("alpine", "alpine", "latest"), ("alpine:3.20", "alpine", "3.20"),
        ("mcr.microsoft.com/azurelinux/base/core:3.0", "mcr.microsoft.com/azurelinux/base/core", "3.0"),
        ("localhost:5000/x/y", "localhost:5000/x/y", "latest"), ("127.0.0.1:5000/a:b_1", "127.0.0.1:5000/a", "b_1"),
    ])
    func namesParse(_ s: String, _ name: String, _ tag: String) throws {
        let p = try ImageName.parse(s)
        #expect(p.name == name && p.tag == tag)
    }

    @Test(arguments: ["", "Alpine", "a b", "/abs", "x/", "a:", "a:-x", "a/../b", "a::b",
                      // Path components and control characters, also where a registry host may stand.
                      "../x", "./x", "..:5000/x", "a//b", "-h.x/y", "h.x:0/y", "h.x:99999/y", "a\nb", "x\u{1b}[31m"])
    func badNamesAreRejected(_ s: String) {
        #expect(throws: AZLError.self) { try ImageName.parse(s) }
    }

    @Test func chainIDFollowsTheOCISpec() {
        let a = Digest.of(Data("a".utf8)), b = Digest.of(Data("b".utf8))
        #expect(ImageStore.chainID([a]) == a)
        #expect(ImageStore.chainID([a, b]) == Digest.of(Data("\(a) \(b)".utf8)))
    }

    @Test func ownershipSidecarRoundTrips() {
        let recs = [OwnershipRecord(path: "etc/shadow", uid: 0, gid: 42, mode: 0o640),
                    OwnershipRecord(path: "odd name\nwith%", uid: 1000, gid: 1000, mode: 0o4755)]
        #expect(ImageStore.decodeOwnership(ImageStore.encodeOwnership(recs)) == recs)
    }

    @Test func recordFileNamesAreSafe() {
        #expect(ImageStore.escape("mcr.microsoft.com/azurelinux:3.0") == "mcr.microsoft.com%2Fazurelinux%3A3.0")
        #expect(!ImageStore.escape("../x").contains("/"))
    }
}
