/* IRWLS kernel (solveIRWLS.weights), its psd() projection and the CPU backend.
 * R fixtures in tests/data/irwls/ come from spacexr's own functions (IRWLS.R, prob_model.R) run
 * with quadprog; the vignette tests compare with R's full run in tests/data/gold/vignette. */
#include <gsl/gsl_eigen.h>
#include <stdint.h>
#include <stdlib.h>

#include "cpu/irwls.h"
#include "cpu/psd.h"
#include "rctd_kernels.h"
#include "test.h"

#define IRT_DATA "tests/data/irwls"
#define IRT_SIGMA_0_84 0.84

/* ---------------------------------------------------------------- fixture helpers */

/* Reads one line of whitespace-separated numbers; returns the count (0 at EOF). */
static int irt_read_line(FILE *f, double **vals, int *cap) {
  char *line = NULL;
  size_t len = 0;
  if (getline(&line, &len, f) < 0) {
    free(line);
    return 0;
  }
  int n = 0;
  char *p = line, *end;
  for (;;) {
    double v = strtod(p, &end);
    if (end == p) break;
    if (n == *cap) {
      *cap = *cap ? 2 * *cap : 1024;
      *vals = realloc(*vals, (size_t)*cap * sizeof(double));
    }
    (*vals)[n++] = v;
    p = end;
  }
  free(line);
  return n;
}

/* A table for sigma_c with rows 0..n_k-1 computed where wanted[k] (or all when NULL). */
typedef struct {
  rctd_qtable table;
  double x_vals[RCTD_N_X];
  double *q_kx, *sq_kx;
} irt_table;

static int irt_table_build(irt_table *t, double sigma_c, int n_k, const int *rows, int n_rows) {
  rctd_x_grid(t->x_vals);
  t->q_kx = calloc((size_t)n_k * RCTD_N_X, sizeof(double));
  t->sq_kx = calloc((size_t)n_k * RCTD_N_X, sizeof(double));
  if (!t->q_kx || !t->sq_kx) return -1;
  if (!rows) {
    if (rctd_qtable_rows(sigma_c, t->x_vals, 0, n_k, t->q_kx, t->sq_kx) != 0) return -1;
  }
  for (int r = 0; rows && r < n_rows; r++)
    if (rctd_qtable_rows(sigma_c, t->x_vals, rows[r], rows[r] + 1, t->q_kx, t->sq_kx) != 0)
      return -1;
  t->table = (rctd_qtable){n_k, t->x_vals, t->q_kx, t->sq_kx};
  return 0;
}

static void irt_table_free(irt_table *t) {
  free(t->q_kx);
  free(t->sq_kx);
}

/* The fixture table of table.txt: sigma 0.84, rows 0..40 and 1000 (see gen script). */
static int irt_fixture_table(irt_table *t) {
  int rows[42];
  for (int k = 0; k <= 40; k++) rows[k] = k;
  rows[41] = 1000;
  return irt_table_build(t, IRT_SIGMA_0_84, 1001, rows, 42);
}

static int irt_fit(const rctd_qtable *table, int G, int K, const double *S_gk, const double *y,
                   double numi, const rctd_irwls_opts *opts, const double *init, double *w) {
  void *ws = malloc(rctd_irwls_workspace_bytes(G, K));
  int conv = rctd_irwls_fit(table, G, K, S_gk, y, numi, opts, init, w, ws);
  free(ws);
  return conv;
}

static double irt_rel(double a, double b) {
  return fabs(a - b) / fmax(1.0, fabs(b));
}

/* ---------------------------------------------------------------- psd */

TEST(psd_hand) {
  char ws[4096];
  double D[9];
  double h = 5;
  CHECK_NEAR(rctd_psd_scaled(1, &h, D, ws), 5, 0);
  CHECK(D[0] == 1);
  h = -2; /* clamped to 1e-3 */
  CHECK_NEAR(rctd_psd_scaled(1, &h, D, ws), 1e-3, 0);
  CHECK(D[0] == 1);
  /* [[2,1],[1,2]]: eigenvalues 3, 1 -> P = H, norm 3. */
  double H2[4] = {2, 1, 1, 2};
  CHECK_NEAR(rctd_psd_scaled(2, H2, D, ws), 3, 1e-15);
  CHECK_NEAR(D[0], 2.0 / 3, 1e-15);
  CHECK_NEAR(D[1], 1.0 / 3, 1e-15);
  CHECK_NEAR(D[2], 1.0 / 3, 1e-15);
  CHECK_NEAR(D[3], 2.0 / 3, 1e-15);
  /* [[1,2],[2,1]]: eigenvalues 3 (1,1)/sqrt2 and -1 (1,-1)/sqrt2, the latter clamped. */
  double H3[4] = {1, 2, 2, 1};
  CHECK_NEAR(rctd_psd_scaled(2, H3, D, ws), 3, 1e-15);
  CHECK_NEAR(D[0], (3 + 1e-3) / 6, 1e-15);
  CHECK_NEAR(D[1], (3 - 1e-3) / 6, 1e-15);
  /* Diagonal k = 2 and k = 3 (GSL path): clamping per eigenvalue. */
  double H4[4] = {-1, 0, 0, 4};
  CHECK_NEAR(rctd_psd_scaled(2, H4, D, ws), 4, 0);
  CHECK_NEAR(D[0], 1e-3 / 4, 1e-18);
  CHECK(D[1] == 0 && D[2] == 0);
  CHECK_NEAR(D[3], 1, 1e-16);
  /* k = 3: R diag(-1, 2, 5) R' with a rotation R; D = R diag(1e-3, 2, 5) R' / 5. */
  double c = cos(0.3), s = sin(0.3);
  double R[9] = {c, -s, 0, s, c, 0, 0, 0, 1}, lam[3] = {-1, 2, 5}, lamc[3] = {1e-3, 2, 5};
  double H[9], Dexp[9];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      H[i * 3 + j] = Dexp[i * 3 + j] = 0;
      for (int m = 0; m < 3; m++) {
        H[i * 3 + j] += R[i * 3 + m] * lam[m] * R[j * 3 + m];
        Dexp[i * 3 + j] += R[i * 3 + m] * lamc[m] * R[j * 3 + m] / 5;
      }
    }
  CHECK_NEAR(rctd_psd_scaled(3, H, D, ws), 5, 1e-14);
  for (int i = 0; i < 9; i++) CHECK_NEAR(D[i], Dexp[i], 1e-15);
  /* Non-finite input is refused, not looped on. */
  H[4] = NAN;
  CHECK(rctd_psd_scaled(3, H, D, ws) < 0);
}

