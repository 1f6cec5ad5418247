/* kernels/cpu/irwls_small: the fused step and score of fits of one to four types against the
 * generic path bit for bit: the gradient and Hessian against irwls.c's definition (four lanes,
 * gene g in lane g mod 4, the tail in lane 0, (l0 + l1) + (l2 + l3)), whole fits step by step
 * and scores with the fused path on and off (SIMD on and off), over gene counts that are not
 * multiples of 8 or 4, predictions under the floor and past the table's end, negative and NaN
 * weights, and counts without a table row (the exact path). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/irwls.h"
#include "cpu/irwls_small.h"
#include "cpu/spline_fast.h"
#include "rctd_kernels.h"
#include "test.h"

static uint64_t is_state = 0x9e3779b97f4a7c15ULL;

static double is_uniform(void) { /* xorshift64: [0, 1) */
  is_state ^= is_state << 13;
  is_state ^= is_state >> 7;
  is_state ^= is_state << 17;
  return (double)(is_state >> 11) * 0x1p-53;
}

enum { IS_N_K = 40 }; /* table rows: counts 40 and up take the exact path */
enum { KM = RCTD_IRWLS_SMALL_K_MAX };

typedef struct {
  rctd_qtable table;
  double x_vals[RCTD_N_X];
  double *q_kx, *sq_kx, *coef;
} is_table;

static int is_table_build(is_table *t) {
  rctd_x_grid(t->x_vals);
  t->q_kx = malloc(sizeof(double) * IS_N_K * RCTD_N_X);
  t->sq_kx = malloc(sizeof(double) * IS_N_K * RCTD_N_X);
  t->coef = malloc(sizeof(double) * rctd_spline_coef_doubles(IS_N_K));
  if (!t->q_kx || !t->sq_kx || !t->coef) return -1;
  if (rctd_qtable_rows(0.84, t->x_vals, 0, IS_N_K, t->q_kx, t->sq_kx) != 0) return -1;
  t->table = (rctd_qtable){IS_N_K, t->x_vals, t->q_kx, t->sq_kx};
  rctd_spline_coef_build(&t->table, t->coef);
  return rctd_spline_coef_attach(&t->table, t->coef);
}

static void is_table_free(is_table *t) {
  rctd_spline_coef_detach(&t->table);
  free(t->q_kx);
  free(t->sq_kx);
  free(t->coef);
}

/* A design (K x G, some zeros, nUMI-scaled), counts (mostly 0 and 1, a few past the table's
 * rows and past K_VAL) of one case; kind 1 adds a NaN count, kind 2 huge design values (the
 * prediction past the grid's end). */
static void is_data(int G, int K, int kind, double *S_kg, double *y_g) {
  const double numi = 50 + 2000 * is_uniform();
  for (int i = 0; i < K * G; i++)
    S_kg[i] = is_uniform() < 0.15 ? 0 : numi * 0.003 * is_uniform() * is_uniform();
  for (int g = 0; g < G; g++) {
    const double u = is_uniform();
    y_g[g] = u < 0.6    ? 0
             : u < 0.8  ? 1
             : u < 0.97 ? (int)(30 * is_uniform())
                        : (int)(1500 * is_uniform());
  }
  if (kind == 1) y_g[G / 2] = NAN;
  if (kind == 2)
    for (int g = 0; g < G; g += 3) S_kg[g] = 1e5 * (1 + is_uniform());
}

/* Counts of the table's rows only (the fused path's precondition, rctd_spline_fast_rows): the
 * NaN and those past the last row become 0 and IS_N_K - 1. */
static void is_clip_to_table(int G, double *y_g) {
  for (int g = 0; g < G; g++) y_g[g] = isnan(y_g[g]) ? 0 : y_g[g] >= IS_N_K ? IS_N_K - 1 : y_g[g];
}

