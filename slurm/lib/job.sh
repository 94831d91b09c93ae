# slurm/lib/job.sh -- sourced by the mazeagent sbatch templates. Bash only.
#
# run_requeueable CMD...   Run CMD (a checkpointing trainer) so that a Slurm job survives preemption:
#   * USR1 (from `#SBATCH --signal=B:USR1@LEAD` shortly before the time limit, or from
#     `scancel --signal=USR1 --batch JOBID`) reaches only this batch shell, so it is forwarded to CMD. CMD then
#     checkpoints and exits non-zero; this script calls `scontrol requeue`, Slurm restarts the job later with
#     SLURM_RESTART_COUNT+1, and CMD (run with --resume) continues from the checkpoint.
#   * TERM (scancel, time limit, node shutdown) already goes to every process of the job, CMD included; the
#     shell only waits for CMD to finish its checkpoint instead of dying first. No requeue: a cancel is a cancel.
#   * A job restarted MAZEAGENT_MAX_RESTARTS times (default 20) is not requeued again, so a trainer that keeps
#     failing cannot loop forever.
# Why a background child and `wait`: bash runs traps only between commands, and only `wait` is interruptible.

_mz_note() { echo "[mazeagent-job $(date -u +%FT%TZ)] $*"; }

run_requeueable() {  # errexit-safe: every failing status below is caught
  local child rc r max=${MAZEAGENT_MAX_RESTARTS:-20} restarts=${SLURM_RESTART_COUNT:-0}
  _mz_signal="" _mz_trapped=0
  trap '_mz_signal=USR1; _mz_trapped=1; _mz_note "USR1: asking the run to checkpoint"; kill -USR1 "$child" 2>/dev/null || true' USR1
  trap '_mz_signal=${_mz_signal:-TERM}; _mz_trapped=1; _mz_note "TERM: waiting for the run to checkpoint"' TERM
  _mz_note "start job=${SLURM_JOB_ID:-none} task=${SLURM_ARRAY_TASK_ID:-none} restart=${restarts} host=$(hostname -s)"
  _mz_note "command: $*"
  "$@" &
  child=$!
  while :; do
    _mz_trapped=0
    r=0; wait "$child" || r=$?
    if [ "$_mz_trapped" = 0 ]; then rc=$r; break; fi      # CMD exited
    rc=$r                                                  # wait was interrupted by a trap: wait again, unless
    if ! kill -0 "$child" 2>/dev/null; then                # CMD is already gone (then `wait` has its status,
      r=0; wait "$child" 2>/dev/null || r=$?                      # or 127 if the interrupted wait collected it)
      [ "$r" != 127 ] && rc=$r
      break
    fi
  done
  trap - USR1 TERM
  _mz_note "command exited with $rc"
  if [ "$_mz_signal" = USR1 ] && [ "$rc" != 0 ]; then
    if [ "$restarts" -ge "$max" ]; then
      _mz_note "not requeueing: already restarted $restarts times (MAZEAGENT_MAX_RESTARTS=$max)"
      return "$rc"
    fi
    # An array task must be named MASTER_TASK: the last task's SLURM_JOB_ID equals the master id, and
    # `scontrol requeue MASTER` would requeue every task of the array, finished ones included.
    local me=${SLURM_JOB_ID}
    [ -n "${SLURM_ARRAY_TASK_ID:-}" ] && me=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
    _mz_note "requeueing job ${me} (restart $((restarts + 1)))"
    if ! scontrol requeue "${me}"; then _mz_note "scontrol requeue failed"; return "$rc"; fi
    # Slurm now TERMs this shell; sleeping here keeps the run from being recorded as finished first. The TERM trap is
    # set before the sleeper starts (the TERM may come at once), and the sleeper holds none of the job's output open.
    _mz_sleeper=""
    trap '[ -n "$_mz_sleeper" ] && kill "$_mz_sleeper" 2>/dev/null || true; exit 0' TERM
    sleep 300 </dev/null >/dev/null 2>&1 & _mz_sleeper=$!
    wait "$_mz_sleeper" || true
    return 0
  fi
  return "$rc"
}
