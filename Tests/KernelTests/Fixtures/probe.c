/*
 * A probe for the kernel policy: calls syscalls by number (so libc cannot hide or emulate
 * them) and prints one line per check, "KEY VALUE", VALUE being "0" for success or the errno
 * name (ENOSYS, EPERM, ...). Compiled by KernelTests (dynamic and -static) and run under
 * apply_and_exec.c with a filter from KernelPolicy. Every call is harmless when allowed.
 *
 *   probe             all checks
 *   probe uname-loop N   time N uname() calls, print "uname.ns_per_call X"
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char *ename(long rc, int e) {
    static char buf[32];
    if (rc >= 0) return "0";
    const char *n = strerrorname_np(e);
    if (n) return n;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

#define SYS(key, ...) do { errno = 0; long r_ = syscall(__VA_ARGS__); int e_ = errno; \
    printf("%s %s\n", key, ename(r_, e_)); if (r_ > 2 && strstr(key, "userfaultfd")) close((int)r_); } while (0)

static void *thread_main(void *arg) { return arg; }

static void print_status(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        const char *keys[] = { "NoNewPrivs:", "Seccomp:", "CapBnd:", "CapEff:", "CapPrm:", "CapAmb:", "CapInh:" };
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            size_t n = strlen(keys[k]);
            if (strncmp(line, keys[k], n) == 0) {
                char *v = line + n;
                while (*v == ' ' || *v == '\t') v++;
                v[strcspn(v, "\n")] = 0;
                printf("status.%.*s %s\n", (int)n - 1, keys[k], v);
            }
        }
    }
    fclose(f);
}

#if defined(__x86_64__)
/* The i386 ABI from a 64-bit process: int $0x80, 32-bit numbers and arguments. */
static long int80(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}
static void i386_checks(void) {
    long r = int80(20, 0, 0, 0);   /* getpid */
    printf("i386.getpid %s\n", r > 0 ? "0" : ename(-1, (int)-r));
    r = int80(288, 0, -3, 0);      /* keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING) */
    printf("i386.keyctl %s\n", r >= 0 ? "0" : ename(-1, (int)-r));
    r = int80(435, 0, 0, 0);       /* clone3(NULL, 0): EINVAL where it exists */
    printf("i386.clone3 %s\n", r >= 0 ? "0" : ename(-1, (int)-r));
    /* uname needs a buffer below 4 GiB */
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low != MAP_FAILED) {
        r = int80(122, (long)(uintptr_t)low, 0, 0);
        printf("i386.uname %s\n", r >= 0 ? "0" : ename(-1, (int)-r));
        if (r >= 0) printf("i386.uname.release %s\n", low + 2 * 65);
    }
    /* x32: the x86_64 entry with bit 30 set (getpid) */
    errno = 0;
    long x = syscall(0x40000000L | 39);
    printf("x32.getpid %s\n", ename(x, errno));
}
#endif

static int uname_loop(long n) {
    struct utsname u;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) uname(&u);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
    printf("uname.release %s\nuname.ns_per_call %.0f\n", u.release, ns);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "uname-loop") == 0) return uname_loop(atol(argv[2]));

    struct utsname u;
    if (uname(&u) == 0) {
        printf("uname.sysname %s\n", u.sysname);
        printf("uname.nodename %s\n", u.nodename);
        printf("uname.release %s\n", u.release);
        printf("uname.version %s\n", u.version);
        printf("uname.machine %s\n", u.machine);
    } else {
        printf("uname %s\n", ename(-1, errno));
    }
    print_status();

    /* Gated by kernel version (numbers shared by all architectures). */
    SYS("clone3", 435, NULL, 0);
    SYS("futex_waitv", 449, NULL, 0, 0, NULL, 0);
    SYS("cachestat", 451, -1, NULL, NULL, 0);
    SYS("fchmodat2", 452, AT_FDCWD, "/nonexistent-azl-probe", 0644, 0);
    SYS("futex_wake", 454, NULL, 0, 0, 0);
    SYS("statmount", 457, NULL, NULL, 0, 0);
    SYS("listmount", 458, NULL, NULL, 0, 0);
    SYS("mseal", 462, 0, 0, 0);
    SYS("setxattrat", 463, -1, "", 0, "user.azl", NULL, 0);
    SYS("open_tree_attr", 467, -1, "", 0, NULL, 0);
    SYS("close_range", SYS_close_range, 1000000, 1000001, 0);
    SYS("openat2", SYS_openat2, AT_FDCWD, NULL, NULL, 0);

    /* The security deny list. */
    SYS("keyctl", SYS_keyctl, 0, -3, 0);
    SYS("add_key", SYS_add_key, "user", "azl-probe", "x", 1, -2);
    SYS("request_key", SYS_request_key, "user", "azl-probe-none", NULL, 0);
    SYS("bpf", SYS_bpf, 0, NULL, 0);
    SYS("perf_event_open", SYS_perf_event_open, NULL, 0, -1, -1, 0);
    SYS("userfaultfd", SYS_userfaultfd, O_CLOEXEC);
    SYS("userfaultfd_user_mode_only", SYS_userfaultfd, O_CLOEXEC | 1);
    SYS("kexec_load", SYS_kexec_load, 0, 0, NULL, 0);
    SYS("kexec_file_load", SYS_kexec_file_load, -1, -1, 0, NULL, 0);
    SYS("init_module", SYS_init_module, NULL, 0, "");
    SYS("finit_module", SYS_finit_module, -1, "", 0);
    SYS("delete_module", SYS_delete_module, "azl_probe_none", 0);
    SYS("open_by_handle_at", SYS_open_by_handle_at, -1, NULL, 0);
    SYS("acct", SYS_acct, NULL);
    SYS("swapon", SYS_swapon, NULL, 0);
    SYS("swapoff", SYS_swapoff, NULL);
    SYS("reboot", SYS_reboot, 0, 0, 0, NULL);
    SYS("settimeofday", SYS_settimeofday, NULL, NULL);
    SYS("clock_settime", SYS_clock_settime, CLOCK_REALTIME, NULL);
#if defined(__x86_64__)
    SYS("iopl", SYS_iopl, 0);
    SYS("ioperm", SYS_ioperm, 0, 0, 0);
#endif
    SYS("ioctl.TIOCSTI", SYS_ioctl, 0, TIOCSTI, "x");
    SYS("ioctl.TIOCSTI_highbits", SYS_ioctl, 0, 0x100000000UL | TIOCSTI, "x");
    SYS("ioctl.TIOCLINUX", SYS_ioctl, 0, TIOCLINUX, "x");
    int pfd[2];
    if (pipe(pfd) == 0) {
        int n = 0;
        SYS("ioctl.FIONREAD", SYS_ioctl, pfd[0], FIONREAD, &n);
        close(pfd[0]); close(pfd[1]);
    }

    /* Things that must keep working. */
    pthread_t t;
    int pe = pthread_create(&t, NULL, thread_main, NULL);
    if (pe == 0) pe = pthread_join(t, NULL);
    printf("pthread %s\n", ename(pe ? -1 : 0, pe));
    pid_t c = fork();
    if (c == 0) {
        /* nested namespaces: a new user + mount namespace, as unprivileged tools (bwrap, unshare -r) make */
        int r = unshare(CLONE_NEWUSER | CLONE_NEWNS);
        printf("unshare.user_mount %s\n", ename(r, errno));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("fork %s\n", c > 0 && WIFEXITED(st) ? "0" : "failed");
#if defined(__x86_64__)
    i386_checks();
#endif
    return 0;
}
