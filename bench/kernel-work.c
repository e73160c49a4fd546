/*
 * Syscall-heavy workloads for bench/kernel-bench.sh. Static, so the same binary runs on the
 * host and inside any image; each workload times itself (CLOCK_MONOTONIC, a vDSO call) so
 * the sandbox's start-up is not part of the figure.
 *
 *   kernel-work walk DIR [ROUNDS]   walk DIR like `find -xdev -printf '%s %m %u'` + cat of small files:
 *                                   getdents64, newfstatat per entry, openat/read/close per file < 64 KiB;
 *                                   like find -xdev, directories of other filesystems are not entered
 *   kernel-work spawn N             N x (fork, exec of itself with "noop", wait)
 *   kernel-work getpid N            N x getpid (the cheapest syscall through the filter)
 *   kernel-work uname N             N x uname (answered by the sandbox's pid 1 under a profile)
 *
 * Prints "RESULT WORKLOAD WALL_NS CPU_NS COUNT": elapsed time, and the CPU time (user + system,
 * of this process and the children it waited for), which other load on the machine disturbs less.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long long cpu(void) {
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) * 1000000000LL +
           (a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec) * 1000LL;
}

static long count;
static char buf[65536];
static dev_t top;   /* the walked directory's filesystem: -xdev */

static void walk(int dfd) {
    DIR *d = fdopendir(dfd);
    if (!d) { close(dfd); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) continue;
        count++;
        if (S_ISDIR(st.st_mode) && st.st_dev == top) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) walk(sub);
        } else if (S_ISREG(st.st_mode) && st.st_size < (off_t)sizeof buf) {
            int f = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (f >= 0) {
                while (read(f, buf, sizeof buf) > 0) {}
                close(f);
            }
        }
    }
    closedir(d);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "noop")) return 0;
    if (argc < 3) {
        fprintf(stderr, "usage: kernel-work walk DIR [ROUNDS] | spawn N | getpid N | uname N\n");
        return 2;
    }
    long long t0 = now(), c0 = cpu();
    const char *w = argv[1];
    if (!strcmp(w, "walk")) {
        int rounds = argc > 3 ? atoi(argv[3]) : 1;
        for (int r = 0; r < rounds; r++) {
            int fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) < 0) { perror(argv[2]); return 1; }
            top = st.st_dev;
            walk(fd);
        }
    } else if (!strcmp(w, "spawn")) {
        long n = atol(argv[2]);
        char *const av[] = { argv[0], "noop", NULL };
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { execv("/proc/self/exe", av); _exit(127); }
            int st;
            if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "spawn failed\n"); return 1; }
            count++;
        }
    } else if (!strcmp(w, "getpid")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) count += syscall(SYS_getpid) > 0;
    } else if (!strcmp(w, "uname")) {
        long n = atol(argv[2]);
        struct utsname u;
        for (long i = 0; i < n; i++) count += uname(&u) == 0;
    } else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    long long t1 = now();
    printf("RESULT %s %lld %lld %ld\n", w, t1 - t0, cpu() - c0, count);
    return 0;
}
