/* Likelihood tables: the sigma and lambda grids and spacexr's get_Q quadrature with the natural
 * cubic spline second derivatives of solve_sq.
 *
 * Both follow R's arithmetic operation by operation: the quadrature term by term (libm exp and
 * log, R's pnorm(-3) and lgamma values, sums accumulated in long double as R's colSums does),
 * the spline through the same LU, inverse and product R's solve() and %*% compute with reference
 * LAPACK/BLAS.  On x86-64 with glibc the tables equal R's bit for bit.
 *
 * Speed: a row k needs 439 sums of 10001 exponentials.  For a given (k, x) the terms are
 * exp(g_j + c) with g_j = -e^{Y_j} x + k Y_j + log ht(Y_j); only the few hundred j where g_j is
 * within QT_SKIP of its maximum contribute anything representable.  Blocks of QT_BLOCK points
 * carry an upper bound of g (e^{Y} increases with j, so -e^{Y_first} x + max k Y + log ht
 * bounds the block); blocks whose bound is below max - QT_SKIP are skipped, and inside the
 * remaining blocks single terms below the same threshold are skipped.  Everything skipped adds
 * up to less than 10001 e^{-QT_SKIP} < 1e-31 of the sum, far below long double resolution
 * (5e-20), so the result is the one the full sum gives. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/qtable_math.h"
#include "rctd_kernels.h"

/* Bit-for-bit agreement needs a * b + c rounded twice, as R does: no fused multiply-add.  GCC
 * contracts nothing in ISO C mode (-std=c11, as the Makefile builds); clang needs the pragma. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* The constants, the density, the interval and the spline system are kernels/common/qtable_math.h
 * (shared with the CUDA backend). */
#define QT_N_Y RK_QT_N_Y
#define QT_N_POINTS RK_QT_N_POINTS
#define QT_GAMMA RK_QT_GAMMA
#define QT_BLOCK 16
#define QT_N_BLOCKS ((QT_N_POINTS + QT_BLOCK - 1) / QT_BLOCK)
#define QT_SKIP RK_QT_SKIP
#define QT_FLOOR RK_QT_FLOOR
#define QT_N_INT RK_QT_N_INT

void rctd_sigma_grid(int sigma_vals[RCTD_N_SIGMA]) {
  int n = 0;
  for (int v = 10; v <= 70; v++) sigma_vals[n++] = v;
  for (int v = 72; v <= 200; v += 2) sigma_vals[n++] = v;
}

int rctd_sigma_index(int sigma_value) {
  if (sigma_value >= 10 && sigma_value <= 70) return sigma_value - 10;
  if (sigma_value >= 72 && sigma_value <= 200 && sigma_value % 2 == 0)
    return 61 + (sigma_value - 72) / 2;
  return -1;
}

/* X_vals[m] = (first l with interval m)^2 * 1e-6; the last node is 1600. */
void rctd_x_grid(double x_vals[RCTD_N_X]) {
  int m_prev = 0;
  for (long l = 10; m_prev < RCTD_N_X - 1; l++) {
    double ld = (double)l;
    double m = rk_qt_m_of_l(ld);
    if ((int)m == m_prev) continue;
    m_prev = (int)m;
    x_vals[m_prev - 1] = ld * ld * 1e-6;
  }
  x_vals[RCTD_N_X - 1] = 1600;
}

/* Per-sigma and per-row data of the quadrature; allocated once per rctd_qtable_rows call. */
typedef struct {
  double *y_j;                /* Y_j */
  double *neg_exp_y_j;        /* -e^{Y_j} (R: outer(-exp(Y), X)) */
  double *log_ht_j;           /* log ht_pdf(Y_j, sigma) */
  double *kyl_j;              /* k Y_j + log ht(Y_j) for the current row */
  double *kyl_max_b;          /* per block: max of kyl_j */
  int *kyl_arg_b;             /* per block: where it is attained */
  double *log_x;              /* log(X_vals) */
  double *lu_u, *lu_l, *lu_c; /* LU of the spline system (diagonal, multipliers, super) */
  double *rhs;                /* spline right-hand side / inverse column, RCTD_N_X */
  double *inv_ij;             /* the system's inverse, QT_N_INT x QT_N_INT */
} qt_work;

static void qt_work_free(qt_work *w) {
  free(w->y_j);
  free(w->kyl_arg_b);
  free(w->log_x);
  free(w->inv_ij);
}

