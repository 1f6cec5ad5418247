/* lib/fit_modes: the decision logic of doublet and multi mode against a scripted backend (scores
 * set per type set, so every rule of process_bead_doublet / process_bead_multi is exercised by
 * hand), and the whole modes against R's vignette output with the CPU backend. */
#include <stdlib.h>
#include <string.h>

#include "cpu/irwls.h"
#include "cpu/spline_fast.h"
#include "fit_modes.h"
#include "fit_vignette.h"
#include "strlist.h"
#include "synth.h"
#include "test.h"

/* ---- scripted backend: full-fit weights per pixel, scores per (pixel, set of types) ---- */

#define FM_MAX_RULES 32
typedef struct {
  int pix;
  uint32_t mask; /* bit k: type k in the fit */
  double score;
} fm_rule;

typedef struct {
  int n_types;
  const double *full_weights_nk; /* what the full fit returns */
  const int32_t *full_conv_n;
  fm_rule rules[FM_MAX_RULES];
  int n_rules;
  double default_score;
  int unconv_pix; /* 25-iteration fits of this pixel over unconv_mask do not converge */
  uint32_t unconv_mask;
  int n_calls;          /* irwls_batch calls */
  int n_fits;           /* fits over all calls */
  int calls_by_iter[2]; /* [0]: 25-iteration calls, [1]: 50 */
} fm_script;

static double fm_script_score(const fm_script *sc, int pix, uint32_t mask) {
  for (int r = 0; r < sc->n_rules; r++)
    if (sc->rules[r].pix == pix && sc->rules[r].mask == mask) return sc->rules[r].score;
  return sc->default_score;
}

/* Sub-fit weights depend on the type and on nothing else: 0.1 (type + 1); conv = 1. */
static int fm_script_batch(rctd_backend *be, const rctd_qtable *table, const rctd_fit_batch *b,
                           const rctd_irwls_opts *opts, double *weights_fk, int32_t *conv_f,
                           double *score_f) {
  (void)table;
  fm_script *sc = be->impl;
  sc->n_calls++;
  sc->n_fits += b->n_fits;
  sc->calls_by_iter[opts->n_iter == 50]++;
  if (opts->constrain || opts->bulk_mode) return -1;
  for (int f = 0; f < b->n_fits; f++) {
    int pix = b->pix_f[f];
    if (pix < 0 || pix >= b->n_pix) return -1;
    if (!b->types_fk) {
      if (b->k_sub != sc->n_types) return -1;
      memcpy(weights_fk + (size_t)f * b->k_sub, sc->full_weights_nk + (size_t)pix * sc->n_types,
             sc->n_types * sizeof(double));
      conv_f[f] = sc->full_conv_n ? sc->full_conv_n[pix] : 1;
      if (score_f) score_f[f] = sc->default_score;
      continue;
    }
    uint32_t mask = 0;
    for (int i = 0; i < b->k_sub; i++) {
      int t = b->types_fk[(size_t)f * b->k_sub + i];
      if (t < 0 || t >= sc->n_types || (mask >> t & 1)) return -1; /* bad or repeated type */
      mask |= 1u << t;
      weights_fk[(size_t)f * b->k_sub + i] = 0.1 * (t + 1);
    }
    conv_f[f] = !(opts->n_iter == 25 && pix == sc->unconv_pix && mask == sc->unconv_mask);
    if (score_f) score_f[f] = fm_script_score(sc, pix, mask);
  }
  return 0;
}

static uint32_t fm_mask(int n, const int *types) {
  uint32_t m = 0;
  for (int i = 0; i < n; i++) m |= 1u << types[i];
  return m;
}

static void fm_rule_add(fm_script *sc, int pix, double score, int n, const int *types) {
  sc->rules[sc->n_rules++] = (fm_rule){pix, fm_mask(n, types), score};
}
#define FM_RULE(sc, pix, score, ...)                                             \
  fm_rule_add(sc, pix, score, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), \
              (int[]){__VA_ARGS__})

typedef struct {
  rctd_backend be;
  fm_script sc;
  rctd_fit_params params;
  rctd_pixel_chunk chunk;
  double *profiles_gk, *y_ng, *numi_n;
  rctd_qtable table;
} fm_setup;

static void fm_setup_init(fm_setup *s, int n_types, int n_pix, const double *full_weights_nk) {
  memset(s, 0, sizeof *s);
  const int n_genes = 3;
  s->sc.n_types = n_types;
  s->sc.full_weights_nk = full_weights_nk;
  s->sc.default_score = 500;
  s->sc.unconv_pix = -1;
  s->be.name = "script";
  s->be.irwls_batch = fm_script_batch;
  s->be.impl = &s->sc;
  s->profiles_gk = calloc((size_t)n_genes * n_types, sizeof(double));
  s->y_ng = calloc((size_t)n_genes * n_pix + 1, sizeof(double));
  s->numi_n = calloc((size_t)n_pix + 1, sizeof(double));
  for (int n = 0; n < n_pix; n++) s->numi_n[n] = 100;
  rctd_fit_params_default(&s->params);
  s->params.n_genes = n_genes;
  s->params.n_types = n_types;
  s->params.profiles_gk = s->profiles_gk;
  s->params.table = &s->table;
  s->params.backend = &s->be;
  s->chunk = (rctd_pixel_chunk){n_pix, s->y_ng, s->numi_n};
}