TEST(psd_vs_r) {
  FILE *f = fopen(IRT_DATA "/psd.txt", "r");
  CHECK(f != NULL);
  double *v = NULL, D[64], worst = 0;
  int cap = 0, n, cases = 0;
  char ws[8192];
  while ((n = irt_read_line(f, &v, &cap)) > 0) {
    int k = (int)v[0];
    CHECK(n == 2 + 2 * k * k && rctd_psd_workspace_bytes(k) <= sizeof ws);
    double norm = rctd_psd_scaled(k, v + 1, D, ws);
    CHECK_MSG(fabs(norm - v[1 + 2 * k * k]) <= 1e-13 * norm, "case %d: norm %.17g vs R %.17g",
              cases, norm, v[1 + 2 * k * k]);
    for (int i = 0; i < k * k; i++) {
      worst = fmax(worst, fabs(D[i] - v[1 + k * k + i]));
      CHECK_MSG(fabs(D[i] - v[1 + k * k + i]) <= 1e-13, "case %d (k %d) entry %d: %.17g vs R %.17g",
                cases, k, i, D[i], v[1 + k * k + i]);
    }
    cases++;
  }
  free(v);
  fclose(f);
  CHECK(cases == 60);
  fprintf(stderr, "  psd_vs_r: %d matrices, worst |D - D_R| %.3g\n", cases, worst);
}

/* Reference psd(H) / norm through GSL's symmv (the textbook route R's eigen() also follows). */
static double irt_psd_gsl(int k, const double *H, double *D) {
  double A[32 * 32], V[32 * 32], ev[32];
  memcpy(A, H, sizeof(double) * k * k);
  gsl_matrix_view a = gsl_matrix_view_array(A, k, k), v = gsl_matrix_view_array(V, k, k);
  gsl_vector_view e = gsl_vector_view_array(ev, k);
  gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(k);
  gsl_eigen_symmv(&a.matrix, &e.vector, &v.matrix, w);
  gsl_eigen_symmv_free(w);
  double norm = 0;
  for (int m = 0; m < k; m++) norm = fmax(norm, ev[m] = fmax(ev[m], RCTD_PSD_EIG_FLOOR));
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      long double sum = 0;
      for (int m = 0; m < k; m++) sum += (long double)V[i * k + m] * ev[m] * V[j * k + m];
      D[i * k + j] = (double)(sum / norm);
    }
  return norm;
}

/* The tridiagonal QL path against GSL on random and structured matrices, k = 3 .. 25:
 * indefinite Hessian-like S'diag(c)S, low rank, repeated eigenvalues, zero rows, zero matrix,
 * magnitudes from 1e-6 to 1e8. */
TEST(psd_vs_gsl_random) {
  static char ws[65536];
  unsigned long long st = 77;
  double worst = 0;
  for (int rep = 0; rep < 1200; rep++) {
    int k = 3 + rep % 23, kind = (rep / 23) % 6;
    double H[32 * 32] = {0}, D[32 * 32], Dref[32 * 32], B[40 * 32];
    double scale = pow(10, -6 + 14 * ((rep * 37) % 101) / 100.0);
    for (int i = 0; i < 40 * k; i++) {
      st = st * 6364136223846793005ULL + 1442695040888963407ULL;
      B[i] = (double)(st >> 11) / 9007199254740992.0;
    }
    if (kind == 0 || kind == 1) { /* S' diag(c) S with c of both signs (kind 1: rank < k) */
      int rows = kind == 0 ? 40 : k / 2;
      for (int i = 0; i < k; i++)
        for (int j = 0; j <= i; j++) {
          double sum = 0;
          for (int g = 0; g < rows; g++) sum += B[g * k + i] * B[g * k + j] * (B[g] - 0.3);
          H[i * k + j] = H[j * k + i] = sum * scale;
        }
    } else if (kind == 2) { /* diagonal with repeated values, some below the floor */
      for (int i = 0; i < k; i++) H[i * k + i] = (i % 3 == 0 ? -1 : i % 3 == 1 ? 1e-4 : 2) * scale;
    } else if (kind == 3) { /* a zero row and column (a type absent from every gene) */
      for (int i = 0; i < k; i++)
        for (int j = 0; j <= i; j++)
          H[i * k + j] = H[j * k + i] = (i == 1 || j == 1) ? 0 : (B[i * k + j] - 0.5) * scale;
    } else if (kind == 4) { /* multiple of the identity */
      for (int i = 0; i < k; i++) H[i * k + i] = scale;
    } /* kind 5: the zero matrix */
    double norm = rctd_psd_scaled(k, H, D, ws), norm_ref = irt_psd_gsl(k, H, Dref);
    CHECK_MSG(fabs(norm - norm_ref) <= 1e-13 * norm_ref, "rep %d k %d kind %d: norm %.17g vs %.17g",
              rep, k, kind, norm, norm_ref);
    for (int i = 0; i < k * k; i++) {
      worst = fmax(worst, fabs(D[i] - Dref[i]));
      CHECK_MSG(fabs(D[i] - Dref[i]) <= 1e-13, "rep %d k %d kind %d entry %d: %.17g vs %.17g", rep,
                k, kind, i, D[i], Dref[i]);
    }
  }
  fprintf(stderr, "  psd_vs_gsl_random: 1200 matrices, worst |D - D_gsl| %.3g\n", worst);
}

