/*
 * Named environments (issue 12): one live sandbox per environment, which every session joins.
 *
 * Overlayfs must never be mounted twice on one upper directory, so the environment's root (its
 * persistent upper over the image) is mounted once, by the first session, in a sandbox that
 * outlives it:
 *
 *   session (supervisor)           holder "azl-env" (outside)          pid 1 "azl-env-init"
 *   no answer on DIR/live.sock,
 *   flock DIR/live.lock: fork ──►  setsid, stdio /dev/null, cwd /
 *                                  clone(NEWUSER|NEWNS|NEWPID|...) ──► waits for its maps
 *                                  id maps, opens /proc/PID/ns/... ─►  go: root (mounts.c),
 *                                                                      hostname, lo; ready
 *                                  listens on DIR/live.sock; ready      reaps; on SIGTERM ends
 *   connect, "j" ─────────────────► sends the namespace fds             everything inside
 *   non-dumpable, setns user+pid,
 *   fork: setns mnt, uts, ipc(, net)
 *   → its own pty, ids, policy, command (init.c, as a session: no pid 1 duties)
 *
 * The holder opens the namespaces while pid 1 is still dumpable (before its "go"), so no
 * session ever reads anything of the live sandbox's /proc or files: what a command inside can
 * change is never trusted by a joiner (runc CVE-2016-9962). The socket, lock and pid file are
 * in the store, which every sandbox has hidden (docs/sandbox.md "Trust"); the peer must be the
 * user's own (SO_PEERCRED). Each session keeps its connection for its whole life: the holder
 * counts sessions by them, stops the sandbox IDLE seconds after the last one left, or on "s"
 * (`azl-shell stop`) or SIGTERM. The lock is held by the holder for its whole life: a session
 * that finds no socket and cannot take it waits (another is starting or stopping one).
 */
#include "sandbox.h"
#include "azl_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENV_GRACE_MS 5000   /* SIGTERM to everything inside, SIGKILL after this */
#define ENV_MAX_SESSIONS 256

static const struct { unsigned bit; const char *name; int flag; } ns_table[ENV_NS_MAX] = {
    { NS_USER, "user", CLONE_NEWUSER }, { NS_PID, "pid", CLONE_NEWPID }, { NS_MOUNT, "mnt", CLONE_NEWNS },
    { NS_UTS, "uts", CLONE_NEWUTS },    { NS_IPC, "ipc", CLONE_NEWIPC }, { NS_NET, "net", CLONE_NEWNET },
};

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *env_name(const struct plan *p) {
    const char *s = strrchr(p->env_dir, '/');
    return s ? s + 1 : p->env_dir;
}

/* The environment's folder: ours alone, reached without a symlink at its end. */
static int env_dir_open(const struct plan *p) {
    int d = open(p->env_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (d < 0 || fstat(d, &st) < 0) die("environment %s: cannot open %s", env_name(p), p->env_dir);
    if (st.st_uid != getuid() || (st.st_mode & 022)) errno = 0, die("environment %s: %s is not yours alone", env_name(p), p->env_dir);
    return d;
}

static void sock_addr(int dfd, struct sockaddr_un *a) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "/proc/self/fd/%d/live.sock", dfd);
}

/* A connection to the live sandbox's holder with request REQ sent, or -1. */
static int live_connect(int dfd, char req) {
    struct sockaddr_un a;
    sock_addr(dfd, &a);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct ucred cr;
    socklen_t l = sizeof cr;
    if (c < 0) return -1;
    if (connect(c, (struct sockaddr *)&a, sizeof a) < 0 || getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 ||
        cr.uid != getuid() || write(c, &req, 1) != 1) {
        close(c);
        return -1;
    }
    return c;
}

int azl_env_request(const char *dir, char req, char *out, size_t outlen) {
    int d = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0) return -1;
    int c = live_connect(d, req);
    close(d);
    if (c < 0) return -1;
    size_t o = 0;
    for (;;) {
        ssize_t n = o + 1 < outlen ? read(c, out + o, outlen - 1 - o) : 0;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        o += (size_t)n;
    }
    if (outlen) out[o] = '\0';
    close(c);
    return 0;
}

/* ---- pid 1 of the live sandbox ---------------------------------------------- */

