#!/usr/bin/env bash
# A single-node SLURM (22.05, Debian) for the `slurm` tests: install it, write a slurm.conf,
# start munged, slurmctld and slurmd by hand (no systemd here), wait until the node is idle.
# `.ci/run` takes the LAST line of stdout as the command to run at exit, so everything else goes
# to stderr.
#
# State, logs and pid files live in $HERMESFLOW_SLURM_DIR (default /var/tmp/hermesflow-slurm).
# The client commands (sbatch, sacct, ...) read /etc/slurm/slurm.conf, so that file is written
# here -- but only when it is missing or was written by this script; a site's own slurm.conf is
# never replaced (then this script only checks that its controller answers).
#
# Accounting: Debian's 22.05 has no accounting_storage/filetxt (only slurmdbd), so `sacct` is not
# available without slurmdbd + a database.  `hermesflow cluster status` then reads
# `scontrol show job` (MinJobAge keeps finished jobs in the controller for a day) and the exit
# files its batch scripts write; jobcomp/filetxt keeps a permanent record as well.
#
# Reruns are cheap: apt is skipped when the packages are there, and daemons that already answer
# are left running.
set -euo pipefail
exec 3>&1 1>&2

SLURM_DIR=${HERMESFLOW_SLURM_DIR:-/var/tmp/hermesflow-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# Written by hermesflow .ci/setup-slurm.sh"
WAIT=${HERMESFLOW_SLURM_WAIT:-60}

log() { printf '[setup-slurm] %s\n' "$*" >&2; }
start=$(date +%s)

# -- 1. packages ---------------------------------------------------------------------------------
# shellcheck source=.ci/apt-ensure.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
apt_ensure slurmctld slurmd slurm-client munge

mkdir -p "$SLURM_DIR"/{state,spool,log,run}
pid_ctld="$SLURM_DIR/run/slurmctld.pid"
pid_d="$SLURM_DIR/run/slurmd.pid"
pid_munge="$SLURM_DIR/run/munged.pid"
stop_cmd="for f in '$pid_d' '$pid_ctld' '$pid_munge'; do [ -s \"\$f\" ] && kill \"\$(cat \"\$f\")\" 2>/dev/null; rm -f \"\$f\"; done; true"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# -- 2. munge ------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already answers"
else
    log "starting munged"
    rm -f /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --force 3>&- </dev/null
    # munged writes its own pid file under /run/munge; keep a copy with ours for the stop command.
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$pid_munge" 2>/dev/null || true
    munge -n | unmunge >/dev/null || { log "munged does not answer (see /var/log/munge)"; exit 1; }
fi

# -- 3. slurm.conf -------------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
real_mb=$((mem_mb > 2048 ? mem_mb - 1024 : mem_mb))
new_conf=$(cat <<EOF
$MARK; state in $SLURM_DIR.
ClusterName=hermesflow
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$pid_ctld
SlurmdPidFile=$pid_d
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
# No cgroups in containers: track processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$SLURM_DIR/log/jobcomp.txt
# Finished jobs stay visible to scontrol for a day (there is no slurmdbd for sacct).
MinJobAge=86400
ReturnToService=2
SchedulerParameters=sched_interval=2
SchedulerType=sched/backfill
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
DefMemPerCPU=1024
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
)
mkdir -p /etc/slurm
if [ -e "$CONF" ] && ! head -n 1 "$CONF" | grep -qF "$MARK"; then
    log "$CONF was not written by this script: leaving it (and its daemons) alone"
    ours=0
else
    ours=1
    if [ "$(cat "$CONF" 2>/dev/null)" != "$new_conf" ]; then
        log "writing $CONF"
        printf '%s\n' "$new_conf" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
        changed=1
    else
        changed=0
    fi
fi

# -- 4. daemons ----------------------------------------------------------------------------------
if ((ours)); then
    if alive "$pid_ctld" && ((changed)); then
        log "slurm.conf changed: restarting the daemons"
        eval "$stop_cmd"
        sleep 1
    fi
    if alive "$pid_ctld"; then
        log "slurmctld already running (pid $(cat "$pid_ctld"))"
    else
        log "starting slurmctld"
        # -i: ignore state files from an earlier, different configuration.
        /usr/sbin/slurmctld -i 3>&- </dev/null
    fi
    if alive "$pid_d"; then
        log "slurmd already running (pid $(cat "$pid_d"))"
    else
        log "starting slurmd"
        /usr/sbin/slurmd 3>&- </dev/null
    fi
else
    stop_cmd=true
fi

# -- 5. wait for an idle node --------------------------------------------------------------------
deadline=$(($(date +%s) + WAIT))
state=""
while :; do
    state=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        down*|drain*) ((ours)) && timeout 10 scontrol update NodeName="$host" State=RESUME \
                          >/dev/null 2>&1 || true ;;
    esac
    if (($(date +%s) >= deadline)); then
        log "no idle SLURM node after ${WAIT} s (last state: '${state:-no answer}'); see" \
            "$SLURM_DIR/log/slurmctld.log and slurmd.log; the slurm tests will skip"
        # Not fatal: CI goes on, and the slurm tests say why they skip.
        echo "$stop_cmd" >&3
        exit 0
    fi
    sleep 1
done
log "node $host is $state; ready in $(($(date +%s) - start)) s (state and logs: $SLURM_DIR)"

echo "$stop_cmd" >&3