/* ---------------------------------------------------------------- IRWLS, hand-checked */

/* One bulk-mode step for K = 1 by hand: s = 1 (start 1/K), pred = S, d1 and d2 of the Gaussian
 * on logs, x = max(d/(1 + 1e-7), -1) with d = (d1 S) / max(H, 1e-3), w = 1 + 0.3 x. */
TEST(irwls_k1_one_step_hand) {
  const int G = 3;
  double S[3] = {10, 20, 5}, y[3] = {12, 30, 4};
  double dsum = 0, hsum = 0;
  for (int g = 0; g < G; g++) {
    double p = S[g], lr = log(p) - log(y[g]);
    double d1 = -2 * (lr / p), d2 = -2 * ((1 - log(p) + log(y[g])) / (p * p));
    dsum += d1 * S[g];
    hsum += -d2 * S[g] * S[g];
  }
  double norm = fmax(hsum, 1e-3);
  double x = fmax((dsum / norm) / (1 + 1e-7), -1.0);
  double expected = 1 + 0.3 * x;
  rctd_irwls_opts opts = {1, 1e-4, 0, 1};
  double w;
  int conv = irt_fit(NULL, G, 1, S, y, 1e4, &opts, NULL, &w);
  CHECK_NEAR(w, expected, 1e-14);
  CHECK(conv == (fabs(w - 1) <= 1e-4));
}

/* Bulk mode minimises sum (log pred - log y)^2: with y = S w* exactly, the fit recovers w*. */
TEST(irwls_bulk_exact_recovery) {
  const int G = 6, K = 3;
  double S[18], y[6], wtrue[3] = {2.0, 0.5, 1.25}, w[3];
  for (int g = 0; g < G; g++) {
    y[g] = 0;
    for (int k = 0; k < K; k++) {
      S[g * K + k] = 1 + ((g * 7 + k * 3) % 5) + (g == k ? 4 : 0);
      y[g] += S[g * K + k] * wtrue[k];
    }
  }
  rctd_irwls_opts opts = {1000, 1e-14, 0, 1};
  CHECK(irt_fit(NULL, G, K, S, y, 1e4, &opts, NULL, w) == 1);
  for (int k = 0; k < K; k++) CHECK_NEAR(w[k], wtrue[k], 1e-10);
  /* The constrained fit of a design whose solution sums to 1 lands on it too. */
  double wsum1[3] = {0.5, 0.2, 0.3};
  for (int g = 0; g < G; g++) {
    y[g] = 0;
    for (int k = 0; k < K; k++) y[g] += S[g * K + k] * wsum1[k];
  }
  opts.constrain = 1;
  CHECK(irt_fit(NULL, G, K, S, y, 1e4, &opts, NULL, w) == 1);
  for (int k = 0; k < K; k++) CHECK_NEAR(w[k], wsum1[k], 1e-10);
}

/* A type that would need a negative weight: its bound stays active, its weight decays by 0.7 per
 * step, and the other weight equals the one-type fit. */
TEST(irwls_active_bound) {
  const int G = 5, K = 2;
  double S[10], S1[5], y[5], w[2], w1;
  for (int g = 0; g < G; g++) {
    S[g * 2] = S1[g] = 10 + 3 * g;
    S[g * 2 + 1] = 1 + (g % 2) * 8;
    y[g] = 2 * S1[g] - 0.3 * S[g * 2 + 1]; /* best fit wants w2 < 0 */
  }
  rctd_irwls_opts opts = {200, 1e-300, 0, 1};
  CHECK(irt_fit(NULL, G, K, S, y, 1e4, &opts, NULL, w) == 0); /* never "converged" */
  CHECK(w[1] >= 0 && w[1] < 1e-25);
  opts.min_change = 1e-15;
  opts.n_iter = 1000;
  CHECK(irt_fit(NULL, G, 1, S1, y, 1e4, &opts, NULL, &w1) == 1);
  CHECK_NEAR(w[0], w1, 1e-12);
  /* The inactive-bound case of the same design: y from positive weights, both recovered. */
  for (int g = 0; g < G; g++) y[g] = 2 * S1[g] + 0.3 * S[g * 2 + 1];
  CHECK(irt_fit(NULL, G, K, S, y, 1e4, &opts, NULL, w) == 1);
  CHECK_NEAR(w[0], 2, 1e-10);
  CHECK_NEAR(w[1], 0.3, 1e-10);
}

/* Two identical columns: H is singular (one eigenvalue 0, clamped at 1e-3); the fit stays finite,
 * splits the weight evenly and the total matches the one-column fit. */
TEST(irwls_degenerate_hessian) {
  const int G = 4;
  double S[8], S1[4], y[4], w[2], w1;
  for (int g = 0; g < G; g++) {
    S[g * 2] = S[g * 2 + 1] = S1[g] = 5 + g;
    y[g] = 3 * S1[g] * (1 + 0.1 * (g % 2));
  }
  rctd_irwls_opts opts = {2000, 1e-14, 0, 1};
  irt_fit(NULL, G, 2, S, y, 1e4, &opts, NULL, w);
  CHECK(irt_fit(NULL, G, 1, S1, y, 1e4, &opts, NULL, &w1) == 1);
  CHECK(isfinite(w[0]) && isfinite(w[1]));
  CHECK_NEAR(w[0], w[1], 1e-12);
  CHECK_NEAR(w[0] + w[1], w1, 1e-9);
  /* An all-zero Hessian (zero design): every eigenvalue clamped; weights stay finite. */
  double Z[8] = {0}, wz[2];
  opts = (rctd_irwls_opts){50, 1e-3, 0, 1};
  irt_fit(NULL, G, 2, Z, y, 1e4, &opts, NULL, wz);
  CHECK(isfinite(wz[0]) && isfinite(wz[1]));
}

