/* Kernel probes for `azl-shell doctor`: each tries the real thing the runtime does, in a child
 * where it must change namespaces, and returns 0 or the errno that stopped it. */
#ifndef AZL_DOCTOR_PROBE_H
#define AZL_DOCTOR_PROBE_H
int azl_probe_userns(void);
int azl_probe_overlay(const char *dir);
int azl_probe_seccomp_notify(void);
int azl_probe_pidfd(void);
int azl_probe_mount_api(void);
int azl_probe_binfmt_userns(void);
int azl_probe_keyring(void);
int azl_probe_file_caps(const char *path);
#endif
