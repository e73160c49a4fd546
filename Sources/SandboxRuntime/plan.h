/*
 * The sandbox plan: what the Swift side decided, as the C side reads it.
 *
 * Wire format (version 7), written by Sources/Sandbox/SandboxPlan.swift:
 *
 *   plan   := record*
 *   record := u32 length (little endian) | payload[length]
 *   payload:= field*            each field is a NUL-terminated string
 *
 * The first field of a record is its name. The first record must be
 * "azl-plan" PLAN_VERSION. Numbers are decimal text (modes octal). A record this
 * helper does not know is an error: a helper and an azl-shell from different
 * builds must fail loudly, not half-apply a plan.
 *
 * Records:
 *   azl-plan VERSION
 *   ns NAME...                  user mount pid uts ipc [net]
 *   flags WORD...               verbose, pty (relay a pty when stdin/stdout are terminals)
 *   uidmap HELPER (IN OUT COUNT)...   HELPER is newuidmap's path, or "" to write the map directly
 *   gidmap HELPER (IN OUT COUNT)...
 *   root LOWERDIR MODE          MODE: overlay | overlay-ro
 *   lower DIR                   another lower layer above the root's (setup layers), bottom to top
 *   upper DIR WORKDIR           a kept upper layer (an environment's, a setup step's) instead of
 *                               the staging tmpfs's fresh one; WORKDIR on the same filesystem
 *   mount KIND DST SRC DATA FLAGS MODE   in order; see enum mount_kind
 *   live DIR IDLE               a session of a named environment (env.c): DIR holds its live
 *                               sandbox's socket, lock and pid file (in the store: out of every
 *                               sandbox's reach); IDLE seconds without a session before it stops
 *   session-bind SRC DST        a session's own working directory (env.c): host folder SRC bound,
 *                               guarded, at DST in a mount namespace of the session's own
 *   remove PATH                 no command: remove the tree PATH inside a user namespace of the
 *                               plan's maps (an environment's layer holds files of other ids)
 *   hostname NAME
 *   user UID GID                ids inside to run the command as
 *   cwd PATH
 *   env K=V...
 *   argv ARG...
 *   seccomp HEXBPF NOTIFY       the command's seccomp program (struct sock_filter[], hex);
 *                               NOTIFY: notify-uname (uname goes to pid 1) or -
 *   caps BND EFF PRM INH AMB    capability masks, 16 hex digits each
 *   uname RELEASE VERSION MACHINE   what pid 1 answers for uname (with notify-uname);
 *                               MACHINE "" keeps pid 1's own
 *   nnp                         set no_new_privs on the command
 *   keeper PROGRAM STATE IDLE   keep the user namespace for these (helper-written) maps:
 *                               PROGRAM is azl-shell-sandbox, STATE the keeper's file, IDLE
 *                               its seconds without a run before it leaves (keeper.c)
 *   guard hide|ro|pin PATH      an azl-shell state folder of the user's: wherever a bind with
 *                               the "guard" flag shows it, it is hidden (an empty read-only
 *                               tmpfs) or read-only; pin: a symlink on the way to one, made a
 *                               mountpoint; decided by device and inode (mounts.c)
 *   binfmt NAME MAGIC MASK INTERPRETER
 *                               register a foreign architecture's interpreter (qemu-user) in the
 *                               sandbox's own binfmt_misc instance (user namespaces, kernel 6.7+),
 *                               flags FOC: INTERPRETER (a host path) is opened at registration,
 *                               before pivot_root; mounted on /proc/sys/fs/binfmt_misc. MAGIC and
 *                               MASK are in binfmt_misc's \xHH notation (mounts.c: do_binfmt)
 *   abi-report PATH             --abi-report: the gated and denied calls below are notified to
 *                               pid 1 instead of failed by the filter; it fails them the same
 *                               way, counts them per program and writes PATH (a host path the
 *                               supervisor opens) when the command ends
 *   abi-call ARCH NR ERRNO NAME REASON   one such call: AUDIT_ARCH_*, number, the errno it
 *                               answers, its name and the profile's reason (only with abi-report)
 *
 * Version 2 added seccomp, caps, uname, nnp and the rofile mount kind (issue 5); 3 keeper;
 * 4 guard (issue 10);
 * 5 live and remove (issue 12); 6 binfmt, uname's MACHINE,
 * abi-report and abi-call (issue 14); 7 the overlay mount kind and session-bind (issue 12).
 */
#ifndef AZL_PLAN_H
#define AZL_PLAN_H

#include <stddef.h>
#include <sys/types.h>

#define PLAN_VERSION "7"
#define PLAN_MAX_BYTES (16u << 20)
#define PLAN_MAX_MOUNTS 256
#define PLAN_MAX_MAP 32   /* fields (3 per line); newuidmap accepts a few lines */
#define PLAN_MAX_BPF_INSNS 4096   /* BPF_MAXINSNS */
#define PLAN_UTS_MAX 64           /* __NEW_UTS_LEN */
#define PLAN_MAX_GUARDS 256
#define PLAN_MAX_ABI_CALLS 512
#define PLAN_MAX_LOWERS 64   /* overlayfs takes up to 500; a project has a few setup steps */