static int qt_work_alloc(qt_work *w) {
  memset(w, 0, sizeof *w);
  w->y_j = malloc(sizeof(double) * (4 * QT_N_POINTS + QT_N_BLOCKS));
  w->kyl_arg_b = malloc(sizeof(int) * QT_N_BLOCKS);
  w->log_x = malloc(sizeof(double) * 5 * RCTD_N_X);
  w->inv_ij = malloc(sizeof(double) * QT_N_INT * QT_N_INT);
  if (!w->y_j || !w->kyl_arg_b || !w->log_x || !w->inv_ij) {
    qt_work_free(w);
    return -1;
  }
  w->neg_exp_y_j = w->y_j + QT_N_POINTS;
  w->log_ht_j = w->neg_exp_y_j + QT_N_POINTS;
  w->kyl_j = w->log_ht_j + QT_N_POINTS;
  w->kyl_max_b = w->kyl_j + QT_N_POINTS;
  w->lu_u = w->log_x + RCTD_N_X;
  w->lu_l = w->lu_u + RCTD_N_X;
  w->lu_c = w->lu_l + RCTD_N_X;
  w->rhs = w->lu_c + RCTD_N_X;
  return 0;
}

/* Natural cubic spline second derivatives (solve_sq).  For interior nodes 1..n-2 (0-based),
 *   del[j-1] z[j-1] + 2 (del[j-1] + del[j]) z[j] + del[j] z[j+1] = 6 (fB[j] - fB[j-1]),
 * z = 0 at both ends.  R solves this as solve(M) %*% fBD: LAPACK dgesv on the identity, then a
 * dgemm.  We do the same arithmetic in the same order (rk_qt_spline_inverse: reference
 * LAPACK/BLAS on a tridiagonal matrix; qt_spline_row: the product summed over l ascending), so z
 * agrees with R's to rounding; a plain tridiagonal solve differs from it by up to ~1e-8 relative
 * where z is tiny. */
static void qt_spline_inverse(const double *x, qt_work *w) {
  rk_qt_spline_inverse(x, w->lu_u, w->lu_l, w->lu_c, w->inv_ij);
}

static void qt_spline_row(const double *x, const double *q_x, const qt_work *w, double *sq_x) {
  const int n = QT_N_INT;
  double *fbd = w->rhs;
  for (int i = 0; i < n; i++) fbd[i] = rk_qt_spline_rhs(x, q_x, i);
  /* Four independent dot products at a time for instruction-level parallelism; each keeps
   * R's summation order. */
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const double *m0 = w->inv_ij + (size_t)i * n, *m1 = m0 + n, *m2 = m1 + n, *m3 = m2 + n;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int j = 0; j < n; j++) {
      s0 += fbd[j] * m0[j];
      s1 += fbd[j] * m1[j];
      s2 += fbd[j] * m2[j];
      s3 += fbd[j] * m3[j];
    }
    sq_x[i + 1] = s0;
    sq_x[i + 2] = s1;
    sq_x[i + 3] = s2;
    sq_x[i + 4] = s3;
  }
  for (; i < n; i++) {
    const double *m0 = w->inv_ij + (size_t)i * n;
    double s0 = 0;
    for (int j = 0; j < n; j++) s0 += fbd[j] * m0[j];
    sq_x[i + 1] = s0;
  }
  sq_x[0] = 0;
  sq_x[RCTD_N_X - 1] = 0;
}

/* P(Y = k | x) for every x of the grid: get_Q's sum, term by term in R's order. */
static void qt_quadrature_row(int k, const double *x_vals, qt_work *w, double *q_x) {
  const double kd = (double)k;
  const double lg = rk_qt_lgamma_k1(k);
  for (int j = 0; j < QT_N_POINTS; j++) w->kyl_j[j] = kd * w->y_j[j] + w->log_ht_j[j];
  for (int b = 0; b < QT_N_BLOCKS; b++) {
    int j_end = (b + 1) * QT_BLOCK < QT_N_POINTS ? (b + 1) * QT_BLOCK : QT_N_POINTS;
    int arg = b * QT_BLOCK;
    for (int j = arg + 1; j < j_end; j++)
      if (w->kyl_j[j] > w->kyl_j[arg]) arg = j;
    w->kyl_arg_b[b] = arg;
    w->kyl_max_b[b] = w->kyl_j[arg];
  }
  for (int i = 0; i < RCTD_N_X; i++) {
    const double x = x_vals[i];
    const double klx = kd * w->log_x[i];
    /* A lower bound of max_j g_j from one actual term per block. */
    double g_low = -INFINITY;
    for (int b = 0; b < QT_N_BLOCKS; b++) {
      int j = w->kyl_arg_b[b];
      double g = w->neg_exp_y_j[j] * x + w->kyl_j[j];
      if (g > g_low) g_low = g;
    }
    const double threshold = g_low - QT_SKIP;
    long double sum = 0;
    for (int b = 0; b < QT_N_BLOCKS; b++) {
      int j0 = b * QT_BLOCK;
      if (w->neg_exp_y_j[j0] * x + w->kyl_max_b[b] < threshold) continue;
      int j_end = j0 + QT_BLOCK < QT_N_POINTS ? j0 + QT_BLOCK : QT_N_POINTS;
      for (int j = j0; j < j_end; j++) {
        double g = w->neg_exp_y_j[j] * x + w->kyl_j[j];
        if (g < threshold) continue;
        sum += exp(g - lg + klx);
      }
    }
    double p = (double)sum * QT_GAMMA;
    q_x[i] = log(p > QT_FLOOR ? p : QT_FLOOR);
  }
}

