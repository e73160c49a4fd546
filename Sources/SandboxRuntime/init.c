/*
 * Pid 1 of the sandbox, and the exec of the command.
 *
 * Pid 1 forks the command, then waits in poll(): a signalfd (all those signals are blocked)
 * with SIGCHLD -> reap every child (orphans re-parented to us included, so no zombie piles
 * up) and SIGINT/TERM/HUP/QUIT/WINCH (forwarded by the supervisor) -> pass to the command;
 * and, with a kernel profile, the command's seccomp listener: uname(2) is answered here
 * (seccomp_notify.c) with the profile's release and version. When the command exits, pid 1
 * exits with its status (128+N for signal N) and the kernel kills whatever else is left in
 * the pid namespace: nothing outlives the command.
 *
 * Why pid 1 answers uname and not the supervisor: the answer is written into the caller's
 * memory through /proc/PID/mem, whose permission check needs the caller's uid or
 * CAP_DAC_OVERRIDE over it. The supervisor (the user, outside) has neither for a process of
 * another uid inside (--user 1000, apt's _apt, su): pid 1 is root of the sandbox's user
 * namespace with every capability there, so it reaches every process of the sandbox. It also
 * lives in the sandbox's UTS namespace, so the nodename it answers is the live one.
 */
#include "sandbox.h"
#include "seccomp_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

