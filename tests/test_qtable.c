/* Likelihood tables (kernels/cpu/qtable.c) against R's spacexr get_Q / solve_sq / calc_Q_all.
 * The kernel repeats R's arithmetic operation by operation; on x86-64 glibc (where the fixtures
 * were made) every value is bit-identical to R's and the tests require it; elsewhere a libm may
 * round exp/log differently, and the tolerances are those an ulp of difference allows.
 * Fixtures in tests/data/qtable/ are R's outputs (hex doubles):
 *   x_vals.txt               the 439-point X grid built in R from the l/m formula
 *   q_sigmaNNN.txt           rows "k q[0..438]" of log(max(get_Q, 1e-300)), sigma = NNN / 100
 *   sq_sigma084.txt          rows "k sq[0..438]" of solve_sq at sigma 0.84
 *   spline_sigma084.txt      lines "y lambda d0 d1 d2" of calc_Q_all at sigma 0.84 */
#include <stdlib.h>

#include "common/qtable_lgamma.h"
#include "rctd_kernels.h"
#include "test.h"

#define QT_DATA "tests/data/qtable/"
#if defined(__x86_64__) && defined(__GLIBC__)
#define QTT_EXACT 1 /* same libm and long double as the R that made the fixtures */
#else
#define QTT_EXACT 0
#endif

/* Reads up to max doubles (decimal or hex) from a file; returns the count, -1 if unreadable. */
static int qtt_read_doubles(const char *path, double *out, int max) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int n = 0;
  while (n < max && fscanf(f, "%lf", &out[n]) == 1) n++;
  fclose(f);
  return n;
}

static double qtt_rel(double a, double b, double scale) {
  return fabs(a - b) / fmax(fabs(b), scale);
}

/* Difference from R's value: infinite unless identical when QTT_EXACT. */
static double qtt_vs_r(double a, double r, double scale) {
  if (QTT_EXACT && a != r) return INFINITY;
  return qtt_rel(a, r, scale);
}

/* A full-table-sized buffer pair with only some rows filled. */
typedef struct {
  double x[RCTD_N_X];
  double *q, *sq;
  rctd_qtable table;
} qtt_table;

static int qtt_table_init(qtt_table *t, int n_k) {
  rctd_x_grid(t->x);
  t->q = calloc((size_t)n_k * RCTD_N_X, sizeof(double));
  t->sq = calloc((size_t)n_k * RCTD_N_X, sizeof(double));
  t->table = (rctd_qtable){n_k, t->x, t->q, t->sq};
  return t->q && t->sq ? 0 : -1;
}

static void qtt_table_free(qtt_table *t) {
  free(t->q);
  free(t->sq);
}

TEST(qtable_sigma_grid) {
  int s[RCTD_N_SIGMA];
  rctd_sigma_grid(s);
  CHECK(s[0] == 10 && s[60] == 70 && s[61] == 72 && s[RCTD_N_SIGMA - 1] == 200);
  for (int i = 0; i < RCTD_N_SIGMA; i++) {
    CHECK(rctd_sigma_index(s[i]) == i);
    if (i > 0) CHECK(s[i] > s[i - 1]);
  }
  CHECK(rctd_sigma_index(9) == -1 && rctd_sigma_index(71) == -1);
  CHECK(rctd_sigma_index(73) == -1 && rctd_sigma_index(202) == -1);
}

TEST(qtable_x_grid_matches_r) {
  double x[RCTD_N_X], r[RCTD_N_X + 1];
  rctd_x_grid(x);
  CHECK(qtt_read_doubles(QT_DATA "x_vals.txt", r, RCTD_N_X + 1) == RCTD_N_X);
  for (int i = 0; i < RCTD_N_X; i++)
    CHECK_MSG(x[i] == r[i], "X_vals[%d] %a vs R %a", i, x[i], r[i]);
  CHECK(fabs(x[0] - 1e-4) < 1e-18 && x[RCTD_N_X - 1] == 1600);
}

