// swift-tools-version:6.0
import Foundation
import PackageDescription

// One library module per concern; the executable is a thin shell over `Commands`.
// The C we write lives in `SandboxRuntime` (the single-threaded part that carries out a
// sandbox plan, and the plan cache's lookup); the front end `azl-shell` is that C and a main;
// everything else is Swift over system libraries.

// The front end is linked with musl where the machine has it (Debian and Ubuntu: musl-dev,
// which scripts/setup.sh installs), else with glibc: a static glibc program spends ~0.3 ms
// before main probing the CPU in a VM (Sources/azl-shell/main.c). Its C is the runtime's,
// compiled with musl's headers, the kernel's for what musl lacks (after musl's), and
// include/musl_compat.h; nettle is Debian's static library (built for glibc: see glibc_abi.c).
#if arch(x86_64)
let machine = "x86_64"
#else
let machine = "aarch64"
#endif
let packageDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let muslLib = "/usr/lib/\(machine)-linux-musl", muslInclude = "/usr/include/\(machine)-linux-musl"
let nettleArchive = "/usr/lib/\(machine)-linux-gnu/libnettle.a"
let withMusl = ProcessInfo.processInfo.environment["AZL_SHELL_NO_MUSL"] == nil
    && ([muslLib + "/libc.a", muslLib + "/crt1.o", muslLib + "/crti.o", muslLib + "/crtn.o", muslInclude + "/stdio.h", nettleArchive]
        .allSatisfy { FileManager.default.fileExists(atPath: $0) })
let frontEndC: [CSetting] = [
    .define("_GNU_SOURCE"),
    .unsafeFlags(["-I", packageDir + "/Sources/SandboxRuntime/include"] + (withMusl ? [
        "-nostdlibinc", "-isystem", muslInclude, "-idirafter", "/usr/include", "-idirafter", "/usr/include/\(machine)-linux-gnu",
        "-include", packageDir + "/Sources/azl-shell/include/musl_compat.h",
    ] : [])),
]
let frontEndLink: [LinkerSetting] = withMusl
    ? [.unsafeFlags(["-static-executable", "-Xclang-linker", "-nostdlib", muslLib + "/crt1.o", muslLib + "/crti.o",
                     nettleArchive, muslLib + "/libc.a", muslLib + "/crtn.o"])]
    : [.linkedLibrary("nettle"), .unsafeFlags(["-static-executable"])]

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
        // The program users run: a warm `run` or `exec` replays its cached plan here; everything
        // else is handed to azl-shell-cli. C only (the runtime's sources, compiled in), static,
        // with musl where the machine has it (above).
        .executableTarget(name: "azl-shell", cSettings: frontEndC, linkerSettings: frontEndLink),
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
