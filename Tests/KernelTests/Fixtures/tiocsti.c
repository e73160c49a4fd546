/*
 * Try to push "echo INJECTED\n" into a terminal's input queue with TIOCSTI, as an attacker
 * inside the sandbox would (CVE-2017-5226). Used by Tests/CLITests/KernelRunTests.swift.
 * Prints one line per target: "fd0 0" (all pushed), "fd0 EPERM" (refused), ...;
 * "tty-open ENXIO" when there is no controlling terminal to open.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void push(const char *name, int fd) {
    const char *s = "echo INJECTED\n";
    for (const char *c = s; *c; c++) {
        if (ioctl(fd, TIOCSTI, c) < 0) {
            printf("%s %s\n", name, strerrorname_np(errno));
            return;
        }
    }
    printf("%s 0\n", name);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    push("fd0", 0);
    push("fd1", 1);
    push("fd2", 2);
    int t = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (t < 0) printf("tty-open %s\n", strerrorname_np(errno));
    else push("tty", t);
    return 0;
}
