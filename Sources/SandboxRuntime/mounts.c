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
 *    mount_setattr for read-only), so no path is ever re-resolved. A bind's source is
 *    opened once, without following symlinks (the plan names resolved paths: a symlink
 *    there now is a swap since planning), and mounted from that fd; the user's binds are
 *    checked against azl-shell's state folders (guards.c).
 * 5. The staging tree is attached (on /tmp: the host's tree is done with), then
 *    pivot_root(".", ".") into the new root and the old one is detached (runc's trick: no
 *    /oldroot directory is left in the image), staging and host tree with it.
 */
#include "mounts.h"

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
const char *mnt_host = "";   /* where the host's "/" is: "" (detached staging) or "/oldroot" */

int mnt_open_in_root(const char *path, int flags) {
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Split PATH into its parent (into PARENT) and last component (returned). */
const char *mnt_split(const char *path, char *parent, size_t size) {
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
    int fd = mnt_open_in_root(path, O_PATH | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT) return fd;
    char parent[PATH_MAX];
    const char *base = mnt_split(path, parent, sizeof parent);
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

/* The folder parent_of found last (/dev for its links and mountpoints), until anything is
 * mounted by attach: a mount's path can name the cached folder, or one above it, through a
 * symlink of the image, so no comparison of paths can tell which mounts leave it valid. */
static struct { char path[PATH_MAX]; int fd; } last_parent = { "", -1 };

static void forget_parent(void) {
    if (last_parent.fd >= 0) close(last_parent.fd);
    last_parent.fd = -1;
}

/* The parent directory of PATH (created if missing), kept as last_parent: borrowed, not to be
 * closed; its last component in NAME. */
static int cached_parent(const char *path, char name[NAME_MAX + 1]) {
    char parent[PATH_MAX];
    strcpy(name, mnt_split(path, parent, sizeof parent));
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) { errno = EINVAL; return -1; }
    if (last_parent.fd >= 0 && !strcmp(last_parent.path, parent)) return last_parent.fd;
    int fd = ensure_dir(parent, 0755);
    if (fd < 0) return -1;
    forget_parent();
    last_parent.fd = fd;
    strcpy(last_parent.path, parent);
    return fd;
}

/* The same, as an fd of the caller's. */
static int parent_of(const char *path, char name[NAME_MAX + 1]) {
    int fd = cached_parent(path, name);
    return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/* An fd (O_PATH, or of the file just made) of a regular file at PATH to mount over; a symlink
 * there is replaced by an empty file (never followed), a missing file is created. THERE: it
 * usually exists (/proc/version), so that is tried first. */
static int ensure_file(const char *path, int there) {
    /* The usual cases in one or two calls: missing (/dev is a fresh tmpfs), created, and the new
     * file's own fd is the mountpoint; there, and neither a symlink nor a folder. */
    struct open_how how = { .flags = O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, .mode = 0644,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    int fd = there ? -1 : (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
    if (fd >= 0) return fd;
    struct stat st;
    if ((there || errno == EEXIST) && (fd = mnt_open_in_root(path, O_PATH | O_NOFOLLOW)) >= 0) {
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) return fd;
        close(fd);
    }
    char name[NAME_MAX + 1];
    int pfd = parent_of(path, name);
    if (pfd < 0) return -1;
    int have = fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (have && S_ISDIR(st.st_mode)) { close(pfd); errno = EISDIR; return -1; }
    if (have && S_ISLNK(st.st_mode)) { unlinkat(pfd, name, 0); have = 0; }
    if (!have) {
        int c = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (c < 0 && errno != EEXIST) { int e = errno; close(pfd); errno = e; return -1; }
        if (c >= 0) close(c);
    }
    fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
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

void mnt_fs_set(int fs, const char *key, const char *val, const char *what, const char *dst) {
    if (fsconfig(fs, val ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, val, 0) < 0) die_fs(fs, what, dst);
}

static unsigned attrs_of(unsigned flags) {
    return (flags & MF_RO ? MOUNT_ATTR_RDONLY : 0) | (flags & MF_NOSUID ? MOUNT_ATTR_NOSUID : 0) |
           (flags & MF_NODEV ? MOUNT_ATTR_NODEV : 0) | (flags & MF_NOEXEC ? MOUNT_ATTR_NOEXEC : 0);
}

/* Create the filesystem configured on FS and return a detached mount of it. */
int mnt_fs_mount(int fs, unsigned flags, const char *what, const char *dst) {
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) die_fs(fs, what, dst);
    int m = fsmount(fs, FSMOUNT_CLOEXEC, attrs_of(flags));
    if (m < 0) die_fs(fs, what, dst);
    close(fs);
    return m;
}

static void attach(int m, int target, const char *what, const char *dst) {
    forget_parent();
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
        mnt_fs_set(fs, opt, eq ? eq + 1 : NULL, what, dst);
    }
}

/* An O_PATH fd of host PATH (as the plan names it: resolved), no symlink followed on the way.
 * -1 with errno ENOENT when it does not exist; die()s when it cannot be opened so (a symlink
 * now on the path: someone changed it since the plan was made). */
int mnt_open_host(const char *path, int flags) {
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s%s", mnt_host, path) >= (int)sizeof full) errno = 0, die("path too long: %s", path);
    struct open_how how = { .flags = (unsigned long long)(O_PATH | O_CLOEXEC | flags), .resolve = RESOLVE_NO_SYMLINKS };
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, full, &how, sizeof how);
    if (fd < 0 && errno != ENOENT) {
        if (errno == ELOOP) errno = 0, die("%s changed while the sandbox was set up (a symlink is now on its path); run again", path);
        die("cannot open %s", path);
    }
    return fd;
}

static void do_bind(const struct mount_op *m, const struct plan *p) {
    int guarded = (m->flags & MF_GUARD) != 0;
    unsigned attrs = attrs_of(m->flags);
    unsigned rec = m->flags & MF_REC ? AT_RECURSIVE : 0;
    struct stat st;
    if (!guarded) {
        /* The machine's own files (/sys, /dev/null, /etc/resolv.conf): no command of ours can
         * change what their paths name, so one open_tree, as they always were. */
        char src[PATH_MAX];
        if (snprintf(src, sizeof src, "%s%s", mnt_host, m->src) >= (int)sizeof src) errno = 0, die("path too long: %s", m->src);
        int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
        if (tree < 0 && errno == ENOENT && (m->flags & MF_OPTIONAL)) return;
        if (tree < 0 || fstat(tree, &st) < 0) die("cannot bind %s", m->src);
        if (attrs) {
            struct mount_attr a = { .attr_set = attrs };
            if (mount_setattr(tree, "", AT_EMPTY_PATH | rec, &a, sizeof a) < 0) die("cannot make %s read-only", m->dst);
        }
        /* A file into a folder made just before (/dev/null and the others into /dev's): its
         * mountpoint made there and mounted on by name, no path walk from the root, no fd. */
        char name[NAME_MAX + 1];
        int pfd = S_ISDIR(st.st_mode) ? -1 : cached_parent(m->dst, name);
        if (pfd >= 0 && mknodat(pfd, name, S_IFREG | 0644, 0) == 0) {
            if (move_mount(tree, "", pfd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0) die("cannot mount %s on %s", m->src, m->dst);
            close(tree);
            return;
        }
        int t = S_ISDIR(st.st_mode) ? ensure_dir(m->dst, 0755) : ensure_file(m->dst, 0);
        if (t < 0) die("cannot make mountpoint %s for %s", m->dst, m->src);
        attach(tree, t, m->src, m->dst);
        return;
    }
    /* The user's (working directory, volumes): a command may have written on the way. */
    int src = mnt_open_host(m->src, 0);
    if (src < 0) {
        if (m->flags & MF_OPTIONAL) return;
        die("cannot bind %s: it does not exist on the host", m->src);
    }
    if (fstat(src, &st) < 0) die("cannot bind %s", m->src);
    if (S_ISLNK(st.st_mode)) errno = 0, die("%s changed while the sandbox was set up (it is now a symlink); run again", m->src);
    if (p->nguards) guards_check_source(m, p, src, &st, &attrs);
    int tree = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | rec);
    if (tree < 0) die("cannot bind %s", m->src);
    close(src);
    if (attrs) {
        struct mount_attr a = { .attr_set = attrs };
        if (mount_setattr(tree, "", AT_EMPTY_PATH | rec, &a, sizeof a) < 0)
            die("cannot make %s read-only", m->dst);
    }
    int t = S_ISDIR(st.st_mode) ? ensure_dir(m->dst, 0755) : ensure_file(m->dst, 0);
    if (t < 0) die("cannot make mountpoint %s for %s", m->dst, m->src);
    attach(tree, t, m->src, m->dst);
    if (p->nguards) guards_protect(m, p, &st);
}

static void do_symlink(const struct mount_op *m) {
    char name[NAME_MAX + 1];
    int pfd = parent_of(m->dst, name);
    if (pfd < 0) die("cannot make directory for %s", m->dst);
    struct stat st;
    /* Mostly nothing is there (/dev is a fresh tmpfs): one call. */
    if (symlinkat(m->src, pfd, name) < 0) {
        if (errno != EEXIST) die("cannot make symlink %s", m->dst);
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) unlinkat(pfd, name, 0);
        if (symlinkat(m->src, pfd, name) < 0 && errno != EEXIST) die("cannot make symlink %s", m->dst);
    }
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

/* NAME in PFD is a regular file of exactly DATA (O_NONBLOCK: a fifo there must not hang us). */
static int holds(int pfd, const char *name, const char *data) {
    size_t len = strlen(data);
    int fd = openat(pfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    char b[4096];
    int same = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len;
    for (size_t off = 0; same && off < len;) {
        ssize_t n = read(fd, b, len - off < sizeof b ? len - off : sizeof b);
        same = n > 0 && memcmp(b, data + off, (size_t)n) == 0;
        off += n > 0 ? (size_t)n : 0;
    }
    if (fd >= 0) close(fd);
    return same;
}

static void do_file(const struct mount_op *m, const struct plan *p) {
    char name[NAME_MAX + 1];
    int pfd = parent_of(m->dst, name);
    if (pfd < 0 && (m->flags & MF_OPTIONAL)) return;
    if (pfd < 0) die("cannot make directory for %s", m->dst);
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) unlinkat(pfd, name, 0);
    /* On a kept upper (an environment's, on disk) the file is mostly there from the last start:
     * rewritten, it would be truncated and given new blocks (ext4 flushes such a file on close)
     * every start, for the same bytes. Its mode and owner are left as they are either way. */
    if (p->root_upper && holds(pfd, name, m->data)) { close(pfd); return; }
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
    /* the plan's mode as it is: pid 1's umask is 0 */
    int fd = openat(stagefd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, m->mode & 07777);
    if (fd < 0) die("cannot create the contents of %s", m->dst);
    write_data(fd, m->data, "cannot write the contents of %s", m->dst);
    close(fd);
    int tree = open_tree(stagefd, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) die("cannot bind the contents of %s", m->dst);
    struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | attrs_of(m->flags) };
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &a, sizeof a) < 0) die("cannot make %s read-only", m->dst);
    int t = ensure_file(m->dst, 1);
    if (t < 0) die("cannot open %s to mount over it", m->dst);
    attach(tree, t, "a read-only file", m->dst);
}

