/* spacexr's likelihood table (get_Q, solve_sq) and its evaluation (calc_Q_all): the constants,
 * the heavy-tailed density, the lambda clamp and interval, the spline system's inverse and the
 * per-interval spline terms.  Shared by the CPU kernels (kernels/cpu/qtable.c, spline_fast.c) and
 * the CUDA backend (cuda_qtable.cu, cuda_fit.cu): one source, R's operation order. */
#ifndef RCTD_KERNELS_COMMON_QTABLE_MATH_H
#define RCTD_KERNELS_COMMON_QTABLE_MATH_H
#include <stddef.h>

#include "common/hd.h"
#include "common/qtable_lgamma.h"
#include "rctd_kernels.h"

#define RK_QT_N_Y 5000 /* Y = (-N_Y..N_Y) * RK_QT_GAMMA, as get_Q */
#define RK_QT_N_POINTS (2 * RK_QT_N_Y + 1)
#define RK_QT_GAMMA 4e-3
#define RK_QT_SKIP 80.0            /* terms below max * e^-80 are dropped */
#define RK_QT_FLOOR 1e-300         /* probabilities are floored before the log */
#define RK_QT_DELTA 1e-6           /* calc_Q_all's lambda scale */
#define RK_QT_EPSILON 1e-4         /* calc_Q_all's lambda clamp */
#define RK_QT_N_INT (RCTD_N_X - 2) /* interior spline nodes */

/* R's pnorm(-3) (Cody's algorithm); 0.5 * erfc(3 / sqrt(2)) differs from it by 5 ulps. */
#define RK_QT_PNORM_MINUS3 0x1.61de1f985b5d7p-10

/* log of spacexr's heavy-tailed density ht_pdf(y, sigma): a normal core for |y/sigma| < 3 and a
 * c / (|z| - 7/3)^2 tail, continuous with its derivative at 3.  R's operation order. */
RK_HOST double rk_qt_log_ht_pdf(double y, double sigma) {
  const double sqrt_2pi = sqrt(2 * M_PI);
  const double a = 4.0 / 9 * exp(-9.0 / 2) / sqrt_2pi;
  const double c = 7.0 / 3;
  const double norm_c = 1 / ((a / (3 - c) - RK_QT_PNORM_MINUS3) * 2 + 1);
  double z = y / sigma;
  double p;
  if (fabs(z) < 3) {
    p = norm_c / sqrt_2pi * exp(-(z * z) / 2);
  } else {
    double t = fabs(z) - c;
    p = norm_c * a / (t * t);
  }
  return log(p / sigma);
}

/* log(k!) as R's lgamma(k + 1) gives it (table for k < QT_N_LGAMMA). */
RK_HOST double rk_qt_lgamma_k1(int k) {
  int sign;
  return k < QT_N_LGAMMA ? qt_r_lgamma[k] : lgamma_r((double)k + 1, &sign);
}

/* calc_Q_all's interval formula: m (1-based, before the clamp to [1, RCTD_N_X - 1]) of
 * l = floor(sqrt(lambda / RK_QT_DELTA)). */
RK_HD_SMALL double rk_qt_m_of_l(double l) {
  return fmin(l - 9, 40.0) + fmax(ceil(sqrt(fmax(l - 48.7499, 0.0) * 4)) - 2, 0.0);
}

/* calc_Q_all's interval: 1-based m such that lambda lies in [X_vals[m], X_vals[m+1]].  R's `^`
 * calls pow(., 1/2), which the host computes (glibc); the device takes sqrt, correctly rounded
 * as glibc's pow is there, so both give the same floor. */
RK_HD_SMALL int rk_qt_interval(double lambda) {
#ifdef __CUDA_ARCH__
  double l = floor(sqrt(lambda / RK_QT_DELTA));
#else
  double l = floor(pow(lambda / RK_QT_DELTA, 0.5));
#endif
  double m = rk_qt_m_of_l(l);
  if (m < 1) return 1;
  if (m > RCTD_N_X - 1) return RCTD_N_X - 1;
  return (int)m;
}

/* Clamps lambda (not NaN) into [epsilon, x_max - epsilon] as calc_Q_all does. */
RK_HD_SMALL double rk_qt_clamp_lambda(double lambda, double x_max) {
  const double lo = RK_QT_EPSILON, hi = x_max - RK_QT_EPSILON;
  return lambda < lo ? lo : lambda > hi ? hi : lambda;
}