/* A pixel of all zeros: every weight decays towards 0 (the 0.7 damping of an active bound),
 * equally for identical starting points, and stays finite. */
TEST(irwls_zero_pixel) {
  irt_table t;
  CHECK(irt_fixture_table(&t) == 0);
  const int G = 20, K = 3;
  double S[60], y[20] = {0}, w[3];
  for (int i = 0; i < G * K; i++) S[i] = 0.5 + (i % 7);
  rctd_irwls_opts opts = {50, 1e-3, 0, 0};
  int conv = irt_fit(&t.table, G, K, S, y, 300, &opts, NULL, w);
  irt_table_free(&t);
  CHECK(conv == 1);
  for (int k = 0; k < K; k++) CHECK(isfinite(w[k]) && w[k] >= 0 && w[k] < 3e-3);
}

/* Non-finite counts give NaN weights and "not converged", never a hang. */
TEST(irwls_nonfinite_input) {
  double S[4] = {1, 2, 3, 4}, y[2] = {NAN, 1}, w[2];
  rctd_irwls_opts opts = {50, 1e-4, 0, 1};
  CHECK(irt_fit(NULL, 2, 2, S, y, 100, &opts, NULL, w) == 0);
  CHECK(isnan(w[0]) && isnan(w[1]));
}

/* ---------------------------------------------------------------- IRWLS vs R */

/* One fixture line: G K constrain n_iter min_change numi S(GxK) y(G) w(K) conv iters [score]. */
typedef struct {
  int G, K, constrain, n_iter, conv, iters;
  double min_change, numi, score;
  const double *S, *y, *w;
} irt_case;

static int irt_parse_case(const double *v, int n, int with_score, irt_case *c) {
  if (n < 6) return -1;
  c->G = (int)v[0], c->K = (int)v[1], c->constrain = (int)v[2], c->n_iter = (int)v[3];
  c->min_change = v[4], c->numi = v[5];
  int need = 6 + c->G * c->K + c->G + c->K + 2 + with_score;
  if (n != need) return -1;
  c->S = v + 6;
  c->y = c->S + c->G * c->K;
  c->w = c->y + c->G;
  c->conv = (int)c->w[c->K];
  c->iters = (int)c->w[c->K + 1];
  c->score = with_score ? c->w[c->K + 2] : NAN;
  return 0;
}

TEST(irwls_bulk_vs_r) {
  FILE *f = fopen(IRT_DATA "/bulk.txt", "r");
  CHECK(f != NULL);
  double *v = NULL, worst = 0;
  int cap = 0, n, cases = 0;
  while ((n = irt_read_line(f, &v, &cap)) > 0) {
    irt_case c;
    CHECK(irt_parse_case(v, n, 0, &c) == 0);
    rctd_irwls_opts opts = {c.n_iter, c.min_change, c.constrain, 1};
    double w[64];
    int conv = irt_fit(NULL, c.G, c.K, c.S, c.y, c.numi, &opts, NULL, w);
    CHECK_MSG(conv == c.conv, "case %d: converged %d vs R %d", cases, conv, c.conv);
    for (int k = 0; k < c.K; k++) {
      worst = fmax(worst, irt_rel(w[k], c.w[k]));
      CHECK_MSG(irt_rel(w[k], c.w[k]) <= 1e-9, "case %d (K %d) w[%d] %.17g vs R %.17g", cases, c.K,
                k, w[k], c.w[k]);
    }
    cases++;
  }
  free(v);
  fclose(f);
  CHECK(cases == 12);
  fprintf(stderr, "  irwls_bulk_vs_r: %d fits, worst weight difference %.3g\n", cases, worst);
}

TEST(irwls_table_probe_vs_r) {
  FILE *f = fopen(IRT_DATA "/table_probe.txt", "r");
  CHECK(f != NULL);
  double *v = NULL;
  int cap = 0;
  CHECK(irt_read_line(f, &v, &cap) == 1);
  double sigma = v[0];
  double x_vals[RCTD_N_X];
  rctd_x_grid(x_vals);
  CHECK(irt_read_line(f, &v, &cap) == RCTD_N_X);
  for (int i = 0; i < RCTD_N_X; i++) CHECK_NEAR(x_vals[i], v[i], 0);
  int n = irt_read_line(f, &v, &cap);
  fclose(f);
  CHECK(n > 0 && n % 4 == 0);
  for (int p = 0; p < n; p += 4) {
    int k = (int)v[p], i = (int)v[p + 1];
    double *qk = malloc(sizeof(double) * RCTD_N_X * (size_t)(k + 1));
    double *sqk = malloc(sizeof(double) * RCTD_N_X * (size_t)(k + 1));
    CHECK(rctd_qtable_rows(sigma, x_vals, k, k + 1, qk, sqk) == 0);
    double qv = qk[(size_t)k * RCTD_N_X + i], sqv = sqk[(size_t)k * RCTD_N_X + i];
    free(qk);
    free(sqk);
    CHECK_MSG(fabs(qv - v[p + 2]) <= 1e-9 * fmax(1, fabs(v[p + 2])), "Q[%d,%d] %.17g vs R %.17g", k,
              i, qv, v[p + 2]);
    CHECK_MSG(fabs(sqv - v[p + 3]) <= 1e-6 * fmax(1, fabs(v[p + 3])), "SQ[%d,%d] %.17g vs R %.17g",
              k, i, sqv, v[p + 3]);
  }
  free(v);
}

