#!/usr/bin/env bash
# The main job, end to end: import a real distro rootfs and run a command in it, rootless.
# As root it runs as the unprivileged test user (azl-shell is a tool for ordinary users).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(swift build -c release --show-bin-path)
rootfs=${1:-../shared/rootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz}
work=$(mktemp -d /tmp/azl-demo-XXXXXX)
cp "$bin/azl-shell" "$bin/azl-shell-cli" "$bin/azl-shell-sandbox" "$work/"
cp "$rootfs" "$work/rootfs.tar"
chmod -R a+rX "$work"
as=()
if [ "$(id -u)" -eq 0 ]; then
  user=${AZL_TEST_USER:-azltest}
  chown -R "$user:" "$work"
  as=(setpriv --reuid="$user" --regid="$user" --init-groups env HOME="$work")
fi
cd "$work"
"${as[@]}" env AZL_SHELL_ROOT="$work/state" ./azl-shell import rootfs.tar --name demo:1
"${as[@]}" env AZL_SHELL_ROOT="$work/state" ./azl-shell images
"${as[@]}" env AZL_SHELL_ROOT="$work/state" ./azl-shell run --image demo:1 -- sh -c '. /etc/os-release; echo "inside: $PRETTY_NAME, uid $(id -u), kernel $(uname -r)"'
rm -rf "$work"
