/* Device arithmetic that reproduces the CPU kernels (kernels/cpu) operation by operation.
 *
 * The library is built with --fmad=false so that a * b + c is two roundings, as in the CPU
 * code (x86-64 C11 never contracts); fma() appears only where the CPU results are not
 * reproduced bit for bit anyway (the k >= 3 Hessian and eigensolver).  IEEE division and
 * square root are correctly rounded on both sides. */
#ifndef RCTD_CUDA_MATH_CUH
#define RCTD_CUDA_MATH_CUH
#include <stdint.h>

#include "rctd_kernels.h"

namespace rctd_cuda {

#define RCU_EPSILON 1e-4 /* calc_Q_all's lambda clamp */
#define RCU_DELTA 1e-6   /* calc_Q_all's lambda scale */

/* Spline coefficients of one (table row, interval): everything of calc_Q_all that does not
 * depend on lambda, computed with the CPU's operations (zi / hi, fti / hi - zi * hi / 6...). */
struct SplineCoef {
  double zdi, zdi1, diff3, diff4;
};

/* Mirrors qt_interval (kernels/cpu/qtable.c): calc_Q_all's interval (1-based m in
 * [1, RCTD_N_X - 1]).  The CPU computes pow(v, 0.5); glibc's
 * pow is correctly rounded there as sqrt is, so both give the same floor. */
__device__ __forceinline__ int rcu_interval(double lambda) {
  double l = floor(sqrt(lambda / RCU_DELTA));
  double m = fmin(l - 9, 40.0) + fmax(ceil(sqrt(fmax(l - 48.7499, 0.0) * 4)) - 2, 0.0);
  if (m < 1) return 1;
  if (m > RCTD_N_X - 1) return RCTD_N_X - 1;
  return (int)m;
}

/* Clamps lambda as calc_Q_all does (mirrors the clamp in qt_spline_one, kernels/cpu/qtable.c). */
__device__ __forceinline__ double rcu_clamp_lambda(double lambda, double x_max) {
  return fmin(fmax(RCU_EPSILON, lambda), x_max - RCU_EPSILON);
}

/* Mirrors d1 and d2 of qt_spline_one (kernels/cpu/qtable.c) and of the coefficient path in
 * kernels/cpu/spline_fast.c: d1 and d2 of log P(y | lambda) (rctd_spline_eval): code = table row,
 * or >= n_k / kBadCount for NaN. */
__device__ __forceinline__ void rcu_spline_d12(const double *x_vals, const SplineCoef *coef,
                                               int n_k, int code, double lambda, double &d1,
                                               double &d2) {
  if (isnan(lambda) || code >= n_k) {
    d1 = d2 = __longlong_as_double(0x7ff8000000000000LL);
    return;
  }
  lambda = rcu_clamp_lambda(lambda, x_vals[RCTD_N_X - 1]);
  int m = rcu_interval(lambda);
  double ti1 = x_vals[m - 1], ti = x_vals[m];
  SplineCoef c = coef[(size_t)code * (RCTD_N_X - 1) + (m - 1)];
  double diff1 = lambda - ti1, diff2 = ti - lambda;
  d1 = c.zdi * (diff1 * diff1) / 2 - c.zdi1 * (diff2 * diff2) / 2 + c.diff3 - c.diff4;
  d2 = c.zdi * diff1 + c.zdi1 * diff2;
}

/* x^3 rounded to nearest (glibc's pow(x, 3) is correctly rounded but for rare hard cases). */
__host__ __device__ __forceinline__ double rcu_cube(double x) {
  double p = x * x;
  double pe = fma(x, x, -p); /* x^2 = p + pe exactly */
  double h = p * x;
  double he = fma(p, x, -h); /* p x = h + he exactly */
  return h + fma(pe, x, he);
}

/* Mirrors d0 of qt_spline_one (kernels/cpu/qtable.c): log P(y | lambda) as the spline gives it
 * (score only). */
__device__ __forceinline__ double rcu_spline_d0(const double *x_vals, const SplineCoef *coef,
                                                int n_k, int code, double lambda) {
  if (isnan(lambda) || code >= n_k) return __longlong_as_double(0x7ff8000000000000LL);
  lambda = rcu_clamp_lambda(lambda, x_vals[RCTD_N_X - 1]);
  int m = rcu_interval(lambda);
  double ti1 = x_vals[m - 1], ti = x_vals[m];
  SplineCoef c = coef[(size_t)code * (RCTD_N_X - 1) + (m - 1)];
  double diff1 = lambda - ti1, diff2 = ti - lambda;
  return c.zdi * rcu_cube(diff1) / 6 + c.zdi1 * rcu_cube(diff2) / 6 + c.diff3 * diff1 +
         c.diff4 * diff2;
}

__host__ __device__ __forceinline__ void rcu_two_sum(double a, double b, double &s, double &e) {
  s = a + b;
  double bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

/* A long double (x87 extended: 64-bit significand, round to nearest even) accumulator, as the
 * CPU's `long double sum; sum += x` computes it.  value = hi + lo exactly; hi = (double)value. */
struct Ext80 {
  double hi, lo;
};

__host__ __device__ __forceinline__ void rcu_ext_add(Ext80 &acc, double t) {
  if (!isfinite(t) || !isfinite(acc.hi)) {
    acc.hi = acc.hi + t;
    acc.lo = 0;
    return;
  }
  double s1, e1, s2, e2, a, b, b2, c;
  rcu_two_sum(acc.hi, t, s1, e1);
  rcu_two_sum(e1, acc.lo, s2, e2);
  rcu_two_sum(s1, s2, a, b);
  rcu_two_sum(b, e2, b2, c);
  /* exact sum = a + b2 + c with |b2 + c| <= ulp(a) */
  if (a == 0) {
    acc.hi = b2;
    acc.lo = c;
    return;
  }
  int ex = ilogb(a);
  double tail = b2 + c;
  if (fabs(a) == ldexp(1.0, ex) && tail != 0 && ((tail < 0) != (a < 0))) ex -= 1;
  if (ex - 63 < -1074) { /* below double's range: keep exact (no such sums in practice) */
    rcu_two_sum(a, b2, acc.hi, acc.lo);
    return;
  }
  double u = ldexp(1.0, ex - 63);
  double qh = b2 / u, ql = c / u;
  double n = rint(qh);
  double fr = qh - n;
  if (fr == 0.5 && ql > 0) n += 1;
  if (fr == -0.5 && ql < 0) n -= 1;
  rcu_two_sum(a, n * u, acc.hi, acc.lo);
}

/* ---- the exact QP of kernels/cpu/qp.c (unconstrained mode: lower bounds only) ---- */

#define RCU_QP_MULT_TOL 1e-13

/* Workspace of rcu_qp_solve for k variables (any memory space). */
struct QPWork {
  int *in_work, *free_idx; /* k */
  double *chol;            /* k x k */
  double *rhs, *x_sub;     /* k */
};

/* Mirrors qp_cholesky (kernels/cpu/qp.c), D with leading dimension ld. */
__host__ __device__ inline int rcu_qp_cholesky(int ld, const double *D, const int *idx, int m,
                                               double *chol) {
  for (int i = 0; i < m; i++) {
    for (int j = 0; j <= i; j++) {
      double sum = D[idx[i] * ld + idx[j]];
      for (int p = 0; p < j; p++) sum -= chol[i * m + p] * chol[j * m + p];
      if (i == j) {
        if (!(sum > 0)) return -1;
        chol[i * m + i] = sqrt(sum);
      } else {
        chol[i * m + j] = sum / chol[j * m + j];
      }
    }
  }
  return 0;
}

/* Mirrors qp_chol_solve (kernels/cpu/qp.c). */
__host__ __device__ inline void rcu_qp_chol_solve(int m, const double *chol, double *v) {
  for (int i = 0; i < m; i++) {
    double sum = v[i];
    for (int p = 0; p < i; p++) sum -= chol[i * m + p] * v[p];
    v[i] = sum / chol[i * m + i];
  }
  for (int i = m - 1; i >= 0; i--) {
    double sum = v[i];
    for (int p = i + 1; p < m; p++) sum -= chol[p * m + i] * v[p];
    v[i] = sum / chol[i * m + i];
  }
}

/* Mirrors qp_subspace_min (kernels/cpu/qp.c) without the sum constraint. */
__host__ __device__ inline int rcu_qp_subspace_min(int k, int ld, const double *D, const double *d,
                                                   const double *lower, QPWork &w) {
  int m = 0;
  for (int i = 0; i < k; i++) {
    if (w.in_work[i])
      w.x_sub[i] = lower[i];
    else
      w.free_idx[m++] = i;
  }
  if (m == 0) return 0;
  if (rcu_qp_cholesky(ld, D, w.free_idx, m, w.chol) != 0) return -1;
  for (int a = 0; a < m; a++) {
    int i = w.free_idx[a];
    double r = d[i];
    for (int j = 0; j < k; j++)
      if (w.in_work[j]) r -= D[i * ld + j] * lower[j];
    w.rhs[a] = r;
  }
  rcu_qp_chol_solve(m, w.chol, w.rhs);
  for (int a = 0; a < m; a++) w.x_sub[w.free_idx[a]] = w.rhs[a];
  return 0;
}

/* Mirrors rctd_qp_solve_warm (kernels/cpu/qp.c) with with_sum = 0, ..., warm: 0, or -1 when D_FF is
 * not positive definite.  D has leading dimension ld.  warm: start from the working set w.in_work
 * holds (the previous solve's final one) instead of the empty set. */
__host__ __device__ inline int rcu_qp_solve(int k, int ld, const double *D, const double *d,
                                            const double *lower, double *x, QPWork &w, int warm) {
  if (k < 1) return -1;
  if (!warm)
    for (int i = 0; i < k; i++) w.in_work[i] = 0;
  if (rcu_qp_subspace_min(k, ld, D, d, lower, w) != 0) return -1;
  for (int i = 0; i < k; i++) {
    w.in_work[i] = w.in_work[i] || w.x_sub[i] < lower[i];
    x[i] = w.in_work[i] ? lower[i] : w.x_sub[i];
  }
  double scale = 0;
  for (int i = 0; i < k; i++) scale = fmax(scale, fabs(d[i]));
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) scale = fmax(scale, fabs(D[i * ld + j]));

  const double nu = 0;
  int last_dropped = -1;
  for (int iter = 0; iter < 10 * k + 50; iter++) {
    if (rcu_qp_subspace_min(k, ld, D, d, lower, w) != 0) return -1;
    double step = 1.0;
    int blocking = -1;
    for (int i = 0; i < k; i++) {
      if (w.in_work[i] || !(w.x_sub[i] < lower[i])) continue;
      double gap = x[i] - lower[i];
      double ratio = gap > 0 ? gap / (x[i] - w.x_sub[i]) : 0.0;
      if (ratio < step) {
        step = ratio;
        blocking = i;
      }
    }
    if (blocking >= 0) {
      if (step == 0.0 && blocking == last_dropped) break;
      for (int i = 0; i < k; i++)
        if (!w.in_work[i]) x[i] += step * (w.x_sub[i] - x[i]);
      x[blocking] = lower[blocking];
      w.in_work[blocking] = 1;
      last_dropped = -1;
      continue;
    }
    for (int i = 0; i < k; i++) x[i] = w.x_sub[i];
    double xmax = 0;
    for (int i = 0; i < k; i++) xmax = fmax(xmax, fabs(x[i]));
    int drop = -1;
    double most_negative = -RCU_QP_MULT_TOL * fmax(scale * fmax(xmax, 1.0), 1e-300);
    for (int i = 0; i < k; i++) {
      if (!w.in_work[i]) continue;
      double mult = -d[i] - nu;
      for (int j = 0; j < k; j++) mult += D[i * ld + j] * x[j];
      if (mult < most_negative) {
        most_negative = mult;
        drop = i;
      }
    }
    if (drop < 0) return 0;
    w.in_work[drop] = 0;
    last_dropped = drop;
  }
  return 0;
}

/* ---- psd() / norm for k = 1 and 2 (kernels/cpu/psd.c closed forms) ---- */

#define RCU_EIG_FLOOR 1e-3

/* Mirrors psd_one (kernels/cpu/psd.c). */
__device__ __forceinline__ double rcu_psd_one(double h, double *D) {
  double p = fmax(h, RCU_EIG_FLOOR);
  D[0] = p / p;
  return p;
}

/* Mirrors psd_two (kernels/cpu/psd.c): H = [a b; b c] (row-major H[0], H[2] = b, H[3]); D
 * row-major 2 x 2. */
__device__ __forceinline__ double rcu_psd_two(double a, double b, double c, double *D) {
  double cs = 1.0, sn = 0.0, lam1 = a, lam2 = c;
  if (b != 0.0) {
    double theta = (c - a) / (2.0 * b);
    double t = fabs(theta) > 1e150 ? 0.5 / theta
                                   : copysign(1.0, theta) / (fabs(theta) + sqrt(theta * theta + 1));
    cs = 1.0 / sqrt(t * t + 1.0);
    sn = t * cs;
    lam1 = a - t * b;
    lam2 = c + t * b;
  }
  double mu1 = fmax(lam1, RCU_EIG_FLOOR), mu2 = fmax(lam2, RCU_EIG_FLOOR);
  double norm = fmax(mu1, mu2);
  double s1 = mu1 / norm, s2 = mu2 / norm;
  D[0] = cs * cs * s1 + sn * sn * s2;
  D[1] = D[2] = cs * sn * (s2 - s1);
  D[3] = sn * sn * s1 + cs * cs * s2;
  return norm;
}

}  // namespace rctd_cuda

#endif
