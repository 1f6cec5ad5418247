#!/bin/sh
# End-to-end test of workflows/: the vignette as four samples: A (h5ad, doublet, 3 shards),
# B (h5ad, multi, 3 shards), C (spacexr CSV directory) and D (MTX directory + coords table).
#   1. Snakemake runs the workflow; A's and B's outputs equal `rctd run`'s byte for byte.
#   2. A second run does nothing; after touching A's input only A's jobs run again (dry run,
#      then real run checked by file times), and A's outputs are unchanged.  Changing one file
#      inside C's or D's directory (or D's coords table) reruns that sample only.  Changing
#      cache_dir, tmp_dir and threads reruns nothing and changes no params; changing
#      fit_options does.  The slurm profile dry-runs without $USER and sets no account.
#   3. Bad configs (missing spatial, a sample twice, a missing file, shards 0, ...) stop with
#      one line naming the sample and the key, before any job.
#   4. The Nextflow modules' script: blocks, run in main.nf's order without Nextflow
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

# Each sample its own copy of the spatial input, so that touching one leaves the other alone;
# C is spacexr's CSV directory, D a 10x MTX directory with a coordinates table.
mkdir -p "$work/inputs"
for s in A B; do
  cp "$vignette/spatial.h5ad" "$work/inputs/$s.h5ad"
  chmod u+w "$work/inputs/$s.h5ad"
done
cp -r "$repo/data/vignette/csv/spatial" "$work/inputs/C_csv"
chmod -R u+w "$work/inputs/C_csv"
/usr/bin/python3 "$repo/tests/workflows/vignette_inputs.py" "$repo/data/vignette/csv/spatial" \
  "$work/inputs/D"

# write_config FILE CACHE_DIR THREADS TMP_DIR [EXTRA SAMPLE LINES]
write_config() {
  cat >"$1" <<EOF
bin_dir: $bin_dir
outdir: out
reference:
  input: $vignette/reference.h5ad
  threads: $3
cache_dir: $2
tmp_dir: $4
formats: h5ad,csv
defaults:
  threads: $3
  chunk_pixels: 25
samples:
  A: {spatial: inputs/A.h5ad, mode: doublet, shards: 3}
  B: {spatial: inputs/B.h5ad, mode: multi, shards: 3}
  C: {spatial: inputs/C_csv, mode: doublet, shards: 1}
  D: {spatial: inputs/D/spatial_mtx, coords_table: inputs/D/coords.csv, mode: full, shards: 1}
${5:-}
EOF
}
write_config "$work/config.yaml" "$work/cache" "$threads" ""

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

