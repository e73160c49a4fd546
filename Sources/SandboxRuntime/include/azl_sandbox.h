/* The C part of azl-shell, as its two callers see it (Sources/SandboxRuntime/supervisor.c). */
#ifndef AZL_SANDBOX_PUBLIC_H
#define AZL_SANDBOX_PUBLIC_H

#include <stddef.h>

/* azl-shell-sandbox's main: `--plan-fd N`, the plan in the file open on N. Never returns
 * but for a usage error. */
int azl_sandbox_main(int argc, char **argv);

/* Carry out the encoded plan in this process, which becomes the supervisor: never returns
 * (the process exits with the command's status), except with -1, having done nothing, when
 * this process has more than one thread (then exec azl-shell-sandbox instead) or the plan
 * does not parse (damaged, or from another build: compute a fresh one). */
int azl_sandbox_run_in_process(const void *plan, size_t len);

#endif
