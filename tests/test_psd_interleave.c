/* The interleaved paths of the CPU kernels against the one-at-a-time ones, bit for bit:
 * rctd_psd_scaled_many against rctd_psd_scaled, IRWLS runs stepped together against
 * rctd_irwls_fit_kg, and the CPU backend (which steps fits of three or more types together)
 * against rctd_irwls_fit, for any thread count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/irwls.h"
#include "cpu/psd.h"
#include "cpu/spline_fast.h"
#include "rctd_kernels.h"
#include "test.h"

static uint64_t pi_state = 88172645463325252ULL;

static double pi_uniform(void) { /* xorshift64: [0, 1) */
  pi_state ^= pi_state << 13;
  pi_state ^= pi_state >> 7;
  pi_state ^= pi_state << 17;
  return (double)(pi_state >> 11) * 0x1p-53;
}

/* A symmetric k x k matrix of one of several kinds: indefinite, positive definite, of low rank
 * (many eigenvalues under the floor), tiny, huge, zero, with a non-finite entry, or near the
 * ends of the exponent range. */
static void pi_matrix(int k, int kind, double *H) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++) H[i * k + j] = H[j * k + i] = 2 * pi_uniform() - 1;
  if (kind == 1 || kind == 2) { /* B B' (+ a shift): PSD with rank min(k, r) */
    const int r = kind == 1 ? k + 2 : k / 3 + 1;
    double B[40 * 42];
    for (int i = 0; i < k * r; i++) B[i] = 2 * pi_uniform() - 1;
    for (int i = 0; i < k; i++)
      for (int j = 0; j <= i; j++) {
        double sum = 0;
        for (int t = 0; t < r; t++) sum += B[i * r + t] * B[j * r + t];
        H[i * k + j] = H[j * k + i] = sum + (i == j && kind == 1 ? 0.5 : 0);
      }
  }
  const double scale = kind == 3   ? 1e-9
                       : kind == 4 ? 3e7
                       : kind == 5 ? 0
                       : kind == 7 ? 1e-305 /* 2^-expo not normal: the ldexp path */
                       : kind == 8 ? 1e305
                                   : 1;
  for (int i = 0; i < k * k; i++) H[i] *= scale;
  if (kind == 6) H[(k - 1) * k] = NAN; /* lower triangle: read */
}

/* rctd_psd_scaled_many equals rctd_psd_scaled on every matrix, whatever the mix of kinds in
 * one call, and both equal the plain-C path (SIMD off: AVX2/AVX-512 off). */
TEST(psd_many_equals_single) {
  /* 30: the realistic recipe; 31, 32, 33, 40: one and two 32-column groups of the AVX-512 loops */
  static const int ks[] = {1, 2, 3, 4, 5, 8, 9, 17, 19, 24, 25, 30, 31, 32, 33, 40};
  enum { KMAX = 40, NMAX = RCTD_PSD_MANY_MAX };
  const size_t set = (size_t)NMAX * KMAX * KMAX;
  double *H = malloc(sizeof(double) * set), *D = malloc(sizeof(double) * 3 * set);
  void *ws[NMAX];
  for (int t = 0; t < NMAX; t++) ws[t] = malloc(rctd_psd_workspace_bytes(KMAX));
  CHECK(H && D);
  const int had = rctd_cpu_simd(-1);
  int n_checked = 0;
  for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
    const int k = ks[a];
    for (int rep = 0; rep < 18; rep++) {
      const int n_mat = 1 + rep % NMAX;
      const double *Hp[NMAX];
      double *Dp[NMAX], norm[3][NMAX];
      for (int t = 0; t < n_mat; t++) {
        Hp[t] = H + (size_t)t * k * k;
        pi_matrix(k, (rep + 3 * t) % 9, H + (size_t)t * k * k);
      }
      /* D + 0: plain single; D + set: SIMD single; D + 2 set: SIMD many */
      for (int path = 0; path < 3; path++) {
        rctd_cpu_simd(path > 0 && had);
        for (int t = 0; t < n_mat; t++) Dp[t] = D + path * set + (size_t)t * k * k;
        if (path < 2)
          for (int t = 0; t < n_mat; t++) norm[path][t] = rctd_psd_scaled(k, Hp[t], Dp[t], ws[t]);
        else
          rctd_psd_scaled_many(k, n_mat, Hp, Dp, ws, norm[2]);
      }
      for (int path = 1; path < 3; path++)
        for (int t = 0; t < n_mat; t++) {
          CHECK_MSG(memcmp(&norm[0][t], &norm[path][t], sizeof(double)) == 0,
                    "k %d matrix %d path %d: norm %.17g vs %.17g", k, t, path, norm[0][t],
                    norm[path][t]);
          if (norm[0][t] < 0) continue; /* non-finite input: D undefined */
          CHECK_MSG(memcmp(D + (size_t)t * k * k, D + path * set + (size_t)t * k * k,
                           sizeof(double) * k * k) == 0,
                    "k %d matrix %d path %d: D differs", k, t, path);
          n_checked++;
        }
    }
  }
  rctd_cpu_simd(had);
  CHECK(n_checked > 500);
  for (int t = 0; t < NMAX; t++) free(ws[t]);
  free(H);
  free(D);
}

