#!/usr/bin/env bash
# Everything a fresh Debian 12 / Ubuntu machine needs to build, test and benchmark azl-shell.
# Run as root (or with sudo). Idempotent.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then exec sudo -E bash "$0" "$@"; fi
export DEBIAN_FRONTEND=noninteractive
packages=(
  pkg-config libarchive-dev libzstd-dev libseccomp-dev libcap-dev nettle-dev   # C libraries we link
  musl-dev                                   # the front end azl-shell links with musl (Package.swift says why)
  uidmap                                     # newuidmap/newgidmap: full subuid range maps
  xz-utils zstd gzip tar findutils procps iproute2 util-linux rsync  # tests inspect with these
  bsdutils                                   # script(1): the terminal tests run azl-shell on a pty
  docker-registry skopeo umoci apache2-utils # a real OCI registry, image tools, htpasswd
  python3 curl                               # small test proxies; the registry fixture talks to the registry with curl
  gcc libc6-dev                              # tests compile small static C probes (syscalls, TIOCSTI)
  rpm                                        # pkgtest's tests build an .rpm with rpmbuild (dpkg-deb comes with dpkg)
  qemu-user-static                           # foreign-arch images (arm64 on x86_64): the interpreter run registers
  bubblewrap charliecloud-runtime hyperfine bc time   # benchmark peers (bwrap, ch-run), timer, arithmetic
)
# `setup.sh --bench` adds the heavier peers only the benchmarks use.
if [ "${1:-}" = "--bench" ]; then packages+=(podman runc distrobox); fi
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The unprivileged user the rootless tests run as, with a subordinate id range.
user=${AZL_TEST_USER:-azltest}
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
grep -q "^$user:" /etc/subuid 2>/dev/null || echo "$user:231072:65536" >> /etc/subuid
grep -q "^$user:" /etc/subgid 2>/dev/null || echo "$user:231072:65536" >> /etc/subgid
echo "setup: packages present, test user '$user' ready"
