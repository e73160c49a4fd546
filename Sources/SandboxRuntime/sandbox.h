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

/* init.c: pid 1 of the sandbox. PTY_SOCK is -1 or a socket to send the pty master on;
 * STATUS_FD gets the command's status (one byte) once nothing else of the sandbox is left. */
__attribute__((noreturn)) void run_init(const struct plan *p, int pty_sock, const void *winsize, int status_fd);

#endif