static void fm_setup_free(fm_setup *s) {
  free(s->profiles_gk);
  free(s->y_ng);
  free(s->numi_n);
}

/* ---- doublet mode ---- */

enum { FM_K = 6 };

static int fm_run_doublet(fm_setup *s, rctd_doublet_result *res, double *all_w) {
  char err[256] = "";
  int rc = rctd_fit_doublet(&s->params, &s->chunk, res, all_w, err, sizeof err);
  if (rc) fprintf(stderr, "  rctd_fit_doublet: %s\n", err);
  return rc;
}

TEST(fit_doublet_certain_orders_by_singlet_score) {
  /* candidates 2 and 4; their singlet scores decide the order (lower first) */
  double w[FM_K] = {0, 0, 0.5, 0.005, 0.3, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  FM_RULE(&s.sc, 0, 100, 2, 4);
  FM_RULE(&s.sc, 0, 130, 2);
  FM_RULE(&s.sc, 0, 120, 4);
  rctd_doublet_result r;
  double all_w[FM_K];
  CHECK(fm_run_doublet(&s, &r, all_w) == 0);
  CHECK(memcmp(all_w, w, sizeof w) == 0);
  CHECK(r.spot_class == RCTD_SPOT_DOUBLET_CERTAIN); /* 120 - 100 is not < 20 */
  CHECK(r.first_type == 4 && r.second_type == 2);
  CHECK(!r.first_class && !r.second_class);
  CHECK(r.min_score == 100 && r.singlet_score == 120);
  CHECK(r.n_candidates == 2 && r.conv_all == 1 && r.conv_doublet == 1);
  /* the pair fit's weights (0.3, 0.5 for types 2, 4), reversed with the swap, normalised */
  CHECK_NEAR(r.doublet_weights[0], 0.5 / 0.8, 1e-15);
  CHECK_NEAR(r.doublet_weights[1], 0.3 / 0.8, 1e-15);
  /* one batch per step: full (50 iterations), pairs, singlets (25), the final pair refit (50) */
  CHECK(s.sc.n_calls == 4 && s.sc.calls_by_iter[1] == 2);
  CHECK(s.sc.n_fits == 1 + 1 + 2 + 1);
  fm_setup_free(&s);
}

TEST(fit_doublet_singlet_below_threshold) {
  double w[FM_K] = {0, 0.2, 0, 0, 0.7, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  FM_RULE(&s.sc, 0, 100, 1, 4);
  FM_RULE(&s.sc, 0, 119.5, 1);
  FM_RULE(&s.sc, 0, 140, 4);
  rctd_doublet_result r;
  double all_w[FM_K];
  CHECK(fm_run_doublet(&s, &r, all_w) == 0);
  CHECK(r.spot_class == RCTD_SPOT_SINGLET);
  CHECK(r.first_type == 1 && r.second_type == 4);
  CHECK(r.singlet_score == 119.5);
  CHECK_NEAR(r.doublet_weights[0], 0.2 / 0.7, 1e-15);
  fm_setup_free(&s);
}

TEST(fit_doublet_candidate_fallbacks) {
  /* pixel 0: nothing above 0.01 -> types 0, 1, 2; pixel 1: only type 0 -> add type 1;
   * pixel 2: only type 3 -> add type 0; 0.01 itself is not a candidate */
  double w[3 * FM_K] = {0.01, 0, 0, 0, 0, 0.001, 0.9, 0, 0, 0, 0, 0, 0, 0, 0, 0.4, 0.01, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 3, w);
  FM_RULE(&s.sc, 0, 90, 1, 2);
  FM_RULE(&s.sc, 2, 90, 0, 3);
  rctd_doublet_result r[3];
  double all_w[3 * FM_K];
  CHECK(fm_run_doublet(&s, r, all_w) == 0);
  CHECK(r[0].n_candidates == 3 && r[0].first_type == 1 && r[0].second_type == 2);
  CHECK(r[1].n_candidates == 2 && r[1].min_score == 500);
  CHECK((r[1].first_type == 0 && r[1].second_type == 1) ||
        (r[1].first_type == 1 && r[1].second_type == 0));
  CHECK(r[2].n_candidates == 2 && r[2].min_score == 90);
  /* the final 50-iteration fit runs only for pixels whose types were swapped (the scripted
   * pair fits all converge, and an unswapped converged pair fit is the final fit) */
  int n_swapped = (r[1].first_type == 1) + (r[2].first_type == 0); /* candidates (0, 1), (3, 0) */
  CHECK(s.sc.n_calls == 3 + (n_swapped > 0));
  CHECK(s.sc.n_fits == 3 + (3 + 1 + 1) + (2 + 2 + 2) + n_swapped);
  fm_setup_free(&s);
}

TEST(fit_doublet_first_minimum_wins_ties) {
  double w[FM_K] = {0.2, 0.2, 0.2, 0.2, 0, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  s.sc.default_score = 300;
  FM_RULE(&s.sc, 0, 100, 1, 3); /* pair order: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) */
  FM_RULE(&s.sc, 0, 100, 2, 3);
  FM_RULE(&s.sc, 0, 100, 0, 1);
  FM_RULE(&s.sc, 0, 150, 0);
  FM_RULE(&s.sc, 0, 150, 1);
  rctd_doublet_result r;
  double all_w[FM_K];
  CHECK(fm_run_doublet(&s, &r, all_w) == 0);
  /* (0,1) is first; (1,3), (2,3) tie within 5 and leave out type 0 -> type 0 not all_pairs;
   * (2,3) leaves out type 1 too -> reject, singlet = min + 2 * DOUBLET_THRESHOLD */
  CHECK(r.first_type == 0 && r.second_type == 1);
  CHECK(r.spot_class == RCTD_SPOT_REJECT);
  CHECK(r.singlet_score == 140);
  fm_setup_free(&s);
}

TEST(fit_doublet_uncertain_and_swap) {
  /* pixel 0: best (0,1), (0,2) close: all close pairs hold 0, not 1 -> uncertain, 0 first.
   * pixel 1: best (0,1), (1,2) close -> uncertain, 1 first (swapped weights) */
  double w[2 * FM_K] = {0.3, 0.3, 0.3, 0, 0, 0, 0.3, 0.3, 0.3, 0, 0, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 2, w);
  FM_RULE(&s.sc, 0, 100, 0, 1);
  FM_RULE(&s.sc, 0, 104.9, 0, 2);
  FM_RULE(&s.sc, 0, 130, 0);
  FM_RULE(&s.sc, 0, 110, 1);
  FM_RULE(&s.sc, 1, 100, 0, 1);
  FM_RULE(&s.sc, 1, 104.9, 1, 2);
  FM_RULE(&s.sc, 1, 110, 0);
  FM_RULE(&s.sc, 1, 125, 1);
  rctd_doublet_result r[2];
  double all_w[2 * FM_K];
  CHECK(fm_run_doublet(&s, r, all_w) == 0);
  CHECK(r[0].spot_class == RCTD_SPOT_DOUBLET_UNCERTAIN);
  CHECK(r[0].first_type == 0 && r[0].second_type == 1 && r[0].singlet_score == 130);
  CHECK(!r[0].first_class && !r[0].second_class);
  CHECK_NEAR(r[0].doublet_weights[0], 0.1 / 0.3, 1e-15);
  CHECK(r[1].spot_class == RCTD_SPOT_DOUBLET_UNCERTAIN);
  CHECK(r[1].first_type == 1 && r[1].second_type == 0 && r[1].singlet_score == 125);
  CHECK_NEAR(r[1].doublet_weights[0], 0.2 / 0.3, 1e-15);
  /* singlets only where the decision reads them: pixel 0 type 0, pixel 1 type 1 */
  CHECK(s.sc.n_fits == 2 + 6 + 2 + 1); /* one final refit: pixel 1 swapped its types */
  fm_setup_free(&s);
}

TEST(fit_doublet_class_table) {
  /* types 0 and 2 share a class.  Best (0,1); (1,2) is close: it leaves out type 0 but not its
   * class -> type 0 side stays all_pairs_class, is a class call, and its singlet score is the
   * min over the class members met (0 and 2).  Type 1 is in every close pair. */
  double w[FM_K] = {0.3, 0.3, 0.3, 0, 0, 0};
  int32_t class_k[FM_K] = {7, 8, 7, 9, 10, 11};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  s.params.class_k = class_k;
  FM_RULE(&s.sc, 0, 100, 0, 1);
  FM_RULE(&s.sc, 0, 103, 1, 2);
  FM_RULE(&s.sc, 0, 150, 0);
  FM_RULE(&s.sc, 0, 126, 2);
  FM_RULE(&s.sc, 0, 127, 1);
  rctd_doublet_result r;
  double all_w[FM_K];
  CHECK(fm_run_doublet(&s, &r, all_w) == 0);
  CHECK(r.spot_class == RCTD_SPOT_DOUBLET_CERTAIN);
  /* singlet(0 side) = min(150, 126) = 126 < singlet(1) = 127: type 0 first, as a class */
  CHECK(r.first_type == 0 && r.second_type == 1);
  CHECK(r.first_class == 1 && r.second_class == 0);
  CHECK(r.singlet_score == 126);
  /* without the class table the same scores make type 0 uncertain -> type 1 first */
  s.params.class_k = NULL;
  CHECK(fm_run_doublet(&s, &r, all_w) == 0);
  CHECK(r.spot_class == RCTD_SPOT_DOUBLET_UNCERTAIN);
  CHECK(r.first_type == 1 && r.second_type == 0 && r.singlet_score == 127);
  fm_setup_free(&s);
}

TEST(fit_doublet_rejects_bad_input) {
  double w[FM_K] = {0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  rctd_doublet_result r;
  double all_w[FM_K];
  char err[256] = "";
  s.y_ng[1] = NAN;
  CHECK(rctd_fit_doublet(&s.params, &s.chunk, &r, all_w, err, sizeof err) == -1);
  CHECK(strstr(err, "count") != NULL);
  s.y_ng[1] = 0;
  /* a fit scoring NaN (e.g. a count beyond the table) is an error, not a silent lost comparison */
  s.sc.default_score = NAN;
  CHECK(rctd_fit_doublet(&s.params, &s.chunk, &r, all_w, err, sizeof err) == -1);
  CHECK(strstr(err, "non-finite") != NULL);
  s.sc.default_score = 500;
  CHECK(rctd_fit_doublet(&s.params, &s.chunk, &r, all_w, err, sizeof err) == 0);
  s.params.n_types = 1;
  s.sc.n_types = 1;
  int calls = s.sc.n_calls;
  CHECK(rctd_fit_doublet(&s.params, &s.chunk, &r, all_w, err, sizeof err) == -1);
  CHECK(s.sc.n_calls == calls);
  fm_setup_free(&s);
}

/* ---- multi mode ---- */

static int fm_run_multi(fm_setup *s, rctd_multi_result *res, double *all_w) {
  char err[256] = "";
  int rc = rctd_fit_multi(&s->params, &s->chunk, res, all_w, err, sizeof err);
  if (rc) fprintf(stderr, "  rctd_fit_multi: %s\n", err);
  return rc;
}

TEST(fit_multi_greedy_confidence_and_flags) {
  /* pixel 0: candidates 0, 2, 3.  Step 1 picks 2 (90), step 2 adds 0 (60), step 3 would
   * reach 50 > 60 - 20: stop.  Swaps: {0,3} = 62 < 65 -> 2 not confident; {2,3} = 65 not < 65.
   * pixel 1: no candidate (R aborts) -> flagged.  pixel 2: ties -> first candidate, and the
   * swap to the other one scores the same: not confident. */
  double w[3 * FM_K] = {0.2, 0, 0.5, 0.05, 0, 0, 0, 0, 0, 0, 0, 0.01, 0, 0.4, 0, 0, 0.4, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 3, w);
  s.sc.default_score = 1000;
  FM_RULE(&s.sc, 0, 100, 0);
  FM_RULE(&s.sc, 0, 90, 2);
  FM_RULE(&s.sc, 0, 95, 3);
  FM_RULE(&s.sc, 0, 60, 0, 2);
  FM_RULE(&s.sc, 0, 65, 2, 3);
  FM_RULE(&s.sc, 0, 62, 0, 3);
  FM_RULE(&s.sc, 0, 50, 0, 2, 3);
  FM_RULE(&s.sc, 2, 200, 1);
  FM_RULE(&s.sc, 2, 200, 4);
  rctd_multi_result r[3];
  double all_w[3 * FM_K];
  CHECK(fm_run_multi(&s, r, all_w) == 0);
  CHECK(r[0].status == RCTD_MULTI_OK && r[0].n_types == 2);
  CHECK(r[0].types[0] == 2 && r[0].types[1] == 0);
  CHECK(r[0].conf[0] == 0 && r[0].conf[1] == 1);
  CHECK(r[0].min_score == 60);
  CHECK_NEAR(r[0].sub_weights[0], 0.3 / 0.4, 1e-15);
  CHECK_NEAR(r[0].sub_weights[1], 0.1 / 0.4, 1e-15);
  CHECK(r[0].conv_all == 1 && r[0].conv_sub == 1);
  CHECK(r[1].status == RCTD_MULTI_NO_CANDIDATE && r[1].n_types == 0);
  CHECK(r[2].status == RCTD_MULTI_OK && r[2].n_types == 1 && r[2].types[0] == 1);
  CHECK(r[2].conf[0] == 0 && r[2].min_score == 200 && r[2].sub_weights[0] == 1);
  fm_setup_free(&s);
}

TEST(fit_multi_stops_at_max_types) {
  double w[FM_K] = {0.2, 0.2, 0.2, 0.2, 0.2, 0};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  s.sc.default_score = 1000;
  FM_RULE(&s.sc, 0, 900, 4);
  FM_RULE(&s.sc, 0, 800, 4, 3);
  FM_RULE(&s.sc, 0, 700, 4, 3, 2);
  FM_RULE(&s.sc, 0, 600, 4, 3, 2, 1);
  FM_RULE(&s.sc, 0, 500, 4, 3, 2, 1, 0);
  rctd_multi_result r;
  double all_w[FM_K];
  CHECK(fm_run_multi(&s, &r, all_w) == 0);
  CHECK(r.n_types == 4 && r.min_score == 600);
  CHECK(r.types[0] == 4 && r.types[1] == 3 && r.types[2] == 2 && r.types[3] == 1);
  /* swaps for type 0 score 1000: all confident */
  for (int t = 0; t < 4; t++) CHECK(r.conf[t] == 1);
  /* batches: full, 4 greedy steps, confidence for size 4 only; no final batch, as the
   * (scripted, converged) greedy fit that added the last type is the final fit */
  CHECK(s.sc.n_calls == 1 + 4 + 1);
  s.params.max_multi_types = 2;
  CHECK(fm_run_multi(&s, &r, all_w) == 0);
  CHECK(r.n_types == 2 && r.min_score == 800);
  fm_setup_free(&s);
}

/* ---- the vignette against R (gold/vignette/{full,doublet,multi}) ---- */

/* The gold CSVs are read with rctd_synth_csv_* (synth.h). */

/* Inputs of fitPixels for the vignette: the gold profiles restricted to gene_list_reg, counts
 * of the 71 gold pixels over those genes, nUMI = column sums over all genes, sigma 0.84. */
typedef struct {
  int ok, n_genes, n_types, n_pix;
  char **barcodes;
  double *profiles_gk, *y_ng, *numi_n;
  double x_vals[RCTD_N_X];
  double *q_kx, *sq_kx;
  rctd_qtable table;
  rctd_backend *be;
} fmv_data;

static fmv_data fmv;

static int fmv_load(void) {
  if (fmv.ok) return 0;
  rctd_test_fit_vignette v;
  if (rctd_test_fit_vignette_load(test_repo_dir(), &v)) return -1;
  fmv.n_genes = v.n_genes;
  fmv.n_types = v.n_types;
  fmv.n_pix = v.n_pix;
  fmv.barcodes = v.barcodes;
  fmv.profiles_gk = v.profiles_gk;
  fmv.y_ng = v.y_ng;
  fmv.numi_n = v.numi_n;
  rctd_strlist_free(v.genes, (size_t)v.n_genes); /* names are not needed here */
  rctd_strlist_free(v.types, (size_t)v.n_types);
  double max_y = 0;
  for (size_t i = 0; i < (size_t)v.n_pix * v.n_genes; i++) max_y = fmax(max_y, v.y_ng[i]);
  int n_k = (int)fmin(max_y, RCTD_K_VAL) + 1;
  fmv.be = rctd_backend_cpu(2);
  rctd_x_grid(fmv.x_vals);
  fmv.q_kx = malloc((size_t)n_k * RCTD_N_X * sizeof(double));
  fmv.sq_kx = malloc((size_t)n_k * RCTD_N_X * sizeof(double));
  if (!fmv.be || fmv.be->qtable(fmv.be, 0.84, n_k, fmv.q_kx, fmv.sq_kx)) return -1;
  fmv.table = (rctd_qtable){n_k, fmv.x_vals, fmv.q_kx, fmv.sq_kx};
  fmv.ok = 1;
  return 0;
}

static void fmv_params(rctd_fit_params *p) {
  rctd_fit_params_default(p);
  p->n_genes = fmv.n_genes;
  p->n_types = fmv.n_types;
  p->profiles_gk = fmv.profiles_gk;
  p->table = &fmv.table;
  p->backend = fmv.be;
}

/* Largest |ours - gold| over a gold weights file (rows = pixels in fmv order). */
static double fmv_weights_diff(const char *file, const double *weights_nk) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/%s", test_repo_dir(), file);
  rctd_synth_csv gold;
  if (rctd_synth_csv_read(path, &gold, NULL, 0) || gold.n_rows != fmv.n_pix + 1) return INFINITY;
  double max_diff = 0;
  for (int n = 0; n < fmv.n_pix; n++) {
    if (strcmp(rctd_synth_csv_at(&gold, n + 1, 0), fmv.barcodes[n]) != 0) return INFINITY;
    for (int k = 0; k < fmv.n_types; k++)
      max_diff = fmax(max_diff, fabs(weights_nk[(size_t)n * fmv.n_types + k] -
                                     strtod(rctd_synth_csv_at(&gold, n + 1, k + 1), NULL)));
  }
  rctd_synth_csv_free(&gold);
  return max_diff;
}

TEST(fit_vignette_full_matches_r) {
  CHECK_MSG(fmv_load() == 0, "cannot read the vignette data under %s", test_repo_dir());
  CHECK(fmv.n_genes == 313 && fmv.n_types == 19 && fmv.n_pix == 71);
  rctd_fit_params p;
  fmv_params(&p);
  rctd_pixel_chunk chunk = {fmv.n_pix, fmv.y_ng, fmv.numi_n};
  double *w = malloc((size_t)fmv.n_pix * fmv.n_types * sizeof *w);
  int32_t conv[71];
  char err[256] = "";
  CHECK_MSG(rctd_fit_full(&p, &chunk, w, conv, err, sizeof err) == 0, "%s", err);
  double diff = fmv_weights_diff("full/weights.csv", w);
  if (rctd_test_fit_verbose()) fprintf(stderr, "  full: max |weight - R| = %.3g\n", diff);
  CHECK_MSG(diff < 1e-6, "max weight difference %g", diff);
  free(w);
}

TEST(fit_vignette_doublet_matches_r) {
  CHECK_MSG(fmv_load() == 0, "cannot read the vignette data under %s", test_repo_dir());
  rctd_fit_params p;
  fmv_params(&p);
  const int N = fmv.n_pix, K = fmv.n_types;
  rctd_pixel_chunk chunk = {N, fmv.y_ng, fmv.numi_n};
  double *w = malloc((size_t)N * K * sizeof *w);
  rctd_doublet_result *res = malloc((size_t)N * sizeof *res);
  char err[256] = "", path[1024];
  CHECK_MSG(rctd_fit_doublet(&p, &chunk, res, w, err, sizeof err) == 0, "%s", err);
  double diff_all = fmv_weights_diff("doublet/weights.csv", w);
  CHECK_MSG(diff_all < 1e-6, "all_weights differ by %g", diff_all);
  rctd_synth_csv df, wd;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/results_df.csv",
           test_repo_dir());
  CHECK(rctd_synth_csv_read(path, &df, NULL, 0) == 0 && df.n_rows == N + 1 && df.n_cols == 10);
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/weights_doublet.csv",
           test_repo_dir());
  CHECK(rctd_synth_csv_read(path, &wd, NULL, 0) == 0 && wd.n_rows == N + 1);
  double diff_dw = 0, rel_score = 0;
  int n_class_mismatch = 0;
  for (int n = 0; n < N; n++) {
    const rctd_doublet_result *r = &res[n];
    const char *bc = fmv.barcodes[n];
    CHECK(strcmp(rctd_synth_csv_at(&df, n + 1, 0), bc) == 0 &&
          strcmp(rctd_synth_csv_at(&wd, n + 1, 0), bc) == 0);
    int same = strcmp(rctd_spot_class_name(r->spot_class), rctd_synth_csv_at(&df, n + 1, 1)) == 0 &&
               r->first_type + 1 == atoi(rctd_synth_csv_at(&df, n + 1, 2)) &&
               r->second_type + 1 == atoi(rctd_synth_csv_at(&df, n + 1, 3)) &&
               r->first_class == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 4)) &&
               r->second_class == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 5)) &&
               r->conv_all == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 8)) &&
               r->conv_doublet == rctd_test_fit_bool(rctd_synth_csv_at(&df, n + 1, 9));
    if (!same) {
      n_class_mismatch++;
      fprintf(stderr, "  %s: ours %s %d %d %d %d %d %d, R %s %s %s %s %s %s %s\n", bc,
              rctd_spot_class_name(r->spot_class), r->first_type + 1, r->second_type + 1,
              r->first_class, r->second_class, r->conv_all, r->conv_doublet,
              rctd_synth_csv_at(&df, n + 1, 1), rctd_synth_csv_at(&df, n + 1, 2),
              rctd_synth_csv_at(&df, n + 1, 3), rctd_synth_csv_at(&df, n + 1, 4),
              rctd_synth_csv_at(&df, n + 1, 5), rctd_synth_csv_at(&df, n + 1, 8),
              rctd_synth_csv_at(&df, n + 1, 9));
    }
    rel_score = fmax(
        rel_score, rctd_test_fit_rel(r->min_score, strtod(rctd_synth_csv_at(&df, n + 1, 6), NULL)));
    rel_score = fmax(rel_score, rctd_test_fit_rel(r->singlet_score,
                                                  strtod(rctd_synth_csv_at(&df, n + 1, 7), NULL)));
    for (int i = 0; i < 2; i++)
      diff_dw = fmax(diff_dw, fabs(r->doublet_weights[i] -
                                   strtod(rctd_synth_csv_at(&wd, n + 1, i + 1), NULL)));
  }
  if (rctd_test_fit_verbose())
    fprintf(stderr,
            "  doublet: %d/%d pixels differ in a categorical; max |all_weights - R| = %.3g, "
            "max |doublet weights - R| = %.3g, max relative score difference %.3g\n",
            n_class_mismatch, N, diff_all, diff_dw, rel_score);
  CHECK_MSG(n_class_mismatch == 0, "%d pixels differ from R in a categorical", n_class_mismatch);
  CHECK_MSG(diff_dw < 1e-6, "doublet weights differ by %g", diff_dw);
  CHECK_MSG(rel_score < 1e-6, "scores differ by %g (relative)", rel_score);
  rctd_synth_csv_free(&df);
  rctd_synth_csv_free(&wd);
  free(res);
  free(w);
}

