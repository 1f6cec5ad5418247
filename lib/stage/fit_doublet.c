/* Doublet mode (spacexr process_bead_doublet with constrain = FALSE) on a chunk, in batches:
 * (1) full fit of every pixel; (2) candidates on the host; (3) every candidate pair of every
 * pixel in score mode; (4) best pair and check_pairs_type on the host; (5) the singlet scores
 * that the decision needs; (6) classes on the host; (7) the final fit of the two types in their
 * final order (50 iterations, normalised), as process_bead_doublet refits them after the call. */
#include <stdlib.h>
#include <string.h>

#include "fit_modes.h"
#include "fit_modes_internal.h"

/* Per pixel bookkeeping between the batches. */
typedef struct {
  int n_cand;
  int pair_off;  /* index of the pixel's first fit in the pair batch */
  int best_pair; /* local index of the first minimum pair */
  int best_i, best_j;
  double min_score;
  /* check_pairs_type for [0] = first type, [1] = second type of the best pair */
  int all_pairs[2], all_pairs_class[2];
  int n_other[2]; /* other_class lists: the type itself first */
  int final_fit;  /* index in the final batch, or -1: the best pair's fit is the final one */
} dbl_pixel;

static int dbl_class_of(const rctd_fit_params *params, int type) {
  return params->class_k ? params->class_k[type] : type;
}

/* Index of pair (i, j), i < j, among the m candidates' pairs in R's loop order. */
static int dbl_pair_index(int m, int i, int j) {
  return i * m - i * (i + 1) / 2 + (j - i - 1);
}

static int dbl_in_list(const int32_t *list, int n, int type) {
  for (int i = 0; i < n; i++)
    if (list[i] == type) return 1;
  return 0;
}

/* check_pairs_type without the singlet scores: which pairs within CONFIDENCE_THRESHOLD of the
 * best one leave out my_type (all_pairs) or its class (all_pairs_class), and the types of
 * my_type's class met there (other, my_type first; returns their number). */
static int dbl_check_pairs(const rctd_fit_params *params, int m, const int32_t *cand,
                           const double *score_p, double min_score, int my_type, int *all_pairs,
                           int *all_pairs_class, int32_t *other) {
  int n_other = 0;
  other[n_other++] = my_type;
  *all_pairs = 1;
  *all_pairs_class = 1;
  const int my_class = dbl_class_of(params, my_type);
  for (int i = 0; i < m - 1; i++) {
    for (int j = i + 1; j < m; j++) {
      if (!(score_p[dbl_pair_index(m, i, j)] < min_score + params->confidence_threshold)) continue;
      const int type1 = cand[i], type2 = cand[j];
      if (type1 != my_type && type2 != my_type) *all_pairs = 0;
      const int first_class = dbl_class_of(params, type1) == my_class;
      const int second_class = dbl_class_of(params, type2) == my_class;
      if (!first_class && !second_class) *all_pairs_class = 0;
      if (first_class && !dbl_in_list(other, n_other, type1)) other[n_other++] = type1;
      if (second_class && !dbl_in_list(other, n_other, type2)) other[n_other++] = type2;
    }
  }
  return n_other;
}

/* Whether check_pairs_type's singlet scores matter for side s, and for which of its types. */
static int dbl_singlets_needed(const dbl_pixel *px, int s) {
  if (!px->all_pairs_class[s]) return 0;
  return (!px->all_pairs[s] && px->n_other[s] > 1) ? px->n_other[s] : 1;
}

/* Candidates with R's fallbacks: none -> the first min(3, K) types; one -> add type 1, or type 2
 * when the one is type 1. */
static int dbl_candidates(int n_types, const double *weights_k, int32_t *cand) {
  int n_cand = rctd_fm_candidates(n_types, weights_k, cand);
  if (n_cand == 0) {
    n_cand = n_types < 3 ? n_types : 3;
    for (int k = 0; k < n_cand; k++) cand[k] = k;
  }
  if (n_cand == 1) cand[n_cand++] = cand[0] == 0 ? 1 : 0;
  return n_cand;
}

