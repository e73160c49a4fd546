/*
 * What musl 1.2 lacks of what the runtime calls, for the front end linked with it (main.c):
 * the kernel's newer system calls (glibc 2.36 wraps them), glibc's strerrorname_np and
 * __libc_single_threaded, and a dprintf that writes once. Included before everything by
 * Package.swift's musl flags; empty under glibc.
 */
#ifndef AZL_MUSL_COMPAT_H
#define AZL_MUSL_COMPAT_H
#if defined(__linux__) && !defined(__GLIBC__) && !defined(__ANDROID__)
#include <errno.h>
#include <stddef.h>
#include <linux/mount.h>   /* the mount API's flags and struct mount_attr (glibc's sys/mount.h has them) */
#include <linux/stat.h>    /* struct statx */
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* One write per message, as glibc's dprintf makes: musl's is unbuffered and flushes its 80-byte
 * scratch buffer as it goes, so a message from a die() came out in pieces that another writer
 * of the same stderr (the command, a parallel run) could split. Longer than BUF: as musl does. */
#include <stdarg.h>
#include <stdio.h>
static inline int azl_dprintf(int fd, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf) {
        va_start(ap, fmt);
        n = vdprintf(fd, fmt, ap);
        va_end(ap);
        return n;
    }
    return (int)write(fd, buf, (size_t)n);
}
#define dprintf azl_dprintf

/* This program is single-threaded: C only, and it never starts a thread. */
#define __libc_single_threaded 1

struct mount_attr;
struct statx;
static inline int open_tree(int dfd, const char *path, unsigned flags) { return (int)syscall(SYS_open_tree, dfd, path, flags); }
static inline int move_mount(int from, const char *fp, int to, const char *tp, unsigned flags) {
    return (int)syscall(SYS_move_mount, from, fp, to, tp, flags);
}
static inline int fsopen(const char *fs, unsigned flags) { return (int)syscall(SYS_fsopen, fs, flags); }
static inline int fsconfig(int fd, unsigned cmd, const char *key, const void *val, int aux) {
    return (int)syscall(SYS_fsconfig, fd, cmd, key, val, aux);
}
static inline int fsmount(int fd, unsigned flags, unsigned attrs) { return (int)syscall(SYS_fsmount, fd, flags, attrs); }
static inline int mount_setattr(int dfd, const char *path, unsigned flags, struct mount_attr *a, size_t size) {
    return (int)syscall(SYS_mount_setattr, dfd, path, flags, a, size);
}
static inline int close_range(unsigned first, unsigned last, int flags) { return (int)syscall(SYS_close_range, first, last, flags); }
static inline int statx(int dfd, const char *path, int flags, unsigned mask, struct statx *buf) {
    return (int)syscall(SYS_statx, dfd, path, flags, mask, buf);
}
/* The abbreviated errno names of --abi-report ("EPERM"): only those a policy answers with. */
static inline const char *strerrorname_np(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return NULL;
    }
}
#endif
#endif
