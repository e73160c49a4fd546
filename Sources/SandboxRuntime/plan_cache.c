/*
 * The plan cache's input, entries and replay (docs/sandbox.md, "A warm run: the plan cache").
 *
 * In C, and run from the main of the front end `azl-shell` (Sources/azl-shell, C only), because a
 * warm run is timed in milliseconds: Swift's first use of each generic type (arrays, sets,
 * strings) instantiates its metadata from mangled names (measured: ~0.25 ms of a 3 ms run), and
 * a static glibc program probes the CPU before main (~0.3 ms in a VM; the front end uses musl).
 * One implementation serves both sides: azl-shell-cli (PlanCache.swift) computes the key, the
 * folder, the file identities and the whole entry it stores through these same functions, so a
 * stored entry and a lookup can never disagree.
 *
 * Entry (azl_plan_cache_entry; PlanCache.store writes it to its file): the magic, then chunks
 * (u32 little-endian length + bytes): key; the variables planning read
 * (azl_plan_cache_env_section); lock path; u32 dependency count; per dependency: path chunk,
 * kind byte (AZL_DEP_*), u32 count, count u64 values (its identity when stored); the plan
 * chunk; last, the state MAC
 * (state_mac.c, purpose "plan") of everything before it. Nothing of an entry is believed before
 * its MAC is: a command in a sandbox may write into any folder its binds expose, this one
 * included (issue 10: a command's own `--root` once named the folder), and an entry it wrote
 * is carried out on the host.
 */
#include "azl_sandbox.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAGIC "azl-plan-cache 4\n"
#define ENTRY_MAX (32u << 20)   /* a plan (at most PLAN_MAX_BYTES) and a key that holds the command line again */

struct buf { unsigned char *p; size_t len, cap; int failed; };

static void put(struct buf *b, const void *data, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) { b->failed = 1; return; }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void field(struct buf *b, const char *s) { put(b, s, strlen(s) + 1); }

/* NAME's (N bytes) value in ENVP (first occurrence, may be empty), NULL when unset; *TWICE when
 * it is set more than once (which one counts is then the order of environ, which nothing keeps). */
static const char *env_value(char *const envp[], const char *name, size_t n, int *twice) {
    const char *v = NULL;
    *twice = 0;
    for (; *envp; envp++)
        if (!strncmp(*envp, name, n) && (*envp)[n] == '=') {
            if (v) { *twice = 1; break; }
            v = *envp + n + 1;
        }
    return v;
}

/* The value of NAME in ENVP (first occurrence), NULL when unset or empty. */
static const char *value(char *const envp[], const char *name) {
    int twice;
    const char *v = env_value(envp, name, strlen(name), &twice);
    return v && *v ? v : NULL;
}

/* The options of the verbs whose plans are cached (RunCommand, ExecCommand, GlobalOptions,
 * PullOptionsGroup, SessionOptions in Sources/Commands), with the verbs each belongs to: 1 takes
 * a value, 0 is a flag. The test `optionTableMatchesTheParser` holds this table against the
 * option parser's own description of each verb, so the two cannot drift apart. */
enum { RUN = 1, EXEC = 2 };
static const struct { const char *name; int value, verbs; } options[] = {
    { "--root", 1, RUN | EXEC }, { "--verbose", 0, RUN | EXEC }, { "-v", 0, RUN | EXEC }, { "--quiet", 0, RUN | EXEC },
    { "-q", 0, RUN | EXEC }, { "--env", 1, RUN | EXEC }, { "-e", 1, RUN | EXEC }, { "--workdir", 1, RUN | EXEC },
    { "-w", 1, RUN | EXEC }, { "--user", 1, RUN | EXEC }, { "-u", 1, RUN | EXEC }, { "--help", 0, RUN | EXEC },
    { "-h", 0, RUN | EXEC }, { "--version", 0, RUN | EXEC },
    { "--platform", 1, RUN }, { "--tls-verify", 1, RUN }, { "--creds", 1, RUN }, { "--json", 0, RUN },
    { "--image", 1, RUN }, { "--rootfs", 1, RUN }, { "--volume", 1, RUN }, { "--hostname", 1, RUN },
    { "--network", 1, RUN }, { "--read-only", 0, RUN }, { "--id-map", 1, RUN }, { "--kernel", 1, RUN },
    { "--cap-add", 1, RUN }, { "--cap-drop", 1, RUN }, { "--dry-run", 0, RUN },
    { "--matrix", 1, RUN }, { "--jobs", 1, RUN }, { "--logs", 1, RUN }, { "--abi-report", 1, RUN | EXEC },
    { "--frozen", 0, RUN }, { "--no-project", 0, RUN },
    { NULL, 0, 0 },
};