int mnt_stage_dir(unsigned mode, unsigned flags, const char *what) {
    /* A folder of the staging tmpfs instead of a tmpfs of its own: no filesystem to set up
     * (measured: a tmpfs ~30 us, a clone ~13), and a clone shows that folder, nothing above it.
     * Read-only, nothing can ever be in it: one folder a mode serves every such mount. */
    static unsigned serial;
    char name[32];
    if (flags & MF_RO) snprintf(name, sizeof name, "empty-%o", mode & 07777);
    else snprintf(name, sizeof name, "dir-%u", serial++);
    int m = flags & MF_RO ? open_tree(stagefd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) : -1;
    if (m < 0) {   /* the mode as it is: pid 1's umask is 0 (mkdir keeps the sticky bit, not set-id ones) */
        if (mkdirat(stagefd, name, mode & 01777) < 0 || ((mode & 06000) && fchmodat(stagefd, name, mode & 07777, 0) < 0))
            die("cannot mount a folder on %s", what);
        m = open_tree(stagefd, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    }
    /* the staging tmpfs's nodev and nosuid, only where asked for (/dev is no nodev mount); a
     * clone has them already (/tmp, /run, /dev/shm: nothing to change, no call) */
    struct mount_attr a = { .attr_set = attrs_of(flags), .attr_clr = MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID };
    if (m < 0 || (a.attr_set != (MOUNT_ATTR_NODEV | MOUNT_ATTR_NOSUID) && mount_setattr(m, "", AT_EMPTY_PATH, &a, sizeof a) < 0))
        die("cannot mount a folder on %s", what);
    return m;
}

/* An environment's copy-on-write home: host folder SRC as the only lower layer, the
 * environment's DATA/upper and DATA/work (in the store, which no sandbox sees) above it, so what
 * is written there stays in the environment. Nothing written in the merged view reaches SRC, but
 * it shows SRC's state folders (a home holds the default store and cache): covered there as a
 * bind's are (guards.c). Mounted once per live sandbox (env.c), so never twice on one upper. */
static void do_overlay(const struct mount_op *m, const struct plan *p) {
    int src = mnt_open_host(m->src, O_DIRECTORY), data = mnt_open_host(m->data, O_DIRECTORY);
    struct stat st;
    if (src < 0 || data < 0 || fstat(src, &st) < 0) die("cannot mount a copy-on-write %s: %s is missing", m->dst, src < 0 ? m->src : m->data);
    unsigned attrs = 0;
    if (p->nguards) guards_check_source(m, p, src, &st, &attrs);
    char lower[PATH_MAX], upper[PATH_MAX], work[PATH_MAX];
    /* the fds, not the paths: what was checked is what is mounted */
    snprintf(lower, sizeof lower, "%s/proc/self/fd/%d", mnt_host, src);
    snprintf(upper, sizeof upper, "%s/proc/self/fd/%d/upper", mnt_host, data);
    snprintf(work, sizeof work, "%s/proc/self/fd/%d/work", mnt_host, data);
    int fs = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0) die("cannot mount overlay on %s", m->dst);
    mnt_fs_set(fs, "lowerdir", lower, "overlay", m->dst);
    mnt_fs_set(fs, "upperdir", upper, "overlay", m->dst);
    mnt_fs_set(fs, "workdir", work, "overlay", m->dst);
    mnt_fs_set(fs, "userxattr", NULL, "overlay", m->dst);
    int mnt = mnt_fs_mount(fs, m->flags | (attrs & MOUNT_ATTR_RDONLY ? MF_RO : 0), "overlay", m->dst);
    close(src), close(data);
    attach(mnt, target_dir(m), "overlay", m->dst);
    if (p->nguards) guards_protect_merged(m, p, &st);
}

