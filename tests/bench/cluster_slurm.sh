#!/usr/bin/env bash
# What a Slurm job costs: no-op datums (`cmd: "true"`) on Slurm versus here, 200 datums with
# `batch: 20`, and a warm re-run with nothing changed (which must submit nothing). Needs the
# test cluster (`eval "$(tests/services/slurm.sh start)"`, as root). One line per case (min
# and max of REPS runs).
#   tests/bench/cluster_slurm.sh [DVX]      (default: $CARGO_TARGET_DIR/debug/dvx or target/debug/dvx)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
DVX=${1:-${CARGO_TARGET_DIR:-$root/target}/debug/dvx}
REPS=${REPS:-3}
export DVX_AUTHOR_NAME=bench DVX_AUTHOR_EMAIL=bench@example.com
squeue >/dev/null 2>&1 || { echo "no Slurm here: eval \"\$(tests/services/slurm.sh start)\"" >&2; exit 1; }
work=$(mktemp -d /tmp/dvx-bench-slurm-XXXXXX)
trap 'rm -rf "$work"' EXIT

# A project with N no-op datums (and `extra` lines in the stage), a folder remote.
project() {
  local dir=$work/$1 n=$2 extra=${3:-}
  mkdir -p "$dir/in" && cd "$dir"
  for i in $(seq -f '%03g' 1 "$n"); do echo "$i" >"in/f$i.txt"; done
  printf 'stages:\n  noop:\n    input: {path: in, glob: "/*.txt"}\n    cmd: "true"\n    outs: [out]\n%s' "$extra" >dvx.yaml
  "$DVX" init -q >/dev/null && "$DVX" remote add origin "$dir.remote" >/dev/null
  printf '\n[executor.slurm]\npoll_secs = 0.2\n' >>.dvx/config.toml
}

span() {
  local t0 t1 all=()
  for _ in $(seq "$REPS"); do
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    all+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${all[@]}" | sort -n | awk 'NR==1{a=$1} {b=$1} END{printf "%.2f–%.2f s", a, b}'
}

project one 1
echo "one datum, local:                 $(span "$DVX" run --force --datum f001.txt)"
echo "one datum, Slurm:                 $(span "$DVX" run --force --datum f001.txt --executor slurm)"

project many 200
echo "200 datums, local (-j 2):         $(span "$DVX" run --force -j 2)"
echo "no-op re-run, local:              $(span "$DVX" run)"
project many-slurm 200 $'    executor: slurm\n    batch: 20\n'
echo "200 datums, Slurm, batch: 20:     $(span "$DVX" run --force)"
echo "no-op re-run, Slurm stage:        $(span "$DVX" run)"
submitted=$("$DVX" run --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["executed"])')
echo "  executions submitted by a no-op re-run: $submitted"
