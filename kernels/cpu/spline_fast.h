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

/* Per (row, interval) spline coefficients {zi / h, z(i-1) / h, f(i) / h - zi h / 6,
 * f(i-1) / h - z(i-1) h / 6} computed with calc_Q_all's operations: n_k x (RCTD_N_X - 1) x 4
 * doubles (rctd_spline_coef_doubles). */
size_t rctd_spline_coef_doubles(int n_k);
void rctd_spline_coef_build(const rctd_qtable *table, double *coef);

/* Registers COEF (built for TABLE) so that rctd_spline_eval_fast uses it for every table whose
 * q_kx and sq_kx are TABLE's.  Detach before the table's arrays are freed or changed.  At most
 * 16 tables at once: 0, or -1 when full (evaluation then stays exact, only slower). */
int rctd_spline_coef_attach(const rctd_qtable *table, const double *coef);
void rctd_spline_coef_detach(const rctd_qtable *table);

/* spacexr calc_log_l_vec(X * mult[m], Y) for several tables at once (chooseSigma's scores):
 * out_tm[t * n_mult + m] = -sum over i of d0(tables[t], y[i], x[i] * mult[m]), summed in i order
 * in long double and rounded to double, as rctd_sigma_log_l on each (same bits: the same
 * operations as rctd_spline_eval_fast, which equals rctd_spline_eval).  coefs[t] is
 * rctd_spline_coef_build's table for tables[t]; the tables share the X grid.  The interval
 * search and cubes are done once per value and multiplier for all tables.  Returns 0, or -1
 * (nothing written) when a pair is off the fast path (NaN x, negative or off-table y, another
 * grid, more than 128 scores): the caller then scores table by table.  Thread-safe. */
int rctd_spline_score_many(const rctd_qtable *const *tables, const double *const *coefs,
                           int n_tables, const double *mult, int n_mult, int64_t n,
                           const double *y, const double *x, double *out_tm);

/* The CPU kernels' AVX2 paths (this file's, irwls.c's Hessian and prediction), used when the
 * CPU has AVX2 (and FMA here): turns them on (1) or off (0), or only asks (-1); returns whether
 * they were in use.  Both paths give the same bits (tests switch them to check). */
int rctd_cpu_simd(int enable);

#endif
