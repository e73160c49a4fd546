/*
 * The C plan parser (Sources/SandboxRuntime/plan.c) on its own, for KernelTests: reads a
 * plan from FILE and prints "ok" and what the kernel-policy records set, or "error: REASON".
 *
 *   plan_parse FILE
 */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void die(const char *fmt, ...) { (void)fmt; exit(125); }
void say(const char *fmt, ...) { (void)fmt; }

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    static char buf[PLAN_MAX_BYTES];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    static struct plan p;
    char err[512];
    if (plan_parse(buf, len, &p, err, sizeof err) < 0) {
        printf("error: %s\n", err);
        return 1;
    }
    printf("ok\n");
    printf("bpf_len %zu\n", p.bpf_len);
    if (p.bpf_len >= 8) printf("bpf_first %02x%02x%02x%02x%02x%02x%02x%02x\n", p.bpf[0], p.bpf[1], p.bpf[2], p.bpf[3], p.bpf[4], p.bpf[5], p.bpf[6], p.bpf[7]);
    printf("notify_uname %d\n", p.notify_uname);
    if (p.have_caps) printf("caps %llx %llx %llx %llx %llx\n", p.caps[0], p.caps[1], p.caps[2], p.caps[3], p.caps[4]);
    if (p.uts_release) printf("uname %s|%s|%s\n", p.uts_release, p.uts_version, p.uts_machine);
    if (p.abi_report) printf("abi-report %s %d\n", p.abi_report, p.nabi);
    for (int i = 0; i < p.nabi; i++)
        printf("abi-call %u %u %d %s|%s\n", p.abi_calls[i].arch, p.abi_calls[i].nr, p.abi_calls[i].err, p.abi_calls[i].name, p.abi_calls[i].reason);
    if (p.binfmt_name) printf("binfmt %s|%s|%s|%s\n", p.binfmt_name, p.binfmt_magic, p.binfmt_mask, p.binfmt_interp);
    printf("nnp %d\n", p.nnp);
    if (p.keeper_state) printf("keeper %s %s %u\n", p.keeper_program, p.keeper_state, p.keeper_idle);
    for (int i = 0; i < p.nmounts; i++)
        if (p.mounts[i].kind == MK_ROFILE) printf("rofile %s %o %zu\n", p.mounts[i].dst, p.mounts[i].mode, strlen(p.mounts[i].data));
        else if (p.mounts[i].kind == MK_OVERLAY) printf("overlay %s %s %s %x\n", p.mounts[i].dst, p.mounts[i].src, p.mounts[i].data, p.mounts[i].flags);
    if (p.session_src) printf("session-bind %s %s\n", p.session_src, p.session_dst);
    return 0;
}
