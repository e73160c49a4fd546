/* Why C: the probes fork and change namespaces, which a threaded Swift process must do only
 * through async-signal-safe calls between fork and _exit. Each child reports errno as its status. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "doctor_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* In a fresh user and mount namespace with our own ids mapped to root (what a run without
 * newuidmap has): 0, or the errno of the step that failed (-1 for the map itself). */
static int enter_userns(void) {
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) return errno;
    if (write_file("/proc/self/setgroups", "deny") < 0) return errno;
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) < 0) return errno;
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) < 0) return errno;
    return 0;
}

/* Run FN in a child in a user namespace; its errno (0: it worked). */
static int in_child(int (*fn)(const void *), const void *arg) {
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) {
        int e = enter_userns();
        if (e == 0 && fn) e = fn(arg);
        _exit(e & 0xff);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return errno;
    if (WIFSIGNALED(st)) return EINTR;
    return WEXITSTATUS(st);
}

int azl_probe_userns(void) { return in_child(NULL, NULL); }

static int overlay_in(const void *arg) {
    const char *dir = arg;
    char lower[4096], upper[4096], work[4096], merged[4096];
    snprintf(lower, sizeof lower, "%s/lower", dir);
    snprintf(upper, sizeof upper, "%s/upper", dir);
    snprintf(work, sizeof work, "%s/work", dir);
    snprintf(merged, sizeof merged, "%s/merged", dir);
    int fs = syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
    if (fs < 0) return errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return errno;
    int m = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
    if (m < 0) return errno;
    if (syscall(SYS_move_mount, m, "", AT_FDCWD, merged, MOVE_MOUNT_F_EMPTY_PATH) < 0) return errno;
    /* A write through the overlay: the copy-up is where a filesystem without user xattrs fails. */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/file", merged);
    int fd = open(probe, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

/* DIR: an empty folder of ours on the filesystem to test; left with lower/ upper/ work/ merged/. */
int azl_probe_overlay(const char *dir) {
    char p[4200];
    const char *sub[] = { "lower", "upper", "work", "merged" };
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, sub[i]);
        if (mkdir(p, 0700) < 0 && errno != EEXIST) return errno;
    }
    snprintf(p, sizeof p, "%s/lower/file", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    close(fd);
    return in_child(overlay_in, dir);
}

/* A filter that allows everything, installed with a listener (as the runtime's is), in a child. */
static int notify_in(const void *arg) {
    (void)arg;
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = { .len = 1, .filter = &allow };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return errno;
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    return fd < 0 ? errno : 0;
}

int azl_probe_seccomp_notify(void) {
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) _exit(notify_in(NULL) & 0xff);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : EINTR;
}

int azl_probe_pidfd(void) {
    int fd = syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

static int mount_api_in(const void *arg) {
    (void)arg;
    int fs = syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0) return errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return errno;
    int m = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0);
    if (m < 0) return errno;
    struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY };
    if (syscall(SYS_mount_setattr, m, "", AT_EMPTY_PATH, &a, sizeof a) < 0) return errno;
    int t = syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    return t < 0 ? errno : 0;
}

/* fsopen, fsconfig, fsmount, mount_setattr, open_tree (5.12+), in a user namespace. */
int azl_probe_mount_api(void) { return in_child(mount_api_in, NULL); }

static int binfmt_in(const void *arg) {
    (void)arg;
    int fs = syscall(SYS_fsopen, "binfmt_misc", FSOPEN_CLOEXEC);
    if (fs < 0) return errno;
    if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) return errno;
    return 0;
}

/* A binfmt_misc instance of a user namespace's own (6.7+). */
int azl_probe_binfmt_userns(void) { return in_child(binfmt_in, NULL); }

/* The user keyring @u, where the runtime keeps its state key (state_mac.c). */
int azl_probe_keyring(void) {
    long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1);
    return id < 0 ? errno : 0;
}

/* 0 when PATH has file capabilities (what getcap shows), else the errno (ENODATA: none). */
int azl_probe_file_caps(const char *path) {
    char buf[64];
    return getxattr(path, "security.capability", buf, sizeof buf) < 0 ? errno : 0;
}
