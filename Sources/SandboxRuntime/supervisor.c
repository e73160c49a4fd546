/*
 * The supervisor: the single-threaded part of azl-shell that carries out a plan.
 *
 * Swift decides everything and writes it as a plan (plan.h). The plan is carried out here,
 * by one of two entry points (azl_sandbox.h): a process with one thread (the lean
 * `azl-shell` front end, which links this library and has started no thread) calls
 * azl_sandbox_run_in_process; azl-shell-cli (Swift with Foundation: multithreaded from its
 * first instant, so it can neither unshare a user namespace nor safely fork and run setup
 * code) writes the plan into a memfd and execve()s azl-shell-sandbox, whose main is
 * azl_sandbox_main. Either way this process keeps azl-shell's pid and is the supervisor,
 * and nothing between fork and exec runs Swift.
 *
 *   supervisor (this pid, host namespaces)
 *     [setns into the kept user namespace, keeper.c]
 *     clone([NEWUSER|]NEWNS|NEWPID|NEWUTS|NEWIPC[|NEWNET]) --> pid 1 (sandbox)
 *     write the id maps, unless kept (newuidmap/newgidmap, or a single line)  waits on a pipe
 *     "go" ---------------------------------------------------->  mounts.c: build root, pivot
 *     forward signals; relay the pty, if any                     init.c: vfork the command, reap
 *     exit with that status  <---------------------------------  the command's status, once the
 *                                                                sandbox is empty; then exit
 *
 * Pid 1 has PR_SET_PDEATHSIG(SIGKILL): if the supervisor is killed, pid 1 dies
 * and the kernel kills everything else in the pid namespace.
 *
 * Pid 1 and the supervisor run our binary, which belongs to the user and so to root inside
 * the sandbox: both make themselves non-dumpable (after the id maps), so /proc/1/exe, fd/,
 * mem and root are refused to the command (runc CVE-2019-5736). Pid 1's memory belongs to
 * the initial user namespace (it was never exec'd inside), so not even CAP_SYS_PTRACE inside
 * (--cap-add all) gets past that; the supervisor is outside the pid namespace altogether.
 */
#include "sandbox.h"
#include "azl_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#ifdef __GLIBC__
#include <sys/single_threaded.h>
#endif
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

__attribute__((noreturn)) static void carry_out(char *buf, size_t len);
__attribute__((noreturn)) static void carry_out_parsed(void);

static char *read_plan(int fd, size_t *len) {
    struct stat st;
    if (fstat(fd, &st) < 0) die("cannot read the plan");
    if (st.st_size <= 0 || (unsigned long long)st.st_size > PLAN_MAX_BYTES) { errno = 0; die("bad plan size"); }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) die("out of memory");
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("cannot read the plan");
        off += (size_t)n;
    }
    buf[off] = '\0';
    *len = off;
    return buf;
}

/* ---- supervision ---------------------------------------------------------- */

static int status_of(int st) {
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Exit with STATUS, after what the command wrote last, still in the pty, is out. Nothing of
 * the sandbox is left by now, so every slave is closed and the master ends with EIO once the
 * tty layer has passed everything on (it does so asynchronously: EAGAIN is not the end). The
 * wait for more is bounded all the same: a slave fd sent out of the sandbox stays open. */
__attribute__((noreturn)) static void leave(int status, int master, int out_open) {
    if (out_open) {
        char buf[16384];
        struct pollfd r = { master, POLLIN, 0 };
        while (poll(&r, 1, 200) > 0) {
            ssize_t n = read(master, buf, sizeof buf);
            if (n > 0) write_all(1, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN)) break;
        }
    }
    tty_restore();
    _exit(status);
}

/* Wait for pid 1, forwarding signals and (with a pty) relaying the terminal. DONE carries the
 * command's status from pid 1 once the sandbox is empty (init.c: finish); EOF on it without a
 * status means pid 1 itself failed, and its exit status tells. */
