/* spacexr's solveIRWLS.weights / solveWLS, step by step, on one pixel:
 *   s = max(w, 0); pred = |S s| floored at max(1e-4, nUMI 1e-7);
 *   d1, d2 = derivatives of log P(y | pred) (spline of the table, or bulk mode's Gaussian on logs);
 *   d = d1 S, H = S' diag(-d2) S; D = psd(H) / norm(psd(H), "2"), d /= that norm; D += 1e-7 I;
 *   x = argmin 1/2 x'Dx - d'x  s.t. x >= -s  [and sum(x) = 1 - sum(s) when constrained];
 *   w = s + 0.3 x; change = sum |w_new - w|; stop when change <= MIN_CHANGE or after n_iter steps.
 * The design is kept transposed (S_kg) so every loop over genes is a unit-stride loop. */
#include "cpu/irwls.h"

#include <math.h>
#include <string.h>

#include "common/irwls_step.h"
#include "cpu/irwls_small.h"
#include "cpu/psd.h"
#include "cpu/spline_fast.h"

#define IRWLS_ALPHA RK_IRWLS_ALPHA /* kernels/common/irwls_step.h (shared with CUDA) */
#define IRWLS_RIDGE RK_IRWLS_RIDGE

/* The AVX-512 gradient and Hessian (fits of five or more types) work on S in row pairs (built
 * once per fit).  A Hessian tile is up to three row pairs by eight columns: 24 accumulators of
 * eight lanes (two rows x the four lanes g mod 4 of irwls_dot), the three pairs' weighted values,
 * c and one column fill 30 of the 32 zmm registers; per block of four genes, 12 loads (from L2:
 * S is 415 KB at G = 1,731, K = 30) for 27 arithmetic instructions.  (Blocking over genes to
 * keep S in L1 was measured slower: the loads are not the limit.)  Their lanes accumulate with
 * fused multiply-adds (1.5x faster than a multiply and an add), as every path does for fits of
 * IRWLS_FUSED_K_MIN or more types: same bits on every CPU. */
#define IRWLS_TILE_PAIRS 3
#define IRWLS_TILE_COLS 8
#define IRWLS_GRAD_PAIRS 8 /* row pairs per pass of the gradient */
#define IRWLS_TAIL 4       /* room for the genes past the last block of four */

/* Row pairs [p, p + n_pairs) by columns [j0, j0 + n_cols). */
typedef struct {
  int p, n_pairs, j0, n_cols;
} irwls_tile;

/* The tiles of the lower triangle of a K x K Hessian (into list unless NULL); their count, and
 * their accumulator doubles in *acc_doubles.  Row blocks of up to IRWLS_TILE_PAIRS row pairs:
 * all of a block's pairs by the columns left of its second pair (so the first pair's 2 x 2
 * diagonal block too), then the block's other pairs by the columns from there to the block's
 * end.  Wasted: the upper entries of the diagonal, those of the second pair by the third's
 * columns, and the copy of an odd last row.  (Tiles of fewer than eight accumulators wait on
 * their adds' latency: finer tiles of the diagonal blocks were measured slower.) */
static size_t irwls_hess_tiles_of(int n_types, irwls_tile *list, size_t *acc_doubles) {
  const int K = n_types, n_pairs = (K + 1) / 2;
  size_t n = 0, acc = 0;
  for (int p0 = 0; p0 < n_pairs; p0 += IRWLS_TILE_PAIRS) {
    const int np = n_pairs - p0 < IRWLS_TILE_PAIRS ? n_pairs - p0 : IRWLS_TILE_PAIRS;
    const int j_mid = 2 * p0 + 2 < K ? 2 * p0 + 2 : K,
              j_end = 2 * (p0 + np) < K ? 2 * (p0 + np) : K;
    for (int s = 0; s < 2; s++) {
      const int j_begin = s == 0 ? 0 : j_mid, j_stop = s == 0 ? j_mid : j_end;
      for (int j0 = j_begin; j0 < j_stop; j0 += IRWLS_TILE_COLS, n++) {
        const int nc = j_stop - j0 < IRWLS_TILE_COLS ? j_stop - j0 : IRWLS_TILE_COLS;
        if (list) list[n] = (irwls_tile){p0 + s, np - s, j0, nc};
        acc += (size_t)(np - s) * nc * 8;
      }
    }
  }
  if (acc_doubles) *acc_doubles = acc + (size_t)n_pairs * 8; /* + the gradient's */
  return n;
}

typedef struct {
  double *y_g, *pred_g, *d0_g, *d1_g, *d2_g;
  double *hess_kk, *D_kk, *dvec_k, *lower_k, *x_k, *s_k;
  /* the AVX-512 gradient and Hessian: S_kg in row pairs and its genes past the last block of
   * four (K x IRWLS_TAIL), built by the first step of a fit (spair_ready), the tiles and their
   * accumulators (irwls_hess_tiles_of) */
  double *spair, *stail;
  int *spair_ready;
  irwls_tile *hess_tiles;
  double *hess_acc;
  void *psd_ws, *qp_ws;
  /* fits of up to RCTD_IRWLS_SMALL_K_MAX types: the counts' coefficient rows, set by
   * rctd_irwls_run_start (rows_ok: rctd_spline_fast_rows returned 1) */
  int64_t *rows_g;
  int *rows_ok;
} irwls_ws;

static size_t irwls_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

/* Bytes of the AVX-512 Hessian's workspace after spair. */
static size_t irwls_hess_bytes(int n_types) {
  size_t k = (size_t)(n_types > 0 ? n_types : 1), acc_doubles;
  size_t n_tiles = irwls_hess_tiles_of(n_types, NULL, &acc_doubles);
  return irwls_align(k * IRWLS_TAIL * sizeof(double)) + irwls_align(sizeof(int)) +
         irwls_align(n_tiles * sizeof(irwls_tile)) + irwls_align(acc_doubles * sizeof(double));
}

size_t rctd_irwls_kg_workspace_bytes(int n_genes, int n_types) {
  size_t g = (size_t)(n_genes > 0 ? n_genes : 1), k = (size_t)(n_types > 0 ? n_types : 1);
  return 5 * irwls_align(g * sizeof(double)) + irwls_align(g * sizeof(int64_t)) +
         irwls_align(sizeof(int)) + 2 * irwls_align(k * k * sizeof(double)) +
         4 * irwls_align(k * sizeof(double)) + irwls_align((k + 1) / 2 * 2 * g * sizeof(double)) +
         irwls_hess_bytes(n_types) + irwls_align(rctd_psd_workspace_bytes(n_types)) +
         rctd_qp_workspace_bytes(n_types);
}