TEST(irwls_table_vs_r) {
  irt_table t;
  CHECK(irt_fixture_table(&t) == 0);
  FILE *f = fopen(IRT_DATA "/table.txt", "r");
  CHECK(f != NULL);
  double *v = NULL, worst = 0, worst_score = 0;
  int cap = 0, n, cases = 0;
  while ((n = irt_read_line(f, &v, &cap)) > 0) {
    irt_case c;
    CHECK(irt_parse_case(v, n, 1, &c) == 0);
    rctd_irwls_opts opts = {c.n_iter, c.min_change, c.constrain, 0};
    double w[64], pred[512], d0[512], S_kg[64 * 512];
    CHECK(c.K <= 64 && c.G <= 512);
    int conv = irt_fit(&t.table, c.G, c.K, c.S, c.y, c.numi, &opts, NULL, w);
    CHECK_MSG(conv == c.conv, "case %d: converged %d vs R %d", cases, conv, c.conv);
    for (int k = 0; k < c.K; k++) {
      worst = fmax(worst, irt_rel(w[k], c.w[k]));
      CHECK_MSG(irt_rel(w[k], c.w[k]) <= 1e-9, "case %d (K %d) w[%d] %.17g vs R %.17g", cases, c.K,
                k, w[k], c.w[k]);
    }
    for (int g = 0; g < c.G; g++)
      for (int k = 0; k < c.K; k++) S_kg[k * c.G + g] = c.S[g * c.K + k];
    /* The scorer on R's weights reproduces R's score; on ours, it moves only as far as the
     * weights do (quadprog's rounding on active bounds is ~1e-9 relative: the zero pixel). */
    double score_rw = rctd_irwls_score_kg(&t.table, c.G, c.K, S_kg, c.y, c.w, pred, d0);
    double score = rctd_irwls_score_kg(&t.table, c.G, c.K, S_kg, c.y, w, pred, d0);
    worst_score = fmax(worst_score, fabs(score - c.score) / fabs(c.score));
    CHECK_MSG(fabs(score_rw - c.score) <= 1e-13 * fabs(c.score),
              "case %d: score of R's weights %.17g vs R %.17g", cases, score_rw, c.score);
    CHECK_MSG(fabs(score - c.score) <= 1e-7 * fabs(c.score), "case %d: score %.17g vs R %.17g",
              cases, score, c.score);
    cases++;
  }
  free(v);
  fclose(f);
  irt_table_free(&t);
  CHECK(cases == 12);
  fprintf(stderr, "  irwls_table_vs_r: %d fits, worst weight difference %.3g, score rel. %.3g\n",
          cases, worst, worst_score);
}

/* ---------------------------------------------------------------- vignette (R's own run) */

typedef struct {
  int n_rows, n_cols;
  char **row_names, **col_names;
  double *vals; /* n_rows x n_cols */
} irt_csv;

static char *irt_unquote(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
    s[n - 1] = 0;
    return s + 1;
  }
  return s;
}

/* A CSV with a header row and row names in the first column (R's write.csv). */
static int irt_csv_read(const char *path, irt_csv *c) {
  memset(c, 0, sizeof *c);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char *line = NULL;
  size_t len = 0;
  int cap_rows = 0;
  while (getline(&line, &len, f) >= 0) {
    size_t n_fields = 1;
    for (const char *q = line; *q; q++) n_fields += *q == ',';
    char *save = NULL, *tok = strtok_r(line, ",", &save);
    if (!c->col_names) {
      c->col_names = calloc(n_fields, sizeof(char *));
      while ((tok = strtok_r(NULL, ",", &save)))
        c->col_names[c->n_cols++] = strdup(irt_unquote(tok));
      continue;
    }
    if (c->n_rows == cap_rows) {
      cap_rows = cap_rows ? 2 * cap_rows : 256;
      c->row_names = realloc(c->row_names, (size_t)cap_rows * sizeof(char *));
      c->vals = realloc(c->vals, (size_t)cap_rows * c->n_cols * sizeof(double));
    }
    c->row_names[c->n_rows] = strdup(irt_unquote(tok));
    for (int j = 0; j < c->n_cols; j++) {
      tok = strtok_r(NULL, ",", &save);
      char *u = tok ? irt_unquote(tok) : "NA";
      c->vals[(size_t)c->n_rows * c->n_cols + j] = strcmp(u, "TRUE") == 0    ? 1
                                                   : strcmp(u, "FALSE") == 0 ? 0
                                                                             : strtod(u, NULL);
    }
    c->n_rows++;
  }
  free(line);
  fclose(f);
  return c->n_cols > 0 ? 0 : -1;
}

static void irt_csv_free(irt_csv *c) {
  for (int i = 0; i < c->n_rows; i++) free(c->row_names[i]);
  for (int j = 0; j < c->n_cols; j++) free(c->col_names[j]);
  free(c->row_names);
  free(c->col_names);
  free(c->vals);
}

static int irt_find(char **names, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return i;
  return -1;
}

/* Everything the vignette fits need: profiles over gene_list_reg, pixels' counts and nUMI. */
typedef struct {
  int G, K, n_pix;
  double *profiles_gk; /* G x K */
  double *y_ng;        /* n_pix x G */
  double *numi_n;
  char **barcodes; /* borrowed from the gold weights table */
  irt_csv gold_weights;
  irt_table table;
} irt_vignette;

static void irt_vignette_free(irt_vignette *vg) {
  free(vg->profiles_gk);
  free(vg->y_ng);
  free(vg->numi_n);
  irt_csv_free(&vg->gold_weights);
  irt_table_free(&vg->table);
}

/* mode: "full" or "doublet" reads gold/vignette/MODE (15 significant digits); "r" reads
 * tests/data/r/vignette (R's rerun written with 17 digits) with its full-mode weights. */
