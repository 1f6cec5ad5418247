/* rctd-merge on real result streams of the vignette (rctd-reference | rctd-normalize |
 * rctd-sigma | rctd-fit-doublet, run once per test run): shards in any number and order give
 * the same bytes; missing, duplicated, foreign and truncated shards are refused with a message
 * naming them and leave no output. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sigma.h"
#include "stream.h"
#include "test.h"

static char tm_dir[1024], tm_bin[PATH_MAX], tm_repo[PATH_MAX];
static int tm_ready = -1;

/* Runs a shell command in tm_dir with the binaries on PATH; returns its exit status. */
#define TM_SH(...) test_sh("cd '%s' && PATH='%s':$PATH && " __VA_ARGS__)

/* The vignette through sigma (model.rctd), the unsharded fit and its 3- and 7-shard fits. */
static int tm_setup(void) {
  if (tm_ready >= 0) return tm_ready;
  snprintf(tm_dir, sizeof tm_dir, "%s/merge", test_tmp_dir());
  /* Absolute paths: the commands run in tm_dir. */
  if (!realpath(test_bin_dir(), tm_bin) || !realpath(test_repo_dir(), tm_repo))
    return tm_ready = 0;
  const char *sh = tm_repo, *bin = tm_bin;
  tm_ready = test_sh("mkdir -p '%s/cache'", tm_dir) == 0 &&
             TM_SH(
                 "rctd-reference -q '%s/data/vignette/h5ad/reference.h5ad' --numi-col nUMI | "
                 "rctd-normalize -q '%s/data/vignette/h5ad/spatial.h5ad' - | "
                 "rctd-sigma -q --cache-dir cache -o model.rctd",
                 tm_dir, bin, sh, sh) == 0 &&
             TM_SH("rctd-fit-doublet -q --cache-dir cache --chunk-pixels 8 model.rctd -o fit.rctd",
                   tm_dir, bin) == 0 &&
             TM_SH(
                 "for i in 1 2 3; do rctd-fit-doublet -q --cache-dir cache --chunk-pixels 8 "
                 "--shard $i/3 model.rctd -o s$i.rctd || exit 1; done",
                 tm_dir, bin) == 0 &&
             TM_SH(
                 "for i in 1 2 3 4 5 6 7; do rctd-fit-doublet -q --cache-dir cache "
                 "--chunk-pixels 8 --shard $i/7 model.rctd -o t$i.rctd || exit 1; done",
                 tm_dir, bin) == 0;
  return tm_ready;
}

/* rctd-merge ARGS in tm_dir with the vignette's spatial h5ad; stderr to merge.err. */
static int tm_merge(const char *args) {
  return TM_SH("rctd-merge -q --spatial '%s/data/vignette/h5ad/spatial.h5ad' %s 2> merge.err",
               tm_dir, tm_bin, tm_repo, args);
}

static int tm_err_has(const char *text) {
  return test_sh("grep -q -- '%s' '%s/merge.err'", text, tm_dir) == 0;
}

static int tm_same(const char *a, const char *b) {
  return test_sh("cd '%s' && cmp -s %s %s", tm_dir, a, b) == 0;
}

static int tm_same_dir(const char *a, const char *b) {
  return test_sh("cd '%s' && diff -r %s %s >/dev/null", tm_dir, a, b) == 0;
}

static int tm_absent(const char *path) {
  return test_sh("cd '%s' && test ! -e %s && ! ls -A | grep -q '\\.tmp\\.'", tm_dir, path) == 0;
}

TEST_E2E(merge_shards_give_identical_bytes) {
  CHECK_MSG(tm_setup(), "the vignette pipeline did not run (binaries in %s)", test_bin_dir());
  CHECK(tm_merge("fit.rctd -o one.h5ad --format h5ad,csv") == 0);
  CHECK(tm_merge("s3.rctd s1.rctd s2.rctd -o three.h5ad --format h5ad,csv") == 0);
  CHECK(tm_merge("t5.rctd t1.rctd t7.rctd t3.rctd t2.rctd t6.rctd t4.rctd -o seven.h5ad "
                 "--format h5ad,csv") == 0);
  CHECK_MSG(tm_same("one.h5ad", "three.h5ad"), "3 shards: h5ad bytes differ");
  CHECK_MSG(tm_same("one.h5ad", "seven.h5ad"), "7 shards: h5ad bytes differ");
  CHECK_MSG(tm_same_dir("one", "three") && tm_same_dir("one", "seven"), "CSV files differ");
  /* Standard input among files, and alone. */
  CHECK(TM_SH("cat s2.rctd | rctd-merge -q --spatial '%s/data/vignette/h5ad/spatial.h5ad' "
              "s3.rctd - s1.rctd -o stdin.h5ad",
              tm_dir, tm_bin, tm_repo) == 0);
  CHECK(tm_same("one.h5ad", "stdin.h5ad"));
  CHECK(TM_SH("rctd-merge -q --format csv -o piped < fit.rctd", tm_dir, tm_bin) == 0);
  CHECK(tm_same_dir("one", "piped"));
}