/* Every row of every fixture sigma, against R: identical, or log-probabilities to 1e-12. */
TEST(qtable_rows_match_r_get_q) {
  static const int sigmas[] = {10, 84, 100, 200};
  double *r = malloc(sizeof(double) * 6 * (RCTD_N_X + 1));
  qtt_table t;
  CHECK(r && qtt_table_init(&t, RCTD_N_K_FULL) == 0);
  for (int s = 0; s < 4; s++) {
    char path[256];
    snprintf(path, sizeof path, QT_DATA "q_sigma%03d.txt", sigmas[s]);
    CHECK(qtt_read_doubles(path, r, 6 * (RCTD_N_X + 1)) == 6 * (RCTD_N_X + 1));
    for (int row = 0; row < 6; row++) {
      const double *rr = r + row * (RCTD_N_X + 1);
      int k = (int)rr[0];
      CHECK(rctd_qtable_rows(sigmas[s] / 100.0, t.x, k, k + 1, t.q, t.sq) == 0);
      for (int i = 0; i < RCTD_N_X; i++) {
        double e = qtt_vs_r(t.q[k * RCTD_N_X + i], rr[1 + i], 1e-300);
        CHECK_MSG(e <= 1e-12, "sigma %d k %d x %d: %.17g vs R %.17g", sigmas[s], k, i,
                  t.q[k * RCTD_N_X + i], rr[1 + i]);
      }
    }
  }
  free(r);
  qtt_table_free(&t);
}

TEST(qtable_spline_coefficients_match_r_solve_sq) {
  double *r = malloc(sizeof(double) * 4 * (RCTD_N_X + 1));
  qtt_table t;
  CHECK(r && qtt_table_init(&t, RCTD_N_K_FULL) == 0);
  CHECK(qtt_read_doubles(QT_DATA "sq_sigma084.txt", r, 4 * (RCTD_N_X + 1)) == 4 * (RCTD_N_X + 1));
  for (int row = 0; row < 4; row++) {
    const double *rr = r + row * (RCTD_N_X + 1);
    int k = (int)rr[0];
    CHECK(rctd_qtable_rows(0.84, t.x, k, k + 1, t.q, t.sq) == 0);
    double scale = 0;
    for (int i = 0; i < RCTD_N_X; i++) scale = fmax(scale, fabs(rr[1 + i]));
    CHECK(t.sq[k * RCTD_N_X] == 0 && t.sq[k * RCTD_N_X + RCTD_N_X - 1] == 0);
    for (int i = 0; i < RCTD_N_X; i++)
      CHECK_MSG(qtt_vs_r(t.sq[k * RCTD_N_X + i], rr[1 + i], 1e-9 * scale) <= 1e-8,
                "k %d node %d: %.17g vs R %.17g", k, i, t.sq[k * RCTD_N_X + i], rr[1 + i]);
  }
  free(r);
  qtt_table_free(&t);
}

/* calc_Q_all on random (y, lambda) pairs, clamps and nodes included. */
TEST(qtable_spline_eval_matches_r_calc_q_all) {
  enum { MAX_PAIRS = 2000 };
  double *r = malloc(sizeof(double) * 5 * MAX_PAIRS);
  double *y = malloc(sizeof(double) * MAX_PAIRS), *lam = malloc(sizeof(double) * MAX_PAIRS);
  double *d = malloc(sizeof(double) * 3 * MAX_PAIRS);
  qtt_table t;
  CHECK(r && y && lam && d && qtt_table_init(&t, RCTD_N_K_FULL) == 0);
  int n_val = qtt_read_doubles(QT_DATA "spline_sigma084.txt", r, 5 * MAX_PAIRS);
  CHECK(n_val > 0 && n_val % 5 == 0);
  int n = n_val / 5;
  static char needed[RCTD_N_K_FULL];
  memset(needed, 0, sizeof needed);
  for (int i = 0; i < n; i++) {
    y[i] = r[5 * i];
    lam[i] = r[5 * i + 1];
    needed[(int)fmin(y[i], RCTD_K_VAL)] = 1;
  }
  for (int k = 0; k < RCTD_N_K_FULL; k++)
    if (needed[k]) CHECK(rctd_qtable_rows(0.84, t.x, k, k + 1, t.q, t.sq) == 0);
  rctd_spline_eval(&t.table, n, y, lam, d, d + n, d + 2 * n);
  for (int i = 0; i < n; i++) {
    for (int c = 0; c < 3; c++) {
      double got = d[c * n + i], want = r[5 * i + 2 + c];
      /* d1 and d2 amplify an ulp of the table by up to ~1e8 where they are tiny. */
      double tol = c == 0 ? 1e-12 : 1e-7;
      CHECK_MSG(qtt_vs_r(got, want, 1e-300) <= tol,
                "pair %d (y %g, lambda %.17g) d%d %.17g vs R %.17g", i, y[i], lam[i], c, got, want);
    }
  }
  /* NULL d1/d2 are allowed and do not change d0. */
  double d0_only[4];
  rctd_spline_eval(&t.table, 4, y, lam, d0_only, NULL, NULL);
  for (int i = 0; i < 4; i++) CHECK(d0_only[i] == d[i]);
  free(r);
  free(y);
  free(lam);
  free(d);
  qtt_table_free(&t);
}

