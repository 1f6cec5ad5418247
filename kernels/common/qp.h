/* Exact strictly convex QP with lower bounds and an optional sum constraint:
 *   min 1/2 x'Dx - d'x  s.t.  x >= lower,  [sum(x) = sum_target].
 * Primal active-set method on the bounds.  Every iterate solves the equality-constrained
 * subproblem of its working set directly (Cholesky of the free block), so the returned point is
 * the exact KKT point of the final active set: the same unique minimiser quadprog's
 * Goldfarb-Idnani method reaches, up to rounding.
 *
 * Shared by the CPU kernel (kernels/cpu/qp.c: rctd_qp_solve_warm, with its workspace carved from
 * one block) and the CUDA fits (kernels/cuda/cuda_fit.cu, k <= 2 thread-per-fit path, workspace
 * on the thread's stack). */
#ifndef RCTD_KERNELS_COMMON_QP_H
#define RCTD_KERNELS_COMMON_QP_H
#include <string.h>

#include "common/hd.h"

/* Multipliers above -RK_QP_MULT_TOL * scale count as non-negative (rounding noise on weakly
 * active bounds must not make the method drop and re-add the same bound forever). */
#define RK_QP_MULT_TOL 1e-13

/* Workspace of rk_qp_solve for k variables (any memory space). */
typedef struct {
  int *in_work;  /* k: 1 when bound i is in the working set (x_i = lower_i) */
  int *free_idx; /* k: indices of free variables */
  double *chol;  /* k x k: Cholesky factor of D restricted to the free set */
  double *rhs;   /* k */
  double *ones;  /* k: solution of D_FF z = 1 (sum mode only; may be NULL without it) */
  double *x_sub; /* k: subspace minimiser */
} rk_qp_work;

/* Cholesky of D (leading dimension ld) restricted to idx[0..m) into chol (m x m, lower).  -1 if
 * not positive definite. */