__attribute__((noreturn)) static void supervise(pid_t child, int sfd, int master, int done) {
    int in_open = master >= 0, out_open = master >= 0;
    char buf[16384];
    for (;;) {
        struct pollfd fds[4] = { { sfd, POLLIN, 0 }, { in_open ? 0 : -1, POLLIN, 0 }, { out_open ? master : -1, POLLIN, 0 },
                                 { done, POLLIN, 0 } };
        if (poll(fds, 4, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[3].revents) {
            unsigned char b;
            ssize_t n = read(done, &b, 1);
            if (n == 1) leave(b, master, out_open);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) done = -1;
        }
        if (fds[2].revents) {
            ssize_t n = read(master, buf, sizeof buf);
            if (n > 0) write_all(1, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN)) out_open = 0;   /* EIO: every slave closed */
        }
        if (fds[1].revents) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n > 0) write_all(master, buf, (size_t)n);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN)) in_open = 0;
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != sizeof si) continue;
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) {
                int st;
                pid_t w = waitpid(child, &st, WNOHANG);
                if (w != child) continue;
                leave(status_of(st), master, out_open);
            } else if (sig == SIGWINCH && master >= 0) {
                struct winsize ws;
                if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);   /* the pty signals its group */
            } else {
                kill(child, sig);
            }
        }
    }
}

/* This process's argument strings (contiguous, argv[0] first), for pid 1 to write its own
 * name over: a copy of ours would show the user's command line and our install path. */
static char *args_start, *args_end;

void remember_args(int argc, char **argv) {
    if (argc < 1 || !argv || !argv[0]) return;
    args_start = argv[0];
    args_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
}

/* Field FIELD (1-based, as proc(5) counts) of /proc/self/stat, read into BUF; NULL if none. */
static const char *self_stat_field(char *buf, size_t size, int field) {
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* the command name may hold spaces and parentheses */
    for (int f = 2; p && f < field; f++) p = strchr(p + 1, ' ');
    return p ? p + 1 : NULL;
}

/* Where the arguments are when nobody told us (azl-shell-cli carrying a plan out itself):
 * /proc/self/stat fields 48 and 49, arg_start and arg_end. */
static void find_args(void) {
    char b[1024];
    const char *f = self_stat_field(b, sizeof b, 48);
    unsigned long start, end;
    if (f && sscanf(f, "%lu %lu", &start, &end) == 2 && start && end > start) {
        args_start = (char *)start;
        args_end = (char *)end;
    }
}

void name_process(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
    if (!args_start) find_args();
    if (!args_start || args_end - args_start < (long)strlen(name) + 1) return;
    memset(args_start, 0, (size_t)(args_end - args_start));
    memcpy(args_start, name, strlen(name) + 1);
}

int azl_sandbox_main(int argc, char **argv) {
    remember_args(argc, argv);
    if (argc == 4 && strcmp(argv[1], "--userns-keeper") == 0) return keeper_main(argv[2], argv[3]);
    char *end = NULL;
    long pfd = argc == 3 && strcmp(argv[1], "--plan-fd") == 0 ? strtol(argv[2], &end, 10) : -1;
    if (pfd < 0 || pfd > 1 << 20 || !end || *end) {
        dprintf(2, "azl-shell-sandbox: an internal helper of azl-shell, not meant to be run by hand\n");
        return EXIT_OURS;
    }
    size_t len;
    char *buf = read_plan((int)pfd, &len);
    close((int)pfd);
    carry_out(buf, len);
}

/* The threads of this process, from /proc/self/stat (field 20), or -1. */
static int thread_count(void) {
    char b[1024];
    const char *f = self_stat_field(b, sizeof b, 20);
    return f ? atoi(f) : -1;
}

static struct plan p;

/* ---- the start message ------------------------------------------------------ */

/* Pid 1's go (one byte, once the id maps are written), then what the supervisor finds out for
 * it: the signals the command must have reset, and the host's mountpoints below the plan's
 * guarded binds (guards.c). Pid 1 takes these details only where it needs them (the first
 * guarded bind, the command's start), so the ~0.1 ms of reading mountinfo and status here
 * overlaps the building of its root. The signals are the same in either process: pid 1 was
 * cloned with the supervisor's dispositions. The mounts are the same only if the host's table
 * did not change between the clone and pid 1 making its copy private: the host's mountinfo,
 * opened before the clone (host_mounts), reports any change since (POLLPRI): seen by the
 * supervisor after its read, nsub is -1; seen by pid 1 after going private, it ignores the list.
 * Either way pid 1 then reads its own. */
struct details { unsigned long long ignored; int nsub; unsigned bytes; };

static int host_mounts = -1;      /* the host's /proc/self/mountinfo, opened before the clone */
static int host_mounts_changed;   /* pid 1: a mount event since then, seen after going private */

static int mounts_changed(int fd) {
    struct pollfd f = { fd, POLLPRI, 0 };
    return fd < 0 || (poll(&f, 1, 0) > 0 && (f.revents & (POLLPRI | POLLERR)));
}

