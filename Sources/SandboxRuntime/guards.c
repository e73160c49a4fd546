/*
 * azl-shell's state folders, out of every sandbox's reach (docs/sandbox.md, "Trust").
 *
 * A command can write whatever its binds expose, as the user, and root inside owns the store:
 * a store, cache or config folder a bind shows must be hidden or read-only. Decided on what was
 * opened, never on path strings (issue 10: a rename race on a bind source, or a second mount of
 * the store's folder used as the working directory, once gave the plan cache read-write). The
 * binds themselves are opened once, without following symlinks, and mounted from that fd
 * (mounts.c); here, state folders are recognised by device and inode among the folders above a
 * bind's source, which ".." reaches across mounts, so an alias is met as the folder itself, and
 * among the roots of the mounts a recursive bind brings along.
 */
#include "mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHAIN_MAX 128
/* A folder and those above it, up to the root. Each level is reached as BASE (an O_PATH fd) and
 * UP times "..": one fstatat a level on a warm run, and an fd only where a state folder is found
 * below a bind (level_fd). OWN: the fds this chain opened (levels met in an earlier chain are
 * that chain's, bases and all). */
struct chain { int n, nown; dev_t dev[CHAIN_MAX]; ino_t ino[CHAIN_MAX]; int base[CHAIN_MAX]; short up[CHAIN_MAX]; int own[2]; };
static struct chain *guard_chain;   /* one per guard record; n == 0: the folder does not exist */
static int guards_ready;

static int chain_find(const struct chain *c, dev_t dev, ino_t ino) {
    for (int i = 0; i < c->n; i++)
        if (c->dev[i] == dev && c->ino[i] == ino) return i;
    return -1;
}

/* "../.." UP times (".": UP 0) into BUF. */
static const char *dots(int up, char buf[3 * CHAIN_MAX + 2]) {
    if (!up) return ".";
    for (int i = 0; i < up; i++) memcpy(buf + 3 * i, "../", 3);
    buf[3 * up - 1] = '\0';
    return buf;
}

/* An O_PATH fd of level LVL of C (the caller closes it). */
static int level_fd(const struct chain *c, int lvl, const char *what) {
    char buf[3 * CHAIN_MAX + 2];
    int fd = c->up[lvl] ? openat(c->base[lvl], dots(c->up[lvl], buf), O_PATH | O_DIRECTORY | O_CLOEXEC)
                        : fcntl(c->base[lvl], F_DUPFD_CLOEXEC, 3);
    if (fd < 0) die("cannot open the folders above %s", what);
    return fd;
}

/* The folders from FD (a directory, taken: this chain's) up to the root, FD first, appended to
 * C. ".." is walked by the kernel across mounts, so an alias is met as the folder itself. The
 * walk stops where it meets a folder of an earlier chain (SHARED, NSHARED of them): the rest is
 * theirs. */
static void walk_up(int fd, struct chain *c, const struct chain *shared, int nshared, const char *what) {
    c->own[c->nown++] = fd;
    char buf[3 * CHAIN_MAX + 2];
    for (int up = 0;; up++) {
        struct stat st;
        if (fstatat(fd, dots(up, buf), &st, 0) < 0) die("cannot inspect the folders above %s", what);
        if (c->n && st.st_dev == c->dev[c->n - 1] && st.st_ino == c->ino[c->n - 1]) return;
        for (int j = 0; j < nshared; j++) {
            int k = chain_find(&shared[j], st.st_dev, st.st_ino);
            if (k < 0) continue;
            for (; k < shared[j].n && c->n < CHAIN_MAX; k++, c->n++) {
                c->dev[c->n] = shared[j].dev[k];
                c->ino[c->n] = shared[j].ino[k];
                c->base[c->n] = shared[j].base[k];
                c->up[c->n] = shared[j].up[k];
            }
            return;
        }
        if (c->n == CHAIN_MAX) errno = 0, die("%s is more than %d folders deep", what, CHAIN_MAX - 1);
        c->dev[c->n] = st.st_dev;
        c->ino[c->n] = st.st_ino;
        c->base[c->n] = fd;
        c->up[c->n++] = (short)up;
    }
}