size_t rctd_irwls_workspace_bytes(int n_genes, int n_types) {
  size_t g = (size_t)(n_genes > 0 ? n_genes : 1), k = (size_t)(n_types > 0 ? n_types : 1);
  return irwls_align(k * g * sizeof(double)) + rctd_irwls_kg_workspace_bytes(n_genes, n_types);
}

static irwls_ws irwls_ws_carve(int n_genes, int n_types, void *workspace) {
  size_t g = (size_t)n_genes, k = (size_t)n_types;
  char *p = workspace;
  irwls_ws ws;
  ws.y_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.pred_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.d0_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.d1_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.d2_g = (double *)p, p += irwls_align(g * sizeof(double));
  ws.rows_g = (int64_t *)p, p += irwls_align(g * sizeof(int64_t));
  ws.rows_ok = (int *)p, p += irwls_align(sizeof(int));
  ws.hess_kk = (double *)p, p += irwls_align(k * k * sizeof(double));
  ws.D_kk = (double *)p, p += irwls_align(k * k * sizeof(double));
  ws.dvec_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.lower_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.x_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.s_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.spair = (double *)p, p += irwls_align((k + 1) / 2 * 2 * g * sizeof(double));
  size_t acc_doubles, n_tiles = irwls_hess_tiles_of(n_types, NULL, &acc_doubles);
  ws.stail = (double *)p, p += irwls_align(k * IRWLS_TAIL * sizeof(double));
  ws.spair_ready = (int *)p, p += irwls_align(sizeof(int));
  ws.hess_tiles = (irwls_tile *)p, p += irwls_align(n_tiles * sizeof(irwls_tile));
  ws.hess_acc = (double *)p, p += irwls_align(acc_doubles * sizeof(double));
  ws.psd_ws = p, p += irwls_align(rctd_psd_workspace_bytes(n_types));
  ws.qp_ws = p;
  return ws;
}

/* Two-lane vectors (GNU vector extension, SSE2 registers): four lanes are two of them. */
typedef double irwls_v2 __attribute__((vector_size(16)));
typedef double irwls_v2u __attribute__((vector_size(16), aligned(8), may_alias));
#define IRWLS_LOAD2(p) (*(const irwls_v2u *)(p))

/* sum_g a_g b_g in four lanes (g mod 4, the tail in lane 0) reduced as (l0 + l1) + (l2 + l3):
 * independent partial sums instead of one latency-bound chain.  The order differs from R's BLAS
 * only at rounding level and is fixed by the code, not by the hardware. */
static double irwls_dot(int n, const double *a, const double *b) {
  irwls_v2 lo = {0, 0}, hi = {0, 0};
  int g = 0;
  for (; g + 4 <= n; g += 4) {
    lo += IRWLS_LOAD2(a + g) * IRWLS_LOAD2(b + g);
    hi += IRWLS_LOAD2(a + g + 2) * IRWLS_LOAD2(b + g + 2);
  }
  for (; g < n; g++) lo[0] += a[g] * b[g];
  return (lo[0] + lo[1]) + (hi[0] + hi[1]);
}

/* Hessian entries H_ij = sum_g (c_g S_ig) S_jg for four columns j at once (c = -d2), in
 * irwls_dot's four lanes and reduction order; c_g S_ig is formed on the fly and shared. */
static void irwls_hess4(int n, const double *c, const double *si, const double *b0,
                        const double *b1, const double *b2, const double *b3, double out[4]) {
  irwls_v2 l0 = {0, 0}, l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0, h3 = l0;
  int g = 0;
  for (; g + 4 <= n; g += 4) {
    irwls_v2 a_lo = IRWLS_LOAD2(c + g) * IRWLS_LOAD2(si + g);
    irwls_v2 a_hi = IRWLS_LOAD2(c + g + 2) * IRWLS_LOAD2(si + g + 2);
    l0 += a_lo * IRWLS_LOAD2(b0 + g);
    h0 += a_hi * IRWLS_LOAD2(b0 + g + 2);
    l1 += a_lo * IRWLS_LOAD2(b1 + g);
    h1 += a_hi * IRWLS_LOAD2(b1 + g + 2);
    l2 += a_lo * IRWLS_LOAD2(b2 + g);
    h2 += a_hi * IRWLS_LOAD2(b2 + g + 2);
    l3 += a_lo * IRWLS_LOAD2(b3 + g);
    h3 += a_hi * IRWLS_LOAD2(b3 + g + 2);
  }
  for (; g < n; g++) {
    double a = c[g] * si[g];
    l0[0] += a * b0[g];
    l1[0] += a * b1[g];
    l2[0] += a * b2[g];
    l3[0] += a * b3[g];
  }
  out[0] = (l0[0] + l0[1]) + (h0[0] + h0[1]);
  out[1] = (l1[0] + l1[1]) + (h1[0] + h1[1]);
  out[2] = (l2[0] + l2[1]) + (h2[0] + h2[1]);
  out[3] = (l3[0] + l3[1]) + (h3[0] + h3[1]);
}

/* One column of irwls_hess4 (same lanes and order). */
static double irwls_hess1(int n, const double *c, const double *si, const double *b) {
  irwls_v2 lo = {0, 0}, hi = {0, 0};
  int g = 0;
  for (; g + 4 <= n; g += 4) {
    lo += (IRWLS_LOAD2(c + g) * IRWLS_LOAD2(si + g)) * IRWLS_LOAD2(b + g);
    hi += (IRWLS_LOAD2(c + g + 2) * IRWLS_LOAD2(si + g + 2)) * IRWLS_LOAD2(b + g + 2);
  }
  for (; g < n; g++) lo[0] += (c[g] * si[g]) * b[g];
  return (lo[0] + lo[1]) + (hi[0] + hi[1]);
}

/* Fits of at least IRWLS_FUSED_K_MIN types form their gradient and Hessian with fused
 * multiply-adds: each lane of irwls_dot / irwls_hess4 (same lanes, same order, same tails and
 * reduction) accumulates fma(a_g, b_g, lane), resp. fma(c_g S_ig, S_jg, lane), one rounding
 * per term instead of two; the genes past the last block of four still go into lane 0 as a
 * product and a sum.  Every path (this portable one with C99's fma(), correctly rounded on any
 * machine; AVX2 + FMA; AVX-512) does exactly these operations, so the bits do not depend on the
 * CPU.  Fits of up to RCTD_IRWLS_SMALL_K_MAX types keep separate products and sums: irwls_small.c
 * computes those bit for bit as the generic path, and those of one or two types equal the CUDA
 * kernels.  fma() is one instruction on x86-64 CPUs since 2013 (Haswell, Piledriver); on older
 * ones without FMA hardware the C library emulates it (correct but slow), which only the
 * portable path (no AVX2 + FMA) of such fits pays. */
