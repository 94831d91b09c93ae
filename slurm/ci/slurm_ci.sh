#!/usr/bin/env bash
# slurm_ci.sh -- a throw-away single-node Slurm cluster for CI and laptops (Debian slurm-wlm, no systemd).
#
# Why: the cluster glue (mazeagent submit, the sbatch templates, requeue on USR1) is only worth something if it
# is tested against a real slurmctld/slurmd. This script makes one in ~1 s (plus ~6 s apt on first use), as root,
# with munged, slurmctld and slurmd started as plain daemons (no systemd, no cgroups, no slurmdbd).
#
#   slurm_ci.sh install            apt-get update + install slurmctld slurmd slurm-client munge (no-op if present)
#   slurm_ci.sh start              install if needed, write slurm.conf, start the daemons, wait until the node is
#                                  idle. Idempotent: a running, healthy cluster with the same config is left alone.
#   slurm_ci.sh status             controller ping, node, queue
#   slurm_ci.sh wait JOBID [T]     poll until JOBID (all array tasks) left the queue (default T=300 s), then print
#                                  its jobcomp records; exit 1 on timeout
#   slurm_ci.sh jobcomp JOBID      "JOBID TASK STATE EXITCODE RUN#" from the jobcomp text log (sacct -c can't do arrays)
#   slurm_ci.sh stop [--purge]     cancel jobs, stop the daemons by pidfile; --purge also deletes $SLURM_CI_DIR
#
# Knobs: SLURM_CI_DIR (state/logs/pids, default /var/tmp/slurm-ci), SLURM_CONF (default /etc/slurm/slurm.conf),
# SLURM_CI_CPUS (CPUs advertised, default max(4, nproc): oversubscribing lets array tasks run side by side),
# SLURM_CI_CRED_EXPIRE (seconds a requeued job waits before it restarts; Slurm's minimum 5, default 10).
# Every wait is bounded; on failure the daemon logs are printed. Tested on Debian 12 / slurm-wlm 22.05.
set -euo pipefail

DIR=${SLURM_CI_DIR:-/var/tmp/slurm-ci}
export SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
NPROC=$(nproc)
CPUS=${SLURM_CI_CPUS:-$(( NPROC > 4 ? NPROC : 4 ))}
CRED_EXPIRE=${SLURM_CI_CRED_EXPIRE:-10}
HOST=$(hostname -s)          # slurmctld only starts where SlurmctldHost == `hostname -s`
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "[slurm_ci $(date +%H:%M:%S)] $*" >&2; }

# until_ok SECONDS CMD...: retry CMD every 0.2 s; fail after SECONDS.
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -ge "$deadline" ] && return 1; sleep 0.2; done
}

# Live and not a zombie (without a reaping init, dead daemons linger as <defunct> and `kill -0` still succeeds).
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ') && [ -n "$st" ] && [ "${st:0:1}" != Z ]; }
pid_of() { cat "$1" 2>/dev/null || true; }
pidfile_alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && alive "$p"; }

show_logs() {
  local f
  for f in "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log /var/log/munge/munged.log; do
    [ -f "$f" ] && { echo "---- tail $f"; tail -n 30 "$f"; }
  done >&2
  return 0
}

installed() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
  && command -v munged >/dev/null; }

