/*
 * The C half of the kernel policy (see seccomp_notify.h for the API and the order of calls).
 *
 * Why a user notification for uname: the filter cannot change what a syscall returns in
 * memory, only its return value. So uname(2) is handed to a server (the sandbox's pid 1) that
 * writes the target kernel's strings into the caller's buffer and makes the call return 0.
 * It works for static
 * binaries (Go, musl) too: no LD_PRELOAD. Measured cost ~50 us per uname, which builds call
 * rarely. Every other syscall is decided by the BPF program in the kernel alone.
 */
#include "seccomp_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#define AZL_UTS_LEN 65   /* __NEW_UTS_LEN + 1: six fields of struct new_utsname, 390 bytes */
#define AZL_BPF_MAXINSNS 4096

int azl_seccomp_install(const uint8_t *bpf, size_t len, int want_listener, int nnp) {
    if (!bpf || len == 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > AZL_BPF_MAXINSNS) {
        errno = EINVAL;
        return -1;
    }
    /* The plan's nnp record: no setuid/file-cap gains after exec (and what lets a process
     * without CAP_SYS_ADMIN load a filter at all). */
    if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    struct sock_fprog prog = {
        .len = (unsigned short)(len / sizeof(struct sock_filter)),
        .filter = (struct sock_filter *)(uintptr_t)bpf,
    };
    if (want_listener) {
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                          SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
        if (fd >= 0) return (int)fd;
        if (errno != EINVAL) return -1;
        /* Kernel older than 5.19: no WAIT_KILLABLE_RECV. */
        fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
        return fd < 0 ? -1 : (int)fd;
    }
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -1 : 0;
}

/* The uname calls the filter notifies, by the struct the caller's buffer is: new_utsname
 * (6 x 65 bytes), old_utsname (i386 olduname: 5 x 65) or oldold_utsname (i386 oldolduname:
 * 5 x 9, each field cut to 8 bytes and NUL-terminated, as the kernel does). */
struct uts_layout { int fields, len; };
static struct uts_layout uts_layout_of(uint32_t arch, int nr) {
    struct uts_layout none = { 0, 0 }, news = { 6, AZL_UTS_LEN }, old = { 5, AZL_UTS_LEN }, oldold = { 5, 9 };
    switch (arch) {
    case AUDIT_ARCH_X86_64: return nr == 63 ? news : none;
    case AUDIT_ARCH_I386: return nr == 122 ? news : nr == 109 ? old : nr == 59 ? oldold : none;
    case AUDIT_ARCH_AARCH64: return nr == 160 ? news : none;
    default: return none;
    }
}

static void put_field(char *dst, size_t len, const char *src) {
    memset(dst, 0, len);
    if (src) memcpy(dst, src, strnlen(src, len - 1));
}

/* Buffers sized by the kernel (SECCOMP_GET_NOTIF_SIZES): the structs may grow in new kernels. */
static union { struct seccomp_notif n; char b[1024]; } notif_buf;
static union { struct seccomp_notif_resp r; char b[1024]; } resp_buf;
static struct seccomp_notif_sizes sizes;

/* PID's mem file: under PROCFD when given (only beneath it, no mount crossing, no symlink),
 * else through the path /proc. */
