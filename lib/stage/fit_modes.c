/* Common parts of the pixel modes and full mode (spacexr fitPixels, doublet_mode = "full"). */
#include "fit_modes.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fit_modes_internal.h"

void rctd_fit_params_default(rctd_fit_params *params) {
  memset(params, 0, sizeof *params);
  params->min_change = 1e-3;
  params->confidence_threshold = 5;
  params->doublet_threshold = 20;
  params->max_multi_types = 4;
}

const char *rctd_spot_class_name(int spot_class) {
  static const char *const names[] = {"reject", "singlet", "doublet_certain", "doublet_uncertain"};
  if (spot_class < 0 || spot_class > RCTD_SPOT_DOUBLET_UNCERTAIN) return NULL;
  return names[spot_class];
}

int rctd_fm_check(const rctd_fit_params *params, const rctd_pixel_chunk *chunk, char *err,
                  size_t err_len) {
  if (!params || !chunk) {
    rctd_fail(err, err_len, "fit: missing parameters or pixels");
    return -1;
  }
  if (params->n_genes < 1 || params->n_types < 1 || !params->profiles_gk) {
    rctd_fail(err, err_len, "fit: the model has no genes, types or profiles");
    return -1;
  }
  if (!params->table || !params->backend || !params->backend->irwls_batch) {
    rctd_fail(err, err_len, "fit: no likelihood table or backend");
    return -1;
  }
  if (!(params->min_change > 0)) {
    rctd_fail(err, err_len, "fit: min_change must be positive");
    return -1;
  }
  if (chunk->n_pix < 0 || (chunk->n_pix > 0 && (!chunk->y_ng || !chunk->numi_n))) {
    rctd_fail(err, err_len, "fit: chunk without counts or nUMI");
    return -1;
  }
  for (int n = 0; n < chunk->n_pix; n++) {
    if (!isfinite(chunk->numi_n[n]) || chunk->numi_n[n] <= 0) {
      rctd_fail(err, err_len, "fit: pixel %d of the chunk has nUMI %g; it must be positive", n,
                    chunk->numi_n[n]);
      return -1;
    }
  }
  const size_t n_vals = (size_t)chunk->n_pix * (size_t)params->n_genes;
  for (size_t i = 0; i < n_vals; i++) {
    if (!isfinite(chunk->y_ng[i]) || chunk->y_ng[i] < 0) {
      rctd_fail(err, err_len, "fit: pixel %zu of the chunk has count %g; counts must be >= 0",
                    i / (size_t)params->n_genes, chunk->y_ng[i]);
      return -1;
    }
  }
  return 0;
}

void rctd_fm_batch_init(rctd_fm_batch *batch, int k_sub) {
  memset(batch, 0, sizeof *batch);
  batch->k_sub = k_sub;
}

void rctd_fm_batch_free(rctd_fm_batch *batch) {
  free(batch->pix_f);
  free(batch->types_fk);
  free(batch->weights_fk);
  free(batch->score_f);
  free(batch->conv_f);
  memset(batch, 0, sizeof *batch);
}

int rctd_fm_batch_add(rctd_fm_batch *batch, int pix, const int32_t *types) {
  if (batch->n_fits == batch->cap) {
    int cap = batch->cap ? 2 * batch->cap : 256;
    int32_t *pix_f = realloc(batch->pix_f, (size_t)cap * sizeof *pix_f);
    if (!pix_f) return -1;
    batch->pix_f = pix_f;
    int32_t *types_fk = realloc(batch->types_fk, (size_t)cap * batch->k_sub * sizeof *types_fk);
    if (!types_fk) return -1;
    batch->types_fk = types_fk;
    batch->cap = cap;
  }
  int f = batch->n_fits++;
  batch->pix_f[f] = pix;
  if (types)
    memcpy(batch->types_fk + (size_t)f * batch->k_sub, types, batch->k_sub * sizeof *types);
  return f;
}

