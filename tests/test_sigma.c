/* Tests of lib/sigma (choose_sigma_c) and rctd-sigma: R's vignette runs reproduced (fit pixels,
 * per-epoch likelihoods and candidate scores, random state after), chooseSigma on more than
 * 1e6 values, the stream stage (pass-through, pipe = file, --sigma, bad input). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "model.h"
#include "qtable_cache.h"
#include "rctd_kernels.h"
#include "rrng.h"
#include "sigma.h"
#include "stream.h"
#include "test.h"

#define SIG_T_DIR "tests/data/sigma/vignette"
#define SIG_T_PIX 71
#define SIG_T_GENES 313
#define SIG_T_TYPES 19

/* ------------------------------------------------------------------ fixture readers */

static int sig_t_lines(const char *path, char ***lines_out) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char buf[1 << 16];
  int n = 0, cap = 0;
  char **lines = NULL;
  while (fgets(buf, sizeof buf, f)) {
    buf[strcspn(buf, "\r\n")] = 0;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      lines = realloc(lines, (size_t)cap * sizeof *lines);
    }
    lines[n++] = strdup(buf);
  }
  fclose(f);
  *lines_out = lines;
  return n;
}

static void sig_t_free_lines(char **lines, int n) {
  for (int i = 0; i < n; i++) free(lines[i]);
  free(lines);
}

/* Comma-separated numbers of a line, skipping the first SKIP fields. */
static int sig_t_fields(const char *line, int skip, double *out, int max) {
  int n = 0, field = 0;
  const char *p = line;
  while (*p && n < max) {
    if (field >= skip) out[n++] = strtod(p, NULL);
    p = strchr(p, ',');
    if (!p) break;
    p++;
    field++;
  }
  return n;
}

typedef struct {
  double profiles_gk[SIG_T_GENES * SIG_T_TYPES];
  double counts_ng[SIG_T_PIX * SIG_T_GENES];
  double numi_n[SIG_T_PIX];
  int32_t rng_before[RCTD_R_SEED_WORDS];
} sig_t_data;

static int sig_t_read_ints(const char *path, int32_t *out, int max) {
  char **lines;
  int n = sig_t_lines(path, &lines);
  if (n < 0) return -1;
  for (int i = 0; i < n && i < max; i++) out[i] = (int32_t)strtol(lines[i], NULL, 10);
  sig_t_free_lines(lines, n);
  return n;
}

static int sig_t_load(sig_t_data *d) {
  memset(d, 0, sizeof *d);
  char **lines;
  int n = sig_t_lines(SIG_T_DIR "/profiles_reg.csv", &lines);
  if (n != SIG_T_GENES + 1) return -1;
  for (int g = 0; g < SIG_T_GENES; g++)
    if (sig_t_fields(lines[g + 1], 1, d->profiles_gk + g * SIG_T_TYPES, SIG_T_TYPES) != SIG_T_TYPES)
      return -1;
  sig_t_free_lines(lines, n);
  n = sig_t_lines(SIG_T_DIR "/counts_reg.csv", &lines);
  if (n < 2) return -1;
  for (int i = 1; i < n; i++) {
    double v[3];
    if (sig_t_fields(lines[i], 0, v, 3) != 3) return -1;
    d->counts_ng[(int)v[0] * SIG_T_GENES + (int)v[1]] = v[2];
  }
  sig_t_free_lines(lines, n);
  n = sig_t_lines(SIG_T_DIR "/numi.csv", &lines);
  if (n != SIG_T_PIX + 1) return -1;
  for (int p = 0; p < SIG_T_PIX; p++)
    if (sig_t_fields(lines[p + 1], 1, &d->numi_n[p], 1) != 1) return -1;
  sig_t_free_lines(lines, n);
  if (sig_t_read_ints(SIG_T_DIR "/rng_before.txt", d->rng_before, RCTD_R_SEED_WORDS) !=
      RCTD_R_SEED_WORDS)
    return -1;
  return 0;
}

/* "key,value" of a case's summary.csv. */
static double sig_t_summary(const char *dir, const char *key) {
  char path[512];
  snprintf(path, sizeof path, "%s/summary.csv", dir);
  char **lines;
  int n = sig_t_lines(path, &lines);
  double v = NAN;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(key);
    if (strncmp(lines[i], key, len) == 0 && lines[i][len] == ',')
      v = strtod(lines[i] + len + 1, NULL);
  }
  sig_t_free_lines(lines, n);
  return v;
}

static double sig_t_rel(double a, double b) {
  return fabs(a - b) / (fabs(b) > 1e-300 ? fabs(b) : 1);
}

static const char *sig_t_cache(void) {
  static char dir[512];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s/sigma-cache", test_tmp_dir());
    test_sh("mkdir -p '%s'", dir);
  }
  return dir;
}

/* DIR/cache -> the tables the other tests of this run computed (computing them is what
 * takes time). */
static int sig_t_share_cache(const char *dir) {
  return test_sh("ln -sfn '%s' '%s/cache'", sig_t_cache(), dir) == 0;
}

/* ------------------------------------------------------------------ R's runs */

/* One of R's runs: fit pixels, every epoch's likelihood and scores, the chosen sigma and the
 * random state afterwards. */