static int verb_of(const char *word) {
    return !word ? 0 : !strcmp(word, "run") ? RUN : !strcmp(word, "exec") ? EXEC : 0;
}

static int option_kind(int verb, const char *word, size_t n) {
    for (int i = 0; options[i].name; i++)
        if ((options[i].verbs & verb) && strlen(options[i].name) == n && !memcmp(options[i].name, word, n)) return options[i].value;
    return -1;
}

int azl_option_kind(const char *verb, const char *name) { return option_kind(verb_of(verb), name, strlen(name)); }

/* The --root among azl-shell's own options of `azl-shell run ...`, which end at "--" or at the
 * first word that is not one of them (the command's: `run --image deb dpkg --root ./sysroot -l`
 * gives dpkg its own --root). `exec`'s end at its NAME, which must be followed by "--" and a
 * command: what the parser does with an option after NAME is not this reader's to guess. -1
 * for any word this reader cannot be sure of the way the option parser reads it (an unknown
 * option, -eVALUE, -vq): then nothing is cached. */
static int root_option(char *const argv[], const char **root) {
    *root = NULL;
    int verb = argv[0] ? verb_of(argv[1]) : 0;
    if (!verb) return -1;
    for (int i = 2; argv[i]; i++) {
        const char *a = argv[i];
        if (verb == EXEC && (a[0] != '-' || !strcmp(a, "--")))
            return a[0] != '-' && argv[i + 1] && !strcmp(argv[i + 1], "--") && argv[i + 2] ? 0 : -1;
        if (!strcmp(a, "--")) return 0;
        if (a[0] != '-') return 0;
        if (!a[1]) return -1;
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        int kind = option_kind(verb, a, n);
        if (kind < 0 || (kind == 0 && eq)) return -1;
        if (kind == 0) continue;
        const char *v = eq ? eq + 1 : argv[++i];
        if (!v) return -1;
        if (n == 6 && !memcmp(a, "--root", 6)) *root = v;
    }
    return verb == EXEC ? -1 : 0;
}

char *azl_plan_cache_directory(char *const argv[], char *const envp[], const char *cwd) {
    /* As Paths resolves the cache folder: --root DIR -> DIR/cache, AZL_SHELL_ROOT,
     * $XDG_CACHE_HOME/azl-shell, ~/.cache/azl-shell; plus /plans. */
    const char *root, *base, *suffix;
    if (root_option(argv, &root) < 0) return NULL;
    if (!root) root = value(envp, "AZL_SHELL_ROOT");
    if (root && *root) { base = root; suffix = "/cache/plans"; }
    else if ((base = value(envp, "XDG_CACHE_HOME"))) suffix = "/azl-shell/plans";
    else if ((base = value(envp, "HOME"))) suffix = "/.cache/azl-shell/plans";
    else return NULL;
    size_t n = strlen(cwd) + strlen(base) + strlen(suffix) + 2;
    char *out = malloc(n);
    if (!out) return NULL;
    if (base[0] == '/') snprintf(out, n, "%s%s", base, suffix);
    else snprintf(out, n, "%s/%s%s", cwd, base, suffix);
    return out;
}


long azl_plan_cache_key(char *const argv[], const char *cwd, unsigned uid, unsigned gid, unsigned char **out) {
    /* What every run has: the ids, the working directory, the arguments. The environment is
     * not here: each entry holds the variables its planning read (below), whatever they are. */
    struct buf b = { 0 };
    char num[64];
    put(&b, MAGIC, strlen(MAGIC));
    snprintf(num, sizeof num, "uid=%u", uid); field(&b, num);
    snprintf(num, sizeof num, "gid=%u", gid); field(&b, num);
    put(&b, "cwd=", 4); field(&b, cwd);
    int argc = 0;
    while (argv[argc]) argc++;
    snprintf(num, sizeof num, "argc=%d", argc - 1); field(&b, num);
    for (int i = 1; i < argc; i++) field(&b, argv[i]);
    if (b.failed) { free(b.p); return -1; }
    *out = b.p;
    return (long)b.len;
}