static int irt_vignette_load(const char *mode, irt_vignette *vg) {
  memset(vg, 0, sizeof *vg);
  char path[4200], dir[4000];
  const char *repo = test_repo_dir();
  const int r17 = strcmp(mode, "r") == 0;
  irt_csv prof, counts;
  if (r17)
    snprintf(dir, sizeof dir, "tests/data/r/vignette");
  else
    snprintf(dir, sizeof dir, "%s/tests/data/gold/vignette/%s", repo, mode);
  snprintf(path, sizeof path, "%s/norm_profiles.csv", dir);
  if (irt_csv_read(path, &prof) != 0) return -1;
  snprintf(path, sizeof path, "%s/data/vignette/csv/spatial/MappedDGEForR.csv", repo);
  if (irt_csv_read(path, &counts) != 0) return -1;
  snprintf(path, sizeof path, "%s/%sweights.csv", dir, r17 ? "full/" : "");
  if (irt_csv_read(path, &vg->gold_weights) != 0) return -1;
  snprintf(path, sizeof path, "%s/gene_list_reg.txt", dir);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char gene[256];
  int gene_prof[1024], gene_counts[1024];
  vg->K = prof.n_cols;
  while (fscanf(f, "%255s", gene) == 1 && vg->G < 1024) {
    gene_prof[vg->G] = irt_find(prof.row_names, prof.n_rows, gene);
    gene_counts[vg->G] = irt_find(counts.row_names, counts.n_rows, gene);
    if (gene_prof[vg->G] < 0 || gene_counts[vg->G] < 0) return -1;
    vg->G++;
  }
  fclose(f);
  vg->n_pix = vg->gold_weights.n_rows;
  vg->barcodes = vg->gold_weights.row_names;
  vg->profiles_gk = malloc(sizeof(double) * vg->G * vg->K);
  vg->y_ng = malloc(sizeof(double) * vg->n_pix * vg->G);
  vg->numi_n = malloc(sizeof(double) * vg->n_pix);
  for (int g = 0; g < vg->G; g++)
    for (int k = 0; k < vg->K; k++)
      vg->profiles_gk[g * vg->K + k] = prof.vals[gene_prof[g] * prof.n_cols + k];
  double y_max = 0;
  for (int p = 0; p < vg->n_pix; p++) {
    int col = irt_find(counts.col_names, counts.n_cols, vg->barcodes[p]);
    if (col < 0) return -1;
    long double numi = 0; /* nUMI = colSums over all genes of the counts */
    for (int r = 0; r < counts.n_rows; r++) numi += counts.vals[r * counts.n_cols + col];
    vg->numi_n[p] = (double)numi;
    for (int g = 0; g < vg->G; g++) {
      vg->y_ng[p * vg->G + g] = counts.vals[gene_counts[g] * counts.n_cols + col];
      y_max = fmax(y_max, vg->y_ng[p * vg->G + g]);
    }
  }
  irt_csv_free(&prof);
  irt_csv_free(&counts);
  int n_k = (int)fmin(y_max, RCTD_K_VAL) + 1;
  rctd_backend *be = rctd_backend_cpu(2);
  rctd_x_grid(vg->table.x_vals);
  vg->table.q_kx = malloc(sizeof(double) * RCTD_N_X * n_k);
  vg->table.sq_kx = malloc(sizeof(double) * RCTD_N_X * n_k);
  int rc = be->qtable(be, IRT_SIGMA_0_84, n_k, vg->table.q_kx, vg->table.sq_kx);
  be->destroy(be);
  vg->table.table = (rctd_qtable){n_k, vg->table.x_vals, vg->table.q_kx, vg->table.sq_kx};
  return rc;
}

/* fitPixels full mode: every pixel's 19-type unconstrained fit against R's weights. */
static int irt_vignette_full(const char *mode, double tol, double *worst) {
  irt_vignette vg;
  if (irt_vignette_load(mode, &vg) != 0 || vg.n_pix != 71 || vg.K != 19 || vg.G != 313) return -1;
  rctd_backend *be = rctd_backend_cpu(2);
  int32_t *pix = malloc(sizeof(int32_t) * vg.n_pix), *conv = malloc(sizeof(int32_t) * vg.n_pix);
  double *w = malloc(sizeof(double) * vg.n_pix * vg.K);
  for (int p = 0; p < vg.n_pix; p++) pix[p] = p;
  rctd_fit_batch batch = {vg.G,      vg.K,     vg.profiles_gk, vg.n_pix, vg.y_ng,
                          vg.numi_n, vg.n_pix, vg.K,           pix,      NULL};
  rctd_irwls_opts opts = {50, 1e-3, 0, 0};
  int rc = be->irwls_batch(be, &vg.table.table, &batch, &opts, w, conv, NULL);
  int bad = 0;
  for (int p = 0; rc == 0 && p < vg.n_pix; p++)
    for (int k = 0; k < vg.K; k++) {
      double r = vg.gold_weights.vals[p * vg.K + k];
      double err = irt_rel(w[p * vg.K + k], r);
      *worst = fmax(*worst, err);
      if (err > tol && bad++ < 5)
        fprintf(stderr, "  pixel %s type %d: %.17g vs R %.17g\n", vg.barcodes[p], k + 1,
                w[p * vg.K + k], r);
    }
  be->destroy(be);
  free(pix);
  free(conv);
  free(w);
  irt_vignette_free(&vg);
  return rc == 0 && bad == 0 ? 0 : -1;
}

TEST(irwls_vignette_full_vs_r) {
  double worst_gold = 0, worst_r17 = 0;
  int rc_gold = irt_vignette_full("full", 1e-8, &worst_gold);
  int rc_r17 = irt_vignette_full("r", 1e-8, &worst_r17);
  fprintf(stderr,
          "  irwls_vignette_full_vs_r: 71 pixels x 19 types, worst difference %.3g vs gold, %.3g "
          "vs R's 17-digit rerun\n",
          worst_gold, worst_r17);
  CHECK(rc_gold == 0);
  CHECK(rc_r17 == 0);
}

/* Doublet mode's min_score is the score-mode (25 iterations) fit of the best pair: refit every
 * pixel's (first_type, second_type) pair, in candidate (type) order, and compare the score. */