static void sig_t_case(int *failed_, const char *name, int n_threads) {
  static sig_t_data d;
  CHECK_MSG(sig_t_load(&d) == 0, "cannot read the fixtures in %s", SIG_T_DIR);
  char dir[256];
  snprintf(dir, sizeof dir, SIG_T_DIR "/%s", name);
  rctd_sigma_opts o;
  rctd_sigma_opts_default(&o);
  o.umi_min_sigma = sig_t_summary(dir, "UMI_min_sigma");
  o.n_fit = (int64_t)sig_t_summary(dir, "N_fit");
  o.n_epoch = (int)sig_t_summary(dir, "N_epoch");
  o.n_threads = n_threads;
  rctd_rrng rng;
  CHECK(rctd_rng_state_load(d.rng_before, RCTD_R_SEED_WORDS, &rng) == 0);

  /* fit_ind */
  int64_t *fit_n, n_fit;
  char err[RCTD_ERR_LEN];
  rctd_model pixels = {.n_pixels = SIG_T_PIX, .pixel_numi_n = d.numi_n};
  CHECK_MSG(rctd_sigma_pick_pixels(&rng, &pixels, &o, &fit_n, &n_fit, err, sizeof err) == 0, "%s",
            err);
  char path[512];
  snprintf(path, sizeof path, "%s/fit_ind.txt", dir);
  int32_t r_fit[SIG_T_PIX];
  int n_r = sig_t_read_ints(path, r_fit, SIG_T_PIX);
  CHECK(n_r == n_fit);
  CHECK(n_fit == (int64_t)sig_t_summary(dir, "n_fit"));
  for (int i = 0; i < n_r; i++) CHECK_MSG(fit_n[i] == r_fit[i], "fit pixel %d", i);

  /* the epochs */
  double *y_ng = malloc((size_t)n_fit * SIG_T_GENES * sizeof *y_ng);
  double numi_fit[SIG_T_PIX];
  for (int64_t i = 0; i < n_fit; i++) {
    memcpy(y_ng + i * SIG_T_GENES, d.counts_ng + fit_n[i] * SIG_T_GENES,
           SIG_T_GENES * sizeof *y_ng);
    numi_fit[i] = d.numi_n[fit_n[i]];
  }
  rctd_sigma_problem prob = {SIG_T_GENES, SIG_T_TYPES, d.profiles_gk, n_fit, y_ng, numi_fit};
  rctd_backend *be = rctd_backend_cpu(n_threads);
  rctd_qtable_opts qo = {.cache_dir = sig_t_cache(), .n_threads = n_threads};
  rctd_sigma_result res;
  int rc = rctd_sigma_estimate(&prob, &rng, be, &qo, &o, NULL, NULL, &res, err, sizeof err);
  be->destroy(be);
  free(y_ng);
  free(fit_n);
  CHECK_MSG(rc == 0, "%s", err);

  char **lines;
  snprintf(path, sizeof path, "%s/epochs.csv", dir);
  int n = sig_t_lines(path, &lines);
  CHECK(n == res.n_epochs + 1);
  double worst_ll = 0, worst_score = 0;
  for (int e = 0; e < res.n_epochs; e++) {
    double v[5];
    CHECK(sig_t_fields(lines[e + 1], 0, v, 5) == 5);
    const rctd_sigma_epoch *ep = &res.epochs[e];
    CHECK(ep->sigma_fit == (int)v[1]);
    CHECK(ep->sigma_chosen == (int)v[2]);
    CHECK(ep->n_obs == (int64_t)v[3] && ep->n_scored == ep->n_obs);
    double rel = sig_t_rel(ep->log_l, v[4]);
    if (rel > worst_ll) worst_ll = rel;
    CHECK_MSG(rel <= 1e-9, "epoch %d likelihood %.17g, R %.17g", e + 1, ep->log_l, v[4]);
  }
  sig_t_free_lines(lines, n);
  snprintf(path, sizeof path, "%s/scores.csv", dir);
  n = sig_t_lines(path, &lines);
  int row = 1;
  for (int e = 0; e < res.n_epochs; e++)
    for (int c = 0; c < res.epochs[e].n_cand; c++, row++) {
      CHECK(row < n);
      double v[3];
      CHECK(sig_t_fields(lines[row], 0, v, 3) == 3);
      CHECK((int)v[0] == e + 1 && (int)v[1] == res.epochs[e].cand_value[c]);
      double rel = sig_t_rel(res.epochs[e].cand_score[c], v[2]);
      if (rel > worst_score) worst_score = rel;
      CHECK_MSG(rel <= 1e-9, "epoch %d sigma %d score %.17g, R %.17g", e + 1, (int)v[1],
                res.epochs[e].cand_score[c], v[2]);
    }
  CHECK(row == n);
  sig_t_free_lines(lines, n);
  CHECK_NEAR(res.sigma_value / 100.0, sig_t_summary(dir, "sigma"), 1e-12);
  fprintf(stderr, "  %s: sigma %.2f in %d epochs; max rel diff likelihood %.3g, scores %.3g\n",
          name, res.sigma_value / 100.0, res.n_epochs, worst_ll, worst_score);
  rctd_sigma_result_free(&res);

  /* R's draws were all consumed, no more. */
  int32_t after[RCTD_R_SEED_WORDS], r_after[RCTD_R_SEED_WORDS];
  rctd_rng_state_save(&rng, after);
  snprintf(path, sizeof path, "%s/rng_after.txt", dir);
  CHECK(sig_t_read_ints(path, r_after, RCTD_R_SEED_WORDS) == RCTD_R_SEED_WORDS);
  CHECK(memcmp(after, r_after, sizeof after) == 0);
}

