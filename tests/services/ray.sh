#!/usr/bin/env bash
# A two-node Ray cluster (head + one worker, one CPU each) on 127.0.0.1 for the Ray tests,
# from PyPI into a venv, no systemd.
#   ray.sh install     install Ray into the venv when missing (needs PyPI; run it outside the
#                      namespace, which has no network); print the venv's folder
#   ray.sh netns       create the network namespace dvx-ray (loopback only) when missing (root)
#   ray.sh start       start the cluster inside the namespace, check that every node is on
#                      127.0.0.1, print `export RAY_ADDRESS=...` (the job API, in the namespace)
#   ray.sh stop        `ray stop --force` inside the namespace, then kill what is left by pid
#   ray.sh exec CMD..  run CMD inside the namespace (what talks to Ray must run there)
# Ray binds the machine's interface address whatever --node-ip-address says (seen with 2.60.0),
# so Ray, and every process that talks to it, runs in a network namespace whose only interface
# is loopback: nothing reaches, or is sent to, the machine's own address. Being root is needed
# for the namespace. State lives under DVX_RAY_BASE (default ${TMPDIR:-/tmp}/dvx-services/ray).
set -euo pipefail
BASE=${DVX_RAY_BASE:-${TMPDIR:-/tmp}/dvx-services/ray}
V=$BASE/venv
RAY=$V/bin/ray
NS=${DVX_RAY_NETNS:-dvx-ray}
RUN=$BASE/run
export RAY_USAGE_STATS_ENABLED=0 RAY_TMPDIR=$RUN/tmp
cmd=${1:-start}

install() {
  if [ ! -x "$RAY" ]; then
    mkdir -p "$BASE"
    python3 -m venv "$V"
    "$V/bin/pip" install -q 'ray[default]==2.60.0'
  fi
  echo "$V"
}

netns() {
  if [ "$(id -u)" != 0 ]; then echo "ray.sh: the network namespace needs root" >&2; exit 1; fi
  ip netns list | grep -qw "$NS" || ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up
}

in_ns() { ip netns exec "$NS" "$@"; }

start() {
  [ -x "$RAY" ] || { echo "ray.sh: run \`ray.sh install\` first (outside the namespace)" >&2; exit 1; }
  netns
  if in_ns ip -o -4 addr show | awk '$2 != "lo"' | grep -q inet; then
    echo "ray.sh: namespace $NS has interfaces besides loopback; refusing" >&2; exit 1
  fi
  mkdir -p "$RAY_TMPDIR"
  # Already up (an earlier start): check it and reuse it.
  if ! in_ns curl -fsS -m 5 http://127.0.0.1:8265/api/version >/dev/null 2>&1; then
    in_ns "$RAY" start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus=1 \
      --dashboard-host=127.0.0.1 --dashboard-port=8265 --disable-usage-stats >"$RUN/head.log" 2>&1 \
      || { echo "ray.sh: the head did not start; see $RUN/head.log" >&2; tail -5 "$RUN/head.log" >&2; exit 1; }
    in_ns "$RAY" start --address=127.0.0.1:6379 --node-ip-address=127.0.0.1 --num-cpus=1 \
      --resources='{"node2": 1}' --node-manager-port=6390 --object-manager-port=6391 \
      --dashboard-agent-listen-port=6392 --dashboard-agent-grpc-port=6393 --metrics-export-port=6394 \
      --runtime-env-agent-port=6395 --min-worker-port=20000 --max-worker-port=20100 \
      >"$RUN/worker.log" 2>&1 \
      || { echo "ray.sh: the worker node did not start; see $RUN/worker.log" >&2; stop; exit 1; }
  fi
  local nodes=""
  for _ in $(seq 60); do
    nodes=$(in_ns curl -fsS -m 5 'http://127.0.0.1:8265/nodes?view=summary' 2>/dev/null | "$V/bin/python" -c '
import json, sys
d = json.load(sys.stdin)["data"]["summary"]
print(" ".join(sorted(n["ip"] for n in d if n.get("raylet", {}).get("state") == "ALIVE")))' 2>/dev/null || true)
    [ "$(wc -w <<<"$nodes")" -ge 2 ] && break
    sleep 1
  done
  if [ "$(wc -w <<<"$nodes")" -lt 2 ]; then
    echo "ray.sh: two nodes did not come up (got: $nodes); see $RUN/*.log" >&2; stop; exit 1
  fi
  for ip in $nodes; do
    [ "$ip" = 127.0.0.1 ] || { echo "ray.sh: a node is on $ip, not 127.0.0.1: stopping" >&2; stop; exit 1; }
  done
  # Every Ray process, by pid, for `stop`.
  pgrep -f "$V/" | grep -vw "$$" >"$RUN/pids" || true
  echo "export RAY_ADDRESS=http://127.0.0.1:8265 DVX_RAY_NETNS=$NS"
}

stop() {
  if [ -x "$RAY" ] && ip netns list 2>/dev/null | grep -qw "$NS"; then
    in_ns "$RAY" stop --force >/dev/null 2>&1 || true
  fi
  if [ -f "$RUN/pids" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$RUN/pids"
    rm -f "$RUN/pids"
  fi
  echo "stopped Ray" >&2
}

case "$cmd" in
  install) install ;;
  netns) netns ;;
  start) start ;;
  stop) stop ;;
  exec) shift; in_ns "$@" ;;
  *) echo "usage: $0 install | netns | start | stop | exec CMD..." >&2; exit 2 ;;
esac