void bring_up_lo(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("cannot configure lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("cannot bring up lo");
    close(s);
}

static const char *env_get(char **env, const char *key) {
    size_t n = strlen(key);
    for (; *env; env++)
        if (strncmp(*env, key, n) == 0 && (*env)[n] == '=') return *env + n + 1;
    return NULL;
}

/* A script without a #! line: run it with /bin/sh, as execvp does. */
static void exec_sh(const char *file, char **argv, char **env) {
    int n = 0;
    while (argv[n]) n++;
    char **v = calloc((size_t)n + 2, sizeof *v);
    if (!v) return;
    v[0] = "/bin/sh";
    v[1] = (char *)file;
    for (int i = 1; i < n; i++) v[i + 1] = argv[i];
    execve("/bin/sh", v, env);
}

/* execvp with the sandbox's PATH (glibc's would use ours), reporting 126/127 distinctly. */
__attribute__((noreturn)) static void exec_command(char **argv, char **env) {
    const char *file = argv[0];
    int err;
    if (!*file) {   /* "" names no command (a PATH search would try the directories themselves) */
        dprintf(2, "azl-shell: '': command not found in the image\n");
        _exit(EXIT_NOTFOUND);
    }
    if (strchr(file, '/')) {
        execve(file, argv, env);
        err = errno;
        if (err == ENOEXEC) { exec_sh(file, argv, env); err = errno; }
    } else {
        const char *path = env_get(env, "PATH");
        if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        err = ENOENT;
        int eacces = 0;
        char buf[4096];
        for (const char *d = path; ; ) {
            size_t dl = strcspn(d, ":");
            if (dl + strlen(file) + 2 <= sizeof buf) {
                if (dl == 0) snprintf(buf, sizeof buf, "%s", file);
                else snprintf(buf, sizeof buf, "%.*s/%s", (int)dl, d, file);
                execve(buf, argv, env);
                if (errno == ENOEXEC) { exec_sh(buf, argv, env); err = errno; break; }
                if (errno == EACCES) eacces = 1;
                else if (errno != ENOENT && errno != ENOTDIR) { err = errno; break; }
            }
            if (!d[dl]) break;
            d += dl + 1;
        }
        if (err == ENOENT && eacces) err = EACCES;
    }
    if (err == ENOENT || err == ENOTDIR) {
        dprintf(2, "azl-shell: %s: command not found in the image\n", file);
        _exit(EXIT_NOTFOUND);
    }
    dprintf(2, "azl-shell: cannot run %s: %s\n", file, strerror(err));
    _exit(EXIT_NOEXEC);
}

/* The kernel policy, in the command's child just before exec (docs/kernel.md): the bounding
 * set shrinks while we are still root with every capability; then the id switch (which needs
 * CAP_SETUID/SETGID, whatever --cap-drop says: it is ours, not the command's); then the other
 * sets (for a non-root uid they are already empty). Then no_new_privs and the seccomp program,
 * last, so nothing of ours runs under it but execve; its uname listener goes to pid 1. */
static void drop_bounding(const struct plan *p) {
    if (p->have_caps && azl_seccomp_drop_bounding(p->caps[0]) < 0) die("cannot drop capabilities from the bounding set");
}

static void apply_caps(const struct plan *p) {
    if (!p->have_caps) return;
    struct azl_seccomp_caps c = { p->caps[0], p->caps[1], p->caps[2], p->caps[3], p->caps[4] };
    if (azl_seccomp_set_caps(&c) < 0) die("cannot set the command's capabilities");   /* bounding: drop_bounding */
}

static void install_filter(const struct plan *p, int seccomp_sock) {
    if (!p->bpf) {
        if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("cannot set no_new_privs");
        return;
    }
    int listen = p->notify_uname || p->abi_report;
    int l = azl_seccomp_install(p->bpf, p->bpf_len, listen, p->nnp);
    if (l < 0 && errno == EACCES && !p->nnp) die("cannot install the seccomp filter without no_new_privs (it needs CAP_SYS_ADMIN)");
    if (l < 0) die("cannot install the seccomp filter");
    if (listen) {
        if (azl_send_fd(seccomp_sock, l) < 0) die("cannot pass the uname listener to the sandbox's init");
        close(l);
        close(seccomp_sock);
    }
}

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

/* uname answers: the socket the command's child sends the listener on, then the listener. */
struct uname_server {
    int sock;        /* -1 once the listener arrived (or never will) */
    int listener;    /* -1 until it arrives, and after no filtered task is left */
    int procfd;      /* the sandbox's procfs, opened before the command could touch /proc */
    struct azl_seccomp_uname answer;
};

/* --abi-report: the gated and denied calls come here instead of being failed by the filter
 * (only they: a program's other calls never leave the kernel). Each is failed as the filter
 * would, and counted per (call, program); the report is written when the command ends. */
static struct { const struct plan *p; int procfd; int n; struct { int call; unsigned long count; char prog[256]; } seen[512]; } abi;

/* The program PID runs: its exe, or under qemu-user (whose exe it is) the program qemu was given. */
static void program_of(unsigned pid, char *out, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "%u/exe", pid);
    ssize_t n = readlinkat(abi.procfd, path, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
    const char *base = strrchr(out, '/');
    if (n > 0 && strncmp(base ? base + 1 : out, "qemu-", 5)) return;
    char args[1024];
    snprintf(path, sizeof path, "%u/cmdline", pid);
    int fd = openat(abi.procfd, path, O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, args, sizeof args - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) { if (!*out) snprintf(out, size, "?"); return; }
    args[n] = '\0';
    size_t first = strlen(args);
    if ((ssize_t)first + 1 < n) snprintf(out, size, "%s", args + first + 1);
}

static int abi_hook(void *ctx, uint32_t arch, int nr, uint32_t pid) {
    (void)ctx;
    const struct plan *p = abi.p;
    int call = -1;
    for (int i = 0; i < p->nabi && call < 0; i++)
        if (p->abi_calls[i].arch == arch && p->abi_calls[i].nr == (unsigned)nr) call = i;
    if (call < 0) return ENOSYS;
    char prog[256];
    program_of(pid, prog, sizeof prog);
    int k = 0;
    while (k < abi.n && !(abi.seen[k].call == call && !strcmp(abi.seen[k].prog, prog))) k++;
    if (k == abi.n && abi.n < (int)(sizeof abi.seen / sizeof *abi.seen)) {
        abi.seen[k].call = call;
        snprintf(abi.seen[k].prog, sizeof abi.seen[k].prog, "%s", prog);
        abi.n++;
    }
    if (k < abi.n) abi.seen[k].count++;
    return p->abi_calls[call].err;
}

static void write_abi_report(void) {
    const struct plan *p = abi.p;
    if (!p || p->abi_fd < 0) return;
    dprintf(p->abi_fd, "# syscall\tprogram\tcalls\terrno\treason\n");
    for (int k = 0; k < abi.n; k++) {
        const struct abi_call *c = &p->abi_calls[abi.seen[k].call];
        const char *e = strerrorname_np(c->err);
        dprintf(p->abi_fd, "%s\t%s\t%lu\t%s\t%s\n", c->name, abi.seen[k].prog, abi.seen[k].count, e ? e : "?", c->reason);
    }
}

static void serve_uname(struct uname_server *u, short sock_ev, short l_ev) {
    if (sock_ev) {
        u->listener = azl_recv_fd(u->sock);   /* -1 at EOF: the child died before */
        close(u->sock);
        u->sock = -1;
        return;
    }
    if (u->listener < 0 || !l_ev) return;
    if ((l_ev & POLLIN) && azl_seccomp_handle_one_hooked(u->listener, u->procfd, &u->answer,
                                                         abi.p ? abi_hook : NULL, NULL) >= 0) return;
    /* POLLHUP: no filtered task is left. A failing listener (not expected) is closed too:
     * the kernel then answers uname with ENOSYS, and nothing ever hangs on it. */
    close(u->listener);
    u->listener = -1;
}

/* SIG_DFL for signal S by the system call itself: the libc wrappers refuse the signals their
 * threads use (glibc 32 and 33, musl 32 to 34), which whoever started azl-shell may still have
 * ignored. The kernel's struct sigaction, the same on x86-64 and arm64. */
static void default_disposition(int s) {
    struct { void (*handler)(int); unsigned long flags; void (*restorer)(void); unsigned long mask; } k = { SIG_DFL, 0, NULL, 0 };
    syscall(SYS_rt_sigaction, s, &k, NULL, sizeof k.mask);
}

/* What the command's child needs of pid 1's state. */
struct command_child {
    const struct plan *p;
    int uname_sock;    /* pid 1's end: closed here */
    int slave;         /* the pty, or -1 */
    int stderr_tty;
    int seccomp_sock;  /* where the uname listener goes, or -1 */
    int gate;          /* a byte here once pid 1 has detached the old root: then exec */
    int gate_w;        /* pid 1's end, closed here: EOF if pid 1 dies */
};

/* The signals ignored here, as the supervisor sent them (init_known_ignored). */
static int ignored_known;
static unsigned long long ignored_mask;

void init_known_ignored(unsigned long long mask) {
    ignored_known = 1;
    ignored_mask = mask;
}

mode_t command_umask = 022;

/* What the command's child resets: as sent, else read (no allocation: the command's child). */
static unsigned long long ignored_signals(void) {
    return ignored_known ? ignored_mask : ignored_signals_now();
}

/* The command: own session (no host controlling terminal), its ids, its dir, the policy, exec.
 * Runs on its own stack in pid 1's memory (CLONE_VM), while pid 1 detaches the old root and
 * then waits for our exec: system calls only, no allocation but exec_sh's (pid 1 is in read()
 * by then), then exec or _exit. */
static int command_child(void *arg) {
    const struct command_child *c = arg;
    const struct plan *p = c->p;
    int slave = c->slave;
    if (c->uname_sock >= 0) close(c->uname_sock);
    close(c->gate_w);
    setsid();
    if (slave >= 0) {
        if (ioctl(slave, TIOCSCTTY, 0) < 0) die("cannot make the pty the controlling terminal");
        dup2(slave, 0);
        dup2(slave, 1);
        if (c->stderr_tty) dup2(slave, 2);
        if (slave > 2) close(slave);
    }
    int switch_ids = p->gid != getgid() || p->uid != getuid();
    if (switch_ids) {
        setgroups(0, NULL);   /* EPERM with a single-id map ("deny"): fine */
        if (setresgid(p->gid, p->gid, p->gid) < 0) die("cannot switch to gid %u", (unsigned)p->gid);
    }
    drop_bounding(p);
    if (switch_ids && setresuid(p->uid, p->uid, p->uid) < 0) die("cannot switch to uid %u", (unsigned)p->uid);
    apply_caps(p);
    if (chdir(p->cwd) < 0) die("cannot enter the working directory %s", p->cwd);
    umask(command_umask);
    /* Default dispositions and an empty mask: nothing of ours (or of whoever started
     * azl-shell: an ignored SIGPIPE, say) reaches the command. exec resets the handled ones;
     * the ignored ones the supervisor found (or /proc says, or all when it cannot). */
    unsigned long long ign = ignored_signals();
    for (int s = 1; s < NSIG; s++)
        if (s > 64 || (ign >> (s - 1) & 1)) default_disposition(s);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* No fd but 0-2 crosses exec (cf. runc CVE-2024-21626). Before the filter: a
     * profile older than 5.9 answers close_range with ENOSYS. The listener is made
     * close-on-exec by the kernel. */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    install_filter(p, c->seccomp_sock);
    /* Nothing is exec'd while the host's tree is still in our mount namespace. EOF: pid 1
     * died. */
    char go;
    ssize_t n;
    while ((n = read(c->gate, &go, 1)) < 0 && errno == EINTR) {}
    if (n != 1) _exit(EXIT_OURS);
    exec_command(p->argv, p->env);
}

/* The command is done: nothing else of the sandbox may outlive it (kill and reap the rest),
 * then its status goes to the supervisor, which exits with it at once; the unmounting of the
 * sandbox's tree (expedited RCU grace periods, the overlay's teardown) happens in our exit,
 * after that, and no longer delays the user's shell. */
static int session_mode;

__attribute__((noreturn)) static void finish(int status, int status_fd) {
    /* Every process of the namespace descends from us (orphans come to us), so no child
     * left means nobody left: the usual case, and kill(-1) walks every process there is.
     * A session of an environment is no pid 1: the environment keeps what it started. */
    if (!session_mode && (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)) {
        kill(-1, SIGKILL);
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {}
    }
    write_abi_report();
    /* Nothing of ours is needed any more: the image's tree lock among them goes now, not after
     * the unmounting, so an `rmi`/`prune` right after the run finds the tree free. */
    if (status_fd > 3) close_range(3, (unsigned)status_fd - 1, 0);
    close_range(status_fd >= 3 ? (unsigned)status_fd + 1 : 3, ~0U, 0);
    unsigned char b = (unsigned char)status;
    if (status_fd >= 0 && write(status_fd, &b, 1) != 1) {}
    /* What is left, the unmounting of the whole tree (~0.3 ms of CPU: superblocks, dentries,
     * RCU), is nobody's wait: at nice 19 the supervisor's wake-up and exit (the user's shell
     * waits for those) and the user's next run come first (measured: -0.05 ms a warm run). Not
     * the idle class, which gained twice that: the unmount holds the machine's namespace
     * semaphore for the tree's detach (tens of us of CPU), and a preempted idle-class holder
     * could stall every mount of a saturated machine for far longer. */
    setpriority(PRIO_PROCESS, 0, 19);
    _exit(status);
}

void run_session_init(const struct plan *p, int pty_sock, const void *winsize, int status_fd) {
    session_mode = 1;
    run_init(p, pty_sock, winsize, status_fd);
}

void run_init(const struct plan *p, int pty_sock, const void *winsize, int status_fd) {
    if (!session_mode && (p->ns & NS_UTS) && p->hostname && sethostname(p->hostname, strlen(p->hostname)) < 0)
        die("cannot set the hostname");
    if (!session_mode && (p->ns & NS_NET)) bring_up_lo();

    /* A terminal of our own devpts for the command: its controlling terminal, so job
     * control and /dev/tty work, while the host terminal stays out of its reach
     * (no TIOCSTI into the user's shell). The supervisor relays the bytes. */
    int slave = -1;
    if (pty_sock >= 0) {
        int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0) die("cannot open /dev/pts/ptmx");
        int unlock = 0;
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0) die("cannot unlock the pty");
        slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0) die("cannot open the pty");
        if (winsize) ioctl(slave, TIOCSWINSZ, winsize);
        if (azl_send_fd(pty_sock, master) < 0) die("cannot pass the terminal to the supervisor");
        close(master);
        close(pty_sock);
    }

    sigset_t set;
    block_forwarded_signals(&set);
    int stderr_tty = isatty(2);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");

    struct uname_server u = { .sock = -1, .listener = -1, .procfd = -1,
                              .answer = { .release = p->uts_release, .version = p->uts_version,
                                          .machine = p->uts_machine && *p->uts_machine ? p->uts_machine : NULL } };
    int seccomp_sock = -1;
    if (p->notify_uname || p->abi_report) {
        int ks[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ks) < 0) die("socketpair");
        u.sock = ks[0];
        seccomp_sock = ks[1];
        /* The sandbox's procfs, held from now on: even a command given CAP_SYS_ADMIN that
         * mounts over /proc cannot redirect the writes into callers' memory. */
        struct statfs sf;
        u.procfd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (u.procfd < 0 || fstatfs(u.procfd, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC) {
            errno = 0;
            die("the sandbox has no procfs at /proc to answer uname through");
        }
        if (p->abi_report) { abi.p = p; abi.procfd = u.procfd; }
    }

    start_details();   /* the signals the command's child resets */
    /* vfork-like: the child borrows our memory (no page tables copied) and only makes system
     * calls and execs. Unlike vfork, we go on meanwhile, with system calls only: detaching the
     * old root (~0.1 ms: its unmount waits for an expedited RCU grace period) overlaps the
     * child's policy and seccomp program; the child execs once we open its gate, and we wait
     * for that exec (or its exit) on a pipe that closes with it, as vfork would. */
    int gate[2], execd[2];
    if (pipe2(gate, O_CLOEXEC) < 0 || pipe2(execd, O_CLOEXEC) < 0) die("pipe");
    struct command_child c = { p, u.sock, slave, stderr_tty, seccomp_sock, gate[0], gate[1] };
    static char child_stack[256 * 1024] __attribute__((aligned(16)));
    pid_t cmd = clone(command_child, child_stack + sizeof child_stack, CLONE_VM | SIGCHLD, &c);
    if (cmd < 0) die("cannot fork the command");
    close(gate[0]);
    close(execd[1]);
    mnt_detach_old_root();
    /* A child that died before its exec: EPIPE (SIGPIPE is ignored here); its status comes. */
    if (write(gate[1], "g", 1) != 1) {}
    close(gate[1]);
    char b;
    while (read(execd[0], &b, 1) < 0 && errno == EINTR) {}
    close(execd[0]);
    /* The child shares our memory map, and an id switch of its (--user) set the map's dumpable
     * flag to fs.suid_dumpable: ours again, before anything of the command can run. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
    if (slave >= 0) close(slave);
    if (seccomp_sock >= 0) close(seccomp_sock);

    for (;;) {
        struct pollfd fds[3] = { { sfd, POLLIN, 0 }, { u.sock, POLLIN, 0 }, { u.listener, POLLIN, 0 } };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[1].revents || fds[2].revents) serve_uname(&u, fds[1].revents, fds[2].revents);
        if (!(fds[0].revents & POLLIN)) continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof si) != sizeof si) continue;
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) {
            int st;
            pid_t w;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0)
                if (w == cmd) finish(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), status_fd);
        } else {
            kill(cmd, sig);
        }
    }
}