TEST(sigma_r_vignette_default) {
  sig_t_case(failed_, "default", 1);
}
TEST(sigma_r_vignette_umi100) {
  sig_t_case(failed_, "umi100", 2);
}
TEST(sigma_r_vignette_umi100_nfit20) {
  sig_t_case(failed_, "umi100_nfit20", 3);
}
TEST(sigma_r_vignette_umi150_epoch1) {
  sig_t_case(failed_, "umi150_epoch1", 1);
}

/* chooseSigma on more values than it scores: R's sample() picks 1e6 of 1.1e6. */
TEST(sigma_r_choose_subsample) {
  const int64_t L = 1100000;
  double *pred = malloc((size_t)L * sizeof *pred), *y = malloc((size_t)L * sizeof *y);
  CHECK(pred && y);
  for (int64_t j = 0; j < L; j++) {
    pred[j] = 0.05 + (double)((j * 104729) % 1000) / 100;
    double b = 0.1 + (double)((j * 7919) % 1000) / 1000;
    y[j] = floor(pred[j] * (b * b) * 2.5); /* R's x^2 is x * x */
  }
  rctd_rrng rng;
  rctd_rrng_seed(&rng, 11);
  rctd_sigma_opts o;
  rctd_sigma_opts_default(&o);
  o.n_threads = 2;
  rctd_qtable_opts qo = {.cache_dir = sig_t_cache(), .n_threads = 2};
  rctd_sigma_epoch ep;
  memset(&ep, 0, sizeof ep);
  char err[RCTD_ERR_LEN];
  int rc = rctd_sigma_choose(&rng, L, pred, y, 84, &qo, &o, &ep, err, sizeof err);
  free(pred);
  free(y);
  CHECK_MSG(rc == 0, "%s", err);
  CHECK(ep.n_obs == L && ep.n_scored == RCTD_SIGMA_MAX_SAMPLE);
  char **lines;
  int n = sig_t_lines("tests/data/sigma/big_choose/scores.csv", &lines);
  CHECK(n == ep.n_cand + 1);
  double worst = 0;
  for (int c = 0; c < ep.n_cand; c++) {
    double v[2];
    CHECK(sig_t_fields(lines[c + 1], 0, v, 2) == 2);
    CHECK(ep.cand_value[c] == (int)v[0]);
    double rel = sig_t_rel(ep.cand_score[c], v[1]);
    if (rel > worst) worst = rel;
    CHECK_MSG(rel <= 1e-9, "sigma %d: %.17g, R %.17g", ep.cand_value[c], ep.cand_score[c], v[1]);
  }
  sig_t_free_lines(lines, n);
  CHECK(ep.sigma_chosen == (int)sig_t_summary("tests/data/sigma/big_choose", "chosen"));
  int32_t after[RCTD_R_SEED_WORDS], r_after[RCTD_R_SEED_WORDS];
  rctd_rng_state_save(&rng, after);
  CHECK(sig_t_read_ints("tests/data/sigma/big_choose/rng_after.txt", r_after, RCTD_R_SEED_WORDS) ==
        RCTD_R_SEED_WORDS);
  CHECK(memcmp(after, r_after, sizeof after) == 0);
  fprintf(stderr, "  1.1e6 values: sigma %d chosen; max rel diff of scores %.3g\n", ep.sigma_chosen,
          worst);
}

/* ------------------------------------------------------------------ the stream stage */

/* The R fixture as a model stream (blocks of BLOCK pixels), R's random state after
 * create.RCTD included, so rctd-sigma on it must replay R's default run. */
