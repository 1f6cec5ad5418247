/* The SIMD kernels of an IRWLS step (prediction, gradient, Hessian: AVX2, and AVX-512 where this
 * CPU has it) against the portable C path, bit for bit, on random designs of every shape the
 * kernels split differently: gene counts around multiples of 4, 8 and 32 (the tails), type
 * counts 1..50 (the tiles' row pairs and column blocks, an odd last row).  The gradient and
 * Hessian of fits of five or more types (fused multiply-adds on every path) also equal their
 * arithmetic written out here with fma(), bit for bit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/irwls.h"
#include "cpu/spline_fast.h"
#include "test.h"

static uint64_t is_state = 0x9E3779B97F4A7C15ULL;

static double is_uniform(void) { /* xorshift64: [0, 1) */
  is_state ^= is_state << 13;
  is_state ^= is_state >> 7;
  is_state ^= is_state << 17;
  return (double)(is_state >> 11) * 0x1p-53;
}

/* S with zeros and values over six decades (as profiles x nUMI), weights with zeros, d1 of both
 * signs, d2 negative (as the likelihood's). */
static void is_fill(int G, int K, double *S_kg, double *w_k, double *d1_g, double *d2_g) {
  for (int i = 0; i < G * K; i++) S_kg[i] = is_uniform() < 0.3 ? 0 : exp(14 * is_uniform() - 12);
  for (int k = 0; k < K; k++) w_k[k] = is_uniform() < 0.2 ? 0 : is_uniform();
  for (int g = 0; g < G; g++) {
    d1_g[g] = 4 * is_uniform() - 3;
    d2_g[g] = -exp(8 * is_uniform() - 6);
  }
}

/* sum_g (c_g a_g) b_g (a_g b_g when c is NULL) as the fused kernels form it: lanes g mod 4 of
 * fma(term's first factor, b_g, lane) over the full blocks of four, the genes past them into
 * lane 0 as a product and a sum, then (l0 + l1) + (l2 + l3). */
static double is_fused_dot(int G, const double *c, const double *a, const double *b) {
  double l[4] = {0, 0, 0, 0};
  const int g_tail = G / 4 * 4;
  for (int g = 0; g < G; g++) {
    const double u = c ? c[g] * a[g] : a[g];
    if (g < g_tail)
      l[g % 4] = fma(u, b[g], l[g % 4]);
    else
      l[0] += u * b[g];
  }
  return (l[0] + l[1]) + (l[2] + l[3]);
}

/* The gradient and Hessian of a fused fit against is_fused_dot's bits.  Returns the number of
 * entries that differ. */
static int is_check_fused(int G, int K, const double *S, const double *d1, const double *d2,
                          const double *dvec, const double *hess) {
  double c[1731];
  int bad = 0;
  for (int g = 0; g < G; g++) c[g] = -d2[g];
  for (int i = 0; i < K; i++) {
    const double *si = S + (size_t)i * G;
    double want = is_fused_dot(G, NULL, d1, si);
    bad += memcmp(&want, &dvec[i], sizeof want) != 0;
    for (int j = 0; j <= i; j++) {
      want = is_fused_dot(G, c, si, S + (size_t)j * G);
      bad += memcmp(&want, &hess[i * K + j], sizeof want) != 0;
    }
  }
  return bad;
}

TEST(irwls_step_kernels_simd_equal_portable) {
  static const int gs[] = {1, 3, 4, 5, 7, 8, 9, 31, 32, 33, 39, 63, 64, 65, 100, 387, 1731};
  enum { KMAX = 50, GMAX = 1731, NV = 3 };
  double *S = malloc(sizeof(double) * GMAX * KMAX), w[KMAX], d1[GMAX], d2[GMAX];
  double *pred[NV], *dvec[NV], *hess[NV];
  for (int v = 0; v < NV; v++) {
    pred[v] = malloc(sizeof(double) * GMAX);
    dvec[v] = malloc(sizeof(double) * KMAX);
    hess[v] = malloc(sizeof(double) * KMAX * KMAX);
  }
  void *ws = malloc(rctd_irwls_kg_workspace_bytes(GMAX, KMAX));
  CHECK(S && ws);
  const int had = rctd_cpu_simd(-1), had512 = rctd_irwls_avx512(-1);
  int n_cases = 0, n_bad = 0, n_fused = 0;
  for (size_t a = 0; a < sizeof gs / sizeof gs[0]; a++)
    for (int K = 1; K <= KMAX; K += (gs[a] > 400 && K >= 4 ? 3 : 1)) {
      const int G = gs[a];
      is_fill(G, K, S, w, d1, d2);
      int fused = 0;
      /* v = 0: portable; 1: AVX2 (AVX-512 off); 2: the default (AVX-512 where the CPU has it) */
      for (int v = 0; v < NV; v++) {
        memset(hess[v], 0, sizeof(double) * K * K);
        rctd_cpu_simd(v >= 1 && had);
        rctd_irwls_avx512(v == 2 && had512);
        /* the workspace sized for the largest shape serves any smaller one */
        fused = rctd_irwls_step_parts(G, K, S, w, d1, d2, pred[v], dvec[v], hess[v], ws);
      }
      rctd_cpu_simd(had);
      rctd_irwls_avx512(had512);
      n_fused += fused;
      int bad = fused && is_check_fused(G, K, S, d1, d2, dvec[0], hess[0]) != 0;
      for (int v = 1; v < NV; v++)
        bad |= memcmp(pred[0], pred[v], sizeof(double) * G) != 0 ||
               memcmp(dvec[0], dvec[v], sizeof(double) * K) != 0 ||
               memcmp(hess[0], hess[v], sizeof(double) * K * K) != 0;
      if (bad && n_bad++ < 5) fprintf(stderr, "  G = %d, K = %d: a path differs\n", G, K);
      n_cases++;
    }
  CHECK_MSG(n_bad == 0, "%d of %d shapes differ", n_bad, n_cases);
  printf("  %d shapes (%d fused), AVX2 %s, AVX-512 %s\n", n_cases, n_fused, had ? "on" : "off",
         had && had512 ? "on" : "off");
  /* the values are real sums (not all zero or non-finite) */
  CHECK(isfinite(hess[NV - 1][0]) && hess[NV - 1][0] > 0 && isfinite(pred[NV - 1][0]));
  for (int v = 0; v < NV; v++) {
    free(pred[v]);
    free(dvec[v]);
    free(hess[v]);
  }
  free(S);
  free(ws);
}