/* Step (5) and (6) for one pixel: the singlet scores of its sides, then the class call. */
static void dbl_decide(const rctd_fit_params *params, const dbl_pixel *px, const int32_t *cand,
                       const int32_t *other_s, const double *singlet_k, rctd_doublet_result *res) {
  double singlet_side[2] = {0, 0};
  for (int s = 0; s < 2; s++) {
    int n_needed = dbl_singlets_needed(px, s);
    if (!n_needed) continue;
    const int32_t *other = other_s + (size_t)s * params->n_types;
    double best = singlet_k[other[0]];
    for (int t = 1; t < n_needed; t++)
      if (singlet_k[other[t]] < best) best = singlet_k[other[t]];
    singlet_side[s] = best;
  }
  int first = cand[px->best_i], second = cand[px->best_j];
  int first_class = 0, second_class = 0, swapped = 0;
  double singlet_score;
  int spot;
  const int *ap = px->all_pairs, *apc = px->all_pairs_class;
  if (!apc[0] && !apc[1]) {
    spot = RCTD_SPOT_REJECT;
    singlet_score = px->min_score + 2 * params->doublet_threshold; /* R: arbitrary */
  } else if (apc[0] && !apc[1]) {
    first_class = !ap[0];
    singlet_score = singlet_side[0];
    spot = RCTD_SPOT_DOUBLET_UNCERTAIN;
  } else if (!apc[0] && apc[1]) {
    first_class = !ap[1];
    singlet_score = singlet_side[1];
    swapped = 1;
    spot = RCTD_SPOT_DOUBLET_UNCERTAIN;
  } else {
    spot = RCTD_SPOT_DOUBLET_CERTAIN;
    singlet_score = singlet_side[1] < singlet_side[0] ? singlet_side[1] : singlet_side[0];
    first_class = !ap[0];
    second_class = !ap[1];
    if (singlet_side[1] < singlet_side[0]) {
      swapped = 1;
      first_class = !ap[1];
      second_class = !ap[0];
    }
  }
  if (singlet_score - px->min_score < params->doublet_threshold) spot = RCTD_SPOT_SINGLET;

  res->spot_class = spot;
  res->first_type = swapped ? second : first;
  res->second_type = swapped ? first : second;
  res->first_class = first_class;
  res->second_class = second_class;
  res->min_score = px->min_score;
  res->singlet_score = singlet_score;
}

typedef struct {
  dbl_pixel *px_n;
  int32_t *cand_nk;   /* candidates of each pixel */
  int32_t *other_nsk; /* other_class lists, per pixel and side */
  int32_t *conv_n;
  int32_t *singlet_fit_nk; /* index of the singlet fit of (pixel, type), or -1 */
  rctd_fm_batch pairs, singlets, final;
} dbl_work;

static void dbl_work_free(dbl_work *w) {
  free(w->px_n);
  free(w->cand_nk);
  free(w->other_nsk);
  free(w->conv_n);
  free(w->singlet_fit_nk);
  rctd_fm_batch_free(&w->pairs);
  rctd_fm_batch_free(&w->singlets);
  rctd_fm_batch_free(&w->final);
}

static int dbl_work_alloc(dbl_work *w, int n_pix, int n_types) {
  memset(w, 0, sizeof *w);
  size_t nk = (size_t)n_pix * n_types + 1;
  w->px_n = calloc((size_t)n_pix + 1, sizeof *w->px_n);
  w->cand_nk = malloc(nk * sizeof *w->cand_nk);
  w->other_nsk = malloc(2 * nk * sizeof *w->other_nsk);
  w->conv_n = malloc(((size_t)n_pix + 1) * sizeof *w->conv_n);
  w->singlet_fit_nk = malloc(nk * sizeof *w->singlet_fit_nk);
  rctd_fm_batch_init(&w->pairs, 2);
  rctd_fm_batch_init(&w->singlets, 1);
  rctd_fm_batch_init(&w->final, 2);
  return (w->px_n && w->cand_nk && w->other_nsk && w->conv_n && w->singlet_fit_nk) ? 0 : -1;
}

/* (3): every candidate pair of every pixel, in R's loop order. */
static int dbl_add_pairs(dbl_work *w, int n_pix, int n_types) {
  for (int n = 0; n < n_pix; n++) {
    dbl_pixel *px = &w->px_n[n];
    const int32_t *cand = w->cand_nk + (size_t)n * n_types;
    px->pair_off = w->pairs.n_fits;
    for (int i = 0; i < px->n_cand - 1; i++) {
      for (int j = i + 1; j < px->n_cand; j++) {
        int32_t types[2] = {cand[i], cand[j]};
        if (rctd_fm_batch_add(&w->pairs, n, types) < 0) return -1;
      }
    }
  }
  return 0;
}

/* (4): first minimum pair, check_pairs_type for both of its types, singlet fits requested. */
static int dbl_rank_pairs(const rctd_fit_params *params, dbl_work *w, int n_pix) {
  const int n_types = params->n_types;
  for (int n = 0; n < n_pix; n++) {
    dbl_pixel *px = &w->px_n[n];
    const int32_t *cand = w->cand_nk + (size_t)n * n_types;
    const double *score_p = w->pairs.score_f + px->pair_off;
    const int m = px->n_cand;
    int p = 0;
    px->best_pair = -1;
    for (int i = 0; i < m - 1; i++) {
      for (int j = i + 1; j < m; j++, p++) {
        if (px->best_pair < 0 || score_p[p] < px->min_score) {
          px->best_pair = p;
          px->best_i = i;
          px->best_j = j;
          px->min_score = score_p[p];
        }
      }
    }
    int32_t *fit_k = w->singlet_fit_nk + (size_t)n * n_types;
    for (int k = 0; k < n_types; k++) fit_k[k] = -1;
    const int my_types[2] = {cand[px->best_i], cand[px->best_j]};
    for (int s = 0; s < 2; s++) {
      int32_t *other = w->other_nsk + ((size_t)n * 2 + s) * n_types;
      px->n_other[s] = dbl_check_pairs(params, m, cand, score_p, px->min_score, my_types[s],
                                       &px->all_pairs[s], &px->all_pairs_class[s], other);
      int n_needed = dbl_singlets_needed(px, s);
      for (int t = 0; t < n_needed; t++) {
        if (fit_k[other[t]] >= 0) continue;
        int f = rctd_fm_batch_add(&w->singlets, n, &other[t]);
        if (f < 0) return -1;
        fit_k[other[t]] = f;
      }
    }
  }
  return 0;
}

