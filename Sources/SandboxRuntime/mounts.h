/* Shared by mounts.c (building the root) and guards.c (azl-shell's state out of reach). */
#ifndef AZL_MOUNTS_H
#define AZL_MOUNTS_H

#include "sandbox.h"

#include <limits.h>
#include <sys/stat.h>

/* Where the host's "/" is: "" (detached staging) or "/oldroot" (the older way). */
extern const char *mnt_host;
/* PATH opened in the new root (RESOLVE_IN_ROOT, no magic links). */
int mnt_open_in_root(const char *path, int flags);
/* PATH's parent into PARENT; its last component returned (a static buffer). */
const char *mnt_split(const char *path, char *parent, size_t size);
/* An O_PATH fd of host PATH, no symlink followed; -1 (ENOENT) when missing; die()s otherwise. */
int mnt_open_host(const char *path, int flags);
void mnt_fs_set(int fs, const char *key, const char *val, const char *what, const char *dst);
/* The filesystem configured on FS, created, as a detached mount with FLAGS (MF_*). */
int mnt_fs_mount(int fs, unsigned flags, const char *what, const char *dst);

/* A detached mount of a fresh folder of the staging tmpfs with MODE and FLAGS (MF_*). */
int mnt_stage_dir(unsigned mode, unsigned flags, const char *what);

/* guards.c */
/* What can be known before the root is built: the host's mountpoints that the plan's recursive
 * guarded binds bring along (read from mountinfo, unless guards_submounts_set gave them). */
void guards_prepare(const struct plan *p);
void guards_check_source(const struct mount_op *m, const struct plan *p, int src, const struct stat *st, unsigned *attrs);
void guards_protect(const struct mount_op *m, const struct plan *p, const struct stat *st);
/* After the overlay M (its lower: ST) was attached: the state folders its merged view shows. */
void guards_protect_merged(const struct mount_op *m, const struct plan *p, const struct stat *st);
void guards_close(const struct plan *p);

#endif
