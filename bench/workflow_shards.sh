#!/bin/bash
# Measures what workflows/README.md's sharding guide says: the cost of each step of one sample
# and of one fit shard (wall, CPU, peak memory) as the shard count and chunk_pixels change.
# The sample: the vignette's 100 beads tiled to N pixels (same counts, new barcodes and
# coordinates) against the vignette reference (K = 19 types, 384 genes); or, with RECIPE, a
# synthetic slide of real-world shape from bench/slide (lib/stage/synth_slide.h: realistic = K 30,
# k50 = K 50; 20,000 genes), which costs more per pixel.
# Usage: bench/workflow_shards.sh [N_PIXELS [OUT_DIR [RECIPE]]]  (default 20000, out/bench/shards)
set -euo pipefail
cd "$(dirname "$0")/.."
n_pixels=${1:-20000}
out=${2:-out/bench/shards}
bin=$(pwd)/bin
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/cache"
reference=data/vignette/h5ad/reference.h5ad
spatial=$out/tiled.h5ad
if [ $# -ge 3 ]; then
  make --no-print-directory build/release/bench/slide >&2
  build/release/bench/slide -g -r "$3" -n "$n_pixels" -d "$out/data" >&2
  reference=$(ls "$out"/data/*/reference.h5ad)
  spatial=$(ls "$out"/data/*/spatial-"$n_pixels".h5)
else
# tiled.h5ad: the vignette's beads repeated to n_pixels.
/usr/bin/python3 - "$n_pixels" "$out/tiled.h5ad" <<'PY'
import sys
import anndata, numpy as np, scipy.sparse as sp
n, path = int(sys.argv[1]), sys.argv[2]
a = anndata.read_h5ad("data/vignette/h5ad/spatial.h5ad")
reps = -(-n // a.n_obs)
X = sp.vstack([a.X] * reps).tocsr()[:n]
coords = np.vstack([a.obsm["spatial"] + [6000.0 * (r % 100), 6000.0 * (r // 100)] for r in range(reps)])[:n]
names = [f"{b}-{r}" for r in range(reps) for b in a.obs_names][:n]
t = anndata.AnnData(X=X, obs={"_": np.zeros(n)}, var=a.var)
t.obs_names = names
t.obs = t.obs[[]]
t.obsm["spatial"] = coords
t.write_h5ad(path)
PY
fi

# measure LABEL CMD...: one line "LABEL wall_s cpu_s peak_rss_mb" into $out/measures.txt
measure() {
  local label=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$out/time.txt" "$@" 2>"$out/last.err" >/dev/null || {
    cat "$out/last.err" >&2
    echo "workflow_shards: $label failed" >&2
    exit 1
  }
  read -r wall user sys rss <"$out/time.txt"
  printf '%-40s wall_s=%7.2f cpu_s=%7.2f peak_rss_mb=%7.1f\n' "$label" "$wall" \
    "$(echo "$user + $sys" | bc)" "$(echo "scale=1; $rss / 1024" | bc)" | tee -a "$out/measures.txt"
}

: >"$out/measures.txt"
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), N=$n_pixels" |
  tee -a "$out/measures.txt"
measure "reference" "$bin/rctd-reference" --threads 1 -o "$out/ref.rctd" "$reference"
[ $# -ge 3 ] || echo "# pixels kept: the vignette keeps 71 of its 100 beads" | tee -a "$out/measures.txt"
measure "normalize N=$n_pixels" "$bin/rctd-normalize" --threads 1 -o "$out/model.rctd" \
  "$spatial" "$out/ref.rctd"
measure "sigma (table built)" "$bin/rctd-sigma" --threads 1 --cache-dir "$out/cache" \
  -o "$out/sigma.rctd" "$out/model.rctd"
measure "sigma (table cached)" "$bin/rctd-sigma" --threads 1 --cache-dir "$out/cache" \
  -o "$out/sigma.rctd" "$out/model.rctd"
for mode in doublet full multi; do
  measure "fit-$mode 1 shard, 1 thread" "$bin/rctd-fit-$mode" --threads 1 \
    --cache-dir "$out/cache" -o "$out/fit-$mode.rctd" "$out/sigma.rctd"
done
measure "merge (doublet, 1 shard)" "$bin/rctd-merge" --spatial "$spatial" --threads 1 \
  -o "$out/merged.h5ad" "$out/fit-doublet.rctd"
# One shard's memory as chunk_pixels and threads change (doublet, the default mode).
for chunk in 256 1024 4096 16384; do
  for threads in 1 2; do
    measure "fit-doublet chunk $chunk, $threads threads" "$bin/rctd-fit-doublet" \
      --threads "$threads" --chunk-pixels "$chunk" --cache-dir "$out/cache" \
      -o "$out/fit.rctd" "$out/sigma.rctd"
  done
done
# The fixed cost of a shard: one chunk of 16 pixels (reading the sigma stream, the table, setup).
measure "fit-doublet shard of 16 pixels" "$bin/rctd-fit-doublet" --threads 1 --chunk-pixels 16 \
  --shard "1/$((n_pixels / 16))" --cache-dir "$out/cache" -o "$out/fit.rctd" "$out/sigma.rctd"
echo "workflow_shards: results in $out/measures.txt" >&2
