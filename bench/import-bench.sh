#!/usr/bin/env bash
# Import speed and memory against `tar -xf` on the same tarball, in one run, as the same user.
# Prints medians of N runs and the ratio (goal: ratio <= 1.0; peak RSS < 64 MiB).
#   bench/import-bench.sh [TARBALL ...]     (default: the real rootfs tarballs in ../shared/rootfs,
#                                            and a ~500 MB one made from them; LARGE=0 skips it;
#                                            BUILD_DIR=DIR: the release build to use)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
bin=${BUILD_DIR:-$(swift build -c release --show-bin-path)}
[ -x "$bin/azl-shell" ] || { [ -z "${BUILD_DIR:-}" ] && swift build -c release >/dev/null; } || { echo "import-bench: no azl-shell in $bin" >&2; exit 1; }
work=$(mktemp -d /tmp/azl-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$bin/azl-shell" "$bin/azl-shell-cli" "$work/"
chmod -R a+rX "$work"
as=()
if [ "$(id -u)" -eq 0 ]; then
  user=${AZL_TEST_USER:-azltest}; chown -R "$user:" "$work"
  as=(setpriv --reuid="$user" --regid="$user" --init-groups)
fi
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tarballs=("$@")
if [ ${#tarballs[@]} -eq 0 ]; then
  tarballs=(../shared/rootfs/debian-12-bookworm-minbase-slim-amd64.tar.xz ../shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz ../shared/rootfs/almalinux-9-docker-aarch64-micro.tar.xz)
  # The memory goal is stated for a 500 MB rootfs: the Debian tree five times over plus two
  # 100 MB files (large files must stream), as one zstd tarball.
  if [ "${LARGE:-1}" = 1 ]; then
    big=$work/large-rootfs
    mkdir -p "$big/src"
    for i in 1 2 3 4 5; do mkdir -p "$big/src/copy$i"; tar -xf ../shared/rootfs/debian-12-bookworm-minbase-slim-amd64.tar.xz -C "$big/src/copy$i" --exclude='./dev/*' 2>/dev/null || true; done
    head -c 100M /dev/urandom > "$big/src/blob1"; head -c 100M /dev/urandom > "$big/src/blob2"
    tar -C "$big/src" -cf - . | zstd -q -T0 -3 -o "$big/large-500M.tar.zst"
    rm -rf "$big/src"
    tarballs+=("$big/large-500M.tar.zst")
  fi
fi
printf '%-48s %10s %10s %7s %12s %12s\n' tarball "azl(s)" "tar(s)" ratio "azl RSS" "tar RSS"
for t in "${tarballs[@]}"; do
  cp "$t" "$work/in"; chmod a+r "$work/in"; cat "$work/in" >/dev/null
  a=(); b=(); ar=(); br=()
  for i in $(seq "$runs"); do
    # Alternate the order so neither side always gets the warmer cache.
    for side in azl tar; do
      rm -rf "$work/state" "$work/x"; "${as[@]}" mkdir -p "$work/x"
      if [ "$side" = azl ]; then
        out=$( { /usr/bin/time -f '%e %M' "${as[@]}" env AZL_SHELL_ROOT="$work/state" "$work/azl-shell" import "$work/in" --name b:1 -q >/dev/null; } 2>&1 | tail -1)
        a+=("${out% *}"); ar+=("${out#* }")
      else
        out=$( { /usr/bin/time -f '%e %M' "${as[@]}" tar -xf "$work/in" -C "$work/x"; } 2>&1 | tail -1)
        b+=("${out% *}"); br+=("${out#* }")
      fi
    done
  done
  ma=$(printf '%s\n' "${a[@]}" | median); mb=$(printf '%s\n' "${b[@]}" | median)
  ra=$(printf '%s\n' "${ar[@]}" | sort -n | tail -1); rb=$(printf '%s\n' "${br[@]}" | sort -n | tail -1)
  printf '%-48s %10.3f %10.3f %7.2f %9d KB %9d KB\n' "$(basename "$t")" "$ma" "$mb" "$(echo "$ma / $mb" | bc -l)" "$ra" "$rb"
done
