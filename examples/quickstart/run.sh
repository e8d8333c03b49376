#!/usr/bin/env bash
# Quickstart: version a small dataset, run a pipeline that re-runs only what changed, ask where
# an output came from, and share the project through a remote.
# usage: examples/quickstart/run.sh [PATH-TO-DVX]   (default: $CARGO_TARGET_DIR or target, /debug/dvx; then `dvx` on PATH)
# Exits non-zero as soon as a step does not give the expected result.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dvx=${1:-${CARGO_TARGET_DIR:-$here/../../target}/debug/dvx}
[ -x "$dvx" ] || dvx=$(command -v dvx)
dvx=$(cd "$(dirname "$dvx")" && pwd)/$(basename "$dvx")
work=$(mktemp -d "${TMPDIR:-/tmp}/dvx-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/project"
cp -r "$here/data" "$here/src" "$here/dvx.yaml" "$work/project/"
cd "$work/project"
show() { for a; do case $a in "$dvx") printf 'dvx ' ;; *[[:space:]]*) printf "'%s' " "$a" ;; *) printf '%s ' "$a" ;; esac; done; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$(show "$@")"; "$@"; }
expect() { if eval "$2"; then echo "ok: $1"; else echo "quickstart: FAILED: $1" >&2; exit 1; fi; }
# From `dvx run --json` output: a stage's state, and how many of its datums executed.
state() { awk -v s="\"$1\"" '$0 ~ "\"stage\": " s { on = 1 } on && $1 == "\"state\":" { gsub(/[",]/, "", $2); print $2; exit }' "$2"; }
executed() { awk -v s="\"$1\"" '$0 ~ "\"stage\": " s { on = 1 } on && $1 == "\"executed\":" { gsub(/,/, "", $2); print $2; exit }' "$2"; }

git init -q -b main . && git config user.email you@example.com && git config user.name You

# 1. Version data.
step "$dvx" init
step "$dvx" add data/measurements.csv data/images -m "first measurements"
git add -A && git commit -qm "track data with dvx"
echo "north,101,21.50,0.0" >> data/measurements.csv
rm data/images/tile_4.pgm
step "$dvx" status
step "$dvx" commit -m "one more day, drop a bad tile"
step "$dvx" log
step "$dvx" checkout HEAD~1
expect "checkout brought tile_4.pgm back" 'test -f data/images/tile_4.pgm'
step "$dvx" checkout main
expect "and main took it away again" 'test ! -e data/images/tile_4.pgm'

# 2. Run a pipeline: one execution per tile, then a report (see dvx.yaml).
step cat dvx.yaml
step "$dvx" run
step cat report.txt
cp data/images/tile_0.pgm data/images/tile_2.pgm
step "$dvx" status
step "$dvx" commit -m "tile_2 taken again"
step "$dvx" run --json > "$work/run2.json"
expect "after changing one tile, only its datum ran again" '[ "$(executed tile_stats "$work/run2.json")" = 1 ]'
expect "and the report followed" '[ "$(state report "$work/run2.json")" = executed ]'
step "$dvx" run --json > "$work/run3.json"
expect "with nothing changed, nothing runs" '[ "$(state tile_stats "$work/run3.json")" = skipped ] && [ "$(state report "$work/run3.json")" = skipped ]'

# 3. Where did the report come from?
step "$dvx" lineage report.txt | tee "$work/lineage.txt"
expect "lineage names the tile that changed, and the commit that brought it" \
  'grep -A1 "tile_2.pgm" "$work/lineage.txt" | grep -q "tile_2 taken again"'

# 4. Share: push to a remote (a folder here; s3://... works the same) and clone elsewhere.
step "$dvx" remote add origin "$work/remote"
step "$dvx" push
step "$dvx" clone "$work/remote" "$work/clone"
expect "the clone has the same report" 'cmp -s report.txt "$work/clone/report.txt"'
expect "and the same data" 'cmp -s data/images/tile_2.pgm "$work/clone/data/images/tile_2.pgm"'
step "$dvx" fsck
echo; echo "quickstart finished: versioned data, an incremental pipeline, lineage and a clone"
