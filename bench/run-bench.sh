#!/bin/sh
# Warm `azl-shell run -- /bin/true` against its peers on the same Alpine tree, in one
# hyperfine run: bubblewrap, charliecloud's ch-run, and podman for scale.
# Prints medians side by side and azl-shell's ratio to each; says which peers are missing.
#
#   bench/run-bench.sh [BUILD_DIR]      (default: .build/release, else .build/debug)
#
# Environment: RUNS (default 300, spread over ROUNDS rounds, default 5), WARMUP (default 30), AZL_TEST_USER (as root, the
# benchmark runs as this unprivileged user; default azltest), ROOTFS_TAR (default: the
# shared Alpine x86_64 minirootfs), PEERS (default "bwrap ch-run podman": the peers to time; podman's
# runs take minutes, so PEERS="bwrap ch-run" repeats the goal's figures quickly).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-300}
warmup=${WARMUP:-30}
tarball=${ROOTFS_TAR:-$here/../shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz}
py=/usr/bin/python3
[ -x "$py" ] || py=python3

bench=run-bench
# Inside, the script runs from the work folder, where as-user.sh was copied too.
. "$(dirname "$0")/as-user.sh"

work=$AZL_BENCH_WORK
cd "$work"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir rootfs state
tar -xzf "$tarball" -C rootfs --exclude='./dev/*' 2>/dev/null || tar -xf "$tarball" -C rootfs --exclude='./dev/*'
root=$work/rootfs
export AZL_SHELL_ROOT=$work/state

names="" cmds="" missing=""
add() { names="$names|$1"; cmds="$cmds|$2"; }

# azl-shell: through the store when `import` works, else the same tree by --rootfs.
azl="$work/azl-shell"
if "$azl" import --name bench-alpine "$tarball" >/dev/null 2>&1 && "$azl" run --image bench-alpine -- /bin/true 2>/dev/null; then
    add "azl-shell (--image)" "$azl run --image bench-alpine -- /bin/true"
else
    add "azl-shell (--rootfs)" "$azl run --rootfs $root -- /bin/true"
fi
"$azl" run --rootfs "$root" -- /bin/true || { echo "run-bench: azl-shell run does not work here" >&2; exit 1; }

# The same with one id mapped, as bwrap maps it (no newuidmap/newgidmap): like for like.
if [ "${names#|azl-shell (--image)}" != "$names" ]; then
    "$azl" run --id-map single --image bench-alpine -- /bin/true 2>/dev/null &&
        add "azl-shell --id-map single" "$azl run --id-map single --image bench-alpine -- /bin/true"
fi

peers=${PEERS:-bwrap ch-run podman}
wanted() { case " $peers " in *" $1 "*) return 0 ;; esac; return 1; }

if ! wanted bwrap; then :
elif command -v bwrap >/dev/null && bwrap --unshare-all --bind "$root" / --proc /proc --dev /dev --tmpfs /tmp /bin/true 2>/dev/null; then
    add bwrap "bwrap --unshare-all --bind $root / --proc /proc --dev /dev --tmpfs /tmp /bin/true"
else missing="$missing bwrap"; fi

if ! wanted ch-run; then :
elif command -v ch-run >/dev/null && ch-run "$root" -- /bin/true 2>/dev/null; then
    add ch-run "ch-run $root -- /bin/true"
else missing="$missing ch-run"; fi

if ! wanted podman; then :
elif command -v podman >/dev/null && podman import "$tarball" localhost/azl-bench-alpine >/dev/null 2>&1 \
        && podman --runtime runc --cgroup-manager cgroupfs run --rm --network host localhost/azl-bench-alpine /bin/true >/dev/null 2>&1; then
    add podman "podman --runtime runc --cgroup-manager cgroupfs run --rm --network host localhost/azl-bench-alpine /bin/true"
    podman_imported=1
else missing="$missing podman"; [ -n "$(command -v podman)" ] && podman rmi localhost/azl-bench-alpine >/dev/null 2>&1; fi

set -- 
IFS='|'
for c in ${cmds#|}; do set -- "$@" "$c"; done
unset IFS
# In rounds, every command once per round: a shared VM's speed drifts over a minute, and
# rounds keep that drift from favouring whichever command hyperfine happened to time first.
rounds=${ROUNDS:-5}
per=$(( (runs + rounds - 1) / rounds ))
r=1
while [ $r -le "$rounds" ]; do
    hyperfine -N --style basic --warmup "$warmup" --runs "$per" --export-json "$work/bench-$r.json" "$@" >/dev/null 2>"$work/hyperfine.err" || {
        cat "$work/hyperfine.err" >&2; exit 1; }
    r=$((r + 1))
done
[ -n "${podman_imported:-}" ] && podman rmi localhost/azl-bench-alpine >/dev/null 2>&1 || true

"$py" - "${names#|}" "$work"/bench-*.json <<'EOF'
import json, statistics, sys
names = sys.argv[1].split("|")
times = [[] for _ in names]
for f in sys.argv[2:]:
    for i, r in enumerate(json.load(open(f))["results"]):
        times[i] += r["times"]
med = [statistics.median(t) * 1000 for t in times]
print(f"{'':26} {'median':>10} {'min':>8}   azl-shell / peer   ({len(sys.argv) - 2} rounds, {len(times[0])} runs each)")
for n, m, t in zip(names, med, times):
    ratio = "" if n.startswith("azl-shell") else f"{med[0] / m:10.2f}"
    if n.startswith("azl-shell") or len(med) < 2:
        print(f"{n:26} {m:8.2f}ms {min(t) * 1000:6.2f}ms")
        continue
    single = [med[i] for i, x in enumerate(names) if x == "azl-shell --id-map single"]
    extra = f"   (--id-map single: {single[0] / m:.2f})" if single else ""
    print(f"{n:26} {m:8.2f}ms {min(t) * 1000:6.2f}ms   {ratio}{extra}")
EOF
if [ -n "$missing" ]; then
    echo "missing peers (not installed or not working here):$missing"
fi
echo "goal: ratio <= 0.8 against bwrap, <= 1.2 against ch-run"