/* irwls.c's gradient and Hessian (lower triangle) by its definition, scalar. */
static void is_reference(const rctd_qtable *table, int G, int K, const double *S_kg,
                         const double *y_g, const double *s_k, double floor_pred, double *dvec_k,
                         double *hess_kk) {
  double *pred = malloc(sizeof(double) * G), *d1 = malloc(sizeof(double) * G),
         *d2 = malloc(sizeof(double) * G);
  for (int g = 0; g < G; g++) {
    double p = 0;
    for (int k = 0; k < K; k++) p += S_kg[(size_t)k * G + g] * s_k[k];
    p = fabs(p);
    pred[g] = p < floor_pred ? floor_pred : p;
  }
  rctd_spline_eval_fast(table, G, y_g, pred, NULL, d1, d2);
  const int g4 = G / 4 * 4;
  for (int i = 0; i < K; i++) {
    const double *si = S_kg + (size_t)i * G;
    double l[4] = {0, 0, 0, 0};
    for (int g = 0; g < G; g++) l[g < g4 ? g % 4 : 0] += d1[g] * si[g];
    dvec_k[i] = (l[0] + l[1]) + (l[2] + l[3]);
    for (int j = 0; j <= i; j++) {
      const double *sj = S_kg + (size_t)j * G;
      double h[4] = {0, 0, 0, 0};
      for (int g = 0; g < G; g++) h[g < g4 ? g % 4 : 0] += (-d2[g] * si[g]) * sj[g];
      hess_kk[i * K + j] = (h[0] + h[1]) + (h[2] + h[3]);
    }
  }
  free(pred);
  free(d1);
  free(d2);
}

