#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of `--executor slurm`:
#
#   bash scripts/slurm_cluster.sh start    # munged, slurmctld and slurmd; waits until the node is idle
#   bash scripts/slurm_cluster.sh stop
#   bash scripts/slurm_cluster.sh status
#
# Needs root and Debian's slurm-wlm and munge (`apt-get install slurm-wlm munge`; .ci/run does).
# This machine's hostname is the controller and the only node, with its CPUs and memory; state,
# spool and logs live under $SLURM_STATE (default /tmp/noisy-mask-slurm). No accounting daemon:
# the tests read job states with squeue and the project's own files, not sacct.
set -euo pipefail

STATE=${SLURM_STATE:-/tmp/noisy-mask-slurm}
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)

write_conf() {
    local cpus memory
    cpus=$(nproc)
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
    cat > "$CONF" <<EOF
# Written by noisy-mask's scripts/slurm_cluster.sh: a one-node cluster for tests.
ClusterName=noisymask
SlurmctldHost=$HOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmUser=root
SlurmdUser=root
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
KillWait=5
MinJobAge=300
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
# A job that asks no memory gets its CPUs' share of the node's, not all of it: else one job of
# one CPU would hold the whole node (CR_Core_Memory) and the jobs would run one at a time.
DefMemPerCPU=$(( memory / cpus ))
NodeName=$HOST CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start() {
    if [ "$(id -u)" != 0 ]; then echo "slurm_cluster.sh: needs root" >&2; exit 2; fi
    for tool in munged slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { echo "slurm_cluster.sh: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 2; }
    done
    write_conf
    if ! pgrep -x munged >/dev/null; then
        [ -s /etc/munge/munge.key ] || mungekey --create --force
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
        runuser -u munge -- munged 2>/dev/null || munged --force
    fi
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            echo "slurm: node $HOST up ($(nproc) CPUs), state and logs in $STATE"
            return 0
        fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "slurm_cluster.sh: the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
    exit 1
}

stop() {
    pkill -x slurmd || true
    pkill -x slurmctld || true
    for _ in $(seq 20); do pgrep -x 'slurm(ctld|d)' >/dev/null || break; sleep 0.5; done
    echo "slurm: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo && squeue ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
