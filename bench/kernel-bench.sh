#!/bin/sh
# Overhead of the kernel policy on syscall-heavy work: the same static program
# (bench/kernel-work.c) on the host and inside `azl-shell run` with the full policy
# (kernel profile azurelinux-3.0: seccomp filter with gating, deny list and uname
# notification; capability bounding set; no_new_privs), rounds interleaved in one run.
# Prints medians side by side and the ratio to the host (goal <= 1.02).
#
#   bench/kernel-bench.sh [BUILD_DIR]     (default: .build/release, else .build-kernel/debug, else .build/debug)
#
# Workloads (each times itself inside, so the sandbox's start-up is not in the figure):
#   walk     getdents64 + newfstatat for every entry + openat/read/close of every file < 64 KiB
#            (find -xdev -printf '%s %m %u' plus cat) over the unpacked Debian 12 tree, ROUNDS_WALK times;
#            in the sandbox the same directory is bound (--volume), so both walk the same filesystem
#   spawn    fork + exec + wait, 300 times (mmap/openat/execve heavy: what builds do)
#   getpid   2M getpid(): the cheapest syscall through the filter
#   uname    20k uname(): answered by the sandbox's pid 1 through the seccomp notification;
#            meant to be slow, it shows the round trip
# Also `walk-overlay`: the image's own root through the sandbox's overlayfs (what a build in the
# image pays for the ephemeral root, policy or not), and `azl-shell run -- /bin/true` start-up with
# a warm and a cold seccomp cache and with --kernel host (hyperfine).
#
# Environment: ROUNDS (default 7), ROUNDS_WALK (default 3), AZL_TEST_USER (as root, runs as this
# user; default azltest), ROOTFS_DIR (default ../shared/rootfs).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-7}
walk_rounds=${ROUNDS_WALK:-3}
rootfs_dir=${ROOTFS_DIR:-$here/../shared/rootfs}
py=/usr/bin/python3
[ -x "$py" ] || py=python3

if [ "${AZL_BENCH_INNER:-}" != 1 ]; then
    build=${1:-}
    if [ -z "$build" ]; then
        for d in "$here/.build/release" "$here/.build-kernel/debug" "$here/.build/debug"; do
            if [ -x "$d/azl-shell" ] && [ -x "$d/azl-shell-sandbox" ]; then build=$d; break; fi
        done
    fi
    [ -n "$build" ] && [ -x "$build/azl-shell" ] && [ -x "$build/azl-shell-sandbox" ] || {
        echo "kernel-bench: no azl-shell and azl-shell-sandbox built (swift build -c release first, or pass BUILD_DIR)" >&2; exit 1; }
    command -v cc >/dev/null || { echo "kernel-bench: a C compiler (cc) is required" >&2; exit 1; }
    command -v hyperfine >/dev/null || { echo "kernel-bench: hyperfine is required (apt-get install hyperfine)" >&2; exit 1; }
    work=$(mktemp -d /tmp/azl-kbench-XXXXXX)
    chmod 755 "$work"
    mkdir "$work/bin"
    cp "$build/azl-shell" "$build/azl-shell-cli" "$build/azl-shell-sandbox" "$work/"
    cp "$0" "$work/kernel-bench.sh"
    cc -O2 -static -D_GNU_SOURCE -o "$work/bin/kernel-work" "$here/bench/kernel-work.c" || {
        echo "kernel-bench: cannot link a static binary (libc6-dev's libc.a is needed)" >&2; exit 1; }
    echo "build: $build"
    if [ "$(id -u)" = 0 ]; then
        user=${AZL_TEST_USER:-azltest}
        id "$user" >/dev/null 2>&1 || { echo "kernel-bench: as root, the benchmark runs as '$user': useradd -m $user" >&2; exit 1; }
        chown -R "$user" "$work"
        exec setpriv --reuid="$user" --regid="$user" --init-groups -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
            HOME="$(getent passwd "$user" | cut -d: -f6)" USER="$user" LOGNAME="$user" AZL_BENCH_INNER=1 AZL_BENCH_WORK="$work" \
            ROUNDS="$rounds" ROUNDS_WALK="$walk_rounds" ROOTFS_DIR="$rootfs_dir" sh "$work/kernel-bench.sh"
    fi
    AZL_BENCH_INNER=1 AZL_BENCH_WORK=$work ROUNDS=$rounds ROUNDS_WALK=$walk_rounds ROOTFS_DIR=$rootfs_dir exec sh "$work/kernel-bench.sh"
fi