static void send_details(int fd) {
    struct details d = { ignored_signals_now(), -1, 0 };
    char **list, *buf = NULL;
    /* No list without the mountinfo opened before the clone: nothing could tell it current. */
    int n = host_mounts >= 0 ? guards_submounts(&p, &list) : -1;
    if (mounts_changed(host_mounts)) n = -1;
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(list[i]) + 1;
    if (n >= 0 && len <= 1 << 16 && (buf = malloc(len + 1))) {
        size_t o = 0;
        for (int i = 0; i < n; i++) o += (size_t)sprintf(buf + o, "%s", list[i]) + 1;
        d.nsub = n;
        d.bytes = (unsigned)len;
    }
    /* A pid 1 that died meanwhile: EPIPE (SIGPIPE is ignored), and supervise() says why. */
    if (write_all(fd, (const char *)&d, sizeof d) == 0 && d.bytes) write_all(fd, buf, d.bytes);
    free(buf);
}

static int details_fd = -1;

static int read_full(int fd, void *buf, size_t len) {
    for (size_t got = 0; got < len;) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

void start_details(void) {
    int fd = details_fd;
    if (fd < 0) return;
    details_fd = -1;
    struct details d;
    if (read_full(fd, &d, sizeof d) < 0) _exit(EXIT_OURS);   /* the supervisor died */
    init_known_ignored(d.ignored);
    if (d.nsub < 0 || host_mounts_changed) { close(fd); return; }
    char *buf = malloc((size_t)d.bytes + 1), **list = calloc((size_t)d.nsub + 1, sizeof *list);
    if (!buf || !list) die("out of memory");
    if (read_full(fd, buf, d.bytes) < 0) _exit(EXIT_OURS);
    close(fd);
    buf[d.bytes] = '\0';
    char *q = buf;
    for (int i = 0; i < d.nsub; i++, q += strlen(q) + 1)
        if (q >= buf + d.bytes || !(list[i] = strdup(q))) errno = 0, die("bad start message");
    free(buf);
    guards_submounts_set(list, d.nsub);
}

int azl_sandbox_run_in_process(const void *plan, size_t len) {
    /* Only a process with one thread may fork and go on: another thread could hold a lock
     * (malloc's) that the child would then wait on forever. */
    if (!__libc_single_threaded && thread_count() != 1) return -1;   /* glibc's flag: no /proc read when it knows */
    if (len == 0 || len > PLAN_MAX_BYTES) return -1;
    char *buf = malloc(len + 1);
    if (!buf) return -1;
    memcpy(buf, plan, len);
    buf[len] = '\0';
    /* A plan this build cannot read (damaged, or written by another version) is refused
     * before anything is done: the caller then computes a fresh one. */
    char err[512];
    if (plan_parse(buf, len, &p, err, sizeof err) < 0) { free(buf); return -1; }
    fflush(stdout);
    fflush(stderr);
    carry_out_parsed();
}

__attribute__((noreturn)) static void carry_out(char *buf, size_t len) {
    char err[512];
    if (plan_parse(buf, len, &p, err, sizeof err) < 0) { errno = 0; die("%s", err); }
    carry_out_parsed();
}

__attribute__((noreturn)) static void carry_out_parsed(void) {
    /* An ignored SIGCHLD (inherited through exec from whoever started us) makes the kernel reap
     * our children itself: no status for the id-map helpers, none of the command for pid 1. */
    signal(SIGCHLD, SIG_DFL);
    /* The ABI report is a file of the user's on the host: opened here, written by pid 1. */
    if (p.abi_report && (p.abi_fd = open(p.abi_report, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0)
        die("cannot write the ABI report %s", p.abi_report);
    if (p.remove_path) env_remove_tree(&p);
    /* A session of a named environment joins its live sandbox (env.c): no namespace of its own. */
    int envns[ENV_NS_MAX], nenv = p.env_dir ? env_join(&p, envns) : 0;
    /* A kept user namespace with this plan's maps (keeper.c): joined, no id maps to write. */
    int joined = 0, userns = p.env_dir ? -1 : keeper_userns(&p);
    if (userns >= 0) {
        joined = setns(userns, CLONE_NEWUSER) == 0;
        close(userns);
        if (joined && (p.flags & PF_VERBOSE)) say("in the user namespace kept for this id map (%s)", p.keeper_state);
    }

    /* Signals to forward are read from a signalfd; blocked here, so pid 1 inherits them
     * blocked too and reads them with sigwaitinfo. */
    sigset_t set;
    block_forwarded_signals(&set);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");
    signal(SIGPIPE, SIG_IGN);   /* a closed stdout must not kill the relay; the command resets it */

    int want_pty = (p.flags & PF_PTY) && isatty(0) && isatty(1);
    struct winsize ws;
    int have_ws = want_pty && ioctl(0, TIOCGWINSZ, &ws) == 0;
    int go[2], done[2], sp[2] = { -1, -1 };
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0) die("pipe");
    if (want_pty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) die("socketpair");

    unsigned long flags = SIGCHLD;
    /* Joined or not, the run gets a user namespace of its own: a kept one only parents it, so
     * what one run sets there (its /proc/sys/user limits, a binfmt_misc of its own) stays its. */
    unsigned nsb = p.env_dir ? 0 : p.ns;   /* a session creates none */
    if (nsb & NS_USER) flags |= CLONE_NEWUSER;
    if (nsb & NS_MOUNT) flags |= CLONE_NEWNS;
    if (nsb & NS_PID) flags |= CLONE_NEWPID;
    if (nsb & NS_UTS) flags |= CLONE_NEWUTS;
    if (nsb & NS_IPC) flags |= CLONE_NEWIPC;
    if (nsb & NS_NET) flags |= CLONE_NEWNET;

    if (p.nguards && !p.env_dir) host_mounts = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    /* Raw clone, fork-like (as bubblewrap's raw_clone): the child is pid 1 of the new pid namespace. */
    pid_t child = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
    if (child < 0) {
        if (p.env_dir && errno == ENOMEM) errno = 0, die("environment %s: its live sandbox ended while this session joined it; run again", strrchr(p.env_dir, '/') + 1);
        if (errno == EPERM || errno == ENOSPC || errno == EUSERS) {
            const char *why = strerror(errno);
            errno = 0;   /* the reason goes before the hint: the line ends with what to run */
            die("cannot create the sandbox's namespaces: %s (are unprivileged user namespaces allowed? run `azl-shell doctor`)", why);
        }
        die("cannot create the sandbox's namespaces");
    }
    if (child == 0) {
        close(go[1]);
        close(done[0]);
        if (sp[0] >= 0) close(sp[0]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl");
        name_process("azl-shell-init");
        /* Our folders and files get exactly the modes the plan gives them, in one call each;
         * the command gets the user's umask back (init.c). */
        command_umask = umask(0);
        prepare_root(&p);   /* while the id maps are written */
        if (host_mounts >= 0) {
            host_mounts_changed = mounts_changed(host_mounts);
            close(host_mounts);
        }
        /* Wait for the id maps; EOF means the supervisor died or gave up. */
        char c;
        if (read(go[0], &c, 1) != 1) _exit(EXIT_OURS);
        details_fd = go[0];   /* start_details() reads the rest where it is needed */
        /* Only now: a non-dumpable process's /proc files belong to root, which would have
         * kept the supervisor from writing our id maps. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
        if (p.env_dir) {
            env_enter(&p, envns, nenv);
            run_session_init(&p, sp[1], have_ws ? &ws : NULL, done[1]);
        }
        setup_root(&p);
        run_init(&p, sp[1], have_ws ? &ws : NULL, done[1]);
    }
    close(go[0]);
    close(done[1]);
    if (sp[1] >= 0) close(sp[1]);
    for (int i = 0; i < nenv; i++) close(envns[i]);
    /* A session is in the environment's user namespace already: its maps are written. */
    if (!joined && !p.env_dir) write_id_maps(child, &p);
    else if (joined) {
        /* In the kept namespace we hold CAP_SETUID/SETGID: the same ranges, written directly. */
        write_map_as(child, &p.uidmap, "uid_map", 1);
        write_map_as(child, &p.gidmap, "gid_map", 1);
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("prctl(PR_SET_DUMPABLE)");
    if (!want_pty) tty_save();   /* before the command can change it; pty mode saves when it goes raw */
    if (write(go[1], "g", 1) != 1) die("cannot start the sandbox");
    send_details(go[1]);
    if (host_mounts >= 0) close(host_mounts);
    close(go[1]);

    int master = -1;
    if (want_pty) {
        master = azl_recv_fd(sp[0]);   /* -1 if pid 1 failed before making the pty */
        close(sp[0]);
        if (master >= 0) tty_make_raw(0);
    }
    supervise(child, sfd, master, done[0]);
}
