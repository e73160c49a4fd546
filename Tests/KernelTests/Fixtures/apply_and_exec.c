/*
 * A stand-in for the sandbox, for KernelTests and bench/kernel-bench.sh: applies a policy
 * computed by KernelPolicy (BPF bytes in a file, capability bounding mask, uname strings) to
 * a child with the functions of Sources/SandboxRuntime/seccomp_notify.c, execs PROG in it,
 * and serves uname notifications in the parent, as the sandbox's supervisor will.
 *
 *   apply_and_exec [--userns] [--caps HEXMASK] [--release R --version V] BPF|none PROG [ARGS...]
 *
 * --userns: the child first enters a new user namespace as root (one-line map), so the
 *           capability calls have something to drop, as inside the sandbox.
 * --release/--version: the filter notifies uname; the parent answers with these.
 * Exit status: the child's (128+N for signal N); 125 for our own failures.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "seccomp_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "apply_and_exec: %s: %s\n", what, strerror(errno));
    _exit(125);
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die(path);
    close(fd);
}

int main(int argc, char **argv) {
    int userns = 0;
    const char *caps = NULL, *release = NULL, *version = NULL;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--userns") == 0) userns = 1;
        else if (strcmp(argv[i], "--caps") == 0 && i + 1 < argc) caps = argv[++i];
        else if (strcmp(argv[i], "--release") == 0 && i + 1 < argc) release = argv[++i];
        else if (strcmp(argv[i], "--version") == 0 && i + 1 < argc) version = argv[++i];
        else { fprintf(stderr, "apply_and_exec: bad option %s\n", argv[i]); return 125; }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: apply_and_exec [--userns] [--caps HEX] [--release R --version V] BPF|none PROG [ARGS...]\n");
        return 125;
    }
    const char *bpf_path = argv[i];
    char **prog = argv + i + 1;

    static uint8_t bpf[4096 * 8];
    ssize_t bpf_len = 0;
    if (strcmp(bpf_path, "none") != 0) {
        int fd = open(bpf_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die(bpf_path);
        bpf_len = read(fd, bpf, sizeof bpf);
        if (bpf_len <= 0) die("read bpf");
        close(fd);
    }
    int notify = release != NULL && bpf_len > 0;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
    uid_t uid = getuid();
    gid_t gid = getgid();
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        close(sv[0]);
        if (userns) {
            if (unshare(CLONE_NEWUSER) < 0) die("unshare(CLONE_NEWUSER)");
            char map[64];
            write_file("/proc/self/setgroups", "deny");
            snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
            write_file("/proc/self/uid_map", map);
            snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
            write_file("/proc/self/gid_map", map);
        }
        if (caps) {
            uint64_t m = strtoull(caps, NULL, 16);
            struct azl_seccomp_caps c = { .bounding = m, .effective = m, .permitted = m };
            if (azl_seccomp_drop_bounding(m) < 0 || azl_seccomp_set_caps(&c) < 0) die("azl_seccomp caps");
        }
        if (bpf_len > 0) {
            int l = azl_seccomp_install(bpf, (size_t)bpf_len, notify, 1);
            if (l < 0) die("azl_seccomp_install");
            if (notify) {
                if (azl_send_fd(sv[1], l) < 0) die("azl_send_fd");
                close(l);
            }
        }
        close(sv[1]);
        execv(prog[0], prog);
        die(prog[0]);
    }
    close(sv[1]);
    int listener = -1;
    if (notify) {
        listener = azl_recv_fd(sv[0]);   /* -1: the child failed before (it says why) */
    }
    close(sv[0]);
    struct azl_seccomp_uname answer = { .release = release, .version = version };
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (listener >= 0 && pidfd >= 0) {
        for (;;) {
            struct pollfd p[2] = { { listener, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
            if (poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                die("poll");
            }
            if (p[0].revents & POLLIN) {
                if (azl_seccomp_handle_one_hooked(listener, -1, &answer, NULL, NULL) < 0) die("azl_seccomp_handle_one_hooked");
                continue;
            }
            if (p[1].revents & POLLIN) break;            /* the child exited */
            if (p[0].revents & POLLHUP) p[0].fd = -1;    /* no filtered task left (not expected first) */
        }
    }
    int st;
    while (waitpid(child, &st, 0) < 0)
        if (errno != EINTR) die("waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