static int sig_t_write_model(const char *path, int block) {
  static sig_t_data d;
  if (sig_t_load(&d) < 0) return -1;
  char **glines, **nlines;
  int ng = sig_t_lines(SIG_T_DIR "/profiles_reg.csv", &glines);
  int nn = sig_t_lines(SIG_T_DIR "/numi.csv", &nlines);
  if (ng != SIG_T_GENES + 1 || nn != SIG_T_PIX + 1) return -1;
  char *genes[SIG_T_GENES], *barcodes[SIG_T_PIX], *types[SIG_T_TYPES];
  for (int g = 0; g < SIG_T_GENES; g++) genes[g] = strtok(glines[g + 1], ",");
  for (int p = 0; p < SIG_T_PIX; p++) barcodes[p] = strtok(nlines[p + 1], ",");
  char type_text[SIG_T_TYPES][16];
  int32_t class_k[SIG_T_TYPES];
  double bulk_w[SIG_T_TYPES];
  for (int k = 0; k < SIG_T_TYPES; k++) {
    snprintf(type_text[k], sizeof type_text[k], "%d", k + 1);
    types[k] = type_text[k];
    class_k[k] = k;
    bulk_w[k] = 1.0 / SIG_T_TYPES;
  }
  char *cfg_keys[] = {"UMI_min"}, *cfg_values[] = {"100"};
  rctd_model m = {.n_types = SIG_T_TYPES,
                  .type_names = types,
                  .class_names = types,
                  .class_k = class_k,
                  .n_classes = SIG_T_TYPES,
                  .n_reg = SIG_T_GENES,
                  .n_bulk = SIG_T_GENES,
                  .genes_reg = genes,
                  .genes_bulk = genes,
                  .profiles_gk = d.profiles_gk,
                  .profiles_bulk_gk = d.profiles_gk,
                  .bulk_weights_k = bulk_w,
                  .bulk_converged = 1,
                  .n_pixels = SIG_T_PIX,
                  .pixel_numi_n = d.numi_n,
                  .n_config = 1,
                  .config_keys = cfg_keys,
                  .config_values = cfg_values,
                  .n_rng = RCTD_R_SEED_WORDS,
                  .rng_state = d.rng_before};
  for (int p = 0; p < SIG_T_PIX; p++) m.sum_numi += d.numi_n[p];
  char err[RCTD_ERR_LEN];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  int rc = w && rctd_model_write(w, &m) == 0 ? 0 : -1;
  int64_t indptr[SIG_T_PIX + 1], rows[SIG_T_PIX];
  int32_t *idx = malloc(SIG_T_PIX * SIG_T_GENES * sizeof *idx);
  double *val = malloc(SIG_T_PIX * SIG_T_GENES * sizeof *val);
  for (int first = 0; rc == 0 && first < SIG_T_PIX; first += block) {
    int n = SIG_T_PIX - first < block ? SIG_T_PIX - first : block;
    int64_t nnz = 0;
    indptr[0] = 0;
    for (int p = 0; p < n; p++) {
      rows[p] = first + p;
      for (int g = 0; g < SIG_T_GENES; g++) {
        double v = d.counts_ng[(first + p) * SIG_T_GENES + g];
        if (v != 0) idx[nnz] = g, val[nnz++] = v;
      }
      indptr[p + 1] = nnz;
    }
    rctd_pixel_block b = {.first = first,
                          .n = n,
                          .barcodes = (const char *const *)barcodes + first,
                          .numi_n = d.numi_n + first,
                          .row_n = rows,
                          .indptr = indptr,
                          .indices = idx,
                          .values = val,
                          .nnz = nnz};
    rc = rctd_pixel_block_write(w, &b, SIG_T_GENES);
  }
  free(idx);
  free(val);
  if (w) {
    if (rc == 0)
      rc = rctd_writer_close(w, err, sizeof err);
    else
      rctd_writer_abort(w);
  }
  sig_t_free_lines(glines, ng);
  sig_t_free_lines(nlines, nn);
  return rc;
}

