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

/* The eight-wide AVX-512 lanes (spline_fast_avx512.h: rctd_spline_eval_fast, chooseSigma's
 * scores, irwls_small.c), used when the CPU has AVX-512 and the AVX2 paths are on: turns them on
 * (1) or off (0; then the AVX2 paths run), or only asks (-1); returns whether they were in use.
 * Same bits either way. */
int rctd_cpu_avx512(int enable);

/* For the tests: the spline intervals m (1-based) of n lambdas already clamped to
 * [1e-4, 1600 - 1e-4] by the lanes' lookup (no division or square root), eight at a time as the
 * lanes do, the last few as sf_pair; -1 when the lookup is not in use (no AVX-512, or its tables
 * could not be built). */
int rctd_spline_fast_intervals(int n, const double *lam, int *m);

/* For kernels that inline the fast path lane by lane (irwls_small.c): the attached coefficients
 * of table when its grid is the standard one and the AVX2 path is on, else NULL.  Coefficient
 * record (row, m) starts at coef + (row * (RCTD_N_X - 1) + m - 1) * 4.  A pair off the fast path
 * (NaN lambda, y < 0 or without a table row) must go through rctd_spline_eval_fast. */
const double *rctd_spline_fast_coef(const rctd_qtable *table);

/* For the same kernels: rows[i] = the offset of count y[i]'s coefficient row less 4, so that
 * record (row, m) starts at coef + rows[i] + 4m (y clipped at RCTD_K_VAL, as the fast path does).
 * Returns 1 when every count takes the fast path (y >= 0 with a table row), else 0 (rows then
 * unusable). */
int rctd_spline_fast_rows(const rctd_qtable *table, int n, const double *y, int64_t *rows);

/* The interval table: m = m_of_l[l] for l = floor(sqrt(lambda / 1e-6)) < 40000 (lambda clamped),
 * readable one entry past l by 32-bit gathers. */
const unsigned short *rctd_spline_fast_m_of_l(void);

#endif
