/*
 * What every part of the runtime uses: one-line messages and dying with status 125, the host
 * terminal put back on the way out, whole writes, the signals pid 1 and the supervisor forward.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* The host terminal whose settings are put back when we leave: stdin that the pty relay made
 * raw, or, without a pty, the terminal the command shares through fd 0-2 (it may leave it raw
 * or without echo). */
static struct termios saved_tty;
static int tty_fd = -1;

/* Not when another job is in the foreground: its settings are its own (and tcsetattr from
 * the background would stop us with SIGTTOU). No job control at all (no controlling tty) is fine. */
static int tty_ours(int fd) {
    pid_t pg = tcgetpgrp(fd);
    return pg < 0 || pg == getpgrp();
}

void tty_save(void) {
    for (int fd = 0; fd < 3 && tty_fd < 0; fd++)
        if (tcgetattr(fd, &saved_tty) == 0 && tty_ours(fd)) tty_fd = fd;
}

void tty_restore(void) {
    struct termios now;
    if (tty_fd >= 0 && tty_ours(tty_fd) && tcgetattr(tty_fd, &now) == 0 &&
        (now.c_iflag != saved_tty.c_iflag || now.c_oflag != saved_tty.c_oflag || now.c_cflag != saved_tty.c_cflag ||
         now.c_lflag != saved_tty.c_lflag || memcmp(now.c_cc, saved_tty.c_cc, sizeof now.c_cc)))
        tcsetattr(tty_fd, TCSADRAIN, &saved_tty);
    tty_fd = -1;
}

void say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    dprintf(2, "azl-shell: %s\n", buf);
}

void die(const char *fmt, ...) {
    int e = errno;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    tty_restore();
    if (e) dprintf(2, "azl-shell: %s: %s\n", buf, strerror(e));
    else dprintf(2, "azl-shell: %s\n", buf);
    _exit(EXIT_OURS);
}

/* Stdin raw for the pty relay, its settings kept to be put back (tty_restore). */
void tty_make_raw(int fd) {
    if (tcgetattr(fd, &saved_tty) < 0) return;
    struct termios raw = saved_tty;
    cfmakeraw(&raw);
    if (tcsetattr(fd, TCSADRAIN, &raw) == 0) tty_fd = fd;
}

int write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { struct pollfd w = { fd, POLLOUT, 0 }; poll(&w, 1, -1); continue; }
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void block_forwarded_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGQUIT);
    sigaddset(set, SIGWINCH);
    sigprocmask(SIG_BLOCK, set, NULL);
}

unsigned long long ignored_signals_now(void) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    if (n <= 0) return ~0ULL;
    buf[n] = '\0';
    const char *f = strstr(buf, "\nSigIgn:\t");
    if (!f) return ~0ULL;
    unsigned long long v = 0;
    int digits = 0;
    for (f += 9; digits < 16; f++, digits++) {
        int d = *f >= '0' && *f <= '9' ? *f - '0' : *f >= 'a' && *f <= 'f' ? *f - 'a' + 10 : -1;
        if (d < 0) break;
        v = v << 4 | (unsigned)d;
    }
    return digits == 16 ? v : ~0ULL;
}