/* A session's own working directory (env.c), in a private copy of the host's mount namespace
 * owned by the live sandbox's user namespace: host folder SRC, opened and guarded as a bind of
 * the user's, as a detached tree (the state folders it shows covered on it). */
int mnt_session_tree(const struct plan *p, const char *src_path) {
    struct mount_op m = { .kind = MK_BIND, .dst = "/", .src = src_path, .data = "", .flags = MF_REC | MF_GUARD };
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);   /* for mnt_stage_dir: the hidden folders' cover */
    if (fs < 0) die("cannot create a tmpfs");
    stagefd = mnt_fs_mount(fs, MF_NODEV | MF_NOSUID, "tmpfs", "/");
    guards_prepare(p);
    int src = mnt_open_host(src_path, O_DIRECTORY);
    struct stat st;
    if (src < 0 || fstat(src, &st) < 0) die("cannot bind %s", src_path);
    unsigned attrs = 0;
    if (p->nguards) guards_check_source(&m, p, src, &st, &attrs);
    int tree = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    if (tree < 0) die("cannot bind %s", src_path);
    close(src);
    struct mount_attr a = { .attr_set = attrs };
    if (attrs && mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) < 0) die("cannot make %s read-only", src_path);
    rootfd = tree;   /* guards.c reaches the bind's target through it: "/" is the tree's root */
    if (p->nguards) guards_protect(&m, p, &st);
    guards_close(p);
    close(stagefd);
    stagefd = rootfd = -1;
    return tree;
}

