/* Parsing the plan (format in plan.h). Every length is checked against the
 * buffer; every string field is NUL-terminated inside its record. */
#include "plan.h"
#include "seccomp_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Unsigned decimal (or octal when BASE is 8), whole string, fits in 32 bits. */
static int parse_uint(const char *s, int base, unsigned *out) {
    if (!*s) return -1;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > (base == 8 ? '7' : '9')) return -1;
    errno = 0;
    unsigned long v = strtoul(s, NULL, base);
    if (errno || v > UINT32_MAX) return -1;
    *out = (unsigned)v;
    return 0;
}

static int kind_of(const char *s) {
    static const char *names[] = { "bind", "tmpfs", "proc", "devpts", "mkdir", "symlink", "file", "remount-ro", "rofile", "overlay" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i]) == 0) return (int)i;
    return -1;
}

/* FLAGS is a comma-separated word list, "" for none. */
static int mount_flags_of(const char *s, unsigned *out) {
    static const struct { const char *name; unsigned bit; } words[] = {
        { "ro", MF_RO }, { "rec", MF_REC }, { "optional", MF_OPTIONAL },
        { "nosuid", MF_NOSUID }, { "nodev", MF_NODEV }, { "noexec", MF_NOEXEC }, { "guard", MF_GUARD },
    };
    *out = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        size_t i;
        for (i = 0; i < sizeof words / sizeof *words; i++)
            if (strlen(words[i].name) == n && strncmp(s, words[i].name, n) == 0) break;
        if (i == sizeof words / sizeof *words) return -1;
        *out |= words[i].bit;
        s += n;
        if (*s == ',') s++;
    }
    return 0;
}

static int parse_map(struct idmap *m, char **f, int n, const char *what, char *err, size_t errlen) {
    if (n < 4 || (n - 1) % 3 != 0 || n - 1 > PLAN_MAX_MAP)
        return fail(err, errlen, "bad %s record", what);
    m->helper = f[0];
    m->nfields = n - 1;
    for (int i = 1; i < n; i++) {
        unsigned v;
        if (parse_uint(f[i], 10, &v)) return fail(err, errlen, "bad number '%s' in %s", f[i], what);
        m->fields[i - 1] = f[i];
    }
    return 0;
}