TEST(irwls_vignette_doublet_scores_vs_r) {
  irt_vignette vg;
  CHECK(irt_vignette_load("doublet", &vg) == 0);
  irt_csv res;
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/data/gold/vignette/doublet/results_df.csv", test_repo_dir());
  CHECK(irt_csv_read(path, &res) == 0);
  int c_first = irt_find(res.col_names, res.n_cols, "first_type");
  int c_second = irt_find(res.col_names, res.n_cols, "second_type");
  int c_min = irt_find(res.col_names, res.n_cols, "min_score");
  CHECK(c_first >= 0 && c_second >= 0 && c_min >= 0);
  int n = res.n_rows;
  int32_t *pix = malloc(sizeof(int32_t) * n), *types = malloc(sizeof(int32_t) * 2 * n);
  int32_t *conv = malloc(sizeof(int32_t) * n);
  double *w = malloc(sizeof(double) * 2 * n), *score = malloc(sizeof(double) * n);
  int ok = 1;
  for (int i = 0; i < n; i++) {
    pix[i] = irt_find(vg.barcodes, vg.n_pix, res.row_names[i]);
    int a = (int)res.vals[i * res.n_cols + c_first] - 1;
    int b = (int)res.vals[i * res.n_cols + c_second] - 1;
    types[2 * i] = a < b ? a : b;
    types[2 * i + 1] = a < b ? b : a;
    ok = ok && pix[i] >= 0;
  }
  rctd_backend *be = rctd_backend_cpu(2);
  rctd_fit_batch batch = {vg.G, vg.K, vg.profiles_gk, vg.n_pix, vg.y_ng, vg.numi_n, n,
                          2,    pix,  types};
  rctd_irwls_opts opts = {25, 1e-3, 0, 0};
  int rc = ok ? be->irwls_batch(be, &vg.table.table, &batch, &opts, w, conv, score) : -1;
  double worst = 0;
  int bad = 0;
  for (int i = 0; rc == 0 && i < n; i++) {
    double r = res.vals[i * res.n_cols + c_min];
    double err = fabs(score[i] - r) / fabs(r);
    worst = fmax(worst, err);
    if (err > 1e-9 && bad++ < 5)
      fprintf(stderr, "  pixel %s: score %.17g vs R %.17g\n", res.row_names[i], score[i], r);
  }
  fprintf(stderr, "  irwls_vignette_doublet_scores_vs_r: %d pair scores, worst rel. %.3g\n", n,
          worst);
  be->destroy(be);
  free(pix);
  free(types);
  free(conv);
  free(w);
  free(score);
  irt_csv_free(&res);
  irt_vignette_free(&vg);
  CHECK(ok && rc == 0);
  CHECK(bad == 0);
}

/* Every score-mode fit doublet mode ran in R (tests/data/r: all candidate pairs and every
 * singlet score, recorded from R's own run): K = 2 and K = 1 fits, 25 iterations. */
static int irt_score_file_vs_r(irt_vignette *vg, const char *file, int k_sub, double *worst,
                               int *n_out) {
  char path[4096];
  snprintf(path, sizeof path, "tests/data/r/vignette/doublet/%s", file);
  irt_csv sc;
  if (irt_csv_read(path, &sc) != 0) return -1;
  int n = sc.n_rows, bad = 0;
  int32_t *pix = malloc(sizeof(int32_t) * n), *types = malloc(sizeof(int32_t) * k_sub * n);
  int32_t *conv = malloc(sizeof(int32_t) * n);
  double *w = malloc(sizeof(double) * k_sub * n), *score = malloc(sizeof(double) * n);
  for (int i = 0; i < n; i++) {
    pix[i] = (int32_t)atoi(sc.row_names[i]);
    for (int k = 0; k < k_sub; k++) types[i * k_sub + k] = (int32_t)sc.vals[i * sc.n_cols + k] - 1;
    if (pix[i] < 0 || pix[i] >= vg->n_pix) bad = 1;
  }
  rctd_backend *be = rctd_backend_cpu(2);
  rctd_fit_batch batch = {vg->G,      vg->K, vg->profiles_gk, vg->n_pix, vg->y_ng,
                          vg->numi_n, n,     k_sub,           pix,       types};
  rctd_irwls_opts opts = {25, 1e-3, 0, 0};
  if (!bad && be->irwls_batch(be, &vg->table.table, &batch, &opts, w, conv, score) != 0) bad = 1;
  for (int i = 0; !bad && i < n; i++) {
    double r = sc.vals[i * sc.n_cols + k_sub];
    double err = fabs(score[i] - r) / fabs(r);
    *worst = fmax(*worst, err);
    if (err > 1e-9) {
      fprintf(stderr, "  %s row %d: score %.17g vs R %.17g\n", file, i, score[i], r);
      bad = 1;
    }
  }
  be->destroy(be);
  free(pix);
  free(types);
  free(conv);
  free(w);
  free(score);
  irt_csv_free(&sc);
  *n_out = n;
  return bad ? -1 : 0;
}

TEST(irwls_vignette_all_scores_vs_r) {
  irt_vignette vg;
  CHECK(irt_vignette_load("doublet", &vg) == 0);
  double worst_pair = 0, worst_single = 0;
  int n_pair = 0, n_single = 0;
  int rc_pair = irt_score_file_vs_r(&vg, "pair_scores.csv", 2, &worst_pair, &n_pair);
  int rc_single = irt_score_file_vs_r(&vg, "singlet_scores.csv", 1, &worst_single, &n_single);
  irt_vignette_free(&vg);
  fprintf(stderr,
          "  irwls_vignette_all_scores_vs_r: %d pair scores (worst rel. %.3g), %d singlet scores "
          "(worst rel. %.3g)\n",
          n_pair, worst_pair, n_single, worst_single);
  CHECK(rc_pair == 0 && n_pair == 825);
  CHECK(rc_single == 0 && n_single == 142);
}

