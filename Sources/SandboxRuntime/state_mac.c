/*
 * Authenticating azl-shell's own state (docs/sandbox.md, "Trust").
 *
 * A sandboxed command can write whatever its binds expose, as the user: owner and mode checks
 * cannot tell its files from ours. So every state file whose content decides what a later run
 * does on the host (plan cache entries, compiled seccomp programs, keeper state) carries an
 * HMAC-SHA256 keyed by a secret no sandbox can read: 32 random bytes kept in the user's kernel
 * keyring (@u). A sandbox cannot reach it twice over: its commands run under a seccomp program
 * that answers keyctl, add_key and request_key with EPERM, and the kernel gives every user
 * namespace a user keyring of its own (measured on 6.18: a new user namespace finds @u empty).
 * Where no keyring can be had (a container whose seccomp profile denies keyctl, a kernel
 * without keys), azl_state_key fails and callers keep and trust no state: slower, still correct.
 *
 * SHA-256 and HMAC come from nettle, which libarchive already brings.
 */
#include "azl_sandbox.h"

#include <errno.h>
#include <linux/keyctl.h>
#include <nettle/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEY_DESC "azl-shell:state-mac:1"
/* Possessor: everything; user: read and search only (not view: /proc/keys need not list it). */
#define KEY_PERM 0x3f0a0000u

static unsigned char cached[AZL_STATE_KEY_LEN];
static int have_cached;

static long find_key(void) {
    return syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", KEY_DESC, 0);
}

static int read_key(long id, unsigned char key[AZL_STATE_KEY_LEN]) {
    unsigned char buf[AZL_STATE_KEY_LEN + 1];
    long n = syscall(SYS_keyctl, KEYCTL_READ, id, buf, sizeof buf, 0);
    if (n != AZL_STATE_KEY_LEN) return -1;
    memcpy(key, buf, AZL_STATE_KEY_LEN);
    return 0;
}

int azl_state_key(unsigned char key[AZL_STATE_KEY_LEN]) {
    if (have_cached) { memcpy(key, cached, AZL_STATE_KEY_LEN); return 0; }
    /* Turns authentication, and so every cache, off: what a machine without keyrings gets
     * (the tests use it to show that such a machine still runs correctly). */
    const char *off = getenv("AZL_SHELL_STATE_KEY");
    if (off && !strcmp(off, "off")) return -1;
    long id = find_key();
    if (id < 0) {
        if (errno != ENOKEY) return -1;   /* EPERM/ENOSYS: no keyring here */
        unsigned char fresh[AZL_STATE_KEY_LEN];
        if (getrandom(fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh) return -1;
        id = syscall(SYS_add_key, "user", KEY_DESC, fresh, sizeof fresh, KEY_SPEC_USER_KEYRING);
        if (id < 0) return -1;
        /* Readable by the user's processes that do not possess it (a session keyring owned by
         * someone else, as under setpriv or sudo); a racing second add replaced the payload
         * with its own, so what is read back is what every later run reads. */
        if (syscall(SYS_keyctl, KEYCTL_SETPERM, id, KEY_PERM, 0, 0) < 0) return -1;
    }
    if (read_key(id, key) < 0) return -1;
    memcpy(cached, key, AZL_STATE_KEY_LEN);
    have_cached = 1;
    return 0;
}

void azl_state_mac(const unsigned char key[AZL_STATE_KEY_LEN], const char *purpose, const void *data, size_t len,
                   unsigned char out[AZL_STATE_MAC_LEN]) {
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, AZL_STATE_KEY_LEN, key);
    /* The purpose (with its NUL) first: a plan entry can never pass as keeper state. */
    hmac_sha256_update(&ctx, strlen(purpose) + 1, (const uint8_t *)purpose);
    hmac_sha256_update(&ctx, len, data);
    hmac_sha256_digest(&ctx, AZL_STATE_MAC_LEN, out);
}

int azl_state_mac_ok(const char *purpose, const void *data, size_t len, const unsigned char mac[AZL_STATE_MAC_LEN]) {
    unsigned char key[AZL_STATE_KEY_LEN], want[AZL_STATE_MAC_LEN];
    if (azl_state_key(key) < 0) return 0;
    azl_state_mac(key, purpose, data, len, want);
    unsigned diff = 0;   /* constant time: no byte-by-byte oracle */
    for (int i = 0; i < AZL_STATE_MAC_LEN; i++) diff |= want[i] ^ mac[i];
    return diff == 0;
}
