/* lib/fit_modes: the decision logic of doublet and multi mode against a scripted backend (scores
 * set per type set, so every rule of process_bead_doublet / process_bead_multi is exercised by
 * hand), and the whole modes against R's vignette output with the CPU backend. */
#include <stdlib.h>
#include <string.h>

#include "fit_modes.h"
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
    conv_f[f] = 1;
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
  /* one batch per step: full (50 iterations), pairs, singlets (25) */
  CHECK(s.sc.n_calls == 3 && s.sc.calls_by_iter[1] == 1);
  CHECK(s.sc.n_fits == 1 + 1 + 2);
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
  CHECK(s.sc.n_calls == 3);
  CHECK(s.sc.n_fits == 3 + (3 + 1 + 1) + (2 + 2 + 2));
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
  CHECK(s.sc.n_fits == 2 + 6 + 2);
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
  s.params.n_types = 1;
  s.sc.n_types = 1;
  CHECK(rctd_fit_doublet(&s.params, &s.chunk, &r, all_w, err, sizeof err) == -1);
  CHECK(s.sc.n_calls == 0);
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
  /* batches: full, 4 greedy steps, confidence and final for size 4 only */
  CHECK(s.sc.n_calls == 1 + 4 + 1 + 1);
  s.params.max_multi_types = 2;
  CHECK(fm_run_multi(&s, &r, all_w) == 0);
  CHECK(r.n_types == 2 && r.min_score == 800);
  fm_setup_free(&s);
}
