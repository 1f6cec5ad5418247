/* Exact strictly convex QP with lower bounds and an optional sum constraint:
 *   min 1/2 x'Dx - d'x  s.t.  x >= lower,  [sum(x) = sum_target].
 * Primal active-set method on the bounds.  Every iterate solves the equality-constrained
 * subproblem of its working set directly (Cholesky of the free block), so the returned point is
 * the exact KKT point of the final active set: the same unique minimiser quadprog's
 * Goldfarb-Idnani method reaches, up to rounding. */
/* kernels/cuda/cuda_math.cuh mirrors this solver (rcu_qp_*) operation by operation: change both. */
#include <math.h>
#include <string.h>

#include "cpu/irwls.h"
#include "rctd_kernels.h"

/* Multipliers above -QP_MULT_TOL * scale count as non-negative (rounding noise on weakly
 * active bounds must not make the method drop and re-add the same bound forever). */
#define QP_MULT_TOL 1e-13

typedef struct {
  int *in_work;  /* k: 1 when bound i is in the working set (x_i = lower_i) */
  int *free_idx; /* k: indices of free variables */
  double *chol;  /* k x k: Cholesky factor of D restricted to the free set */
  double *rhs;   /* k */
  double *ones;  /* k: solution of D_FF z = 1 (sum mode) */
  double *x_sub; /* k: subspace minimiser */
  double *grad;  /* k: D x - d */
} qp_ws;

/* fmax(a, b) for a not NaN, inline (libm's fmax is a call in this hot loop). */
static inline double qp_max(double a, double b) {
  return b > a ? b : a;
}

static size_t qp_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

size_t rctd_qp_workspace_bytes(int k) {
  size_t kk = (size_t)(k > 0 ? k : 1);
  return 2 * qp_align(kk * sizeof(int)) + qp_align(kk * kk * sizeof(double)) +
         5 * qp_align(kk * sizeof(double));
}

static qp_ws qp_ws_carve(int k, void *workspace) {
  size_t kk = (size_t)k;
  char *p = workspace;
  qp_ws ws;
  ws.in_work = (int *)p, p += qp_align(kk * sizeof(int));
  ws.free_idx = (int *)p, p += qp_align(kk * sizeof(int));
  ws.chol = (double *)p, p += qp_align(kk * kk * sizeof(double));
  ws.rhs = (double *)p, p += qp_align(kk * sizeof(double));
  ws.ones = (double *)p, p += qp_align(kk * sizeof(double));
  ws.x_sub = (double *)p, p += qp_align(kk * sizeof(double));
  ws.grad = (double *)p;
  return ws;
}