TEST_E2E(merge_values_match_r) {
  CHECK(tm_setup());
  CHECK(tm_merge("fit.rctd -o gold.h5ad --format h5ad,csv") == 0);
  CHECK(test_sh("/usr/bin/python3 tests/h5ad_check.py '%s/gold.h5ad' "
                "'%s/tests/data/gold/vignette/doublet' doublet --spatial "
                "'%s/data/vignette/h5ad/spatial.h5ad' >&2",
                tm_dir, test_repo_dir(), test_repo_dir()) == 0);
  CHECK(test_sh("/usr/bin/python3 tests/csv_check.py '%s/gold' '%s/tests/data/gold/vignette/doublet' "
                "doublet >&2",
                tm_dir, test_repo_dir()) == 0);
}

TEST_E2E(merge_refuses_missing_shard) {
  CHECK(tm_setup());
  CHECK(tm_merge("s1.rctd s3.rctd -o missing.h5ad") == 1);
  CHECK(tm_err_has("missing shard") && tm_err_has("shard 2/3"));
  CHECK(tm_absent("missing.h5ad"));
  CHECK(tm_merge("t1.rctd t2.rctd t4.rctd t5.rctd t6.rctd t7.rctd -o missing.h5ad") == 1);
  CHECK(tm_err_has("shard 3/7"));
  CHECK(tm_merge("s1.rctd s2.rctd -o missing.h5ad --format h5ad,csv") == 1);
  CHECK(tm_err_has("shard 3/3"));
  CHECK(tm_absent("missing.h5ad") && tm_absent("missing"));
}

TEST_E2E(merge_refuses_duplicated_shard) {
  CHECK(tm_setup());
  CHECK(tm_merge("s1.rctd s2.rctd s3.rctd s2.rctd -o dup.h5ad") == 1);
  CHECK(tm_err_has("duplicated shard") && tm_err_has("s2.rctd"));
  CHECK(TM_SH("cp s1.rctd s1copy.rctd", tm_dir, tm_bin) == 0);
  CHECK(tm_merge("s1.rctd s2.rctd s3.rctd s1copy.rctd -o dup.h5ad") == 1);
  CHECK(tm_err_has("s1copy.rctd") && tm_err_has("shard 1/3"));
  /* Overlapping shards of two layouts. */
  CHECK(tm_merge("s1.rctd s2.rctd s3.rctd t4.rctd -o dup.h5ad") == 1);
  CHECK(tm_err_has("duplicated shard"));
  CHECK(tm_merge("fit.rctd s2.rctd -o dup.h5ad") == 1);
  CHECK(tm_absent("dup.h5ad"));
}

TEST_E2E(merge_refuses_foreign_and_truncated_shards) {
  CHECK(tm_setup());
  CHECK(TM_SH("rctd-fit-doublet -q --cache-dir cache --chunk-pixels 8 --shard 2/3 "
              "--doublet-threshold 25 model.rctd -o other2.rctd",
              tm_dir, tm_bin) == 0);
  CHECK(tm_merge("s1.rctd other2.rctd s3.rctd -o foreign.h5ad") == 1);
  CHECK(tm_err_has("foreign shard") && tm_err_has("other2.rctd"));
  CHECK(tm_absent("foreign.h5ad"));
  /* Another chunking is another run too. */
  CHECK(TM_SH("rctd-fit-doublet -q --cache-dir cache --chunk-pixels 16 --shard 2/3 "
              "model.rctd -o chunk2.rctd",
              tm_dir, tm_bin) == 0);
  CHECK(tm_merge("s1.rctd chunk2.rctd s3.rctd -o foreign.h5ad") == 1);
  CHECK(tm_err_has("foreign shard"));
  /* Cut inside the results, and cut just before the shard's summary. */
  CHECK(TM_SH("head -c $(( $(stat -c %%s s2.rctd) - 200 )) s2.rctd > cut2.rctd", tm_dir, tm_bin) ==
        0);
  CHECK(tm_merge("s1.rctd cut2.rctd s3.rctd -o cut.h5ad") == 1);
  CHECK(tm_err_has("cut2.rctd"));
  CHECK(tm_absent("cut.h5ad"));
  /* Not a result stream at all. */
  CHECK(tm_merge("model.rctd -o cut.h5ad") == 1);
  CHECK(tm_err_has("not a result stream"));
}

