/*
 * Applying the kernel policy computed in Swift (Sources/Kernel/KernelPolicy.swift):
 * capability sets, no_new_privs + the seccomp program, and the serving side of the
 * seccomp user notification that answers uname(2) with the target kernel's strings.
 *
 * No libseccomp and no libcap here: the program arrives as ready BPF bytes, and the
 * capability calls are raw prctl/capset. Everything is prefixed azl_seccomp_. All functions
 * are async-signal-safe in practice (no malloc, no stdio) so they may run between fork and
 * exec. Errors: -1 with errno set, nothing printed.
 *
 * Order in the command's child, just before exec (init.c: after setsid, the pty and chdir;
 * before close_range):
 *
 *     azl_seccomp_drop_bounding(caps.bounding);           // needs CAP_SETPCAP: while still root inside
 *     ...switch to the command's uid and gid...            // needs CAP_SETUID/SETGID, so after step 1
 *     azl_seccomp_set_caps(&caps);                         // the other sets (empty for a non-root uid)
 *     int l = azl_seccomp_install(bpf, len, notify, nnp);  // no_new_privs if the plan says, the filter
 *     if (notify) { azl_send_fd(sock, l); close(l); }
 *     exec(...)
 *
 * and on the serving side (the sandbox's pid 1, see init.c for why not the supervisor):
 *
 *     int l = azl_recv_fd(sock);
 *     poll({l, POLLIN}, ...) -> azl_seccomp_handle_one_hooked(l, procfd, &answer, hook, ctx)
 *                               (POLLHUP: no task left)
 */
#ifndef AZL_SECCOMP_NOTIFY_H
#define AZL_SECCOMP_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/* Capability sets as 64-bit masks (bit N = capability N), as KernelPolicy.capabilities. */
struct azl_seccomp_caps {
    uint64_t bounding, effective, permitted, inheritable, ambient;
};

/* What uname(2) answers. release and version replace the kernel's, machine too when given (a
 * foreign-arch image under qemu: its uname says the target's); sysname is always the serving
 * process's own (same kernel); nodename and domainname are the serving
 * process's own unless given (a server outside the sandbox's UTS namespace must pass the
 * sandbox's hostname; the sandbox's pid 1 passes NULL and so follows sethostname). */
struct azl_seccomp_uname {
    const char *release;
    const char *version;
    const char *nodename;    /* NULL: uname() of the server */
    const char *domainname;  /* NULL: uname() of the server */
    const char *machine;     /* NULL: uname() of the server */
};

/* With NNP, set no_new_privs (without it, loading needs CAP_SYS_ADMIN in the caller's user
 * namespace); then load the classic-BPF program BPF (LEN bytes, a multiple of 8, at most
 * 4096 instructions). With WANT_LISTENER, ask for a notification fd (SECCOMP_FILTER_FLAG_NEW_LISTENER,
 * plus WAIT_KILLABLE_RECV where the kernel has it, so signals such as Go's preemption SIGURG do
 * not restart a uname that is being answered). Returns the listener fd (close-on-exec), or 0
 * without WANT_LISTENER; -1 with errno on failure. */
int azl_seccomp_install(const uint8_t *bpf, size_t len, int want_listener, int nnp);

/* Passing the listener to its server: azl_send_fd / azl_recv_fd (fdpass.c, sandbox.h). */
int azl_send_fd(int sock, int fd);
int azl_recv_fd(int sock);

/* Answer one pending notification on LISTENER: uname gets ANSWER written into the caller's
 * memory (through /proc/PID/mem, checked with SECCOMP_IOCTL_NOTIF_ID_VALID before writing, so a
 * dead and reused pid is never written to); HOOK (NULL: none) decides every other notified call:
 * it gets CTX, the call's AUDIT_ARCH_*, number and caller's pid (in the listener's pid namespace)
 * and returns the errno to answer (0: ENOSYS; --abi-report, init.c). The caller's mem file is
 * opened beneath PROCFD (an fd of the server's procfs opened beforehand; -1: the path /proc),
 * never crossing a mount or following a link there: the sandbox's pid 1 passes the procfs of its
 * pid namespace, held since before the command started, so not even a command that may mount
 * (--cap-add sys_admin) can redirect the write. Call it when poll() reports POLLIN. Returns 1
 * when a notification was answered, 0 when there was none or its caller went away meanwhile
 * (interrupted by a signal, killed: harmless), -1 with errno when the listener itself failed. */
typedef int (*azl_seccomp_hook)(void *ctx, uint32_t arch, int nr, uint32_t pid);
int azl_seccomp_handle_one_hooked(int listener, int procfd, const struct azl_seccomp_uname *answer,
                                  azl_seccomp_hook hook, void *ctx);

/* Drop from the bounding set every capability not in KEEP (up to the kernel's last cap; needs
 * CAP_SETPCAP). The sandbox calls it before switching to a non-root uid (which needs
 * CAP_SETUID/SETGID in the effective set), then azl_seccomp_set_caps after. 0 or -1 with errno. */
int azl_seccomp_drop_bounding(uint64_t keep);
/* Set permitted/effective/inheritable to CAPS (never raising: masked with what the process
 * has), then clear ambient and raise caps->ambient. 0 or -1 with errno. */
int azl_seccomp_set_caps(const struct azl_seccomp_caps *caps);

/* Decode lowercase/uppercase hex TEXT into OUT (capacity CAP bytes). Returns the byte count or
 * -1 (odd length, bad digit, too long). For a plan that carries the BPF as hex. */
long azl_seccomp_hex_decode(const char *text, uint8_t *out, size_t cap);

#endif
