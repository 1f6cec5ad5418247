/* Multi mode (spacexr process_bead_multi with constrain = FALSE) on a chunk, in batches:
 * (1) full fit of every pixel; (2) candidates on the host; (3) greedy steps, each one batch
 * (score mode) over every remaining candidate of every pixel still growing; (4) confidence: every
 * swap of a chosen type for a remaining candidate, one batch per list size; (5) the final fit of
 * each list (50 iterations, normalised), one batch per list size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fit_modes.h"
#include "fit_modes_internal.h"

#define MUL_START_SCORE 1e10 /* R's curr_score before the first type */

typedef struct {
  int n_cand; /* remaining candidates, in type order, in cand_nk */
  int growing;
  int fit_off; /* first fit of the pixel in the current batch */
  /* the greedy fit that added the last type: the final fit's types in the same order */
  int last_conv;
  double last_w[RCTD_MULTI_TYPES_CAP];
} mul_pixel;

typedef struct {
  mul_pixel *px_n;
  int32_t *cand_nk;
  int32_t *conv_n;
  rctd_fm_batch step;
  rctd_fm_batch by_size[RCTD_MULTI_TYPES_CAP + 1]; /* batches by list size */
} mul_work;

static void mul_work_free(mul_work *w) {
  free(w->px_n);
  free(w->cand_nk);
  free(w->conv_n);
  rctd_fm_batch_free(&w->step);
  for (int s = 0; s <= RCTD_MULTI_TYPES_CAP; s++) rctd_fm_batch_free(&w->by_size[s]);
}

static void mul_reset_by_size(mul_work *w) {
  for (int s = 0; s <= RCTD_MULTI_TYPES_CAP; s++) {
    rctd_fm_batch_free(&w->by_size[s]);
    rctd_fm_batch_init(&w->by_size[s], s);
  }
}

static void mul_remove_candidate(mul_pixel *px, int32_t *cand, int type) {
  int out = 0;
  for (int i = 0; i < px->n_cand; i++)
    if (cand[i] != type) cand[out++] = cand[i];
  px->n_cand = out;
}

/* One greedy step (types already chosen: step - 1) for every pixel still growing. */
static int mul_greedy_step(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                           mul_work *w, int step, rctd_multi_result *result_n, char *err,
                           size_t err_len) {
  const int n_types = params->n_types;
  rctd_fm_batch_free(&w->step);
  rctd_fm_batch_init(&w->step, step);
  int32_t types[RCTD_MULTI_TYPES_CAP];
  for (int n = 0; n < chunk->n_pix; n++) {
    mul_pixel *px = &w->px_n[n];
    if (!px->growing) continue;
    px->fit_off = w->step.n_fits;
    memcpy(types, result_n[n].types, (size_t)(step - 1) * sizeof *types);
    const int32_t *cand = w->cand_nk + (size_t)n * n_types;
    for (int c = 0; c < px->n_cand; c++) {
      types[step - 1] = cand[c];
      if (rctd_fm_batch_add(&w->step, n, types) < 0) {
        rctd_fail(err, err_len, "fit: out of memory");
        return -1;
      }
    }
  }
  if (rctd_fm_batch_run(params, chunk, &w->step, RCTD_FM_N_ITER_SCORE, 0, 1, err, err_len))
    return -1;
  for (int n = 0; n < chunk->n_pix; n++) {
    mul_pixel *px = &w->px_n[n];
    if (!px->growing) continue;
    rctd_multi_result *res = &result_n[n];
    int32_t *cand = w->cand_nk + (size_t)n * n_types;
    double min_score = res->min_score;
    int best_type = -1, best_c = -1;
    for (int c = 0; c < px->n_cand; c++) {
      double score = w->step.score_f[px->fit_off + c];
      if (score < min_score) {
        best_type = cand[c];
        best_c = c;
        min_score = score;
      }
    }
    if (min_score > res->min_score - params->doublet_threshold) {
      px->growing = 0;
      continue;
    }
    const int f = px->fit_off + best_c;
    px->last_conv = w->step.conv_f[f];
    memcpy(px->last_w, w->step.weights_fk + (size_t)f * step, (size_t)step * sizeof(double));
    res->types[res->n_types++] = best_type;
    mul_remove_candidate(px, cand, best_type);
    res->min_score = min_score;
    if (res->n_types == params->max_multi_types) px->growing = 0;
  }
  return 0;
}

/* Confidence: a chosen type is not confident when swapping it for some remaining candidate
 * scores within CONFIDENCE_THRESHOLD of the list's score.  All swaps are fitted (R stops at the
 * first hit; the fits are independent, so scanning them in R's order gives the same flags). */
