/* Fast spline evaluation for the IRWLS inner loop (see spline_fast.c). */
#ifndef RCTD_CPU_SPLINE_FAST_H
#define RCTD_CPU_SPLINE_FAST_H
#include "rctd_kernels.h"

/* rctd_spline_eval (calc_Q_all) for tables over the standard X grid (rctd_x_grid), with the
 * same interval and formula but multiplications by precomputed 1/h and h/6 instead of
 * divisions and x*x*x instead of pow(x, 3): values within a few ulps of the exact path's terms.
 * Pairs it cannot take (NaN lambda, negative or off-table counts, another grid) go through
 * rctd_spline_eval.  d1 or d2 may be NULL.  Thread-safe. */
void rctd_spline_eval_fast(const rctd_qtable *table, int n, const double *y, const double *lambda,
                           double *d0, double *d1, double *d2);

/* The CPU kernels' AVX2 paths (this file's gathers, irwls.c's Hessian and prediction), used when
 * the CPU has AVX2: turns them on (1) or off (0), or only asks (-1); returns whether they were in
 * use.  Both paths give the same bits (tests switch them to check). */
int rctd_cpu_simd(int enable);

#endif