static int open_mem(int procfd, unsigned pid) {
    char path[64];
    if (procfd < 0) {
        snprintf(path, sizeof path, "/proc/%u/mem", pid);
        return open(path, O_RDWR | O_CLOEXEC);
    }
    snprintf(path, sizeof path, "%u/mem", pid);
    struct open_how how = {
        .flags = O_RDWR | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
    };
    int fd = (int)syscall(SYS_openat2, procfd, path, &how, sizeof how);
    if (fd < 0 && errno == ENOSYS) fd = openat(procfd, path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    return fd;
}

int azl_seccomp_handle_one_hooked(int listener, int procfd, const struct azl_seccomp_uname *answer,
                                  azl_seccomp_hook hook, void *ctx) {
    if (sizes.seccomp_notif == 0) {
        if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return -1;
        if (sizes.seccomp_notif > sizeof notif_buf || sizes.seccomp_notif_resp > sizeof resp_buf) {
            sizes.seccomp_notif = 0;
            errno = EOVERFLOW;
            return -1;
        }
    }
    struct seccomp_notif *req = &notif_buf.n;
    struct seccomp_notif_resp *resp = &resp_buf.r;
    memset(req, 0, sizes.seccomp_notif);   /* the kernel insists on a zeroed request */
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
        /* ENOENT: the caller was interrupted (signal) or died before we got it. */
        if (errno == ENOENT || errno == EINTR || errno == EAGAIN) return 0;
        return -1;
    }
    memset(resp, 0, sizes.seccomp_notif_resp);
    resp->id = req->id;

    struct uts_layout lay = uts_layout_of(req->data.arch, (int)req->data.nr);
    if (!lay.fields) {
        int e = hook ? hook(ctx, req->data.arch, req->data.nr, req->pid) : 0;
        resp->error = -(e ? e : ENOSYS);
    } else {
        char uts[6 * AZL_UTS_LEN];
        struct utsname own;
        if (uname(&own) < 0) memset(&own, 0, sizeof own);
        const char *f[6] = {
            own.sysname, answer && answer->nodename ? answer->nodename : own.nodename,
            answer && answer->release ? answer->release : own.release,
            answer && answer->version ? answer->version : own.version,
            answer && answer->machine ? answer->machine : own.machine,
            answer && answer->domainname ? answer->domainname : own.domainname,
        };
        for (int i = 0; i < lay.fields; i++) put_field(uts + i * lay.len, (size_t)lay.len, f[i]);
        size_t size = (size_t)(lay.fields * lay.len);

        int mem = open_mem(procfd, (unsigned)req->pid);
        /* The pid is only known to be the caller's while the notification is alive: check
         * after opening (the open fd then pins that task's mm), before writing. */
        if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
            if (mem >= 0) close(mem);
            return 0;
        }
        if (mem < 0) {
            /* Cannot reach the caller's memory (the server is root of the caller's user
             * namespace or an ancestor, so only a binary whose memory belongs to no namespace
             * we own gets here). Let the real uname run rather than fail the program. */
            resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        } else {
            ssize_t w = pwrite(mem, uts, size, (off_t)req->data.args[0]);
            close(mem);
            if (w != (ssize_t)size) resp->error = -EFAULT;   /* a bad pointer: what uname says */
        }
    }
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0) {
        if (errno == ENOENT) return 0;   /* the caller went away meanwhile */
        return -1;
    }
    return 1;
}

int azl_seccomp_drop_bounding(uint64_t keep) {
    /* Dropped unread: a new user namespace starts with the full set, and a drop of a cap not in
     * it succeeds (42 reads fewer a run). EINVAL: past the kernel's last capability. Without
     * CAP_SETPCAP every drop is refused: then only what is there must go, which the read tells. */
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
        if (errno == EINVAL) break;
        if (errno != EPERM) return -1;
        int have = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (have < 0) break;
        if (have) return -1;
    }
    return 0;
}

int azl_seccomp_set_caps(const struct azl_seccomp_caps *caps) {
    /* permitted/effective/inheritable, never raising what the process does not have. */
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capget, &h, d) < 0) return -1;
    uint64_t cur_p = d[0].permitted | (uint64_t)d[1].permitted << 32;
    uint64_t cur_i = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
    uint64_t p = caps->permitted & cur_p;
    uint64_t e = caps->effective & p;
    uint64_t i = caps->inheritable & (cur_i | cur_p) & caps->bounding;
    d[0].permitted = (uint32_t)p; d[1].permitted = (uint32_t)(p >> 32);
    d[0].effective = (uint32_t)e; d[1].effective = (uint32_t)(e >> 32);
    d[0].inheritable = (uint32_t)i; d[1].inheritable = (uint32_t)(i >> 32);
    h.version = _LINUX_CAPABILITY_VERSION_3;
    h.pid = 0;
    if (syscall(SYS_capset, &h, d) < 0) return -1;
    /* Ambient: cleared, then exactly the requested ones (each must be permitted and inheritable). */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && caps->ambient) return -1;
    for (int cap = 0; cap < 64; cap++)
        if ((caps->ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long azl_seccomp_hex_decode(const char *text, uint8_t *out, size_t cap) {
    size_t n = strlen(text);
    if (n % 2 || n / 2 > cap) { errno = EINVAL; return -1; }
    for (size_t k = 0; k < n / 2; k++) {
        int hi = hexval(text[2 * k]), lo = hexval(text[2 * k + 1]);
        if (hi < 0 || lo < 0) { errno = EINVAL; return -1; }
        out[k] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}
