/* The C part of azl-shell, as its callers see it (Sources/SandboxRuntime/supervisor.c); the
 * doctor's kernel probes are in doctor_probe.h beside this. */
#ifndef AZL_SANDBOX_PUBLIC_H
#define AZL_SANDBOX_PUBLIC_H

#include <stddef.h>
#include <stdint.h>

/* azl-shell-sandbox's main: `--plan-fd N`, the plan in the file open on N. Never returns
 * but for a usage error. */
int azl_sandbox_main(int argc, char **argv);

/* Carry out the encoded plan in this process, which becomes the supervisor: never returns
 * (the process exits with the command's status), except with -1, having done nothing, when
 * this process has more than one thread (then exec azl-shell-sandbox instead) or the plan
 * does not parse (damaged, or from another build: compute a fresh one). */
int azl_sandbox_run_in_process(const void *plan, size_t len);

/* The plan cache (plan_cache.c): one implementation for the lookup here and the store in
 * PlanCache.swift. */

/* In a process whose argv is `azl-shell run ...`: when the plan cache holds a current plan for
 * exactly this input, carry it out (never returns); otherwise return, having done nothing. */
void azl_plan_cache_replay(int argc, char **argv, char **envp);
/* This process's cache input for ARGV and ENVP: the plans folder and the key (both malloc'd);
 * -1 when no plan may be cached or replayed (no HOME). */
int azl_plan_cache_input(char *const argv[], char *const envp[], char **dir, unsigned char **key, long *keylen);
/* The plans folder (malloc'd) for ARGV, ENVP and CWD, or NULL. */
char *azl_plan_cache_directory(char *const argv[], char *const envp[], const char *cwd);
/* The key (malloc'd into *OUT) of that input (ids, working directory, arguments); its length,
 * or -1. */
long azl_plan_cache_key(char *const argv[], const char *cwd, unsigned uid, unsigned gid, unsigned char **out);
/* The entry's record of the N variables NAMES that planning read, with their values in ENVP
 * (malloc'd into *OUT); its length, or -1 when one is set twice (nothing may be cached then). */
long azl_plan_cache_env_section(char *const envp[], const char *const names[], int n, unsigned char **out);
/* FNV-1a (64 bits) of LEN bytes: names files after their input (plan entries, keepers). */
unsigned long long azl_fnv1a(const void *data, size_t len);
/* The entry's file name for KEY: 16 hex digits of its FNV-1a and ".plan". */
void azl_plan_cache_file_name(const unsigned char *key, long keylen, char out[32]);
/* Dependency kinds: its content matters; only which file it is; which file it is, reached
 * without following any symlink (a bind source as the plan names it). */
enum { AZL_DEP_CONTENT = 0, AZL_DEP_PRESENCE = 1, AZL_DEP_RESOLVED = 2 };
/* What identifies PATH now, into OUT; returns how many values (1 for a missing file, 4 for
 * presence, 9 for content). */
int azl_plan_cache_identity(const char *path, int kind, unsigned long long out[9]);
/* A file a plan was computed from: PATH, its kind (AZL_DEP_*) and, when SEEN_COUNT is not 0,
 * its identity taken before planning read it (azl_plan_cache_identity). */
struct azl_plan_cache_dep { const char *path; int kind; int seen_count; unsigned long long seen[9]; };
/* The whole entry for KEY (malloc'd into *OUT): the variables NAMES with their values in ENVP,
 * the image's LOCKPATH ("" for none), each of DEPS with its identity now, PLAN, and the state
 * MAC; its length, or -1 when nothing may be kept: no state secret, a variable set twice, or a
 * dependency that is no longer the file it was before planning read it. */
long azl_plan_cache_entry(const unsigned char *key, long keylen, char *const envp[], const char *const names[], int nnames,
                          const char *lockpath, const struct azl_plan_cache_dep *deps, int ndeps,
                          const unsigned char *plan, size_t planlen, unsigned char **out);
/* The plan inside ENTRY (LEN bytes, as stored), without checking its MAC or its dependencies:
 * for tests that replay an entry's plan by other means. 0, or -1 when ENTRY is not one. */
int azl_plan_cache_entry_plan(const unsigned char *entry, size_t len, const unsigned char **plan, uint32_t *planlen);
/* Option NAME ("--root", "-e") of VERB ("run", "exec": the verbs whose plans are cached): 1 takes
 * a value, 0 a flag, -1 not one of that verb's. */
int azl_option_kind(const char *verb, const char *name);

/* The state MAC (state_mac.c): HMAC-SHA256 under a secret kept in the user's kernel keyring,
 * which no sandbox can read. */
#define AZL_STATE_KEY_LEN 32
#define AZL_STATE_MAC_LEN 32
/* The secret (created on first use); -1 when this machine has no keyring for us (then keep and
 * trust no state), or AZL_SHELL_STATE_KEY=off. */
int azl_state_key(unsigned char key[AZL_STATE_KEY_LEN]);
/* The MAC of DATA for PURPOSE ("plan", "seccomp", "keeper": one never passes for another). */
void azl_state_mac(const unsigned char key[AZL_STATE_KEY_LEN], const char *purpose, const void *data, size_t len,
                   unsigned char out[AZL_STATE_MAC_LEN]);
/* Whether MAC is DATA's for PURPOSE under this user's secret (constant time); 0 without one. */
int azl_state_mac_ok(const char *purpose, const void *data, size_t len, const unsigned char mac[AZL_STATE_MAC_LEN]);

/* Named environments (env.c): send request REQ ('q' sessions, 's' stop) to the live sandbox of
 * the environment in DIR and read its answer (NUL-terminated) into OUT; -1 when none serves. */
int azl_env_request(const char *dir, char req, char *out, size_t outlen);

#endif