/* The quadrature skips negligible terms; the result must equal the plain sum over all 10001
 * points in R's order (same lgamma, long double accumulation) bit for bit. */
static double qtt_log_ht(double y, double sigma) {
  const double sq = sqrt(2 * M_PI), a = 4.0 / 9 * exp(-4.5) / sq, c = 7.0 / 3;
  const double cn = 1 / ((a / (3 - c) - 0x1.61de1f985b5d7p-10) * 2 + 1);
  double z = y / sigma, p;
  if (fabs(z) < 3) {
    p = cn / sq * exp(-(z * z) / 2);
  } else {
    p = cn * a / ((fabs(z) - c) * (fabs(z) - c));
  }
  return log(p / sigma);
}

TEST(qtable_fast_quadrature_equals_full_sum) {
  static const double sigmas[] = {0.1, 0.37, 1.2, 2.0};
  static const int ks[] = {0, 1, 4, 33, 250, 1002};
  static const int xs[] = {0, 1, 39, 40, 41, 120, 250, 380, 437, 438};
  qtt_table t;
  CHECK(qtt_table_init(&t, RCTD_N_K_FULL) == 0);
  for (int s = 0; s < 4; s++) {
    for (int a = 0; a < 6; a++) {
      int k = ks[a];
      CHECK(rctd_qtable_rows(sigmas[s], t.x, k, k + 1, t.q, t.sq) == 0);
      double lg = qt_r_lgamma[k];
      for (int b = 0; b < 10; b++) {
        double x = t.x[xs[b]];
        long double sum = 0;
        for (int j = -5000; j <= 5000; j++) {
          double y = (double)j * 4e-3;
          double g = -exp(y) * x + ((double)k * y + qtt_log_ht(y, sigmas[s]));
          sum += exp(g - lg + (double)k * log(x));
        }
        double p = (double)sum * 4e-3;
        double want = log(p > 1e-300 ? p : 1e-300);
        CHECK_MSG(t.q[k * RCTD_N_X + xs[b]] == want, "sigma %g k %d x %g: %a vs %a", sigmas[s], k,
                  x, t.q[k * RCTD_N_X + xs[b]], want);
      }
    }
  }
  qtt_table_free(&t);
}

/* At a node the spline returns the table value and its second derivative. */
TEST(qtable_spline_interpolates_nodes) {
  qtt_table t;
  CHECK(qtt_table_init(&t, 40) == 0);
  CHECK(rctd_qtable_rows(0.84, t.x, 0, 40, t.q, t.sq) == 0);
  for (int k = 0; k < 40; k += 3) {
    for (int i = 1; i < RCTD_N_X - 1; i++) {
      double y = k, lam = t.x[i], d0, d1, d2;
      rctd_spline_eval(&t.table, 1, &y, &lam, &d0, &d1, &d2);
      double q = t.q[k * RCTD_N_X + i];
      CHECK_MSG(qtt_rel(d0, q, 1) <= 1e-13, "k %d node %d: %.17g vs %.17g", k, i, d0, q);
      CHECK_MSG(qtt_rel(d2, t.sq[k * RCTD_N_X + i], 1e-6) <= 1e-9, "k %d node %d d2", k, i);
    }
  }
  qtt_table_free(&t);
}

