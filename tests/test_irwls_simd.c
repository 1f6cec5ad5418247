/* The SIMD kernels of an IRWLS step (prediction, gradient, Hessian: AVX2 / AVX-512 as this CPU
 * has them) against the portable C path, bit for bit, on random designs of every shape the
 * kernels split differently: gene counts around multiples of 4, 8 and 32 (the tails), type
 * counts 1..50 (the tiles' row pairs and column blocks, an odd last row). */
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

TEST(irwls_step_kernels_simd_equal_portable) {
  static const int gs[] = {1, 3, 4, 5, 7, 8, 9, 31, 32, 33, 39, 63, 64, 65, 100, 387, 1731};
  enum { KMAX = 50, GMAX = 1731 };
  double *S = malloc(sizeof(double) * GMAX * KMAX), w[KMAX], d1[GMAX], d2[GMAX];
  double *pred[2], *dvec[2], *hess[2];
  for (int v = 0; v < 2; v++) {
    pred[v] = malloc(sizeof(double) * GMAX);
    dvec[v] = malloc(sizeof(double) * KMAX);
    hess[v] = malloc(sizeof(double) * KMAX * KMAX);
  }
  void *ws = malloc(rctd_irwls_kg_workspace_bytes(GMAX, KMAX));
  CHECK(S && ws);
  const int had = rctd_cpu_simd(-1);
  int n_cases = 0, n_bad = 0;
  for (size_t a = 0; a < sizeof gs / sizeof gs[0]; a++)
    for (int K = 1; K <= KMAX; K += (gs[a] > 400 && K >= 4 ? 3 : 1)) {
      const int G = gs[a];
      is_fill(G, K, S, w, d1, d2);
      for (int v = 0; v < 2; v++) {
        memset(hess[v], 0, sizeof(double) * K * K);
        rctd_cpu_simd(v == 1 && had);
        /* the workspace sized for the largest shape serves any smaller one */
        rctd_irwls_step_parts(G, K, S, w, d1, d2, pred[v], dvec[v], hess[v], ws);
      }
      rctd_cpu_simd(had);
      const int bad = memcmp(pred[0], pred[1], sizeof(double) * G) != 0 ||
                      memcmp(dvec[0], dvec[1], sizeof(double) * K) != 0 ||
                      memcmp(hess[0], hess[1], sizeof(double) * K * K) != 0;
      if (bad && n_bad++ < 5) fprintf(stderr, "  G = %d, K = %d: SIMD differs\n", G, K);
      n_cases++;
    }
  rctd_cpu_simd(had);
  CHECK_MSG(n_bad == 0, "%d of %d shapes differ", n_bad, n_cases);
  /* the values are real sums (not all zero or non-finite) */
  CHECK(isfinite(hess[1][0]) && hess[1][0] > 0 && isfinite(pred[1][0]));
  for (int v = 0; v < 2; v++) {
    free(pred[v]);
    free(dvec[v]);
    free(hess[v]);
  }
  free(S);
  free(ws);
}
