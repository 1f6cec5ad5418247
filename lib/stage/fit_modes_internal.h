/* Shared pieces of lib/fit_*.c: a growable batch of fits and its run through the backend. */
#ifndef RCTD_FIT_MODES_INTERNAL_H
#define RCTD_FIT_MODES_INTERNAL_H
#include "error.h"
#include "fit_modes.h"

#define RCTD_FM_N_ITER 50          /* decompose_full / decompose_sparse */
#define RCTD_FM_N_ITER_SCORE 25    /* decompose_sparse in score mode */
#define RCTD_FM_WEIGHT_THRESH 0.01 /* initial_weight_thresh: candidate types */

/* Fits of k_sub types each; filled with rctd_fm_batch_add, run with rctd_fm_batch_run. */
typedef struct {
  int k_sub, n_fits, cap;
  int32_t *pix_f, *types_fk;
  double *weights_fk, *score_f;
  int32_t *conv_f;
} rctd_fm_batch;

void rctd_fm_batch_init(rctd_fm_batch *batch, int k_sub);
void rctd_fm_batch_free(rctd_fm_batch *batch);
/* Appends a fit of pixel pix over types[0..k_sub-1]; returns its index, or -1 out of memory. */
int rctd_fm_batch_add(rctd_fm_batch *batch, int pix, const int32_t *types);
/* Runs every fit (n_iter iterations, unconstrained, min_change from params); fills weights_fk,
 * conv_f and, with want_score, score_f.  types_all: 1 = fits over all K types (types_fk
 * unused).  Fails on a non-finite weight or score.  0 or -1. */
int rctd_fm_batch_run(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                      rctd_fm_batch *batch, int n_iter, int types_all, int want_score, char *err,
                      size_t err_len);

/* Checks params and chunk; 0, or -1 with a message. */
int rctd_fm_check(const rctd_fit_params *params, const rctd_pixel_chunk *chunk, char *err,
                  size_t err_len);
/* Full fit of every pixel: raw weights into all_weights_nk, conv into conv_n.  0 or -1. */
int rctd_fm_full_batch(const rctd_fit_params *params, const rctd_pixel_chunk *chunk,
                       double *all_weights_nk, int32_t *conv_n, char *err, size_t err_len);
/* Types with weight > 0.01 in type order into cand (K); returns their number. */
int rctd_fm_candidates(int n_types, const double *weights_k, int32_t *cand);
/* weights / sum(weights) with R's long double sum. */
void rctd_fm_normalise(int n, const double *weights, double *out);

#endif