/* Copies stream IN to OUT without the record SKIP. */
static int sig_t_copy_without(const char *in, const char *out, const char *skip) {
  char err[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_open(in, err, sizeof err);
  rctd_writer *w = r ? rctd_writer_open(out, NULL, err, sizeof err) : NULL;
  int rc = r && w ? 0 : -1;
  const rctd_record_info *info;
  while (rc == 0 && rctd_reader_next(r, &info) == 1)
    rc = strcmp(info->name, skip) == 0 ? rctd_reader_skip(r) : rctd_reader_copy(r, w);
  if (w) rc = rc == 0 ? rctd_writer_close(w, err, sizeof err) : (rctd_writer_abort(w), -1);
  if (r) rctd_reader_close(r);
  return rc;
}

/* Every pixel block of A equals B's. */
static int sig_t_same_pixels(const char *a, const char *b) {
  char err[RCTD_ERR_LEN];
  rctd_model_reader *ra = rctd_model_open(a, err, sizeof err);
  rctd_model_reader *rb = ra ? rctd_model_open(b, err, sizeof err) : NULL;
  int same = ra && rb, blocks = 0;
  rctd_pixel_block x, y;
  rctd_pixel_block_init(&x);
  rctd_pixel_block_init(&y);
  while (same) {
    int ga = rctd_model_next_block(ra, &x), gb = rctd_model_next_block(rb, &y);
    if (ga != gb || ga < 0) same = 0;
    if (ga != 1 || !same) break;
    blocks++;
    same = x.first == y.first && x.n == y.n && x.nnz == y.nnz &&
           !memcmp(x.indptr, y.indptr, (size_t)(x.n + 1) * sizeof *x.indptr) &&
           !memcmp(x.indices, y.indices, (size_t)x.nnz * sizeof *x.indices) &&
           !memcmp(x.values, y.values, (size_t)x.nnz * sizeof *x.values) &&
           !memcmp(x.numi_n, y.numi_n, (size_t)x.n * sizeof *x.numi_n) &&
           !memcmp(x.row_n, y.row_n, (size_t)x.n * sizeof *x.row_n);
    for (int64_t p = 0; same && p < x.n; p++) same = !strcmp(x.barcodes[p], y.barcodes[p]);
  }
  rctd_pixel_block_free(&x);
  rctd_pixel_block_free(&y);
  if (ra) rctd_model_reader_close(ra);
  if (rb) rctd_model_reader_close(rb);
  return same && blocks > 0;
}

/* Runs rctd-sigma in DIR; its exit status, its stderr in run.err. */
static int sig_t_run(const char *dir, const char *args) {
  return test_sh("cd '%s' && '%s/rctd-sigma' %s >run.out 2>run.err", dir, test_bin_dir(), args);
}

/* A run expected to succeed: 1 when it did, else 0 with its messages shown. */
static int sig_t_run_ok(const char *dir, const char *args) {
  if (sig_t_run(dir, args) == 0) return 1;
  test_sh("sed 's/^/    run.err: /' '%s/run.err' >&2", dir);
  return 0;
}

/* stderr of the last run is exactly one line containing WHAT; nothing on stdout, no file
 * named OUT, no temporaries. */
static int sig_t_failed_cleanly(const char *dir, const char *what, const char *out) {
  return test_sh(
             "cd '%s' && test $(wc -l <run.err) -eq 1 && grep -q -- '%s' run.err && "
             "grep -q '^rctd-sigma: ' run.err && test ! -s run.out && test ! -e '%s' && "
             "! ls -A . tmp | grep -q -e '\\.tmp\\.' -e spool",
             dir, what, out) == 0;
}

TEST_E2E(sigma_stage_reproduces_r_through_the_stream) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/sigma-stage", test_tmp_dir());
  CHECK(test_sh("mkdir -p '%s/tmp'", dir) == 0);
  CHECK(sig_t_share_cache(dir));
  char model[600], out[600], piped[600];
  snprintf(model, sizeof model, "%s/model.rctd", dir);
  snprintf(out, sizeof out, "%s/out.rctd", dir);
  snprintf(piped, sizeof piped, "%s/piped.rctd", dir);
  CHECK(sig_t_write_model(model, 25) == 0);

  CHECK(sig_t_run_ok(dir, "--cache-dir cache --threads 2 model.rctd -o out.rctd"));
  /* R's messages: the per-epoch likelihood (R: 1970.41846749859) and sigma. */
  CHECK(test_sh("cd '%s' && grep -q 'epoch 1: Likelihood value: 1970.418467' run.err && "
                "grep -q 'epoch 2: Sigma value: 0.84' run.err",
                dir) == 0);
  char err[RCTD_ERR_LEN];
  rctd_model_reader *mr = rctd_model_open(out, err, sizeof err);
  CHECK_MSG(mr, "%s", err);
  const rctd_model *m = rctd_model_reader_model(mr);
  const rctd_record *sig = rctd_model_extra(m, RCTD_SIGMA_REC);
  const rctd_record *qmeta = rctd_model_extra(m, RCTD_QTABLE_REC_META);
  const rctd_record *q = rctd_model_extra(m, RCTD_QTABLE_REC_Q);
  int ok = sig && qmeta && q && !strcmp(rctd_record_meta_get(sig, "sigma_c"), "0.84") &&
           !strcmp(rctd_record_meta_get(sig, "source"), "estimated") &&
           !strcmp(rctd_record_meta_get(sig, "epoch_chosen"), "84,84") &&
           !strcmp(rctd_record_meta_get(sig, "n_fit"), "6") &&
           !strcmp(rctd_record_meta_get(qmeta, "sigma"), "84") &&
           rctd_model_extra(m, "provenance.rctd-sigma");
  /* Table rows up to the largest count of all pixels. */
  static sig_t_data d;
  CHECK(sig_t_load(&d) == 0);
  double mx = 0;
  for (int i = 0; i < SIG_T_PIX * SIG_T_GENES; i++)
    if (d.counts_ng[i] > mx) mx = d.counts_ng[i];
  ok = ok && q->rows == (uint64_t)mx + 1;
  /* The likelihood R printed, per epoch; R's random state after its draws. */
  double ll[2] = {0, 0};
  const char *lls = ok ? rctd_record_meta_get(sig, "epoch_log_l") : NULL;
  if (lls) sscanf(lls, "%lf,%lf", &ll[0], &ll[1]);
  int32_t r_after[RCTD_R_SEED_WORDS];
  int n_after = sig_t_read_ints(SIG_T_DIR "/default/rng_after.txt", r_after, RCTD_R_SEED_WORDS);
  int rng_ok = m->n_rng == RCTD_R_SEED_WORDS && n_after == RCTD_R_SEED_WORDS &&
               !memcmp(m->rng_state, r_after, sizeof r_after);
  const char *umi_sigma = rctd_model_config(m, "UMI_min_sigma");
  int umi_ok = umi_sigma && !strcmp(umi_sigma, "300");
  rctd_model_reader_close(mr);
  CHECK(ok);
  CHECK(rng_ok);
  CHECK(umi_ok);
  CHECK(sig_t_rel(ll[0], 1970.4184674985856) <= 1e-9);
  CHECK(sig_t_rel(ll[1], 1964.4988387470125) <= 1e-9);
  CHECK(sig_t_same_pixels(model, out));

  /* A pipe goes through the temporary copy: same output, nothing left in --tmp-dir. */
  CHECK(test_sh("cd '%s' && cat model.rctd | '%s/rctd-sigma' -q --cache-dir cache --tmp-dir tmp "
                "-o piped.rctd && test -z \"$(ls -A tmp)\"",
                dir, test_bin_dir()) == 0);
  CHECK(sig_t_same_pixels(out, piped));
  /* Byte for byte (in-process runs: no provenance with its command line): a regular file,
   * read twice, and a FIFO, copied first. */
  rctd_sigma_stage_opts o;
  rctd_sigma_stage_opts_default(&o);
  char cache[600], tmp[600], a[600], b[600], fifo[600];
  snprintf(cache, sizeof cache, "%s/cache", dir);
  snprintf(tmp, sizeof tmp, "%s/tmp", dir);
  snprintf(a, sizeof a, "%s/a.rctd", dir);
  snprintf(b, sizeof b, "%s/b.rctd", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  o.cache_dir = cache;
  o.tmp_dir = tmp;
  rctd_set_quiet(1);
  CHECK_MSG(rctd_sigma_stage_run(model, a, &o, err, sizeof err) == 0, "%s", err);
  CHECK(test_sh("cd '%s' && mkfifo fifo && (cat model.rctd > fifo &)", dir) == 0);
  CHECK_MSG(rctd_sigma_stage_run(fifo, b, &o, err, sizeof err) == 0, "%s", err);
  o.sigma.n_threads = 2; /* thread count does not change anything */
  CHECK_MSG(rctd_sigma_stage_run(model, piped, &o, err, sizeof err) == 0, "%s", err);
  rctd_set_quiet(0);
  CHECK(test_sh("cd '%s' && cmp -s a.rctd b.rctd && cmp -s a.rctd piped.rctd && "
                "test -z \"$(ls -A tmp)\"",
                dir) == 0);
}

TEST_E2E(sigma_stage_given_sigma) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/sigma-given", test_tmp_dir());
  CHECK(test_sh("mkdir -p '%s'", dir) == 0);
  CHECK(sig_t_share_cache(dir));
  char model[600], out[600];
  snprintf(model, sizeof model, "%s/model.rctd", dir);
  snprintf(out, sizeof out, "%s/out.rctd", dir);
  CHECK(sig_t_write_model(model, 40) == 0);
  /* 0.84 and 84 name the same grid value; nothing is drawn, the random state is kept. */
  const char *forms[] = {"--sigma 0.84", "--sigma 84"};
  for (int i = 0; i < 2; i++) {
    char args[256];
    snprintf(args, sizeof args, "-q --cache-dir cache %s model.rctd -o out.rctd", forms[i]);
    CHECK(sig_t_run_ok(dir, args));
    char err[RCTD_ERR_LEN];
    rctd_model_reader *mr = rctd_model_open(out, err, sizeof err);
    CHECK_MSG(mr, "%s", err);
    const rctd_model *m = rctd_model_reader_model(mr);
    const rctd_record *sig = rctd_model_extra(m, RCTD_SIGMA_REC);
    static sig_t_data d;
    int ok = sig && !strcmp(rctd_record_meta_get(sig, "sigma_c"), "0.84") &&
             !strcmp(rctd_record_meta_get(sig, "source"), "given") && sig_t_load(&d) == 0 &&
             m->n_rng == RCTD_R_SEED_WORDS &&
             !memcmp(m->rng_state, d.rng_before, sizeof d.rng_before);
    rctd_model_reader_close(mr);
    CHECK(ok);
    CHECK(sig_t_same_pixels(model, out));
  }
  /* Running it again on its own output replaces the sigma records instead of adding more. */
  CHECK(sig_t_run_ok(dir, "-q --cache-dir cache --sigma 0.5 out.rctd -o again.rctd"));
  CHECK(test_sh("cd '%s' && '%s/rctd-view' again.rctd > view.txt && "
                "test $(grep -c '^sigma\t' view.txt) -eq 1 && "
                "test $(grep -c '^qtable.meta\t' view.txt) -eq 1 && "
                "test $(grep -c '^provenance.rctd-sigma\t' view.txt) -eq 1",
                dir, test_bin_dir()) == 0);
}

