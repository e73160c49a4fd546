#!/bin/sh
# Setup layers on a real workload (issue 13): a Debian 12 project whose setup apt-installs a
# toolchain (gcc, make, libc6-dev) and whose command builds and tests a small C project.
# Prints, in one run: the first `run` (cold: setup runs), the second (a new process, warm cache),
# the time to the command's start inside the project vs a warm plain `run`, and podman
# (`podman build` of the equivalent Containerfile with its layer cache, then `podman run`) when
# it is installed and works here.
#
#   bench/setup-bench.sh [BUILD_DIR]      (default: .build/release, else .build/debug)
#
# Needs the network (the Debian mirror). Environment: AZL_TEST_USER (as root, the benchmark runs
# as this unprivileged user; default azltest), ROOTFS_TAR (default: the shared Debian 12 tarball),
# RUNS (hyperfine runs of the start-up comparison, default 100).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
tarball=${ROOTFS_TAR:-$here/../shared/rootfs/debian-12-bookworm-minbase-slim-amd64.tar.xz}
runs=${RUNS:-100}

warmup=${WARMUP:-20}
bench=setup-bench
# Inside, the script runs from the work folder, where as-user.sh was copied too.
. "$(dirname "$0")/as-user.sh"

work=$AZL_BENCH_WORK
cd "$work"
# Podman's storage and config in the work folder, not the user's own. What steps left owned by
# subordinate ids (apt's) goes with `podman unshare`, in a namespace of the same map; what podman
# itself writes meanwhile, as the user.
export HOME=$work
trap 'rc=$?; set +e; cd /; chmod -R u+w "$work" 2>/dev/null; podman unshare rm -rf "$work" 2>/dev/null; rm -rf "$work" 2>/dev/null; exit $rc' EXIT
export AZL_SHELL_ROOT=$work/state
azl=$work/azl-shell
"$azl" import --name debian:12 "$tarball" -q

# The project: a setup step that installs the toolchain, and a small C project with a test.
mkdir -p proj/src
cat > proj/azl-shell.toml <<'TOML'
image = "debian:12"
env = { DEBIAN_FRONTEND = "noninteractive" }
setup = [
  "apt-get update -q && apt-get install -y -q --no-install-recommends gcc make libc6-dev && rm -rf /var/lib/apt/lists/*",
]
TOML
cat > proj/src/words.c <<'C'
#include <ctype.h>
#include <stdio.h>
int count_words(const char *s) { int n = 0, in = 0; for (; *s; s++) { if (isspace((unsigned char)*s)) in = 0; else if (!in) { in = 1; n++; } } return n; }
C
cat > proj/src/main.c <<'C'
#include <stdio.h>
int count_words(const char *s);
int main(int argc, char **argv) { char buf[4096]; int n = 0; while (fgets(buf, sizeof buf, stdin)) n += count_words(buf); printf("%d\n", n); return argc > 5 ? 1 : 0; }
C
cat > proj/Makefile <<'MK'
CFLAGS = -O2 -Wall
wc2: src/main.o src/words.o
	$(CC) -o $@ $^
check: wc2
	test "$$(printf 'a b  c\nd\n' | ./wc2)" = 4 && echo PASS
clean:
	rm -f wc2 src/*.o
.PHONY: check clean
MK
cd proj
now() { date +%s.%N; }
t0=$(now); "$azl" run -- sh -c 'make -s clean check' >"$work/first.log" 2>&1 || { cat "$work/first.log" >&2; exit 1; }; t1=$(now)
"$azl" run -- sh -c 'make -s clean check' >"$work/second.log" 2>&1 || { cat "$work/second.log" >&2; exit 1; }; t2=$(now)
first=$(echo "$t1 - $t0" | bc); second=$(echo "$t2 - $t1" | bc)
printf 'first run (setup + build + test):  %6.2f s\n' "$first"
printf 'second run (warm layers):          %6.2f s   ratio %.3f (goal <= 0.25)\n' "$second" "$(echo "$second / $first" | bc -l)"

# Time to the command's start: /bin/true inside the project (layers, lock, project file)
# against a warm plain run of the image, interleaved by hyperfine.
"$azl" run --image debian:12 -- /bin/true && "$azl" run -- /bin/true
hyperfine -N --style basic --warmup "$warmup" --runs "$runs" --export-json "$work/start.json" \
    "$azl run -- /bin/true" "$azl run --image debian:12 -- /bin/true" >/dev/null
python3 - "$work/start.json" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"]
p, plain = (statistics.median(x["times"]) * 1000 for x in r)
print(f"to the command's start: in the project {p:.2f} ms, plain warm run {plain:.2f} ms, difference {p - plain:+.2f} ms (goal <= +5 ms)")
PY

# podman: the same tarball as its base image, the same step as a RUN (its layer cache), then
# `podman build` (all cached) + `podman run`, as a CI job without a project file would do.
pod="podman --runtime runc --cgroup-manager cgroupfs"
# Its native rootless overlay driver, as azl-shell's overlay (podman 4.3 falls back to vfs, which
# copies the whole image for every build step and container).
mkdir -p "$HOME/.config/containers"
printf '[storage]\ndriver = "overlay"\n' > "$HOME/.config/containers/storage.conf"
# The base image built from the tarball by a Containerfile of its own: an imported one has no
# history, and buildah then never finds a cached layer above it.
mkdir -p "$work/base" && cp "$tarball" "$work/base/rootfs.tar.xz"
printf 'FROM scratch\nADD rootfs.tar.xz /\n' > "$work/base/Containerfile"
if command -v podman >/dev/null && $pod build -q -t localhost/azl-setup-bench-base "$work/base" >/dev/null 2>&1; then
    cat > Containerfile <<'CF'
FROM localhost/azl-setup-bench-base
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc make libc6-dev && rm -rf /var/lib/apt/lists/*
CF
    t0=$(now); $pod build -q --network host -t localhost/azl-setup-bench . >/dev/null; t1=$(now)
    printf 'podman build, cold (the same step):  %6.2f s\n' "$(echo "$t1 - $t0" | bc)"
    cached=$($pod build --network host -t localhost/azl-setup-bench . 2>&1 | grep -c "Using cache" || true)
    echo "podman build again: $cached of 2 steps from its cache"
    hyperfine -N --style basic --warmup 2 --runs 10 --export-json "$work/podman.json" \
        "$pod build -q --network host -t localhost/azl-setup-bench ." \
        "$pod run --rm --network host localhost/azl-setup-bench /bin/true" "$azl run -- /bin/true" >/dev/null
    python3 - "$work/podman.json" <<'PY'
import json, statistics, sys
b, r, a = (statistics.median(x["times"]) * 1000 for x in json.load(open(sys.argv[1]))["results"])
print(f"to the command's start, warm: podman build (cached) {b:.0f} ms + podman run {r:.0f} ms = {b + r:.0f} ms; azl-shell {a:.1f} ms: {(b + r) / a:.0f}x (goal >= 10x)")
PY
    $pod rmi -f localhost/azl-setup-bench localhost/azl-setup-bench-base >/dev/null 2>&1 || true
else
    echo "podman: not installed or not working here (scripts/setup.sh --bench installs it): no peer figures"
fi
