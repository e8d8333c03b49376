#!/usr/bin/env bash
# What a Ray job costs: submit-to-result wall time of no-op datums (`cmd: "true"`) on Ray
# versus here. Needs the test cluster (tests/services/ray.sh start, as root); dvx runs in
# its network namespace. Prints one line per case (min and max of REPS runs).
#   tests/bench/cluster_ray.sh [DVX]      (default: $CARGO_TARGET_DIR/debug/dvx or target/debug/dvx)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
DVX=${1:-${CARGO_TARGET_DIR:-$root/target}/debug/dvx}
NS=${DVX_RAY_NETNS:-dvx-ray}
REPS=${REPS:-3}
export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265} DVX_AUTHOR_NAME=bench DVX_AUTHOR_EMAIL=bench@example.com
ip netns exec "$NS" curl -fsS -m 5 "$RAY_ADDRESS/api/version" >/dev/null \
  || { echo "no Ray at $RAY_ADDRESS in namespace $NS: tests/services/ray.sh start" >&2; exit 1; }
work=$(mktemp -d /tmp/dvx-bench-ray-XXXXXX)
trap 'rm -rf "$work"' EXIT

# A project with N no-op datums (and `extra` lines in the stage), a folder remote.
project() {
  local dir=$work/$1 n=$2 extra=${3:-}
  mkdir -p "$dir/in" && cd "$dir"
  for i in $(seq -f '%03g' 1 "$n"); do echo "$i" >"in/f$i.txt"; done
  printf 'stages:\n  noop:\n    input: {path: in, glob: "/*.txt"}\n    cmd: "true"\n    outs: [out]\n%s' "$extra" >dvx.yaml
  "$DVX" init -q >/dev/null && "$DVX" remote add origin "$dir.remote" >/dev/null
  printf '\n[executor.ray]\npoll_secs = 0.2\n' >>.dvx/config.toml
}

# Wall seconds of REPS runs of a command, as "min–max".
span() {
  local t0 t1 all=()
  for _ in $(seq "$REPS"); do
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    all+=("$(echo "$t1 - $t0" | bc)")
  done
  printf '%s\n' "${all[@]}" | sort -n | awk 'NR==1{a=$1} {b=$1} END{printf "%.2f–%.2f s", a, b}'
}

in_ns() { ip netns exec "$NS" "$@"; }

project one 1
echo "one datum, local:               $(span "$DVX" run --force --datum f001.txt)"
echo "one datum, Ray:                 $(span in_ns "$DVX" run --force --datum f001.txt --executor ray)"
# Where the time goes, from one more run's record: submitted (cluster.queued) -> the
# commands start on the node (start) -> they end (end), then the result is read back.
rid=$(in_ns "$DVX" run --force --datum f001.txt --executor ray --json | python3 -c '
import json, sys
print(next(s for s in json.load(sys.stdin)["stages"] if s["stage"] == "noop")["runs"][0])')
"$DVX" show "$rid" --json | python3 -c '
import json, sys
from datetime import datetime
r = json.load(sys.stdin)
t = lambda k: datetime.fromisoformat(k[:23])
q, s = t(r["cluster"]["queued"]), t(r["start"])
print(f"  of which submitted -> commands start on the node: {(s - q).total_seconds():.2f} s")'

project twenty 20
echo "20 datums, local (-j 2):        $(span "$DVX" run --force -j 2)"
echo "20 datums, Ray (20 jobs):       $(REPS=1 span in_ns "$DVX" run --force --executor ray)"

project many 200 $'    executor: ray\n    batch: 20\n'
echo "200 datums, Ray, batch: 20:     $(span in_ns "$DVX" run --force)"
sed -i '/executor: ray/d; /batch: 20/d' dvx.yaml
echo "200 datums, local (-j 2):       $(span "$DVX" run --force -j 2)"
