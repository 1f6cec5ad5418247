/* rctd_qp_solve: hand-checked problems, a property test against a brute-force solver that
 * enumerates active sets, and quadprog::solve.QP's answers (tests/data/irwls/qp_quadprog.txt). */
#include <gsl/gsl_eigen.h>
#include <stdlib.h>

#include "cpu/irwls.h"
#include "rctd_kernels.h"
#include "test.h"

#define QPT_MAX_K 8
#define RCTD_TEST_DATA_IRWLS "tests/data/irwls"

static double qpt_ws[4096];

static int qpt_solve(int k, const double *D, const double *d, const double *lower, int with_sum,
                     double target, double *x) {
  if (rctd_qp_workspace_bytes(k) > sizeof qpt_ws) return -2;
  return rctd_qp_solve(k, D, d, lower, with_sum, target, x, qpt_ws);
}

/* Solves the n x n system A v = b (Gaussian elimination, partial pivoting, long double). */
static int qpt_linsolve(int n, long double *A, long double *b) {
  for (int c = 0; c < n; c++) {
    int piv = c;
    for (int r = c + 1; r < n; r++)
      if (fabsl(A[r * n + c]) > fabsl(A[piv * n + c])) piv = r;
    if (A[piv * n + c] == 0) return -1;
    for (int j = 0; j < n; j++) {
      long double t = A[c * n + j];
      A[c * n + j] = A[piv * n + j];
      A[piv * n + j] = t;
    }
    long double t = b[c];
    b[c] = b[piv];
    b[piv] = t;
    for (int r = c + 1; r < n; r++) {
      long double f = A[r * n + c] / A[c * n + c];
      for (int j = c; j < n; j++) A[r * n + j] -= f * A[c * n + j];
      b[r] -= f * b[c];
    }
  }
  for (int r = n - 1; r >= 0; r--) {
    long double s = b[r];
    for (int j = r + 1; j < n; j++) s -= A[r * n + j] * b[j];
    b[r] = s / A[r * n + r];
  }
  return 0;
}

/* Brute force: the minimiser is the feasible subspace minimiser of lowest objective over all
 * 2^k choices of bounds held at equality. */
static int qpt_brute(int k, const double *D, const double *d, const double *lower, int with_sum,
                     double target, double *x_best) {
  double best = INFINITY;
  for (unsigned mask = 0; mask < (1u << k); mask++) {
    int free_idx[QPT_MAX_K], m = 0;
    double x[QPT_MAX_K];
    for (int i = 0; i < k; i++) {
      if (mask & (1u << i))
        x[i] = lower[i];
      else
        free_idx[m++] = i;
    }
    if (with_sum && m == 0) continue;
    int n = m + (with_sum ? 1 : 0);
    long double A[(QPT_MAX_K + 1) * (QPT_MAX_K + 1)] = {0}, b[QPT_MAX_K + 1] = {0};
    for (int a = 0; a < m; a++) {
      int i = free_idx[a];
      b[a] = d[i];
      for (int j = 0; j < k; j++)
        if (mask & (1u << j)) b[a] -= (long double)D[i * k + j] * lower[j];
      for (int c = 0; c < m; c++) A[a * n + c] = D[i * k + free_idx[c]];
      if (with_sum) A[a * n + m] = 1;
    }
    if (with_sum) {
      b[m] = target;
      for (int j = 0; j < k; j++)
        if (mask & (1u << j)) b[m] -= lower[j];
      for (int c = 0; c < m; c++) A[m * n + c] = 1;
    }
    if (n > 0 && qpt_linsolve(n, A, b) != 0) continue;
    int feasible = 1;
    for (int a = 0; a < m; a++) {
      x[free_idx[a]] = (double)b[a];
      if (x[free_idx[a]] < lower[free_idx[a]] - 1e-13) feasible = 0;
    }
    if (!feasible) continue;
    long double obj = 0;
    for (int i = 0; i < k; i++) {
      long double dx = 0;
      for (int j = 0; j < k; j++) dx += (long double)D[i * k + j] * x[j];
      obj += 0.5L * x[i] * dx - (long double)d[i] * x[i];
    }
    if (obj < best) {
      best = (double)obj;
      for (int i = 0; i < k; i++) x_best[i] = x[i];
    }
  }
  return isfinite(best) ? 0 : -1;
}