TEST(fit_vignette_multi_matches_r) {
  CHECK_MSG(fmv_load() == 0, "cannot read the vignette data under %s", test_repo_dir());
  rctd_fit_params p;
  fmv_params(&p);
  const int N = fmv.n_pix, K = fmv.n_types;
  rctd_pixel_chunk chunk = {N, fmv.y_ng, fmv.numi_n};
  double *w = malloc((size_t)N * K * sizeof *w);
  rctd_multi_result *res = malloc((size_t)N * sizeof *res);
  char err[256] = "", path[1024];
  CHECK_MSG(rctd_fit_multi(&p, &chunk, res, w, err, sizeof err) == 0, "%s", err);
  double diff_all = fmv_weights_diff("multi/weights.csv", w);
  CHECK_MSG(diff_all < 1e-6, "all_weights differ by %g", diff_all);
  rctd_synth_csv mr;
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/multi/multi_results.csv",
           test_repo_dir());
  CHECK(rctd_synth_csv_read(path, &mr, NULL, 0) == 0 && mr.n_rows == N + 1 && mr.n_cols == 6);
  double diff_sub = 0, rel_score = 0;
  int n_mismatch = 0;
  for (int n = 0; n < N; n++) {
    const rctd_multi_result *r = &res[n];
    CHECK(strcmp(rctd_synth_csv_at(&mr, n + 1, 0), fmv.barcodes[n]) == 0);
    char *types[RCTD_MULTI_TYPES_CAP], *conf[RCTD_MULTI_TYPES_CAP], *sub[RCTD_MULTI_TYPES_CAP];
    int n_types = atoi(rctd_synth_csv_at(&mr, n + 1, 1));
    int same = r->status == RCTD_MULTI_OK && r->n_types == n_types &&
               rctd_test_fit_split((char *)rctd_synth_csv_at(&mr, n + 1, 2), types,
                                   RCTD_MULTI_TYPES_CAP) == n_types &&
               rctd_test_fit_split((char *)rctd_synth_csv_at(&mr, n + 1, 3), conf,
                                   RCTD_MULTI_TYPES_CAP) == n_types &&
               rctd_test_fit_split((char *)rctd_synth_csv_at(&mr, n + 1, 4), sub,
                                   RCTD_MULTI_TYPES_CAP) == n_types;
    for (int t = 0; same && t < n_types; t++) {
      same = r->types[t] + 1 == atoi(types[t]) && r->conf[t] == rctd_test_fit_bool(conf[t]);
      diff_sub = fmax(diff_sub, fabs(r->sub_weights[t] - strtod(sub[t], NULL)));
    }
    if (!same) {
      n_mismatch++;
      fprintf(stderr, "  %s: ours status %d, %d types (first %d)\n",
              rctd_synth_csv_at(&mr, n + 1, 0), r->status, r->n_types,
              r->n_types ? r->types[0] + 1 : 0);
    }
    rel_score = fmax(
        rel_score, rctd_test_fit_rel(r->min_score, strtod(rctd_synth_csv_at(&mr, n + 1, 5), NULL)));
  }
  if (rctd_test_fit_verbose())
    fprintf(stderr,
            "  multi: %d/%d pixels differ in types or confidence; max |all_weights - R| = %.3g, "
            "max |sub_weights - R| = %.3g, max relative min_score difference %.3g\n",
            n_mismatch, N, diff_all, diff_sub, rel_score);
  CHECK_MSG(n_mismatch == 0, "%d pixels differ from R", n_mismatch);
  CHECK_MSG(diff_sub < 1e-6, "sub_weights differ by %g", diff_sub);
  CHECK_MSG(rel_score < 1e-6, "min_score differs by %g (relative)", rel_score);
  rctd_synth_csv_free(&mr);
  free(res);
  free(w);
}