/* A small likelihood table (sigma 0.84, counts 0..n_k-1). */
typedef struct {
  rctd_qtable table;
  double x_vals[RCTD_N_X];
  double *q_kx, *sq_kx;
} pi_table;

static int pi_table_build(pi_table *t, int n_k) {
  rctd_x_grid(t->x_vals);
  t->q_kx = malloc(sizeof(double) * n_k * RCTD_N_X);
  t->sq_kx = malloc(sizeof(double) * n_k * RCTD_N_X);
  if (!t->q_kx || !t->sq_kx) return -1;
  if (rctd_qtable_rows(0.84, t->x_vals, 0, n_k, t->q_kx, t->sq_kx) != 0) return -1;
  t->table = (rctd_qtable){n_k, t->x_vals, t->q_kx, t->sq_kx};
  return 0;
}

static void pi_table_free(pi_table *t) {
  free(t->q_kx);
  free(t->sq_kx);
}

/* Profiles (G x K, some zeros), counts (n_pix x G, below 30) and nUMIs of a random batch. */
static void pi_batch_data(int G, int K, int n_pix, double *profiles_gk, double *y_ng,
                          double *numi_n) {
  for (int i = 0; i < G * K; i++)
    profiles_gk[i] = pi_uniform() < 0.2 ? 0 : 0.02 * pi_uniform() * pi_uniform();
  for (int p = 0; p < n_pix; p++) {
    numi_n[p] = 100 + 900 * pi_uniform();
    for (int g = 0; g < G; g++) y_ng[p * G + g] = pi_uniform() < 0.6 ? 0 : (int)(8 * pi_uniform());
  }
}

/* Fits stepped together (started at different times, of different lengths, in groups of
 * changing size) end where each ends alone. */
TEST(irwls_runs_stepped_together_equal_alone) {
  const int G = 77, n_pix = 11; /* G not a multiple of 4: the Hessian's tails run too */
  static const int ks[] = {3, 4, 6, 19};
  pi_table t;
  CHECK(pi_table_build(&t, 30) == 0);
  const int had = rctd_cpu_simd(-1);
  for (int simd = 0; simd <= 1; simd++) {
    rctd_cpu_simd(simd && had);
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
      const int K = ks[a];
      double *prof = malloc(sizeof(double) * G * K), *y = malloc(sizeof(double) * n_pix * G);
      double *S_kg = malloc(sizeof(double) * n_pix * K * G), numi[11];
      double *w_alone = malloc(sizeof(double) * n_pix * K);
      double *w_group = malloc(sizeof(double) * n_pix * K);
      const size_t ws_bytes = rctd_irwls_kg_workspace_bytes(G, K);
      void *ws[11];
      int conv_alone[11];
      CHECK(prof && y && S_kg && w_alone && w_group);
      pi_batch_data(G, K, n_pix, prof, y, numi);
      for (int p = 0; p < n_pix; p++) {
        ws[p] = malloc(ws_bytes);
        for (int k = 0; k < K; k++)
          for (int g = 0; g < G; g++) S_kg[((size_t)p * K + k) * G + g] = prof[g * K + k] * numi[p];
      }
      /* some fits start from a given point, some stop early (n_iter 3) */
      rctd_irwls_opts opts = {50, 1e-3, 0, 0}, short_opts = {3, 1e-3, 0, 0};
      double init[19];
      for (int k = 0; k < K; k++) init[k] = (k + 1.0) / K;
      for (int p = 0; p < n_pix; p++)
        conv_alone[p] =
            rctd_irwls_fit_kg(&t.table, G, K, S_kg + (size_t)p * K * G, y + (size_t)p * G, numi[p],
                              p % 4 == 3 ? &short_opts : &opts, p % 3 == 1 ? init : NULL,
                              w_alone + (size_t)p * K, ws[p]);
      /* the same fits: fit p starts at step p / 2; up to 8 step together */
      rctd_irwls_run runs[11];
      for (int step = 0, started = 0;; step++) {
        while (started < n_pix && started / 2 <= step) {
          const int p = started++;
          rctd_irwls_run_start(&runs[p], &t.table, G, K, S_kg + (size_t)p * K * G,
                               y + (size_t)p * G, numi[p], p % 4 == 3 ? &short_opts : &opts,
                               p % 3 == 1 ? init : NULL, w_group + (size_t)p * K, ws[p]);
        }
        rctd_irwls_run *live[RCTD_PSD_MANY_MAX];
        int n_live = 0;
        for (int p = 0; p < started && n_live < RCTD_PSD_MANY_MAX; p++)
          if (runs[p].running) live[n_live++] = &runs[p];
        if (n_live == 0 && started == n_pix) break;
        if (n_live) rctd_irwls_run_step(live, n_live);
      }
      for (int p = 0; p < n_pix; p++) {
        CHECK_MSG(runs[p].converged == conv_alone[p], "K %d fit %d: converged %d vs %d", K, p,
                  runs[p].converged, conv_alone[p]);
        CHECK_MSG(memcmp(w_alone + (size_t)p * K, w_group + (size_t)p * K, sizeof(double) * K) == 0,
                  "K %d fit %d (simd %d): weights differ (%.17g vs %.17g)", K, p, simd,
                  w_alone[(size_t)p * K], w_group[(size_t)p * K]);
      }
      for (int p = 0; p < n_pix; p++) free(ws[p]);
      free(prof);
      free(y);
      free(S_kg);
      free(w_alone);
      free(w_group);
    }
  }
  rctd_cpu_simd(had);
  pi_table_free(&t);
}

