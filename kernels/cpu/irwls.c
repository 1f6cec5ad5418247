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

typedef struct {
  double *y_g, *pred_g, *d0_g, *d1_g, *d2_g;
  double *hess_kk, *D_kk, *dvec_k, *lower_k, *x_k, *s_k;
  double *upair; /* (K + 1) / 2 x 8 (G / 4): the weighted row pairs of the AVX-512 Hessian */
  void *psd_ws, *qp_ws;
} irwls_ws;

static size_t irwls_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

size_t rctd_irwls_kg_workspace_bytes(int n_genes, int n_types) {
  size_t g = (size_t)(n_genes > 0 ? n_genes : 1), k = (size_t)(n_types > 0 ? n_types : 1);
  return 5 * irwls_align(g * sizeof(double)) + 2 * irwls_align(k * k * sizeof(double)) +
         4 * irwls_align(k * sizeof(double)) + irwls_align((k + 1) / 2 * 2 * g * sizeof(double)) +
         irwls_align(rctd_psd_workspace_bytes(n_types)) + rctd_qp_workspace_bytes(n_types);
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
  ws.hess_kk = (double *)p, p += irwls_align(k * k * sizeof(double));
  ws.D_kk = (double *)p, p += irwls_align(k * k * sizeof(double));
  ws.dvec_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.lower_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.x_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.s_k = (double *)p, p += irwls_align(k * sizeof(double));
  ws.upair = (double *)p, p += irwls_align((k + 1) / 2 * 2 * g * sizeof(double));
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

/* d_k = sum_g d1_g S_kg; hess (lower triangle) = sum_g (-d2_g) S_ig S_jg.  Negates d2 in place. */
static void irwls_grad_hess(int n_genes, int n_types, const double *S_kg, irwls_ws *ws) {
  size_t G = (size_t)n_genes;
  double *c = ws->d2_g;
  for (size_t g = 0; g < G; g++) c[g] = -c[g];
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
 * the reduction is (l0 + l1) + (l2 + l3), so every result equals the SSE2 one bit for bit. */
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

/* Two rows (i0, i1) by four columns of the Hessian, sharing the column loads. */
__attribute__((target("avx2"))) static void irwls_hess_2x4_avx2(int n, const double *c,
                                                                const double *s0, const double *s1,
                                                                const double *b0, const double *b1,
                                                                const double *b2, const double *b3,
                                                                double out0[4], double out1[4]) {
  __m256d a00 = _mm256_setzero_pd(), a01 = a00, a02 = a00, a03 = a00;
  __m256d a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  int g = 0;
  for (; g + 4 <= n; g += 4) {
    __m256d cg = _mm256_loadu_pd(c + g);
    __m256d u0 = _mm256_mul_pd(cg, _mm256_loadu_pd(s0 + g));
    __m256d u1 = _mm256_mul_pd(cg, _mm256_loadu_pd(s1 + g));
    __m256d v = _mm256_loadu_pd(b0 + g);
    a00 = _mm256_add_pd(a00, _mm256_mul_pd(u0, v));
    a10 = _mm256_add_pd(a10, _mm256_mul_pd(u1, v));
    v = _mm256_loadu_pd(b1 + g);
    a01 = _mm256_add_pd(a01, _mm256_mul_pd(u0, v));
    a11 = _mm256_add_pd(a11, _mm256_mul_pd(u1, v));
    v = _mm256_loadu_pd(b2 + g);
    a02 = _mm256_add_pd(a02, _mm256_mul_pd(u0, v));
    a12 = _mm256_add_pd(a12, _mm256_mul_pd(u1, v));
    v = _mm256_loadu_pd(b3 + g);
    a03 = _mm256_add_pd(a03, _mm256_mul_pd(u0, v));
    a13 = _mm256_add_pd(a13, _mm256_mul_pd(u1, v));
  }
  /* the tail accumulates into lane 0 after the vector part, as in the SSE2 code */
  out0[0] = irwls_lanes_tail_avx2(a00, g, n, c, s0, b0);
  out0[1] = irwls_lanes_tail_avx2(a01, g, n, c, s0, b1);
  out0[2] = irwls_lanes_tail_avx2(a02, g, n, c, s0, b2);
  out0[3] = irwls_lanes_tail_avx2(a03, g, n, c, s0, b3);
  out1[0] = irwls_lanes_tail_avx2(a10, g, n, c, s1, b0);
  out1[1] = irwls_lanes_tail_avx2(a11, g, n, c, s1, b1);
  out1[2] = irwls_lanes_tail_avx2(a12, g, n, c, s1, b2);
  out1[3] = irwls_lanes_tail_avx2(a13, g, n, c, s1, b3);
}

static int irwls_avx512(void) {
  return __builtin_cpu_supports("avx512f");
}

/* u_ig = c_g S_ig for the rows in pairs (2p, 2p + 1; an odd last row with itself), the four
 * genes of a block of each row side by side: w[(p * n_blocks + b) * 8 + 4 r + l] holds
 * u_{2p+r, 4b+l} (genes past the last full block of four are left out). */
__attribute__((target("avx512f"))) static void irwls_weight_pairs_avx512(int n_genes, int n_types,
                                                                         const double *c,
                                                                         const double *S_kg,
                                                                         double *w) {
  const size_t G = (size_t)n_genes;
  const int n_blocks = n_genes / 4;
  for (int p = 0; 2 * p < n_types; p++) {
    const double *s0 = S_kg + (size_t)(2 * p) * G;
    const double *s1 = S_kg + (size_t)(2 * p + 1 < n_types ? 2 * p + 1 : 2 * p) * G;
    double *wp = w + (size_t)p * n_blocks * 8;
    for (int b = 0; b < n_blocks; b++) {
      const __m256d cg = _mm256_loadu_pd(c + 4 * b);
      _mm256_storeu_pd(wp + 8 * b, _mm256_mul_pd(cg, _mm256_loadu_pd(s0 + 4 * b)));
      _mm256_storeu_pd(wp + 8 * b + 4, _mm256_mul_pd(cg, _mm256_loadu_pd(s1 + 4 * b)));
    }
  }
}

/* Four rows (two pairs of irwls_weight_pairs_avx512: wa, wb) by four columns of the Hessian,
 * each entry in irwls_dot's four lanes and order (the genes past the last block of four added
 * to lane 0 after the vector part, from c, the rows s_r and the columns), as
 * irwls_hess_2x4_avx2 computes it; two rows share an 8-lane register. */
__attribute__((target("avx512f"))) static void irwls_hess_4x4_avx512(
    int n, const double *wa, const double *wb, const double *c, const double *const s[4],
    const double *const b[4], double out[4][4]) {
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  __m512d e0 = a0, e1 = a0, e2 = a0, e3 = a0;
  const int n_blocks = n / 4;
  for (int k = 0; k < n_blocks; k++) {
    const __m512d ua = _mm512_loadu_pd(wa + 8 * k), ub = _mm512_loadu_pd(wb + 8 * k);
    __m512d v = _mm512_broadcast_f64x4(_mm256_loadu_pd(b[0] + 4 * k));
    a0 = _mm512_add_pd(a0, _mm512_mul_pd(ua, v));
    e0 = _mm512_add_pd(e0, _mm512_mul_pd(ub, v));
    v = _mm512_broadcast_f64x4(_mm256_loadu_pd(b[1] + 4 * k));
    a1 = _mm512_add_pd(a1, _mm512_mul_pd(ua, v));
    e1 = _mm512_add_pd(e1, _mm512_mul_pd(ub, v));
    v = _mm512_broadcast_f64x4(_mm256_loadu_pd(b[2] + 4 * k));
    a2 = _mm512_add_pd(a2, _mm512_mul_pd(ua, v));
    e2 = _mm512_add_pd(e2, _mm512_mul_pd(ub, v));
    v = _mm512_broadcast_f64x4(_mm256_loadu_pd(b[3] + 4 * k));
    a3 = _mm512_add_pd(a3, _mm512_mul_pd(ua, v));
    e3 = _mm512_add_pd(e3, _mm512_mul_pd(ub, v));
  }
  const __m512d acc[2][4] = {{a0, a1, a2, a3}, {e0, e1, e2, e3}};
  const int g = 4 * n_blocks;
  for (int pr = 0; pr < 2; pr++)
    for (int t = 0; t < 4; t++) {
      double l[8];
      _mm512_storeu_pd(l, acc[pr][t]);
      double t0 = l[0], t1 = l[4];
      for (int h = g; h < n; h++) {
        t0 += (c[h] * s[2 * pr][h]) * b[t][h];
        t1 += (c[h] * s[2 * pr + 1][h]) * b[t][h];
      }
      out[2 * pr][t] = (t0 + l[1]) + (l[2] + l[3]);
      out[2 * pr + 1][t] = (t1 + l[5]) + (l[6] + l[7]);
    }
}

/* The Hessian (lower triangle) by tiles of four rows and four columns over the weighted row
 * pairs w (irwls_weight_pairs_avx512): each row's weighted values are formed once, not once
 * per block of columns.  Rows past K - 1 repeat the last row and columns past K - 1 point at
 * row 0; such entries, and those above the diagonal, are discarded. */
__attribute__((target("avx512f"))) static void irwls_hess_tiles_avx512(int n_genes, int n_types,
                                                                       const double *c,
                                                                       const double *S_kg,
                                                                       double *w, double *hess_kk) {
  const size_t G = (size_t)n_genes;
  const int K = n_types, n_pairs = (K + 1) / 2;
  const size_t pair_stride = (size_t)(n_genes / 4) * 8;
  irwls_weight_pairs_avx512(n_genes, K, c, S_kg, w);
  double out[4][4];
  for (int i0 = 0; i0 < K; i0 += 4) {
    const int pa = i0 / 2, pb = pa + 1 < n_pairs ? pa + 1 : pa;
    const double *s[4];
    for (int r = 0; r < 4; r++) s[r] = S_kg + (size_t)(i0 + r < K ? i0 + r : K - 1) * G;
    const int i_last = i0 + 3 < K ? i0 + 3 : K - 1;
    for (int j = 0; j <= i_last; j += 4) {
      const double *b[4];
      for (int t = 0; t < 4; t++) b[t] = S_kg + (size_t)(j + t < K ? j + t : 0) * G;
      irwls_hess_4x4_avx512(n_genes, w + pa * pair_stride, w + pb * pair_stride, c, s, b, out);
      for (int r = 0; r < 4 && i0 + r < K; r++)
        for (int t = 0; t < 4 && j + t <= i0 + r; t++)
          hess_kk[(size_t)(i0 + r) * K + j + t] = out[r][t];
    }
  }
}

/* irwls_grad_hess with the AVX2 kernels. */
__attribute__((target("avx2"))) static void irwls_grad_hess_avx2(int n_genes, int n_types,
                                                                 const double *S_kg, irwls_ws *ws) {
  const size_t G = (size_t)n_genes;
  const int K = n_types;
  double *c = ws->d2_g;
  for (size_t g = 0; g < G; g++) c[g] = -c[g];
  for (int i = 0; i < K; i++) ws->dvec_k[i] = irwls_dot_avx2(n_genes, ws->d1_g, S_kg + i * G);
  /* Rows in pairs (a last odd row is paired with itself), columns in fours up to the diagonal;
   * the last block of a pair may reach past the diagonal or past K - 1 (such columns point at
   * row 0 and are discarded). */
  if (irwls_avx512()) {
    irwls_hess_tiles_avx512(n_genes, K, c, S_kg, ws->upair, ws->hess_kk);
    return;
  }
  double tmp0[4], tmp1[4];
  for (int i = 0; i < K; i += 2) {
    const int i1 = i + 1 < K ? i + 1 : i;
    const double *s0 = S_kg + i * G, *s1 = S_kg + i1 * G;
    double *row0 = ws->hess_kk + (size_t)i * K, *row1 = ws->hess_kk + (size_t)i1 * K;
    for (int j = 0; j <= i1; j += 4) {
      const double *b[4];
      for (int t = 0; t < 4; t++) b[t] = S_kg + (j + t < K ? j + t : 0) * G;
      irwls_hess_2x4_avx2(n_genes, c, s0, s1, b[0], b[1], b[2], b[3], tmp0, tmp1);
      for (int t = 0; t < 4 && j + t <= i; t++) row0[j + t] = tmp0[t];
      for (int t = 0; t < 4 && j + t <= i1; t++) row1[j + t] = tmp1[t];
    }
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
  if (K <= RCTD_IRWLS_SMALL_K_MAX && !opts->bulk_mode &&
      rctd_irwls_small_grad_hess(table, n_genes, K, S_kg, ws->y_g, ws->s_k,
                                 rk_irwls_pred_floor(numi), ws->dvec_k, ws->hess_kk))
    return;
#ifdef IRWLS_HAVE_AVX2
  if (rctd_cpu_simd(-1))
    irwls_predict_avx2(n_genes, K, S_kg, ws->s_k, ws->pred_g);
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
  if (n_types <= RCTD_IRWLS_SMALL_K_MAX && rctd_irwls_small_score(table, n_genes, n_types, S_kg, y_g, weights_k, pred_g,
                                             d0_g, &score))
    return score;
  irwls_predict(n_genes, n_types, S_kg, weights_k, pred_g);
  rctd_spline_eval_fast(table, n_genes, y_g, pred_g, d0_g, NULL, NULL);
  long double sum = 0;
  for (int g = 0; g < n_genes; g++) sum += d0_g[g];
  return -(double)sum;
}