/* Whether a process other than us is left in the sandbox (its /proc). */
static int others_left(void) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && strcmp(e->d_name, "1") != 0) found = 1;
    closedir(d);
    return found;
}

void env_init(const struct plan *p, int ready_fd) {
    name_process("azl-env-init");
    if ((p->ns & NS_UTS) && p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0) die("cannot set the hostname");
    if (p->ns & NS_NET) bring_up_lo();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (sfd < 0 || null < 0) die("cannot start the environment's init");
    /* From now on it holds nothing of the session that started it: no terminal, no pipe. */
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    if (write(ready_fd, "r", 1) != 1) _exit(EXIT_OURS);
    close(ready_fd);
    long long deadline = -1;
    for (;;) {
        struct pollfd f = { sfd, POLLIN, 0 };
        int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
        if (deadline >= 0 && (wait <= 0 || !others_left())) _exit(0);   /* the kernel kills what is left */
        if (poll(&f, 1, deadline < 0 ? -1 : (wait < 50 ? wait : 50)) <= 0) continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) != sizeof si) continue;
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        if (si.ssi_signo == SIGTERM && deadline < 0) {
            kill(-1, SIGTERM);
            deadline = now_ms() + ENV_GRACE_MS;
        }
    }
}

/* ---- the holder ------------------------------------------------------------- */

static int nsfds[ENV_NS_MAX + 1], nns;   /* the namespaces, then a pidfd of pid 1 */

__attribute__((noreturn)) static void holder_stop(int dfd, int lfd, pid_t init, int sfd) {
    unlinkat(dfd, "live.sock", 0);   /* new sessions now wait on the lock, then start afresh */
    if (lfd >= 0) close(lfd);
    for (int i = 0; i < nns; i++) close(nsfds[i]);   /* the namespaces die with their last process */
    kill(init, SIGTERM);
    long long deadline = now_ms() + ENV_GRACE_MS + 1000;
    for (;;) {
        int st;
        if (waitpid(init, &st, WNOHANG) == init) break;
        long long left = deadline - now_ms();
        if (left <= 0) {
            kill(init, SIGKILL);
            while (waitpid(init, &st, 0) < 0 && errno == EINTR) {}
            break;
        }
        struct pollfd f = { sfd, POLLIN, 0 };
        if (poll(&f, 1, (int)(left < 100 ? left : 100)) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) < 0) {}
        }
    }
    /* pid 1 waited for every other process of the sandbox to exit: the overlay is unmounted. */
    unlinkat(dfd, "live.pid", 0);
    _exit(0);
}

