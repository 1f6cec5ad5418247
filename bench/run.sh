#!/bin/bash
# Runs every benchmark program (bench/NAME.c, built by `make bench` into $RCTD_BENCH_BIN) with its
# default arguments, or only those named in $RCTD_BENCH_ONLY (space-separated), and keeps the
# output in out/bench/results.txt.  Extra arguments for one program: $RCTD_BENCH_ARGS_NAME.
set -eo pipefail
cd "$(dirname "$0")/.."
bench_bin=${RCTD_BENCH_BIN:-build/release/bench}
mkdir -p out/bench
results=out/bench/results.txt
{
  echo "# rctd $(cat VERSION) bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
  for prog in "$bench_bin"/*; do
    [ -f "$prog" ] && [ -x "$prog" ] || continue
    name=$(basename "$prog")
    if [ -n "$RCTD_BENCH_ONLY" ]; then
      case " $RCTD_BENCH_ONLY " in *" $name "*) ;; *) continue ;; esac
    fi
    eval "args=\${RCTD_BENCH_ARGS_$name:-}"
    echo "== $name $args"
    # shellcheck disable=SC2086
    "$prog" $args
  done
} 2>&1 | tee "$results"
echo "bench: results in $results" >&2
