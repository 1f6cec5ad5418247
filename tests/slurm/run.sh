#!/bin/bash
# make test-slurm: the Snakemake workflow on a real, single-node SLURM cluster started here.
#
#   1. starts munged, slurmctld and slurmd (as root, no systemd) with their keys, sockets,
#      state, spool and logs in a fresh temporary directory, and waits until the node is idle;
#   2. runs the README's SLURM command (extracted from README.md, not restated) on three
#      samples: the vignette as h5ad (doublet, 3 shards), as 10x HDF5 with a coordinates table
#      (full, 3 shards) and as spacexr's CSV directory (multi, 3 shards);
#   3. checks from SLURM's job-completion records (sacct -c) that every job, each fit shard
#      among them, ran as a SLURM job, the fits in the partition the config gives them;
#   4. checks the outputs byte-identical to `rctd run` on the same inputs;
#   5. stops every daemon it started, by PID (trap: also on failure or interrupt), and fails if
#      one is still alive.
# Nothing is left behind: two runs in a row start from scratch.  KEEP=1 keeps the directory.
# Usage: tests/slurm/run.sh [BIN_DIR]    (as root; installs slurmctld, slurmd, munge if missing)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(cd "${1:-$repo/bin}" && pwd)
vignette="$repo/data/vignette"
samples_shards=3