int rctd_qtable_rows(double sigma_c, const double x_vals[RCTD_N_X], int k_begin, int k_end,
                     double *q_kx, double *sq_kx) {
  if (!(sigma_c > 0) || !isfinite(sigma_c) || !x_vals || !q_kx || !sq_kx) return -1;
  if (k_begin < 0 || k_end < k_begin) return -1;
  for (int i = 0; i < RCTD_N_X; i++)
    if (!(x_vals[i] > 0) || (i > 0 && !(x_vals[i] > x_vals[i - 1]))) return -1;
  if (k_begin == k_end) return 0;
  qt_work w;
  if (qt_work_alloc(&w) != 0) return -1;
  for (int j = 0; j < QT_N_POINTS; j++) {
    w.y_j[j] = (double)(j - QT_N_Y) * QT_GAMMA;
    w.neg_exp_y_j[j] = -exp(w.y_j[j]);
    w.log_ht_j[j] = rk_qt_log_ht_pdf(w.y_j[j], sigma_c);
  }
  for (int i = 0; i < RCTD_N_X; i++) w.log_x[i] = log(x_vals[i]);
  qt_spline_inverse(x_vals, &w);
  for (int k = k_begin; k < k_end; k++) {
    double *q_x = q_kx + (size_t)k * RCTD_N_X;
    qt_quadrature_row(k, x_vals, &w, q_x);
    qt_spline_row(x_vals, q_x, &w, sq_kx + (size_t)k * RCTD_N_X);
  }
  qt_work_free(&w);
  return 0;
}

/* calc_Q_all for one (y, lambda). */
static void qt_spline_one(const rctd_qtable *t, double y, double lambda, double *d0, double *d1,
                          double *d2) {
  const double *x = t->x_vals;
  if (isnan(lambda) || !(y >= 0)) {
    *d0 = *d1 = *d2 = NAN;
    return;
  }
  if (y > RCTD_K_VAL) y = RCTD_K_VAL;
  int row = (int)y;
  if (row >= t->n_k) {
    *d0 = *d1 = *d2 = NAN;
    return;
  }
  lambda = rk_qt_clamp_lambda(lambda, x[RCTD_N_X - 1]);
  int m = rk_qt_interval(lambda);
  double c[4];
  rk_qt_spline_coef(x, t->q_kx + (size_t)row * RCTD_N_X, t->sq_kx + (size_t)row * RCTD_N_X, m, c);
  double zdi = c[0], zdi1 = c[1], diff3 = c[2], diff4 = c[3];
  double diff1 = lambda - x[m - 1], diff2 = x[m] - lambda;
  /* R's x^3 is pow(x, 3) and x^2 is x * x. */
  *d0 = zdi * pow(diff1, 3) / 6 + zdi1 * pow(diff2, 3) / 6 + diff3 * diff1 + diff4 * diff2;
  *d1 = rk_qt_spline_d1(zdi, zdi1, diff3, diff4, diff1, diff2);
  *d2 = rk_qt_spline_d2(zdi, zdi1, diff1, diff2);
}

void rctd_spline_eval(const rctd_qtable *table, int n, const double *y, const double *lambda,
                      double *d0, double *d1, double *d2) {
  for (int i = 0; i < n; i++) {
    double v0, v1, v2;
    qt_spline_one(table, y[i], lambda[i], &v0, &v1, &v2);
    d0[i] = v0;
    if (d1) d1[i] = v1;
    if (d2) d2[i] = v2;
  }
}