#define IRWLS_FUSED_K_MIN (RCTD_IRWLS_SMALL_K_MAX + 1)

/* On x86-64 the two portable fused kernels come in two clones picked at load time: one for CPUs
 * with FMA (fma() one instruction, inlined; 10x faster than a call to the C library's fma() with
 * SIMD off) and the default one.  fma() is correctly rounded either way: same bits.  Not under
 * ThreadSanitizer (make SANITIZE=thread): GCC's ifunc resolvers run before TSan is set up and
 * crash the program at load; the default clone alone gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__)
#define IRWLS_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define IRWLS_FMA_CLONES
#endif

IRWLS_FMA_CLONES static double irwls_dot_fma(int n, const double *a, const double *b) {
  double l[4] = {0, 0, 0, 0};
  int g = 0;
  for (; g + 4 <= n; g += 4)
    for (int h = 0; h < 4; h++) l[h] = fma(a[g + h], b[g + h], l[h]);
  for (; g < n; g++) l[0] += a[g] * b[g];
  return (l[0] + l[1]) + (l[2] + l[3]);
}

/* Four Hessian columns of row si, fused (irwls_hess4's lanes). */
IRWLS_FMA_CLONES static void irwls_hess4_fma(int n, const double *c, const double *si,
                                             const double *const b[4], double out[4]) {
  double l[4][4] = {{0}};
  int g = 0;
  for (; g + 4 <= n; g += 4)
    for (int h = 0; h < 4; h++) {
      const double u = c[g + h] * si[g + h];
      for (int t = 0; t < 4; t++) l[t][h] = fma(u, b[t][g + h], l[t][h]);
    }
  for (int t = 0; t < 4; t++) {
    double t0 = l[t][0];
    for (int h = g; h < n; h++) t0 += (c[h] * si[h]) * b[t][h];
    out[t] = (t0 + l[t][1]) + (l[t][2] + l[t][3]);
  }
}

/* pred_g = sum_k S_kg w_k (R's S %*% w: k in order). */
static void irwls_predict(int n_genes, int n_types, const double *S_kg, const double *w_k,
                          double *pred_g) {
  for (int g = 0; g < n_genes; g++) pred_g[g] = 0;
  for (int k = 0; k < n_types; k++) {
    const double wk = w_k[k];
    const double *row = S_kg + (size_t)k * n_genes;
    for (int g = 0; g < n_genes; g++) pred_g[g] += row[g] * wk;
  }
}

/* d1, d2 of get_der_fast's bulk mode: the Gaussian on logs. */
static void irwls_bulk_derivatives(int n_genes, const double *y_g, const double *pred_g,
                                   double *d1_g, double *d2_g) {
  for (int g = 0; g < n_genes; g++) {
    double p = pred_g[g], log_ratio = log(p) - log(y_g[g]);
    d1_g[g] = -2 * (log_ratio / p);
    d2_g[g] = -2 * ((1 - log(p) + log(y_g[g])) / (p * p));
  }
}

/* d_k = sum_g d1_g S_kg; hess (lower triangle) = sum_g (-d2_g) S_ig S_jg, fused from
 * IRWLS_FUSED_K_MIN types on.  Negates d2 in place. */
