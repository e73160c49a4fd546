#!/bin/sh
# Regenerate completions/ from the CLI's own definition (swift-argument-parser writes them).
# Run after changing any command or option; Tests/CLITests/CompletionsTests.swift fails when
# the checked-in files and the binary disagree.
#
#   scripts/gen-completions.sh [PATH/TO/azl-shell]     (default: .build/debug/azl-shell)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$here/.build/debug/azl-shell}
[ -x "$bin" ] || { echo "gen-completions: no $bin (swift build first)" >&2; exit 1; }
"$bin" --generate-completion-script bash > "$here/completions/azl-shell.bash"
"$bin" --generate-completion-script zsh  > "$here/completions/_azl-shell"
"$bin" --generate-completion-script fish > "$here/completions/azl-shell.fish"
echo "wrote completions/azl-shell.bash, completions/_azl-shell, completions/azl-shell.fish"