/* The CPU backend (fits of three or more types stepped together by each worker) gives every
 * fit rctd_irwls_fit's weights, flag and score, for 1, 2 or 5 threads; also with no step due. */
TEST(backend_cpu_interleaved_fits_equal_alone) {
  const int G = 61, K = 9, n_pix = 14, n_fits = 37, k_sub = 5;
  double prof[61 * 9], y[14 * 61], numi[14];
  pi_batch_data(G, K, n_pix, prof, y, numi);
  pi_table t;
  CHECK(pi_table_build(&t, 30) == 0);
  int32_t pix[37], types[37 * 5];
  for (int f = 0; f < n_fits; f++) {
    pix[f] = (f * 3) % n_pix;
    for (int k = 0; k < k_sub; k++) types[f * k_sub + k] = (f + 2 * k) % K;
  }
  rctd_fit_batch sub = {G, K, prof, n_pix, y, numi, n_fits, k_sub, pix, types};
  rctd_fit_batch all = {G, K, prof, n_pix, y, numi, n_fits, K, pix, NULL};
  static const int n_iters[] = {50, 0};
  for (int b = 0; b < 2; b++) {
    for (int it = 0; it < 2; it++) {
      const rctd_fit_batch *batch = b ? &all : &sub;
      const int ks = batch->k_sub;
      rctd_irwls_opts opts = {n_iters[it], 1e-3, 0, 0};
      double w[3][37 * 9], score[3][37];
      int32_t conv[3][37];
      static const int threads[] = {1, 2, 5};
      for (int r = 0; r < 3; r++) {
        rctd_backend *be = rctd_backend_cpu(threads[r]);
        CHECK(be->irwls_batch(be, &t.table, batch, &opts, w[r], conv[r], score[r]) == 0);
        be->destroy(be);
      }
      for (int r = 1; r < 3; r++)
        CHECK(memcmp(w[0], w[r], sizeof(double) * n_fits * ks) == 0 &&
              memcmp(conv[0], conv[r], sizeof(int32_t) * n_fits) == 0 &&
              memcmp(score[0], score[r], sizeof(double) * n_fits) == 0);
      void *ws = malloc(rctd_irwls_workspace_bytes(G, ks));
      double S[61 * 9], S_kg[61 * 9], wf[9], pred[61], d0[61];
      for (int f = 0; f < n_fits; f++) {
        for (int g = 0; g < G; g++)
          for (int k = 0; k < ks; k++) {
            const int type = b ? k : types[f * k_sub + k];
            S_kg[k * G + g] = S[g * ks + k] = prof[g * K + type] * numi[pix[f]];
          }
        int c =
            rctd_irwls_fit(&t.table, G, ks, S, y + pix[f] * G, numi[pix[f]], &opts, NULL, wf, ws);
        CHECK_MSG(c == conv[0][f] && memcmp(wf, w[0] + (size_t)f * ks, sizeof(double) * ks) == 0,
                  "k %d n_iter %d fit %d: backend and rctd_irwls_fit differ", ks, n_iters[it], f);
        CHECK(score[0][f] ==
              rctd_irwls_score_kg(&t.table, G, ks, S_kg, y + pix[f] * G, wf, pred, d0));
      }
      free(ws);
    }
  }
  pi_table_free(&t);
}
