#!/usr/bin/env bash
# Four experiments of a pipeline whose training step takes SLEEP seconds (default 2), run
# one at a time (-j 1) and two at a time (-j 2), in one run; prints both times and the ratio.
# usage: tests/bench/experiments.sh [DVX]      (default: target/release/dvx, else debug)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dvx=${1:-}
if [ -z "$dvx" ]; then
  t=${CARGO_TARGET_DIR:-$here/target}
  for c in "$t/release/dvx" "$t/debug/dvx"; do [ -x "$c" ] && { dvx=$c; break; }; done
fi
[ -x "${dvx:-}" ] || { echo "no dvx binary: build it first (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q -b main
"$dvx" init -q
printf 'featurize:\n  scale: 2\ntrain:\n  l2: 0.1\n' > params.yaml
cat > feat.py <<'PY'
import re
t = open("params.yaml").read()
open("feats.txt", "w").write(str(float(re.search(r"scale:\s*([-\d.]+)", t).group(1)) * 10))
PY
cat > train.py <<'PY'
import re, json, os, time
t = open("params.yaml").read()
l2 = float(re.search(r"l2:\s*([-\d.e]+)", t).group(1))
time.sleep(float(os.environ.get("SLEEP", "2")))
json.dump({"acc": float(open("feats.txt").read()) * l2}, open("metrics.json", "w"))
PY
cat > dvx.yaml <<'YAML'
stages:
  featurize:
    cmd: python3 feat.py
    deps: [feat.py]
    params: [featurize.scale]
    outs: [feats.txt]
  train:
    cmd: python3 train.py
    deps: [feats.txt, train.py]
    params: [train.l2]
    metrics: [metrics.json]
YAML
SLEEP=0 "$dvx" run -q
declare -A took
for j in 1 2; do
  # New values each time: nothing comes from the run cache.
  "$dvx" run -q --queue -S "train.l2=1$j,2$j,3$j,4$j"
  s=$(date +%s.%N); "$dvx" exp run -q -j "$j"; e=$(date +%s.%N)
  took[$j]=$(echo "$e - $s" | bc)
done
printf 'four experiments, train %ss each: -j 1 %.2fs, -j 2 %.2fs, ratio %.2f\n' \
  "${SLEEP:-2}" "${took[1]}" "${took[2]}" "$(echo "${took[2]} / ${took[1]}" | bc -l)"
