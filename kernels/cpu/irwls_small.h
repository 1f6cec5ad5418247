/* One fused pass over the genes for the IRWLS fits of one to four types (doublet mode's pair and
 * singlet fits, multi mode's fits), with AVX-512 (irwls_small.c).  Same bits as irwls.c's
 * generic path. */
#ifndef RCTD_CPU_IRWLS_SMALL_H
#define RCTD_CPU_IRWLS_SMALL_H

#include <stdint.h>

#include "rctd_kernels.h"

#define RCTD_IRWLS_SMALL_K_MAX 4 /* fits of up to this many types (multi mode's at most) */

/* The first part of one solveWLS step for n_types <= RCTD_IRWLS_SMALL_K_MAX from s_k = max(w, 0):
 * the prediction sum_k S_kg s_k, |.| and the floor floor_pred, the spline's d1 and d2 at (y_g,
 * prediction), the gradient dvec_k = sum_g d1 S_kg and the Hessian's lower triangle hess_kk = sum_g
 * -d2 S_ig S_jg, all with irwls.c's operations, lanes and reduction order.  y_g holds the counts
 * clipped at RCTD_K_VAL; rows_g their coefficient rows (rctd_spline_fast_rows, which must have
 * returned 1; NULL: this path does not apply).  Returns 1 when done, 0 when this path does not
 * apply (n_types too large, no AVX-512, SIMD off, the table's coefficients not attached, a
 * non-standard grid, no rows, a NaN prediction): then nothing is written. */
int rctd_irwls_small_grad_hess(const rctd_qtable *table, int n_genes, int n_types,
                               const double *S_kg, const double *y_g, const int64_t *rows_g,
                               const double *s_k, double floor_pred, double *dvec_k,
                               double *hess_kk);

/* rctd_irwls_score_kg for n_types <= RCTD_IRWLS_SMALL_K_MAX (the score in *score): 1 when done, 0
 * when this path does not apply (as above). */
int rctd_irwls_small_score(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g, double *d0_g,
                           double *score);

/* Turns this path on (1) or off (0), or only asks (-1); returns whether it was on.  For the
 * tests, which compare it with the generic path. */
int rctd_irwls_small_enable(int enable);

#endif