__attribute__((noreturn)) static void holder(const struct plan *p, int dfd, int lock, int first) {
    setsid();
    name_process("azl-env");
    /* Only what it needs: stderr (the starting session's, until the sandbox is up), the
     * environment's folder, the lock and the starting session's connection. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0) _exit(EXIT_OURS);
    int keep[4] = { dfd, lock, first, null }, moved[4];
    for (int i = 0; i < 4; i++) moved[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 64);
    for (int i = 0; i < 4; i++) {
        if (moved[i] < 0 || dup3(moved[i], 3 + i, O_CLOEXEC) < 0) _exit(EXIT_OURS);
    }
    close_range(7, ~0U, 0);
    dfd = 3, lock = 4, first = 5, null = 6;
    if (chdir("/") < 0) _exit(EXIT_OURS);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD), sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT), sigaddset(&set, SIGHUP);
    sigprocmask(SIG_SETMASK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    /* The user's kept user namespace (keeper.c), as a warm run has it: the sandbox's own user
     * namespace is made in it, and its maps (the same ranges onto themselves) written here,
     * not by newuidmap and newgidmap (two setuid programs, most of a start). */
    int kns = keeper_userns(p), kept = kns >= 0 && setns(kns, CLONE_NEWUSER) == 0;
    if (kns >= 0) close(kns);
    unsigned long flags = SIGCHLD;
    for (int i = 0; i < ENV_NS_MAX; i++)
        if (p->ns & ns_table[i].bit) flags |= (unsigned long)ns_table[i].flag;
    int go[2], up[2];
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0) die("pipe");
    pid_t init = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (init < 0) die("cannot create the environment's namespaces (run `azl-shell doctor`)");
    if (init == 0) {
        close(go[1]), close(up[0]), close(sfd), close(lock), close(first), close(dfd), close(null);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) _exit(EXIT_OURS);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(EXIT_OURS);
        close(go[0]);
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
        /* The plan's modes as they are (mounts.c relies on it), then the user's umask again. */
        mode_t um = umask(0);
        setup_root(p);
        mnt_detach_old_root();
        umask(um);
        env_init(p, up[1]);
    }
    close(go[0]), close(up[1]);
    if (!kept) write_id_maps(init, p);
    else write_map_as(init, &p->uidmap, "uid_map", 1), write_map_as(init, &p->gidmap, "gid_map", 1);
    /* The namespaces, opened while pid 1 is still dumpable and has run nothing of its own. */
    for (int i = 0; i < ENV_NS_MAX; i++) {
        if (!(p->ns & ns_table[i].bit)) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)init, ns_table[i].name);
        if ((nsfds[nns++] = open(path, O_RDONLY | O_CLOEXEC)) < 0) die("cannot open %s", path);
    }
    if ((nsfds[nns++] = (int)syscall(SYS_pidfd_open, init, 0)) < 0) die("pidfd_open");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
    char c;
    if (write(go[1], "g", 1) != 1) _exit(EXIT_OURS);
    close(go[1]);

    /* While pid 1 builds the root (its file system work off the start's path): its pid, for the
     * next start to wait until this sandbox is gone (kill -9 of the holder), and the socket (a
     * session that connects now gets its fds once the sandbox is up). */
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)init);
    int pf = openat(dfd, "live.pid.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (pf < 0 || write(pf, text, (size_t)n) != n || renameat(dfd, "live.pid.tmp", dfd, "live.pid") < 0) die("cannot write the environment's state");
    close(pf);
    struct sockaddr_un a;
    sock_addr(dfd, &a);
    unlinkat(dfd, "live.sock", 0);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(077);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0) die("cannot listen on %s/live.sock", p->env_dir);
    umask(old);
    ssize_t r;
    do r = read(up[0], &c, 1); while (r < 0 && errno == EINTR);
    if (r != 1) {
        /* pid 1 said why. Its namespaces (the overlay) go before the lock does: released only at exit. */
        unlinkat(dfd, "live.sock", 0);
        for (int i = 0; i < nns; i++) close(nsfds[i]);
        int st;
        while (waitpid(init, &st, 0) < 0 && errno == EINTR) {}
        unlinkat(dfd, "live.pid", 0);
        _exit(EXIT_OURS);
    }
    close(up[0]);
    dup2(null, 2);

    /* The starting session is the first: its fds now, no connect and accept after the start. */
    struct { int fd; pid_t pid; } s[ENV_MAX_SESSIONS];
    int ns = 0;
    struct ucred fc;
    socklen_t fl = sizeof fc;
    if (getsockopt(first, SOL_SOCKET, SO_PEERCRED, &fc, &fl) == 0 && azl_send_fds(first, nsfds, nns) == 0) s[ns].fd = first, s[ns++].pid = fc.pid;
    else close(first);
    long long idle_since = now_ms();
    for (;;) {
        struct pollfd f[2 + ENV_MAX_SESSIONS];
        f[0] = (struct pollfd){ sfd, POLLIN, 0 };
        f[1] = (struct pollfd){ ns < ENV_MAX_SESSIONS ? lfd : -1, POLLIN, 0 };
        for (int i = 0; i < ns; i++) f[2 + i] = (struct pollfd){ s[i].fd, POLLIN, 0 };
        long long left = (long long)p->env_idle * 1000 - (now_ms() - idle_since);
        if (ns == 0 && left <= 0) holder_stop(dfd, lfd, init, sfd);
        if (poll(f, (nfds_t)(2 + ns), ns == 0 ? (int)(left > 60000 ? 60000 : left) : -1) < 0 && errno != EINTR) die("poll");
        if (f[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo != SIGCHLD) holder_stop(dfd, lfd, init, sfd);
                int st;
                if (waitpid(init, &st, WNOHANG) == init) {   /* killed: what is inside is gone with it */
                    unlinkat(dfd, "live.sock", 0);
                    unlinkat(dfd, "live.pid", 0);
                    _exit(0);
                }
            }
        }
        for (int i = ns - 1; i >= 0; i--) {
            if (!f[2 + i].revents) continue;
            char b[64];
            if (read(s[i].fd, b, sizeof b) > 0) continue;
            close(s[i].fd);
            s[i] = s[--ns];
            if (ns == 0) idle_since = now_ms();
        }
        if (f[1].revents & POLLIN) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            struct ucred cr;
            socklen_t l = sizeof cr;
            struct pollfd w = { c, POLLIN, 0 };
            char req = 0;
            if (c < 0) continue;
            if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &l) < 0 || cr.uid != getuid() || poll(&w, 1, 1000) != 1 ||
                read(c, &req, 1) != 1) req = 0;
            int st;
            if (req == 'j' && waitpid(init, &st, WNOHANG) == init) {   /* it died just now: this holder is done */
                close(c);
                for (int i = 0; i < nns; i++) close(nsfds[i]);
                unlinkat(dfd, "live.sock", 0);
                unlinkat(dfd, "live.pid", 0);
                _exit(0);
            }
            if (req == 'j' && azl_send_fds(c, nsfds, nns) == 0) {
                s[ns].fd = c, s[ns++].pid = cr.pid;
                continue;
            }
            if (req == 'q') {
                /* "SESSIONS PID1 PID..." (pid 1 as the host sees it, then each session's). */
                char out[16 * (ENV_MAX_SESSIONS + 2)];
                int o = snprintf(out, sizeof out, "%d %d", ns, (int)init);
                for (int i = 0; i < ns; i++) o += snprintf(out + o, sizeof out - (size_t)o, " %d", (int)s[i].pid);
                o += snprintf(out + o, sizeof out - (size_t)o, "\n");
                if (write_all(c, out, (size_t)o) < 0) {}
            }
            close(c);
            if (req == 's') holder_stop(dfd, lfd, init, sfd);
        }
    }
}

