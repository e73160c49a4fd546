/*
 * Building the sandbox's root, inside the new user and mount namespaces.
 *
 * 1. Make every mount private, so nothing we do propagates back to the host.
 * 2. A tmpfs ("staging"), not attached anywhere: it holds the overlay's upper and work
 *    directories, the contents of the read-only files, and the mountpoint of the new root.
 * 3. Overlay: lower = the cached image tree (never written), upper + work = fresh
 *    directories on the staging tmpfs, so every write vanishes with the namespace.
 *    `userxattr` is what lets overlayfs run inside a user namespace. It is mounted on the
 *    staging tree, still detached, and the plan's mounts go onto it there: the host's tree
 *    stays where it is, so host paths (bind sources) are just themselves, and nothing of
 *    ours shadows one of them.
 *    Kernels that cannot mount onto a detached tree (before 6.x) get the older way, as
 *    bubblewrap does it: staging on /tmp, pivot_root into it, the host's tree at /oldroot.
 *    That costs a pivot_root more (it walks every thread of the machine) and is taken only
 *    when the first attach onto the detached tree is refused, before anything was done.
 * 4. The plan's mounts, in order. Targets are resolved with
 *    openat2(RESOLVE_IN_ROOT) from the new root, so a symlink in the image
 *    (say /etc/resolv.conf -> /home/...) can never point a mount outside it;
 *    missing mountpoints are created in the overlay's upper (ephemeral) layer.
 *    Mounts use the fd-based API (fsopen/fsmount/open_tree/move_mount,
 *    mount_setattr for read-only), so no path is ever re-resolved.
 * 5. The staging tree is attached (on /tmp: the host's tree is done with), then
 *    pivot_root(".", ".") into the new root and the old one is detached (runc's trick: no
 *    /oldroot directory is left in the image), staging and host tree with it.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <unistd.h>

static int rootfd = -1;   /* O_PATH fd of the new root (the overlay) */
static int stagefd = -1;  /* the staging tmpfs's root */
static const char *host = "";   /* where the host's "/" is: "" (detached staging) or "/oldroot" */

static int open_in_root(const char *path, int flags) {
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Split PATH into its parent (into PARENT) and last component (returned). */
static const char *split(const char *path, char *parent, size_t size) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t slash = n;
    while (slash > 0 && path[slash - 1] != '/') slash--;
    size_t plen = slash > 1 ? slash - 1 : 1;
    if (plen >= size || n >= size) errno = 0, die("path too long: %s", path);
    memcpy(parent, path, plen);
    parent[plen] = '\0';
    static char base[NAME_MAX + 1];
    size_t blen = n - slash;
    if (blen > NAME_MAX) errno = 0, die("name too long in %s", path);
    memcpy(base, path + slash, blen);
    base[blen] = '\0';
    return base;
}

/* An O_PATH fd of directory PATH in the new root, created (with parents) if missing. */
static int ensure_dir(const char *path, mode_t mode) {
    int fd = open_in_root(path, O_PATH | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT) return fd;
    char parent[PATH_MAX];
    const char *base = split(path, parent, sizeof parent);
    char name[NAME_MAX + 1];
    strcpy(name, base);   /* split's buffer is reused by the recursion */
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) { errno = ENOENT; return -1; }
    int pfd = ensure_dir(parent, 0755);
    if (pfd < 0) return -1;
    if (mkdirat(pfd, name, mode) < 0 && errno != EEXIST) { int e = errno; close(pfd); errno = e; return -1; }
    fd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(pfd);
    errno = e;
    return fd;
}

/* The parent directory of PATH (created if missing) and its last component in NAME. */
static int parent_of(const char *path, char name[NAME_MAX + 1]) {
    char parent[PATH_MAX];
    strcpy(name, split(path, parent, sizeof parent));
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) { errno = EINVAL; return -1; }
    return ensure_dir(parent, 0755);
}

/* An O_PATH fd of a regular file at PATH to mount over; a symlink there is replaced by an
 * empty file (never followed), a missing file is created. */
static int ensure_file(const char *path) {
    char name[NAME_MAX + 1];
    int pfd = parent_of(path, name);
    if (pfd < 0) return -1;
    struct stat st;
    int have = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (have && S_ISDIR(st.st_mode)) { close(pfd); errno = EISDIR; return -1; }
    if (have && S_ISLNK(st.st_mode)) { unlinkat(pfd, name, 0); have = 0; }
    if (!have) {
        int c = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (c < 0 && errno != EEXIST) { int e = errno; close(pfd); errno = e; return -1; }
        if (c >= 0) close(c);
    }
    int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(pfd);
    errno = e;
    return fd;
}