TEST_E2E(sigma_stage_bad_input) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/sigma-bad", test_tmp_dir());
  CHECK(test_sh("mkdir -p '%s/tmp'", dir) == 0);
  CHECK(sig_t_share_cache(dir));
  char model[600], path[600];
  snprintf(model, sizeof model, "%s/model.rctd", dir);
  CHECK(sig_t_write_model(model, 30) == 0);

  /* No pixel above UMI_min_sigma: R's advice, to lower it. */
  CHECK(sig_t_run(dir, "--cache-dir cache --umi-min-sigma 100000 model.rctd -o out.rctd") == 1);
  CHECK(sig_t_failed_cleanly(dir, "lower it with --umi-min-sigma", "out.rctd"));
  /* A sigma outside the grid: usage error before anything is read. */
  CHECK(sig_t_run(dir, "--sigma 0.85 model.rctd -o out.rctd") == 2);
  CHECK(test_sh("cd '%s' && grep -q 'not on the sigma grid' run.err && test ! -e out.rctd", dir) ==
        0);
  CHECK(sig_t_run(dir, "--sigma 3 model.rctd -o out.rctd") == 2);
  rctd_sigma_stage_opts o;
  rctd_sigma_stage_opts_default(&o);
  o.fixed_sigma = 0.85;
  char err[RCTD_ERR_LEN];
  snprintf(path, sizeof path, "%s/lib.rctd", dir);
  CHECK(rctd_sigma_stage_run(model, path, &o, err, sizeof err) < 0 && strstr(err, "grid"));
  CHECK(rctd_sigma_value_of(0.84) == 84 && rctd_sigma_value_of(84) == 84 &&
        rctd_sigma_value_of(0.71) < 0 && rctd_sigma_value_of(2.02) < 0 &&
        rctd_sigma_value_of(0.1) == 10 && rctd_sigma_value_of(2) == 200);

  /* A model stream missing a record. */
  snprintf(path, sizeof path, "%s/noprof.rctd", dir);
  CHECK(sig_t_copy_without(model, path, RCTD_MODEL_REC_PROFILES) == 0);
  CHECK(sig_t_run(dir, "--cache-dir cache noprof.rctd -o out.rctd") == 1);
  CHECK(sig_t_failed_cleanly(dir, RCTD_MODEL_REC_PROFILES, "out.rctd"));
  CHECK(test_sh("cd '%s' && cat noprof.rctd | '%s/rctd-sigma' --tmp-dir tmp -o out.rctd "
                ">run.out 2>run.err; test $? -eq 1",
                dir, test_bin_dir()) == 0);
  CHECK(sig_t_failed_cleanly(dir, "rctd-sigma: stdin: ", "out.rctd"));
  /* Not a stream; a stream cut short (in the pixels: found before any output). */
  CHECK(test_sh("cd '%s' && echo hello > text.rctd && head -c $(($(wc -c <model.rctd) - 3000)) "
                "model.rctd > cut.rctd",
                dir) == 0);
  CHECK(sig_t_run(dir, "text.rctd -o out.rctd") == 1);
  CHECK(sig_t_failed_cleanly(dir, "text.rctd", "out.rctd"));
  CHECK(sig_t_run(dir, "--cache-dir cache --sigma 0.84 cut.rctd -o out.rctd") == 1);
  CHECK(sig_t_failed_cleanly(dir, "cut.rctd", "out.rctd"));
  CHECK(test_sh("cd '%s' && cat cut.rctd | '%s/rctd-sigma' --tmp-dir tmp -o out.rctd "
                ">run.out 2>run.err; test $? -eq 1",
                dir, test_bin_dir()) == 0);
  CHECK(sig_t_failed_cleanly(dir, "rctd-sigma", "out.rctd"));
  CHECK(sig_t_run(dir, "missing.rctd -o out.rctd") == 1);
  CHECK(sig_t_failed_cleanly(dir, "missing.rctd", "out.rctd"));
  /* On standard output a failure writes nothing either. */
  CHECK(sig_t_run(dir, "--umi-min-sigma 100000 model.rctd") == 1);
  CHECK(sig_t_failed_cleanly(dir, "UMI_min_sigma", "out.rctd"));
}