cmd_install() {
  if installed; then say "slurm + munge already installed"; return 0; fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -q
  # Package scripts call invoke-rc.d; "exit 101" tells them to start nothing (we start the daemons ourselves,
  # after slurm.conf exists). Only removed again if we created it.
  local ours=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; ours=1
  fi
  local rc=0
  timeout 600 apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" || rc=$?
  [ "$ours" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

render_conf() {
  # RealMemory above what slurmd detects drains the node, so advertise 90% of MemTotal.
  local mem; mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat <<EOF
# Written by slurm/ci/slurm_ci.sh (no backticks in this heredoc: they would run). One node, no accounting daemon, no cgroups.
ClusterName=ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job stays PENDING (BeginTime) for cred_expire+1 s; Slurm's default is 120 and its minimum 5.
AuthInfo=cred_expire=${CRED_EXPIRE}
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Schedule right after submit, and retry often, so tests wait seconds rather than minutes.
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=${DIR}/log/jobcomp.txt
StateSaveLocation=${DIR}/ctld
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
MailProg=/bin/true
# Grace between SIGTERM and SIGKILL on scancel, time limit and requeue.
KillWait=10
# Finished jobs stay visible to scontrol (show job) this long (tests read them back; default 300).
MinJobAge=900
ReturnToService=2
# Trust CPUs= below even if it exceeds the hardware (array tasks may share cores).
SlurmdParameters=config_overrides
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if pidfile_alive /run/munge/munged.pid && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key; chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge            # systemd's RuntimeDirectory would make /run/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge; chmod 755 /run/munge
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --force 9>&-
  until_ok 10 bash -c 'munge -n | unmunge >/dev/null 2>&1' || { say "munged does not answer"; show_logs; return 1; }
}

ctld_up() { timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_idle() { timeout 10 sinfo -h -n "$HOST" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

cmd_start() {
  if ! installed; then cmd_install; fi
  mkdir -p "$DIR"/ctld "$DIR"/spool "$DIR"/log
  exec 9>"$DIR/.lock"; flock -w 60 9 || { say "another slurm_ci.sh holds $DIR/.lock"; return 1; }
  local new; new=$(render_conf)
  if [ -f "$SLURM_CONF" ] && [ "$(cat "$SLURM_CONF")" != "$new" ] && pidfile_alive "$DIR/slurmctld.pid"; then
    say "slurm.conf changed: restarting the cluster"; cmd_stop
  fi
  mkdir -p "$(dirname "$SLURM_CONF")"; printf '%s\n' "$new" > "$SLURM_CONF"
  start_munge
  if pidfile_alive "$DIR/slurmctld.pid" && ctld_up; then say "slurmctld already up"; else
    pkill_pidfile "$DIR/slurmctld.pid"
    slurmctld -c -i 9>&-  # daemonizes; exits 0 even when the daemon then dies, so poll below
  fi
  until_ok 30 ctld_up || { say "slurmctld did not come up"; show_logs; return 1; }
  if pidfile_alive "$DIR/slurmd.pid"; then say "slurmd already running"; else slurmd -N "$HOST" 9>&-; fi
  until_ok 30 node_idle || { say "node not ready: $(sinfo -h -N -o '%N %T %E' 2>&1)"; show_logs; return 1; }
  # A node left DOWN/DRAIN by an earlier run would take no jobs; ReturnToService=2 usually handles it.
  say "cluster up: $(sinfo -h -o '%P %a %D %T %N' 2>&1), CPUs=$CPUS"
}

# Stop the process named by a pidfile: TERM, then KILL after 10 s. No-op if it is not running.
pkill_pidfile() {
  local p; p=$(pid_of "$1"); [ -n "$p" ] && alive "$p" || { rm -f "$1"; return 0; }
  kill -TERM "$p" 2>/dev/null || true
  until_ok 10 bash -c "! ps -o stat= -p $p 2>/dev/null | tr -d ' ' | grep -qv '^Z'" || { say "SIGKILL $1 ($p)"; kill -KILL "$p" 2>/dev/null || true; }
  rm -f "$1"
}

cmd_stop() {
  if [ -f "$SLURM_CONF" ] && command -v scontrol >/dev/null && ctld_up; then
    # Cancel first: `scontrol shutdown` alone leaves running job steps alive.
    timeout 20 scancel --full -p debug 2>/dev/null || true
    until_ok 20 bash -c '[ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]' || say "jobs still listed after scancel"
    timeout 20 scontrol shutdown >/dev/null 2>&1 || true
  fi
  pkill_pidfile "$DIR/slurmd.pid"; pkill_pidfile "$DIR/slurmctld.pid"; pkill_pidfile /run/munge/munged.pid
  if [ "${1:-}" = "--purge" ]; then rm -rf "$DIR"; fi
  say "stopped"
}

cmd_status() { timeout 10 scontrol ping; timeout 10 sinfo -N -l; timeout 10 squeue; }

# "JOBID TASK STATE EXITCODE RUN#" for JOBID or every task of array JOBID. A requeued job has one line per run.
cmd_jobcomp() {
  [ -f "$DIR/log/jobcomp.txt" ] || return 0
  awk -v j="$1" '{
      delete f
      for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
      if (f["JobId"] == j || f["ArrayJobId"] == j) {
        run = n[f["JobId"]]++
        print f["JobId"], (("ArrayTaskId" in f) ? f["ArrayTaskId"] : "-"), f["JobState"], f["ExitCode"], run
      } }' "$DIR/log/jobcomp.txt" | sort -k2,2n -k1,1n -k5,5n
}

cmd_wait() {
  local jid=${1:?usage: wait JOBID [TIMEOUT_S]} deadline=$((SECONDS + ${2:-300})) out
  while :; do
    # Empty output = finished but remembered; "Invalid job id" = finished and purged. Anything else
    # (controller down) keeps polling until the deadline rather than passing for "done".
    if out=$(timeout 20 squeue -h -j "$jid" -o %i 2>&1); then [ -z "$out" ] && break
    else case "$out" in *"Invalid job id"*) break ;; esac; fi
    [ "$SECONDS" -ge "$deadline" ] && { say "timeout waiting for job $jid: $out"; return 1; }
    sleep 0.5
  done
  cmd_jobcomp "$jid"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  status) cmd_status ;;
  wait) shift; cmd_wait "$@" ;;
  jobcomp) shift; cmd_jobcomp "${1:?usage: jobcomp JOBID}" ;;
  stop) shift; cmd_stop "$@" ;;
  *) echo "usage: $0 install|start|status|wait JOBID [T]|jobcomp JOBID|stop [--purge]" >&2; exit 2 ;;
esac