/* The inverse of the natural cubic spline system of solve_sq (interior nodes 1..n-2), as R's
 * solve(M) computes it with reference LAPACK: LU without row swaps (l = a * (1 / u),
 * u = b - c l) into u, l, c (RK_QT_N_INT each), then dgetrs on the identity column by column
 * into inv_ij (RK_QT_N_INT^2, inv_ij[i * n + j] = MI[i][j]).  All columns advance together:
 * entries above a column's start are exact zeros, which leave every update unchanged, so the
 * values are those of the column-by-column solve. */
RK_HOST void rk_qt_spline_inverse(const double *x, double *u, double *l, double *c, double *inv) {
  const int n = RK_QT_N_INT;
  for (int i = 0; i < n; i++) {
    double b = 2 * ((x[i + 1] - x[i]) + (x[i + 2] - x[i + 1]));
    if (i + 1 < n) c[i] = x[i + 2] - x[i + 1]; /* M[i][i+1] = M[i+1][i] */
    if (i == 0) {
      u[i] = b;
      continue;
    }
    l[i] = c[i - 1] * (1 / u[i - 1]);
    u[i] = b - c[i - 1] * l[i];
  }
  for (size_t e = 0; e < (size_t)n * n; e++) inv[e] = 0;
  for (int i = 0; i < n; i++) inv[(size_t)i * n + i] = 1;
  for (int k = 0; k + 1 < n; k++) {
    const double *row = inv + (size_t)k * n;
    double *next = inv + (size_t)(k + 1) * n;
    for (int j = 0; j < n; j++) next[j] = next[j] - row[j] * l[k + 1];
  }
  for (int k = n - 1; k >= 0; k--) {
    double *row = inv + (size_t)k * n;
    for (int j = 0; j < n; j++) row[j] = row[j] / u[k];
    if (k == 0) break;
    double *prev = row - n;
    for (int j = 0; j < n; j++) prev[j] = prev[j] - row[j] * c[k - 1];
  }
}

/* Right-hand side of the spline system at interior node i: 6 (fB[i+1] - fB[i]). */
RK_HD_SMALL double rk_qt_spline_rhs(const double *x, const double *q, int i) {
  double fb_lo = (q[i + 1] - q[i]) / (x[i + 1] - x[i]);
  double fb_hi = (q[i + 2] - q[i + 1]) / (x[i + 2] - x[i + 1]);
  return 6 * (fb_hi - fb_lo);
}

/* The terms of calc_Q_all that do not depend on lambda for interval m of one table row (q, sq):
 * c = {zi / h, z(i-1) / h, fi / h - zi h / 6, f(i-1) / h - z(i-1) h / 6}. */
RK_HD_SMALL void rk_qt_spline_coef(const double *x, const double *q, const double *sq, int m,
                                   double *c) {
  double ti1 = x[m - 1], ti = x[m], hi = ti - ti1;
  double fti1 = q[m - 1], fti = q[m], zi1 = sq[m - 1], zi = sq[m];
  c[0] = zi / hi;
  c[1] = zi1 / hi;
  c[2] = fti / hi - zi * hi / 6;
  c[3] = fti1 / hi - zi1 * hi / 6;
}

/* x^3 rounded to nearest: x^2 = p + pe and p x = h + he exactly (FMA), then h + (pe x + he). */
RK_HD_SMALL double rk_cube(double x) {
  double p = x * x, pe = fma(x, x, -p);
  double h = p * x, he = fma(p, x, -h);
  return h + fma(pe, x, he);
}

/* calc_Q_all's d1 and d2 from an interval's terms (rk_qt_spline_coef) and diff1 = lambda - t(i-1),
 * diff2 = t(i) - lambda. */
RK_HD_SMALL double rk_qt_spline_d1(double zdi, double zdi1, double diff3, double diff4,
                                   double diff1, double diff2) {
  return zdi * (diff1 * diff1) / 2 - zdi1 * (diff2 * diff2) / 2 + diff3 - diff4;
}
RK_HD_SMALL double rk_qt_spline_d2(double zdi, double zdi1, double diff1, double diff2) {
  return zdi * diff1 + zdi1 * diff2;
}
/* d0 (the log-likelihood) with the correctly rounded cube (R: pow(x, 3)). */
RK_HD_SMALL double rk_qt_spline_d0(double zdi, double zdi1, double diff3, double diff4,
                                   double diff1, double diff2) {
  return zdi * rk_cube(diff1) / 6 + zdi1 * rk_cube(diff2) / 6 + diff3 * diff1 + diff4 * diff2;
}

#endif
