/*
 * The user-namespace keeper: one full-range user namespace per user and id map, reused by
 * every run, so a warm run pays for newuidmap and newgidmap once and not every time.
 *
 * Why: the two setuid helpers are the dearest part of a run (measured: ~1.3 ms each, 1.4-1.7
 * ms side by side, a third of a warm run), and only a process inside a user namespace keeps it
 * alive: an unprivileged user cannot pin one to a file. So the first run with a full map leaves
 * a small process (azl-shell-sandbox --userns-keeper, ~100 KiB) holding a user namespace with
 * that map; later runs setns() into it and create their own user namespace there (the same
 * ranges mapped onto themselves, which the supervisor may write itself: no helper), with their
 * mount, pid, uts, ipc (and net) namespaces. rootless podman does the same with its pause
 * process. It is no daemon
 * in the sense that matters: nothing needs it (every failure below means the run maps its own
 * namespace as before), it serves nothing, and it leaves by itself after IDLE seconds without
 * a run (AZL_SHELL_USERNS_IDLE, 0 turns it off), or once its state file is gone (a `rm -rf`
 * of the cache).
 *
 * The state file (in the cache folder, which no sandbox can reach) holds
 * "azl-userns 4 PID NSINODE" and the keeper's limits (below), then the MAC of the line and of the
 * uid and gid maps its namespace was given (written once, never changed). The keeper holds an exclusive flock on it for its whole life,
 * so "locked" means "a keeper lives, and the file names it"; a run that finds it unlocked
 * starts a keeper, and a run that cannot lock it to start one (another run is starting one
 * right now) simply maps its own namespace. Before joining, the namespace must be the one the
 * file names (inode), owned by this user, made with exactly the plan's uid and gid maps (the MAC
 * decides, computed over the line and the plan's maps: a namespace a sandboxed command made to
 * look like a keeper, maps and all, is never named by a line with a right MAC, and a keeper's
 * file renamed to another map's name fails it; NS_GET_PARENT could tell it apart too, but
 * measured it costs a warm run ~0.5 ms, a fifth of it), and the
 * lock must still be held after it was opened (the keeper did not die and its pid come back
 * as another process in between).
 *
 * What sharing means: the sandboxes of one user (with the same map) have one parent user
 * namespace, and each its own user, mount, pid, ipc and uts namespaces: what a run sets in its
 * user namespace (its /proc/sys/user limits, a binfmt_misc) stays its own, and a process of one
 * sandbox cannot name one of another (it sees only its own pid namespace and mounts).
 */
#include "azl_sandbox.h"
#include "sandbox.h"
#include "seccomp_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC "azl-userns 4"

/* A user namespace keeps its creator's limits of these (the kernel checks every namespace up to
 * the initial one): the keeper raises them to the hard limits before it creates its namespace,
 * and a run joins only a keeper whose limits are no lower than its own (a run's own namespace,
 * nested in it, keeps the run's). */
static const int kept_limits[] = { RLIMIT_NPROC, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_MEMLOCK };
#define NLIMITS 4

/* The keeper's state file is ours, a regular file nobody else may write. */
static int state_ok(int fd, struct stat *st) {
    return fstat(fd, st) == 0 && S_ISREG(st->st_mode) && st->st_uid == getuid() && !(st->st_mode & 022);
}

/* Someone (a keeper) holds the lock: our LOCK_SH|LOCK_NB is refused. */
static int locked_by_other(int fd) {
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
        return 0;
    }
    return errno == EWOULDBLOCK;
}

/* What the state's MAC covers: the line (LEN bytes of LINE) and the plan's maps, as numbers. */
static size_t signed_text(const char *line, size_t len, const struct plan *p, char *out, size_t size) {
    size_t n = (size_t)snprintf(out, size, "%.*s", (int)len, line);
    const struct idmap *maps[2] = { &p->uidmap, &p->gidmap };
    for (int m = 0; m < 2 && n < size; m++) {
        n += (size_t)snprintf(out + n, size - n, m ? "gid" : "uid");
        for (int i = 0; i < maps[m]->nfields && n < size; i++)
            n += (size_t)snprintf(out + n, size - n, " %lu", strtoul(maps[m]->fields[i], NULL, 10));
        if (n < size) n += (size_t)snprintf(out + n, size - n, "\n");
    }
    return n < size ? n : size;
}

