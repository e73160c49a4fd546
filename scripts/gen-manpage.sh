#!/bin/sh
# Regenerate man/azl-shell.1 from the CLI's own definition, with swift-argument-parser's
# generate-manual plugin (works offline: the plugin is in the resolved dependencies).
# Run after changing any command or option; Tests/CLITests/InstallTests.swift fails when a verb
# or option of the binary is missing from the page.
#
#   scripts/gen-manpage.sh
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$here"
date=$(git log -1 --format=%cs 2>/dev/null || date +%F)
swift package --disable-sandbox --allow-writing-to-directory "$out" generate-manual \
    --configuration debug --date "$date" --authors "the azl-shell authors" -o "$out" >&2
mkdir -p "$here/man"
cp "$out/azl-shell.1" "$here/man/azl-shell.1"
echo "wrote man/azl-shell.1"
