/*
 * For `run --abi-report` (Tests/CLITests/ABIReportTests.swift): calls cachestat three times and
 * fchmodat2 once by number (451 and 452 on x86_64 and aarch64 alike; newer than a 5.15 kernel),
 * add_key (on azl-shell's deny list) and a call every kernel has, and prints each result so a test can see the errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    long r = 0;
    for (int i = 0; i < 3; i++) r = syscall(451, -1, 0, 0, 0);
    printf("cachestat %s\n", r < 0 ? strerrorname_np(errno) : "0");
    r = syscall(452, AT_FDCWD, "/nonexistent", 0, 0);
    printf("fchmodat2 %s\n", r < 0 ? strerrorname_np(errno) : "0");
    r = syscall(SYS_add_key, "user", "azl-probe", "x", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */);
    printf("add_key %s\n", r < 0 ? strerrorname_np(errno) : "0");
    printf("getpid %s\n", syscall(SYS_getpid) > 0 ? "0" : "error");
    return 0;
}