/* The previous live sandbox of this environment, if its pid 1 is still on its way out (a
 * killed holder does not wait for it): waited for, so its overlay is gone first. */
static void wait_previous(int dfd) {
    char text[32], path[64], comm[32];
    int pf = openat(dfd, "live.pid", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (pf < 0) return;
    ssize_t n = read(pf, text, sizeof text - 1);
    close(pf);
    if (n <= 0) return;
    text[n] = '\0';
    int pid = atoi(text);
    if (pid <= 1) return;
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    for (long long until = now_ms() + ENV_GRACE_MS + 2000; now_ms() < until; poll(NULL, 0, 10)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        n = read(fd, comm, sizeof comm - 1);
        close(fd);
        if (n <= 0 || strncmp(comm, "azl-env-init", 12) != 0) return;   /* gone, or its pid reused */
    }
}

/* Start the live sandbox (we hold the lock): this session is its first, its connection in
 * *CONN and the namespace fds in FDS, sent once the sandbox serves; returns how many. */
static int live_start(const struct plan *p, int dfd, int lock, int *conn, int *fds) {
    wait_previous(dfd);
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) die("socketpair");
    fflush(stdout), fflush(stderr);
    pid_t mid = fork();
    if (mid < 0) die("fork");
    if (mid == 0) {
        /* Twice: the holder is nobody's child of ours (no zombie, no SIGCHLD for the supervisor). */
        close(sp[0]);
        if (fork() != 0) _exit(0);
        holder(p, dfd, lock, sp[1]);
    }
    close(sp[1]);
    int n = azl_recv_fds(sp[0], fds, ENV_NS_MAX + 1), st;
    if (n <= 0) _exit(EXIT_OURS);   /* the holder or pid 1 has said why */
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}   /* long gone: it only forked */
    *conn = sp[0];
    return n;
}

