#!/bin/sh
# End-to-end test of workflows/: the vignette as two samples (A doublet, B multi), 3 shards
# each.
#   1. Snakemake runs the workflow; the outputs equal `rctd run`'s byte for byte.
#   2. A second run does nothing; after touching A's input only A's jobs run again (dry run,
#      then real run checked by file times), and A's outputs are unchanged.
#   3. The Nextflow modules' script: blocks, run in main.nf's order without Nextflow
#      (nf_scripts.py), give the same bytes as Snakemake; the stub: blocks run too.
# Usage: test_workflows.sh BIN_DIR WORK_DIR   (WORK_DIR: a fresh directory)
# Exit status 0 on success, 77 when snakemake is not installed, 1 on a failure.
set -eu

bin_dir=$(cd "$1" && pwd)
mkdir -p "$2"
work=$(cd "$2" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
snakefile="$repo/workflows/snakemake/Snakefile"
vignette="$repo/data/vignette/h5ad"
threads=2

fail() {
  echo "test_workflows: $*" >&2
  exit 1
}

if ! command -v snakemake >/dev/null 2>&1; then
  echo "test_workflows: snakemake is not installed (apt-get install snakemake); skipped" >&2
  exit 77
fi

# Each sample its own copy of the spatial input, so that touching one leaves the other alone.
mkdir -p "$work/inputs"
for s in A B; do
  cp "$vignette/spatial.h5ad" "$work/inputs/$s.h5ad"
  chmod u+w "$work/inputs/$s.h5ad"
done

cat >"$work/config.yaml" <<EOF
bin_dir: $bin_dir
outdir: out
reference:
  input: $vignette/reference.h5ad
  threads: $threads
cache_dir: $work/cache
formats: h5ad,csv
defaults:
  threads: $threads
  chunk_pixels: 25
samples:
  A: {spatial: inputs/A.h5ad, mode: doublet, shards: 3}
  B: {spatial: inputs/B.h5ad, mode: multi, shards: 3}
EOF

smk() {
  snakemake -s "$snakefile" --configfile "$work/config.yaml" --directory "$work" \
    --cores "$threads" "$@"
}

# ---- 1. the workflow, then rctd run on the same inputs
smk --quiet >"$work/snakemake-1.log" 2>&1 || {
  cat "$work/snakemake-1.log" >&2
  fail "snakemake failed (log above)"
}
for s in A B; do
  for f in model.rctd sigma.rctd $s.h5ad $s.json; do
    [ -s "$work/out/$s/$f" ] || fail "snakemake wrote no out/$s/$f"
  done
  for rule in normalize sigma merge; do
    [ -f "$work/out/logs/$s/$rule.log" ] || fail "no log of rule $rule for sample $s"
  done
  n=$(ls "$work/out/$s/shards" | wc -l)
  [ "$n" = 3 ] || fail "sample $s has $n shard files, not 3"
done
[ -s "$work/out/reference/reference.rctd" ] || fail "no reference stream"
# Every shard fitted pixels (chunk_pixels 25 over the vignette's 71 pixels: one chunk each).
for shard in "$work"/out/*/shards/*.rctd; do
  "$bin_dir/rctd-view" "$shard" | grep -q '^result.weights' || fail "$shard holds no pixels"
done

mkdir -p "$work/run"
for spec in A:doublet B:multi; do
  s=${spec%%:*}
  mode=${spec#*:}
  "$bin_dir/rctd" run --quiet --threads "$threads" --cache-dir "$work/cache" \
    --reference "$vignette/reference.h5ad" --spatial "$work/inputs/$s.h5ad" --mode "$mode" \
    -o "$work/run/$s.h5ad" >"$work/run/$s.log" 2>&1 || {
    cat "$work/run/$s.log" >&2
    fail "rctd run failed on sample $s"
  }
  "$bin_dir/rctd" run --quiet --threads "$threads" --cache-dir "$work/cache" \
    --reference "$vignette/reference.h5ad" --spatial "$work/inputs/$s.h5ad" --mode "$mode" \
    --format csv -o "$work/run/${s}_csv" >>"$work/run/$s.log" 2>&1 || {
    cat "$work/run/$s.log" >&2
    fail "rctd run --format csv failed on sample $s"
  }
  cmp "$work/out/$s/$s.h5ad" "$work/run/$s.h5ad" ||
    fail "sample $s: the workflow's h5ad differs from rctd run's"
  diff -r -x .snakemake_timestamp "$work/out/$s/${s}_csv" "$work/run/${s}_csv" >/dev/null ||
    fail "sample $s: the workflow's CSV files differ from rctd run's"
done

# ---- 2. reruns
smk --dry-run >"$work/dry-0.log" 2>&1 || fail "dry run failed: $(cat "$work/dry-0.log")"
grep -q "Nothing to be done" "$work/dry-0.log" || {
  cat "$work/dry-0.log" >&2
  fail "a second run would redo jobs (above)"
}

sleep 1
touch "$work/inputs/A.h5ad"
smk --dry-run >"$work/dry-1.log" 2>&1 || fail "dry run failed: $(cat "$work/dry-1.log")"
grep -q "wildcards: sample=A" "$work/dry-1.log" || fail "touching A's input redoes nothing"
if grep -q "wildcards: sample=B" "$work/dry-1.log" || grep -q "^rule reference:" "$work/dry-1.log"; then
  cat "$work/dry-1.log" >&2
  fail "touching A's input would redo B's jobs or the reference (above)"
fi
# A's jobs: normalize, sigma, 3 fits, merge.
jobs=$(grep -c "wildcards: sample=A" "$work/dry-1.log")
[ "$jobs" = 6 ] || fail "touching A's input plans $jobs jobs for A, not 6"

touch "$work/before-rerun"
sleep 1
smk --quiet >"$work/snakemake-2.log" 2>&1 || {
  cat "$work/snakemake-2.log" >&2
  fail "snakemake rerun failed"
}
redone=$(cd "$work/out" && find . -type f -newer "$work/before-rerun" | sort)
for f in A/model.rctd A/sigma.rctd A/shards/doublet-1-of-3.rctd A/shards/doublet-3-of-3.rctd \
  A/A.h5ad logs/A/merge.log; do
  echo "$redone" | grep -qx "./$f" || fail "rerun did not redo out/$f"
done
others=$(echo "$redone" | grep -v -e '^\./A/' -e '^\./logs/A/' || true)
[ -z "$others" ] || fail "rerun after touching A rewrote other files: $others"
cmp "$work/out/A/A.h5ad" "$work/run/A.h5ad" || fail "sample A's h5ad changed on the rerun"

# ---- 3. Nextflow: the modules' scripts in main.nf's order, then their stubs
nf() {
  python3 "$repo/tests/workflows/nf_scripts.py" --pipeline "$repo/workflows/nextflow" \
    --bin "$bin_dir" --reference "$vignette/reference.h5ad" --cache-dir "$work/cache" \
    --formats h5ad,csv --cpus "$threads" \
    --sample "A:$work/inputs/A.h5ad:doublet:3:25" --sample "B:$work/inputs/B.h5ad:multi:3:25" "$@"
}
nf --work "$work/nextflow" >"$work/nextflow.log" 2>&1 || {
  cat "$work/nextflow.log" >&2
  fail "the Nextflow scripts failed"
}
for s in A B; do
  cmp "$work/nextflow/results/$s/$s.h5ad" "$work/out/$s/$s.h5ad" ||
    fail "sample $s: Nextflow's h5ad differs from Snakemake's"
  diff -r -x .snakemake_timestamp "$work/nextflow/results/$s/${s}_csv" "$work/out/$s/${s}_csv" \
    >/dev/null || fail "sample $s: Nextflow's CSV files differ from Snakemake's"
done
nf --work "$work/nextflow-stub" --stub >"$work/nextflow-stub.log" 2>&1 || {
  cat "$work/nextflow-stub.log" >&2
  fail "the Nextflow stubs failed"
}

# The checker has teeth: a module without its tag, or a script with an unescaped bash $(...),
# is refused before anything runs.
for breakage in 's/^    tag .*$//' 's/\\\$(rctd-sigma --version/$(rctd-sigma --version/'; do
  rm -rf "$work/nf-broken"
  cp -r "$repo/workflows/nextflow" "$work/nf-broken"
  sed -i "$breakage" "$work/nf-broken/modules/rctd_sigma.nf"
  if nf --pipeline "$work/nf-broken" --work "$work/nf-broken-run" --stub \
    >"$work/nf-broken.log" 2>&1; then
    fail "nf_scripts.py accepted a broken module (sed '$breakage')"
  fi
  rm -rf "$work/nf-broken-run"
done

# The slurm profile parses without $USER, names no account (Snakemake 7 would check one with
# sacctmgr, which needs slurmdbd), and gives each job the resources of the config
# (make test-slurm runs it on a real cluster).
env -u USER snakemake -s "$snakefile" --configfile "$work/config.yaml" --directory "$work" \
  --profile "$repo/workflows/snakemake/profiles/slurm" --dry-run --forceall \
  >"$work/slurm.log" 2>&1 || {
  cat "$work/slurm.log" >&2
  fail "dry run with the slurm profile (USER unset) failed"
}
if grep -v '^ *#' "$repo/workflows/snakemake/profiles/slurm/config.yaml" | grep -q slurm_account ||
  grep -q "slurm_account" "$work/slurm.log"; then
  fail "the slurm profile sets an account"
fi

echo "test_workflows: snakemake (2 samples x 3 shards) = rctd run, rerun redoes one sample," \
  "nextflow scripts = snakemake"