work=$AZL_BENCH_WORK
cd "$work"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir debian alpine state
tar -xJf "$rootfs_dir/debian-12-bookworm-minbase-slim-amd64.tar.xz" -C debian --exclude='./dev/*' 2>/dev/null || true
tar -xzf "$rootfs_dir/alpine-minirootfs-3.20.3-x86_64.tar.gz" -C alpine --exclude='./dev/*'
export AZL_SHELL_ROOT=$work/state XDG_CACHE_HOME=$work/cache
azl=$work/azl-shell
kw=$work/bin/kernel-work
run_in() {   # run_in KERNEL ARGS...: kernel-work inside the Alpine tree, the Debian tree at /data
    k=$1; shift
    "$azl" run --rootfs "$work/alpine" --kernel "$k" --volume "$work/debian:/data:ro" --volume "$work/bin:/kb:ro" -- /kb/kernel-work "$@"
}
"$kw" walk "$work/debian" 1 >/dev/null   # page cache warm
run_in azurelinux-3.0 getpid 1 >/dev/null || { echo "kernel-bench: azl-shell run does not work here" >&2; exit 1; }
run_in azurelinux-3.0 uname 1 >/dev/null

# One line per measurement: CONFIG WORKLOAD NS. Configurations rotate inside each round.
: > results.txt
measure() {   # measure CONFIG WORKLOAD ARGS...
    c=$1; w=$2; shift 2
    case $c in
        host) out=$("$kw" "$w" "$@") ;;
        policy) out=$(run_in azurelinux-3.0 "$w" "$@") ;;
        kernel-host) out=$(run_in host "$w" "$@") ;;
    esac
    echo "$c $w $(echo "$out" | awk '/^RESULT/ {print $3, $4}')" >> results.txt
}
i=0
while [ $i -lt "$rounds" ]; do
    for c in host policy kernel-host; do
        case $c in host) d=$work/debian ;; *) d=/data ;; esac
        measure $c walk "$d" "$walk_rounds"
        measure $c spawn 300
        measure $c getpid 2000000
        measure $c uname 20000
    done
    # The image's own root through the overlay, for scale (not part of the policy's cost).
    echo "policy walk-overlay $("$azl" run --rootfs "$work/debian" --kernel azurelinux-3.0 --volume "$work/bin:/kb:ro" -- /kb/kernel-work walk / "$walk_rounds" | awk '/^RESULT/ {print $3, $4}')" >> results.txt
    i=$((i + 1))
done

"$py" - results.txt <<'EOF'
import statistics, sys
from collections import defaultdict
wall, cpu = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    c, w, ns, cns = line.split()
    wall[(c, w)].append(int(ns))
    cpu[(c, w)].append(int(cns))
for title, r in (("elapsed", wall), ("CPU time (user+sys)", cpu)):
    med = {k: statistics.median(v) for k, v in r.items()}
    print("%s, median ms (ratio to the host):" % title)
    print("  %-8s %10s %24s %24s" % ("workload", "host", "azl-shell, full policy", "azl-shell, --kernel host"))
    for w in ("walk", "spawn", "getpid", "uname"):
        h, p, k = med[("host", w)], med[("policy", w)], med[("kernel-host", w)]
        print("  %-8s %10.1f %15.1f (%6.3f) %15.1f (%6.3f)" % (w, h / 1e6, p / 1e6, p / h, k / 1e6, k / h))
    if title == "elapsed":
        n_uname = 20000
        print("  uname round trip: host %.2f us, notified %.2f us per call" % (med[("host", "uname")] / n_uname / 1e3, med[("policy", "uname")] / n_uname / 1e3))
        print("  walk through the overlay root instead of a bind: %.1f ms (%.2f x host)" % (med[("policy", "walk-overlay")] / 1e6, med[("policy", "walk-overlay")] / med[("host", "walk")]))
print("(%d interleaved rounds; goal: walk and spawn <= 1.02 with the full policy)" % len(wall[("host", "walk")]))
EOF

echo "azl-shell run -- /bin/true start-up (hyperfine):"
# --prepare pairs with the commands in order: only the cold case removes the cache first.
hyperfine -N --style basic --warmup 5 --runs "${RUNS_STARTUP:-40}" --export-json startup.json \
    --prepare true --prepare "rm -rf $work/cache/azl-shell/seccomp" --prepare true \
    -n "warm seccomp cache" -n "cold seccomp cache" -n "kernel host" \
    "$azl run --rootfs $work/alpine --kernel azurelinux-3.0 -- /bin/true" \
    "$azl run --rootfs $work/alpine --kernel azurelinux-3.0 -- /bin/true" \
    "$azl run --rootfs $work/alpine --kernel host -- /bin/true" >/dev/null 2>hyperfine.err || { cat hyperfine.err >&2; exit 1; }
"$py" - startup.json <<'EOF'
import json, sys
for x in json.load(open(sys.argv[1]))["results"]:
    print("  %-20s median %7.2f ms  min %7.2f ms" % (x["command"], x["median"] * 1000, x["min"] * 1000))
EOF