TEST_E2E(merge_refuses_other_spatial_input) {
  CHECK(tm_setup());
  CHECK(TM_SH("rctd-merge -q --spatial '%s/data/vignette/h5ad/reference.h5ad' fit.rctd "
              "-o wrong.h5ad 2> merge.err",
              tm_dir, tm_bin, tm_repo) == 1);
  CHECK(tm_err_has("give --spatial the spatial input"));
  CHECK(tm_absent("wrong.h5ad"));
  CHECK(TM_SH("rctd-merge -q fit.rctd -o - 2> merge.err", tm_dir, tm_bin) == 2);
}

TEST_E2E(merge_json_and_text_summary) {
  CHECK(tm_setup());
  CHECK(tm_merge("s1.rctd s2.rctd s3.rctd --json summary.json --summary summary.txt") == 0);
  CHECK(test_sh("/usr/bin/python3 -c \"import json; d = json.load(open('%s/summary.json')); "
                "assert d['mode'] == 'doublet' and d['sigma'] == 0.84, d; "
                "p = d['pixels']; assert (p['input'], p['filtered'], p['fitted']) == "
                "(100, 29, 71), p; assert sum(d['spot_class_counts'].values()) == 71; "
                "assert sum(d['dominant_type_counts'].values()) == 71; "
                "assert set(d['timings']) >= {'read_s', 'write_s', 'total_s'}\"",
                tm_dir) == 0);
  CHECK(test_sh("grep -q '100 in the spatial input, 29 removed by the filters, 71 fitted' "
                "'%s/summary.txt'",
                tm_dir) == 0);
}

/* Without --spatial the h5ad holds the fitted pixels only; with a spacexr CSV directory the
 * rows are its beads, with their coordinates. */
TEST_E2E(merge_fresh_h5ad) {
  CHECK(tm_setup());
  CHECK(TM_SH("rctd-merge -q fit.rctd -o fresh.h5ad", tm_dir, tm_bin) == 0);
  CHECK(test_sh("/usr/bin/python3 tests/h5ad_check.py '%s/fresh.h5ad' "
                "'%s/tests/data/gold/vignette/doublet' doublet --fitted-only >&2",
                tm_dir, test_repo_dir()) == 0);
  CHECK(TM_SH("rctd-merge -q --spatial '%s/data/vignette/csv/spatial' fit.rctd -o beads.h5ad",
              tm_dir, tm_bin, tm_repo) == 0);
  CHECK(test_sh("/usr/bin/python3 tests/h5ad_check.py '%s/beads.h5ad' "
                "'%s/tests/data/gold/vignette/doublet' doublet >&2",
                tm_dir, test_repo_dir()) == 0);
  CHECK(test_sh("/usr/bin/python3 -c \"import anndata; a = anndata.read_h5ad('%s/beads.h5ad'); "
                "assert a.n_obs == 100 and a.obsm['spatial'].shape == (100, 2); "
                "assert abs(a.obsm['spatial'][0, 0] - 3411.272727) < 1e-9\"",
                tm_dir) == 0);
}

/* A fresh h5ad whose rows are another input's beads (here the vignette's with renamed
 * barcodes): refused by merge's own check of each pixel against its row, one line, no output
 * (the h5ad writer leaves that check to merge and does not read the names a second time). */
TEST_E2E(merge_fresh_h5ad_refuses_other_beads) {
  CHECK(tm_setup());
  CHECK(TM_SH("mkdir -p renamed && sed '1s/,\"/,\"X/g' '%s/data/vignette/csv/spatial/"
              "MappedDGEForR.csv' > renamed/MappedDGEForR.csv && sed '2,$s/^/X/' "
              "'%s/data/vignette/csv/spatial/BeadLocationsForR.csv' > "
              "renamed/BeadLocationsForR.csv",
              tm_dir, tm_bin, tm_repo, tm_repo) == 0);
  CHECK(TM_SH("rctd-merge -q --spatial renamed fit.rctd -o renamed.h5ad 2> merge.err", tm_dir,
              tm_bin) == 1);
  CHECK(
      tm_err_has("^rctd-merge: fit.rctd: pixel [ACGT]* (row [0-9]*) is not that row of renamed: "
                 "give --spatial the spatial input of this run$"));
  CHECK(test_sh("test $(wc -l < '%s/merge.err') -eq 1", tm_dir) == 0);
  CHECK(tm_absent("renamed.h5ad"));
}