int env_join(const struct plan *p, int ns[ENV_NS_MAX]) {
    int dfd = env_dir_open(p), want = 1;
    for (int i = 0; i < ENV_NS_MAX; i++) want += (p->ns & ns_table[i].bit) != 0;
    int c = -1, n = 0, fds[ENV_NS_MAX + 1];
    for (long long until = now_ms() + 30000;; poll(NULL, 0, 5)) {
        int lock = -1;
        if ((c = live_connect(dfd, 'j')) >= 0) n = azl_recv_fds(c, fds, ENV_NS_MAX + 1);
        else if ((lock = openat(dfd, "live.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
            die("environment %s: cannot open its lock", env_name(p));
        else if (flock(lock, LOCK_EX | LOCK_NB) == 0) {
            /* `rm` holds this lock from its last stop through renaming the folder aside: one
             * taken after that is on a folder being removed, never to be mounted again. */
            struct stat a, b;
            if (fstat(dfd, &a) < 0 || stat(p->env_dir, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                errno = 0, die("environment %s was removed", env_name(p));
            n = live_start(p, dfd, lock, &c, fds);
        }
        if (lock >= 0) close(lock);   /* the holder's copy keeps it */
        if (c >= 0) {
            /* pid 1 still there (its pidfd not readable): a sandbox being killed is not joined */
            struct pollfd dead = { n == want ? fds[n - 1] : -1, POLLIN, 0 };
            if (n == want && poll(&dead, 1, 0) == 0) break;
            for (int i = 0; i < n; i++) close(fds[i]);
            close(c);
            c = -1;
        }
        if (now_ms() > until) errno = 0, die("environment %s: its live sandbox neither answers nor stops; run `azl-shell stop %s`", env_name(p), env_name(p));
    }
    /* LAST USED of `list`: here, so a session replayed from the plan cache counts too. */
    int lu = openat(dfd, "last-used", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    if (lu >= 0) futimens(lu, NULL), close(lu);
    close(dfd);
    close(fds[--n]);
    memcpy(ns, fds, sizeof(int) * (size_t)n);
    /* The connection stays open (close-on-exec) as long as this session: the holder counts it. */
    (void)c;
    /* Non-dumpable before entering: nothing inside may ptrace or read this process. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
    if (setns(ns[0], CLONE_NEWUSER) < 0) die("environment %s: cannot enter its user namespace", env_name(p));
    if (setns(ns[1], CLONE_NEWPID) < 0) die("environment %s: cannot enter its pid namespace", env_name(p));
    close(ns[0]), close(ns[1]);
    for (int i = 2; i < n; i++) ns[i - 2] = ns[i];
    return n - 2;
}

/* A session's working directory, when the environment does not show it (docs/environments.md):
 * bound in a mount namespace of the session's own, cloned from the live one, so no other session
 * sees it and nothing is mounted in the shared namespace from outside (what a refcounted bind
 * into it would need). The folder is cloned, guarded, in a private copy of the host's namespace
 * (ours: we are in the live user namespace), which is left before entering the sandbox's: only
 * that detached tree comes in, and the copy dies with it. */
void env_enter(const struct plan *p, const int *ns, int n) {
    int tree = -1;
    if (p->session_src) {
        if (unshare(CLONE_NEWNS) < 0) die("cannot bind the working directory %s", p->session_src);
        tree = mnt_session_tree(p, p->session_src);
    }
    /* Mount last but one is fine: setns(mnt) also puts this process at the sandbox's root. */
    for (int i = 0; i < n; i++) {
        if (setns(ns[i], 0) < 0) die("cannot enter the environment's namespaces");
        close(ns[i]);
    }
    if (tree < 0) return;
    if (unshare(CLONE_NEWNS) < 0) die("cannot bind the working directory %s", p->session_src);
    mnt_attach_here(tree, p->session_dst);
}

/* ---- removal ------------------------------------------------------------------ */

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f) {
    (void)st, (void)f;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT) {
        say("cannot remove %s: %s", path, strerror(errno));
        return 1;
    }
    return 0;
}

void env_remove_tree(const struct plan *p) {
    int go[2];
    if (pipe2(go, O_CLOEXEC) < 0) die("pipe");
    /* In a user namespace of the plan's maps: the files of other ids (a package's) are ours there. */
    pid_t c = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (c < 0) die("cannot create a user namespace");
    if (c == 0) {
        char b;
        close(go[1]);
        if (read(go[0], &b, 1) != 1) _exit(EXIT_OURS);
        _exit(nftw(p->remove_path, remove_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0 ? 0 : EXIT_OURS);
    }
    close(go[0]);
    write_id_maps(c, p);
    if (write(go[1], "g", 1) != 1) die("cannot start the removal");
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR) {}
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_OURS);
}