TEST_E2E(sigma_stage_bad_cache_is_rebuilt) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/sigma-cache-bad", test_tmp_dir());
  CHECK(test_sh("mkdir -p '%s'", dir) == 0);
  char model[600];
  snprintf(model, sizeof model, "%s/model.rctd", dir);
  CHECK(sig_t_write_model(model, 71) == 0);
  const char *args = "-q --cache-dir qc --sigma 0.84 model.rctd -o out.rctd";
  CHECK(sig_t_run_ok(dir, args));
  CHECK(test_sh("cd '%s' && mv out.rctd ref.rctd && ls qc/*s084* >/dev/null", dir) == 0);
  /* Garbage, a truncated entry, an unreadable entry, a cache path that is a file: the same
   * output every time. */
  const char *damage[] = {
      "for f in qc/*s084*; do echo garbage > $f; done",
      "for f in qc/*s084*; do head -c 3000 $f > t && mv t $f; done",
      "for f in qc/*s084*; do chmod 000 $f; done",
      "rm -rf qc && touch qc",
  };
  for (int i = 0; i < 4; i++) {
    CHECK(test_sh("cd '%s' && %s", dir, damage[i]) == 0);
    CHECK_MSG(sig_t_run_ok(dir, args), "after: %s", damage[i]);
    CHECK_MSG(test_sh("cd '%s' && cmp -s out.rctd ref.rctd && rm out.rctd", dir) == 0, "after: %s",
              damage[i]);
  }
}

/* The whole chain from the vignette's CSV files (rctd-reference, rctd-normalize, rctd-sigma,
 * through pipes) gives R's sigma and per-epoch likelihoods. */
