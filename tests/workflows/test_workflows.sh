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
#   4. Nextflow (no runtime here): nf_scripts.py runs main.nf's statements in order with the
#      modules' script: blocks; A, B and D give Snakemake's bytes; the stub: blocks run; the
#      test profile (the bundled vignette) gives Snakemake's / rctd run's bytes; bad sample
#      sheets stop with one line; broken modules, main.nf or config are refused.
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

# ---- 3. bad configs: one line naming the sample and the field, exit 1, before any job
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

# ---- 4. Nextflow: main.nf run by nf_scripts.py (its statements in order, the modules' scripts),
# then the stubs, then the test profile; bad sample sheets; the checker's teeth.
nf() { # run in the launch directory $nf_launch
  (cd "$nf_launch" && /usr/bin/python3 "$repo/tests/workflows/nf_scripts.py" \
    --pipeline "$nf_pipeline" --bin "$bin_dir" --cpus "$threads" "$@")
}
nf_pipeline=$repo/workflows/nextflow
nf_launch=$work
cat >"$work/samples.csv" <<EOF
sample,spatial,mode,shards,chunk_pixels,coords_table
A,inputs/A.h5ad,doublet,3,25,
B,inputs/B.h5ad,multi,,,
D,inputs/D/spatial_mtx,full,1,,inputs/D/coords.csv
EOF
nf_params() { # WORK_DIR
  echo --work "$1" --param input="$work/samples.csv" --param reference="$vignette/reference.h5ad" \
    --param cache_dir="$work/cache" --param formats=h5ad,csv --param outdir="$1/out" \
    --param shards=3 --param chunk_pixels=25
}
# shellcheck disable=SC2046 # nf_params: words on purpose (no blanks in the paths)
nf $(nf_params "$work/nextflow") >"$work/nextflow.log" 2>&1 || {
  cat "$work/nextflow.log" >&2
  fail "the Nextflow pipeline failed"
}
grep -q "RCTD_REFERENCEx1 RCTD_NORMALIZEx3 RCTD_SIGMAx3 RCTD_FIT_FULLx1 RCTD_FIT_DOUBLETx3 RCTD_FIT_MULTIx3 RCTD_MERGEx3" \
  "$work/nextflow.log" || fail "unexpected tasks: $(cat "$work/nextflow.log")"
for s in A B D; do
  cmp "$work/nextflow/results/$s/$s.h5ad" "$work/out/$s/$s.h5ad" ||
    fail "sample $s: Nextflow's h5ad differs from Snakemake's"
  diff -r -x .snakemake_timestamp "$work/nextflow/results/$s/${s}_csv" "$work/out/$s/${s}_csv" \
    >/dev/null || fail "sample $s: Nextflow's CSV files differ from Snakemake's"
done
grep -q '"RCTD:RCTD_MERGE":' "$work/nextflow/out/pipeline_info/software_versions.yml" ||
  fail "no software_versions.yml"
# shellcheck disable=SC2046
nf $(nf_params "$work/nextflow-stub") --stub >"$work/nextflow-stub.log" 2>&1 || {
  cat "$work/nextflow-stub.log" >&2
  fail "the Nextflow stubs failed"
}

# -profile test, from the repository root as its config says: the vignette h5ad (doublet) gives
# A's bytes, the vignette CSV directory (multi) rctd run's.
nf_launch=$repo
nf --work "$work/nextflow-test" --profile test --param outdir="$work/nextflow-test/out" \
  --param cache_dir="$work/cache" >"$work/nextflow-test.log" 2>&1 || {
  cat "$work/nextflow-test.log" >&2
  fail "-profile test failed"
}
cmp "$work/nextflow-test/results/vignette_h5ad/vignette_h5ad.h5ad" "$work/out/A/A.h5ad" ||
  fail "-profile test: vignette_h5ad differs from Snakemake's sample A"