static void irwls_grad_hess(int n_genes, int n_types, const double *S_kg, irwls_ws *ws) {
  size_t G = (size_t)n_genes;
  double *c = ws->d2_g;
  for (size_t g = 0; g < G; g++) c[g] = -c[g];
  if (n_types >= IRWLS_FUSED_K_MIN) {
    for (int i = 0; i < n_types; i++) {
      const double *si = S_kg + i * G;
      ws->dvec_k[i] = irwls_dot_fma(n_genes, ws->d1_g, si);
      double *hess_row = ws->hess_kk + (size_t)i * n_types, tmp[4];
      for (int j = 0; j <= i; j += 4) {
        const double *b[4];
        for (int t = 0; t < 4; t++) b[t] = S_kg + (j + t <= i ? j + t : j) * G;
        irwls_hess4_fma(n_genes, c, si, b, tmp);
        for (int t = 0; t < 4 && j + t <= i; t++) hess_row[j + t] = tmp[t];
      }
    }
    return;
  }
  for (int i = 0; i < n_types; i++) {
    const double *si = S_kg + i * G;
    ws->dvec_k[i] = irwls_dot(n_genes, ws->d1_g, si);
    double *hess_row = ws->hess_kk + (size_t)i * n_types;
    int j = 0;
    for (; j + 4 <= i + 1; j += 4)
      irwls_hess4(n_genes, c, si, S_kg + j * G, S_kg + (j + 1) * G, S_kg + (j + 2) * G,
                  S_kg + (j + 3) * G, hess_row + j);
    for (; j <= i; j++) hess_row[j] = irwls_hess1(n_genes, c, si, S_kg + j * G);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* AVX2 forms of irwls_dot / irwls_hess4 / irwls_hess1 / irwls_predict with the same lanes:
 * one four-lane register holds the two-lane pair (lo, hi) of the SSE2 code (lane j = genes
 * g = j mod 4, the tail in lane 0), products and sums are separate instructions (no FMA), and
 * the reduction is (l0 + l1) + (l2 + l3), so every result equals the SSE2 one bit for bit.  Their
 * fused forms (irwls_dot_fma_avx2, irwls_hess_2x4_fma: target avx2,fma) equal irwls_dot_fma /
 * irwls_hess4_fma in the same way. */
#define IRWLS_HAVE_AVX2 1
/* sum over lanes with the tail added to lane 0 first, as the SSE2 code's lo[0] += ... does */
__attribute__((target("avx2"))) static double irwls_dot_avx2(int n, const double *a,
                                                             const double *b) {
  __m256d acc = _mm256_setzero_pd();
  int g = 0;
  for (; g + 4 <= n; g += 4)
    acc = _mm256_add_pd(acc, _mm256_mul_pd(_mm256_loadu_pd(a + g), _mm256_loadu_pd(b + g)));
  double l[4];
  _mm256_storeu_pd(l, acc);
  for (; g < n; g++) l[0] += a[g] * b[g];
  return (l[0] + l[1]) + (l[2] + l[3]);
}

/* One Hessian entry from its four lanes: the tail terms (c s b from g on) into lane 0 first,
 * then (l0 + l1) + (l2 + l3), as in the SSE2 code. */
__attribute__((target("avx2"))) static inline double irwls_lanes_tail_avx2(__m256d acc, int g,
                                                                           int n, const double *c,
                                                                           const double *s,
                                                                           const double *b) {
  double l[4];
  _mm256_storeu_pd(l, acc);
  double t = l[0];
  for (int h = g; h < n; h++) t += (c[h] * s[h]) * b[h];
  return (t + l[1]) + (l[2] + l[3]);
}

/* irwls_dot_avx2 with fused multiply-adds: irwls_dot_fma's lanes. */
__attribute__((target("avx2,fma"))) static double irwls_dot_fma_avx2(int n, const double *a,
                                                                     const double *b) {
  __m256d acc = _mm256_setzero_pd();
  int g = 0;
  for (; g + 4 <= n; g += 4)
    acc = _mm256_fmadd_pd(_mm256_loadu_pd(a + g), _mm256_loadu_pd(b + g), acc);
  double l[4];
  _mm256_storeu_pd(l, acc);
  for (; g < n; g++) l[0] += a[g] * b[g];
  return (l[0] + l[1]) + (l[2] + l[3]);
}

/* Two rows (i0, i1) by four columns of the Hessian, sharing the column loads; ACC(acc, u, v)
 * is the lane update: acc + u v rounded twice (IRWLS_ADD_MUL) or once (IRWLS_FMADD, fits of
 * IRWLS_FUSED_K_MIN types or more: irwls_hess4_fma's lanes).  The tail accumulates into lane 0
 * after the vector part, as in the SSE2 code. */
#define IRWLS_ADD_MUL(acc, u, v) _mm256_add_pd(acc, _mm256_mul_pd(u, v))
#define IRWLS_FMADD(acc, u, v) _mm256_fmadd_pd(u, v, acc)
#define IRWLS_HESS_2X4_BODY(ACC)                                      \
  __m256d a00 = _mm256_setzero_pd(), a01 = a00, a02 = a00, a03 = a00; \
  __m256d a10 = a00, a11 = a00, a12 = a00, a13 = a00;                 \
  int g = 0;                                                          \
  for (; g + 4 <= n; g += 4) {                                        \
    __m256d cg = _mm256_loadu_pd(c + g);                              \
    __m256d u0 = _mm256_mul_pd(cg, _mm256_loadu_pd(s0 + g));          \
    __m256d u1 = _mm256_mul_pd(cg, _mm256_loadu_pd(s1 + g));          \
    __m256d v = _mm256_loadu_pd(b0 + g);                              \
    a00 = ACC(a00, u0, v), a10 = ACC(a10, u1, v);                     \
    v = _mm256_loadu_pd(b1 + g);                                      \
    a01 = ACC(a01, u0, v), a11 = ACC(a11, u1, v);                     \
    v = _mm256_loadu_pd(b2 + g);                                      \
    a02 = ACC(a02, u0, v), a12 = ACC(a12, u1, v);                     \
    v = _mm256_loadu_pd(b3 + g);                                      \
    a03 = ACC(a03, u0, v), a13 = ACC(a13, u1, v);                     \
  }                                                                   \
  out0[0] = irwls_lanes_tail_avx2(a00, g, n, c, s0, b0);              \
  out0[1] = irwls_lanes_tail_avx2(a01, g, n, c, s0, b1);              \
  out0[2] = irwls_lanes_tail_avx2(a02, g, n, c, s0, b2);              \
  out0[3] = irwls_lanes_tail_avx2(a03, g, n, c, s0, b3);              \
  out1[0] = irwls_lanes_tail_avx2(a10, g, n, c, s1, b0);              \
  out1[1] = irwls_lanes_tail_avx2(a11, g, n, c, s1, b1);              \
  out1[2] = irwls_lanes_tail_avx2(a12, g, n, c, s1, b2);              \
  out1[3] = irwls_lanes_tail_avx2(a13, g, n, c, s1, b3);

__attribute__((target("avx2"))) static void irwls_hess_2x4_avx2(int n, const double *c,
                                                                const double *s0, const double *s1,
                                                                const double *b0, const double *b1,
                                                                const double *b2, const double *b3,
                                                                double out0[4], double out1[4]) {
  IRWLS_HESS_2X4_BODY(IRWLS_ADD_MUL)
}

__attribute__((target("avx2,fma"))) static void irwls_hess_2x4_fma(
    int n, const double *c, const double *s0, const double *s1, const double *b0, const double *b1,
    const double *b2, const double *b3, double out0[4], double out1[4]) {
  IRWLS_HESS_2X4_BODY(IRWLS_FMADD)
}

static int irwls_avx512_on = 1; /* rctd_irwls_avx512: the tests turn AVX-512 off */

static int irwls_avx512(void) {
  return irwls_avx512_on && __builtin_cpu_supports("avx512f");
}

static int irwls_fma(void) {
  return __builtin_cpu_supports("fma");
}

/* S_kg in row pairs (2p, 2p + 1; an odd last row with itself), the four genes of a block of
 * each row side by side: sp[(p * n_blocks + b) * 8 + 4 r + l] = S_{2p+r, 4b+l}; the genes past
 * the last full block of four in stail[i * IRWLS_TAIL + h].  Built once per fit: S does not
 * change between steps. */
__attribute__((target("avx512f"))) static void irwls_pairs_avx512(int n_genes, int n_types,
                                                                  const double *S_kg, double *sp,
                                                                  double *stail) {
  const size_t G = (size_t)n_genes;
  const int n_blocks = n_genes / 4;
  for (int p = 0; 2 * p < n_types; p++) {
    const int i0 = 2 * p, i1 = i0 + 1 < n_types ? i0 + 1 : i0;
    const double *s0 = S_kg + (size_t)i0 * G, *s1 = S_kg + (size_t)i1 * G;
    double *spp = sp + (size_t)p * n_blocks * 8;
    for (int b = 0; b < n_blocks; b++) {
      _mm256_storeu_pd(spp + 8 * b, _mm256_loadu_pd(s0 + 4 * b));
      _mm256_storeu_pd(spp + 8 * b + 4, _mm256_loadu_pd(s1 + 4 * b));
    }
  }
  for (int i = 0; i < n_types; i++)
    for (size_t g = 4 * (size_t)n_blocks; g < G; g++)
      stail[i * IRWLS_TAIL + (g - 4 * (size_t)n_blocks)] = S_kg[(size_t)i * G + g];
}

/* n_pairs row pairs (rows[p]: pairs of sp) by n_cols columns (cols[t]: a row within a pair of
 * sp) over the n_blocks blocks of four genes: acc lane 4 r + l of entry (p, t) (to
 * acc_out + (p n_cols + t) 8) sums (c_g S_ig) S_jg of row i = 2p + r over the genes g = 4b + l
 * in order, each term fused into the sum: fma(c_g S_ig, S_jg, sum). */
__attribute__((target("avx512f,fma"), always_inline)) static inline void irwls_hess_tile_avx512(
    const int n_pairs, const int n_cols, int n_blocks, const double *c, const double *const *rows,
    const double *const *cols, double *acc_out) {
  __m512d acc[IRWLS_TILE_PAIRS][IRWLS_TILE_COLS];
#pragma GCC unroll 8
  for (int p = 0; p < n_pairs; p++)
#pragma GCC unroll 8
    for (int t = 0; t < n_cols; t++) acc[p][t] = _mm512_setzero_pd();
  for (int b = 0; b < n_blocks; b++) {
    const __m512d cg = _mm512_broadcast_f64x4(_mm256_loadu_pd(c + 4 * b));
    __m512d u[IRWLS_TILE_PAIRS];
#pragma GCC unroll 8
    for (int p = 0; p < n_pairs; p++) u[p] = _mm512_mul_pd(cg, _mm512_loadu_pd(rows[p] + 8 * b));
#pragma GCC unroll 8
    for (int t = 0; t < n_cols; t++) {
      const __m512d v = _mm512_broadcast_f64x4(_mm256_loadu_pd(cols[t] + 8 * b));
#pragma GCC unroll 8
      for (int p = 0; p < n_pairs; p++) acc[p][t] = _mm512_fmadd_pd(u[p], v, acc[p][t]);
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < n_pairs; p++)
#pragma GCC unroll 8
    for (int t = 0; t < n_cols; t++) _mm512_storeu_pd(acc_out + (p * n_cols + t) * 8, acc[p][t]);
}

typedef void (*irwls_hess_tile_fn)(int n_blocks, const double *c, const double *const *rows,
                                   const double *const *cols, double *acc_out);
#define IRWLS_TILE_FN(P, C)                                                                \
  __attribute__((target("avx512f,fma"))) static void irwls_hess_tile_##P##x##C(            \
      int n_blocks, const double *c, const double *const *rows, const double *const *cols, \
      double *acc_out) {                                                                   \
    irwls_hess_tile_avx512(P, C, n_blocks, c, rows, cols, acc_out);                        \
  }
#define IRWLS_TILE_FNS(P) \
  IRWLS_TILE_FN(P, 1)     \
  IRWLS_TILE_FN(P, 2)     \
  IRWLS_TILE_FN(P, 3)     \
  IRWLS_TILE_FN(P, 4)     \
  IRWLS_TILE_FN(P, 5)     \
  IRWLS_TILE_FN(P, 6)     \
  IRWLS_TILE_FN(P, 7)     \
  IRWLS_TILE_FN(P, 8)
IRWLS_TILE_FNS(1)
IRWLS_TILE_FNS(2)
IRWLS_TILE_FNS(3)
#define IRWLS_TILE_ROW(P)                                                          \
  {                                                                                \
    irwls_hess_tile_##P##x1, irwls_hess_tile_##P##x2, irwls_hess_tile_##P##x3,     \
        irwls_hess_tile_##P##x4, irwls_hess_tile_##P##x5, irwls_hess_tile_##P##x6, \
        irwls_hess_tile_##P##x7, irwls_hess_tile_##P##x8                           \
  }
/* [n_pairs - 1][n_cols - 1] */
static const irwls_hess_tile_fn irwls_hess_tile_fns[IRWLS_TILE_PAIRS][IRWLS_TILE_COLS] = {
    IRWLS_TILE_ROW(1), IRWLS_TILE_ROW(2), IRWLS_TILE_ROW(3)};

/* The gradient's lanes of n_pairs row pairs of sp (from sp0, pair_stride apart): lane 4 r + l
 * of acc_out[8 p ..] sums d1_g S_{2p+r,g} over g = 4b + l in order (irwls_dot_avx2's lanes),
 * fma(d1_g, S_ig, sum); one accumulator per pair, so the pairs' sums run side by side. */
__attribute__((target("avx512f,fma"), always_inline)) static inline void irwls_grad_tile_avx512(
    const int n_pairs, int n_blocks, const double *d1, const double *sp0, size_t pair_stride,
    double *acc_out) {
  __m512d acc[IRWLS_GRAD_PAIRS];
#pragma GCC unroll 8
  for (int p = 0; p < n_pairs; p++) acc[p] = _mm512_setzero_pd();
  for (int b = 0; b < n_blocks; b++) {
    const __m512d dg = _mm512_broadcast_f64x4(_mm256_loadu_pd(d1 + 4 * b));
#pragma GCC unroll 8
    for (int p = 0; p < n_pairs; p++)
      acc[p] = _mm512_fmadd_pd(dg, _mm512_loadu_pd(sp0 + p * pair_stride + 8 * b), acc[p]);
  }
#pragma GCC unroll 8
  for (int p = 0; p < n_pairs; p++) _mm512_storeu_pd(acc_out + 8 * p, acc[p]);
}

typedef void (*irwls_grad_tile_fn)(int n_blocks, const double *d1, const double *sp0,
                                   size_t pair_stride, double *acc_out);
#define IRWLS_GRAD_FN(P)                                                                        \
  __attribute__((target("avx512f,fma"))) static void irwls_grad_tile_##P(                       \
      int n_blocks, const double *d1, const double *sp0, size_t pair_stride, double *acc_out) { \
    irwls_grad_tile_avx512(P, n_blocks, d1, sp0, pair_stride, acc_out);                         \
  }
IRWLS_GRAD_FN(1)
IRWLS_GRAD_FN(2)
IRWLS_GRAD_FN(3)
IRWLS_GRAD_FN(4)
IRWLS_GRAD_FN(5)
IRWLS_GRAD_FN(6)
IRWLS_GRAD_FN(7)
IRWLS_GRAD_FN(8)
static const irwls_grad_tile_fn irwls_grad_tile_fns[IRWLS_GRAD_PAIRS] = {
    irwls_grad_tile_1, irwls_grad_tile_2, irwls_grad_tile_3, irwls_grad_tile_4,
    irwls_grad_tile_5, irwls_grad_tile_6, irwls_grad_tile_7, irwls_grad_tile_8};

/* The gradient and the Hessian (lower triangle) from S in row pairs (ws->spair, ws->stail),
 * each entry in the lanes of irwls_dot_avx2 / irwls_hess_2x4_avx2 (but fused multiply-adds):
 * the genes past the last block of four added to lane 0 after the vector part (a product and
 * a sum), then (l0 + l1) + (l2 + l3).  Entries above the
 * diagonal (and of the copy of an odd last row) are computed and dropped. */
__attribute__((target("avx512f"))) static void irwls_grad_hess_avx512(int n_genes, int n_types,
                                                                      const double *c,
                                                                      const double *d1,
                                                                      const irwls_ws *ws) {
  const int K = n_types, n_pairs = (K + 1) / 2, n_blocks = n_genes / 4;
  const int n_tail = n_genes - 4 * n_blocks;
  const size_t pair_stride = (size_t)n_blocks * 8;
  const double *sp = ws->spair, *st = ws->stail;
  const irwls_tile *tiles = ws->hess_tiles;
  const size_t n_tiles = irwls_hess_tiles_of(K, ws->hess_tiles, NULL);
  double *grad_acc = ws->hess_acc;
  for (int p0 = 0; p0 < n_pairs; p0 += IRWLS_GRAD_PAIRS) {
    const int np = n_pairs - p0 < IRWLS_GRAD_PAIRS ? n_pairs - p0 : IRWLS_GRAD_PAIRS;
    irwls_grad_tile_fns[np - 1](n_blocks, d1, sp + p0 * pair_stride, pair_stride,
                                grad_acc + 8 * p0);
  }
  double *tile_acc = ws->hess_acc + 8 * n_pairs;
  for (size_t k = 0; k < n_tiles; k++) {
    const irwls_tile tl = tiles[k];
    const double *rows[IRWLS_TILE_PAIRS], *cols[IRWLS_TILE_COLS];
    for (int p = 0; p < tl.n_pairs; p++) rows[p] = sp + (tl.p + p) * pair_stride;
    for (int t = 0; t < tl.n_cols; t++)
      cols[t] = sp + (tl.j0 + t) / 2 * pair_stride + 4 * ((tl.j0 + t) % 2);
    irwls_hess_tile_fns[tl.n_pairs - 1][tl.n_cols - 1](n_blocks, c, rows, cols, tile_acc);
    tile_acc += tl.n_pairs * tl.n_cols * 8;
  }
  const double *ct = c + 4 * n_blocks, *dt = d1 + 4 * n_blocks;
  for (int i = 0; i < K; i++) {
    const double *l = grad_acc + 8 * (i / 2) + 4 * (i % 2);
    double t0 = l[0];
    for (int h = 0; h < n_tail; h++) t0 += dt[h] * st[i * IRWLS_TAIL + h];
    ws->dvec_k[i] = (t0 + l[1]) + (l[2] + l[3]);
  }
  const double *acc = ws->hess_acc + 8 * n_pairs;
  for (size_t k = 0; k < n_tiles; k++) {
    const irwls_tile tl = tiles[k];
    for (int q = 0; q < 2 * tl.n_pairs; q++) {
      const int i = 2 * tl.p + q;
      for (int t = 0; t < tl.n_cols && i < K && tl.j0 + t <= i; t++) {
        const int j = tl.j0 + t;
        const double *l = acc + ((q / 2) * tl.n_cols + t) * 8 + 4 * (q % 2);
        double t0 = l[0];
        for (int h = 0; h < n_tail; h++)
          t0 += (ct[h] * st[i * IRWLS_TAIL + h]) * st[j * IRWLS_TAIL + h];
        ws->hess_kk[(size_t)i * K + j] = (t0 + l[1]) + (l[2] + l[3]);
      }
    }
    acc += tl.n_pairs * tl.n_cols * 8;
  }
}

/* irwls_grad_hess with the AVX2 kernels. */
__attribute__((target("avx2"))) static void irwls_grad_hess_avx2(int n_genes, int n_types,
                                                                 const double *S_kg, irwls_ws *ws) {
  const size_t G = (size_t)n_genes;
  const int K = n_types, fused = K >= IRWLS_FUSED_K_MIN;
  /* a CPU with AVX2 but without FMA: the portable path's fma() */
  if (fused && !irwls_fma()) {
    irwls_grad_hess(n_genes, K, S_kg, ws);
    return;
  }
  double *c = ws->d2_g;
  for (size_t g = 0; g < G; g++) c[g] = -c[g];
  if (fused && irwls_avx512()) {
    if (!*ws->spair_ready) irwls_pairs_avx512(n_genes, K, S_kg, ws->spair, ws->stail);
    *ws->spair_ready = 1;
    irwls_grad_hess_avx512(n_genes, K, c, ws->d1_g, ws);
    return;
  }
  for (int i = 0; i < K; i++)
    ws->dvec_k[i] = fused ? irwls_dot_fma_avx2(n_genes, ws->d1_g, S_kg + i * G)
                          : irwls_dot_avx2(n_genes, ws->d1_g, S_kg + i * G);
  /* Rows in pairs (a last odd row is paired with itself), columns in fours up to the diagonal;
   * the last block of a pair may reach past the diagonal or past K - 1 (such columns point at
   * row 0 and are discarded). */
  double tmp0[4], tmp1[4];
  for (int i = 0; i < K; i += 2) {
    const int i1 = i + 1 < K ? i + 1 : i;
    const double *s0 = S_kg + i * G, *s1 = S_kg + i1 * G;
    double *row0 = ws->hess_kk + (size_t)i * K, *row1 = ws->hess_kk + (size_t)i1 * K;
    for (int j = 0; j <= i1; j += 4) {
      const double *b[4];
      for (int t = 0; t < 4; t++) b[t] = S_kg + (j + t < K ? j + t : 0) * G;
      if (fused)
        irwls_hess_2x4_fma(n_genes, c, s0, s1, b[0], b[1], b[2], b[3], tmp0, tmp1);
      else
        irwls_hess_2x4_avx2(n_genes, c, s0, s1, b[0], b[1], b[2], b[3], tmp0, tmp1);
      for (int t = 0; t < 4 && j + t <= i; t++) row0[j + t] = tmp0[t];
      for (int t = 0; t < 4 && j + t <= i1; t++) row1[j + t] = tmp1[t];
    }
  }
}

/* irwls_predict from S in row pairs (irwls_pairs_avx512), so that steps after the first read
 * only the pairs, not S_kg too (several fits step together: their S and pairs would not fit in
 * L2 together).  Four genes per register, each gene's sum over k in order. */
__attribute__((target("avx512f"))) static void irwls_predict_pairs_avx512(int n_genes, int n_types,
                                                                          const double *sp,
                                                                          const double *stail,
                                                                          const double *w_k,
                                                                          double *pred_g) {
  const int n_blocks = n_genes / 4, n_full = n_types / 2;
  const size_t pair_stride = (size_t)n_blocks * 8;
  int b = 0;
  for (; b + 8 <= n_blocks; b += 8) {
    __m256d a[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_pd();
    const double *row = sp + 8 * (size_t)b;
    for (int p = 0; p < n_full; p++, row += pair_stride) {
      const __m256d w0 = _mm256_set1_pd(w_k[2 * p]), w1 = _mm256_set1_pd(w_k[2 * p + 1]);
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) {
        a[i] = _mm256_add_pd(a[i], _mm256_mul_pd(_mm256_loadu_pd(row + 8 * i), w0));
        a[i] = _mm256_add_pd(a[i], _mm256_mul_pd(_mm256_loadu_pd(row + 8 * i + 4), w1));
      }
    }
    if (n_types % 2) {
      const __m256d w0 = _mm256_set1_pd(w_k[n_types - 1]);
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++)
        a[i] = _mm256_add_pd(a[i], _mm256_mul_pd(_mm256_loadu_pd(row + 8 * i), w0));
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm256_storeu_pd(pred_g + 4 * (b + i), a[i]);
  }
  for (; b < n_blocks; b++) {
    __m256d a = _mm256_setzero_pd();
    for (int k = 0; k < n_types; k++)
      a = _mm256_add_pd(
          a, _mm256_mul_pd(_mm256_loadu_pd(sp + (k / 2) * pair_stride + 8 * b + 4 * (k % 2)),
                           _mm256_set1_pd(w_k[k])));
    _mm256_storeu_pd(pred_g + 4 * b, a);
  }
  for (int g = 4 * n_blocks; g < n_genes; g++) {
    double p = 0;
    for (int k = 0; k < n_types; k++) p += stail[k * IRWLS_TAIL + g - 4 * n_blocks] * w_k[k];
    pred_g[g] = p;
  }
}

__attribute__((target("avx2"))) static void irwls_predict_avx2(int n_genes, int n_types,
                                                               const double *S_kg,
                                                               const double *w_k, double *pred_g) {
  for (int g = 0; g < n_genes; g++) pred_g[g] = 0;
  for (int k = 0; k < n_types; k++) {
    const __m256d wk = _mm256_set1_pd(w_k[k]);
    const double *row = S_kg + (size_t)k * n_genes;
    int g = 0;
    for (; g + 4 <= n_genes; g += 4)
      _mm256_storeu_pd(pred_g + g, _mm256_add_pd(_mm256_loadu_pd(pred_g + g),
                                                 _mm256_mul_pd(_mm256_loadu_pd(row + g), wk)));
    for (; g < n_genes; g++) pred_g[g] += row[g] * w_k[k];
  }
}

/* The prediction of a step by the fastest kernel: from the row pairs of the AVX-512 Hessian,
 * built here for the fit's first step. */
__attribute__((target("avx2"))) static void irwls_predict_simd(int n_genes, int n_types,
                                                               const double *S_kg,
                                                               const double *w_k, irwls_ws *ws) {
  if (irwls_avx512()) {
    if (!*ws->spair_ready) irwls_pairs_avx512(n_genes, n_types, S_kg, ws->spair, ws->stail);
    *ws->spair_ready = 1;
    irwls_predict_pairs_avx512(n_genes, n_types, ws->spair, ws->stail, w_k, ws->pred_g);
    return;
  }
  irwls_predict_avx2(n_genes, n_types, S_kg, w_k, ws->pred_g);
}

#endif

/* The first part of one solveWLS step from w_k: s = max(w, 0) (its sum in *s_sum), the
 * prediction, the derivatives, the gradient and the Hessian (in ws). */
static void irwls_step_begin(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                             double numi, const rctd_irwls_opts *opts, const double *w_k,
                             irwls_ws *ws, double *s_sum_out) {
  const int K = n_types;
  double s_sum = 0;
  for (int k = 0; k < K; k++) {
    ws->s_k[k] = w_k[k] > 0 ? w_k[k] : 0;
    s_sum += ws->s_k[k];
  }
  *s_sum_out = s_sum;
  /* up to four types: one fused pass (irwls_small.c), where the CPU has AVX-512 */
  if (K <= RCTD_IRWLS_SMALL_K_MAX && *ws->rows_ok &&
      rctd_irwls_small_grad_hess(table, n_genes, K, S_kg, ws->y_g, ws->rows_g, ws->s_k,
                                 rk_irwls_pred_floor(numi), ws->dvec_k, ws->hess_kk))
    return;
#ifdef IRWLS_HAVE_AVX2
  if (rctd_cpu_simd(-1))
    irwls_predict_simd(n_genes, K, S_kg, ws->s_k, ws);
  else
#endif
    irwls_predict(n_genes, K, S_kg, ws->s_k, ws->pred_g);
  const double floor_pred = rk_irwls_pred_floor(numi);
  for (int g = 0; g < n_genes; g++) {
    double p = fabs(ws->pred_g[g]);
    ws->pred_g[g] = p < floor_pred ? floor_pred : p;
  }
  if (opts->bulk_mode)
    irwls_bulk_derivatives(n_genes, ws->y_g, ws->pred_g, ws->d1_g, ws->d2_g);
  else
    rctd_spline_eval_fast(table, n_genes, ws->y_g, ws->pred_g, NULL, ws->d1_g, ws->d2_g);
#ifdef IRWLS_HAVE_AVX2
  if (rctd_cpu_simd(-1))
    irwls_grad_hess_avx2(n_genes, K, S_kg, ws);
  else
#endif
    irwls_grad_hess(n_genes, K, S_kg, ws);
}

int rctd_irwls_fused(int n_types) {
  return n_types >= IRWLS_FUSED_K_MIN;
}

int rctd_irwls_avx512(int enable) {
#ifdef IRWLS_HAVE_AVX2
  int was = irwls_avx512();
  if (enable >= 0) irwls_avx512_on = enable;
  return was;
#else
  (void)enable;
  return 0;
#endif
}

int rctd_irwls_step_parts(int n_genes, int n_types, const double *S_kg, const double *w_k,
                          const double *d1_g, const double *d2_g, double *pred_g, double *dvec_k,
                          double *hess_kk, void *workspace) {
  irwls_ws ws = irwls_ws_carve(n_genes, n_types, workspace);
  *ws.spair_ready = 0;
  memcpy(ws.d1_g, d1_g, (size_t)n_genes * sizeof(double));
  memcpy(ws.d2_g, d2_g, (size_t)n_genes * sizeof(double));
#ifdef IRWLS_HAVE_AVX2
  if (rctd_cpu_simd(-1)) {
    irwls_predict_simd(n_genes, n_types, S_kg, w_k, &ws);
    memcpy(pred_g, ws.pred_g, (size_t)n_genes * sizeof(double));
    irwls_grad_hess_avx2(n_genes, n_types, S_kg, &ws);
  } else
#endif
  {
    irwls_predict(n_genes, n_types, S_kg, w_k, pred_g);
    irwls_grad_hess(n_genes, n_types, S_kg, &ws);
  }
  memcpy(dvec_k, ws.dvec_k, (size_t)n_types * sizeof(double));
  for (int i = 0; i < n_types; i++)
    memcpy(hess_kk + (size_t)i * n_types, ws.hess_kk + (size_t)i * n_types,
           (size_t)(i + 1) * sizeof(double));
  return rctd_irwls_fused(n_types);
}

/* The rest of the step, given norm = rctd_psd_scaled(hess -> D): the QP and the update of w_k
 * (in place).  Returns the L1 change, or NaN when the step cannot be taken (non-finite
 * derivatives or an infeasible QP). */
static double irwls_step_end(int n_types, const rctd_irwls_opts *opts, double *w_k, irwls_ws *ws,
                             double s_sum, double norm, int warm) {
  const int K = n_types;
  if (!(norm > 0)) return NAN;
  for (int k = 0; k < K; k++) {
    ws->dvec_k[k] /= norm;
    ws->D_kk[k * K + k] += IRWLS_RIDGE;
    ws->lower_k[k] = -ws->s_k[k];
    if (!isfinite(ws->dvec_k[k])) return NAN;
  }
  /* Later steps start the QP from the previous step's active bounds (same minimiser, fewer
   * active-set steps); each fit starts cold, so results do not depend on earlier fits.  Fits of
   * one or two types (cheap QPs) always start cold, step for step as the CUDA kernels do. */
  if (rctd_qp_solve_warm(K, ws->D_kk, ws->dvec_k, ws->lower_k, opts->constrain, 1 - s_sum, ws->x_k,
                         ws->qp_ws, warm) != 0)
    return NAN;
  double change = 0;
  for (int k = 0; k < K; k++) {
    double w_new = ws->s_k[k] + IRWLS_ALPHA * ws->x_k[k];
    change += fabs(w_new - w_k[k]);
    w_k[k] = w_new;
  }
  return change;
}

void rctd_irwls_run_start(rctd_irwls_run *run, const rctd_qtable *table, int n_genes, int n_types,
                          const double *S_kg, const double *y_g, double numi,
                          const rctd_irwls_opts *opts, const double *init_k, double *weights_k,
                          void *workspace) {
  irwls_ws ws = irwls_ws_carve(n_genes, n_types, workspace);
  for (int g = 0; g < n_genes; g++)
    ws.y_g[g] = (!opts->bulk_mode && y_g[g] > RCTD_K_VAL) ? RCTD_K_VAL : y_g[g];
  for (int k = 0; k < n_types; k++) weights_k[k] = init_k ? init_k[k] : 1.0 / n_types;
  *ws.spair_ready = 0;
  *ws.rows_ok = n_types <= RCTD_IRWLS_SMALL_K_MAX && !opts->bulk_mode &&
                rctd_spline_fast_rows(table, n_genes, ws.y_g, ws.rows_g);
  *run = (rctd_irwls_run){table,     n_genes,   n_types, S_kg, numi, opts,
                          weights_k, workspace, 1.0,     0,    0,    0};
  run->running = run->change > opts->min_change && run->iter < opts->n_iter;
  if (!run->running) run->converged = run->change <= opts->min_change;
}

/* Records a step's change; ends the run when it is NaN, small enough, or the last allowed. */
static void irwls_run_record(rctd_irwls_run *run, double change) {
  if (isnan(change)) {
    for (int k = 0; k < run->n_types; k++) run->weights_k[k] = NAN;
    run->running = 0;
    run->converged = 0;
    return;
  }
  run->change = change;
  run->iter++;
  run->running = change > run->opts->min_change && run->iter < run->opts->n_iter;
  if (!run->running) run->converged = change <= run->opts->min_change;
}

void rctd_irwls_run_step(rctd_irwls_run *const *runs, int n_runs) {
  const double *H[RCTD_PSD_MANY_MAX];
  double *D[RCTD_PSD_MANY_MAX];
  void *psd_ws[RCTD_PSD_MANY_MAX];
  double norm[RCTD_PSD_MANY_MAX], s_sum[RCTD_PSD_MANY_MAX];
  irwls_ws ws[RCTD_PSD_MANY_MAX];
  rctd_irwls_run *live[RCTD_PSD_MANY_MAX];
  int n_live = 0;
  for (int r = 0; r < n_runs && n_live < RCTD_PSD_MANY_MAX; r++) {
    rctd_irwls_run *run = runs[r];
    if (!run->running) continue;
    ws[n_live] = irwls_ws_carve(run->n_genes, run->n_types, run->workspace);
    irwls_step_begin(run->table, run->n_genes, run->n_types, run->S_kg, run->numi, run->opts,
                     run->weights_k, &ws[n_live], &s_sum[n_live]);
    H[n_live] = ws[n_live].hess_kk;
    D[n_live] = ws[n_live].D_kk;
    psd_ws[n_live] = ws[n_live].psd_ws;
    live[n_live++] = run;
  }
  if (n_live == 0) return;
  const int K = live[0]->n_types;
  if (n_live == 1)
    norm[0] = rctd_psd_scaled(K, H[0], D[0], psd_ws[0]);
  else
    rctd_psd_scaled_many(K, n_live, H, D, psd_ws, norm);
  for (int r = 0; r < n_live; r++) {
    rctd_irwls_run *run = live[r];
    double change = irwls_step_end(K, run->opts, run->weights_k, &ws[r], s_sum[r], norm[r],
                                   run->iter > 0 && K >= 3);
    irwls_run_record(run, change);
  }
}

int rctd_irwls_fit_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                      const double *y_g, double numi, const rctd_irwls_opts *opts,
                      const double *init_k, double *weights_k, void *workspace) {
  rctd_irwls_run run;
  rctd_irwls_run_start(&run, table, n_genes, n_types, S_kg, y_g, numi, opts, init_k, weights_k,
                       workspace);
  rctd_irwls_run *one = &run;
  while (run.running) rctd_irwls_run_step(&one, 1);
  return run.converged;
}

