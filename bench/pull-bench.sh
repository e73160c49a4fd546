#!/usr/bin/env bash
# Pull + unpack of a multi-layer image from a registry on 127.0.0.1: `azl-shell pull` against
# `skopeo copy` + `umoci unpack` (and `podman pull` where rootless podman works), in one run, as
# the same unprivileged user, each from an empty store every time. Prints medians and the
# ratio azl-shell / peer (goal: <= 1.0 against skopeo+umoci), then checks that a second pull
# into the same store downloads no blob.
#
#   bench/pull-bench.sh [BUILD_DIR]      (default: .build/release, else .build/debug)
#
# It starts its own docker-registry on a free 127.0.0.1 port (stopped at the end) and builds
# the image with umoci from the real rootfs tarballs in ../shared/rootfs: Debian 12 as the base
# layer, Alpine x86_64 under /opt/alpine, AlmaLinux 9 micro under /opt/alma, and a small layer
# with a file whiteout, an opaque whiteout and a new file; pushed gzip-compressed with skopeo.
#
# Environment: RUNS (default 5), AZL_TEST_USER (as root the benchmark runs as this user;
# default azltest), SHARED_ROOTFS (default ../shared/rootfs).
# Needs: docker-registry, skopeo, umoci, python3, xz, gzip; podman is optional.
set -euo pipefail
[ -n "${AZL_BENCH_TRACE:-}" ] && { PS4='+ $(date +%T.%N | cut -c1-12) '; set -x; }

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-5}
shared=${SHARED_ROOTFS:-$here/../shared/rootfs}

if [ "${AZL_BENCH_INNER:-}" != 1 ]; then
    build=${1:-}
    if [ -z "$build" ]; then
        if [ -x "$here/.build/release/azl-shell" ]; then build=$here/.build/release; else build=$here/.build/debug; fi
    fi
    [ -x "$build/azl-shell" ] || { echo "pull-bench: no azl-shell in $build (swift build -c release first)" >&2; exit 1; }
    for t in docker-registry skopeo umoci python3 xz gzip; do
        command -v "$t" >/dev/null || { echo "pull-bench: $t is required (apt-get install docker-registry skopeo umoci python3 xz-utils gzip)" >&2; exit 1; }
    done
    shared=$(cd "$shared" && pwd)
    work=$(mktemp -d /tmp/azl-pull-bench-XXXXXX)
    chmod 755 "$work"
    cp "$build/azl-shell" "$build/azl-shell-cli" "$work/"
    cp "$0" "$work/pull-bench.sh"
    if [ "$(id -u)" = 0 ]; then
        user=${AZL_TEST_USER:-azltest}
        id "$user" >/dev/null 2>&1 || { echo "pull-bench: as root, the benchmark runs as '$user': useradd -m $user" >&2; exit 1; }
        chown -R "$user" "$work"
        home=$(getent passwd "$user" | cut -d: -f6)
        [ -d "$home" ] || home=$work
        exec setpriv --reuid="$user" --regid="$user" --init-groups -- env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
            HOME="$home" USER="$user" LOGNAME="$user" AZL_BENCH_INNER=1 AZL_BENCH_WORK="$work" \
            RUNS="$runs" SHARED_ROOTFS="$shared" AZL_BENCH_TRACE="${AZL_BENCH_TRACE:-}" bash "$work/pull-bench.sh"
    fi
    AZL_BENCH_INNER=1 AZL_BENCH_WORK=$work RUNS=$runs SHARED_ROOTFS=$shared exec bash "$work/pull-bench.sh"
fi

work=$AZL_BENCH_WORK
cd "$work"
# The peers look for their credentials in $XDG_RUNTIME_DIR/containers, else /run/containers/UID,
# which a root podman may have made unreadable (REGISTRY_AUTH_FILE would be docker-registry's).
export XDG_RUNTIME_DIR=$work/run
mkdir -m 700 -p "$XDG_RUNTIME_DIR"
registry_pid=
cleanup() {
    set +e
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null; fi
    # podman's store holds files of the user's subordinate ids: remove it inside its namespace.
    if [ -d "$work/podman" ] && command -v podman >/dev/null; then podman unshare rm -rf "$work/podman" 2>/dev/null; fi
    chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"
    [ -d "$work" ] && echo "pull-bench: could not remove $work" >&2
    return 0
}
trap cleanup EXIT
export TMPDIR=$work/tmp
mkdir -p "$TMPDIR"

