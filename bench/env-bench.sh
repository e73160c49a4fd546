#!/bin/sh
# Named environments (issue 12): `exec NAME -- true` into a running and into a stopped
# environment, and `create`, against the warm `run --image -- true`, with `podman exec` into a
# running rootless container and `distrobox enter NAME -- true` where installed; one hyperfine
# run, medians side by side.
#
#   bench/env-bench.sh [BUILD_DIR]      (default: .build/release, else .build/debug)
#
# Environment: RUNS (default 100), WARMUP (default 10), PEER_RUNS (the peers' runs, default 10:
# a distrobox enter takes about a second), AZL_TEST_USER (as root, the benchmark runs as this
# unprivileged user; default azltest), ROOTFS_TAR (default: the shared Alpine x86_64
# minirootfs). distrobox's container is made from the Debian 12 tarball next to ROOTFS_TAR,
# imported into podman (no registry needed); its first enter installs distrobox's own needs
# with apt, so a Debian mirror must answer.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-100}
warmup=${WARMUP:-10}
peer_runs=${PEER_RUNS:-10}
tarball=${ROOTFS_TAR:-$here/../shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz}

bench=env-bench
# Inside, the script runs from the work folder, where as-user.sh was copied too.
. "$(dirname "$0")/as-user.sh"

work=$AZL_BENCH_WORK
cd "$work"
azl="$work/azl-shell"
export AZL_SHELL_ROOT=$work/state
cleanup() {
    "$azl" rm --force bench-env bench-new >/dev/null 2>&1 || true
    [ -n "${podman_ctr:-}" ] && podman rm -f "$podman_ctr" >/dev/null 2>&1 || true
    [ -n "${dbx:-}" ] && distrobox rm -f azl-bench >/dev/null 2>&1 || true
    podman rmi -f azl-bench-debian >/dev/null 2>&1 || true
    chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
"$azl" import --name bench-alpine "$tarball" >/dev/null
"$azl" create bench-env --image bench-alpine >/dev/null
"$azl" exec bench-env -- true
"$azl" run --image bench-alpine -- true

printf '#!/bin/sh\n"%s" rm --force bench-new >/dev/null 2>&1; exit 0\n' "$azl" > "$work/unmake.sh"
chmod +x "$work/unmake.sh"
set -- \
    -n "run --image -- true (warm)" --prepare true "$azl run --image bench-alpine -- true" \
    -n "exec NAME -- true (running)" --prepare true "$azl exec bench-env -- true" \
    -n "exec NAME -- true (stopped)" --prepare "$azl stop bench-env" "$azl exec bench-env -- true" \
    -n "create" --prepare "$work/unmake.sh" "$azl create bench-new --image bench-alpine"
missing=""
if command -v podman >/dev/null && podman image exists bench-alpine 2>/dev/null || { command -v podman >/dev/null && podman import "$tarball" bench-alpine >/dev/null 2>&1; }; then
    # The host's network, as an environment's (and distrobox's): slirp4netns also needs /dev/net/tun.
    podman_ctr=$(podman run -d --rm --network host bench-alpine sleep 3600 2>/dev/null || true)
fi
dbx_tar=$(dirname "$tarball")/debian-12-bookworm-minbase-slim-amd64.tar.xz
if command -v distrobox >/dev/null && [ -f "$dbx_tar" ] && podman import "$dbx_tar" azl-bench-debian >/dev/null 2>&1 &&
   distrobox create -Y -n azl-bench -i localhost/azl-bench-debian >/dev/null 2>&1; then
    dbx=1
    distrobox enter azl-bench -- true >/dev/null 2>&1 || { dbx=; distrobox rm -f azl-bench >/dev/null 2>&1; }
fi
[ -n "${podman_ctr:-}" ] || missing="$missing podman"
[ -n "${dbx:-}" ] || missing="$missing distrobox"
[ -z "$missing" ] || echo "env-bench: not measured (not installed or not working here):$missing" >&2
hyperfine -N --runs "$runs" --warmup "$warmup" --export-json "$work/h.json" "$@" >/dev/null
set --
[ -n "${podman_ctr:-}" ] && set -- "$@" -n "podman exec -- true" "podman exec $podman_ctr true"
[ -n "${dbx:-}" ] && set -- "$@" -n "distrobox enter NAME -- true" "distrobox enter azl-bench -- true"
echo '{"results": []}' > "$work/p.json"
[ $# -eq 0 ] || hyperfine -N --runs "$peer_runs" --warmup 2 --export-json "$work/p.json" "$@" >/dev/null
python3 - "$work/h.json" "$work/p.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"] + json.load(open(sys.argv[2]))["results"]
med = {x["command"]: x["median"] * 1000 for x in r}
base = med["run --image -- true (warm)"]
for name, ms in med.items():
    print("%-32s %8.2f ms  %5.2fx warm run" % (name, ms, ms / base))
for peer in ("podman exec -- true", "distrobox enter NAME -- true"):
    if peer in med:
        print("%s / exec (running): %.0fx" % (peer, med[peer] / med["exec NAME -- true (running)"]))
PY
