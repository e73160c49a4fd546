#!/bin/sh
# Install azl-shell from a build, or remove exactly what an install put there.
#
#   scripts/install.sh [--prefix DIR] [--from BUILD_DIR] [--strip]     (default prefix /usr/local)
#   scripts/install.sh [--prefix DIR] --uninstall
#
# DESTDIR (for packagers) is put before every path written; the programs still look for each
# other relative to themselves, so a staged tree works wherever it lands.
#
# Layout (what azl-shell looks for: Sources/SandboxLaunch/Launcher.swift):
#   PREFIX/bin/azl-shell                          the front end users run
#   PREFIX/libexec/azl-shell/azl-shell-cli        every verb
#   PREFIX/libexec/azl-shell/azl-shell-sandbox    the sandbox helper
#   PREFIX/share/bash-completion/completions/azl-shell, PREFIX/share/zsh/site-functions/_azl-shell,
#   PREFIX/share/fish/vendor_completions.d/azl-shell.fish
#   PREFIX/share/man/man1/azl-shell.1
#   PREFIX/share/azl-shell/shell-profiles/        what interactive shells in a sandbox source
#   PREFIX/share/azl-shell/installed-files        the list --uninstall removes (files, then the
#                                                 folders this install created, deepest first)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
from=
strip=
uninstall=
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        --from) from=${2:?--from needs a directory}; shift 2 ;;
        --from=*) from=${1#--from=}; shift ;;
        --strip) strip=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;; esac
dest=${DESTDIR:-}
list_rel=share/azl-shell/installed-files
list="$dest$prefix/$list_rel"

if [ -n "$uninstall" ]; then
    [ -f "$list" ] || { echo "install.sh: nothing to uninstall: no $list" >&2; exit 1; }
    # Files first, then the folders the install made (listed deepest first), if empty.
    while IFS= read -r entry; do
        case $entry in
            dir\ *) rmdir "$dest${entry#dir }" 2>/dev/null || true ;;
            file\ *) rm -f "$dest${entry#file }" ;;
        esac
    done < "$list"
    echo "removed azl-shell from $dest$prefix"
    exit 0
fi

if [ -z "$from" ]; then
    for d in "$here/.build/release" "$here/.build/debug"; do
        [ -x "$d/azl-shell-cli" ] && { from=$d; break; }
    done
fi
for p in azl-shell azl-shell-cli azl-shell-sandbox; do
    [ -x "${from:-.}/$p" ] || { echo "install.sh: no $p in ${from:-.build/release} (swift build -c release --static-swift-stdlib first, or --from DIR)" >&2; exit 1; }
done
[ -f "$list" ] && { echo "install.sh: azl-shell is already installed in $dest$prefix (--uninstall first)" >&2; exit 1; }

created=""   # folders this install made, deepest last
files=""
mkdir_p() {   # record each folder that did not exist
    case $1 in "$dest$prefix"|"$dest$prefix"/*) ;; *) mkdir -p "$1"; return ;; esac
    [ -d "$1" ] && return
    mkdir_p "$(dirname "$1")"
    mkdir -m 755 "$1"
    created="$created
${1#"$dest"}"
}
put() {   # put MODE SOURCE RELATIVE_TARGET
    target="$dest$prefix/$3"
    mkdir_p "$(dirname "$target")"
    install -m "$1" "$2" "$target"
    files="$files
$prefix/$3"
}

put 755 "$from/azl-shell" bin/azl-shell
put 755 "$from/azl-shell-cli" libexec/azl-shell/azl-shell-cli
put 755 "$from/azl-shell-sandbox" libexec/azl-shell/azl-shell-sandbox
if [ -n "$strip" ]; then
    strip --strip-unneeded "$dest$prefix/bin/azl-shell" "$dest$prefix/libexec/azl-shell/azl-shell-cli" \
        "$dest$prefix/libexec/azl-shell/azl-shell-sandbox"
fi
put 644 "$here/completions/azl-shell.bash" share/bash-completion/completions/azl-shell
put 644 "$here/completions/_azl-shell" share/zsh/site-functions/_azl-shell
put 644 "$here/completions/azl-shell.fish" share/fish/vendor_completions.d/azl-shell.fish
put 644 "$here/man/azl-shell.1" share/man/man1/azl-shell.1
put 644 "$here/shell-profiles/azl-shell.sh" share/azl-shell/shell-profiles/azl-shell.sh
put 644 "$here/shell-profiles/README.md" share/azl-shell/shell-profiles/README.md

{
    printf '%s\n' "$files" | sed '/^$/d; s/^/file /'
    echo "file $prefix/$list_rel"
    printf '%s\n' "$created" | sed '/^$/d' | sort -r | sed 's/^/dir /'
} > "$list"
chmod 644 "$list"
echo "installed azl-shell in $dest$prefix (from $from); remove with: $0 --prefix $prefix --uninstall"