/* d1 and d2 are the derivatives of d0 within an interval (central differences). */
TEST(qtable_spline_derivatives_match_finite_differences) {
  qtt_table t;
  CHECK(qtt_table_init(&t, 200) == 0);
  static const int ks[] = {0, 3, 17, 150};
  for (int a = 0; a < 4; a++) CHECK(rctd_qtable_rows(0.84, t.x, ks[a], ks[a] + 1, t.q, t.sq) == 0);
  for (int a = 0; a < 4; a++) {
    for (int i = 0; i < RCTD_N_X - 1; i += 7) {
      double lo = t.x[i], hi = t.x[i + 1], lam = lo + 0.37 * (hi - lo), h = 1e-3 * (hi - lo);
      double y3[3] = {ks[a], ks[a], ks[a]}, l3[3] = {lam - h, lam, lam + h};
      double d0[3], d1[3], d2[3];
      if (lam < 1e-4 + h || lam > 1600 - 1e-4 - h) continue;
      rctd_spline_eval(&t.table, 3, y3, l3, d0, d1, d2);
      double fd1 = (d0[2] - d0[0]) / (2 * h), fd2 = (d0[2] - 2 * d0[1] + d0[0]) / (h * h);
      double dd1 = (d1[2] - d1[0]) / (2 * h);
      double s1 = fabs(d1[1]) + fabs(d0[1]) / (hi - lo), s2 = fabs(d2[1]) + s1 / (hi - lo);
      CHECK_MSG(fabs(fd1 - d1[1]) <= 1e-6 * s1, "k %d i %d: d1 %.17g fd %.17g", ks[a], i, d1[1],
                fd1);
      CHECK_MSG(fabs(dd1 - d2[1]) <= 1e-6 * s2, "k %d i %d: d2 %.17g fd %.17g", ks[a], i, d2[1],
                dd1);
      CHECK_MSG(fabs(fd2 - d2[1]) <= 1e-2 * s2, "k %d i %d: d2 %.17g fd2 %.17g", ks[a], i, d2[1],
                fd2);
    }
  }
  qtt_table_free(&t);
}

/* Rows do not depend on how a range is split between calls; invalid arguments are refused. */
TEST(qtable_rows_split_and_invalid_args) {
  qtt_table a, b;
  CHECK(qtt_table_init(&a, 12) == 0 && qtt_table_init(&b, 12) == 0);
  CHECK(rctd_qtable_rows(0.5, a.x, 0, 12, a.q, a.sq) == 0);
  CHECK(rctd_qtable_rows(0.5, b.x, 7, 12, b.q, b.sq) == 0);
  CHECK(rctd_qtable_rows(0.5, b.x, 0, 7, b.q, b.sq) == 0);
  CHECK(memcmp(a.q, b.q, sizeof(double) * 12 * RCTD_N_X) == 0);
  CHECK(memcmp(a.sq, b.sq, sizeof(double) * 12 * RCTD_N_X) == 0);
  CHECK(rctd_qtable_rows(0, a.x, 0, 1, a.q, a.sq) == -1);
  CHECK(rctd_qtable_rows(NAN, a.x, 0, 1, a.q, a.sq) == -1);
  CHECK(rctd_qtable_rows(0.5, a.x, 3, 2, a.q, a.sq) == -1);
  CHECK(rctd_qtable_rows(0.5, a.x, -1, 2, a.q, a.sq) == -1);
  CHECK(rctd_qtable_rows(0.5, a.x, 2, 2, a.q, a.sq) == 0);
  /* Out-of-table rows and NaN lambda give NaN rather than reading outside the table. */
  double y[3] = {12, 5, -1}, lam[3] = {1, NAN, 1}, d0[3];
  rctd_spline_eval(&a.table, 3, y, lam, d0, NULL, NULL);
  CHECK(isnan(d0[0]) && isnan(d0[1]) && isnan(d0[2]));
  qtt_table_free(&a);
  qtt_table_free(&b);
}