static int is_same(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

static const int is_genes[] = {1,  2,  3,  4,  5,  7,  8,  9,   11,  12,
                               13, 15, 16, 17, 23, 31, 64, 101, 1731};
#define IS_N_GENES (int)(sizeof is_genes / sizeof is_genes[0])

/* The fused gradient and Hessian equal the definition, whatever G and the weights. */
TEST(irwls_small_grad_hess_equals_definition) {
  is_table t;
  CHECK(is_table_build(&t) == 0);
  const int fused = __builtin_cpu_supports("avx512f") && rctd_cpu_simd(-1);
  const int Gmax = 1731;
  double *S = malloc(sizeof(double) * KM * Gmax), *y = malloc(sizeof(double) * Gmax);
  int64_t *rows = malloc(sizeof(int64_t) * Gmax);
  CHECK(S && y && rows);
  int n_checked = 0;
  for (int a = 0; a < IS_N_GENES; a++)
    for (int K = 1; K <= KM; K++)
      for (int rep = 0; rep < 12; rep++) {
        const int G = is_genes[a], in_table = rep % 2 == 0;
        is_data(G, K, rep % 3, S, y);
        for (int g = 0; g < G; g++)
          if (y[g] > RCTD_K_VAL) y[g] = RCTD_K_VAL; /* as rctd_irwls_run_start clips */
        if (in_table) is_clip_to_table(G, y);
        const int rows_ok = rctd_spline_fast_rows(&t.table, G, y, rows);
        CHECK(rows_ok || !in_table);
        /* weights: ordinary, zero (all under the floor), tiny, large, one negative */
        double s_k[KM];
        for (int k = 0; k < KM; k++) {
          s_k[k] = is_uniform();
          if (rep % 6 == 3) s_k[k] = 0;
          if (rep % 6 == 4) s_k[k] *= 1e-9;
        }
        if (rep % 6 == 5) s_k[0] *= 1e4;
        const double floor_pred = rep % 2 ? 1e-4 : 3e-4;
        double dv[KM], hs[KM * KM], dv_ref[KM], hs_ref[KM * KM];
        const int done = rctd_irwls_small_grad_hess(&t.table, G, K, S, y, rows_ok ? rows : NULL,
                                                    s_k, floor_pred, dv, hs);
        CHECK_MSG(done == (fused && rows_ok), "G %d K %d: fused path %s", G, K,
                  done ? "taken" : "not taken");
        if (!done) continue;
        is_reference(&t.table, G, K, S, y, s_k, floor_pred, dv_ref, hs_ref);
        for (int i = 0; i < K; i++) {
          CHECK_MSG(is_same(dv[i], dv_ref[i]), "G %d K %d rep %d: d[%d] %.17g vs %.17g", G, K, rep,
                    i, dv[i], dv_ref[i]);
          for (int j = 0; j <= i; j++)
            CHECK_MSG(is_same(hs[i * K + j], hs_ref[i * K + j]),
                      "G %d K %d rep %d: H[%d][%d] %.17g vs %.17g", G, K, rep, i, j, hs[i * K + j],
                      hs_ref[i * K + j]);
        }
        n_checked++;
      }
  CHECK(!fused || n_checked >= IS_N_GENES * KM * 6);
  free(S);
  free(y);
  free(rows);
  is_table_free(&t);
}

/* Runs one fit step by step with the current paths; weights after each step in w_sk. */
static int is_fit_steps(const rctd_qtable *table, int G, int K, const double *S, const double *y,
                        double numi, const rctd_irwls_opts *opts, const double *init_k, void *ws,
                        double *w_sk, int *n_steps) {
  rctd_irwls_run run;
  double w[KM];
  rctd_irwls_run_start(&run, table, G, K, S, y, numi, opts, init_k, w, ws);
  rctd_irwls_run *one = &run;
  *n_steps = 0;
  while (run.running) {
    rctd_irwls_run_step(&one, 1);
    memcpy(w_sk + (size_t)*n_steps * K, w, sizeof(double) * K);
    ++*n_steps;
  }
  return run.converged;
}

/* Whole fits (step by step) and their scores: fused path, generic SIMD path, plain C path. */
TEST(irwls_small_fits_and_scores_equal_generic) {
  is_table t;
  CHECK(is_table_build(&t) == 0);
  const int Gmax = 1731, n_iter = 50;
  double *S = malloc(sizeof(double) * KM * Gmax), *y = malloc(sizeof(double) * Gmax);
  double *pred = malloc(sizeof(double) * Gmax), *d0 = malloc(sizeof(double) * Gmax);
  double *w_psk = malloc(sizeof(double) * 3 * n_iter * KM);
  void *ws = malloc(rctd_irwls_kg_workspace_bytes(Gmax, KM));
  CHECK(S && y && pred && d0 && w_psk && ws);
  const int had_simd = rctd_cpu_simd(-1), had_small = rctd_irwls_small_enable(-1);
  int n_fits = 0, n_steps_total = 0;
  for (int a = 0; a < IS_N_GENES; a++)
    for (int K = 1; K <= KM; K++)
      for (int rep = 0; rep < 4; rep++) {
        const int G = is_genes[a];
        is_data(G, K, rep == 3 ? 2 : 0, S, y);
        if (rep % 2 == 0) is_clip_to_table(G, y); /* the fused path applies */
        const double numi = rep == 1 ? 5e3 : 300;
        const rctd_irwls_opts opts = {n_iter, 1e-3, rep == 2, 0};
        double init[KM] = {0.55, 0.3, 0.1, 0.05};
        int conv[3], steps[3];
        double score[3][4];
        /* weights for the scores: the fit's, one negative (lambda under the clamp), a NaN */
        for (int path = 0; path < 3; path++) {
          rctd_irwls_small_enable(path == 0);
          rctd_cpu_simd(path < 2 && had_simd);
          conv[path] = is_fit_steps(&t.table, G, K, S, y, numi, &opts, rep ? init : NULL, ws,
                                    w_psk + (size_t)path * n_iter * KM, &steps[path]);
          const double *w_end = w_psk + (size_t)path * n_iter * KM + (size_t)(steps[path] - 1) * K;
          const double w_neg[KM] = {-0.5, 0.25, 0.1, -0.1}, w_nan[KM] = {NAN, 1, 1, 1},
                       w_big[KM] = {3e4, 2e4, 1e4, 5e3};
          const double *wsc[4] = {steps[path] ? w_end : init, w_neg, w_nan, w_big};
          for (int s = 0; s < 4; s++)
            score[path][s] = rctd_irwls_score_kg(&t.table, G, K, S, y, wsc[s], pred, d0);
        }
        rctd_cpu_simd(had_simd); /* before any CHECK returns */
        rctd_irwls_small_enable(had_small);
        for (int path = 1; path < 3; path++) {
          CHECK_MSG(conv[path] == conv[0] && steps[path] == steps[0],
                    "G %d K %d rep %d path %d: %d steps (conv %d) vs %d (%d)", G, K, rep, path,
                    steps[path], conv[path], steps[0], conv[0]);
          for (int e = 0; e < steps[0] * K; e++)
            CHECK_MSG(is_same(w_psk[e], w_psk[(size_t)path * n_iter * KM + e]),
                      "G %d K %d rep %d path %d: step %d weight %d differs", G, K, rep, path, e / K,
                      e % K);
          for (int s = 0; s < 4; s++)
            CHECK_MSG(is_same(score[0][s], score[path][s]),
                      "G %d K %d rep %d path %d: score %d %.17g vs %.17g", G, K, rep, path, s,
                      score[0][s], score[path][s]);
        }
        n_fits++;
        n_steps_total += steps[0];
      }
  CHECK(n_fits == IS_N_GENES * KM * 4 && n_steps_total > 5 * n_fits);
  free(S);
  free(y);
  free(pred);
  free(d0);
  free(w_psk);
  free(ws);
  is_table_free(&t);
}

/* Without attached coefficients, with SIMD off, without rows or with a NaN prediction, the fused
 * path declines and writes nothing; counts without a table row have no rows. */
TEST(irwls_small_declines_without_fast_path) {
  is_table t;
  CHECK(is_table_build(&t) == 0);
  enum { G = 41 };
  double S[2 * G], y[G], s_k[2] = {0.5, 0.5}, dv[2] = {7, 7}, hs[4] = {7, 7, 7, 7};
  int64_t rows[G];
  is_data(G, 2, 0, S, y);
  is_clip_to_table(G, y);
  CHECK(rctd_spline_fast_rows(&t.table, G, y, rows) == 1);
  const int had = rctd_cpu_simd(-1);
  rctd_cpu_simd(0);
  CHECK(rctd_irwls_small_grad_hess(&t.table, G, 2, S, y, rows, s_k, 1e-4, dv, hs) == 0);
  rctd_cpu_simd(had);
  CHECK(rctd_irwls_small_grad_hess(&t.table, G, RCTD_IRWLS_SMALL_K_MAX + 1, S, y, rows, s_k, 1e-4,
                                   dv, hs) == 0);
  CHECK(rctd_irwls_small_grad_hess(&t.table, G, 2, S, y, NULL, s_k, 1e-4, dv, hs) == 0);
  /* a NaN prediction (in the first, a middle and the last block of eight) */
  const int nan_at[3] = {0, 17, 39};
  for (int i = 0; i < 3; i++) {
    const double keep = S[nan_at[i]];
    S[nan_at[i]] = NAN;
    CHECK(rctd_irwls_small_grad_hess(&t.table, G, 2, S, y, rows, s_k, 1e-4, dv, hs) == 0);
    S[nan_at[i]] = keep;
  }
  y[5] = IS_N_K; /* a count without a table row */
  CHECK(rctd_spline_fast_rows(&t.table, G, y, rows) == 0);
  y[5] = -1;
  CHECK(rctd_spline_fast_rows(&t.table, G, y, rows) == 0);
  rctd_spline_coef_detach(&t.table);
  CHECK(rctd_irwls_small_grad_hess(&t.table, G, 2, S, y, rows, s_k, 1e-4, dv, hs) == 0);
  CHECK(dv[0] == 7 && dv[1] == 7 && hs[0] == 7 && hs[3] == 7);
  is_table_free(&t);
}

/* The intervals from spline_fast_avx512.h's buckets (the lanes of this path, of
 * rctd_spline_eval_fast and of chooseSigma's scores) equal sf_pair's
 * m_of_l[(int)sqrt(lambda / 1e-6)] at every l's
 * first lambda and its neighbours, at every bucket's ends, at the clamps and at random
 * lambdas. */
TEST(spline_fast_intervals_equal_exact) {
  if (!__builtin_cpu_supports("avx512f")) return;
  const unsigned short *m_of_l = rctd_spline_fast_m_of_l();
  const double lo = 1e-4, hi = 1600 - 1e-4;
  const int n_max = 40000 * 6 + 2 * 26 * 256 * 2 + 20000;
  double *lam = malloc(sizeof(double) * n_max);
  int *m = malloc(sizeof(int) * n_max), n = 0;
  CHECK(lam && m);
  for (int l = 1; l < 40000; l++) {
    double v = (double)l * l * 1e-6;
    const double around[6] = {v,
                              nextafter(v, 0),
                              nextafter(v, 2e3),
                              nextafter(nextafter(v, 0), 0),
                              nextafter(nextafter(v, 2e3), 2e3),
                              v * (1 + 1e-12)};
    for (int a = 0; a < 6; a++)
      if (around[a] >= lo && around[a] <= hi) lam[n++] = around[a];
  }
  for (int e = -14; e <= 11; e++)
    for (int f = 0; f < 256; f++) { /* bucket ends: 8 mantissa bits */
      const double start = ldexp(1 + f / 256.0, e);
      const double end = nextafter(start, 0);
      if (start >= lo && start <= hi) lam[n++] = start;
      if (end >= lo && end <= hi) lam[n++] = end;
    }
  lam[n++] = lo;
  lam[n++] = hi;
  while (n < n_max) lam[n++] = exp(log(lo) + is_uniform() * (log(hi) - log(lo)));
  CHECK(rctd_spline_fast_intervals(n, lam, m) == 0);
  for (int i = 0; i < n; i++)
    CHECK_MSG(m[i] == m_of_l[(int)sqrt(lam[i] / 1e-6)], "lambda %a: m %d vs %d", lam[i], m[i],
              m_of_l[(int)sqrt(lam[i] / 1e-6)]);
  free(lam);
  free(m);
}

/* rctd_spline_fast_rows (eight at a time where the CPU has AVX-512 and the AVX-512 lanes are
 * on, the rest one by one; then with the lanes off and with SIMD off, the scalar loop alone):
 * each count's row offset, and whether every count has a row, at lengths around multiples of
 * 8. */
TEST(spline_fast_rows_equal_definition) {
  is_table t;
  CHECK(is_table_build(&t) == 0);
  enum { N = 37 };
  double y[N];
  int64_t rows[N];
  const int had_simd = rctd_cpu_simd(-1), had_avx512 = rctd_cpu_avx512(-1);
  for (int path = 0; path < 3; path++) { /* all on, AVX-512 off, SIMD off */
    rctd_cpu_simd(path < 2);
    rctd_cpu_avx512(path < 1);
    for (int n = 0; n <= N; n++)
      for (int bad = -1; bad < n; bad++) { /* bad: the count made off the table, or none */
        for (int i = 0; i < n; i++) y[i] = (double)(int)(IS_N_K * is_uniform());
        if (bad >= 0) y[bad] = bad % 3 == 0 ? IS_N_K : bad % 3 == 1 ? -1 : NAN;
        const int ok = rctd_spline_fast_rows(&t.table, n, y, rows);
        CHECK_MSG(ok == (bad < 0), "path %d n %d bad %d: ok %d", path, n, bad, ok);
        for (int i = 0; ok && i < n; i++)
          CHECK_MSG(rows[i] == ((int64_t)y[i] * (RCTD_N_X - 1) - 1) * 4,
                    "path %d n %d: row %d of %g", path, n, i, y[i]);
      }
  }
  rctd_cpu_simd(had_simd);
  rctd_cpu_avx512(had_avx512);
  is_table_free(&t);
}
