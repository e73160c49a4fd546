/*
 * The program users run. A warm `run` or `exec` is carried out here: when the plan cache holds
 * the plan of this very command line (plan_cache.c says what a hit means), it is replayed in this
 * process, which becomes the supervisor. Everything else, and every miss, goes to azl-shell-cli
 * (Swift) with the same arguments and environment.
 *
 * C only, and linked with musl where the machine has it (Package.swift): a static glibc program
 * probes the CPU's features and caches before main, some fifty CPUID instructions, and in a VM
 * each one exits to the hypervisor (~5 us on the machines we measure on: 0.3 ms of a 2.8 ms warm
 * run; musl probes nothing). The runtime's sources are compiled into this program as they are
 * (the files of runtime/ include them), with include/musl_compat.h supplying what musl 1.2 lacks.
 */
#include "azl_sandbox.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where azl-shell-cli is: beside us, or in ../libexec/azl-shell/ (an install's layout). */
static int sibling(const char *name, char *out, size_t size) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        dprintf(2, "azl-shell: cannot find my own binary /proc/self/exe: %s\n", strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash && slash != exe) *slash = '\0';
    else if (slash) exe[1] = '\0';
    const char *where[] = { "%s/%s", "%s/../libexec/azl-shell/%s" };
    for (int i = 0; i < 2; i++)
        if (snprintf(out, size, where[i], exe, name) < (int)size && access(out, X_OK) == 0) return 0;
    dprintf(2, "azl-shell: cannot find %s beside %s/azl-shell (install %s in the same directory as azl-shell)\n", name, exe, name);
    return -1;
}

int main(int argc, char **argv, char **envp) {
    azl_plan_cache_replay(argc, argv, envp);   /* returns only on a miss */
    char cli[PATH_MAX + 64];
    if (sibling("azl-shell-cli", cli, sizeof cli) == 0) {
        execve(cli, argv, envp);
        dprintf(2, "azl-shell: cannot start %s: %s\n", cli, strerror(errno));
    }
    return 125;
}