/* The state file's content: the keeper's pid, its user namespace's inode, and (LIMITS_OK not
 * NULL) whether its limits are no lower than this process's. The line is believed only with its MAC (state_mac.c,
 * purpose "keeper") after it: whoever can write the cache folder must not choose the namespace a
 * run joins. */
static int read_state(int fd, const struct plan *pl, pid_t *pid, unsigned long long *ino, int *limits_ok) {
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (!nl || strlen(nl + 1) != 2 * AZL_STATE_MAC_LEN + 1 || nl[1 + 2 * AZL_STATE_MAC_LEN] != '\n') return -1;
    unsigned char mac[AZL_STATE_MAC_LEN];
    nl[1 + 2 * AZL_STATE_MAC_LEN] = '\0';
    if (azl_seccomp_hex_decode(nl + 1, mac, sizeof mac) != AZL_STATE_MAC_LEN) return -1;
    char text[2048];
    size_t tn = signed_text(buf, (size_t)(nl + 1 - buf), pl, text, sizeof text);
    if (tn >= sizeof text || !azl_state_mac_ok("keeper", text, tn, mac)) return -1;
    int p;
    unsigned long long l[NLIMITS];
    if (sscanf(buf, STATE_MAGIC " %d %llu %llu %llu %llu %llu", &p, ino, &l[0], &l[1], &l[2], &l[3]) != 2 + NLIMITS || p <= 1)
        return -1;
    *pid = p;
    if (!limits_ok) return 0;   /* a second look, for the pid and inode only */
    *limits_ok = 1;
    for (int i = 0; i < NLIMITS; i++) {
        struct rlimit r;
        if (getrlimit(kept_limits[i], &r) < 0 || (unsigned long long)r.rlim_cur > l[i]) *limits_ok = 0;
    }
    return 0;
}

/* The live keeper's user namespace for these maps, as an fd, or -1. */
static int join_existing(const struct plan *p) {
    int sf = open(p->keeper_state, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (sf < 0) return -1;
    int ns = -1, limits_ok;
    pid_t pid, pid2;
    unsigned long long ino, ino2;
    struct stat sst;
    if (!state_ok(sf, &sst) || !locked_by_other(sf) || read_state(sf, p, &pid, &ino, &limits_ok) < 0 || !limits_ok) goto out;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
    ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) goto out;
    struct stat st;
    uid_t owner;
    if (fstat(ns, &st) < 0 || (unsigned long long)st.st_ino != ino ||
        ioctl(ns, NS_GET_OWNER_UID, &owner) < 0 || owner != getuid() ||
        /* still held, still naming that keeper: it did not die while we looked */
        !locked_by_other(sf) || read_state(sf, p, &pid2, &ino2, NULL) < 0 || pid2 != pid || ino2 != ino) {
        close(ns);
        ns = -1;
        goto out;
    }
    /* A run: the keeper's idle clock starts again. At most every 10 s (a quarter of a shorter
     * idle time): each touch dirties the inode (a journal entry), and the keeper counts seconds. */
    long every = (long)p->keeper_idle / 4 < 10 ? (long)p->keeper_idle / 4 : 10;
    if (time(NULL) - sst.st_mtime >= every) futimens(sf, NULL);
out:
    close(sf);
    return ns;
}

/* Start a keeper for the plan's maps and return its user namespace, or -1 (nothing left
 * behind: a keeper that never got its maps exits on its own). */