"$bin_dir/rctd" run --quiet --threads "$threads" --cache-dir "$work/cache" \
  --reference "$vignette/reference.h5ad" --spatial "$repo/data/vignette/csv/spatial" \
  --mode multi --format csv -o "$work/run/vignette_csv_csv" >"$work/run/csv.log" 2>&1 ||
  fail "rctd run on the CSV directory failed: $(cat "$work/run/csv.log")"
diff -r "$work/nextflow-test/results/vignette_csv/vignette_csv_csv" "$work/run/vignette_csv_csv" \
  >/dev/null || fail "-profile test: vignette_csv differs from rctd run's"
nf_launch=$work

# Bad sample sheets stop before any task, with one line naming the row, the sample and the
# column.
bad_sheet() { # NAME EXPECTED-TEXT CSV-LINES...
  name=$1
  expect=$2
  shift 2
  printf '%s\n' "$@" >"$work/bad/$name.csv"
  if nf --work "$work/bad/nf-$name" --param input="$work/bad/$name.csv" \
    --param reference="$vignette/reference.h5ad" >"$work/bad/nf-$name.out" 2>"$work/bad/nf-$name.err"; then
    fail "bad sample sheet '$name' was accepted"
  fi
  [ "$(wc -l <"$work/bad/nf-$name.err")" = 1 ] && grep -qF "$expect" "$work/bad/nf-$name.err" || {
    cat "$work/bad/nf-$name.err" >&2
    fail "bad sample sheet '$name': not one line saying '$expect' (above)"
  }
  [ -z "$(ls "$work/bad/nf-$name" 2>/dev/null)" ] || fail "bad sample sheet '$name' ran a task"
}
bad_sheet missing-column "row 2 (sample P): spatial is missing" "sample,mode" "P,full"
bad_sheet duplicate "row 3 (sample P): sample 'P' is given twice (also row 2)" \
  "sample,spatial" "P,inputs/A.h5ad" "P,inputs/B.h5ad"
bad_sheet no-such-input "row 2 (sample P): spatial: 'inputs/none.h5ad' does not exist" \
  "sample,spatial" "P,inputs/none.h5ad"
bad_sheet zero-shards "row 2 (sample P): shards: give an integer of at least 1" \
  "sample,spatial,shards" "P,inputs/A.h5ad,0"
bad_sheet no-such-table "row 2 (sample P): coords_table: 'none.csv' does not exist" \
  "sample,spatial,coords_table" "P,inputs/A.h5ad,none.csv"

# The checker has teeth: a module without its tag, a script with an unescaped bash $(...),
# main.nf calling RCTD_SIGMA before RCTD_NORMALIZE (the order is read from main.nf),
# Channel. or an implicit 'it', a function in the config: each is refused.
for breakage in 'modules/local/rctd_sigma/main.nf:s/^    tag .*$//' \
  'modules/local/rctd_sigma/main.nf:s/\\\$(rctd-sigma --version/$(rctd-sigma --version/' \
  'main.nf:/^    RCTD_NORMALIZE(ch_samples/{h;d};/^    RCTD_SIGMA(/{G}' \
  'main.nf:s/ch_versions = channel.empty()/ch_versions = Channel.empty()/' \
  'main.nf:s/map { versions -> versions.text }/map { it.text }/' \
  'nextflow.config:$a def cap(x) { x }'; do
  file=${breakage%%:*}
  rm -rf "$work/nf-broken"
  cp -r "$repo/workflows/nextflow" "$work/nf-broken"
  cp "$work/nf-broken/$file" "$work/nf-broken.orig"
  sed -i "${breakage#*:}" "$work/nf-broken/$file"
  ! cmp -s "$work/nf-broken/$file" "$work/nf-broken.orig" || fail "sed '$breakage' changed nothing"
  nf_pipeline=$work/nf-broken
  # shellcheck disable=SC2046
  if nf $(nf_params "$work/nf-broken-run") --stub >"$work/nf-broken.log" 2>&1; then
    fail "nf_scripts.py accepted a broken pipeline ($breakage)"
  fi
  nf_pipeline=$repo/workflows/nextflow
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
