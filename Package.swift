// swift-tools-version:6.0
import PackageDescription

// One library module per concern; the executable is a thin shell over `Commands`.
// The C we write lives in `SandboxRuntime` (the single-threaded part that carries out a
// sandbox plan, and the plan cache's lookup) and `PlanReplay` (its constructor); everything
// else is Swift over system libraries.
let package = Package(
    name: "azl-shell",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "azl-shell", targets: ["azl-shell"]),
        .executable(name: "azl-shell-cli", targets: ["azl-shell-cli"]),
        .executable(name: "azl-shell-sandbox", targets: ["azl-shell-sandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // System libraries: module maps only.
        .systemLibrary(name: "CArchive", pkgConfig: "libarchive",
                       providers: [.apt(["libarchive-dev"])]),

        // Inline wrappers for Linux calls Swift cannot make directly (openat2, ...).
        .systemLibrary(name: "CLinux"),
        // libseccomp (module map + inline wrappers for its macros; used by Kernel only).
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp",
                       providers: [.apt(["libseccomp-dev"])]),

        // Errors, paths, locks, atomic writes, digests.
        .target(name: "Core", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // libarchive reading and the safe extractor.
        .target(name: "Archive", dependencies: ["Core", "CArchive", "CLinux"]),
        // Content-addressed blobs, image records, unpacked trees, GC.
        .target(name: "Store", dependencies: ["Core", "Archive", "CLinux"]),
        // Image references, the OCI distribution API, auth, manifests, platform choice.
        .target(name: "Registry", dependencies: [
            "Core", .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // The TOML files azl-shell reads: the bundled rootfs-manifests/ (embedded at build time)
        // and the user's overrides, project files (azl-shell.toml) and their locks.
        .target(name: "Manifests", dependencies: ["Core", "Kernel", .product(name: "TOMLKit", package: "TOMLKit")]),
        // SandboxPlan, its builder, and the launcher that hands it to the C part.
        .target(name: "Sandbox", dependencies: ["Core", "CLinux", "SandboxLaunch"]),
        // What both entry points need to start the C part: the launcher and the plan cache.
        // No Foundation, so the lean `azl-shell` that links it starts in a millisecond.
        .target(name: "SandboxLaunch", dependencies: ["CLinux", "SandboxRuntime"]),
        // Kernel profiles, the per-arch syscall tables (generated Swift, see kernel-data/gen-swift.py),
        // the seccomp program (libseccomp) and the capability sets.
        .target(name: "Kernel", dependencies: ["Core", "CSeccomp", "SandboxRuntime"]),
        // `azl-shell doctor`'s checks, over a host-facts layer tests can fake; the kernel
        // probes that fork into a user namespace are C (SandboxRuntime/doctor_probe.c).
        .target(name: "Doctor", dependencies: ["Core", "SandboxRuntime"]),
        // The one planning layer: a verb's request -> image (pulled on first use) -> kernel
        // policy -> SandboxPlan, ready to exec (run) or spawn (targets, steps, sessions).
        .target(name: "Planning", dependencies: [
            "Core", "CLinux", "Archive", "Store", "Sandbox", "SandboxLaunch", "SandboxRuntime", "Registry", "Manifests", "Kernel",
        ]),
        // `pkgtest`: per-manager command plans (data), the driver script one target's sandbox
        // runs, the report; the verb in Commands is a thin shell over it.
        .target(name: "PackageTest", dependencies: ["Core", "CLinux", "Manifests", "Planning"]),
        // CLI verbs: options parsed into requests for Planning, results rendered.
        .target(name: "Commands", dependencies: [
            "Core", "CLinux", "Archive", "Store", "Sandbox", "SandboxLaunch", "Registry", "Manifests", "Kernel", "Doctor", "Planning", "PackageTest",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The program users run: a warm `run` replays its cached plan from here; everything
        // else is handed to azl-shell-cli. A static executable of Swift's core library and
        // SandboxLaunch only (no Foundation): it starts in the time of a C program.
        .executableTarget(name: "azl-shell", dependencies: ["SandboxLaunch", "PlanReplay"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),
        // The constructor that replays a cached plan before Swift's runtime starts (C, one file).
        .target(name: "PlanReplay", dependencies: ["SandboxRuntime"]),
        // Every verb: calls `Commands`.
        .executableTarget(name: "azl-shell-cli", dependencies: ["Commands"]),
        // The C part: the single-threaded code that carries out a plan (clone, id
        // maps, mounts, pivot_root, pid 1, seccomp, exec). The lean azl-shell calls it in
        // process; azl-shell-cli, which has threads, execs azl-shell-sandbox.
        // nettle (HMAC-SHA256 of state files, state_mac.c) comes with libarchive.
        .target(name: "SandboxRuntime", cSettings: [.define("_GNU_SOURCE")],
                linkerSettings: [.linkedLibrary("nettle")]),
        // SandboxRuntime as a program: static, and without the Swift runtime (see
        // no_swift_runtime.c), so it starts in the time of a C no-op.
        .executableTarget(name: "azl-shell-sandbox", dependencies: ["SandboxRuntime"],
                          linkerSettings: [.unsafeFlags(["-static-executable"])]),

        // Hostile tarball builders, running the binary as the unprivileged test user, fixtures.
        .target(name: "TestSupport", dependencies: ["Core"]),

        .testTarget(name: "CoreTests", dependencies: ["Core", "TestSupport"]),
        .testTarget(name: "ArchiveTests", dependencies: ["Archive", "Core", "TestSupport"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Archive", "Core", "TestSupport"]),
        .testTarget(name: "ManifestsTests", dependencies: ["Manifests", "Core"]),
        .testTarget(name: "RegistryTests", dependencies: ["Registry", "Core", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "SandboxLaunch", "SandboxRuntime", "Core", "TestSupport"]),
        .testTarget(name: "PlanningTests", dependencies: ["Planning", "Sandbox", "Core"]),
        .testTarget(name: "PackageTestTests", dependencies: ["PackageTest", "Manifests", "Core", "Planning"]),
        .testTarget(name: "DoctorTests", dependencies: ["Doctor", "Core", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Core", "TestSupport", "SandboxRuntime"]),
        .testTarget(name: "KernelTests", dependencies: ["Kernel", "Sandbox", "Core", "TestSupport"],
                    exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)
