/*
 * A probe for the i386 ABI of the kernel policy, from a 64-bit process: every call goes
 * through `int $0x80` with i386 numbers and 32-bit arguments. Built by KernelRunTests as a
 * static non-PIE x86_64 binary, so its static buffers and string literals sit below 4 GiB
 * where 32-bit pointers reach them. Prints "KEY VALUE" lines: VALUE is "0" for success or the
 * errno name, the uname keys print the strings. Every call is harmless when allowed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

static long int80(long nr, long a, long b, long c, long d, long e) {
    long ret;
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                      : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

static const char *name(long r) {
    static char buf[32];
    if (r >= 0 || r < -4095) return "0";
    const char *n = strerrorname_np((int)-r);
    if (n) return n;
    snprintf(buf, sizeof buf, "E%ld", -r);
    return buf;
}

#define CALL(key, ...) printf("%s %s\n", key, name(int80(__VA_ARGS__)))
#define C(key, nr) CALL(key, nr, 0, 0, 0, 0, 0)

static char uts[6 * 65], old[5 * 65], oldold[5 * 9];
static char buf[64];
static int fds[2];
static long ts[2];

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    long pid = int80(20, 0, 0, 0, 0, 0);                      /* getpid */
    printf("getpid %s\n", pid > 0 ? "0" : name(pid));
    if (pid <= 0) return 0;                                   /* no IA32 emulation: nothing else to see */

    /* The uname family: new_utsname (122), old_utsname (109), oldold_utsname (59). */
    long r = int80(122, (long)uts, 0, 0, 0, 0);
    printf("uname %s\nuname.release %s\nuname.version %s\nuname.nodename %s\n", name(r), uts + 2 * 65, uts + 3 * 65, uts + 65);
    r = int80(109, (long)old, 0, 0, 0, 0);
    printf("olduname %s\nolduname.release %s\nolduname.version %s\n", name(r), old + 2 * 65, old + 3 * 65);
    r = int80(59, (long)oldold, 0, 0, 0, 0);
    printf("oldolduname %s\noldolduname.sysname %.9s\noldolduname.release %.9s\n", name(r), oldold, oldold + 2 * 9);

    /* Gated by version (i386 numbers). */
    CALL("clock_gettime", 265, 1, (long)ts, 0, 0, 0);         /* CLOCK_MONOTONIC, old time32 */
    CALL("clock_gettime64", 403, 1, (long)ts, 0, 0, 0);       /* 5.1 */
    CALL("semget", 393, 0, -1, 0, 0, 0);                      /* 5.1: EINVAL where it exists */
    CALL("clone3", 435, 0, 0, 0, 0, 0);                       /* 5.3: EINVAL */
    CALL("close_range", 436, 1000000, 1000001, 0, 0, 0);      /* 5.9 */
    CALL("futex_waitv", 449, 0, 0, 0, 0, 0);                  /* 5.16 */
    CALL("cachestat", 451, -1, 0, 0, 0, 0);                   /* 6.5 */
    CALL("statmount", 457, 0, 0, 0, 0, 0);                    /* 6.8 */
    CALL("mseal", 462, 0, 0, 0, 0, 0);                        /* 6.10 */
    CALL("file_setattr", 469, -1, 0, 0, 0, 0);                /* 6.17 */

    /* The deny list. Bad pointers where the kernel would itself refuse with EPERM, so that
     * EPERM can only come from the filter (the kernel says EFAULT). */
    CALL("keyctl", 288, 0, -3, 0, 0, 0);
    CALL("add_key", 286, (long)"user", (long)"azl-probe", (long)"x", 1, -2);
    CALL("request_key", 287, (long)"user", (long)"azl-probe-none", 0, 0, 0);
    CALL("stime", 25, 1, 0, 0, 0, 0);
    CALL("clock_settime", 264, 0, 1, 0, 0, 0);
    CALL("clock_settime64", 404, 0, 1, 0, 0, 0);
    CALL("settimeofday", 79, 1, 0, 0, 0, 0);
    C("vm86old", 113);
    CALL("vm86", 166, 0, 0, 0, 0, 0);
    C("iopl", 110);
    CALL("ioperm", 101, 0, 0, 0, 0, 0);
    CALL("bpf", 357, 0, 0, 0, 0, 0);
    CALL("perf_event_open", 336, 0, 0, -1, -1, 0);
    CALL("userfaultfd", 374, 02000000, 0, 0, 0, 0);
    CALL("kexec_load", 283, 0, 0, 0, 0, 0);
    CALL("init_module", 128, 0, 0, (long)"", 0, 0);
    CALL("finit_module", 350, -1, (long)"", 0, 0, 0);
    CALL("delete_module", 129, (long)"azl_probe_none", 0, 0, 0, 0);
    CALL("open_by_handle_at", 342, -1, 0, 0, 0, 0);
    CALL("acct", 51, 0, 0, 0, 0, 0);
    CALL("swapon", 87, 0, 0, 0, 0, 0);
    CALL("swapoff", 115, 0, 0, 0, 0, 0);
    CALL("reboot", 88, 0, 0, 0, 0, 0);
    CALL("ioctl.TIOCSTI", 54, 0, 0x5412, (long)buf, 0, 0);
    CALL("ioctl.TIOCLINUX", 54, 0, 0x541C, (long)buf, 0, 0);

    /* What must keep working. */
    if (int80(42, (long)fds, 0, 0, 0, 0) == 0) {              /* pipe */
        CALL("ioctl.FIONREAD", 54, fds[0], 0x541B, (long)buf, 0, 0);
        int80(6, fds[0], 0, 0, 0, 0);
        int80(6, fds[1], 0, 0, 0, 0);
    }
    r = int80(374, 02000000 | 1, 0, 0, 0, 0);                 /* UFFD_USER_MODE_ONLY */
    printf("userfaultfd_user_mode_only %s\n", name(r));
    if (r > 2) int80(6, r, 0, 0, 0, 0);
    return 0;
}
