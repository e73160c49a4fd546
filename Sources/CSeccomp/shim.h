// libseccomp for Swift: the header, plus inline wrappers for what Swift cannot call
// (function-like macros such as SCMP_ACT_ERRNO, the variadic seccomp_rule_add) and the
// BPF export into memory (libseccomp 2.5.4, Debian 12's, has no seccomp_export_bpf_mem:
// it writes to a file descriptor, so a memfd catches it). No policy lives here.
#ifndef AZL_CSECCOMP_SHIM_H
#define AZL_CSECCOMP_SHIM_H
/* No _GNU_SOURCE here: it would change glibc's struct definitions against SwiftGlibc's. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <seccomp.h>

static inline uint32_t azl_scmp_act_errno(uint16_t e) { return SCMP_ACT_ERRNO(e); }
static inline uint32_t azl_scmp_act_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t azl_scmp_act_notify(void) { return SCMP_ACT_NOTIFY; }

/* A rule with no argument filter. */
static inline int azl_scmp_rule(scmp_filter_ctx ctx, uint32_t action, int nr) {
    return seccomp_rule_add_array(ctx, action, nr, 0, NULL);
}

/* A rule matching (arg[argIndex] & mask) == datum. */
static inline int azl_scmp_rule_masked_eq(scmp_filter_ctx ctx, uint32_t action, int nr,
                                          unsigned argIndex, uint64_t mask, uint64_t datum) {
    struct scmp_arg_cmp cmp = { .arg = argIndex, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = datum };
    return seccomp_rule_add_array(ctx, action, nr, 1, &cmp);
}

/* The filter as classic BPF bytes (struct sock_filter[], 8 bytes each). Returns 0 and a
 * malloc'd buffer in *out (free it), or a negative errno. */
static inline int azl_scmp_export_bpf(scmp_filter_ctx ctx, uint8_t **out, size_t *len) {
    int fd = (int)syscall(SYS_memfd_create, "azl-seccomp-bpf", 1u /* MFD_CLOEXEC */);
    if (fd < 0) {
        char tmpl[] = "/tmp/azl-seccomp-XXXXXX";
        fd = mkstemp(tmpl);
        if (fd < 0) return -errno;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        unlink(tmpl);
    }
    int rc = seccomp_export_bpf(ctx, fd);
    if (rc < 0) { close(fd); return rc; }
    struct stat st;
    if (fstat(fd, &st) < 0) { rc = -errno; close(fd); return rc; }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) { close(fd); return -ENOMEM; }
    size_t off = 0;
    while (off < n) {
        ssize_t r = pread(fd, buf + off, n - off, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { rc = r < 0 ? -errno : -EIO; free(buf); close(fd); return rc; }
        off += (size_t)r;
    }
    close(fd);
    *out = buf;
    *len = n;
    return 0;
}

/* The filter as libseccomp's readable pseudo code (for `azl-shell kernel --pfc` / tests). */
static inline int azl_scmp_export_pfc(scmp_filter_ctx ctx, char **out, size_t *len) {
    int fd = (int)syscall(SYS_memfd_create, "azl-seccomp-pfc", 1u);
    if (fd < 0) return -errno;
    int rc = seccomp_export_pfc(ctx, fd);
    if (rc < 0) { close(fd); return rc; }
    struct stat st;
    if (fstat(fd, &st) < 0) { rc = -errno; close(fd); return rc; }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) { close(fd); return -ENOMEM; }
    size_t off = 0;
    while (off < n) {
        ssize_t r = pread(fd, buf + off, n - off, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { free(buf); close(fd); return -EIO; }
        off += (size_t)r;
    }
    buf[n] = 0;
    close(fd);
    *out = buf;
    *len = n;
    return 0;
}
#endif