/* Results do not depend on how pixels are chunked nor on the backend's thread count. */
TEST(fit_vignette_chunking_and_threads_do_not_change_results) {
  CHECK_MSG(fmv_load() == 0, "cannot read the vignette data under %s", test_repo_dir());
  rctd_fit_params p;
  fmv_params(&p);
  const int N = fmv.n_pix, K = fmv.n_types, G = fmv.n_genes;
  rctd_doublet_result *whole = calloc(N, sizeof *whole), *parts = calloc(N, sizeof *parts);
  rctd_multi_result *mwhole = calloc(N, sizeof *mwhole), *mparts = calloc(N, sizeof *mparts);
  double *w = malloc((size_t)N * K * sizeof *w);
  char err[256] = "";
  rctd_pixel_chunk chunk = {N, fmv.y_ng, fmv.numi_n};
  CHECK(rctd_fit_doublet(&p, &chunk, whole, w, err, sizeof err) == 0);
  CHECK(rctd_fit_multi(&p, &chunk, mwhole, w, err, sizeof err) == 0);
  rctd_backend *be3 = rctd_backend_cpu(3);
  p.backend = be3;
  for (int n0 = 0; n0 < N; n0 += 16) {
    int n1 = n0 + 16 < N ? n0 + 16 : N;
    rctd_pixel_chunk part = {n1 - n0, fmv.y_ng + (size_t)n0 * G, fmv.numi_n + n0};
    CHECK(rctd_fit_doublet(&p, &part, parts + n0, w + (size_t)n0 * K, err, sizeof err) == 0);
    CHECK(rctd_fit_multi(&p, &part, mparts + n0, w + (size_t)n0 * K, err, sizeof err) == 0);
  }
  be3->destroy(be3);
  CHECK(memcmp(whole, parts, (size_t)N * sizeof *whole) == 0);
  CHECK(memcmp(mwhole, mparts, (size_t)N * sizeof *mwhole) == 0);
  free(whole);
  free(parts);
  free(mwhole);
  free(mparts);
  free(w);
}

