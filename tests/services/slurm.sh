#!/usr/bin/env bash
# A one-node Slurm cluster on 127.0.0.1 for the cluster tests: munged, slurmctld and slurmd
# started by hand (no systemd), all state under one folder, stopped by their process ids.
#   slurm.sh start     install (as root, with apt) when missing, start, wait until the node is
#                      idle, and print `export SLURM_CONF=...` for the clients
#   slurm.sh stop      stop the daemons this script started
#   slurm.sh env       print the export line only (the cluster must be running)
# State lives under DVX_SLURM_BASE (default ${TMPDIR:-/tmp}/dvx-services-UID/slurm).
#
# Why these settings: no cgroups on small CI machines (proctrack/linuxproc, task/none), no
# accounting database (jobcomp/filetxt; dvx never relies on sacct), and the node is named
# localhost at 127.0.0.1 so nothing listens for or needs the machine's own address.
set -euo pipefail
BASE=${DVX_SLURM_BASE:-${TMPDIR:-/tmp}/dvx-services-$(id -u)/slurm}
M=$BASE/munge
S=$BASE/slurm
export SLURM_CONF=$S/slurm.conf
cmd=${1:-start}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  for p in slurmd slurmctld; do
    if running "$S/$p.pid"; then kill "$(cat "$S/$p.pid")" && echo "stopped $p" >&2; fi
  done
  # munged last: the Slurm daemons talk to it while they shut down.
  for _ in $(seq 50); do
    running "$S/slurmd.pid" || running "$S/slurmctld.pid" || break
    sleep 0.1
  done
  if running "$M/munged.pid"; then kill "$(cat "$M/munged.pid")" && echo "stopped munged" >&2; fi
  return 0
}

install() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm.sh: install slurmctld slurmd slurm-client munge first (apt-get install ...)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  }
}

start() {
  install
  mkdir -p "$M" "$S/state" "$S/spool"
  # munged runs as its own user and wants its socket folder o+x and nothing else.
  chown munge:munge "$M"
  chmod 755 "$M"
  [ -f "$M/munge.key" ] || runuser -u munge -- mungekey -c -k "$M/munge.key"
  if ! running "$M/munged.pid"; then
    runuser -u munge -- /usr/sbin/munged --socket="$M/munge.socket.2" --key-file="$M/munge.key" \
      --pid-file="$M/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed"
  fi
  for _ in $(seq 50); do
    munge -S "$M/munge.socket.2" -n </dev/null | unmunge -S "$M/munge.socket.2" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local cpus
  cpus=$(nproc)
  cat >"$SLURM_CONF.new" <<CONF
ClusterName=dvx
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$M/munge.socket.2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdLogFile=$S/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=300
KillWait=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$SLURM_CONF.new" "$SLURM_CONF"
  running "$S/slurmctld.pid" || slurmctld
  running "$S/slurmd.pid" || slurmd -N localhost
  for _ in $(seq 150); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^idle'; then
      echo "export SLURM_CONF='$SLURM_CONF'"
      return 0
    fi
    sleep 0.2
  done
  echo "slurm.sh: the node did not become idle; see $S/slurmctld.log and $S/slurmd.log" >&2
  sinfo >&2 || true
  exit 1
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF='$SLURM_CONF'" ;;
  *) echo "usage: $0 start | stop | env" >&2; exit 2 ;;
esac