static int start_keeper(const struct plan *p) {
    /* Without the state secret no run could trust the file: keep nothing. */
    unsigned char key[AZL_STATE_KEY_LEN], mac[AZL_STATE_MAC_LEN];
    if (azl_state_key(key) < 0) return -1;
    int sf = open(p->keeper_state, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (sf < 0) return -1;
    struct stat sst;
    if (!state_ok(sf, &sst) || flock(sf, LOCK_EX | LOCK_NB) < 0) { close(sf); return -1; }
    int ready[2], go[2];
    if (pipe2(ready, O_CLOEXEC) < 0) { close(sf); return -1; }
    if (pipe2(go, O_CLOEXEC) < 0) { close(ready[0]); close(ready[1]); close(sf); return -1; }

    pid_t mid = fork();
    if (mid == 0) {
        /* Forked twice, so the keeper is nobody's child of ours (no zombie, no SIGCHLD for
         * the supervisor) and in a session of its own (no terminal's signals). */
        if (fork() != 0) _exit(0);
        setsid();
        close(ready[0]);
        close(go[1]);
        for (int i = 0; i < NLIMITS; i++) {
            struct rlimit r;
            if (getrlimit(kept_limits[i], &r) == 0 && r.rlim_cur != r.rlim_max) {
                r.rlim_cur = r.rlim_max;
                setrlimit(kept_limits[i], &r);
            }
        }
        if (unshare(CLONE_NEWUSER) < 0) _exit(1);
        pid_t self = getpid();
        char c;
        if (write(ready[1], &self, sizeof self) != sizeof self || read(go[0], &c, 1) != 1) _exit(1);
        /* Only the state file (locked: fd 3) and /dev/null cross into the keeper. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(1);
        if (sf != 3 && dup2(sf, 3) < 0) _exit(1);
        fcntl(3, F_SETFD, 0);
        close_range(4, ~0U, 0);
        if (chdir("/") < 0) _exit(1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char idle[24];
        snprintf(idle, sizeof idle, "%u", p->keeper_idle);
        char *argv[] = { "azl-shell-sandbox", "--userns-keeper", (char *)p->keeper_state, idle, NULL };
        char *env[] = { NULL };
        execve(p->keeper_program, argv, env);
        _exit(1);
    }
    close(ready[1]);
    close(go[0]);
    int ns = -1, st;
    pid_t kpid = 0;
    if (mid > 0) while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
    if (mid < 0 || read(ready[0], &kpid, sizeof kpid) != sizeof kpid || kpid <= 1) goto out;
    /* The same helpers a run without keeper runs: they fail (with their own message) the
     * same way, and then so does this run. */
    write_id_maps(kpid, p);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", (int)kpid);
    ns = open(path, O_RDONLY | O_CLOEXEC);
    struct stat nst;
    char text[256];
    unsigned long long hard[NLIMITS];   /* what the keeper raised its limits to */
    for (int i = 0; i < NLIMITS; i++) {
        struct rlimit r;
        hard[i] = getrlimit(kept_limits[i], &r) == 0 ? (unsigned long long)r.rlim_max : 0;
    }
    int n = snprintf(text, sizeof text, STATE_MAGIC " %d %llu %llu %llu %llu %llu\n", (int)kpid,
                     (unsigned long long)(ns >= 0 && fstat(ns, &nst) == 0 ? nst.st_ino : 0), hard[0], hard[1], hard[2], hard[3]);
    char signed_buf[2048];
    size_t sn = signed_text(text, (size_t)n, p, signed_buf, sizeof signed_buf);
    azl_state_mac(key, "keeper", signed_buf, sn, mac);
    for (int i = 0; i < AZL_STATE_MAC_LEN; i++) n += snprintf(text + n, sizeof text - (size_t)n, "%02x", mac[i]);
    n += snprintf(text + n, sizeof text - (size_t)n, "\n");
    if (ns < 0 || ftruncate(sf, 0) < 0 || pwrite(sf, text, (size_t)n, 0) != n || write(go[1], "g", 1) != 1) {
        if (ns >= 0) close(ns);
        ns = -1;
    }
out:
    close(ready[0]);
    close(go[1]);   /* EOF: a keeper still waiting for its go gives up */
    close(sf);      /* the keeper's fd 3 keeps the lock */
    return ns;
}

int keeper_userns(const struct plan *p) {
    if (!p->keeper_state) return -1;
    int ns = join_existing(p);
    return ns >= 0 ? ns : start_keeper(p);
}

int keeper_main(const char *state, const char *idle_text) {
    char *end;
    long idle = strtol(idle_text, &end, 10);
    struct stat mine;
    if (*end || idle <= 0 || fstat(3, &mine) < 0) return EXIT_OURS;
    prctl(PR_SET_NAME, "azl-userns", 0, 0, 0);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    for (;;) {
        /* Gone or replaced (a `rm -rf` of the cache, another keeper's file): leave now. */
        struct stat now;
        if (stat(state, &now) < 0 || now.st_ino != mine.st_ino || now.st_dev != mine.st_dev) return 0;
        if (now.st_mtime + idle <= time(NULL)) return 0;
        /* Once a second: a removed state file is noticed at once, and a sleeping process
         * costs nothing; a run never waits for it. */
        poll(NULL, 0, 1000);
    }
}
