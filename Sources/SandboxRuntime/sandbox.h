/* Shared declarations of the sandbox helper. */
#ifndef AZL_SANDBOX_H
#define AZL_SANDBOX_H

#include "plan.h"

#include <signal.h>

/* Exit statuses, as podman: ours, not executable, not found. */
#define EXIT_OURS 125
#define EXIT_NOEXEC 126
#define EXIT_NOTFOUND 127

/* One line on stderr, "azl-shell: ...", then _exit(EXIT_OURS). ": strerror(errno)" is
 * appended when errno is non-zero at the call. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void say(const char *fmt, ...);

/* SIGCHLD and the signals forwarded to the command (INT, TERM, HUP, QUIT, WINCH), blocked
 * and put in SET, to be read from a signalfd (supervisor and pid 1 alike). */
void block_forwarded_signals(sigset_t *set);

/* supervisor.c: the program's arguments (argc, argv as main got them), so pid 1 can put its
 * own name there. */
void remember_args(int argc, char **argv);
/* supervisor.c: NAME as this process's comm and command line (`ps`), in place of its arguments. */
void name_process(const char *name);

/* util.c: the host terminal's settings, saved (the first of fds 0-2 that is one, while ours
 * is the foreground job), or saved as stdin is made raw for the pty relay; put back by
 * tty_restore (die() does it too). */
void tty_save(void);
void tty_make_raw(int fd);
void tty_restore(void);
/* util.c: all of BUF to FD (waiting on a full non-blocking one); -1 on error. */
int write_all(int fd, const char *buf, size_t len);

/* fdpass.c: one fd over a unix socket (SCM_RIGHTS, one byte of data); azl_recv_fd returns it
 * close-on-exec, or -1 (ECONNRESET at EOF: the sender died first). */
int azl_send_fd(int sock, int fd);
int azl_recv_fd(int sock);
/* fdpass.c: N (at most 8) fds in one message; azl_recv_fds returns how many came, or -1. */
int azl_send_fds(int sock, const int *fds, int n);
int azl_recv_fds(int sock, int *fds, int max);

/* idmap.c: write PID's uid and gid maps as the plan says (the helpers, or one line each);
 * die()s when a helper fails. With NESTED (a run's namespace in the kept one), each range
 * mapped onto itself, written directly. */
void write_id_maps(pid_t pid, const struct plan *p);
void write_map_as(pid_t pid, const struct idmap *m, const char *file, int nested);

/* keeper.c: an fd of the user namespace kept for this plan's maps (joined, or started now),
 * or -1 when there is none to be had: then the run maps its own. */
int keeper_userns(const struct plan *p);
/* keeper.c: the keeper program (azl-shell-sandbox --userns-keeper STATE IDLE, lock on fd 3). */
int keeper_main(const char *state, const char *idle);

/* mounts.c: in the new namespaces, build the root and pivot into it; prepare_root first does
 * what needs no id map, while the supervisor writes them. */
void prepare_root(const struct plan *p);
void setup_root(const struct plan *p);
/* mounts.c: after setup_root, the old root (the host's tree and the staging one), still stacked
 * on the new root's "/" (no path from the new root reaches it, but a recursive clone of "/"
 * would), detached; and chdir("/"). Before anything of the command runs: pid 1 does it while the
 * command's child gets ready, and the child execs only after it (init.c). */
void mnt_detach_old_root(void);
/* A session's working directory as a detached, guarded tree; attached at DST of the current root. */
int mnt_session_tree(const struct plan *p, const char *src);
void mnt_attach_here(int tree, const char *dst);

/* env.c: a session of a named environment (the plan's live record): its live sandbox's
 * namespaces (started now if none runs); this process is made non-dumpable and enters the
 * user and pid (for its children) ones; the others (mount, uts, ipc, net) go into NS for
 * env_enter, in the child; returns how many. die()s when there is no sandbox to be had. */
#define ENV_NS_MAX 6
int env_join(const struct plan *p, int ns[ENV_NS_MAX]);
void env_enter(const struct plan *p, const int *ns, int n);
/* env.c: remove the plan's remove path inside a user namespace of its maps; never returns. */
__attribute__((noreturn)) void env_remove_tree(const struct plan *p);
/* env.c: pid 1 of an environment's live sandbox, once its root is built: reap, and on
 * SIGTERM end everything inside; READY_FD gets a byte when it serves. */
__attribute__((noreturn)) void env_init(const struct plan *p, int ready_fd);

/* supervisor.c, in pid 1: what the supervisor sent after the go (the ignored signals, the
 * host's submounts: handed to init.c and guards.c), read once, where first needed; nothing
 * when it was read already or none comes (the callers then find it out themselves). */
void start_details(void);
/* guards.c: the host's mountpoints below the plan's recursive guarded binds (host paths),
 * read from this process's mountinfo now (or already): their number and the list, or -1 when
 * the plan has no guards or mountinfo cannot be read. The supervisor finds them while pid 1
 * builds its root and sends them; pid 1 takes them with guards_submounts_set (LIST is then its). */
int guards_submounts(const struct plan *p, char ***list);
void guards_submounts_set(char **list, int n);
/* init.c: the signals ignored at the command's start, as the supervisor found them (SigIgn of
 * its /proc/self/status: pid 1 and so the command inherit its dispositions); without it, the
 * command's child reads its own. */
void init_known_ignored(unsigned long long mask);
/* init.c: the umask the command starts with: the user's, which pid 1 replaced by 0 for its own
 * folders and files (set by the supervisor's child, supervisor.c). */
#include <sys/types.h>
extern mode_t command_umask;
/* util.c: the signals this process ignores (SigIgn of /proc/self/status), ~0 when that cannot
 * be read; system calls only, no allocation. */
unsigned long long ignored_signals_now(void);

/* init.c: lo up (a sandbox with a network namespace of its own). */
void bring_up_lo(void);
/* init.c: pid 1 of the sandbox. PTY_SOCK is -1 or a socket to send the pty master on;
 * STATUS_FD gets the command's status (one byte) once nothing else of the sandbox is left. */
__attribute__((noreturn)) void run_init(const struct plan *p, int pty_sock, const void *winsize, int status_fd);
/* init.c: the same for a session joined into an environment's live sandbox: not its pid 1 (no
 * hostname, no lo, and what the command leaves behind stays in the environment). */
__attribute__((noreturn)) void run_session_init(const struct plan *p, int pty_sock, const void *winsize, int status_fd);

#endif