int rctd_irwls_fit(const rctd_qtable *table, int n_genes, int n_types, const double *S_gk,
                   const double *y_g, double numi, const rctd_irwls_opts *opts,
                   const double *init_k, double *weights_k, void *workspace) {
  double *S_kg = workspace;
  for (int g = 0; g < n_genes; g++)
    for (int k = 0; k < n_types; k++) S_kg[(size_t)k * n_genes + g] = S_gk[(size_t)g * n_types + k];
  void *rest = (char *)workspace + irwls_align((size_t)n_types * n_genes * sizeof(double));
  return rctd_irwls_fit_kg(table, n_genes, n_types, S_kg, y_g, numi, opts, init_k, weights_k, rest);
}

double rctd_irwls_score_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g,
                           double *d0_g) {
  double score;
  if (n_types <= RCTD_IRWLS_SMALL_K_MAX &&
      rctd_irwls_small_score(table, n_genes, n_types, S_kg, y_g, weights_k, pred_g, d0_g, &score))
    return score;
  irwls_predict(n_genes, n_types, S_kg, weights_k, pred_g);
  rctd_spline_eval_fast(table, n_genes, y_g, pred_g, d0_g, NULL, NULL);
  long double sum = 0;
  for (int g = 0; g < n_genes; g++) sum += d0_g[g];
  return -(double)sum;
}