# Directory inputs are tracked file by file: changing one file inside C's CSV directory or D's
# MTX directory (the directory's own time left as it was) plans that sample's 4 jobs only.  The
# edits change text, not values (Snakemake compares the checksum of a small input, so a
# touch alone is not a change).
# planned_samples LOG: the samples of the jobs a dry run plans, sorted, with their job counts.
planned_samples() {
  sed -n 's/.*wildcards: sample=\([^,]*\).*/\1/p' "$1" | sort | uniq -c | awk '{print $2 ":" $1}' |
    tr '\n' ' '
}
for spec in 'C:inputs/C_csv/MappedDGEForR.csv:2s/,\([0-9]\)/,0\1/' \
  'D:inputs/D/spatial_mtx/matrix.mtx:1a %a comment' 'D:inputs/D/coords.csv:2s/\(\.[0-9]*\)/\10/'; do
  s=${spec%%:*}
  rest=${spec#*:}
  file=$work/${rest%%:*}
  edit=${rest#*:}
  smk --dry-run >"$work/dry-dir.log" 2>&1 || fail "dry run failed: $(cat "$work/dry-dir.log")"
  grep -q "Nothing to be done" "$work/dry-dir.log" || fail "out of date before changing $file"
  sleep 1
  dir_time=$(stat -c %Y "$(dirname "$file")")
  cp "$file" "$file.orig"
  sed -i "$edit" "$file"
  ! cmp -s "$file" "$file.orig" || fail "sed '$edit' left $file as it was"
  mv "$file.orig" "$work/edited.orig"
  touch -d "@$dir_time" "$(dirname "$file")"
  smk --dry-run >"$work/dry-dir.log" 2>&1 || fail "dry run failed: $(cat "$work/dry-dir.log")"
  planned=$(planned_samples "$work/dry-dir.log")
  [ "$planned" = "$s:4 " ] || {
    cat "$work/dry-dir.log" >&2
    fail "changing $file plans jobs '$planned', not sample $s's 4 (normalize, sigma, fit, merge)"
  }
  smk --quiet >"$work/snakemake-dir.log" 2>&1 || fail "rerun failed: $(cat "$work/snakemake-dir.log")"
done

# Settings that change no output byte (cache_dir, threads, tmp_dir) rerun nothing; an option
# that does (fit_options) reruns the fits that use it and what follows, and is listed by
# --list-params-changes.
mkdir -p "$work/tmp2"
write_config "$work/config2.yaml" "$work/cache2" 1 "$work/tmp2"
smk2() {
  snakemake -s "$snakefile" --configfile "$work/config2.yaml" --directory "$work" --cores 1 "$@"
}
smk2 --dry-run >"$work/dry-settings.log" 2>&1 || fail "dry run failed: $(cat "$work/dry-settings.log")"
grep -q "Nothing to be done" "$work/dry-settings.log" || {
  cat "$work/dry-settings.log" >&2
  fail "changing cache_dir, threads and tmp_dir would rerun jobs (above)"
}
smk2 --list-params-changes >"$work/params-changes.log" 2>&1 || fail "--list-params-changes failed"
[ -z "$(grep -v -e '^Building DAG' -e '^$' "$work/params-changes.log")" ] || {
  cat "$work/params-changes.log" >&2
  fail "changing cache_dir, threads and tmp_dir changes params (above)"
}
# The same settings reach the tools: the shell commands name the new cache and tmp dirs.
smk2 --dry-run --forceall --printshellcmds >"$work/dry-settings-all.log" 2>&1 || fail "dry run failed"
grep -q "rctd-sigma.*--cache-dir '$work/cache2' --tmp-dir '$work/tmp2'" \
  "$work/dry-settings-all.log" || fail "rctd-sigma is not given the config's cache_dir and tmp_dir"
grep -q "rctd-fit-doublet.*--threads 1 " "$work/dry-settings-all.log" ||
  fail "the fits are not given the config's threads"
sed -i 's/^  B: {/  B: {fit_options: "--max-multi-types 3", /' "$work/config2.yaml"
smk2 --list-params-changes >"$work/params-changes.log" 2>&1 || fail "--list-params-changes failed"
changed=$(grep -c "out/B/shards/multi-[123]-of-3.rctd" "$work/params-changes.log" || true)
[ "$changed" = 3 ] || {
  cat "$work/params-changes.log" >&2
  fail "changing B's fit_options lists $changed of its 3 shards as changed"
}

# ---- bad configs: one line naming the sample and the field, exit 1, before any job
bad_config() { # NAME EXPECTED-TEXT SAMPLE-LINES...
  name=$1
  expect=$2
  shift 2
  mkdir -p "$work/bad"
  {
    printf 'bin_dir: %s\noutdir: bad/%s\nreference:\n  input: %s\nsamples:\n' "$bin_dir" \
      "$name" "$vignette/reference.h5ad"
    printf '  %s\n' "$@"
  } >"$work/bad/$name.yaml"
  if snakemake -s "$snakefile" --configfile "$work/bad/$name.yaml" --directory "$work" \
    --cores 1 --quiet >"$work/bad/$name.out" 2>"$work/bad/$name.err"; then
    fail "bad config '$name' was accepted"
  fi
  [ "$(wc -l <"$work/bad/$name.err")" = 1 ] && grep -qF "$expect" "$work/bad/$name.err" || {
    cat "$work/bad/$name.err" >&2
    fail "bad config '$name': not one line saying '$expect' (above)"
  }
  [ ! -e "$work/bad/$name" ] || fail "bad config '$name' ran a job (bad/$name exists)"
}
bad_config missing-spatial "sample P: spatial is missing" "P: {mode: full}"
bad_config duplicate "bad/duplicate.yaml:7: sample P is given twice (also line 6)" \
  "P: {spatial: inputs/A.h5ad}" "P: {spatial: inputs/B.h5ad}"
bad_config no-such-input "sample P: spatial 'inputs/none.h5ad' does not exist" \
  "P: {spatial: inputs/none.h5ad}"
bad_config no-such-table "sample P: coords_table 'none.csv' does not exist" \
  "P: {spatial: inputs/A.h5ad, coords_table: none.csv}"
bad_config zero-shards "sample P: shards must be an integer >= 1 (not '0')" \
  "P: {spatial: inputs/A.h5ad, shards: 0}"
bad_config bad-mode "sample P: mode 'dublet' is not one of full, doublet, multi" \
  "P: {spatial: inputs/A.h5ad, mode: dublet}"
bad_config unknown-key "sample P: unknown key 'shard'" "P: {spatial: inputs/A.h5ad, shard: 2}"

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

echo "test_workflows: snakemake (4 samples) = rctd run, reruns as expected, bad configs refused," \
  "nextflow scripts = snakemake"
