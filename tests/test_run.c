/* rctd run / rctd validate end to end on the vignette: every mode against R's results
 * (tests/data/gold/vignette: categorical calls equal, weights within 1e-6), the pipe form equal
 * to the file form byte for byte, intermediates, a YAML config, failures that leave no output. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static char tr_dir[1024], tr_bin[PATH_MAX], tr_data[PATH_MAX], tr_repo[PATH_MAX];
static int tr_ready = -1;

static int tr_setup(void) {
  if (tr_ready >= 0) return tr_ready;
  snprintf(tr_dir, sizeof tr_dir, "%s/run", test_tmp_dir());
  tr_ready = realpath(test_bin_dir(), tr_bin) && realpath(test_repo_dir(), tr_data) &&
             realpath(".", tr_repo) && test_sh("mkdir -p '%s/cache'", tr_dir) == 0;
  return tr_ready;
}

/* A command in tr_dir with the binaries on PATH and a private table cache; stderr to err.txt. */
#define TR_SH(fmt, ...)                                                    \
  test_sh(                                                                 \
      "cd '%s' && PATH='%s':$PATH && XDG_CACHE_HOME='%s/cache' && export " \
      "XDG_CACHE_HOME && " fmt " 2> err.txt",                              \
      tr_dir, tr_bin, tr_dir, ##__VA_ARGS__)

#define TR_REF "'%s/data/vignette/h5ad/reference.h5ad'"
#define TR_SPATIAL "'%s/data/vignette/h5ad/spatial.h5ad'"

static int tr_err_has(const char *text) {
  return test_sh("grep -q -- '%s' '%s/err.txt'", text, tr_dir) == 0;
}

static int tr_check_gold(const char *h5ad, const char *csv_dir, const char *mode) {
  return test_sh(
             "/usr/bin/python3 '%s/tests/h5ad_check.py' '%s/%s' '%s/tests/data/gold/vignette/%s' %s "
             "--spatial '%s/data/vignette/h5ad/spatial.h5ad' >&2 && "
             "/usr/bin/python3 '%s/tests/csv_check.py' '%s/%s' '%s/tests/data/gold/vignette/%s' %s >&2",
             tr_repo, tr_dir, h5ad, tr_data, mode, mode, tr_data, tr_repo, tr_dir, csv_dir,
             tr_data, mode, mode) == 0;
}

static void tr_mode_matches_r(int *failed_, const char *mode) {
  CHECK(tr_setup());
  CHECK_MSG(TR_SH("rctd run --reference " TR_REF " --reference-numi-col nUMI --spatial " TR_SPATIAL
                  " --mode %s --format h5ad,csv -o %s.h5ad > %s.summary",
                  tr_data, tr_data, mode, mode, mode) == 0,
            "rctd run --mode %s failed", mode);
  char h5ad[64];
  snprintf(h5ad, sizeof h5ad, "%s.h5ad", mode);
  CHECK_MSG(tr_check_gold(h5ad, mode, mode), "%s mode differs from R", mode);
  CHECK(test_sh("grep -q '^RCTD %s mode: sigma 0.84' '%s/%s.summary'", mode, tr_dir, mode) == 0);
}

TEST_E2E(run_vignette_doublet_matches_r) {
  tr_mode_matches_r(failed_, "doublet");
}

TEST_E2E(run_vignette_full_matches_r) {
  tr_mode_matches_r(failed_, "full");
}

TEST_E2E(run_vignette_multi_matches_r) {
  tr_mode_matches_r(failed_, "multi");
}

/* The stages by hand through pipes, through files, and rctd run: the same bytes. */
TEST_E2E(run_pipe_form_equals_file_form) {
  CHECK(tr_setup());
  CHECK(TR_SH("rctd-reference -q " TR_REF " --numi-col nUMI | rctd-normalize -q " TR_SPATIAL
              " - | rctd-sigma -q | rctd-fit-doublet -q | rctd-merge -q --spatial " TR_SPATIAL
              " --format h5ad,csv -o pipe.h5ad",
              tr_data, tr_data, tr_data) == 0);
  CHECK(TR_SH("rctd-reference -q " TR_REF
              " --numi-col nUMI -o f1.rctd && rctd-normalize -q " TR_SPATIAL
              " f1.rctd -o f2.rctd && rctd-sigma -q f2.rctd -o f3.rctd && "
              "rctd-fit-doublet -q f3.rctd -o f4.rctd && rctd-merge -q --spatial " TR_SPATIAL
              " --format h5ad,csv -o file.h5ad f4.rctd",
              tr_data, tr_data, tr_data) == 0);
  CHECK(TR_SH("rctd run -q --no-summary --reference " TR_REF " --reference-numi-col nUMI "
              "--spatial " TR_SPATIAL " --format h5ad,csv -o run.h5ad",
              tr_data, tr_data) == 0);
  CHECK(TR_SH("cmp pipe.h5ad file.h5ad && cmp pipe.h5ad run.h5ad && diff -r pipe file && "
              "diff -r pipe run") == 0);
  CHECK(tr_check_gold("run.h5ad", "run", "doublet"));
  /* Intermediates kept: stage by stage through files, same result. */
  CHECK(TR_SH("rctd run -q --no-summary --reference " TR_REF " --reference-numi-col nUMI "
              "--spatial " TR_SPATIAL " -o kept.h5ad --keep-intermediates inter --json kept.json",
              tr_data, tr_data) == 0);
  CHECK(TR_SH("cmp pipe.h5ad kept.h5ad && test -s inter/4-fit.rctd && "
              "test -s inter/1-reference.rctd && test -s inter/2-model.rctd && "
              "test -s inter/3-sigma.rctd") == 0);
  CHECK(
      test_sh("/usr/bin/python3 -c \"import json; d = json.load(open('%s/kept.json')); "
              "t = d['stage_timings']; assert set(t) == {'reference_s', 'normalize_s', "
              "'sigma_s', 'fit_s', 'merge_s', 'total_s'}, t; assert d['pixels']['fitted'] == 71\"",
              tr_dir) == 0);
}

/* Options from a YAML file (R's names work), the command line winning. */
TEST_E2E(run_config_file) {
  CHECK(tr_setup());
  CHECK(test_sh("printf 'reference_numi_col: nUMI\\ndoublet_mode: multi\\nMAX_MULTI_TYPES: 3\\n"
                "format: csv\\n' > '%s/run.yaml'",
                tr_dir) == 0);
  CHECK(TR_SH("rctd run -q --no-summary --config run.yaml --reference " TR_REF
              " --spatial " TR_SPATIAL " --mode full -o cfg",
              tr_data, tr_data) == 0);
  CHECK(test_sh("test -s '%s/cfg/weights.csv' && test ! -e '%s/cfg/multi_results.csv'", tr_dir,
                tr_dir) == 0);
  CHECK(test_sh("/usr/bin/python3 '%s/tests/csv_check.py' '%s/cfg' '%s/tests/data/gold/vignette/full' "
                "full >&2",
                tr_repo, tr_dir, tr_data) == 0);
  CHECK(TR_SH("rctd run -q --config run.yaml --reference " TR_REF " --spatial " TR_SPATIAL
              " --umi-min abc -o bad",
              tr_data, tr_data) == 2);
  CHECK(tr_err_has("--umi-min: invalid number"));
}

TEST_E2E(run_failure_leaves_no_output) {
  CHECK(tr_setup());
  CHECK(TR_SH("rctd run -q --reference missing.h5ad --spatial " TR_SPATIAL " -o fail.h5ad",
              tr_data) == 1);
  CHECK(tr_err_has("reference failed") && tr_err_has("missing.h5ad"));
  CHECK(test_sh("cd '%s' && test ! -e fail.h5ad && ! ls -A | grep -q '\\.tmp\\.'", tr_dir) == 0);
  /* A failing middle stage (no cell type column in the spatial data is fine; too few pixels
   * is not). */
  CHECK(TR_SH("rctd run -q --reference " TR_REF " --reference-numi-col nUMI --spatial " TR_SPATIAL
              " --umi-min 1e9 -o fail.h5ad",
              tr_data, tr_data) == 1);
  CHECK(tr_err_has("normalize failed"));
  CHECK(test_sh("cd '%s' && test ! -e fail.h5ad", tr_dir) == 0);
  CHECK(TR_SH("rctd run --spatial x -o y.h5ad") == 2);
  CHECK(TR_SH("rctd frobnicate") == 2);
  /* float32 fits need a CUDA device: refused before any stage runs (no reference read). */
  CHECK(TR_SH("rctd run -q --reference missing.h5ad --spatial " TR_SPATIAL
              " --precision float32 -o fail.h5ad",
              tr_data) == 2);
  CHECK(tr_err_has("--precision float32 is for CUDA devices only") && !tr_err_has("reference"));
  CHECK(TR_SH("rctd run -q --reference missing.h5ad --spatial " TR_SPATIAL
              " --device cpu --precision float32 -o fail.h5ad",
              tr_data) == 2);
  CHECK(tr_err_has("--precision float32 is for CUDA devices only"));
  CHECK(TR_SH("rctd run -q --reference missing.h5ad --spatial " TR_SPATIAL
              " --precision half -o fail.h5ad",
              tr_data) == 2);
  CHECK(tr_err_has("--precision half: expected float64 or float32"));
  /* With a CUDA device it goes on to the stages (here: the missing reference fails, and on a
   * machine without a device the stages that need one fail too, whichever first: the stage named
   * is one that failed by itself, not one rctd run then stopped). */
  CHECK(TR_SH("rctd run -q --reference missing.h5ad --spatial " TR_SPATIAL
              " --device cuda --precision float32 -o fail.h5ad",
              tr_data) == 1);
  CHECK(tr_err_has("reference failed (exit status 1)") ||
        (tr_err_has("no usable CUDA device") && tr_err_has("failed (exit status 2)")));
  CHECK(test_sh("cd '%s' && test ! -e fail.h5ad", tr_dir) == 0);
  CHECK(TR_SH("rctd version | grep -q '^rctd '") == 0);
}

TEST_E2E(run_validate) {
  CHECK(tr_setup());
  CHECK(TR_SH("rctd validate --reference " TR_REF " --reference-numi-col nUMI --spatial " TR_SPATIAL
              " > validate.txt",
              tr_data, tr_data) == 0);
  CHECK(test_sh("cd '%s' && grep -q '19 cell types' validate.txt && "
                "grep -q '71 pixels pass the filters' validate.txt && "
                "grep -q '^genes: 378 shared' validate.txt && grep -q '^ok' validate.txt",
                tr_dir) == 0);
  CHECK(TR_SH("rctd validate --reference " TR_REF " --cell-type-col nope --spatial " TR_SPATIAL
              " > validate.txt",
              tr_data, tr_data) == 1);
  CHECK(test_sh("grep -q 'PROBLEM: reference: .*nope' '%s/validate.txt'", tr_dir) == 0);
  CHECK(TR_SH("rctd validate --reference " TR_REF " --spatial " TR_SPATIAL
              " --umi-min 1e9 > validate.txt",
              tr_data, tr_data) == 1);
  CHECK(test_sh("grep -q 'no pixel passes the filters' '%s/validate.txt'", tr_dir) == 0);
  CHECK(TR_SH("rctd validate --reference " TR_REF " --spatial " TR_SPATIAL
              " --cell-min 1000 > validate.txt",
              tr_data, tr_data) == 1);
  CHECK(test_sh("grep -q 'CELL_MIN_INSTANCE' '%s/validate.txt'", tr_dir) == 0);
}
