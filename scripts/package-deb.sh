#!/bin/sh
# Build a .deb of azl-shell from a release build (stripped, installed under /usr by install.sh).
#
#   swift build -c release --static-swift-stdlib && scripts/package-deb.sh [--from BUILD_DIR] [-o OUT_DIR]
#
# Depends: the shared libraries the programs name (readelf NEEDED, mapped to Debian's package
# names; an unknown one is an error, not a silently incomplete package), plus uidmap.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
from=$here/.build/release
out=$here/.build
while [ $# -gt 0 ]; do
    case $1 in
        --from) from=${2:?}; shift 2 ;;
        -o) out=${2:?}; shift 2 ;;
        *) echo "package-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
for tool in dpkg-deb readelf strip; do
    command -v $tool >/dev/null || { echo "package-deb.sh: needs $tool (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done
[ -x "$from/azl-shell-cli" ] || { echo "package-deb.sh: no release build in $from (swift build -c release --static-swift-stdlib)" >&2; exit 1; }

version=$("$from/azl-shell-cli" --version)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR=$stage/root sh "$here/scripts/install.sh" --prefix /usr --from "$from" --strip >/dev/null
rm "$stage/root/usr/share/azl-shell/installed-files"   # dpkg keeps its own list

deps="uidmap libarchive13 libseccomp2 libzstd1"
for lib in $(readelf -d "$stage/root/usr/bin/azl-shell" "$stage/root/usr/libexec/azl-shell/"* 2>/dev/null |
             sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u); do
    case $lib in
        libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|libutil.so.1|ld-linux*) p=libc6 ;;
        libarchive.so.13) p=libarchive13 ;;
        libseccomp.so.2) p=libseccomp2 ;;
        libzstd.so.1) p=libzstd1 ;;
        libnettle.so.8) p=libnettle8 ;;
        libz.so.1) p=zlib1g ;;
        libstdc++.so.6) p=libstdc++6 ;;
        libgcc_s.so.1) p=libgcc-s1 ;;
        libxml2.so.2) p=libxml2 ;;
        libcurl.so.4) p=libcurl4 ;;
        *) echo "package-deb.sh: no Debian package known for $lib (needed by the programs): add it here" >&2; exit 1 ;;
    esac
    case " $deps " in *" $p "*) ;; *) deps="$deps $p" ;; esac
done

size_kib=$(du -sk "$stage/root" | cut -f1)
mkdir -p "$stage/root/DEBIAN"
cat > "$stage/root/DEBIAN/control" <<EOF
Package: azl-shell
Version: $version
Architecture: $arch
Maintainer: azl-shell developers <azl-shell@localhost>
Installed-Size: $size_kib
Depends: $(echo $deps | sed 's/ /, /g')
Section: admin
Priority: optional
Description: run commands in a distro's userland, rootless and daemonless
 azl-shell keeps distro root filesystems (OCI images or rootfs tarballs) unpacked in a
 content-addressed cache and runs build and test commands inside an unprivileged namespace
 sandbox. "azl-shell doctor" checks that this machine and user can run it.
EOF
mkdir -p "$out"
deb=$out/azl-shell_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage/root" "$deb" >/dev/null
echo "$deb ($(du -k "$deb" | cut -f1) KiB; installed $size_kib KiB)"