/* die() with the filesystem's own log message (fsopen keeps one), when it has one. */
__attribute__((noreturn)) static void die_fs(int fs, const char *what, const char *dst) {
    int e = errno;
    const char *doctor = strcmp(what, "overlay") == 0 ? "; run `azl-shell doctor`" : "";
    char log[256];
    ssize_t n = fs >= 0 ? read(fs, log, sizeof log - 1) : -1;
    if (n > 2) {
        log[n] = '\0';
        if (log[n - 1] == '\n') log[n - 1] = '\0';
        errno = 0;
        die("cannot mount %s on %s: %s (%s)%s", what, dst, strerror(e), log + 2, doctor);
    }
    errno = 0;
    die("cannot mount %s on %s: %s%s", what, dst, strerror(e), doctor);
}

static void fs_set(int fs, const char *key, const char *val, const char *what, const char *dst) {
    if (fsconfig(fs, val ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, val, 0) < 0) die_fs(fs, what, dst);
}

static unsigned attrs_of(unsigned flags) {
    return (flags & MF_RO ? MOUNT_ATTR_RDONLY : 0) | (flags & MF_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
           (flags & MF_NODEV ? MOUNT_ATTR_NODEV : 0) | (flags & MF_NOEXEC ? MOUNT_ATTR_NOEXEC : 0);
}

/* Create the filesystem configured on FS and return a detached mount of it. */
static int fs_mount(int fs, unsigned flags, const char *what, const char *dst) {
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) die_fs(fs, what, dst);
    int m = fsmount(fs, FSMOUNT_CLOEXEC, attrs_of(flags));
    if (m < 0) die_fs(fs, what, dst);
    close(fs);
    return m;
}