static void put_u32(struct buf *b, uint32_t v) {
    unsigned char c[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
    put(b, c, 4);
}

long azl_plan_cache_env_section(char *const envp[], const char *const names[], int n, unsigned char **out) {
    /* u32 count; per variable: its name (chunk), set (byte), its value (chunk). */
    struct buf b = { 0 };
    put_u32(&b, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int twice;
        const char *v = env_value(envp, names[i], strlen(names[i]), &twice);
        if (twice) { free(b.p); return -1; }
        put_u32(&b, (uint32_t)strlen(names[i]));
        put(&b, names[i], strlen(names[i]));
        unsigned char set = v != NULL;
        put(&b, &set, 1);
        put_u32(&b, v ? (uint32_t)strlen(v) : 0);
        if (v) put(&b, v, strlen(v));
    }
    if (b.failed) { free(b.p); return -1; }
    *out = b.p;
    return (long)b.len;
}

int azl_plan_cache_identity(const char *path, int kind, unsigned long long out[9]) {
    /* Device, inode, type and, for content, mode, size, mtime and ctime: a rename over it, an
     * edit and a chmod all change one. [0] for a missing file. Symlinks are followed, except
     * for a resolved path (a bind source as the plan names it), which must still resolve
     * without any: the runtime opens it so (mounts.c), and a symlink planted on the way since
     * is a miss here rather than a refused bind on every later run. */
    struct stat st;
    if (kind == AZL_DEP_RESOLVED) {
        struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
        int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
        int ok = fd >= 0 && fstat(fd, &st) == 0;
        if (fd >= 0) close(fd);
        if (!ok) { out[0] = 0; return 1; }
    } else if (stat(path, &st) < 0) { out[0] = 0; return 1; }
    out[0] = 1;
    out[1] = (unsigned long long)st.st_dev;
    out[2] = (unsigned long long)st.st_ino;
    if (kind != AZL_DEP_CONTENT) { out[3] = st.st_mode & S_IFMT; return 4; }
    out[3] = st.st_mode;
    out[4] = (unsigned long long)(long long)st.st_size;
    out[5] = (unsigned long long)(long long)st.st_mtim.tv_sec;
    out[6] = (unsigned long long)st.st_mtim.tv_nsec;
    out[7] = (unsigned long long)(long long)st.st_ctim.tv_sec;
    out[8] = (unsigned long long)st.st_ctim.tv_nsec;
    return 9;
}

long azl_plan_cache_entry(const unsigned char *key, long keylen, char *const envp[], const char *const names[], int nnames,
                          const char *lockpath, const struct azl_plan_cache_dep *deps, int ndeps,
                          const unsigned char *plan, size_t planlen, unsigned char **out) {
    unsigned char secret[AZL_STATE_KEY_LEN], *env = NULL;
    if (keylen < 0 || ndeps < 0 || azl_state_key(secret) < 0) return -1;
    long envlen = azl_plan_cache_env_section(envp, names, nnames, &env);
    if (envlen < 0) return -1;
    struct buf b = { 0 };
    put(&b, MAGIC, strlen(MAGIC));
    put_u32(&b, (uint32_t)keylen);
    put(&b, key, (size_t)keylen);
    put(&b, env, (size_t)envlen);
    free(env);
    put_u32(&b, (uint32_t)strlen(lockpath));
    put(&b, lockpath, strlen(lockpath));
    put_u32(&b, (uint32_t)ndeps);
    for (int i = 0; i < ndeps; i++) {
        unsigned long long id[9];
        int n = azl_plan_cache_identity(deps[i].path, deps[i].kind, id);
        /* Another file than before planning read it: the plan may be of the old content. */
        if (deps[i].seen_count && (deps[i].seen_count != n || memcmp(deps[i].seen, id, sizeof id[0] * (size_t)n))) b.failed = 1;
        unsigned char kind = (unsigned char)deps[i].kind, v[8];
        put_u32(&b, (uint32_t)strlen(deps[i].path));
        put(&b, deps[i].path, strlen(deps[i].path));
        put(&b, &kind, 1);
        put_u32(&b, (uint32_t)n);
        for (int j = 0; j < n; j++) {
            for (int k = 0; k < 8; k++) v[k] = (unsigned char)(id[j] >> (8 * k));
            put(&b, v, 8);
        }
    }
    put_u32(&b, (uint32_t)planlen);
    put(&b, plan, planlen);
    unsigned char mac[AZL_STATE_MAC_LEN];
    if (!b.failed) azl_state_mac(secret, "plan", b.p, b.len, mac);
    put(&b, mac, sizeof mac);
    if (b.failed || b.len > ENTRY_MAX) { free(b.p); return -1; }
    *out = b.p;
    return (long)b.len;
}

int azl_plan_cache_input(char *const argv[], char *const envp[], char **dir, unsigned char **key, long *keylen) {
    /* No cache without HOME (the state folders then come from elsewhere: the passwd entry,
     * CFFIXED_USER_HOME). */
    int home = 0, twice;
    const char *h = env_value(envp, "HOME", 4, &twice);
    home = h && h[0] == '/' && !twice;
    if (!home) return -1;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';
    if (!(*dir = azl_plan_cache_directory(argv, envp, cwd))) return -1;
    if ((*keylen = azl_plan_cache_key(argv, cwd, (unsigned)getuid(), (unsigned)getgid(), key)) < 0) {
        free(*dir);
        return -1;
    }
    return 0;
}

unsigned long long azl_fnv1a(const void *data, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ ((const unsigned char *)data)[i]) * 0x100000001b3ULL;
    return h;
}

