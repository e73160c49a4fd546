import Core
import Testing
@testable import PackageTest

@Suite struct ManagerTests {
    @Test func placeholder() { #expect(Manager.apt.format == .deb) }
}