TEST_E2E(sigma_pipeline_vignette_csv_matches_r) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/sigma-pipeline", test_tmp_dir());
  CHECK(test_sh("mkdir -p '%s'", dir) == 0);
  CHECK(sig_t_share_cache(dir));
  const char *bin = test_bin_dir(), *csv = "data/vignette/csv";
  CHECK(test_sh("cd '%s' && S='%s/%s' && '%s/rctd-reference' -q \"$S/reference/dge.csv\" "
                "--cell-type-table \"$S/reference/meta_data.csv\" --cell-type-col cluster "
                "--numi-table \"$S/reference/meta_data.csv\" --numi-col nUMI | "
                "'%s/rctd-normalize' -q \"$S/spatial/MappedDGEForR.csv\" "
                "--coords-table \"$S/spatial/BeadLocationsForR.csv\" | "
                "'%s/rctd-sigma' --cache-dir cache -o sigma.rctd 2>run.err",
                dir, test_repo_dir(), csv, bin, bin, bin) == 0);
  char path[600], err[RCTD_ERR_LEN];
  snprintf(path, sizeof path, "%s/sigma.rctd", dir);
  rctd_record rec;
  CHECK_MSG(rctd_load_record(path, RCTD_SIGMA_REC, &rec, err, sizeof err) == 0, "%s", err);
  const char *sigma_c = rctd_record_meta_get(&rec, "sigma_c");
  const char *lls = rctd_record_meta_get(&rec, "epoch_log_l");
  char gold_dir[600];
  snprintf(gold_dir, sizeof gold_dir, "%s/tests/data/gold/vignette/full", test_repo_dir());
  const double gold_sigma = sig_t_summary(gold_dir, "sigma"); /* R: 0.84 */
  double ll[2] = {0, 0};
  int ok = sigma_c && gold_sigma > 0 && strtod(sigma_c, NULL) == gold_sigma && lls &&
           sscanf(lls, "%lf,%lf", &ll[0], &ll[1]) == 2;
  rctd_record_free(&rec);
  CHECK_MSG(ok, "sigma_c %s, R's %g", sigma_c ? sigma_c : "(none)", gold_sigma);
  /* R: tests/data/sigma/vignette/default/epochs.csv. */
  CHECK(sig_t_rel(ll[0], 1970.4184674985856) <= 1e-9);
  CHECK(sig_t_rel(ll[1], 1964.4988387470125) <= 1e-9);
}

/* A sigma record as rctd-sigma writes it (keys and values in pairs). */
static rctd_record sig_t_meta(const char *const *kv, size_t n_pairs) {
  rctd_record rec;
  memset(&rec, 0, sizeof rec);
  rec.name = (char *)RCTD_SIGMA_REC;
  rec.kind = RCTD_META;
  rec.rows = n_pairs;
  rec.strings = (char **)kv;
  return rec;
}

/* The record's epoch lists read back (what rctd-merge puts into uns/rctd/sigma_epochs); a cut
 * list, a sigma off the grid or trailing text is a damaged record, named in one line. */
TEST(sigma_trace_reads_the_record_and_refuses_damaged_lists) {
  const char *kv[] = {"sigma_c",      "0.84",        "source",
                      "estimated",    "n_fit",       "6",
                      "converged",    "1",           "epoch_sigma",
                      "100,84",       "epoch_log_l", "1970.4184674985856,1964.4988387470125",
                      "epoch_chosen", "84,84"};
  rctd_record rec = sig_t_meta(kv, 7);
  rctd_sigma_trace t;
  char err[RCTD_ERR_LEN];
  CHECK_MSG(rctd_sigma_trace_read(&rec, "m.rctd", &t, err, sizeof err) == 0, "%s", err);
  CHECK(t.n_epochs == 2 && t.n_fit == 6 && t.converged == 1 && !strcmp(t.source, "estimated"));
  CHECK(t.sigma_fit[0] == 100 && t.sigma_fit[1] == 84 && t.sigma_chosen[0] == 84 &&
        t.sigma_chosen[1] == 84);
  CHECK(t.log_l[0] == 1970.4184674985856 && t.log_l[1] == 1964.4988387470125);
  rctd_sigma_trace_free(&t);
  /* a given sigma: no epochs */
  const char *given[] = {"sigma_c", "0.84", "sigma_value", "84", "source", "given"};
  rec = sig_t_meta(given, 3);
  CHECK(rctd_sigma_trace_read(&rec, "m.rctd", &t, err, sizeof err) == 0);
  CHECK(t.n_epochs == 0 && t.n_fit == -1 && t.converged == -1 && !strcmp(t.source, "given"));
  rctd_sigma_trace_free(&t);
  const char *bad[][3] = {{"100,84", "1970.4", "84,84"},          /* a likelihood missing */
                          {"100,85", "1970.4,1964.5", "84,84"},   /* 85 is not on the grid */
                          {"100,84", "1970.4,1964.5x", "84,84"},  /* trailing text */
                          {"100,84", "1970.4,1964.5", "84,84,"}}; /* an empty entry */
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *kvb[] = {"source",      "estimated", "epoch_sigma",  bad[i][0],
                         "epoch_log_l", bad[i][1],   "epoch_chosen", bad[i][2]};
    rec = sig_t_meta(kvb, 4);
    CHECK_MSG(rctd_sigma_trace_read(&rec, "m.rctd", &t, err, sizeof err) == -1, "case %zu", i);
    CHECK_MSG(!strcmp(err,
                      "m.rctd: record 'sigma': damaged epoch lists (epoch_sigma, "
                      "epoch_log_l, epoch_chosen): run rctd-sigma again"),
              "case %zu: %s", i, err);
    CHECK(t.sigma_fit == NULL && t.log_l == NULL);
  }
}