/* TREE attached at DST of the current root (a session's own mount namespace). */
void mnt_attach_here(int tree, const char *dst) {
    if ((rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) die("cannot open /");
    struct mount_op m = { .kind = MK_BIND, .dst = dst };
    attach(tree, target_dir(&m), "the working directory", dst);
    close(rootfd);
    rootfd = -1;
}

/* The run's first procfs (its mount, once attached), to clone for a second one. */
static struct { int fd; const char *data; unsigned flags; } proc = { -1, NULL, 0 };

static void do_mount(const struct mount_op *m, const struct plan *p) {
    int fs, t;
    switch (m->kind) {
    case MK_BIND:
        do_bind(m, p);
        break;
    case MK_TMPFS: {
        if (!*m->data) {   /* no size or options of its own to keep */
            attach(mnt_stage_dir(m->mode, m->flags, m->dst), target_dir(m), "tmpfs", m->dst);
            break;
        }
        char mode[16];
        snprintf(mode, sizeof mode, "%o", m->mode);
        fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0) die("cannot mount tmpfs on %s", m->dst);
        mnt_fs_set(fs, "mode", mode, "tmpfs", m->dst);
        fs_options(fs, m->data, "tmpfs", m->dst);
        int mnt = mnt_fs_mount(fs, m->flags, "tmpfs", m->dst);
        attach(mnt, target_dir(m), "tmpfs", m->dst);
        break;
    }
    case MK_PROC:
        /* A second procfs of the same options (the spare one under /dev/.azl-proc): a clone of
         * the first's mount, without what is mounted on it since, so fully visible as a fresh
         * one, for none of a fresh superblock's cost. */
        if (proc.fd >= 0 && proc.flags == m->flags && !strcmp(proc.data, m->data)) {
            t = open_tree(proc.fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
            if (t < 0) die("cannot mount proc on %s", m->dst);
        } else {
            fs = fsopen("proc", FSOPEN_CLOEXEC);
            if (fs < 0) die("cannot mount proc on %s", m->dst);
            fs_options(fs, m->data, "proc", m->dst);
            t = mnt_fs_mount(fs, m->flags, "proc", m->dst);
            if (proc.fd < 0 && (proc.fd = fcntl(t, F_DUPFD_CLOEXEC, 3)) >= 0) proc.data = m->data, proc.flags = m->flags;
        }
        attach(t, target_dir(m), "proc", m->dst);
        break;
    case MK_DEVPTS:
        fs = fsopen("devpts", FSOPEN_CLOEXEC);
        if (fs < 0) die("cannot mount devpts on %s", m->dst);
        mnt_fs_set(fs, "newinstance", NULL, "devpts", m->dst);
        mnt_fs_set(fs, "ptmxmode", "0666", "devpts", m->dst);
        mnt_fs_set(fs, "mode", "0620", "devpts", m->dst);
        t = mnt_fs_mount(fs, m->flags, "devpts", m->dst);
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
        do_file(m, p);
        break;
    case MK_ROFILE:
        do_rofile(m);
        break;
    case MK_OVERLAY:
        do_overlay(m, p);
        break;
    case MK_REMOUNT_RO: {
        t = mnt_open_in_root(m->dst, O_PATH | O_DIRECTORY);
        struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
        if (t < 0 || mount_setattr(t, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
            die("cannot make %s read-only", m->dst);
        close(t);
        break;
    }
    }
}

/* The plan's foreign-arch interpreter, registered in the sandbox's own binfmt_misc instance
 * (one per user namespace since 6.7: the host's table is neither needed nor touched). Flags
 * FOC: F opens the interpreter now, from the host's tree (still reachable: before pivot_root),
 * so nothing of qemu is needed in the image; O and C let it run unreadable or setuid programs
 * as the kernel would. The instance lives as long as a mount of it: it is mounted where
 * programs look for it, /proc/sys/fs/binfmt_misc. */
static void do_binfmt(const struct plan *p) {
    int fs = fsopen("binfmt_misc", FSOPEN_CLOEXEC);
    if (fs < 0) {
        if (errno == EPERM || errno == ENODEV) {
            errno = 0;
            die("this kernel cannot register the %s interpreter in a user namespace (needs Linux 6.7 or later): "
                "install qemu-user-binfmt (or qemu-user-static) so root registers it with the F flag", p->binfmt_name);
        }
        die("cannot mount binfmt_misc");
    }
    int mnt = mnt_fs_mount(fs, MF_NOSUID | MF_NODEV | MF_NOEXEC, "binfmt_misc", "/proc/sys/fs/binfmt_misc");
    char line[1024];
    int n = snprintf(line, sizeof line, ":%s:M::%s:%s:%s%s:FOC", p->binfmt_name, p->binfmt_magic, p->binfmt_mask,
                     mnt_host, p->binfmt_interp);
    if (n < 0 || n >= (int)sizeof line) errno = 0, die("binfmt registration too long");
    int reg = openat(mnt, "register", O_WRONLY | O_CLOEXEC);
    if (reg < 0) die("cannot open binfmt_misc's register file");
    if (write(reg, line, (size_t)n) != n) {
        if (errno == ENOENT || errno == EACCES || errno == ENOEXEC) {
            const char *why = strerror(errno);
            errno = 0;
            die("cannot use %s to run %s programs: %s; install qemu-user-static", p->binfmt_interp, p->binfmt_name, why);
        }
        die("cannot register %s in binfmt_misc", p->binfmt_interp);
    }
    close(reg);
    int t = mnt_open_in_root("/proc/sys/fs/binfmt_misc", O_PATH | O_DIRECTORY);
    if (t < 0) die("cannot open /proc/sys/fs/binfmt_misc in the sandbox");
    attach(mnt, t, "binfmt_misc", "/proc/sys/fs/binfmt_misc");
}

/* Append IN to OUT (at *O) with ':' and '\' escaped, for overlay's classic "lowerdir". */
static void escape_lower(const char *in, char *out, size_t size, size_t *o) {
    for (; *in; in++) {
        if (*o + 3 >= size) errno = 0, die("path too long: %s", in);
        if (*in == ':' || *in == '\\') out[(*o)++] = '\\';
        out[(*o)++] = *in;
    }
    out[*o] = '\0';
}

/* Lower layer I of the plan, top first (the last "lower" record ... the image's tree), as
 * seen from here: PREFIX is where the host's tree is ("" or "/oldroot"). */
static const char *layer(const struct plan *p, int i, const char *prefix, char *buf, size_t size) {
    const char *l = i < p->nlowers ? p->lowers[p->nlowers - 1 - i] : p->root_lower;
    if (snprintf(buf, size, "%s%s", prefix, l) >= (int)size) errno = 0, die("path too long: %s", l);
    return buf;
}

/* A detached overlay of UPPER (WORK) over the plan's lower layers; with SOFT, -1 instead of
 * dying (the first, detached attempt: the other way is left). */
static int make_overlay(const struct plan *p, const char *prefix, const char *upper, const char *work, int soft) {
    const char *name = p->root_lower;
    char path[PATH_MAX];
    int fs = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fs < 0) {
        if (soft) return -1;
        die("cannot mount overlay on %s (is the overlay module available? run `azl-shell doctor`)", name);
    }
    int n = p->nlowers + 1;
    if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", layer(p, 0, prefix, path, sizeof path), 0) < 0) {
        /* Kernels before 6.8 lack "lowerdir+": the classic option, top first, ':'-separated. */
        static char esc[PATH_MAX * 8];
        char drain[256];
        size_t o = 0;
        while (read(fs, drain, sizeof drain) > 0) {}
        for (int i = 0; i < n; i++) {
            if (i) esc[o++] = ':';
            escape_lower(layer(p, i, prefix, path, sizeof path), esc, sizeof esc, &o);
        }
        if (soft && fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir", esc, 0) < 0) goto soft_fail;
        if (!soft) mnt_fs_set(fs, "lowerdir", esc, "overlay", name);
    } else {
        for (int i = 1; i < n; i++) {
            layer(p, i, prefix, path, sizeof path);
            if (soft && fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", path, 0) < 0) goto soft_fail;
            if (!soft) mnt_fs_set(fs, "lowerdir+", path, "overlay", name);
        }
    }
    if (soft) {
        if (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0 || fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
            goto soft_fail;
        int m = fsmount(fs, FSMOUNT_CLOEXEC, 0);
        close(fs);
        return m;
    }
    mnt_fs_set(fs, "upperdir", upper, "overlay", name);
    mnt_fs_set(fs, "workdir", work, "overlay", name);
    mnt_fs_set(fs, "userxattr", NULL, "overlay", name);
    return mnt_fs_mount(fs, 0, "overlay", name);
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
    int ovl = make_overlay(p, "", p->root_upper ? p->root_upper : upper, p->root_upper ? p->root_work : work, 1);
    if (ovl < 0) return 0;
    int target = openat(stagefd, "newroot", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (target < 0) die("cannot open the staging tmpfs");
    int ok = move_mount(ovl, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0;
    close(target);
    close(ovl);
    return ok;
}

static int made_private, old_root_attached;

void prepare_root(const struct plan *p) {
    /* Any failure here is met again, and said, by setup_root. What guards.c needs of the host's
     * mounts the supervisor reads meanwhile (its mountinfo is the host's, as ours was when we
     * were cloned: nothing a sandbox does changes that table). */
    (void)p;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return;
    made_private = 1;
}

void setup_root(const struct plan *p) {
    if (!made_private && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("cannot make / private");

    /* Staging tmpfs: holds the overlay's upper and work dirs, the read-only files' contents
     * and the new root's mountpoint. */
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) die("cannot create the staging tmpfs");
    mnt_fs_set(fs, "mode", "0755", "tmpfs", "/tmp");
    stagefd = mnt_fs_mount(fs, MF_NODEV | MF_NOSUID, "tmpfs", "/tmp");
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
        mnt_host = "/oldroot";
        /* Fresh upper and work dirs: a refused detached attempt may still hold the first pair. */
        if (mkdir("/upper.2", 0755) || mkdir("/work.2", 0755)) die("cannot make directories in the staging tmpfs");
        char upper[PATH_MAX], work[PATH_MAX];
        if (p->root_upper) {
            if (snprintf(upper, sizeof upper, "/oldroot%s", p->root_upper) >= (int)sizeof upper ||
                snprintf(work, sizeof work, "/oldroot%s", p->root_work) >= (int)sizeof work)
                errno = 0, die("path too long: %s", p->root_upper);
        } else {
            strcpy(upper, "/upper.2");
            strcpy(work, "/work.2");
        }
        int ovl = make_overlay(p, "/oldroot", upper, work, 0);
        if (move_mount(ovl, "", AT_FDCWD, "/newroot", MOVE_MOUNT_F_EMPTY_PATH) < 0) die("cannot mount overlay on /newroot (run `azl-shell doctor`)");
        close(ovl);
    }
    rootfd = openat(stagefd, "newroot", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) die("cannot open the new root");

    /* mount_setattr() changes a mount of a detached tree only at its root: a remount-ro (the
     * plan's last step, once every mountpoint exists: --read-only) waits for the attach. */
    for (int i = 0; i < p->nmounts; i++)
        if (!detached || p->mounts[i].kind != MK_REMOUNT_RO) do_mount(&p->mounts[i], p);
    if (p->binfmt_name) do_binfmt(p);

    /* The staging tree (the new root on it) into our namespace, where pivot_root wants it:
     * over the host's /tmp, which is about to go. */
    if (detached) {
        if (move_mount(stagefd, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0) die("cannot mount the new root");
        for (int i = 0; i < p->nmounts; i++)
            if (p->mounts[i].kind == MK_REMOUNT_RO) do_mount(&p->mounts[i], p);
    }
    close(stagefd);
    if (proc.fd >= 0) close(proc.fd);
    forget_parent();
    guards_close(p);

    /* Into the new root; the old one (staging + host) is stacked on "." until
     * mnt_detach_old_root. */
    if (fchdir(rootfd) < 0) die("cannot enter the new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("cannot pivot_root into the new root");
    close(rootfd);
    old_root_attached = 1;
}

void mnt_detach_old_root(void) {
    if (!old_root_attached) return;
    old_root_attached = 0;
    if (umount2(".", MNT_DETACH) < 0) die("cannot detach the old root");
    if (chdir("/") < 0) die("cannot chdir to /");
}