/* ---------------------------------------------------------------- backend */

/* Random small problem for backend tests. */
static void irt_random_batch(int G, int K, int n_pix, double *profiles_gk, double *y_ng,
                             double *numi_n) {
  unsigned long long st = 12345;
  for (int i = 0; i < G * K; i++) {
    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
    profiles_gk[i] = (double)(st >> 40) / (double)(1ULL << 24) * 0.02;
  }
  for (int p = 0; p < n_pix; p++) {
    numi_n[p] = 200 + 37 * p;
    for (int g = 0; g < G; g++) {
      st = st * 6364136223846793005ULL + 1442695040888963407ULL;
      y_ng[p * G + g] = (double)((st >> 33) % 7) * ((g + p) % 3 == 0);
    }
  }
}

TEST(backend_cpu_deterministic_and_matches_fit) {
  const int G = 40, K = 6, n_pix = 13, k_sub = 2;
  double profiles[40 * 6], y[13 * 40], numi[13];
  irt_random_batch(G, K, n_pix, profiles, y, numi);
  irt_table t;
  CHECK(irt_table_build(&t, 0.5, 8, NULL, 0) == 0);
  const int n_fits = 29;
  int32_t pix[29], types[58];
  for (int f = 0; f < n_fits; f++) {
    pix[f] = (f * 5) % n_pix;
    types[2 * f] = f % K;
    types[2 * f + 1] = (f + 1 + f / K) % K;
    if (types[2 * f + 1] == types[2 * f]) types[2 * f + 1] = (types[2 * f] + 1) % K;
  }
  rctd_fit_batch batch = {G, K, profiles, n_pix, y, numi, n_fits, k_sub, pix, types};
  rctd_irwls_opts opts = {25, 1e-3, 0, 0};
  double w1[58], w4[58], s1[29], s4[29];
  int32_t c1[29], c4[29];
  rctd_backend *b1 = rctd_backend_cpu(1), *b4 = rctd_backend_cpu(4);
  CHECK(b1->irwls_batch(b1, &t.table, &batch, &opts, w1, c1, s1) == 0);
  CHECK(b4->irwls_batch(b4, &t.table, &batch, &opts, w4, c4, s4) == 0);
  CHECK(memcmp(w1, w4, sizeof w1) == 0 && memcmp(c1, c4, sizeof c1) == 0 &&
        memcmp(s1, s4, sizeof s1) == 0);
  /* Each fit equals rctd_irwls_fit on S = profiles[, types] * nUMI, and its score. */
  for (int f = 0; f < n_fits; f++) {
    double S[80], S_kg[80], w[2], pred[40], d0[40];
    for (int g = 0; g < G; g++)
      for (int k = 0; k < k_sub; k++)
        S_kg[k * G + g] = S[g * k_sub + k] = profiles[g * K + types[2 * f + k]] * numi[pix[f]];
    int conv = irt_fit(&t.table, G, k_sub, S, y + pix[f] * G, numi[pix[f]], &opts, NULL, w);
    CHECK(conv == c1[f]);
    CHECK(w[0] == w1[2 * f] && w[1] == w1[2 * f + 1]);
    CHECK(s1[f] == rctd_irwls_score_kg(&t.table, G, k_sub, S_kg, y + pix[f] * G, w, pred, d0));
  }
  /* All types (types_fk NULL) equals listing them. */
  int32_t all_types[6 * 3], pix3[3] = {0, 4, 12};
  for (int f = 0; f < 3; f++)
    for (int k = 0; k < K; k++) all_types[f * K + k] = k;
  rctd_fit_batch full_a = {G, K, profiles, n_pix, y, numi, 3, K, pix3, NULL};
  rctd_fit_batch full_b = {G, K, profiles, n_pix, y, numi, 3, K, pix3, all_types};
  double wa[18], wb[18];
  int32_t ca[3], cb[3];
  CHECK(b4->irwls_batch(b4, &t.table, &full_a, &opts, wa, ca, NULL) == 0);
  CHECK(b1->irwls_batch(b1, &t.table, &full_b, &opts, wb, cb, NULL) == 0);
  CHECK(memcmp(wa, wb, sizeof wa) == 0);
  /* Bad batches are refused. */
  int32_t bad_pix[1] = {n_pix};
  rctd_fit_batch bad = {G, K, profiles, n_pix, y, numi, 1, K, bad_pix, NULL};
  CHECK(b1->irwls_batch(b1, &t.table, &bad, &opts, wa, ca, NULL) == -1);
  CHECK(b1->irwls_batch(b1, NULL, &batch, &opts, w1, c1, NULL) == -1); /* table needed */
  b1->destroy(b1);
  b4->destroy(b4);
  irt_table_free(&t);
}

TEST(backend_cpu_qtable_matches_rows) {
  const int n_k = 23;
  double x_vals[RCTD_N_X];
  rctd_x_grid(x_vals);
  double *q1 = malloc(sizeof(double) * RCTD_N_X * n_k),
         *sq1 = malloc(sizeof(double) * RCTD_N_X * n_k);
  double *q3 = malloc(sizeof(double) * RCTD_N_X * n_k),
         *sq3 = malloc(sizeof(double) * RCTD_N_X * n_k);
  CHECK(rctd_qtable_rows(0.84, x_vals, 0, n_k, q1, sq1) == 0);
  rctd_backend *be = rctd_backend_cpu(3);
  int rc = be->qtable(be, 0.84, n_k, q3, sq3);
  be->destroy(be);
  int same = memcmp(q1, q3, sizeof(double) * RCTD_N_X * n_k) == 0 &&
             memcmp(sq1, sq3, sizeof(double) * RCTD_N_X * n_k) == 0;
  free(q1);
  free(sq1);
  free(q3);
  free(sq3);
  CHECK(rc == 0 && same);
}
