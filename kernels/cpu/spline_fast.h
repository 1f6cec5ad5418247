/* Fast spline evaluation for the IRWLS inner loop (see spline_fast.c). */
#ifndef RCTD_CPU_SPLINE_FAST_H
#define RCTD_CPU_SPLINE_FAST_H
#include <stddef.h>
#include <stdint.h>

#include "rctd_kernels.h"

/* rctd_spline_eval (calc_Q_all) with the same result bits (x^3 is rounded to nearest where the
 * exact path calls pow(x, 3), which glibc rounds the same way but for rare hard cases), faster:
 * with the table's coefficients attached (below) it reads them instead of dividing, and with
 * AVX2 + FMA it takes four pairs at a time.  Pairs off the fast path (NaN lambda, negative or
 * off-table counts, another X grid) go through rctd_spline_eval.  d0, d1 or d2 may be NULL
 * (not computed).
 * Thread-safe. */
void rctd_spline_eval_fast(const rctd_qtable *table, int n, const double *y, const double *lambda,
                           double *d0, double *d1, double *d2);

/* The CPU kernels' AVX2 paths (this file's, irwls.c's Hessian and prediction), used when the
 * CPU has AVX2 (and FMA here): turns them on (1) or off (0), or only asks (-1); returns whether
 * they were in use.  Both paths give the same bits (tests switch them to check). */
int rctd_cpu_simd(int enable);

#endif