/* Exactly 16 hex digits (a 64-bit capability mask). */
static int parse_mask(const char *s, unsigned long long *out) {
    if (strlen(s) != 16) return -1;
    unsigned long long v = 0;
    for (const char *c = s; *c; c++) {
        int d = *c >= '0' && *c <= '9' ? *c - '0' : *c >= 'a' && *c <= 'f' ? *c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Copy the field pointers of a record into a fresh NULL-terminated array. */
static char **vec(char **f, int n) {
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) return NULL;
    memcpy(v, f, (size_t)n * sizeof *v);
    return v;
}

int plan_parse(char *buf, size_t len, struct plan *p, char *err, size_t errlen) {
    /* Grown as needed: a command line is bounded by the kernel's execve limits, not by us. */
    static char **f;
    static size_t fcap;
    size_t off = 0;
    int first = 1;
    while (off < len) {
        if (len - off < 4) return fail(err, errlen, "truncated plan");
        uint32_t rlen = (uint32_t)(unsigned char)buf[off] | (uint32_t)(unsigned char)buf[off + 1] << 8 |
                        (uint32_t)(unsigned char)buf[off + 2] << 16 | (uint32_t)(unsigned char)buf[off + 3] << 24;
        off += 4;
        if (rlen == 0 || rlen > len - off) return fail(err, errlen, "truncated plan record");
        char *r = buf + off;
        off += rlen;
        if (r[rlen - 1] != '\0') return fail(err, errlen, "plan record not terminated");
        int n = 0;
        for (char *c = r; c < r + rlen; c += strlen(c) + 1) {
            if ((size_t)n == fcap) {
                size_t cap = fcap ? fcap * 2 : 256;
                char **q = realloc(f, cap * sizeof *f);
                if (!q) return fail(err, errlen, "out of memory");
                f = q;
                fcap = cap;
            }
            f[n++] = c;
        }
        const char *name = f[0];
        char **a = f + 1;
        int na = n - 1;
        if (first) {
            if (strcmp(name, "azl-plan") != 0 || na != 1)
                return fail(err, errlen, "not an azl-shell plan");
            if (strcmp(a[0], PLAN_VERSION) != 0)
                return fail(err, errlen, "plan version %s, this helper reads %s (azl-shell and azl-shell-sandbox are from different builds)", a[0], PLAN_VERSION);
            first = 0;
        } else if (strcmp(name, "ns") == 0) {
            for (int i = 0; i < na; i++) {
                if (!strcmp(a[i], "user")) p->ns |= NS_USER;
                else if (!strcmp(a[i], "mount")) p->ns |= NS_MOUNT;
                else if (!strcmp(a[i], "pid")) p->ns |= NS_PID;
                else if (!strcmp(a[i], "uts")) p->ns |= NS_UTS;
                else if (!strcmp(a[i], "ipc")) p->ns |= NS_IPC;
                else if (!strcmp(a[i], "net")) p->ns |= NS_NET;
                else return fail(err, errlen, "unknown namespace '%s' in plan", a[i]);
            }
        } else if (strcmp(name, "flags") == 0) {
            for (int i = 0; i < na; i++) {
                if (!strcmp(a[i], "verbose")) p->flags |= PF_VERBOSE;
                else if (!strcmp(a[i], "pty")) p->flags |= PF_PTY;
                else return fail(err, errlen, "unknown flag '%s' in plan", a[i]);
            }
        } else if (strcmp(name, "uidmap") == 0) {
            if (parse_map(&p->uidmap, a, na, "uidmap", err, errlen)) return -1;
        } else if (strcmp(name, "gidmap") == 0) {
            if (parse_map(&p->gidmap, a, na, "gidmap", err, errlen)) return -1;
        } else if (strcmp(name, "root") == 0) {
            if (na != 2 || a[0][0] != '/') return fail(err, errlen, "bad root record");
            p->root_lower = a[0];
            if (!strcmp(a[1], "overlay")) p->root_readonly = 0;
            else if (!strcmp(a[1], "overlay-ro")) p->root_readonly = 1;
            else return fail(err, errlen, "unknown root mode '%s'", a[1]);
        } else if (strcmp(name, "lower") == 0) {
            if (na != 1 || a[0][0] != '/') return fail(err, errlen, "bad lower record");
            if (p->nlowers == PLAN_MAX_LOWERS) return fail(err, errlen, "too many lower layers");
            p->lowers[p->nlowers++] = a[0];
        } else if (strcmp(name, "upper") == 0) {
            if (na != 2 || a[0][0] != '/' || a[1][0] != '/') return fail(err, errlen, "bad upper record");
            p->root_upper = a[0];
            p->root_work = a[1];
        } else if (strcmp(name, "mount") == 0) {
            if (na != 6) return fail(err, errlen, "bad mount record");
            if (p->nmounts == PLAN_MAX_MOUNTS) return fail(err, errlen, "too many mounts");
            struct mount_op *m = &p->mounts[p->nmounts++];
            if ((m->kind = kind_of(a[0])) < 0) return fail(err, errlen, "unknown mount kind '%s'", a[0]);
            m->dst = a[1];
            m->src = a[2];
            m->data = a[3];
            if (m->dst[0] != '/') return fail(err, errlen, "mount target '%s' is not absolute", m->dst);
            if (m->kind == MK_BIND && m->src[0] != '/') return fail(err, errlen, "bind source '%s' is not absolute", m->src);
            if (m->kind == MK_OVERLAY && (m->src[0] != '/' || m->data[0] != '/')) return fail(err, errlen, "bad overlay mount of '%s'", m->src);
            if (mount_flags_of(a[4], &m->flags)) return fail(err, errlen, "bad mount flags '%s'", a[4]);
            if (parse_uint(a[5], 8, &m->mode) || m->mode > 07777) return fail(err, errlen, "bad mode '%s'", a[5]);
        } else if (strcmp(name, "hostname") == 0) {
            if (na != 1) return fail(err, errlen, "bad hostname record");
            p->hostname = a[0];
        } else if (strcmp(name, "user") == 0) {
            unsigned u, g;
            if (na != 2 || parse_uint(a[0], 10, &u) || parse_uint(a[1], 10, &g)) return fail(err, errlen, "bad user record");
            p->uid = u;
            p->gid = g;
        } else if (strcmp(name, "cwd") == 0) {
            if (na != 1 || a[0][0] != '/') return fail(err, errlen, "bad cwd record");
            p->cwd = a[0];
        } else if (strcmp(name, "env") == 0) {
            if (!(p->env = vec(a, na))) return fail(err, errlen, "out of memory");
        } else if (strcmp(name, "seccomp") == 0) {
            if (na != 2 || p->bpf) return fail(err, errlen, "bad seccomp record");
            size_t hl = strlen(a[0]);
            if (hl == 0 || hl % 16 || hl / 2 > PLAN_MAX_BPF_INSNS * 8)
                return fail(err, errlen, "bad seccomp program size (%zu hex digits)", hl);
            if (!(p->bpf = malloc(hl / 2))) return fail(err, errlen, "out of memory");
            long n = azl_seccomp_hex_decode(a[0], p->bpf, hl / 2);
            if (n != (long)(hl / 2)) return fail(err, errlen, "bad hex in the seccomp record");
            p->bpf_len = (size_t)n;
            if (!strcmp(a[1], "notify-uname")) p->notify_uname = 1;
            else if (strcmp(a[1], "-")) return fail(err, errlen, "unknown seccomp option '%s'", a[1]);
        } else if (strcmp(name, "caps") == 0) {
            if (na != 5 || p->have_caps) return fail(err, errlen, "bad caps record");
            for (int i = 0; i < 5; i++)
                if (parse_mask(a[i], &p->caps[i])) return fail(err, errlen, "bad capability mask '%s'", a[i]);
            p->have_caps = 1;
        } else if (strcmp(name, "uname") == 0) {
            if (na != 3 || p->uts_release) return fail(err, errlen, "bad uname record");
            if (!*a[0] || strlen(a[0]) > PLAN_UTS_MAX || strlen(a[1]) > PLAN_UTS_MAX || strlen(a[2]) > PLAN_UTS_MAX)
                return fail(err, errlen, "uname release, version or machine longer than %d bytes", PLAN_UTS_MAX);
            p->uts_release = a[0];
            p->uts_version = a[1];
            p->uts_machine = a[2];
        } else if (strcmp(name, "abi-report") == 0) {
            if (na != 1 || a[0][0] != '/' || p->abi_report) return fail(err, errlen, "bad abi-report record");
            p->abi_report = a[0];
        } else if (strcmp(name, "abi-call") == 0) {
            struct abi_call *c = &p->abi_calls[p->nabi];
            unsigned e;
            if (p->nabi == PLAN_MAX_ABI_CALLS) return fail(err, errlen, "too many abi-call records");
            if (na != 5 || parse_uint(a[0], 10, &c->arch) || parse_uint(a[1], 10, &c->nr) || parse_uint(a[2], 10, &e) ||
                !e || e > 4095 || !*a[3])
                return fail(err, errlen, "bad abi-call record");
            c->err = (int)e;
            c->name = a[3];
            c->reason = a[4];
            p->nabi++;
        } else if (strcmp(name, "binfmt") == 0) {
            /* The register line is ":NAME:M::MAGIC:MASK:INTERP:FOC": no field may hold a ':'. */
            if (na != 4 || p->binfmt_name || a[3][0] != '/') return fail(err, errlen, "bad binfmt record");
            for (int i = 0; i < 4; i++)
                if (!*a[i] || strchr(a[i], ':') || strlen(a[i]) > 256) return fail(err, errlen, "bad binfmt field '%s'", a[i]);
            p->binfmt_name = a[0];
            p->binfmt_magic = a[1];
            p->binfmt_mask = a[2];
            p->binfmt_interp = a[3];
        } else if (strcmp(name, "nnp") == 0) {
            if (na != 0) return fail(err, errlen, "bad nnp record");
            p->nnp = 1;
        } else if (strcmp(name, "keeper") == 0) {
            if (na != 3 || a[0][0] != '/' || a[1][0] != '/' || parse_uint(a[2], 10, &p->keeper_idle) || !p->keeper_idle)
                return fail(err, errlen, "bad keeper record");
            p->keeper_program = a[0];
            p->keeper_state = a[1];
        } else if (strcmp(name, "guard") == 0) {
            int kind = na != 2 ? -1 : !strcmp(a[0], "hide") ? GUARD_HIDE : !strcmp(a[0], "ro") ? GUARD_RO : !strcmp(a[0], "pin") ? GUARD_PIN : -1;
            if (kind < 0 || a[1][0] != '/') return fail(err, errlen, "bad guard record");
            if (p->nguards == PLAN_MAX_GUARDS) return fail(err, errlen, "too many guard records");
            p->guards[p->nguards].kind = kind;
            p->guards[p->nguards++].path = a[1];
        } else if (strcmp(name, "live") == 0) {
            if (na != 2 || a[0][0] != '/' || parse_uint(a[1], 10, &p->env_idle) || p->env_dir) return fail(err, errlen, "bad live record");
            p->env_dir = a[0];
        } else if (strcmp(name, "session-bind") == 0) {
            if (na != 2 || a[0][0] != '/' || a[1][0] != '/' || p->session_src) return fail(err, errlen, "bad session-bind record");
            p->session_src = a[0];
            p->session_dst = a[1];
        } else if (strcmp(name, "remove") == 0) {
            if (na != 1 || a[0][0] != '/' || p->remove_path) return fail(err, errlen, "bad remove record");
            p->remove_path = a[0];
        } else if (strcmp(name, "argv") == 0) {
            if (na < 1) return fail(err, errlen, "empty command");
            if (!(p->argv = vec(a, na))) return fail(err, errlen, "out of memory");
        } else {
            return fail(err, errlen, "unknown plan record '%s' (azl-shell and azl-shell-sandbox are from different builds)", name);
        }
    }
    if (first) return fail(err, errlen, "empty plan");
    if (!p->root_lower) return fail(err, errlen, "plan has no root");
    if (!p->argv) return fail(err, errlen, "plan has no command");
    if (!(p->ns & NS_USER) || !(p->ns & NS_MOUNT) || !(p->ns & NS_PID))
        return fail(err, errlen, "plan lacks the user, mount or pid namespace");
    if (!p->uidmap.nfields || !p->gidmap.nfields) return fail(err, errlen, "plan has no id maps");
    if (p->notify_uname != (p->uts_release != NULL))
        return fail(err, errlen, "plan notifies uname without a uname record, or the reverse");
    if (p->keeper_state && (!p->uidmap.helper || !*p->uidmap.helper || !p->gidmap.helper || !*p->gidmap.helper))
        return fail(err, errlen, "plan keeps a user namespace whose maps no helper writes");
    if (!p->env) {
        static char *none[] = { NULL };
        p->env = none;
    }
    if (p->nabi && !p->abi_report) return fail(err, errlen, "plan has abi-call records without an abi-report record");
    if (p->abi_report && !p->bpf) return fail(err, errlen, "plan asks for an ABI report without a seccomp program");
    p->abi_fd = -1;
    if (!p->cwd) p->cwd = "/";
    return 0;
}