/* Cholesky of D restricted to idx[0..m) into chol (m x m, lower).  -1 if not positive definite. */
static int qp_cholesky(int k, const double *D_kk, const int *idx, int m, double *chol) {
  for (int i = 0; i < m; i++) {
    for (int j = 0; j <= i; j++) {
      double sum = D_kk[idx[i] * k + idx[j]];
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
static void qp_chol_solve(int m, const double *chol, double *v) {
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
static int qp_subspace_min(int k, const double *D_kk, const double *d_k, const double *lower_k,
                           int with_sum, double sum_target, qp_ws *ws, double *nu) {
  int m = 0;
  double bound_sum = 0;
  for (int i = 0; i < k; i++) {
    if (ws->in_work[i]) {
      ws->x_sub[i] = lower_k[i];
      bound_sum += lower_k[i];
    } else {
      ws->free_idx[m++] = i;
    }
  }
  *nu = 0;
  if (m == 0) return 0;
  if (qp_cholesky(k, D_kk, ws->free_idx, m, ws->chol) != 0) return -1;
  for (int a = 0; a < m; a++) {
    int i = ws->free_idx[a];
    double r = d_k[i];
    for (int j = 0; j < k; j++)
      if (ws->in_work[j]) r -= D_kk[i * k + j] * lower_k[j];
    ws->rhs[a] = r;
  }
  qp_chol_solve(m, ws->chol, ws->rhs);
  if (with_sum) {
    for (int a = 0; a < m; a++) ws->ones[a] = 1.0;
    qp_chol_solve(m, ws->chol, ws->ones);
    double sum_y = 0, sum_z = 0;
    for (int a = 0; a < m; a++) {
      sum_y += ws->rhs[a];
      sum_z += ws->ones[a];
    }
    *nu = (sum_y - (sum_target - bound_sum)) / sum_z;
    for (int a = 0; a < m; a++) ws->rhs[a] -= *nu * ws->ones[a];
  }
  for (int a = 0; a < m; a++) ws->x_sub[ws->free_idx[a]] = ws->rhs[a];
  return 0;
}

/* Feasible starting point and working set.  warm: start from the working set the workspace
 * holds (the previous solve's final one) instead of the empty set. */
static int qp_start(int k, const double *D_kk, const double *d_k, const double *lower_k,
                    int with_sum, double sum_target, double *x_k, qp_ws *ws, int warm) {
  double nu;
  if (!warm || with_sum) memset(ws->in_work, 0, (size_t)k * sizeof(int));
  /* The minimiser with the starting bounds held (unconstrained, or sum-constrained): often
   * already feasible; free variables below their bounds join the working set. */
  if (qp_subspace_min(k, D_kk, d_k, lower_k, with_sum, sum_target, ws, &nu) != 0) return -1;
  if (!with_sum) {
    for (int i = 0; i < k; i++) {
      ws->in_work[i] = ws->in_work[i] || ws->x_sub[i] < lower_k[i];
      x_k[i] = ws->in_work[i] ? lower_k[i] : ws->x_sub[i];
    }
    return 0;
  }
  /* Sum mode: every bound active but the one the minimiser pushes furthest from its bound,
   * which takes up the slack (feasible because sum(lower) <= sum_target). */
  int best = 0;
  double slack = sum_target;
  for (int i = 0; i < k; i++) {
    slack -= lower_k[i];
    if (ws->x_sub[i] - lower_k[i] > ws->x_sub[best] - lower_k[best]) best = i;
  }
  for (int i = 0; i < k; i++) {
    ws->in_work[i] = i != best;
    x_k[i] = lower_k[i];
  }
  x_k[best] = lower_k[best] + slack;
  return 0;
}

int rctd_qp_solve(int k, const double *D_kk, const double *d_k, const double *lower_k, int with_sum,
                  double sum_target, double *x_k, void *workspace) {
  return rctd_qp_solve_warm(k, D_kk, d_k, lower_k, with_sum, sum_target, x_k, workspace, 0);
}

int rctd_qp_solve_warm(int k, const double *D_kk, const double *d_k, const double *lower_k,
                       int with_sum, double sum_target, double *x_k, void *workspace, int warm) {
  if (k < 1) return -1;
  qp_ws ws = qp_ws_carve(k, workspace);
  if (with_sum) {
    double lower_sum = 0;
    for (int i = 0; i < k; i++) lower_sum += lower_k[i];
    if (lower_sum > sum_target + 1e-12 * (fabs(sum_target) + fabs(lower_sum))) return -1;
  }
  if (qp_start(k, D_kk, d_k, lower_k, with_sum, sum_target, x_k, &ws, warm) != 0) return -1;
  double scale = 0;
  for (int i = 0; i < k; i++) scale = qp_max(scale, fabs(d_k[i]));
  for (int i = 0; i < k * k; i++) scale = qp_max(scale, fabs(D_kk[i]));

  int last_dropped = -1;
  for (int iter = 0; iter < 10 * k + 50; iter++) {
    double nu;
    if (qp_subspace_min(k, D_kk, d_k, lower_k, with_sum, sum_target, &ws, &nu) != 0) return -1;
    /* Walk towards the subspace minimiser until the first free variable hits its bound. */
    double step = 1.0;
    int blocking = -1;
    for (int i = 0; i < k; i++) {
      if (ws.in_work[i] || !(ws.x_sub[i] < lower_k[i])) continue;
      double gap = x_k[i] - lower_k[i];
      double ratio = gap > 0 ? gap / (x_k[i] - ws.x_sub[i]) : 0.0;
      if (ratio < step) {
        step = ratio;
        blocking = i;
      }
    }
    if (blocking >= 0) {
      if (step == 0.0 && blocking == last_dropped)
        break; /* the dropped bound's multiplier was rounding noise: x is optimal */
      for (int i = 0; i < k; i++)
        if (!ws.in_work[i]) x_k[i] += step * (ws.x_sub[i] - x_k[i]);
      x_k[blocking] = lower_k[blocking];
      ws.in_work[blocking] = 1;
      last_dropped = -1;
      continue;
    }
    memcpy(x_k, ws.x_sub, (size_t)k * sizeof(double));
    /* KKT: D x - d + nu 1 = mu with mu >= 0 on the working set (nu from the subspace solve). */
    double xmax = 0;
    for (int i = 0; i < k; i++) xmax = qp_max(xmax, fabs(x_k[i]));
    int drop = -1;
    double most_negative = -QP_MULT_TOL * qp_max(1e-300, scale * qp_max(1.0, xmax));
    for (int i = 0; i < k; i++) {
      if (!ws.in_work[i]) continue;
      double mult = nu - d_k[i];
      for (int j = 0; j < k; j++) mult += D_kk[i * k + j] * x_k[j];
      if (mult < most_negative) {
        most_negative = mult;
        drop = i;
      }
    }
    if (drop < 0) return 0;
    ws.in_work[drop] = 0;
    last_dropped = drop;
  }
  return 0;
}
