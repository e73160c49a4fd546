# Sourced by the benchmark scripts: outside, copy the build's programs and the script into a
# fresh work folder and run the script again there, as the unprivileged user when run as root
# (AZL_TEST_USER, default azltest), with a clean environment; inside (AZL_BENCH_INNER=1), return.
# Needs: here, runs, warmup, tarball, bench (the script's name: run-bench, env-bench), the
# script's arguments ([BUILD_DIR]).
if [ "${AZL_BENCH_INNER:-}" != 1 ]; then
    build=${1:-}
    if [ -z "$build" ]; then
        if [ -x "$here/.build/release/azl-shell" ]; then build=$here/.build/release; else build=$here/.build/debug; fi
    fi
    [ -x "$build/azl-shell" ] && [ -x "$build/azl-shell-sandbox" ] || {
        echo "$bench: no azl-shell and azl-shell-sandbox in $build (swift build -c release first)" >&2; exit 1; }
    command -v hyperfine >/dev/null || { echo "$bench: hyperfine is required (apt-get install hyperfine)" >&2; exit 1; }
    work=$(mktemp -d "/tmp/azl-$bench-XXXXXX")
    chmod 755 "$work"
    cp "$build/azl-shell" "$build/azl-shell-cli" "$build/azl-shell-sandbox" "$here/bench/as-user.sh" "$work/"
    cp "$here/bench/$bench.sh" "$work/$bench.sh"
    if [ "$(id -u)" = 0 ]; then
        user=${AZL_TEST_USER:-azltest}
        id "$user" >/dev/null 2>&1 || { echo "$bench: as root, the benchmark runs as '$user': useradd -m $user" >&2; exit 1; }
        chown -R "$user" "$work"
        mkdir -p "$work/xdg" && chmod 700 "$work/xdg" && chown "$user" "$work/xdg"
        exec setpriv --reuid="$user" --regid="$user" --init-groups -- env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin XDG_RUNTIME_DIR="$work/xdg" \
            HOME="$(getent passwd "$user" | cut -d: -f6)" USER="$user" LOGNAME="$user" AZL_BENCH_INNER=1 AZL_BENCH_WORK="$work" \
            RUNS="$runs" WARMUP="$warmup" ROOTFS_TAR="$tarball" ${ROUNDS:+ROUNDS="$ROUNDS"} ${PEERS:+PEERS="$PEERS"} ${PEER_RUNS:+PEER_RUNS="$PEER_RUNS"} sh "$work/$bench.sh"
    fi
    AZL_BENCH_INNER=1 AZL_BENCH_WORK=$work RUNS=$runs WARMUP=$warmup ROOTFS_TAR=$tarball exec sh "$work/$bench.sh"
fi
