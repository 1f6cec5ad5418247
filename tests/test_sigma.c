/* Tests of lib/sigma (choose_sigma_c) and rctd-sigma: R's vignette runs reproduced (fit pixels,
 * per-epoch likelihoods and candidate scores, random state after), chooseSigma on more than
 * 1e6 values, the stream stage (pass-through, pipe = file, --sigma, bad input). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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
  CHECK_MSG(
      rctd_sigma_pick_pixels(&rng, d.numi_n, SIG_T_PIX, &o, &fit_n, &n_fit, err, sizeof err) == 0,
      "%s", err);
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