static void attach(int m, int target, const char *what, const char *dst) {
    if (move_mount(m, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        die("cannot mount %s on %s", what, dst);
    close(m);
    close(target);
}

static int target_dir(const struct mount_op *m) {
    int t = ensure_dir(m->dst, 0755);
    if (t < 0) die("cannot make mountpoint %s", m->dst);
    return t;
}

/* Pass "key=value,key2" options of DATA to fsconfig. */
static void fs_options(int fs, const char *data, const char *what, const char *dst) {
    char buf[1024];
    if (strlen(data) >= sizeof buf) errno = 0, die("mount options too long for %s", dst);
    strcpy(buf, data);
    for (char *save = NULL, *opt = strtok_r(buf, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        if (eq) *eq = '\0';
        fs_set(fs, opt, eq ? eq + 1 : NULL, what, dst);
    }
}

/* ---- azl-shell's state folders (the plan's guard records; docs/sandbox.md, "Trust") ----
 *
 * A command can write whatever its binds expose, as the user, and root inside owns the store:
 * a store, cache or config folder a bind shows must be hidden or read-only. Decided on what was
 * opened, never on path strings (issue 10: a rename race on a bind source, or a second mount of
 * the store's folder used as the working directory, once gave the plan cache read-write). Every
 * source is opened once, without following symlinks (the plan's paths are resolved ones), and
 * mounted from that fd; state folders are recognised by device and inode among the folders
 * above it, which ".." reaches across mounts, so an alias is met as the folder itself. */

#define CHAIN_MAX 128
struct chain { int n; dev_t dev[CHAIN_MAX]; ino_t ino[CHAIN_MAX]; int fd[CHAIN_MAX]; };
static struct chain *guard_chain;   /* one per guard record; n == 0: the folder does not exist */
static int guards_ready;

static int chain_find(const struct chain *c, dev_t dev, ino_t ino) {
    for (int i = 0; i < c->n; i++)
        if (c->dev[i] == dev && c->ino[i] == ino) return i;
    return -1;
}

/* The folders from FD (a directory, taken) up to the root, FD first, each with an O_PATH fd,
 * appended to C. The walk stops early where it meets a folder of an earlier chain (SHARED,
 * NSHARED of them): the rest is theirs, fds included (never closed twice: guard fds live until
 * setup_root ends). */
static void walk_up(int fd, struct chain *c, const struct chain *shared, int nshared, const char *what) {
    for (;;) {
        struct stat st;
        if (fstat(fd, &st) < 0) die("cannot inspect the folders above %s", what);
        if (c->n && st.st_dev == c->dev[c->n - 1] && st.st_ino == c->ino[c->n - 1]) { close(fd); return; }
        for (int j = 0; j < nshared; j++) {
            int k = chain_find(&shared[j], st.st_dev, st.st_ino);
            if (k < 0) continue;
            close(fd);
            for (; k < shared[j].n && c->n < CHAIN_MAX; k++, c->n++) {
                c->dev[c->n] = shared[j].dev[k];
                c->ino[c->n] = shared[j].ino[k];
                c->fd[c->n] = shared[j].fd[k];
            }
            return;
        }
        if (c->n == CHAIN_MAX) errno = 0, die("%s is more than %d folders deep", what, CHAIN_MAX);
        c->dev[c->n] = st.st_dev;
        c->ino[c->n] = st.st_ino;
        c->fd[c->n++] = fd;
        if ((fd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) die("cannot open the folders above %s", what);
    }
}

/* An O_PATH fd of host PATH (as the plan names it: resolved), no symlink followed on the way.
 * -1 with errno ENOENT when it does not exist; die()s when it cannot be opened so (a symlink
 * now on the path: someone changed it since the plan was made). */
static int open_host(const char *path, int flags) {
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s%s", host, path) >= (int)sizeof full) errno = 0, die("path too long: %s", path);
    struct open_how how = { .flags = (unsigned long long)(O_PATH | O_CLOEXEC | flags), .resolve = RESOLVE_NO_SYMLINKS };
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, full, &how, sizeof how);
    if (fd < 0 && errno != ENOENT) {
        if (errno == ELOOP) errno = 0, die("%s changed while the sandbox was set up (a symlink is now on its path); run again", path);
        die("cannot open %s", path);
    }
    return fd;
}

static void open_guards(const struct plan *p) {
    guards_ready = 1;
    if (!p->nguards) return;
    if (!(guard_chain = calloc((size_t)p->nguards, sizeof *guard_chain))) die("out of memory");
    for (int i = 0; i < p->nguards; i++) {
        struct chain *c = &guard_chain[i];
        if (p->guards[i].kind != GUARD_PIN) {
            int fd = open_host(p->guards[i].path, O_DIRECTORY);
            if (fd >= 0) walk_up(fd, c, guard_chain, i, p->guards[i].path);
            continue;
        }
        /* A symlink on the way to a state folder: itself first, then the folders above it. */
        char parent[PATH_MAX], name[NAME_MAX + 1];
        snprintf(name, sizeof name, "%s", split(p->guards[i].path, parent, sizeof parent));
        int dir = open_host(parent, O_DIRECTORY);
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
        c->fd[0] = l;
        c->n = 1;
        walk_up(dir, c, guard_chain, i, p->guards[i].path);
    }
}

/* The name under which the folder (DEV, INO) is in directory DIR (an O_PATH fd), into NAME. */
static void child_name(int dir, dev_t dev, ino_t ino, char name[NAME_MAX + 1], const char *what) {
    int d = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *ds = d < 0 ? NULL : fdopendir(d);
    if (!ds) die("cannot read the folders above %s", what);
    /* Two passes: an entry's d_ino is the inode under a mountpoint, not the one mounted there. */
    for (int pass = 0; pass < 2; pass++) {
        rewinddir(ds);
        for (struct dirent *e; (e = readdir(ds));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (e->d_type != DT_DIR && e->d_type != DT_LNK && e->d_type != DT_UNKNOWN) continue;
            if (pass == 0 && e->d_ino != ino) continue;
            struct stat st;
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
 * read-only tmpfs (hide: even its lock files cannot be opened, so no held lock stalls another
 * run), a read-only clone (ro), or, for a symlink on the way to one, a clone of the symlink
 * itself (pin: still the same link, but a mountpoint, which cannot be renamed or removed). */
static void cover(int next, const struct chain *c, int kind, const char *what) {
    int m;
    if (kind == GUARD_HIDE) {
        int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0) die("cannot hide %s", what);
        fs_set(fs, "mode", "0500", "tmpfs", what);
        fs_set(fs, "size", "4k", "tmpfs", what);
        m = fs_mount(fs, MF_RO | MF_NOSUID | MF_NODEV | MF_NOEXEC, "tmpfs", what);
    } else if (kind == GUARD_RO) {
        m = open_tree(c->fd[0], "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
        if (m >= 0 && mount_setattr(m, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0) die("cannot make %s read-only", what);
    } else {
        m = open_tree(c->fd[0], "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    }
    if (m < 0 || move_mount(m, "", next, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        die("cannot protect %s", what);
    close(m);
}

/* Guard G lies K levels below CUR (an fd of the new root's DST, where the bind or submount whose
 * root is G's level K shows it; taken): every folder between the two is bound onto itself (a
 * mountpoint cannot be renamed, so `mv ~/.cache ~/.c2; mkdir -p ~/.cache/azl-shell` cannot put a
 * writable folder where a later run looks), then G is covered. */
static void protect_below(int cur, const struct chain *c, int k, int kind, const char *what) {
    for (int lvl = k - 1; lvl >= 0; lvl--) {
        char name[NAME_MAX + 1];
        child_name(c->fd[lvl + 1], c->dev[lvl], c->ino[lvl], name, what);
        int next = open_same(cur, name, c->dev[lvl], c->ino[lvl], what, lvl == 0);
        if (lvl == 0) {
            cover(next, c, kind, what);
            close(next);
            break;
        }
        int m = open_tree(c->fd[lvl], "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
        if (m < 0 || move_mount(m, "", next, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die("cannot protect %s", what);
        close(m);
        close(next);
        next = open_same(cur, name, c->dev[lvl], c->ino[lvl], what, 0);   /* into the new mount */
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

/* The mounts below host folder SRC (as the plan names it) that a recursive bind of it brings
 * along: one of them may be another mount of a state folder's filesystem (a bind of /home at
 * /srv/h, a data disk holding $AZL_SHELL_ROOT mounted below the working directory), where the
 * walk up from the state folder never passes. Each submount's root is checked like the bind's. */
static void protect_submounts(const char *src, const char *dst, const struct plan *p) {
    char prefix[PATH_MAX];
    int plen = snprintf(prefix, sizeof prefix, "%s%s", host, strcmp(src, "/") ? src : "");
    if (plen >= (int)sizeof prefix) return;
    char path[64];
    snprintf(path, sizeof path, "%s/proc/self/mountinfo", host);
    FILE *mi = fopen(path, "re");
    if (!mi) die("cannot read %s", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, mi) > 0) {
        /* id parent major:minor root MOUNTPOINT ...: the fifth field, octal escapes undone */
        char *f = line;
        for (int i = 0; i < 4 && f; i++) f = strchr(f, ' ') ? strchr(f, ' ') + 1 : NULL;
        if (!f) continue;
        char mp[PATH_MAX];
        size_t n = 0;
        for (; *f && *f != ' ' && n + 1 < sizeof mp; f++) {
            if (f[0] == '\\' && f[1] >= '0' && f[1] <= '3' && f[2] >= '0' && f[2] <= '7' && f[3] >= '0' && f[3] <= '7') {
                mp[n++] = (char)((f[1] - '0') << 6 | (f[2] - '0') << 3 | (f[3] - '0'));
                f += 3;
            } else mp[n++] = *f;
        }
        mp[n] = '\0';
        if (strncmp(mp, prefix, (size_t)plen) || mp[plen] != '/') continue;
        struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS };
        int sub = (int)syscall(SYS_openat2, AT_FDCWD, mp, &how, sizeof how);
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
        int cur = open_in_root(inside, O_PATH | O_DIRECTORY);
        struct stat now;
        if (cur < 0 || fstat(cur, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
            if (cur >= 0) close(cur);
            continue;
        }
        protect_shown(cur, st.st_dev, st.st_ino, p);
    }
    free(line);
    fclose(mi);
}

static void do_bind(const struct mount_op *m, const struct plan *p) {
    int guarded = (m->flags & MF_GUARD) && p->nguards;
    int src = open_host(m->src, 0);
    if (src < 0) {
        if (m->flags & MF_OPTIONAL) return;
        die("cannot bind %s: it does not exist on the host", m->src);
    }
    struct stat st;
    if (fstat(src, &st) < 0) die("cannot bind %s", m->src);
    if (S_ISLNK(st.st_mode)) errno = 0, die("%s changed while the sandbox was set up (it is now a symlink); run again", m->src);
    unsigned attrs = attrs_of(m->flags);
    if (guarded) {
        if (!guards_ready) open_guards(p);
        /* The folders above the source: of a directory, from itself; of a file, from the folder
         * that holds it (opened through the file: no second walk of the path). */
        struct chain *mine = calloc(1, sizeof *mine);   /* n = 0 */
        if (!mine) die("out of memory");
        int from = S_ISDIR(st.st_mode) ? dup(src) : -1;
        if (!S_ISDIR(st.st_mode)) {
            char parent[PATH_MAX];
            split(m->src, parent, sizeof parent);
            int pfd = open_host(parent, O_DIRECTORY);
            struct stat again;
            /* the file must still be in that folder: else it moved between the two opens */
            if (pfd < 0 || fstatat(pfd, split(m->src, parent, sizeof parent), &again, AT_SYMLINK_NOFOLLOW) < 0 ||
                again.st_dev != st.st_dev || again.st_ino != st.st_ino)
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
            attrs |= MOUNT_ATTR_RDONLY;
        }
        for (int i = 0; i < mine->n; i++) {   /* its own fds only: shared ones are the guards' */
            int shared = 0;
            for (int g = 0; g < p->nguards && !shared; g++)
                for (int j = 0; j < guard_chain[g].n && !shared; j++) shared = guard_chain[g].fd[j] == mine->fd[i];
            if (!shared) close(mine->fd[i]);
        }
        free(mine);
    }
    unsigned rec = m->flags & MF_REC ? AT_RECURSIVE : 0;
    int tree = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | rec);
    if (tree < 0) die("cannot bind %s", m->src);
    close(src);
    if (attrs) {
        struct mount_attr a = { .attr_set = attrs };
        if (mount_setattr(tree, "", AT_EMPTY_PATH | rec, &a, sizeof a) < 0)
            die("cannot make %s read-only", m->dst);
    }
    int t = S_ISDIR(st.st_mode) ? ensure_dir(m->dst, 0755) : ensure_file(m->dst);
    if (t < 0) die("cannot make mountpoint %s for %s", m->dst, m->src);
    attach(tree, t, m->src, m->dst);
    if (guarded && S_ISDIR(st.st_mode)) {
        int cur = open_in_root(m->dst, O_PATH | O_DIRECTORY);
        if (cur < 0) die("cannot open %s", m->dst);
        protect_shown(cur, st.st_dev, st.st_ino, p);
        if (rec) protect_submounts(m->src, m->dst, p);
    }
}

static void close_guards(const struct plan *p) {
    if (!guard_chain) return;
    for (int g = 0; g < p->nguards; g++)
        for (int i = 0; i < guard_chain[g].n; i++) {
            int fd = guard_chain[g].fd[i], seen = 0;
            for (int h = 0; h < g && !seen; h++) seen = chain_find(&guard_chain[h], guard_chain[g].dev[i], guard_chain[g].ino[i]) >= 0;
            if (!seen && fd >= 0) close(fd);
        }
    free(guard_chain);
    guard_chain = NULL;
}

static void do_symlink(const struct mount_op *m) {
    char name[NAME_MAX + 1];
    int pfd = parent_of(m->dst, name);
    if (pfd < 0) die("cannot make directory for %s", m->dst);
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) unlinkat(pfd, name, 0);
    if (symlinkat(m->src, pfd, name) < 0 && errno != EEXIST) die("cannot make symlink %s", m->dst);
    close(pfd);
}

/* All of DATA to FD, or die(WHAT, DST). */
static void write_data(int fd, const char *data, const char *what, const char *dst) {
    size_t len = strlen(data), off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) { if (errno == EINTR) continue; die(what, dst); }
        off += (size_t)n;
    }
}

static void do_file(const struct mount_op *m) {
    char name[NAME_MAX + 1];
    int pfd = parent_of(m->dst, name);
    if (pfd < 0 && (m->flags & MF_OPTIONAL)) return;
    if (pfd < 0) die("cannot make directory for %s", m->dst);
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) unlinkat(pfd, name, 0);
    int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, m->mode);
    if (fd < 0) die("cannot write %s", m->dst);
    write_data(fd, m->data, "cannot write %s", m->dst);
    close(fd);
    close(pfd);
}

/* DATA in a fresh file on the staging tmpfs (the current root until the final pivot; it stays
 * alive, detached, as long as a mount references it), bound read-only over the file DST of the
 * new root: /proc/version and /proc/sys/kernel/osrelease of the kernel profile. */
static void do_rofile(const struct mount_op *m) {
    static unsigned serial;
    char path[64];
    snprintf(path, sizeof path, "rofile-%u", serial++);
    int fd = openat(stagefd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) die("cannot create the contents of %s", m->dst);
    write_data(fd, m->data, "cannot write the contents of %s", m->dst);
    if (fchmod(fd, m->mode) < 0) die("cannot chmod the contents of %s", m->dst);
    close(fd);
    int tree = open_tree(stagefd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) die("cannot bind the contents of %s", m->dst);
    struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | attrs_of(m->flags) };
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &a, sizeof a) < 0) die("cannot make %s read-only", m->dst);
    int t = ensure_file(m->dst);
    if (t < 0) die("cannot open %s to mount over it", m->dst);
    attach(tree, t, "a read-only file", m->dst);
}

static void do_mount(const struct mount_op *m, const struct plan *p) {
    int fs, t;
    switch (m->kind) {
    case MK_BIND:
        do_bind(m, p);
        break;
    case MK_TMPFS: {
        char mode[16];
        snprintf(mode, sizeof mode, "%o", m->mode);
        fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0) die("cannot mount tmpfs on %s", m->dst);
        fs_set(fs, "mode", mode, "tmpfs", m->dst);
        fs_options(fs, m->data, "tmpfs", m->dst);
        int mnt = fs_mount(fs, m->flags, "tmpfs", m->dst);
        attach(mnt, target_dir(m), "tmpfs", m->dst);
        break;
    }
    case MK_PROC:
        fs = fsopen("proc", FSOPEN_CLOEXEC);
        if (fs < 0) die("cannot mount proc on %s", m->dst);
        fs_options(fs, m->data, "proc", m->dst);
        t = fs_mount(fs, m->flags, "proc", m->dst);
        attach(t, target_dir(m), "proc", m->dst);
        break;
    case MK_DEVPTS:
        fs = fsopen("devpts", FSOPEN_CLOEXEC);
        if (fs < 0) die("cannot mount devpts on %s", m->dst);
        fs_set(fs, "newinstance", NULL, "devpts", m->dst);
        fs_set(fs, "ptmxmode", "0666", "devpts", m->dst);
        fs_set(fs, "mode", "0620", "devpts", m->dst);
        t = fs_mount(fs, m->flags, "devpts", m->dst);
        attach(t, target_dir(m), "devpts", m->dst);
        break;
    case MK_MKDIR:
        t = ensure_dir(m->dst, m->mode);
        if (t < 0) die("cannot make directory %s", m->dst);
        close(t);
        break;
    case MK_SYMLINK:
        do_symlink(m);
        break;
    case MK_FILE:
        do_file(m);
        break;
    case MK_ROFILE:
        do_rofile(m);
        break;
    case MK_REMOUNT_RO: {
        t = open_in_root(m->dst, O_PATH | O_DIRECTORY);
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
        if (t < 0 || mount_setattr(t, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
            die("cannot make %s read-only", m->dst);
        close(t);
        break;
    }
    }
}

/* Escape ':' and '\' for overlay's "lowerdir" (used only on kernels without "lowerdir+"). */
static void escape_lower(const char *in, char *out, size_t size) {
    size_t o = 0;
    for (; *in; in++) {
        if (o + 3 >= size) errno = 0, die("path too long: %s", in);
        if (*in == ':' || *in == '\\') out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/* A detached overlay of a fresh upper (UPPER, WORK) over the image tree LOWER; with SOFT,
 * -1 instead of dying (the first, detached attempt: the other way is left). */
static int make_overlay(const char *lower, const char *upper, const char *work, const char *name, int soft) {
    int fs = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0) {
        if (soft) return -1;
        die("cannot mount overlay on %s (is the overlay module available? run `azl-shell doctor`)", name);
    }
    if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", lower, 0) < 0) {
        /* Kernels before 6.8 lack "lowerdir+": the classic option, with ':' and '\\' escaped. */
        char esc[PATH_MAX * 2], drain[256];
        while (read(fs, drain, sizeof drain) > 0) {}
        escape_lower(lower, esc, sizeof esc);
        if (soft && fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir", esc, 0) < 0) goto soft_fail;
        if (!soft) fs_set(fs, "lowerdir", esc, "overlay", name);
    }
    if (soft) {
        if (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0 || fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
            goto soft_fail;
        int m = fsmount(fs, FSMOUNT_CLOEXEC, 0);
        close(fs);
        return m;
    }
    fs_set(fs, "upperdir", upper, "overlay", name);
    fs_set(fs, "workdir", work, "overlay", name);
    fs_set(fs, "userxattr", NULL, "overlay", name);
    return fs_mount(fs, 0, "overlay", name);
soft_fail:
    close(fs);
    return -1;
}

/* The overlay mounted on the detached staging tree's "newroot"; 0 when this kernel will not
 * have it so (nothing was changed that matters: the caller takes the pivot way). */
static int overlay_on_detached_stage(const struct plan *p) {
#ifdef AZL_TEST_PIVOT_STAGING
    /* Tests/SandboxTests build the helper so, to run the older way on this kernel too. */
    (void)p;
    return 0;
#endif
    char upper[64], work[64];
    snprintf(upper, sizeof upper, "/proc/self/fd/%d/upper", stagefd);
    snprintf(work, sizeof work, "/proc/self/fd/%d/work", stagefd);
    int ovl = make_overlay(p->root_lower, upper, work, p->root_lower, 1);
    if (ovl < 0) return 0;
    int target = openat(stagefd, "newroot", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (target < 0) die("cannot open the staging tmpfs");
    int ok = move_mount(ovl, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0;
    close(target);
    close(ovl);
    return ok;
}

void setup_root(const struct plan *p) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("cannot make / private");

    /* Staging tmpfs: holds the overlay's upper and work dirs, the read-only files' contents
     * and the new root's mountpoint. */
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) die("cannot create the staging tmpfs");
    fs_set(fs, "mode", "0755", "tmpfs", "/tmp");
    stagefd = fs_mount(fs, MF_NODEV | MF_NOSUID, "tmpfs", "/tmp");
    if (mkdirat(stagefd, "newroot", 0755) || mkdirat(stagefd, "oldroot", 0755) ||
        mkdirat(stagefd, "upper", 0755) || mkdirat(stagefd, "work", 0755))
        die("cannot make directories in the staging tmpfs");

    int detached = overlay_on_detached_stage(p);
    if (!detached) {
        /* The older way: into the staging tmpfs, the host's tree at /oldroot. */
        if (move_mount(stagefd, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0) die("cannot mount the staging tmpfs on /tmp");
        if (fchdir(stagefd) < 0) die("cannot enter the staging tmpfs");
        if (syscall(SYS_pivot_root, ".", "oldroot") < 0) die("cannot pivot into the staging tmpfs");
        if (chdir("/") < 0) die("cannot chdir to /");
        host = "/oldroot";
        char lower[PATH_MAX];
        if (snprintf(lower, sizeof lower, "/oldroot%s", p->root_lower) >= (int)sizeof lower) errno = 0, die("path too long: %s", p->root_lower);
        /* Fresh upper and work dirs: a refused detached attempt may still hold the first pair. */
        if (mkdir("/upper.2", 0755) || mkdir("/work.2", 0755)) die("cannot make directories in the staging tmpfs");
        int ovl = make_overlay(lower, "/upper.2", "/work.2", p->root_lower, 0);
        if (move_mount(ovl, "", AT_FDCWD, "/newroot", MOVE_MOUNT_F_EMPTY_PATH) < 0) die("cannot mount overlay on /newroot (run `azl-shell doctor`)");
        close(ovl);
    }
    rootfd = openat(stagefd, "newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) die("cannot open the new root");

    /* mount_setattr() changes a mount of a detached tree only at its root: a remount-ro (the
     * plan's last step, once every mountpoint exists: --read-only) waits for the attach. */
    for (int i = 0; i < p->nmounts; i++)
        if (!detached || p->mounts[i].kind != MK_REMOUNT_RO) do_mount(&p->mounts[i], p);

    /* The staging tree (the new root on it) into our namespace, where pivot_root wants it:
     * over the host's /tmp, which is about to go. */
    if (detached) {
        if (move_mount(stagefd, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0) die("cannot mount the new root");
        for (int i = 0; i < p->nmounts; i++)
            if (p->mounts[i].kind == MK_REMOUNT_RO) do_mount(&p->mounts[i], p);
    }
    close(stagefd);
    close_guards(p);

    /* Into the new root; the old one (staging + host) is stacked on "." and detached. */
    if (fchdir(rootfd) < 0) die("cannot enter the new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("cannot pivot_root into the new root");
    if (umount2(".", MNT_DETACH) < 0) die("cannot detach the old root");
    if (chdir("/") < 0) die("cannot chdir to /");
    close(rootfd);
}
