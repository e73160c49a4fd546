#!/bin/sh
# Overhead of the kernel policy (seccomp filter + uname notification) on syscall-heavy work:
# the same workloads with the full azurelinux-3.0 policy applied (Tests/KernelTests/Fixtures/
# apply_and_exec.c, the C half of Sources/azl-shell-sandbox/seccomp_notify.c) and without it,
# interleaved in one hyperfine run. Prints medians and the ratio (goal <= 1.02).
#
#   bench/kernel-bench.sh
#
# Workloads: (1) `find /usr -xdev -printf` (one newfstatat per file, ~getdents), (2) building a
# small C project (20 files, gcc -O0: fork/exec/mmap/openat heavy), (3) 200k uname() calls
# through the supervisor (reported per call; this one is meant to be slow, it shows the cost of
# the notification round trip).
#
# The filters come from KernelPolicy via the test `KernelFilterExport` (AZL_KERNEL_EXPORT_DIR),
# built with --scratch-path $SCRATCH (default .build-kernel).
# Environment: RUNS (default 10), WARMUP (default 2), AZL_TEST_USER (as root, runs as this user).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-10}
warmup=${WARMUP:-2}
scratch=${SCRATCH:-.build-kernel}
command -v hyperfine >/dev/null || { echo "kernel-bench: hyperfine is required" >&2; exit 1; }

work=$(mktemp -d /tmp/azl-kbench-XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$here" && AZL_KERNEL_EXPORT_DIR="$work/filters" swift test --scratch-path "$scratch" \
    --filter KernelFilterExport >"$work/export.log" 2>&1) || { cat "$work/export.log" >&2; exit 1; }
fx=$here/Tests/KernelTests/Fixtures
cc -O2 -D_GNU_SOURCE -I "$here/Sources/azl-shell-sandbox" -o "$work/apply_and_exec" \
    "$fx/apply_and_exec.c" "$here/Sources/azl-shell-sandbox/seccomp_notify.c"
cc -O2 -D_GNU_SOURCE -o "$work/probe" "$fx/probe.c" -lpthread

# A small C project: 20 translation units and a link.
mkdir -p "$work/proj"
i=0
while [ $i -lt 20 ]; do
    printf '#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\nint f%d(int x) { char b[64]; snprintf(b, sizeof b, "%%d", x); return (int)strlen(b) + %d; }\n' $i $i > "$work/proj/f$i.c"
    i=$((i + 1))
done
{ i=0; while [ $i -lt 20 ]; do echo "int f$i(int);"; i=$((i + 1)); done
  echo 'int main(void) { int s = 0;'; i=0; while [ $i -lt 20 ]; do echo "s += f$i($i);"; i=$((i + 1)); done
  echo 'return s == 0; }'; } > "$work/proj/main.c"
cat > "$work/proj/build.sh" <<'EOS'
#!/bin/sh
set -e
cd "$(dirname "$0")"
rm -rf out && mkdir out
for f in *.c; do cc -O0 -c "$f" -o "out/${f%.c}.o"; done
cc -o out/prog out/*.o
./out/prog || true
EOS
chmod -R a+rX "$work"
chmod a+rwx "$work/proj"

rel=$(sed -n 1p "$work/filters/azurelinux-3.0.uts")
ver=$(sed -n 2p "$work/filters/azurelinux-3.0.uts")
as_user=""
if [ "$(id -u)" = 0 ]; then
    user=${AZL_TEST_USER:-azltest}
    as_user="setpriv --reuid=$user --regid=$user --clear-groups --"
    chown -R "$user" "$work/proj"
fi
policy="$as_user $work/apply_and_exec --release '$rel' --version '$ver' $work/filters/azurelinux-3.0.bpf"
plain="$as_user $work/apply_and_exec none"

hyperfine -N --runs "$runs" --warmup "$warmup" --export-json "$work/h.json" \
    -n "find, no policy" "$plain /usr/bin/find /usr -xdev -printf '%s %m %u\\n'" \
    -n "find, azurelinux-3.0 policy" "$policy /usr/bin/find /usr -xdev -printf '%s %m %u\\n'" \
    -n "cc project, no policy" "$plain /bin/sh $work/proj/build.sh" \
    -n "cc project, azurelinux-3.0 policy" "$policy /bin/sh $work/proj/build.sh" >"$work/hyperfine.log" 2>&1 \
    || { cat "$work/hyperfine.log" >&2; exit 1; }

python3 - "$work/h.json" <<'EOP'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
def med(n): return r[n]["median"]
print("%-36s %10s %10s" % ("workload", "median", "stddev"))
for n, x in r.items():
    print("%-36s %8.1fms %8.1fms" % (n, x["median"] * 1000, x["stddev"] * 1000))
for w in ("find", "cc project"):
    a, b = med(w + ", no policy"), med(w + ", azurelinux-3.0 policy")
    print("%-36s ratio %.3f (goal <= 1.02)" % (w, b / a))
EOP
echo "uname() round trip through the supervisor:"
sh -c "$as_user $work/probe uname-loop 200000" | sed 's/^/  without filter: /' | grep ns_per
sh -c "$policy $work/probe uname-loop 200000" | sed 's/^/  notified:       /' | grep ns_per