static void open_guards(const struct plan *p) {
    guards_ready = 1;
    if (!p->nguards) return;
    if (!(guard_chain = calloc((size_t)p->nguards, sizeof *guard_chain))) die("out of memory");
    for (int i = 0; i < p->nguards; i++) {
        struct chain *c = &guard_chain[i];
        if (p->guards[i].kind != GUARD_PIN) {
            int fd = mnt_open_host(p->guards[i].path, O_DIRECTORY);
            if (fd >= 0) walk_up(fd, c, guard_chain, i, p->guards[i].path);
            continue;
        }
        /* A symlink on the way to a state folder: itself first, then the folders above it. */
        char parent[PATH_MAX], name[NAME_MAX + 1];
        snprintf(name, sizeof name, "%s", mnt_split(p->guards[i].path, parent, sizeof parent));
        int dir = mnt_open_host(parent, O_DIRECTORY);
        if (dir < 0) continue;
        struct stat st;
        int l = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (l < 0 || fstat(l, &st) < 0 || !S_ISLNK(st.st_mode)) {   /* gone, or no symlink now */
            if (l >= 0) close(l);
            close(dir);
            continue;
        }
        c->dev[0] = st.st_dev;
        c->ino[0] = st.st_ino;
        c->base[0] = l;
        c->up[0] = 0;
        c->own[c->nown++] = l;
        c->n = 1;
        walk_up(dir, c, guard_chain, i, p->guards[i].path);
    }
}

/* The name under which level LVL of C is in level LVL + 1, into NAME. WHAT (the guard's path)
 * names it first, as a guess: its component LVL from the end, which one fstatat confirms when it
 * is that folder; else the folder is read (an alias, a rename since planning). */