enum ns_bits { NS_USER = 1, NS_MOUNT = 2, NS_PID = 4, NS_UTS = 8, NS_IPC = 16, NS_NET = 32 };
enum plan_flags { PF_VERBOSE = 1, PF_PTY = 2 };

enum guard_kind { GUARD_HIDE, GUARD_RO, GUARD_PIN };

enum mount_kind {
    MK_BIND,        /* bind host SRC (absolute host path) on DST */
    MK_TMPFS,       /* fresh tmpfs on DST, DATA = extra options ("size=..."), MODE = root mode;
                     * without options: a fresh folder of the staging tmpfs (mnt_stage_dir) */
    MK_PROC,        /* fresh procfs (of the new pid namespace) on DST */
    MK_DEVPTS,      /* private devpts instance on DST, ptmxmode=0666 */
    MK_MKDIR,       /* make directory DST (and parents) with MODE */
    MK_SYMLINK,     /* symlink DST -> SRC (replacing a file or link at DST) */
    MK_FILE,        /* write DATA to file DST with MODE (replacing a link at DST) */
    MK_REMOUNT_RO,  /* make the mount at DST read-only (not recursive) */
    MK_ROFILE,      /* write DATA to a file on the staging tmpfs (MODE) and bind it read-only
                     * on the existing file DST (e.g. /proc/version after /proc is mounted) */
    MK_OVERLAY,     /* host folder SRC as the lower of an overlay on DST whose upper and work are
                     * DATA/upper and DATA/work (an environment's copy-on-write home); with
                     * "guard", the state folders it shows are covered in the merged view */
};

enum mount_flags {
    MF_RO = 1,        /* read-only (recursively, for REC binds) */
    MF_REC = 2,       /* recursive bind */
    MF_OPTIONAL = 4,  /* skip quietly when SRC does not exist */
    MF_NOSUID = 8,
    MF_NODEV = 16,
    MF_NOEXEC = 32,
    MF_GUARD = 64,    /* a bind the user chose (working directory, volume): checked against the
                       * guard records, which it may show or lie inside */
};

struct mount_op {
    int kind;
    const char *dst, *src, *data;
    unsigned flags;
    unsigned mode;
};

struct idmap {
    const char *helper;       /* NULL or "" means: write /proc/PID/{u,g}id_map ourselves */
    const char *fields[PLAN_MAX_MAP];
    int nfields;              /* multiple of 3 */
};

struct plan {
    unsigned ns;
    unsigned flags;
    struct idmap uidmap, gidmap;
    const char *root_lower;
    const char *lowers[PLAN_MAX_LOWERS];   /* above root_lower, bottom to top */
    int nlowers;
    const char *root_upper, *root_work;    /* NULL: a fresh upper in the staging tmpfs */
    int root_readonly;
    struct mount_op mounts[PLAN_MAX_MOUNTS];
    int nmounts;
    const char *hostname;
    uid_t uid;
    gid_t gid;
    const char *cwd;
    char **env;               /* NULL-terminated */
    char **argv;              /* NULL-terminated, at least one entry */

    /* Kernel policy (issue 5), applied by the command's child just before exec. */
    unsigned char *bpf;       /* NULL: no seccomp program */
    size_t bpf_len;           /* bytes, a multiple of 8 */
    int notify_uname;         /* the program returns USER_NOTIF for uname */
    int have_caps;
    unsigned long long caps[5];   /* bounding, effective, permitted, inheritable, ambient */
    const char *uts_release, *uts_version, *uts_machine;   /* with notify_uname; machine may be "" */
    int nnp;

    const char *keeper_program, *keeper_state;   /* NULL: no kept user namespace */
    unsigned keeper_idle;

    struct { const char *path; int kind; } guards[PLAN_MAX_GUARDS];
    int nguards;

    const char *env_dir;      /* a session of a named environment (env.c), or NULL */
    unsigned env_idle;
    const char *remove_path;  /* remove this tree (env.c), or NULL */
    const char *session_src, *session_dst;   /* a session's own working directory, or NULL */

    const char *binfmt_name, *binfmt_magic, *binfmt_mask, *binfmt_interp;   /* NULL: native */

    const char *abi_report;   /* NULL: no report */
    struct abi_call { unsigned arch; unsigned nr; int err; const char *name, *reason; } abi_calls[PLAN_MAX_ABI_CALLS];
    int nabi;
    int abi_fd;               /* not in the plan: the report file, opened by the supervisor (-1: none) */
};

/* Parse BUF (LEN bytes; the plan keeps pointers into it) into P, which must be all zero
 * (static storage: clearing its ~35 KB here would fault in every page of it, a tenth of a warm
 * run's page faults). On error returns -1 and writes a one-line reason into ERR. */
int plan_parse(char *buf, size_t len, struct plan *p, char *err, size_t errlen);

#endif