static int mul_confidence(const rctd_fit_params *params, const rctd_pixel_chunk *chunk, mul_work *w,
                          rctd_multi_result *result_n, char *err, size_t err_len) {
  const int n_types = params->n_types;
  mul_reset_by_size(w);
  int32_t types[RCTD_MULTI_TYPES_CAP];
  for (int n = 0; n < chunk->n_pix; n++) {
    mul_pixel *px = &w->px_n[n];
    const rctd_multi_result *res = &result_n[n];
    const int s = res->n_types;
    if (s == 0) continue;
    px->fit_off = w->by_size[s].n_fits;
    const int32_t *cand = w->cand_nk + (size_t)n * n_types;
    for (int t = 0; t < s; t++) {
      int n_kept = 0;
      for (int u = 0; u < s; u++)
        if (u != t) types[n_kept++] = res->types[u];
      for (int c = 0; c < px->n_cand; c++) {
        types[s - 1] = cand[c];
        if (rctd_fm_batch_add(&w->by_size[s], n, types) < 0) {
          rctd_fail(err, err_len, "fit: out of memory");
          return -1;
        }
      }
    }
  }
  for (int s = 1; s <= params->max_multi_types; s++)
    if (rctd_fm_batch_run(params, chunk, &w->by_size[s], RCTD_FM_N_ITER_SCORE, 0, 1, err, err_len))
      return -1;
  for (int n = 0; n < chunk->n_pix; n++) {
    const mul_pixel *px = &w->px_n[n];
    rctd_multi_result *res = &result_n[n];
    const int s = res->n_types;
    if (s == 0) continue;
    const double *score_f = w->by_size[s].score_f + px->fit_off;
    for (int t = 0; t < s; t++) {
      res->conf[t] = 1;
      for (int c = 0; c < px->n_cand; c++) {
        if (score_f[t * px->n_cand + c] < res->min_score + params->confidence_threshold) {
          res->conf[t] = 0;
          break;
        }
      }
    }
  }
  return 0;
}

/* Final weights: a 50-iteration fit over the list, normalised to sum 1.  The greedy step that
 * added the last type fitted the same types in the same order with 25 iterations; when that fit
 * converged, the 50-iteration one stops at the same step with the same weights (fits are
 * deterministic), so it is not run again. */
static int mul_final(const rctd_fit_params *params, const rctd_pixel_chunk *chunk, mul_work *w,
                     rctd_multi_result *result_n, char *err, size_t err_len) {
  mul_reset_by_size(w);
  for (int n = 0; n < chunk->n_pix; n++) {
    rctd_multi_result *res = &result_n[n];
    w->px_n[n].fit_off = -1;
    if (res->n_types == 0 || w->px_n[n].last_conv) continue;
    w->px_n[n].fit_off = rctd_fm_batch_add(&w->by_size[res->n_types], n, res->types);
    if (w->px_n[n].fit_off < 0) {
      rctd_fail(err, err_len, "fit: out of memory");
      return -1;
    }
  }
  for (int s = 1; s <= params->max_multi_types; s++)
    if (rctd_fm_batch_run(params, chunk, &w->by_size[s], RCTD_FM_N_ITER, 0, 0, err, err_len))
      return -1;
  for (int n = 0; n < chunk->n_pix; n++) {
    rctd_multi_result *res = &result_n[n];
    const int s = res->n_types;
    if (s == 0) continue;
    const int f = w->px_n[n].fit_off;
    if (f < 0) {
      rctd_fm_normalise(s, w->px_n[n].last_w, res->sub_weights);
      res->conv_sub = 1;
      continue;
    }
    rctd_fm_normalise(s, w->by_size[s].weights_fk + (size_t)f * s, res->sub_weights);
    res->conv_sub = w->by_size[s].conv_f[f];
  }
  return 0;
}

int rctd_fit_multi(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                   rctd_multi_result *result_n, double *all_weights_nk, char *err, size_t err_len) {
  if (rctd_fm_check(params, chunk, err, err_len)) return -1;
  if (params->max_multi_types < 1 || params->max_multi_types > RCTD_MULTI_TYPES_CAP) {
    rctd_fail(err, err_len, "fit: MAX_MULTI_TYPES must be 1..%d, got %d", RCTD_MULTI_TYPES_CAP,
                  params->max_multi_types);
    return -1;
  }
  const int n_types = params->n_types, n_pix = chunk->n_pix;
  mul_work w;
  memset(&w, 0, sizeof w);
  w.px_n = calloc((size_t)n_pix + 1, sizeof *w.px_n);
  w.cand_nk = malloc(((size_t)n_pix * n_types + 1) * sizeof *w.cand_nk);
  w.conv_n = malloc(((size_t)n_pix + 1) * sizeof *w.conv_n);
  int rc = (w.px_n && w.cand_nk && w.conv_n) ? 0 : -1;
  if (rc) rctd_fail(err, err_len, "fit: out of memory for %d pixels", n_pix);
  if (rc == 0) rc = rctd_fm_full_batch(params, chunk, all_weights_nk, w.conv_n, err, err_len);
  if (rc == 0) {
    for (int n = 0; n < n_pix; n++) {
      rctd_multi_result *res = &result_n[n];
      memset(res, 0, sizeof *res);
      res->conv_all = w.conv_n[n];
      res->min_score = MUL_START_SCORE;
      mul_pixel *px = &w.px_n[n];
      px->n_cand = rctd_fm_candidates(n_types, all_weights_nk + (size_t)n * n_types,
                                      w.cand_nk + (size_t)n * n_types);
      px->growing = px->n_cand > 0;
    }
  }
  for (int step = 1; rc == 0 && step <= params->max_multi_types; step++)
    rc = mul_greedy_step(params, chunk, &w, step, result_n, err, err_len);
  if (rc == 0) rc = mul_confidence(params, chunk, &w, result_n, err, err_len);
  if (rc == 0) rc = mul_final(params, chunk, &w, result_n, err, err_len);
  for (int n = 0; rc == 0 && n < n_pix; n++) {
    rctd_multi_result *res = &result_n[n];
    if (res->n_types > 0) continue;
    res->status = w.px_n[n].n_cand == 0 ? RCTD_MULTI_NO_CANDIDATE : RCTD_MULTI_NO_TYPE;
    res->min_score = NAN; /* R has no result here */
  }
  mul_work_free(&w);
  return rc;
}