/* The vignette's full, doublet and multi fits by the portable C kernels, the AVX2 ones and the
 * default ones (AVX-512 where the CPU has it): the same bits (the fused multiply-adds of fits of
 * five or more types included), so the output does not depend on the CPU. */
TEST(fit_vignette_simd_paths_equal) {
  CHECK_MSG(fmv_load() == 0, "cannot read the vignette data under %s", test_repo_dir());
  rctd_fit_params p;
  fmv_params(&p);
  const int N = fmv.n_pix, K = fmv.n_types;
  enum { NV = 3 };
  rctd_pixel_chunk chunk = {N, fmv.y_ng, fmv.numi_n};
  double *w[NV], *wd[NV], *wm[NV];
  int32_t *conv[NV];
  rctd_doublet_result *d[NV];
  rctd_multi_result *m[NV];
  const int had = rctd_cpu_simd(-1), had512 = rctd_irwls_avx512(-1);
  char err[256] = "";
  for (int v = 0; v < NV; v++) {
    w[v] = calloc((size_t)N * K, sizeof(double));
    wd[v] = calloc((size_t)N * K, sizeof(double));
    wm[v] = calloc((size_t)N * K, sizeof(double));
    conv[v] = calloc(N, sizeof(int32_t));
    d[v] = calloc(N, sizeof(rctd_doublet_result));
    m[v] = calloc(N, sizeof(rctd_multi_result));
    CHECK(w[v] && wd[v] && wm[v] && conv[v] && d[v] && m[v]);
    /* v = 0: the default; 1: AVX2 (AVX-512 off); 2: portable C */
    rctd_cpu_simd(v < 2 && had);
    rctd_irwls_avx512(v == 0 && had512);
    CHECK(rctd_fit_full(&p, &chunk, w[v], conv[v], err, sizeof err) == 0);
    CHECK(rctd_fit_doublet(&p, &chunk, d[v], wd[v], err, sizeof err) == 0);
    CHECK(rctd_fit_multi(&p, &chunk, m[v], wm[v], err, sizeof err) == 0);
  }
  rctd_cpu_simd(had);
  rctd_irwls_avx512(had512);
  for (int v = 1; v < NV; v++) {
    CHECK_MSG(memcmp(w[0], w[v], (size_t)N * K * sizeof(double)) == 0 &&
                  memcmp(conv[0], conv[v], N * sizeof(int32_t)) == 0,
              "full: path %d differs", v);
    CHECK_MSG(memcmp(wd[0], wd[v], (size_t)N * K * sizeof(double)) == 0 &&
                  memcmp(d[0], d[v], N * sizeof(rctd_doublet_result)) == 0,
              "doublet: path %d differs", v);
    CHECK_MSG(memcmp(wm[0], wm[v], (size_t)N * K * sizeof(double)) == 0 &&
                  memcmp(m[0], m[v], N * sizeof(rctd_multi_result)) == 0,
              "multi: path %d differs", v);
  }
  for (int v = 0; v < NV; v++) {
    free(w[v]);
    free(wd[v]);
    free(wm[v]);
    free(conv[v]);
    free(d[v]);
    free(m[v]);
  }
}

