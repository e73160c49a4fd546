/*
 * The sandbox's uid and gid maps: through the setuid newuidmap/newgidmap for a full subordinate
 * range, one line written directly otherwise, or (in the kept user namespace, keeper.c) the
 * same ranges mapped onto themselves.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_proc(pid_t pid, const char *file, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("cannot write %s", path);
    close(fd);
}

/* M as map text; with NESTED, each range mapped onto itself ("inside inside count"): the map of
 * a run's own user namespace inside the kept one, which already maps those ids to the host. */
void write_map_as(pid_t pid, const struct idmap *m, const char *file, int nested) {
    char text[1024];
    size_t o = 0;
    for (int i = 0; i + 2 < m->nfields; i += 3) {
        int n = snprintf(text + o, sizeof text - o, "%s %s %s\n", m->fields[i], m->fields[i + (nested ? 0 : 1)], m->fields[i + 2]);
        if (n < 0 || (size_t)n >= sizeof text - o) { errno = 0; die("id map too long"); }
        o += (size_t)n;
    }
    write_proc(pid, file, text);
}

static void write_map(pid_t pid, const struct idmap *m, const char *file) { write_map_as(pid, m, file, 0); }

/* Start newuidmap/newgidmap PID IN OUT COUNT...; returns its pid. */
static pid_t spawn_map(pid_t pid, const struct idmap *m) {
    char pidstr[16];
    snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
    char *argv[PLAN_MAX_MAP + 3];
    int a = 0;
    argv[a++] = (char *)m->helper;
    argv[a++] = pidstr;
    for (int i = 0; i < m->nfields; i++) argv[a++] = (char *)m->fields[i];
    argv[a] = NULL;
    char *env[] = { NULL };
    pid_t h;
    int e = posix_spawn(&h, m->helper, NULL, NULL, argv, env);
    if (e) { errno = e; die("cannot run %s", m->helper); }
    return h;
}

static void wait_map(pid_t h, const char *helper) {
    int st;
    while (waitpid(h, &st, 0) < 0)
        if (errno != EINTR) die("waiting for %s", helper);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        errno = 0;
        die("%s failed (see its message above; check /etc/subuid and /etc/subgid; run `azl-shell doctor`)", helper);
    }
}

void write_id_maps(pid_t pid, const struct plan *p) {
    pid_t hu = -1, hg = -1;
    /* The two setuid helpers run side by side: each costs an exec. */
    if (p->uidmap.helper && *p->uidmap.helper) hu = spawn_map(pid, &p->uidmap);
    if (p->gidmap.helper && *p->gidmap.helper) hg = spawn_map(pid, &p->gidmap);
    if (hu < 0) write_map(pid, &p->uidmap, "uid_map");
    if (hg < 0) {
        /* An unprivileged single-line gid map needs setgroups denied first. */
        write_proc(pid, "setgroups", "deny");
        write_map(pid, &p->gidmap, "gid_map");
    }
    if (hu >= 0) wait_map(hu, p->uidmap.helper);
    if (hg >= 0) wait_map(hg, p->gidmap.helper);
}