log() { echo "test-slurm: $*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}

[ "$(id -u)" = 0 ] || fail "must run as root (it starts slurmctld, slurmd and munged)"
"$repo/scripts/setup.sh" slurm
for cmd in munged mungekey slurmctld slurmd sbatch sinfo sacct snakemake setpriv; do
  command -v "$cmd" >/dev/null || fail "$cmd not found after scripts/setup.sh slurm"
done

work=$(mktemp -d /tmp/rctd-test-slurm.XXXXXX)
chmod 755 "$work" # munged runs as the munge user and must reach its directories
daemon_pids=()
daemon_names=()

# Stops the daemons in reverse order of starting: SIGTERM, up to 10 s, then SIGKILL; each is a
# child of this shell, so `wait` reaps it.  Fails the run if one survives.
stop_daemons() {
  local i pid name alive=""
  for ((i = ${#daemon_pids[@]} - 1; i >= 0; i--)); do
    pid=${daemon_pids[i]}
    name=${daemon_names[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 10 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    kill -0 "$pid" 2>/dev/null && alive="$alive $name($pid)"
  done
  daemon_pids=()
  daemon_names=()
  if [ -n "$alive" ]; then
    log "FAILED: still running after stop:$alive"
    return 1
  fi
}

snakemake_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$snakemake_pid" ] && kill -TERM "$snakemake_pid" 2>/dev/null; then
    log "stopping snakemake (pid $snakemake_pid; it cancels its SLURM jobs)"
    wait "$snakemake_pid" 2>/dev/null || true
  fi
  stop_daemons || rc=1
  if [ "$rc" != 0 ] && [ -d "$work/slurm/log" ]; then
    for f in "$work"/slurm/log/*.log; do
      log "---- last lines of $f"
      tail -n 20 "$f" >&2 || true
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    log "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

started() { # NAME PID
  daemon_names+=("$1")
  daemon_pids+=("$2")
}

# Two free TCP ports on 127.0.0.1 for slurmctld and slurmd (the defaults may be taken).
read -r ctld_port slurmd_port < <(/usr/bin/python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# ---- munge: its own key, socket, pid, seed and log, as the munge user
mkdir -p "$work/munge" "$work/munge-run"
chown munge:munge "$work/munge" "$work/munge-run"
chmod 700 "$work/munge"
chmod 755 "$work/munge-run" # the socket's directory: every user must reach it
as_munge=(setpriv --reuid=munge --regid=munge --init-groups)
"${as_munge[@]}" mungekey --create --keyfile="$work/munge/munge.key" --bits=1024
socket="$work/munge-run/munge.socket"
"${as_munge[@]}" munged --foreground --socket="$socket" --key-file="$work/munge/munge.key" \
  --log-file="$work/munge/munged.log" --pid-file="$work/munge-run/munged.pid" \
  --seed-file="$work/munge/munged.seed" 2>"$work/munge/stderr" &
started munged $!
for _ in $(seq 100); do
  munge --socket="$socket" --no-input >/dev/null 2>&1 && break
  kill -0 "${daemon_pids[0]}" 2>/dev/null || fail "munged exited: $(cat "$work/munge/stderr")"
  sleep 0.1
done
munge --socket="$socket" --no-input | unmunge --socket="$socket" >/dev/null ||
  fail "munged does not answer on $socket"

# ---- SLURM: slurm.conf in the temporary directory; two partitions on the one node
slurm="$work/slurm"
mkdir -p "$slurm/state" "$slurm/spool" "$slurm/log"
node=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //' -e 's/RealMemory=\([0-9]*\).*/RealMemory=\1/')
export SLURM_CONF="$slurm/slurm.conf"
cat >"$SLURM_CONF" <<EOF
# A single-node cluster for tests/slurm/run.sh (no cgroups, no accounting daemon).
ClusterName=rctdtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CryptoType=crypto/munge
StateSaveLocation=$slurm/state
SlurmdSpoolDir=$slurm/spool
SlurmctldPidFile=$slurm/slurmctld.pid
SlurmdPidFile=$slurm/slurmd.pid
SlurmctldLogFile=$slurm/log/slurmctld.log
SlurmdLogFile=$slurm/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Job completion records: what sacct -c reads without slurmdbd.
JobCompType=jobcomp/filetxt
JobCompLoc=$slurm/log/jobcomp.txt
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 $node
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=fits Nodes=localhost MaxTime=INFINITE State=UP
EOF
slurmctld -D -f "$SLURM_CONF" >"$slurm/log/slurmctld.stderr" 2>&1 &
started slurmctld $!
slurmd -D -N localhost -f "$SLURM_CONF" >"$slurm/log/slurmd.stderr" 2>&1 &
started slurmd $!
state=""
for _ in $(seq 300); do
  state=$(sinfo -h -n localhost -p main -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  for i in 1 2; do
    kill -0 "${daemon_pids[i]}" 2>/dev/null || fail "${daemon_names[i]} exited (log below)"
  done
  sleep 0.1
done
[ "$state" = idle ] || fail "the node is '$state', not idle, after 30 s"
log "cluster up: munged, slurmctld (port $ctld_port), slurmd (port $slurmd_port); node idle"

# ---- the three samples
inputs="$work/inputs"
/usr/bin/python3 "$repo/tests/workflows/vignette_inputs.py" "$vignette/csv/spatial" "$inputs"
project="$work/project"
mkdir -p "$project"
cat >"$project/my.yaml" <<EOF
bin_dir: $bin_dir
reference:
  input: $vignette/h5ad/reference.h5ad
  threads: 1
cache_dir: $work/cache
formats: h5ad,csv
defaults:
  threads: 1
  chunk_pixels: 25
samples:
  puck_h5ad: {spatial: $vignette/h5ad/spatial.h5ad, mode: doublet, shards: $samples_shards}
  puck_10x: {spatial: $inputs/spatial.h5, coords_table: $inputs/coords.csv, mode: full, shards: $samples_shards}
  puck_csv: {spatial: $vignette/csv/spatial, mode: multi, shards: $samples_shards}
resources:
  reference: {mem_mb: 1000, runtime: 10}
  normalize: {mem_mb: 1000, runtime: 10}
  sigma: {mem_mb: 1000, runtime: 10}
  fit: {mem_mb: 1000, runtime: 10, slurm_partition: fits}
  merge: {mem_mb: 1000, runtime: 10}
EOF

# The README's command, as written there (between its test-slurm markers), run in the project
# directory with RCTD = this checkout.
command=$(awk '/<!-- test-slurm: begin -->/ { on = 1; next } /<!-- test-slurm: end -->/ { on = 0 }
  on && !/^```/' "$repo/README.md")
case "$command" in
  *"snakemake "*"--profile"*) ;;
  *) fail "README.md has no snakemake --profile command between its test-slurm markers" ;;
esac
log "running the README's command: $(echo "$command" | tr -s ' \\\n' ' ')"
start=$(date +%s)
# In the background and waited for, so that a signal to this script runs the trap at once (bash
# defers traps while a foreground command runs); the trap stops snakemake before the daemons.
(cd "$project" && RCTD=$repo exec bash -euo pipefail -c "$command") >"$work/snakemake.log" 2>&1 &
snakemake_pid=$!
rc=0
wait "$snakemake_pid" || rc=$?
snakemake_pid=""
[ "$rc" = 0 ] || {
  tail -n 60 "$work/snakemake.log" >&2
  fail "snakemake through the SLURM profile failed (last lines above)"
}
log "snakemake through SLURM took $(($(date +%s) - start)) s"

# ---- every job ran under SLURM: Snakemake's sbatch logs name the jobs, sacct -c has them
jobs_expected=$((1 + 3 * (3 + samples_shards)))
sacct -c -a -P -n --format=JobIdRaw,Partition,State,NodeList >"$work/sacct.txt" ||
  fail "sacct -c failed"
n_records=$(wc -l <"$work/sacct.txt")
[ "$n_records" = "$jobs_expected" ] ||
  fail "sacct lists $n_records jobs, not $jobs_expected: $(cat "$work/sacct.txt")"
for rule in reference normalize sigma fit merge; do
  partition=main
  [ "$rule" = fit ] && partition=fits
  for slurm_log in "$project"/.snakemake/slurm_logs/rule_"$rule"/*.log; do
    [ -f "$slurm_log" ] || fail "no SLURM job log of rule $rule"
    id=$(basename "$slurm_log" .log)
    grep -qx "$id|$partition|COMPLETED|localhost" "$work/sacct.txt" ||
      fail "rule $rule's job $id is not a COMPLETED job of partition $partition in sacct"
  done
done
for sample in puck_h5ad puck_10x puck_csv; do
  n=$(grep -l "wildcards: .*sample=$sample" "$project"/.snakemake/slurm_logs/rule_fit/*.log |
    wc -l)
  [ "$n" = "$samples_shards" ] || fail "$n SLURM fit jobs for $sample, not $samples_shards"
done
log "sacct: $n_records completed SLURM jobs, the $((3 * samples_shards)) fits in partition fits"

# ---- the outputs equal rctd run's
for spec in "puck_h5ad:doublet:$vignette/h5ad/spatial.h5ad" \
  "puck_10x:full:$inputs/spatial.h5:--coords-table $inputs/coords.csv" \
  "puck_csv:multi:$vignette/csv/spatial"; do
  IFS=: read -r sample mode spatial extra <<<"$spec"
  mkdir -p "$work/run"
  # shellcheck disable=SC2086 # extra: options split on purpose
  "$bin_dir/rctd" run --quiet --threads 2 --cache-dir "$work/cache" \
    --reference "$vignette/h5ad/reference.h5ad" --spatial "$spatial" $extra --mode "$mode" \
    --format h5ad,csv --csv-dir "$work/run/${sample}_csv" -o "$work/run/$sample.h5ad" \
    >"$work/run/$sample.log" 2>&1 || {
    cat "$work/run/$sample.log" >&2
    fail "rctd run failed on $sample"
  }
  cmp "$project/results/$sample/$sample.h5ad" "$work/run/$sample.h5ad" ||
    fail "$sample: the SLURM workflow's h5ad differs from rctd run's"
  diff -r -x .snakemake_timestamp "$project/results/$sample/${sample}_csv" \
    "$work/run/${sample}_csv" >/dev/null ||
    fail "$sample: the SLURM workflow's CSV files differ from rctd run's"
done
log "outputs of the 3 samples are byte-identical to rctd run's"

stop_daemons || exit 1
log "passed: $jobs_expected SLURM jobs, every daemon stopped"