int rctd_fm_batch_run(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                      rctd_fm_batch *batch, int n_iter, int types_all, int want_score, char *err,
                      size_t err_len) {
  if (batch->n_fits == 0) return 0;
  size_t n = (size_t)batch->n_fits;
  free(batch->weights_fk);
  free(batch->score_f);
  free(batch->conv_f);
  batch->weights_fk = malloc(n * batch->k_sub * sizeof *batch->weights_fk);
  batch->score_f = malloc(n * sizeof *batch->score_f);
  batch->conv_f = malloc(n * sizeof *batch->conv_f);
  if (!batch->weights_fk || !batch->score_f || !batch->conv_f) {
    rctd_fail(err, err_len, "fit: out of memory for a batch of %zu fits", n);
    return -1;
  }
  rctd_fit_batch fb = {
      .n_genes = params->n_genes,
      .n_types = params->n_types,
      .profiles_gk = params->profiles_gk,
      .n_pix = chunk->n_pix,
      .y_ng = chunk->y_ng,
      .numi_n = chunk->numi_n,
      .n_fits = batch->n_fits,
      .k_sub = batch->k_sub,
      .pix_f = batch->pix_f,
      .types_fk = types_all ? NULL : batch->types_fk,
  };
  rctd_irwls_opts opts = {
      .n_iter = n_iter, .min_change = params->min_change, .constrain = 0, .bulk_mode = 0};
  rctd_backend *be = params->backend;
  if (be->irwls_batch(be, params->table, &fb, &opts, batch->weights_fk, batch->conv_f,
                      want_score ? batch->score_f : NULL) != 0) {
    rctd_fail(err, err_len, "fit: backend %s failed on a batch of %d fits of %d types",
                  be->name ? be->name : "?", batch->n_fits, batch->k_sub);
    return -1;
  }
  /* A NaN would silently lose every comparison of R's rules; it means a count off the table. */
  for (size_t f = 0; f < n; f++) {
    int finite = want_score ? isfinite(batch->score_f[f]) : 1;
    for (int k = 0; k < batch->k_sub; k++)
      finite &= isfinite(batch->weights_fk[f * batch->k_sub + k]) != 0;
    if (!finite) {
      rctd_fail(err, err_len,
                    "fit: pixel %d of the chunk: a fit gave a non-finite weight or score (are "
                    "its counts covered by the likelihood table?)",
                    batch->pix_f[f]);
      return -1;
    }
  }
  return 0;
}

int rctd_fm_full_batch(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                       double *all_weights_nk, int32_t *conv_n, char *err, size_t err_len) {
  rctd_fm_batch batch;
  rctd_fm_batch_init(&batch, params->n_types);
  int rc = 0;
  for (int n = 0; n < chunk->n_pix && rc == 0; n++)
    if (rctd_fm_batch_add(&batch, n, NULL) < 0) rc = -1;
  if (rc) rctd_fail(err, err_len, "fit: out of memory");
  if (rc == 0) rc = rctd_fm_batch_run(params, chunk, &batch, RCTD_FM_N_ITER, 1, 0, err, err_len);
  if (rc == 0 && chunk->n_pix > 0) {
    memcpy(all_weights_nk, batch.weights_fk,
           (size_t)chunk->n_pix * params->n_types * sizeof *all_weights_nk);
    if (conv_n) memcpy(conv_n, batch.conv_f, (size_t)chunk->n_pix * sizeof *conv_n);
  }
  rctd_fm_batch_free(&batch);
  return rc;
}

int rctd_fm_candidates(int n_types, const double *weights_k, int32_t *cand) {
  int n_cand = 0;
  for (int k = 0; k < n_types; k++)
    if (weights_k[k] > RCTD_FM_WEIGHT_THRESH) cand[n_cand++] = k;
  return n_cand;
}

void rctd_fm_normalise(int n, const double *weights, double *out) {
  long double sum = 0;
  for (int i = 0; i < n; i++) sum += weights[i];
  double total = (double)sum;
  for (int i = 0; i < n; i++) out[i] = weights[i] / total;
}

int rctd_fit_full(const rctd_fit_params *params, const rctd_pixel_chunk *chunk, double *weights_nk,
                  int32_t *conv_n, char *err, size_t err_len) {
  if (rctd_fm_check(params, chunk, err, err_len)) return -1;
  return rctd_fm_full_batch(params, chunk, weights_nk, conv_n, err, err_len);
}