static void child_name(const struct chain *c, int lvl, char name[NAME_MAX + 1], const char *what) {
    dev_t dev = c->dev[lvl];
    ino_t ino = c->ino[lvl];
    const char *start = what + strlen(what), *end = start;
    for (int i = 0; i <= lvl; i++) {
        for (end = start; end > what + 1 && end[-1] == '/'; end--) {}
        for (start = end; start > what && start[-1] != '/'; start--) {}
    }
    int n = (int)(end - start);
    char buf[3 * CHAIN_MAX + 2], path[3 * CHAIN_MAX + NAME_MAX + 4];
    struct stat st;
    int dot = start[0] == '.' && (n == 1 || (n == 2 && start[1] == '.'));
    if (n > 0 && n <= NAME_MAX && !dot && snprintf(path, sizeof path, "%s/%.*s", dots(c->up[lvl + 1], buf), n, start) < (int)sizeof path &&
        fstatat(c->base[lvl + 1], path, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev && st.st_ino == ino) {
        snprintf(name, NAME_MAX + 1, "%.*s", n, start);
        return;
    }
    int dir = level_fd(c, lvl + 1, what);
    int d = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(dir);
    DIR *ds = d < 0 ? NULL : fdopendir(d);
    if (!ds) die("cannot read the folders above %s", what);
    /* Two passes: an entry's d_ino is the inode under a mountpoint, not the one mounted there. */
    for (int pass = 0; pass < 2; pass++) {
        rewinddir(ds);
        for (struct dirent *e; (e = readdir(ds));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (e->d_type != DT_DIR && e->d_type != DT_LNK && e->d_type != DT_UNKNOWN) continue;
            if (pass == 0 && e->d_ino != ino) continue;
            if (fstatat(d, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == dev && st.st_ino == ino) {
                snprintf(name, NAME_MAX + 1, "%s", e->d_name);
                closedir(ds);
                return;
            }
        }
    }
    errno = 0;
    die("%s moved while the sandbox was set up; run again", what);
}

/* NAME of directory CUR in the new root, which must be the host's (DEV, INO) (a folder, or with
 * ANY a symlink too). */
static int open_same(int cur, const char *name, dev_t dev, ino_t ino, const char *what, int any) {
    int fd = openat(cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | (any ? 0 : O_DIRECTORY));
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != dev || st.st_ino != ino)
        errno = 0, die("%s moved while the sandbox was set up; run again", what);
    return fd;
}

/* What covers state folder G where a bind shows it (NEXT: its place in the new root): an empty
 * read-only folder (hide: even its lock files cannot be opened, so no held lock stalls another
 * run), a read-only clone (ro), or, for a symlink on the way to one, a clone of the symlink
 * itself (pin: still the same link, but a mountpoint, which cannot be renamed or removed). */
static void cover(int next, const struct chain *c, int kind, const char *what) {
    int m;
    if (kind == GUARD_HIDE) {
        m = mnt_stage_dir(0500, MF_RO | MF_NOSUID | MF_NODEV | MF_NOEXEC, what);
    } else if (kind == GUARD_RO) {
        int f = level_fd(c, 0, what);
        m = open_tree(f, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        close(f);
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
        if (m >= 0 && mount_setattr(m, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0) die("cannot make %s read-only", what);
    } else {
        /* the symlink itself: level 0 is its own fd (O_PATH, not followed) */
        m = open_tree(c->base[0], "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    }
    if (m < 0 || move_mount(m, "", next, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        die("cannot protect %s", what);
    close(m);
}

/* Guard G lies K levels below CUR (an fd of the new root's DST, where the bind or submount whose
 * root is G's level K shows it; taken): every folder between the two is bound onto itself (a
 * mountpoint cannot be renamed, so `mv ~/.cache ~/.c2; mkdir -p ~/.cache/azl-shell` cannot put a
 * writable folder where a later run looks), then G is covered. */
/* NEXT (a folder directly in CUR) is the root of a mount of its own. */
static int mount_root(int cur, int next, const char *what) {
    struct statx a, b;
    if (statx(cur, "", AT_EMPTY_PATH, STATX_MNT_ID, &a) < 0 || statx(next, "", AT_EMPTY_PATH, STATX_MNT_ID, &b) < 0 ||
        !(a.stx_mask & b.stx_mask & STATX_MNT_ID))
        die("cannot protect %s", what);
    return a.stx_mnt_id != b.stx_mnt_id;
}

static void protect_below(int cur, const struct chain *c, int k, int kind, const char *what) {
    for (int lvl = k - 1; lvl >= 0; lvl--) {
        char name[NAME_MAX + 1];
        child_name(c, lvl, name, what);
        int next = open_same(cur, name, c->dev[lvl], c->ino[lvl], what, lvl == 0);
        if (lvl == 0) {
            cover(next, c, kind, what);
            close(next);
            break;
        }
        /* A folder that is a mount's root already cannot be renamed: an earlier guard's pass
         * bound it onto itself (its covers are inside), or the host mounts there. Cloning it from
         * the host again would lay a fresh copy over those covers and show what they hid. */
        if (!mount_root(cur, next, what)) {
            int here = level_fd(c, lvl, what);
            int m = open_tree(here, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
            close(here);
            if (m < 0 || move_mount(m, "", next, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                die("cannot protect %s", what);
            close(m);
            close(next);
            next = open_same(cur, name, c->dev[lvl], c->ino[lvl], what, 0);   /* into the new mount */
        }
        close(cur);
        cur = next;
    }
    close(cur);
}

/* Protect, at CUR (an fd of the new root showing the host folder (DEV, INO): a bind's or a
 * submount's root; taken), every guard it shows: shallow ones first, since a deeper one inside a
 * hidden one is covered already, and one inside a read-only one is reached through it. */
static void protect_shown(int cur, dev_t dev, ino_t ino, const struct plan *p) {
    int done[PLAN_MAX_GUARDS] = { 0 };
    for (;;) {
        int best = -1, bk = 0;
        for (int g = 0; g < p->nguards; g++) {
            int k = done[g] ? -1 : chain_find(&guard_chain[g], dev, ino);
            if (k >= 0 && (best < 0 || k < bk)) best = g, bk = k;
        }
        if (best < 0) break;
        done[best] = 1;
        int covered = 0;
        for (int h = 0; h < p->nguards && !covered; h++)
            covered = h != best && p->guards[h].kind == GUARD_HIDE && guard_chain[h].n &&
                      chain_find(&guard_chain[best], guard_chain[h].dev[0], guard_chain[h].ino[0]) > 0 &&
                      chain_find(&guard_chain[h], dev, ino) >= 0;
        if (covered) continue;
        if (bk == 0) cover(cur, &guard_chain[best], p->guards[best].kind, p->guards[best].path);
        else protect_below(dup(cur), &guard_chain[best], bk, p->guards[best].kind, p->guards[best].path);
    }
    close(cur);
}

/* MP is strictly below host folder SRC (as the plan names it). */
static int below(const char *mp, const char *src) {
    size_t n = strcmp(src, "/") ? strlen(src) : 0;
    return !strncmp(mp, src, n) && mp[n] == '/';
}

/* The host's mountpoints below the source of a recursive guarded bind (as host paths), read from
 * our mountinfo once; NULL: not read yet, or it could not be. */
static char **submount_points;
static int nsubmount_points;

static int read_submount_points(const struct plan *p) {
    int any = p->session_src != NULL;   /* a session's working directory: a bind of the same kind */
    for (int i = 0; i < p->nmounts && !any; i++)
        any = p->mounts[i].kind == MK_BIND && (p->mounts[i].flags & (MF_GUARD | MF_REC)) == (MF_GUARD | MF_REC);
    char path[64];
    snprintf(path, sizeof path, "%s/proc/self/mountinfo", mnt_host);
    FILE *mi = any ? fopen(path, "re") : NULL;
    if (any && !mi) return -1;
    char **list = calloc(1, sizeof *list), *line = NULL;
    size_t cap = 0, hlen = strlen(mnt_host);
    int n = 0, failed = !list;
    while (mi && !failed && getline(&line, &cap, mi) > 0) {
        /* id parent major:minor root MOUNTPOINT ...: the fifth field, octal escapes undone */
        char *f = line;
        for (int i = 0; i < 4 && f; i++) f = strchr(f, ' ') ? strchr(f, ' ') + 1 : NULL;
        if (!f) continue;
        char mp[PATH_MAX];
        size_t k = 0;
        for (; *f && *f != ' ' && k + 1 < sizeof mp; f++) {
            if (f[0] == '\\' && f[1] >= '0' && f[1] <= '3' && f[2] >= '0' && f[2] <= '7' && f[3] >= '0' && f[3] <= '7') {
                mp[k++] = (char)((f[1] - '0') << 6 | (f[2] - '0') << 3 | (f[3] - '0'));
                f += 3;
            } else mp[k++] = *f;
        }
        mp[k] = '\0';
        /* the host's, where it is now (under /oldroot the older way) */
        if (strncmp(mp, mnt_host, hlen) || (hlen && mp[hlen] != '/')) continue;
        int wanted = p->session_src && below(mp + hlen, p->session_src);
        for (int i = 0; i < p->nmounts && !wanted; i++) {
            const struct mount_op *m = &p->mounts[i];
            wanted = m->kind == MK_BIND && (m->flags & (MF_GUARD | MF_REC)) == (MF_GUARD | MF_REC) && below(mp + hlen, m->src);
        }
        if (!wanted) continue;
        char **more = realloc(list, (size_t)(n + 2) * sizeof *list);
        if (!more || !(more[n] = strdup(mp + hlen))) failed = 1;
        if (more) list = more;
        if (!failed) list[++n] = NULL;
    }
    free(line);
    if (mi) fclose(mi);
    if (failed) {
        for (int i = 0; list && i < n; i++) free(list[i]);
        free(list);
        return -1;
    }
    submount_points = list;
    nsubmount_points = n;
    return 0;
}

void guards_prepare(const struct plan *p) {
    start_details();
    if (p->nguards && !submount_points) read_submount_points(p);
}

int guards_submounts(const struct plan *p, char ***list) {
    if (!p->nguards || (!submount_points && read_submount_points(p) < 0)) return -1;
    *list = submount_points;
    return nsubmount_points;
}

void guards_submounts_set(char **list, int n) {
    submount_points = list;
    nsubmount_points = n;
}

/* The mounts below host folder SRC (as the plan names it) that a recursive bind of it brings
 * along: one of them may be another mount of a state folder's filesystem (a bind of /home at
 * /srv/h, a data disk holding $AZL_SHELL_ROOT mounted below the working directory), where the
 * walk up from the state folder never passes. Each submount's root is checked like the bind's. */
static void protect_submounts(const char *src, const char *dst, const struct plan *p) {
    start_details();
    if (!submount_points && read_submount_points(p) < 0) die("cannot read %s/proc/self/mountinfo", mnt_host);
    size_t plen = strcmp(src, "/") ? strlen(src) : 0;
    for (int i = 0; i < nsubmount_points; i++) {
        const char *mp = submount_points[i];
        if (!below(mp, src)) continue;
        char full[PATH_MAX];
        if (snprintf(full, sizeof full, "%s%s", mnt_host, mp) >= (int)sizeof full) continue;
        struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
        int sub = (int)syscall(SYS_openat2, AT_FDCWD, full, &how, sizeof how);
        struct stat st;
        if (sub < 0 || fstat(sub, &st) < 0) { if (sub >= 0) close(sub); continue; }
        close(sub);
        int shown = 0;
        for (int g = 0; g < p->nguards && !shown; g++) shown = chain_find(&guard_chain[g], st.st_dev, st.st_ino) >= 0;
        if (!shown) continue;
        /* Where the sandbox shows it: the same folder, or something on top of it (a hidden
         * state folder, a later bind): then nothing of it is shown there. */
        char inside[PATH_MAX];
        if (snprintf(inside, sizeof inside, "%s%s", strcmp(dst, "/") ? dst : "", mp + plen) >= (int)sizeof inside) continue;
        int cur = mnt_open_in_root(inside, O_PATH | O_DIRECTORY);
        struct stat now;
        if (cur < 0 || fstat(cur, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
            if (cur >= 0) close(cur);
            continue;
        }
        protect_shown(cur, st.st_dev, st.st_ino, p);
    }
}

/* Before a guarded bind of M (its source opened as SRC; ST): a source inside a hidden state
 * folder is refused, one inside a read-only one is bound read-only (into ATTRS). */
void guards_check_source(const struct mount_op *m, const struct plan *p, int src, const struct stat *st, unsigned *attrs) {
    if (!guards_ready) open_guards(p);
    /* The folders above the source: of a directory, from itself; of a file, from the folder
     * that holds it (opened through the file: no second walk of the path). */
    struct chain *mine = calloc(1, sizeof *mine);   /* n = 0 */
    if (!mine) die("out of memory");
    int from = S_ISDIR(st->st_mode) ? dup(src) : -1;
    if (!S_ISDIR(st->st_mode)) {
        char parent[PATH_MAX];
        mnt_split(m->src, parent, sizeof parent);
        int pfd = mnt_open_host(parent, O_DIRECTORY);
        struct stat again;
        /* the file must still be in that folder: else it moved between the two opens */
        if (pfd < 0 || fstatat(pfd, mnt_split(m->src, parent, sizeof parent), &again, AT_SYMLINK_NOFOLLOW) < 0 ||
            again.st_dev != st->st_dev || again.st_ino != st->st_ino)
            errno = 0, die("%s changed while the sandbox was set up; run again", m->src);
        from = pfd;
    }
    if (from < 0) die("cannot bind %s", m->src);
    walk_up(from, mine, guard_chain, p->nguards, m->src);
    for (int g = 0; g < p->nguards; g++) {
        const struct chain *c = &guard_chain[g];
        if (!c->n) continue;
        if (p->guards[g].kind == GUARD_PIN || chain_find(mine, c->dev[0], c->ino[0]) < 0) continue;
        /* The source is (inside) a state folder. */
        if (p->guards[g].kind == GUARD_HIDE)
            errno = 0, die("cannot bind %s: it is inside azl-shell's own state (%s)", m->src, p->guards[g].path);
        *attrs |= MOUNT_ATTR_RDONLY;
    }
    for (int i = 0; i < mine->nown; i++) close(mine->own[i]);
    free(mine);
}

/* After a guarded bind of M was attached: every state folder it shows, below its root or below
 * the root of a mount it brought along, is protected. */
void guards_protect(const struct mount_op *m, const struct plan *p, const struct stat *st) {
    if (!S_ISDIR(st->st_mode)) return;
    unsigned rec = m->flags & MF_REC ? AT_RECURSIVE : 0;
    int cur = mnt_open_in_root(m->dst, O_PATH | O_DIRECTORY);
    if (cur < 0) die("cannot open %s", m->dst);
    protect_shown(cur, st->st_dev, st->st_ino, p);
    if (rec) protect_submounts(m->src, m->dst, p);
}

/* After the overlay M was attached (its lower ST): each state folder below the lower, looked up by
 * its names in the merged view (shallow ones first) and covered there. No folder on the way is
 * pinned as a bind's are: nothing done in the merged view reaches the host's folders, so a rename
 * there cannot change what a later run finds; and with userxattr, overlayfs follows no redirect,
 * so a host folder shows only at its own names. Where those names show something else now (the
 * environment's layer replaced a folder on the way), the host's folder is not shown at all. */
void guards_protect_merged(const struct mount_op *m, const struct plan *p, const struct stat *st) {
    int done[PLAN_MAX_GUARDS] = { 0 };
    for (;;) {
        int best = -1, bk = 0;
        for (int g = 0; g < p->nguards; g++) {
            int k = done[g] || p->guards[g].kind == GUARD_PIN ? -1 : chain_find(&guard_chain[g], st->st_dev, st->st_ino);
            if (k > 0 && (best < 0 || k < bk)) best = g, bk = k;
        }
        if (best < 0) break;
        done[best] = 1;
        const struct chain *c = &guard_chain[best];
        const char *what = p->guards[best].path;
        int cur = mnt_open_in_root(m->dst, O_PATH | O_DIRECTORY);
        if (cur < 0) die("cannot open %s", m->dst);
        for (int lvl = bk - 1; cur >= 0 && lvl >= 0; lvl--) {
            char name[NAME_MAX + 1];
            child_name(c, lvl, name, what);
            int next = openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            close(cur);
            cur = next;
        }
        if (cur < 0) continue;
        cover(cur, c, p->guards[best].kind, what);
        close(cur);
    }
}

void guards_close(const struct plan *p) {
    for (int i = 0; i < nsubmount_points; i++) free(submount_points[i]);
    free(submount_points);
    submount_points = NULL;
    nsubmount_points = 0;
    if (!guard_chain) return;
    for (int g = 0; g < p->nguards; g++)
        for (int i = 0; i < guard_chain[g].nown; i++) close(guard_chain[g].own[i]);
    free(guard_chain);
    guard_chain = NULL;
}