/* xorshift64*: reproducible random numbers without libc's rand state. */
static double qpt_unif(unsigned long long *state) {
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return (double)((*state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Random SPD matrix: B'B + diagonal shift (eigenvalues >= shift). */
static void qpt_rand_spd(int k, double shift, unsigned long long *st, double *D) {
  double B[QPT_MAX_K * QPT_MAX_K];
  for (int i = 0; i < k * k; i++) B[i] = 2 * qpt_unif(st) - 1;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int p = 0; p < k; p++) s += B[p * k + i] * B[p * k + j];
      D[i * k + j] = s + (i == j ? shift : 0);
    }
}

TEST(qp_k1_hand) {
  double D = 2, x;
  double d = 4, lower = 0;
  CHECK(qpt_solve(1, &D, &d, &lower, 0, 0, &x) == 0);
  CHECK_NEAR(x, 2, 1e-15); /* interior: d / D */
  d = -4;
  CHECK(qpt_solve(1, &D, &d, &lower, 0, 0, &x) == 0);
  CHECK(x == 0); /* bound active, returned exactly */
  lower = -0.5;
  CHECK(qpt_solve(1, &D, &d, &lower, 0, 0, &x) == 0);
  CHECK(x == -0.5);
  CHECK(qpt_solve(1, &D, &d, &lower, 1, 0.25, &x) == 0);
  CHECK_NEAR(x, 0.25, 1e-15);                           /* the sum constraint fixes x */
  CHECK(qpt_solve(1, &D, &d, &lower, 1, -1, &x) == -1); /* infeasible: -1 < lower */
}

TEST(qp_k2_hand) {
  double D[4] = {1, 0, 0, 1}, d[2] = {1, -1}, lower[2] = {0, 0}, x[2];
  CHECK(qpt_solve(2, D, d, lower, 0, 0, x) == 0);
  CHECK_NEAR(x[0], 1, 1e-15);
  CHECK(x[1] == 0);
  /* sum(x) = 1: on the line the minimiser is (1.5, -0.5); the bound moves it to (1, 0). */
  CHECK(qpt_solve(2, D, d, lower, 1, 1, x) == 0);
  CHECK_NEAR(x[0], 1, 1e-15);
  CHECK_NEAR(x[1], 0, 1e-15);
  /* Correlated D, both bounds inactive: x = D^-1 d. */
  double D2[4] = {2, 1, 1, 2}, d2[2] = {3, 3}, lo2[2] = {-1, -1};
  CHECK(qpt_solve(2, D2, d2, lo2, 0, 0, x) == 0);
  CHECK_NEAR(x[0], 1, 1e-15);
  CHECK_NEAR(x[1], 1, 1e-15);
  /* Equality with no bound active: on x0 + x1 = 0, x - d = -nu (1, 1) gives (1, -1). */
  double lo3[2] = {-5, -5};
  CHECK(qpt_solve(2, D, d, lo3, 1, 0, x) == 0);
  CHECK_NEAR(x[0], 1, 1e-15);
  CHECK_NEAR(x[1], -1, 1e-15);
}

TEST(qp_k3_hand) {
  /* D = I, d = (2, -1, 0.5), x >= 0: the projection (2, 0, 0.5). */
  double D[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, d[3] = {2, -1, 0.5}, lower[3] = {0, 0, 0}, x[3];
  CHECK(qpt_solve(3, D, d, lower, 0, 0, x) == 0);
  CHECK_NEAR(x[0], 2, 1e-15);
  CHECK(x[1] == 0);
  CHECK_NEAR(x[2], 0.5, 1e-15);
  /* sum = 1, x >= 0, D = I: Euclidean projection of d onto the simplex = (1, 0, 0). */
  CHECK(qpt_solve(3, D, d, lower, 1, 1, x) == 0);
  CHECK_NEAR(x[0], 1, 1e-15);
  CHECK_NEAR(x[1], 0, 1e-15);
  CHECK_NEAR(x[2], 0, 1e-15);
  /* Degenerate: a bound exactly at the unconstrained minimiser (multiplier 0). */
  double d0[3] = {1, 0, 1};
  CHECK(qpt_solve(3, D, d0, lower, 0, 0, x) == 0);
  CHECK_NEAR(x[0], 1, 1e-15);
  CHECK_NEAR(x[1], 0, 1e-15);
  CHECK_NEAR(x[2], 1, 1e-15);
}

TEST(qp_vs_brute_force) {
  unsigned long long st = 0x9e3779b97f4a7c15ULL;
  int n_checked = 0;
  double worst = 0;
  for (int rep = 0; rep < 3000; rep++) {
    int k = 1 + rep % 7, with_sum = (rep / 7) % 2;
    double D[QPT_MAX_K * QPT_MAX_K], d[QPT_MAX_K], lower[QPT_MAX_K], x[QPT_MAX_K], xb[QPT_MAX_K];
    qpt_rand_spd(k, (rep % 3 == 0) ? 1e-3 : 0.2, &st, D);
    double lower_sum = 0;
    for (int i = 0; i < k; i++) {
      d[i] = 4 * qpt_unif(&st) - 2;
      lower[i] = qpt_unif(&st) < 0.4 ? 0 : -qpt_unif(&st);
      lower_sum += lower[i];
    }
    double target = lower_sum + 2 * qpt_unif(&st);
    CHECK(qpt_solve(k, D, d, lower, with_sum, target, x) == 0);
    CHECK(qpt_brute(k, D, d, lower, with_sum, target, xb) == 0);
    double scale = 1;
    for (int i = 0; i < k; i++) scale = fmax(scale, fabs(xb[i]));
    for (int i = 0; i < k; i++) {
      CHECK_MSG(x[i] >= lower[i], "rep %d: x[%d] = %.17g below %.17g", rep, i, x[i], lower[i]);
      double err = fabs(x[i] - xb[i]) / scale;
      worst = fmax(worst, err);
      CHECK_MSG(err <= 1e-10, "rep %d k %d sum %d: x[%d] %.17g vs brute %.17g", rep, k, with_sum, i,
                x[i], xb[i]);
    }
    if (with_sum) {
      double s = 0;
      for (int i = 0; i < k; i++) s += x[i];
      CHECK_NEAR(s, target, 1e-12 * scale * k);
    }
    n_checked++;
  }
  CHECK(n_checked == 3000);
  fprintf(stderr, "  qp_vs_brute_force: worst relative difference %.3g\n", worst);
}

/* Warm starts as the IRWLS steps make them (without the sum constraint): the second solve of
 * a problem starts from the first's final working set, which then usually needs no bound to
 * join (rk_qp_start's settled case: the first iteration reuses the start's solve), and a
 * third solve follows a small change of d.  Each answer agrees with the brute force. */
TEST(qp_warm_start_vs_brute_force) {
  unsigned long long st = 0x2545f4914f6cdd1dULL;
  int n_checked = 0;
  for (int rep = 0; rep < 1500; rep++) {
    const int k = 1 + rep % 7;
    double D[QPT_MAX_K * QPT_MAX_K], d[QPT_MAX_K], lower[QPT_MAX_K], x[QPT_MAX_K], xb[QPT_MAX_K];
    qpt_rand_spd(k, (rep % 3 == 0) ? 1e-3 : 0.2, &st, D);
    for (int i = 0; i < k; i++) {
      d[i] = 4 * qpt_unif(&st) - 2;
      lower[i] = qpt_unif(&st) < 0.4 ? 0 : -qpt_unif(&st);
    }
    CHECK(rctd_qp_workspace_bytes(k) <= sizeof qpt_ws);
    CHECK(rctd_qp_solve_warm(k, D, d, lower, 0, 0, x, qpt_ws, 0) == 0);
    for (int pass = 0; pass < 2; pass++) {
      if (pass == 1)
        for (int i = 0; i < k; i++) d[i] += 0.01 * (qpt_unif(&st) - 0.5);
      CHECK(rctd_qp_solve_warm(k, D, d, lower, 0, 0, x, qpt_ws, 1) == 0);
      CHECK(qpt_brute(k, D, d, lower, 0, 0, xb) == 0);
      double scale = 1;
      for (int i = 0; i < k; i++) scale = fmax(scale, fabs(xb[i]));
      for (int i = 0; i < k; i++) {
        CHECK_MSG(x[i] >= lower[i], "rep %d pass %d: x[%d] below its bound", rep, pass, i);
        CHECK_MSG(fabs(x[i] - xb[i]) <= 1e-10 * scale, "rep %d pass %d k %d: x[%d] %.17g vs %.17g",
                  rep, pass, k, i, x[i], xb[i]);
      }
      n_checked++;
    }
  }
  CHECK(n_checked == 3000);
}

/* Condition number of the SPD matrix D (GSL's symmetric eigenvalues). */
static double qpt_cond(int k, const double *D) {
  double A[QPT_MAX_K * QPT_MAX_K], ev[QPT_MAX_K];
  memcpy(A, D, sizeof(double) * k * k);
  gsl_matrix_view a = gsl_matrix_view_array(A, k, k);
  gsl_vector_view e = gsl_vector_view_array(ev, k);
  gsl_eigen_symm_workspace *w = gsl_eigen_symm_alloc(k);
  gsl_eigen_symm(&a.matrix, &e.vector, w);
  gsl_eigen_symm_free(w);
  double lo = INFINITY, hi = 0;
  for (int i = 0; i < k; i++) {
    lo = fmin(lo, ev[i]);
    hi = fmax(hi, ev[i]);
  }
  return hi / lo;
}

/* quadprog's answers on 400 random problems (half with eigenvalues down to 1e-6).  quadprog's
 * own rounding grows with the condition number, so each answer is
 * checked against it within 1e-10 or 1e-13 cond, and against the long-double brute force (which
 * this solver matches far more closely than quadprog does) within 1e-10. */
TEST(qp_vs_quadprog) {
  FILE *f = fopen(RCTD_TEST_DATA_IRWLS "/qp_quadprog.txt", "r");
  CHECK(f != NULL);
  int n = 0, k, with_sum;
  double target, worst_qp = 0, worst_qp_wellcond = 0, worst_brute = 0;
  while (fscanf(f, "%d %d %lf", &k, &with_sum, &target) == 3) {
    double D[QPT_MAX_K * QPT_MAX_K], d[QPT_MAX_K], lower[QPT_MAX_K], xr[QPT_MAX_K], x[QPT_MAX_K],
        xb[QPT_MAX_K];
    int ok = k >= 1 && k <= QPT_MAX_K;
    for (int i = 0; ok && i < k * k; i++) ok = fscanf(f, "%lf", &D[i]) == 1;
    for (int i = 0; ok && i < k; i++) ok = fscanf(f, "%lf", &d[i]) == 1;
    for (int i = 0; ok && i < k; i++) ok = fscanf(f, "%lf", &lower[i]) == 1;
    for (int i = 0; ok && i < k; i++) ok = fscanf(f, "%lf", &xr[i]) == 1;
    ok = ok && qpt_solve(k, D, d, lower, with_sum, target, x) == 0 &&
         qpt_brute(k, D, d, lower, with_sum, target, xb) == 0;
    if (!ok) fclose(f);
    CHECK_MSG(ok, "problem %d: malformed or not solved", n);
    double cond = qpt_cond(k, D), scale = 1;
    for (int i = 0; i < k; i++) scale = fmax(scale, fabs(xr[i]));
    double tol_qp = fmax(1e-10, 1e-13 * cond);
    for (int i = 0; i < k; i++) {
      double err_qp = fabs(x[i] - xr[i]) / scale, err_brute = fabs(x[i] - xb[i]) / scale;
      worst_qp = fmax(worst_qp, err_qp);
      if (cond < 1e3) worst_qp_wellcond = fmax(worst_qp_wellcond, err_qp);
      worst_brute = fmax(worst_brute, err_brute);
      if (err_qp > tol_qp || err_brute > 1e-10) fclose(f);
      CHECK_MSG(err_qp <= tol_qp && err_brute <= 1e-10,
                "problem %d (k %d, sum %d, cond %.2g): x[%d] %.17g, quadprog %.17g, brute %.17g", n,
                k, with_sum, cond, i, x[i], xr[i], xb[i]);
    }
    n++;
  }
  fclose(f);
  CHECK(n == 400);
  fprintf(stderr,
          "  qp_vs_quadprog: %d problems; worst relative difference to quadprog %.3g (%.3g when "
          "cond < 1e3), to the long-double brute force %.3g\n",
          n, worst_qp, worst_qp_wellcond, worst_brute);
}