RK_HD int rk_qp_cholesky(int ld, const double *D, const int *idx, int m, double *chol) {
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

/* Solves (L L') v = b in place. */
RK_HD void rk_qp_chol_solve(int m, const double *chol, double *v) {
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

/* Minimiser of the objective with the working-set bounds held at equality (and the sum
 * constraint): fills x_sub for every index (bounds for the working set) and *nu, the sum
 * constraint's multiplier (D_FF x_F + nu 1 = d_F - D_FW lower_W).  Returns -1 when D_FF is not
 * positive definite. */
RK_HD int rk_qp_subspace_min(int k, int ld, const double *D, const double *d, const double *lower,
                             int with_sum, double sum_target, rk_qp_work *w, double *nu) {
  int m = 0;
  double bound_sum = 0;
  for (int i = 0; i < k; i++) {
    if (w->in_work[i]) {
      w->x_sub[i] = lower[i];
      bound_sum += lower[i];
    } else {
      w->free_idx[m++] = i;
    }
  }
  *nu = 0;
  if (m == 0) return 0;
  if (rk_qp_cholesky(ld, D, w->free_idx, m, w->chol) != 0) return -1;
  for (int a = 0; a < m; a++) {
    int i = w->free_idx[a];
    double r = d[i];
    for (int j = 0; j < k; j++)
      if (w->in_work[j]) r -= D[i * ld + j] * lower[j];
    w->rhs[a] = r;
  }
  rk_qp_chol_solve(m, w->chol, w->rhs);
  if (with_sum) {
    for (int a = 0; a < m; a++) w->ones[a] = 1.0;
    rk_qp_chol_solve(m, w->chol, w->ones);
    double sum_y = 0, sum_z = 0;
    for (int a = 0; a < m; a++) {
      sum_y += w->rhs[a];
      sum_z += w->ones[a];
    }
    *nu = (sum_y - (sum_target - bound_sum)) / sum_z;
    for (int a = 0; a < m; a++) w->rhs[a] -= *nu * w->ones[a];
  }
  for (int a = 0; a < m; a++) w->x_sub[w->free_idx[a]] = w->rhs[a];
  return 0;
}

/* Feasible starting point and working set.  warm: start from the working set w->in_work holds
 * (the previous solve's final one) instead of the empty set (no warm start in sum mode).
 * *settled: 1 when no bound joined, so that w->x_sub is still the minimiser of the working set
 * (nu = 0 without the sum constraint) and the first iteration need not solve for it again. */
RK_HD_ONCE int rk_qp_start(int k, int ld, const double *D, const double *d, const double *lower,
                           int with_sum, double sum_target, double *x, rk_qp_work *w, int warm,
                           int *settled) {
  double nu;
  *settled = 0;
  if (!warm || with_sum) memset(w->in_work, 0, (size_t)k * sizeof *w->in_work);
  /* The minimiser with the starting bounds held (unconstrained, or sum-constrained): often
   * already feasible; free variables below their bounds join the working set. */
  if (rk_qp_subspace_min(k, ld, D, d, lower, with_sum, sum_target, w, &nu) != 0) return -1;
  if (!with_sum) {
    int joined = 0;
    for (int i = 0; i < k; i++) {
      const int join = !w->in_work[i] && w->x_sub[i] < lower[i];
      joined |= join;
      w->in_work[i] = w->in_work[i] || join;
      x[i] = w->in_work[i] ? lower[i] : w->x_sub[i];
    }
    *settled = !joined;
    return 0;
  }
  /* Sum mode: every bound active but the one the minimiser pushes furthest from its bound,
   * which takes up the slack (feasible because sum(lower) <= sum_target). */
  int best = 0;
  double slack = sum_target;
  for (int i = 0; i < k; i++) {
    slack -= lower[i];
    if (w->x_sub[i] - lower[i] > w->x_sub[best] - lower[best]) best = i;
  }
  for (int i = 0; i < k; i++) {
    w->in_work[i] = i != best;
    x[i] = lower[i];
  }
  x[best] = lower[best] + slack;
  return 0;
}

/* The QP for k variables, D k x k with leading dimension ld: 0, or -1 when D_FF is not positive
 * definite or (sum mode) the bounds exceed the target.  warm as rk_qp_start. */
RK_HD_ONCE int rk_qp_solve(int k, int ld, const double *D, const double *d, const double *lower,
                           int with_sum, double sum_target, double *x, rk_qp_work *w, int warm) {
  if (k < 1) return -1;
  if (with_sum) {
    double lower_sum = 0;
    for (int i = 0; i < k; i++) lower_sum += lower[i];
    if (lower_sum > sum_target + 1e-12 * (fabs(sum_target) + fabs(lower_sum))) return -1;
  }
  int settled;
  if (rk_qp_start(k, ld, D, d, lower, with_sum, sum_target, x, w, warm, &settled) != 0) return -1;
  double scale = 0;
  for (int i = 0; i < k; i++) scale = rk_max(scale, fabs(d[i]));
  if (ld == k) { /* one pass over the packed matrix (the CPU's case), eight running maxima
                  * (the same maximum in any order: rk_max skips NaN) */
    double run[8] = {scale, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= k * k; i += 8)
      for (int j = 0; j < 8; j++) run[j] = rk_max(run[j], fabs(D[i + j]));
    for (; i < k * k; i++) run[0] = rk_max(run[0], fabs(D[i]));
    for (int j = 1; j < 8; j++) run[0] = rk_max(run[0], run[j]);
    scale = run[0];
  } else
    for (int i = 0; i < k; i++)
      for (int j = 0; j < k; j++) scale = rk_max(scale, fabs(D[i * ld + j]));

  int last_dropped = -1;
  for (int iter = 0; iter < 10 * k + 50; iter++) {
    double nu = 0;
    if (!settled && rk_qp_subspace_min(k, ld, D, d, lower, with_sum, sum_target, w, &nu) != 0)
      return -1;
    settled = 0;
    /* Walk towards the subspace minimiser until the first free variable hits its bound. */
    double step = 1.0;
    int blocking = -1;
    for (int i = 0; i < k; i++) {
      if (w->in_work[i] || !(w->x_sub[i] < lower[i])) continue;
      double gap = x[i] - lower[i];
      double ratio = gap > 0 ? gap / (x[i] - w->x_sub[i]) : 0.0;
      if (ratio < step) {
        step = ratio;
        blocking = i;
      }
    }
    if (blocking >= 0) {
      if (step == 0.0 && blocking == last_dropped)
        break; /* the dropped bound's multiplier was rounding noise: x is optimal */
      for (int i = 0; i < k; i++)
        if (!w->in_work[i]) x[i] += step * (w->x_sub[i] - x[i]);
      x[blocking] = lower[blocking];
      w->in_work[blocking] = 1;
      last_dropped = -1;
      continue;
    }
    memcpy(x, w->x_sub, (size_t)k * sizeof *x);
    /* KKT: D x - d + nu 1 = mu with mu >= 0 on the working set (nu from the subspace solve). */
    double xmax = 0;
    for (int i = 0; i < k; i++) xmax = rk_max(xmax, fabs(x[i]));
    int drop = -1;
    double most_negative = -RK_QP_MULT_TOL * rk_max(1e-300, scale * rk_max(1.0, xmax));
    for (int i = 0; i < k; i++) {
      if (!w->in_work[i]) continue;
      double mult = nu - d[i];
      for (int j = 0; j < k; j++) mult += D[i * ld + j] * x[j];
      if (mult < most_negative) {
        most_negative = mult;
        drop = i;
      }
    }
    if (drop < 0) return 0;
    w->in_work[drop] = 0;
    last_dropped = drop;
  }
  return 0;
}

#endif
