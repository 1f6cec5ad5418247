/* Device arithmetic that reproduces the CPU kernels (kernels/cpu) operation by operation.  The
 * scalar math both backends share (the QP, the closed-form 2 x 2 psd, the spline terms, the lambda
 * clamp and interval) is one source in kernels/common; this header adds what only the
 * device needs (the spline evaluation from the coefficient table, the long double emulation).
 *
 * The library is built with --fmad=false so that a * b + c is two roundings, as in the CPU
 * code (x86-64 C11 never contracts); fma() appears only where the CPU results are not
 * reproduced bit for bit anyway (the k >= 3 Hessian and eigensolver).  IEEE division and
 * square root are correctly rounded on both sides. */
#ifndef RCTD_CUDA_MATH_CUH
#define RCTD_CUDA_MATH_CUH
#include <stdint.h>

#include "common/psd2.h"
#include "common/qp.h"
#include "common/qtable_math.h"
#include "rctd_kernels.h"

namespace rctd_cuda {

/* Spline coefficients of one (table row, interval): everything of calc_Q_all that does not
 * depend on lambda (rk_qt_spline_coef's c[0..3], the CPU's coefficient table layout). */
struct SplineCoef {
  double zdi, zdi1, diff3, diff4;
};

/* d1 and d2 of log P(y | lambda) (rctd_spline_eval) from the coefficient table, as the CPU's
 * kernels/cpu/spline_fast.c computes them: code = table row, or >= n_k / kBadCount for NaN. */
__device__ __forceinline__ void rcu_spline_d12(const double *x_vals, const SplineCoef *coef,
                                               int n_k, int code, double lambda, double &d1,
                                               double &d2) {
  if (isnan(lambda) || code >= n_k) {
    d1 = d2 = __longlong_as_double(0x7ff8000000000000LL);
    return;
  }
  lambda = rk_qt_clamp_lambda(lambda, x_vals[RCTD_N_X - 1]);
  int m = rk_qt_interval(lambda);
  double ti1 = x_vals[m - 1], ti = x_vals[m];
  SplineCoef c = coef[(size_t)code * (RCTD_N_X - 1) + (m - 1)];
  double diff1 = lambda - ti1, diff2 = ti - lambda;
  d1 = rk_qt_spline_d1(c.zdi, c.zdi1, c.diff3, c.diff4, diff1, diff2);
  d2 = rk_qt_spline_d2(c.zdi, c.zdi1, diff1, diff2);
}

/* d0: log P(y | lambda) as the spline gives it (score only). */
__device__ __forceinline__ double rcu_spline_d0(const double *x_vals, const SplineCoef *coef,
                                                int n_k, int code, double lambda) {
  if (isnan(lambda) || code >= n_k) return __longlong_as_double(0x7ff8000000000000LL);
  lambda = rk_qt_clamp_lambda(lambda, x_vals[RCTD_N_X - 1]);
  int m = rk_qt_interval(lambda);
  double ti1 = x_vals[m - 1], ti = x_vals[m];
  SplineCoef c = coef[(size_t)code * (RCTD_N_X - 1) + (m - 1)];
  double diff1 = lambda - ti1, diff2 = ti - lambda;
  return rk_qt_spline_d0(c.zdi, c.zdi1, c.diff3, c.diff4, diff1, diff2);
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

}  // namespace rctd_cuda

#endif
