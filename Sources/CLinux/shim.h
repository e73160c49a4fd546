// Thin inline wrappers for Linux calls Swift cannot reach directly (variadic `syscall`,
// headers glibc 2.36 does not ship). No logic lives here.
#ifndef AZL_CLINUX_SHIM_H
#define AZL_CLINUX_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <linux/openat2.h>

static inline int azl_openat2(int dirfd, const char *path, int flags, int mode, uint64_t resolve) {
    struct open_how how = { .flags = (uint64_t)flags, .mode = (uint64_t)mode, .resolve = resolve };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}
static inline int azl_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}
static inline int azl_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
static inline int azl_openat_mode(int dirfd, const char *path, int flags, int mode) { return openat(dirfd, path, flags, mode); }
static inline unsigned int azl_major(uint64_t dev) { return major(dev); }
static inline unsigned int azl_minor(uint64_t dev) { return minor(dev); }
static const uint64_t AZL_RESOLVE_IN_ROOT = RESOLVE_IN_ROOT;
static const uint64_t AZL_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
static const int AZL_O_PATH = O_PATH;
static const long AZL_UTIME_OMIT = UTIME_OMIT;
#endif
