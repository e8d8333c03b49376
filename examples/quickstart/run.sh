#!/usr/bin/env bash
# Quickstart: version a small dataset with dvx, change it, and travel between versions.
# usage: examples/quickstart/run.sh [PATH-TO-DVX]   (default: target/debug/dvx, then `dvx` on PATH)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dvx=${1:-$here/../../target/debug/dvx}
[ -x "$dvx" ] || dvx=$(command -v dvx)
dvx=$(cd "$(dirname "$dvx")" && pwd)/$(basename "$dvx")
work=$(mktemp -d "${TMPDIR:-/tmp}/dvx-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$here/data" "$work/data"
cd "$work"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

git init -q -b main . && git config user.email you@example.com && git config user.name You
step "$dvx" init
step "$dvx" add data/measurements.csv data/images -m "first measurements"
step cat dvx.lock
git add -A && git commit -qm "track data with dvx"

echo "north,101,21.50,0.0" >> data/measurements.csv
rm data/images/tile_4.pgm
step "$dvx" status
step "$dvx" commit -m "one more day, drop a bad tile"
step "$dvx" log
step "$dvx" diff HEAD~1 HEAD
step "$dvx" checkout HEAD~1
test -f data/images/tile_4.pgm && echo "tile_4.pgm is back"
step "$dvx" checkout main
step "$dvx" fsck
echo; echo "quickstart finished: the data went back and forth between two versions"
