#!/bin/sh
# tests/fuzz/run.sh DIR SECONDS NAME...: runs each libFuzzer harness DIR/NAME for SECONDS
# seconds, from a seed corpus of the repository's fixtures (plus what earlier runs kept in
# DIR/corpus/NAME), and prints one line per harness: executions, new corpus, exit status.
# Crashes, leaks, hangs and sanitizer reports land in DIR/artifacts; the exit status is 1 when
# any harness found something.
set -u
dir=$1
secs=$2
shift 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
in=$repo/tests/data/input
mkdir -p "$dir/tmp" "$dir/artifacts"
TMPDIR=$(cd "$dir/tmp" && pwd)
export TMPDIR
seeds_of() {
  case $1 in
    stream) ls "$repo"/tests/data/stream_sample_v1.rctd "$repo"/tests/data/bad-inputs/fit_*.rctd ;;
    h5ad) ls "$in"/*.h5ad ;;
    10x) ls "$in"/*.h5 ;;
    mtx) ls "$in"/mtx_v2/matrix.mtx "$in"/mtx_cells_by_genes/matrix.mtx ;;
    csv) ls "$in"/*.csv ;;
    *) ls "$repo"/tests/fuzz/seeds/"$1"/* ;;
  esac
}
failed=0
for name in "$@"; do
  corpus=$dir/corpus/$name
  seeds=$dir/seeds/$name
  rm -rf "$seeds"
  mkdir -p "$corpus" "$seeds"
  for f in $(seeds_of "$name"); do cp "$f" "$seeds/"; done
  log=$dir/$name.log
  "$dir/$name" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$name-" "$corpus" "$seeds" > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  units=$(ls "$corpus" | wc -l)
  printf 'fuzz %-12s %9s executions in %ss, corpus %5s, exit %d\n' "$name" "${execs:-?}" \
    "$secs" "$units" "$rc"
  if [ "$rc" -ne 0 ]; then
    failed=1
    tail -n 40 "$log"
  fi
done
rm -rf "$TMPDIR"
exit $failed