void azl_plan_cache_file_name(const unsigned char *key, long keylen, char out[32]) {
    /* FNV-1a of the key: only names the file; the key itself is compared in full. */
    snprintf(out, 32, "%016llx.plan", azl_fnv1a(key, (size_t)keylen));
}

/* An entry of this user's, in a folder only this user can write (a shared --root): cheap checks
 * before the MAC, which is what decides. */
static unsigned char *read_entry(const char *dir, const char *name, size_t *len) {
    struct stat st;
    if (stat(dir, &st) < 0 || st.st_uid != getuid() || (st.st_mode & 022)) return NULL;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return NULL;
    /* O_NONBLOCK: a fifo planted at the path must not hang us before the type check. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return NULL;
    unsigned char *b = NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022) ||
        st.st_size <= 0 || st.st_size > ENTRY_MAX || !(b = malloc((size_t)st.st_size))) goto fail;
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, b + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
        off += (size_t)n;
    }
    close(fd);
    *len = off;
    return b;
fail:
    free(b);
    close(fd);
    return NULL;
}

struct reader { const unsigned char *p; size_t len, pos; };

static int take(struct reader *r, size_t n, const unsigned char **out) {
    if (r->len - r->pos < n) return -1;
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

static int u32(struct reader *r, uint32_t *v) {
    const unsigned char *b;
    if (take(r, 4, &b)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int chunk(struct reader *r, const unsigned char **p, uint32_t *n) {
    return u32(r, n) || take(r, *n, p) ? -1 : 0;
}

/* A C string of a chunk (dependency and lock paths), in PATH. */
static int chunk_path(struct reader *r, char path[PATH_MAX]) {
    const unsigned char *p;
    uint32_t n;
    if (chunk(r, &p, &n) || n >= PATH_MAX || memchr(p, 0, n)) return -1;
    memcpy(path, p, n);
    path[n] = '\0';
    return 0;
}

int azl_plan_cache_entry_plan(const unsigned char *entry, size_t len, const unsigned char **plan, uint32_t *planlen) {
    if (len < AZL_STATE_MAC_LEN) return -1;
    struct reader r = { entry, len - AZL_STATE_MAC_LEN, 0 };
    const unsigned char *p;
    uint32_t n, c;
    if (take(&r, strlen(MAGIC), &p) || memcmp(p, MAGIC, strlen(MAGIC)) || chunk(&r, &p, &n) || u32(&r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++)
        if (chunk(&r, &p, &c) || take(&r, 1, &p) || chunk(&r, &p, &c)) return -1;
    if (chunk(&r, &p, &n) || u32(&r, &n)) return -1;
    for (uint32_t i = 0; i < n; i++)
        if (chunk(&r, &p, &c) || take(&r, 1, &p) || u32(&r, &c) || take(&r, (size_t)c * 8, &p)) return -1;
    return chunk(&r, plan, planlen) || r.pos != r.len ? -1 : 0;
}

/* Every variable the plan's planning read has the value it had (unset stays unset). */
static int env_current(struct reader *r, char *const envp[]) {
    uint32_t n;
    if (u32(r, &n) || n > 4096) return 0;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *name, *set, *val;
        uint32_t nl, vl;
        if (chunk(r, &name, &nl) || take(r, 1, &set) || chunk(r, &val, &vl)) return 0;
        int twice;
        const char *now = env_value(envp, (const char *)name, nl, &twice);
        if (twice || (now != NULL) != (set[0] == 1)) return 0;
        if (now && (strlen(now) != vl || memcmp(now, val, vl))) return 0;
    }
    return 1;
}

/* Every dependency still is the file it was. */
static int current(struct reader *r) {
    uint32_t n;
    if (u32(r, &n) || n >= 1024) return 0;
    for (uint32_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        const unsigned char *kind, *v;
        uint32_t c;
        if (chunk_path(r, path) || take(r, 1, &kind) || u32(r, &c) || c > 16 || take(r, (size_t)c * 8, &v)) return 0;
        unsigned long long now[9];
        if (kind[0] > AZL_DEP_RESOLVED) return 0;
        int k = azl_plan_cache_identity(path, kind[0], now);
        if ((uint32_t)k != c) return 0;
        for (int j = 0; j < k; j++) {
            unsigned long long was = 0;
            for (int b = 7; b >= 0; b--) was = was << 8 | v[j * 8 + b];
            if (was != now[j]) return 0;
        }
    }
    return 1;
}

void azl_plan_cache_replay(int argc, char **argv, char **envp) {
    if (argc < 3 || !argv || !verb_of(argv[1]) || !envp) return;
    char *dir;
    unsigned char *key, *entry = NULL;
    long keylen;
    if (azl_plan_cache_input(argv, envp, &dir, &key, &keylen) < 0) return;
    char name[32];
    azl_plan_cache_file_name(key, keylen, name);
    size_t len = 0;
    int lock = -1;
    if (!(entry = read_entry(dir, name, &len)) || len < AZL_STATE_MAC_LEN ||
        !azl_state_mac_ok("plan", entry, len - AZL_STATE_MAC_LEN, entry + len - AZL_STATE_MAC_LEN)) goto miss;
    len -= AZL_STATE_MAC_LEN;
    struct reader r = { entry, len, 0 };
    const unsigned char *p, *plan;
    uint32_t n, plen;
    char lockpath[PATH_MAX];
    if (take(&r, strlen(MAGIC), &p) || memcmp(p, MAGIC, strlen(MAGIC)) ||
        chunk(&r, &p, &n) || n != (uint32_t)keylen || memcmp(p, key, n) || !env_current(&r, envp) ||
        chunk_path(&r, lockpath)) goto miss;
    /* The image's tree lock, held shared while the sandbox runs (not close-on-exec: it is the
     * supervisor's), taken before the dependencies are checked: no `rmi` + `prune` can come in
     * between any more. No lock file any more means the image is gone: a miss. */
    if (*lockpath) {
        /* O_NONBLOCK: a fifo there must not hang us; the lock is the store's regular file. */
        struct stat lst;
        /* Never 0-2 (a caller started us with one closed): the command would get it as stdio. */
        if ((lock = open(lockpath, O_RDONLY | O_NONBLOCK | O_NOFOLLOW)) >= 0 && lock < 3) {
            int high = fcntl(lock, F_DUPFD, 3);
            close(lock);
            lock = high;
        }
        if (lock < 0 || fstat(lock, &lst) < 0 ||
            !S_ISREG(lst.st_mode) || lst.st_uid != getuid()) goto miss;
        while (flock(lock, LOCK_SH) < 0)
            if (errno != EINTR) goto miss;
    }
    if (!current(&r) || chunk(&r, &plan, &plen) || r.pos != r.len) goto miss;
    /* Returns only when the plan cannot be carried out here (another build's): a miss. */
    remember_args(argc, argv);
    azl_sandbox_run_in_process(plan, plen);
miss:
    if (lock >= 0) close(lock);
    free(entry);
    free(key);
    free(dir);
}
