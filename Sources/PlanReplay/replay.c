/*
 * The lean azl-shell's first act: a warm `run` or `exec` is carried out from this constructor, before
 * Swift's runtime initialises (no metadata, no allocations of its own), by the plan cache's
 * C lookup (Sources/SandboxRuntime/plan_cache.c). Anything else returns, and Swift's main
 * hands the command line to azl-shell-cli.
 */
#include "azl_sandbox.h"

/* glibc passes argc, argv and envp to the functions of .init_array. Priority 101, the first
 * a program may use: before the constructors of Swift's runtime. */
__attribute__((constructor(101))) static void replay_cached_plan(int argc, char **argv, char **envp) {
    azl_plan_cache_replay(argc, argv, envp);
}