# --- the registry ---------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > registry.yml <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: azl-pull-bench
EOF
docker-registry serve registry.yml > registry.log 2>&1 &
registry_pid=$!
for _ in $(seq 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    kill -0 "$registry_pid" 2>/dev/null || { echo "pull-bench: docker-registry exited: $(cat registry.log)" >&2; exit 1; }
    sleep 0.05
done
ref=127.0.0.1:$port/bench/multi:1

# --- the image (umoci, from the real tarballs) ----------------------------------------------
echo "building the image from $shared ..."
umoci init --layout oci >/dev/null
umoci new --image oci:bench >/dev/null
umoci config --image oci:bench --os linux --architecture amd64 --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null
xz -dc "$shared/debian-12-bookworm-minbase-slim-amd64.tar.xz" > l1.tar
umoci raw add-layer --image oci:bench l1.tar && rm l1.tar
# A rootfs under a prefix: unpack it as this user, repack owned by root.
prefixed() {  # TARBALL DIR-IN-IMAGE OUT.tar
    rm -rf stage && mkdir -p "stage/$2"
    tar -xf "$1" -C "stage/$2" --no-same-owner --no-same-permissions --exclude='./dev/*' --exclude='dev/*' 2>/dev/null || true
    chmod -R u+rwX stage
    tar --owner=0 --group=0 --numeric-owner -C stage -cf "$3" .
    rm -rf stage
}
prefixed "$shared/alpine-minirootfs-3.20.3-x86_64.tar.gz" opt/alpine l2.tar
umoci raw add-layer --image oci:bench l2.tar && rm l2.tar
prefixed "$shared/almalinux-9-docker-aarch64-micro.tar.xz" opt/alma l3.tar
umoci raw add-layer --image oci:bench l3.tar && rm l3.tar
mkdir -p l4/etc/apt l4/opt/alpine/etc
: > l4/etc/.wh.motd
: > l4/etc/apt/.wh..wh..opq
echo bench > l4/etc/apt/bench-marker
echo bench > l4/opt/alpine/etc/bench-marker
tar --owner=0 --group=0 --numeric-owner -C l4 -cf l4.tar etc opt
umoci raw add-layer --image oci:bench l4.tar && rm -rf l4 l4.tar
skopeo copy -q --dest-tls-verify=false oci:oci:bench "docker://$ref"
layers_info=$(python3 - "$work/oci" <<'EOF'
import json, sys, os
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs/sha256", idx["manifests"][0]["digest"][7:])))
sizes = [l["size"] for l in m["layers"]]
print(f"{len(sizes)} layers, {sum(sizes) / 1e6:.1f} MB compressed ({', '.join(f'{s / 1e6:.1f}' for s in sizes)} MB)")
EOF
)
rm -rf oci
echo "image: $ref, $layers_info"

# --- the peers ------------------------------------------------------------------------------
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
count() { find "$1" | wc -l; }

# Each prints "WALL CPU" in seconds (CPU: user + system of the process and its children,
# which says more than wall time when other work shares the machine).
timed() {  # COMMAND... ; appends its CPU seconds to $work/cpu
    /usr/bin/time -f '%U %S' -o "$work/rusage" "$@"
    awk '{print $1 + $2}' "$work/rusage" >> "$work/cpu"
}
azl_once() {
    rm -rf state; : > "$work/cpu"
    local t0; t0=$(now)
    timed env AZL_SHELL_ROOT="$work/state" ./azl-shell pull -q "$ref"
    echo "$(echo "$(now) - $t0" | bc -l) $(awk '{s += $1} END {print s}' "$work/cpu")"
}
skopeo_umoci_once() {
    rm -rf o2 bundle; : > "$work/cpu"
    local t0; t0=$(now)
    timed skopeo copy -q --src-tls-verify=false "docker://$ref" oci:o2:1
    timed umoci unpack --rootless --image o2:1 bundle >/dev/null
    echo "$(echo "$(now) - $t0" | bc -l) $(awk '{s += $1} END {print s}' "$work/cpu")"
}
podman_args=()
podman_why=""
if command -v podman >/dev/null; then
    for rt in runc crun; do
        args=(--root "$work/podman/root" --runroot "$work/podman/run" --cgroup-manager cgroupfs --runtime "$rt")
        if out=$(podman "${args[@]}" pull -q --tls-verify=false "$ref" 2>&1); then podman_args=("${args[@]}"); break; fi
        podman_why="podman --runtime $rt pull failed: $(echo "$out" | tail -1)"
        podman unshare rm -rf "$work/podman" 2>/dev/null || rm -rf "$work/podman" 2>/dev/null || true
    done
    if [ ${#podman_args[@]} -gt 0 ]; then
        podman_why=""
        podman_storage=$(podman "${podman_args[@]}" info --format '{{.Store.GraphDriverName}}' 2>/dev/null || echo "?")
    fi
else
    podman_why="podman is not installed"
fi
podman_once() {
    podman unshare rm -rf "$work/podman" 2>/dev/null || true
    : > "$work/cpu"
    local t0; t0=$(now)
    timed podman "${podman_args[@]}" pull -q --tls-verify=false "$ref" >/dev/null
    echo "$(echo "$(now) - $t0" | bc -l) $(awk '{s += $1} END {print s}' "$work/cpu")"
}

# Warm the page cache and the registry, and check the trees agree.
azl_once >/dev/null
skopeo_umoci_once >/dev/null
tree=$(ls -d state/trees/*/rootfs)
[ "$(count "$tree")" = "$(count bundle/rootfs)" ] || echo "warning: azl-shell unpacked $(count "$tree") paths, umoci $(count bundle/rootfs)" >&2
[ -e "$tree/etc/motd" ] && echo "warning: the whiteout of /etc/motd was not applied" >&2

a=(); s=(); p=()
for i in $(seq "$runs"); do
    # Alternate the order so no side always follows the other's page-cache churn.
    if [ $((i % 2)) = 1 ]; then
        a+=("$(azl_once)"); s+=("$(skopeo_umoci_once)")
    else
        s+=("$(skopeo_umoci_once)"); a+=("$(azl_once)")
    fi
    [ ${#podman_args[@]} -gt 0 ] && p+=("$(podman_once)")
done
col() { local n=$1; shift; printf '%s\n' "$@" | awk -v n="$n" '{print $n}'; }
ma=$(col 1 "${a[@]}" | median); ms=$(col 1 "${s[@]}" | median)
ca=$(col 2 "${a[@]}" | median); cs=$(col 2 "${s[@]}" | median)

# A second pull into the same store: nothing downloaded, nothing unpacked.
t0=$(now)
AZL_SHELL_ROOT=$work/state ./azl-shell pull --json "$ref" > second.jsonl
second=$(echo "$(now) - $t0" | bc -l)
downloaded=$(grep -c '"cached":false' second.jsonl || true)
cached=$(grep -c '"cached":true' second.jsonl || true)
unpacked=$(grep -c '"event":"unpacked"' second.jsonl || true)

echo
printf '%-28s %9s %9s %9s   %s\n' "pull + unpack ($runs runs)" "median" "min" "CPU" "azl-shell / peer (wall, CPU)"
printf '%-28s %8.3fs %8.3fs %8.3fs\n' "azl-shell pull" "$ma" "$(col 1 "${a[@]}" | sort -n | head -1)" "$ca"
printf '%-28s %8.3fs %8.3fs %8.3fs   %.2f  %.2f\n' "skopeo copy + umoci unpack" "$ms" "$(col 1 "${s[@]}" | sort -n | head -1)" "$cs" \
    "$(echo "$ma / $ms" | bc -l)" "$(echo "$ca / $cs" | bc -l)"
if [ ${#podman_args[@]} -gt 0 ]; then
    mp=$(col 1 "${p[@]}" | median); cp_=$(col 2 "${p[@]}" | median)
    printf '%-28s %8.3fs %8.3fs %8.3fs   %.2f  %.2f\n' "podman pull ($podman_storage)" "$mp" "$(col 1 "${p[@]}" | sort -n | head -1)" "$cp_" \
        "$(echo "$ma / $mp" | bc -l)" "$(echo "$ca / $cp_" | bc -l)"
else
    echo "podman pull: not measured: $podman_why"
fi
printf 'second pull of the same image: %.3fs, %s blobs downloaded, %s already stored, %s layers unpacked\n' \
    "$second" "$downloaded" "$cached" "$unpacked"
echo "CPU: user + system seconds (median). goal: ratio <= 1.0 against skopeo+umoci; a second pull downloads no blob"
[ "$downloaded" = 0 ] && [ "$unpacked" = 0 ] || { echo "pull-bench: the second pull downloaded or unpacked something" >&2; exit 1; }