/* Copies tm_dir/IN to tm_dir/OUT with the sigma record's keys replaced by KV (N pairs).  0 or -1. */
static int tm_rewrite_sigma(const char *in, const char *out, const char *const *kv, size_t n) {
  char a[PATH_MAX + 64], b[PATH_MAX + 64], err[RCTD_ERR_LEN];
  snprintf(a, sizeof a, "%s/%s", tm_dir, in);
  snprintf(b, sizeof b, "%s/%s", tm_dir, out);
  rctd_reader *r = rctd_reader_open(a, err, sizeof err);
  rctd_writer *w = r ? rctd_writer_open(b, NULL, err, sizeof err) : NULL;
  const rctd_record_info *info;
  int got, rc = w ? 0 : -1, seen = 0;
  while (rc == 0 && (got = rctd_reader_next(r, &info)) == 1) {
    if (strcmp(info->name, RCTD_SIGMA_REC) != 0) {
      rc = rctd_reader_copy(r, w);
      continue;
    }
    const char *keys[8], *values[8];
    for (size_t i = 0; i < n && i < 8; i++) keys[i] = kv[2 * i], values[i] = kv[2 * i + 1];
    rc = rctd_reader_skip(r) | rctd_write_meta(w, RCTD_SIGMA_REC, keys, values, n);
    seen = 1;
  }
  if (rc == 0 && got == 0 && seen) return rctd_reader_close(r), rctd_writer_close(w, err, sizeof err);
  if (w) rctd_writer_abort(w);
  if (r) rctd_reader_close(r);
  return -1;
}

/* The result h5ad carries rctd-sigma's epochs (the fit passes its record on) in
 * uns/rctd/sigma_epochs, as anndata reads them: each epoch's sigma, likelihood and choice equal
 * to the record's; a given sigma gives its source only; a damaged record is refused in one
 * line, no output. */
TEST_E2E(merge_carries_the_sigma_epochs_into_uns) {
  CHECK(tm_setup());
  char path[PATH_MAX + 64], err[RCTD_ERR_LEN];
  snprintf(path, sizeof path, "%s/model.rctd", tm_dir);
  rctd_record rec;
  CHECK_MSG(rctd_load_record(path, RCTD_SIGMA_REC, &rec, err, sizeof err) == 0, "%s", err);
  char lists[3][512];
  const char *keys[3] = {"epoch_sigma", "epoch_log_l", "epoch_chosen"};
  int have = 1;
  for (int i = 0; i < 3; i++) {
    const char *v = rctd_record_meta_get(&rec, keys[i]);
    have &= v != NULL;
    snprintf(lists[i], sizeof lists[i], "%s", v ? v : "");
  }
  const char *n_fit = rctd_record_meta_get(&rec, "n_fit");
  char n_fit_s[32];
  snprintf(n_fit_s, sizeof n_fit_s, "%s", n_fit ? n_fit : "-1");
  rctd_record_free(&rec);
  CHECK_MSG(have && strchr(lists[1], ','), "model.rctd's sigma record lacks its epochs");
  CHECK(tm_merge("s2.rctd s1.rctd s3.rctd -o epochs.h5ad") == 0);
  CHECK(test_sh("/usr/bin/python3 -c \"import anndata; e = anndata.read_h5ad('%s/epochs.h5ad')"
                ".uns['rctd']['sigma_epochs']; f = lambda s: [float(x) for x in s.split(',')]; "
                "assert e['source'] == 'estimated' and e['n_fit'] == %s and e['converged'] == 1, e; "
                "assert list(e['sigma']) == [x / 100 for x in f('%s')], e; "
                "assert list(e['likelihood']) == f('%s'), e; "
                "assert list(e['sigma_chosen']) == [x / 100 for x in f('%s')], e\"",
                tm_dir, n_fit_s, lists[0], lists[1], lists[2]) == 0);
  const char *given[] = {"sigma_c", "0.84", "sigma_value", "84", "source", "given"};
  CHECK(tm_rewrite_sigma("fit.rctd", "given.rctd", given, 3) == 0);
  CHECK(tm_merge("given.rctd -o given.h5ad") == 0);
  CHECK(test_sh("/usr/bin/python3 -c \"import anndata; e = anndata.read_h5ad('%s/given.h5ad')"
                ".uns['rctd']['sigma_epochs']; assert e == {'source': 'given'}, e\"",
                tm_dir) == 0);
  const char *cut[] = {"sigma_c",     "0.84",   "source",      "estimated",
                       "epoch_sigma", "100,84", "epoch_log_l", "1970.4",
                       "epoch_chosen", "84,84"};
  CHECK(tm_rewrite_sigma("fit.rctd", "cut.rctd", cut, 5) == 0);
  CHECK(tm_merge("cut.rctd -o cut.h5ad --format h5ad,csv") == 1);
  CHECK(test_sh("test \"$(cat '%s/merge.err')\" = \"rctd-merge: cut.rctd: record 'sigma': damaged "
                "epoch lists (epoch_sigma, epoch_log_l, epoch_chosen): run rctd-sigma again\"",
                tm_dir) == 0);
  CHECK(tm_absent("cut.h5ad") && tm_absent("cut"));
}
