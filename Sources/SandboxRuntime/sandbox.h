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

/* mounts.c: in the new namespaces, build the root and pivot into it. */
void setup_root(const struct plan *p);

/* init.c: pid 1 of the sandbox. PTY_SOCK is -1 or a socket to send the pty master on. */
__attribute__((noreturn)) void run_init(const struct plan *p, int pty_sock, const void *winsize);

#endif