int rctd_fit_doublet(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                     rctd_doublet_result *result_n, double *all_weights_nk, char *err,
                     size_t err_len) {
  if (rctd_fm_check(params, chunk, err, err_len)) return -1;
  const int n_types = params->n_types, n_pix = chunk->n_pix;
  if (n_types < 2) {
    rctd_fail(err, err_len, "fit: doublet mode needs at least 2 cell types, got %d", n_types);
    return -1;
  }
  dbl_work w;
  int rc = dbl_work_alloc(&w, n_pix, n_types);
  if (rc) rctd_fail(err, err_len, "fit: out of memory for %d pixels", n_pix);
  if (rc == 0) rc = rctd_fm_full_batch(params, chunk, all_weights_nk, w.conv_n, err, err_len);
  if (rc == 0) {
    for (int n = 0; n < n_pix; n++)
      w.px_n[n].n_cand = dbl_candidates(n_types, all_weights_nk + (size_t)n * n_types,
                                        w.cand_nk + (size_t)n * n_types);
    rc = dbl_add_pairs(&w, n_pix, n_types);
    if (rc) rctd_fail(err, err_len, "fit: out of memory");
  }
  if (rc == 0)
    rc = rctd_fm_batch_run(params, chunk, &w.pairs, RCTD_FM_N_ITER_SCORE, 0, 1, err, err_len);
  if (rc == 0) {
    rc = dbl_rank_pairs(params, &w, n_pix);
    if (rc) rctd_fail(err, err_len, "fit: out of memory");
  }
  if (rc == 0)
    rc = rctd_fm_batch_run(params, chunk, &w.singlets, RCTD_FM_N_ITER_SCORE, 0, 1, err, err_len);
  double *singlet_k = rc == 0 ? malloc((size_t)n_types * sizeof *singlet_k) : NULL;
  if (rc == 0 && !singlet_k) {
    rctd_fail(err, err_len, "fit: out of memory");
    rc = -1;
  }
  for (int n = 0; rc == 0 && n < n_pix; n++) {
    const int32_t *fit_k = w.singlet_fit_nk + (size_t)n * n_types;
    for (int k = 0; k < n_types; k++)
      singlet_k[k] = fit_k[k] >= 0 ? w.singlets.score_f[fit_k[k]] : 0;
    rctd_doublet_result *res = &result_n[n];
    memset(res, 0, sizeof *res);
    dbl_decide(params, &w.px_n[n], w.cand_nk + (size_t)n * n_types,
               w.other_nsk + (size_t)n * 2 * n_types, singlet_k, res);
    res->conv_all = w.conv_n[n];
    res->n_candidates = w.px_n[n].n_cand;
    /* The final fit repeats the best pair's fit with 50 iterations instead of 25: when the types
     * keep their order and that fit converged within 25, the longer one stops at the same step
     * with the same weights (fits are deterministic), so it is not run again. */
    dbl_pixel *px = &w.px_n[n];
    const int pair_f = px->pair_off + px->best_pair;
    px->final_fit = -1;
    if (res->first_type == w.cand_nk[(size_t)n * n_types + px->best_i] && w.pairs.conv_f[pair_f])
      continue;
    int32_t types[2] = {res->first_type, res->second_type};
    if ((px->final_fit = rctd_fm_batch_add(&w.final, n, types)) < 0) {
      rctd_fail(err, err_len, "fit: out of memory");
      rc = -1;
    }
  }
  free(singlet_k);
  if (rc == 0) rc = rctd_fm_batch_run(params, chunk, &w.final, RCTD_FM_N_ITER, 0, 0, err, err_len);
  for (int n = 0; rc == 0 && n < n_pix; n++) {
    const dbl_pixel *px = &w.px_n[n];
    const rctd_fm_batch *b = px->final_fit >= 0 ? &w.final : &w.pairs;
    const int f = px->final_fit >= 0 ? px->final_fit : px->pair_off + px->best_pair;
    rctd_fm_normalise(2, b->weights_fk + (size_t)f * 2, result_n[n].doublet_weights);
    result_n[n].conv_doublet = b->conv_f[f];
  }
  dbl_work_free(&w);
  return rc;
}