TEST(fit_modes_empty_chunk) {
  fm_setup s;
  fm_setup_init(&s, FM_K, 0, NULL);
  char err[256] = "";
  double w[1];
  int32_t conv[1];
  rctd_doublet_result d[1];
  rctd_multi_result m[1];
  CHECK(rctd_fit_full(&s.params, &s.chunk, w, conv, err, sizeof err) == 0);
  CHECK(rctd_fit_doublet(&s.params, &s.chunk, d, w, err, sizeof err) == 0);
  CHECK(rctd_fit_multi(&s.params, &s.chunk, m, w, err, sizeof err) == 0);
  CHECK(s.sc.n_calls == 0);
  fm_setup_free(&s);
}

/* A final multi fit is run only where the greedy fit that added the last type did not converge
 * within its 25 iterations; it then decides the weights and conv_sub. */
TEST(fit_multi_final_fit_only_when_not_converged) {
  double w[FM_K] = {0.2, 0, 0.5, 0, 0, 0};
  int32_t conv_full[1] = {1};
  fm_setup s;
  fm_setup_init(&s, FM_K, 1, w);
  s.sc.full_conv_n = conv_full;
  s.sc.default_score = 1000;
  FM_RULE(&s.sc, 0, 900, 2);
  rctd_multi_result r;
  double all_w[FM_K];
  CHECK(fm_run_multi(&s, &r, all_w) == 0);
  CHECK(r.n_types == 1 && r.types[0] == 2 && r.conv_sub == 1 && r.sub_weights[0] == 1);
  CHECK(s.sc.calls_by_iter[1] == 1); /* the full fit only */
  /* the greedy fit of type 2 does not converge: the final 50-iteration fit runs */
  s.sc.unconv_pix = 0;
  s.sc.unconv_mask = 1u << 2;
  memset(s.sc.calls_by_iter, 0, sizeof s.sc.calls_by_iter);
  CHECK(fm_run_multi(&s, &r, all_w) == 0);
  CHECK(r.n_types == 1 && r.types[0] == 2 && r.conv_sub == 1);
  CHECK(s.sc.calls_by_iter[1] == 2);
  fm_setup_free(&s);
}
