/* psd(H) / norm(psd(H), "2") for the IRWLS step: the symmetric eigendecomposition with the
 * eigenvalues clamped at 1e-3.  k = 1 and k = 2 are closed forms (a 2 x 2 symmetric matrix is
 * diagonalised exactly by one Jacobi rotation).  Larger k: Householder tridiagonalisation and
 * implicit QL with Wilkinson shifts, written for small dense matrices in our workspace (about
 * three times faster than GSL's symmv at k = 19, whose BLAS-1 calls dominate at this size);
 * GSL's symmv remains as the fallback should the QL ever fail to converge.  Backward stable like
 * LAPACK's dsyevr that R's eigen() calls, so D agrees with R's to rounding.
 *
 * The QL is a chain of dependent square roots and divisions (about 440 rotations at k = 19)
 * that leaves the core mostly idle; rctd_psd_scaled_many runs the QLs of several matrices
 * (the IRWLS steps of several fits) interleaved, rotation by rotation, with each sweep's
 * rotations of the eigenvectors applied after the sweep.  Every matrix gets the same
 * operations in the same order as alone, so the results are the same bits (as are the AVX2
 * and AVX-512 forms of the loops: same operations per element, no FMA). */
#include "cpu/psd.h"

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>
#include <math.h>

#include "common/psd2.h"
#include "cpu/spline_fast.h"

static size_t psd_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

/* The row stride of the k x k work matrices (reduced matrix, reflectors, eigenvectors): k + 7 or
 * more, rounded up to 8.  A row block's 8-lane accesses (masked past the row's end) then never
 * reach the next row, so no load waits on a store to a neighbouring row. */
static int psd_ld(int k) {
  return (k + 14) & ~7;
}

size_t rctd_psd_workspace_bytes(int k) {
  size_t kk = (size_t)(k > 0 ? k : 1);
  /* matrix copy, reflectors, eigenvectors, eigenvalues, four work vectors, and a sweep's
   * rotations (cosines, sines) for the interleaved QL */
  return 3 * psd_align(kk * (size_t)psd_ld(k) * sizeof(double)) + psd_align(kk * sizeof(double)) +
         psd_align(4 * kk * sizeof(double)) + psd_align(2 * kk * sizeof(double));
}

/* k = 1 and 2: the closed forms of kernels/common/psd2.h (shared with the CUDA fits). */
static double psd_one(double h, double *D) {
  return rk_psd_one(h, D);
}

static double psd_two(const double *H, double *D) {
  return rk_psd_two(H[0], H[2], H[3], D);
}

/* sqrt(a^2 + b^2) without overflow or underflow. */
static double psd_hypot(double a, double b) {
  a = fabs(a), b = fabs(b);
  if (a < b) {
    double t = a;
    a = b, b = t;
  }
  if (a == 0) return 0;
  double r = b / a;
  return a * sqrt(1 + r * r);
}

/* Two-lane vectors (GNU vector extension, SSE2) for the O(n^2) inner loops. */
typedef double psd_v2 __attribute__((vector_size(16)));
typedef double psd_v2u __attribute__((vector_size(16), aligned(8), may_alias));
#define PSD_LD(p) (*(const psd_v2u *)(p))
#define PSD_ST(p, v) (*(psd_v2u *)(p) = (v))

/* sum_j x_j y_j in two lanes. */
static double psd_dot(int m, const double *x, const double *y) {
  psd_v2 acc = {0, 0};
  int j = 0;
  for (; j + 2 <= m; j += 2) acc += PSD_LD(x + j) * PSD_LD(y + j);
  double sum = acc[0] + acc[1];
  for (; j < m; j++) sum += x[j] * y[j];
  return sum;
}

/* row -= a x + b y. */
static void psd_sub2(int m, double *restrict row, double a, const double *restrict x, double b,
                     const double *restrict y) {
  const psd_v2 av = {a, a}, bv = {b, b};
  int j = 0;
  for (; j + 2 <= m; j += 2)
    PSD_ST(row + j, PSD_LD(row + j) - (av * PSD_LD(x + j) + bv * PSD_LD(y + j)));
  for (; j < m; j++) row[j] -= a * x[j] + b * y[j];
}

/* row += a x. */
static void psd_axpy(int m, double *restrict row, double a, const double *restrict x) {
  const psd_v2 av = {a, a};
  int j = 0;
  for (; j + 2 <= m; j += 2) PSD_ST(row + j, PSD_LD(row + j) + av * PSD_LD(x + j));
  for (; j < m; j++) row[j] += a * x[j];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PSD_HAVE_AVX2 1
/* AVX2 forms of the elementwise loops (each element computed by the same operations: same
 * bits as the two-lane code). */
__attribute__((target("avx2"))) static void psd_sub2_avx2(int m, double *restrict row, double a,
                                                          const double *restrict x, double b,
                                                          const double *restrict y) {
  const __m256d av = _mm256_set1_pd(a), bv = _mm256_set1_pd(b);
  int j = 0;
  for (; j + 4 <= m; j += 4) {
    __m256d t = _mm256_add_pd(_mm256_mul_pd(av, _mm256_loadu_pd(x + j)),
                              _mm256_mul_pd(bv, _mm256_loadu_pd(y + j)));
    _mm256_storeu_pd(row + j, _mm256_sub_pd(_mm256_loadu_pd(row + j), t));
  }
  for (; j < m; j++) row[j] -= a * x[j] + b * y[j];
}

__attribute__((target("avx2"))) static void psd_axpy_avx2(int m, double *restrict row, double a,
                                                          const double *restrict x) {
  const __m256d av = _mm256_set1_pd(a);
  int j = 0;
  for (; j + 4 <= m; j += 4)
    _mm256_storeu_pd(row + j, _mm256_add_pd(_mm256_loadu_pd(row + j),
                                            _mm256_mul_pd(av, _mm256_loadu_pd(x + j))));
  for (; j < m; j++) row[j] += a * x[j];
}

__attribute__((target("avx2"))) static void psd_rotate_rows_avx2(int n, double *restrict x,
                                                                 double *restrict y, double c,
                                                                 double s) {
  const __m256d cv = _mm256_set1_pd(c), sv = _mm256_set1_pd(s);
  int k = 0;
  for (; k + 4 <= n; k += 4) {
    __m256d a0 = _mm256_loadu_pd(x + k), a1 = _mm256_loadu_pd(y + k);
    _mm256_storeu_pd(y + k, _mm256_add_pd(_mm256_mul_pd(sv, a0), _mm256_mul_pd(cv, a1)));
    _mm256_storeu_pd(x + k, _mm256_sub_pd(_mm256_mul_pd(cv, a0), _mm256_mul_pd(sv, a1)));
  }
  if (k < n) { /* the last 1..3 elements under a mask (masked-off lanes neither read nor written) */
    const __m256i mask =
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - k), _mm256_setr_epi64x(0, 1, 2, 3));
    __m256d a0 = _mm256_maskload_pd(x + k, mask), a1 = _mm256_maskload_pd(y + k, mask);
    _mm256_maskstore_pd(y + k, mask, _mm256_add_pd(_mm256_mul_pd(sv, a0), _mm256_mul_pd(cv, a1)));
    _mm256_maskstore_pd(x + k, mask, _mm256_sub_pd(_mm256_mul_pd(cv, a0), _mm256_mul_pd(sv, a1)));
  }
}
/* D (lower triangle) = sum_m s_m z_m z_m' with every element accumulated over m in order from
 * zero, as the axpy loop of psd_general does, but in registers four columns at a time. */
__attribute__((target("avx2"))) static void psd_reconstruct_avx2(int k, const double *zt,
                                                                 const double *s_k, double *D) {
  const int ld = psd_ld(k);
  for (int i = 0; i < k; i++) {
    double *row = D + (size_t)i * k;
    int j = 0;
    for (; j + 4 <= i + 1; j += 4) {
      __m256d acc = _mm256_setzero_pd();
      for (int m = 0; m < k; m++) {
        const double *z = zt + (size_t)m * ld;
        const __m256d w = _mm256_set1_pd(s_k[m] * z[i]);
        acc = _mm256_add_pd(acc, _mm256_mul_pd(w, _mm256_loadu_pd(z + j)));
      }
      _mm256_storeu_pd(row + j, acc);
    }
    for (; j <= i; j++) {
      double acc = 0;
      for (int m = 0; m < k; m++) acc += (s_k[m] * zt[(size_t)m * ld + i]) * zt[(size_t)m * ld + j];
      row[j] = acc;
    }
  }
}
#endif

/* The Householder reflector of step k of psd_tridiagonalise (shared by its AVX-512 form):
 * v_k (row k of v_nn) and tau_k such that (I - tau v v') maps column k below the diagonal to
 * (alpha, 0, ...); e_k = alpha.  Returns 0 when that column is already zero (tau_k = 0, no
 * reflection needed). */
static int psd_reflector(int n, int k, const double *a, double *e, double *v, double *tau) {
  const int ld = psd_ld(n);
  const int m = n - k - 1;
  double *vk = v + (size_t)k * ld;
  double tail = 0;
  for (int i = 1; i < m; i++) tail += a[(k + 1 + i) * ld + k] * a[(k + 1 + i) * ld + k];
  double x0 = a[(k + 1) * ld + k];
  if (tail == 0) {
    tau[k] = 0;
    e[k] = x0;
    return 0;
  }
  double alpha = -copysign(sqrt(x0 * x0 + tail), x0);
  vk[0] = x0 - alpha;
  for (int i = 1; i < m; i++) vk[i] = a[(k + 1 + i) * ld + k];
  tau[k] = 2 / (vk[0] * vk[0] + tail);
  e[k] = alpha;
  return 1;
}

/* d and e of the tridiagonal form left in a_nn after the last reflector. */
static void psd_tridiagonal_diagonals(int n, const double *a, double *d, double *e) {
  const int ld = psd_ld(n);
  for (int i = 0; i < n; i++) d[i] = a[i * ld + i];
  e[n - 2] = a[(n - 1) * ld + n - 2];
  e[n - 1] = 0;
}

#ifdef PSD_HAVE_AVX2
/* AVX-512 forms of the O(n^3) parts (psd_tridiagonalise, psd_build_qt, the reconstruction),
 * eight columns to a register and the last ones under a mask: every element gets the same
 * operations in the same order as in the code above, so the bits are the same. */
static inline __mmask8 psd_mask8(int left) {
  return (__mmask8)(left >= 8 ? 0xff : left > 0 ? (1u << left) - 1 : 0);
}

/* Calls BLOCK(..., c0, nb) for the column groups c0 = 0, 32, ... of m columns, nb (1 to 4) the
 * group's 8-lane registers as a constant, so that each group's accumulators stay registers. */
#define PSD_GROUPS(m, BLOCK, ...)           \
  for (int c0_ = 0; c0_ < (m); c0_ += 32) { \
    switch (((m)-c0_ + 7) / 8) {            \
      case 1:                               \
        BLOCK(__VA_ARGS__, c0_, 1);         \
        break;                              \
      case 2:                               \
        BLOCK(__VA_ARGS__, c0_, 2);         \
        break;                              \
      case 3:                               \
        BLOCK(__VA_ARGS__, c0_, 3);         \
        break;                              \
      default:                              \
        BLOCK(__VA_ARGS__, c0_, 4);         \
        break;                              \
    }                                       \
  }

/* p[c] = tau (B v)[c] for the columns c0 .. c0 + 8 nb of one group: B by rows (B is exactly
 * symmetric: the rank-two updates give a_ij and a_ji the same two products), even and odd
 * terms apart as psd_dot's two lanes sum them, the odd last term added after.  The rows are
 * the outer loop, so the group's 2 nb sums are independent chains. */
__attribute__((target("avx512f"), always_inline)) static inline void psd_bv_group_avx512(
    int m, int ld, const double *B, const double *vk, double tau, double *p, int c0, const int nb) {
  __mmask8 mk[4];
  __m512d even[4], odd[4];
#pragma GCC unroll 4
  for (int b = 0; b < nb; b++) {
    mk[b] = psd_mask8(m - c0 - 8 * b);
    even[b] = odd[b] = _mm512_setzero_pd();
  }
  int j = 0;
  for (; j + 2 <= m; j += 2) {
    const __m512d v0 = _mm512_set1_pd(vk[j]), v1 = _mm512_set1_pd(vk[j + 1]);
    const double *r0 = B + (size_t)j * ld + c0, *r1 = r0 + ld;
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++) {
      even[b] = _mm512_add_pd(even[b], _mm512_mul_pd(_mm512_maskz_loadu_pd(mk[b], r0 + 8 * b), v0));
      odd[b] = _mm512_add_pd(odd[b], _mm512_mul_pd(_mm512_maskz_loadu_pd(mk[b], r1 + 8 * b), v1));
    }
  }
  const __m512d tau_v = _mm512_set1_pd(tau);
#pragma GCC unroll 4
  for (int b = 0; b < nb; b++) {
    __m512d sum = _mm512_add_pd(even[b], odd[b]);
    if (j < m)
      sum = _mm512_add_pd(
          sum, _mm512_mul_pd(_mm512_maskz_loadu_pd(mk[b], B + (size_t)j * ld + c0 + 8 * b),
                             _mm512_set1_pd(vk[j])));
    _mm512_mask_storeu_pd(p + c0 + 8 * b, mk[b], _mm512_mul_pd(tau_v, sum));
  }
}

/* B -= v p' + p v' on the columns of one group (p and v of the group held in registers). */
__attribute__((target("avx512f"), always_inline)) static inline void psd_rank2_group_avx512(
    int m, int ld, double *B, const double *vk, const double *p, int c0, const int nb) {
  __mmask8 mk[4];
  __m512d pc[4], vc[4];
#pragma GCC unroll 4
  for (int b = 0; b < nb; b++) {
    mk[b] = psd_mask8(m - c0 - 8 * b);
    pc[b] = _mm512_maskz_loadu_pd(mk[b], p + c0 + 8 * b);
    vc[b] = _mm512_maskz_loadu_pd(mk[b], vk + c0 + 8 * b);
  }
  for (int i = 0; i < m; i++) {
    double *row = B + (size_t)i * ld + c0;
    const __m512d vi = _mm512_set1_pd(vk[i]), pi = _mm512_set1_pd(p[i]);
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++) {
      const __m512d t = _mm512_add_pd(_mm512_mul_pd(vi, pc[b]), _mm512_mul_pd(pi, vc[b]));
      _mm512_mask_storeu_pd(row + 8 * b, mk[b],
                            _mm512_sub_pd(_mm512_maskz_loadu_pd(mk[b], row + 8 * b), t));
    }
  }
}

/* psd_tridiagonalise's step k. */
__attribute__((target("avx512f"))) static void psd_tridiagonal_step_avx512(int n, int k, double *a,
                                                                           double *e, double *v,
                                                                           double *tau, double *p) {
  const int ld = psd_ld(n);
  if (!psd_reflector(n, k, a, e, v, tau)) return;
  const int m = n - k - 1;
  const double *vk = v + (size_t)k * ld;
  double *B = a + (size_t)(k + 1) * ld + k + 1; /* row r at B + r ld */
  PSD_GROUPS(m, psd_bv_group_avx512, m, ld, B, vk, tau[k], p)
  double vp = 0;
  for (int i = 0; i < m; i++) vp += vk[i] * p[i];
  const double half = 0.5 * tau[k] * vp;
  for (int i = 0; i < m; i++) p[i] -= half * vk[i];
  PSD_GROUPS(m, psd_rank2_group_avx512, m, ld, B, vk, p)
}

__attribute__((target("avx512f"))) static void psd_tridiagonalise_avx512(int n, double *a,
                                                                         double *d, double *e,
                                                                         double *v, double *tau,
                                                                         double *p) {
  for (int k = 0; k < n - 2; k++) psd_tridiagonal_step_avx512(n, k, a, e, v, tau, p);
  psd_tridiagonal_diagonals(n, a, d, e);
}

/* psd_build_qt's step on the columns of one group: p = v' Z with the rows as the outer loop
 * (the group's nb sums are independent chains), then Z -= tau v p' with p held in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void psd_qt_group_avx512(
    int m, int ld, double *Z, const double *vk, double tau, int c0, const int nb) {
  __mmask8 mk[4];
  __m512d acc[4];
#pragma GCC unroll 4
  for (int b = 0; b < nb; b++) {
    mk[b] = psd_mask8(m - c0 - 8 * b);
    acc[b] = _mm512_setzero_pd();
  }
  for (int i = 0; i < m; i++) {
    const __m512d vi = _mm512_set1_pd(vk[i]);
    const double *row = Z + (size_t)i * ld + c0;
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++)
      acc[b] = _mm512_add_pd(acc[b], _mm512_mul_pd(vi, _mm512_maskz_loadu_pd(mk[b], row + 8 * b)));
  }
  for (int i = 0; i < m; i++) {
    const __m512d w = _mm512_set1_pd(-tau * vk[i]);
    double *row = Z + (size_t)i * ld + c0;
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++)
      _mm512_mask_storeu_pd(
          row + 8 * b, mk[b],
          _mm512_add_pd(_mm512_maskz_loadu_pd(mk[b], row + 8 * b), _mm512_mul_pd(w, acc[b])));
  }
}

/* psd_build_qt's step k (p unused: the products stay in registers). */
__attribute__((target("avx512f"))) static void psd_qt_step_avx512(int n, int k, double *zt,
                                                                  const double *v,
                                                                  const double *tau, double *p) {
  (void)p;
  if (tau[k] == 0) return;
  const int ld = psd_ld(n);
  const int m = n - k - 1;
  const double *vk = v + (size_t)k * ld;
  double *Z = zt + (size_t)(k + 1) * ld + k + 1; /* row r at Z + r ld */
  PSD_GROUPS(m, psd_qt_group_avx512, m, ld, Z, vk, tau[k])
}

static void psd_qt_transpose(int n, double *zt) {
  const int ld = psd_ld(n);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) {
      double t = zt[i * ld + j];
      zt[i * ld + j] = zt[j * ld + i];
      zt[j * ld + i] = t;
    }
}

static void psd_build_qt_avx512(int n, double *zt, const double *v, const double *tau, double *p) {
  const int ld = psd_ld(n);
  for (int i = 0; i < n * ld; i++) zt[i] = 0;
  for (int i = 0; i < n; i++) zt[i * ld + i] = 1;
  for (int k = n - 3; k >= 0; k--) psd_qt_step_avx512(n, k, zt, v, tau, p);
  psd_qt_transpose(n, zt);
}

/* Rows i0 .. i0 + 3 of D's lower triangle, columns 0 .. 8 nb - 1 (8 nb >= i0 + 4; columns
 * beyond a row's diagonal are computed too and left for the mirror to overwrite): each
 * element accumulated over m in order from zero as psd_reconstruct_avx2 does, four rows at a
 * time so that each z_m block loaded serves four rows. */
__attribute__((target("avx512f"), always_inline)) static inline void psd_reconstruct_rows4_avx512(
    int k, int ld, const double *zt, const double *s_k, double *D, int i0, const int nb) {
  __mmask8 mk[4];
  __m512d acc[4][4];
#pragma GCC unroll 4
  for (int b = 0; b < nb; b++) {
    mk[b] = psd_mask8(k - 8 * b);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) acc[r][b] = _mm512_setzero_pd();
  }
  for (int m = 0; m < k; m++) {
    const double *z = zt + (size_t)m * ld;
    __m512d zb[4];
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++) zb[b] = _mm512_maskz_loadu_pd(mk[b], z + 8 * b);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
      const __m512d w = _mm512_set1_pd(s_k[m] * z[i0 + r]);
#pragma GCC unroll 4
      for (int b = 0; b < nb; b++) acc[r][b] = _mm512_add_pd(acc[r][b], _mm512_mul_pd(w, zb[b]));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
    for (int b = 0; b < nb; b++)
      _mm512_mask_storeu_pd(D + (size_t)(i0 + r) * k + 8 * b, mk[b], acc[r][b]);
}

/* psd_reconstruct_avx2, eight columns at a time: four rows at a time while a row's columns fit
 * four registers (k <= 32), the rest row by row. */
__attribute__((target("avx512f"))) static void psd_reconstruct_avx512(int k, const double *zt,
                                                                      const double *s_k,
                                                                      double *D) {
  const int ld = psd_ld(k);
  int i = 0;
  for (; i + 4 <= k && i + 4 <= 32; i += 4) {
    switch ((i + 4 + 7) / 8) {
      case 1:
        psd_reconstruct_rows4_avx512(k, ld, zt, s_k, D, i, 1);
        break;
      case 2:
        psd_reconstruct_rows4_avx512(k, ld, zt, s_k, D, i, 2);
        break;
      case 3:
        psd_reconstruct_rows4_avx512(k, ld, zt, s_k, D, i, 3);
        break;
      default:
        psd_reconstruct_rows4_avx512(k, ld, zt, s_k, D, i, 4);
        break;
    }
  }
  for (; i < k; i++) {
    double *row = D + (size_t)i * k;
    for (int j = 0; j <= i; j += 8) {
      const __mmask8 mk = psd_mask8(i + 1 - j);
      __m512d acc = _mm512_setzero_pd();
      for (int m = 0; m < k; m++) {
        const double *z = zt + (size_t)m * ld;
        const __m512d w = _mm512_set1_pd(s_k[m] * z[i]);
        acc = _mm512_add_pd(acc, _mm512_mul_pd(w, _mm512_maskz_loadu_pd(mk, z + j)));
      }
      _mm512_mask_storeu_pd(row + j, mk, acc);
    }
  }
}

static int psd_avx512(void) {
  return __builtin_cpu_supports("avx512f");
}
#endif

/* 0: plain C, 1: AVX2, 2: AVX-512 (all the same bits). */
static int psd_simd_level(void) {
  const int simd = rctd_cpu_simd(-1);
#ifdef PSD_HAVE_AVX2
  return simd && psd_avx512() ? 2 : simd;
#else
  return simd;
#endif
}

/* Dispatch on the caller's flag (rctd_cpu_simd, read once per decomposition). */
static void psd_sub2_x(int simd, int m, double *restrict row, double a, const double *restrict x,
                       double b, const double *restrict y) {
#ifdef PSD_HAVE_AVX2
  if (simd) {
    psd_sub2_avx2(m, row, a, x, b, y);
    return;
  }
#endif
  (void)simd;
  psd_sub2(m, row, a, x, b, y);
}

static void psd_axpy_x(int simd, int m, double *restrict row, double a, const double *restrict x) {
#ifdef PSD_HAVE_AVX2
  if (simd) {
    psd_axpy_avx2(m, row, a, x);
    return;
  }
#endif
  (void)simd;
  psd_axpy(m, row, a, x);
}

/* Householder reduction of the symmetric a_nn (full storage, destroyed) to tridiagonal form
 * T = Q' A Q: diagonal d, subdiagonal e (e[i] couples i and i + 1); the reflectors I - tau v v'
 * in the rows of v_nn and in tau_n (psd_build_qt makes Q' of them).  p_n is scratch. */
static void psd_tridiagonalise(int simd, int n, double *a, double *d, double *e, double *v,
                               double *tau, double *p) {
  const int ld = psd_ld(n);
  for (int k = 0; k < n - 2; k++) {
    if (!psd_reflector(n, k, a, e, v, tau)) continue;
    const int m = n - k - 1; /* the reflector acts on indices k+1 .. n-1 */
    const double *vk = v + (size_t)k * ld;
    /* B <- H B H with H = I - tau v v': p = tau B v, w = p - (tau/2)(v'p) v, B -= v w' + w v'. */
    double vp = 0;
    for (int i = 0; i < m; i++) {
      p[i] = tau[k] * psd_dot(m, a + (size_t)(k + 1 + i) * ld + k + 1, vk);
      vp += vk[i] * p[i];
    }
    const double half = 0.5 * tau[k] * vp;
    for (int i = 0; i < m; i++) p[i] -= half * vk[i];
    for (int i = 0; i < m; i++)
      psd_sub2_x(simd, m, a + (size_t)(k + 1 + i) * ld + k + 1, vk[i], p, p[i], vk);
  }
  psd_tridiagonal_diagonals(n, a, d, e);
}

/* zt_nn = Q' for the reflectors (v, tau) of psd_tridiagonalise; p_n is scratch. */
static void psd_build_qt(int simd, int n, double *zt, const double *v, const double *tau,
                         double *p) {
  const int ld = psd_ld(n);
  /* Q = H_0 H_1 ... H_{n-3}, built from the right end; Q is symmetric in no way, so transpose
   * once at the end (the QL sweeps rotate rows of Q'). */
  for (int i = 0; i < n * ld; i++) zt[i] = 0;
  for (int i = 0; i < n; i++) zt[i * ld + i] = 1;
  for (int k = n - 3; k >= 0; k--) {
    if (tau[k] == 0) continue;
    const int m = n - k - 1;
    const double *vk = v + (size_t)k * ld;
    /* rows k+1.. of Q <- H_k Q: Q -= tau v (v' Q), columns k+1.. only (the rest is identity). */
    for (int j = 0; j < m; j++) p[j] = 0;
    for (int i = 0; i < m; i++)
      psd_axpy_x(simd, m, p, vk[i], zt + (size_t)(k + 1 + i) * ld + k + 1);
    for (int i = 0; i < m; i++)
      psd_axpy_x(simd, m, zt + (size_t)(k + 1 + i) * ld + k + 1, -tau[k] * vk[i], p);
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) {
      double t = zt[i * ld + j];
      zt[i * ld + j] = zt[j * ld + i];
      zt[j * ld + i] = t;
    }
}

/* (x, y) <- (c x - s y, s x + c y) elementwise, two lanes at a time. */
static void psd_rotate_rows(int n, double *restrict x, double *restrict y, double c, double s) {
  const psd_v2 cv = {c, c}, sv = {s, s};
  int k = 0;
  for (; k + 2 <= n; k += 2) {
    psd_v2 a0 = *(psd_v2u *)(x + k), a1 = *(psd_v2u *)(y + k);
    *(psd_v2u *)(y + k) = sv * a0 + cv * a1;
    *(psd_v2u *)(x + k) = cv * a0 - sv * a1;
  }
  for (; k < n; k++) {
    double a0 = x[k], a1 = y[k];
    y[k] = s * a0 + c * a1;
    x[k] = c * a0 - s * a1;
  }
}

static void psd_rotate_rows_x(int simd, int n, double *restrict x, double *restrict y, double c,
                              double s) {
#ifdef PSD_HAVE_AVX2
  if (simd) {
    psd_rotate_rows_avx2(n, x, y, c, s);
    return;
  }
#endif
  (void)simd;
  psd_rotate_rows(n, x, y, c, s);
}

/* Implicit QL with Wilkinson shifts on the tridiagonal (d, e), rotating the rows of zt, so that
 * on return d holds the eigenvalues and row m of zt the eigenvector of d[m].  -1 when an
 * eigenvalue needs more than 60 sweeps. */
static int psd_tridiagonal_ql(int simd, int n, double *d, double *e, double *zt) {
  const int ld = psd_ld(n);
  for (int l = 0; l < n; l++) {
    for (int iter = 0;; iter++) {
      int m = l;
      for (; m < n - 1; m++)
        if (fabs(e[m]) <= 0x1p-53 * (fabs(d[m]) + fabs(d[m + 1]))) break;
      if (m == l) break;
      if (iter == 60) return -1;
      double g = (d[l + 1] - d[l]) / (2 * e[l]);
      double r = psd_hypot(g, 1);
      g = d[m] - d[l] + e[l] / (g + copysign(r, g));
      double s = 1, c = 1, p = 0;
      int i = m - 1;
      for (; i >= l; i--) {
        double f = s * e[i], b = c * e[i];
        r = sqrt(f * f + g * g); /* entries are O(1) after scaling; guard the tiny and huge */
        if (!(r > 0x1p-500 && r < 0x1p500)) r = psd_hypot(f, g);
        e[i + 1] = r;
        if (r == 0) { /* underflow: deflate and restart this eigenvalue */
          d[i + 1] -= p;
          e[m] = 0;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        psd_rotate_rows_x(simd, n, zt + (size_t)i * ld, zt + (size_t)(i + 1) * ld, c, s);
      }
      if (r == 0 && i >= l) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
  return 0;
}

/* GSL's symmetric QR: a fallback for the (never yet seen) case of the QL not converging. */
static void psd_eigen_gsl(int n, double *a, double *d, double *zt, double *v, double *work4) {
  const int ld = psd_ld(n);
  gsl_eigen_symmv_workspace gws = {(size_t)n, work4, work4 + n, work4 + 2 * n, work4 + 3 * n};
  gsl_matrix_view av = gsl_matrix_view_array_with_tda(a, (size_t)n, (size_t)n, (size_t)ld);
  gsl_matrix_view vv = gsl_matrix_view_array_with_tda(v, (size_t)n, (size_t)n, (size_t)ld);
  gsl_vector_view dv = gsl_vector_view_array(d, (size_t)n);
  gsl_eigen_symmv(&av.matrix, &dv.vector, &vv.matrix, &gws);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) zt[j * ld + i] = v[i * ld + j];
}

/* One matrix's arrays in its workspace. */
typedef struct {
  double *a_kk, *v_kk, *zt_kk, *d_k, *work; /* work: 4 k (e, tau, scratch; GSL's four vectors) */
  double *cos_k, *sin_k;                    /* a sweep's rotations (interleaved QL) */
  int expo, pow2_ok;
} psd_mat;

static psd_mat psd_carve(int k, void *workspace) {
  const size_t kk = (size_t)k;
  char *p = workspace;
  psd_mat m;
  m.a_kk = (double *)p, p += psd_align(kk * (size_t)psd_ld(k) * sizeof(double));
  m.v_kk = (double *)p, p += psd_align(kk * (size_t)psd_ld(k) * sizeof(double));
  m.zt_kk = (double *)p, p += psd_align(kk * (size_t)psd_ld(k) * sizeof(double));
  m.d_k = (double *)p, p += psd_align(kk * sizeof(double));
  m.work = (double *)p, p += psd_align(4 * kk * sizeof(double));
  m.cos_k = (double *)p, m.sin_k = m.cos_k + kk;
  m.expo = 0, m.pow2_ok = 1;
  return m;
}

/* Everything before the QL: the power-of-two scaling, the tridiagonal (d_k, e = work) and Q'. */
#ifdef PSD_HAVE_AVX2
/* The lower triangle of H row by row: whether every entry is finite (all < inf in magnitude),
 * and the largest magnitude (exact whatever the order). */
__attribute__((target("avx512f"))) static int psd_lower_scan_avx512(int k, const double *H,
                                                                    double *amax) {
  const __m512d inf = _mm512_set1_pd(INFINITY);
  __m512d mx = _mm512_setzero_pd();
  __mmask8 finite = 0xff;
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j += 8) {
      const __mmask8 mk = psd_mask8(i + 1 - j);
      const __m512d v = _mm512_abs_pd(_mm512_maskz_loadu_pd(mk, H + (size_t)i * k + j));
      finite &= _mm512_cmp_pd_mask(v, inf, _CMP_LT_OQ) | (__mmask8)~mk;
      mx = _mm512_max_pd(mx, v);
    }
  *amax = _mm512_reduce_max_pd(mx);
  return finite == 0xff;
}

/* a_kk's lower triangle = H's times down (a power of two), row by row; the caller mirrors. */
__attribute__((target("avx512f"))) static void psd_scale_rows_avx512(int k, int ld, const double *H,
                                                                     double down, double *a) {
  const __m512d dv = _mm512_set1_pd(down);
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j += 8) {
      const __mmask8 mk = psd_mask8(i + 1 - j);
      _mm512_mask_storeu_pd(a + (size_t)i * ld + j, mk,
                            _mm512_mul_pd(_mm512_maskz_loadu_pd(mk, H + (size_t)i * k + j), dv));
    }
}
#endif

/* Whether H's lower triangle is finite. */
static int psd_finite(int simd, int k, const double *H) {
#ifdef PSD_HAVE_AVX2
  if (simd == 2) {
    double amax;
    return psd_lower_scan_avx512(k, H, &amax);
  }
#endif
  (void)simd;
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++)
      if (!isfinite(H[i * k + j])) return 0;
  return 1;
}

static void psd_scale(int simd, int k, const double *H, psd_mat *m) {
  const int ld = psd_ld(k);
  /* Scale by a power of two (exact) so that the reduction works on entries of order one. */
  double amax = 0;
#ifdef PSD_HAVE_AVX2
  if (simd == 2)
    psd_lower_scan_avx512(k, H, &amax);
  else
#endif
    for (int i = 0; i < k; i++)
      for (int j = 0; j <= i; j++) {
        double v = fabs(H[i * k + j]); /* finite (checked by the caller) */
        if (v > amax) amax = v;
      }
  int expo = 0;
  if (amax > 0) frexp(amax, &expo);
  /* x * 2^-expo is ldexp(x, -expo) (both the correctly rounded product) when 2^-expo is normal */
  const int pow2_ok = expo > -1000 && expo < 1000;
  const double down = pow2_ok ? ldexp(1.0, -expo) : 0;
  m->expo = expo, m->pow2_ok = pow2_ok;
#ifdef PSD_HAVE_AVX2
  if (simd == 2 && pow2_ok) {
    psd_scale_rows_avx512(k, ld, H, down, m->a_kk);
    for (int i = 0; i < k; i++)
      for (int j = 0; j < i; j++) m->a_kk[j * ld + i] = m->a_kk[i * ld + j];
    return;
  }
#endif
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++)
      m->a_kk[i * ld + j] = m->a_kk[j * ld + i] =
          pow2_ok ? H[i * k + j] * down : ldexp(H[i * k + j], -expo);
}

static void psd_prepare(int simd, int k, const double *H, psd_mat *m) {
  psd_scale(simd, k, H, m);
  const size_t kk = (size_t)k;
#ifdef PSD_HAVE_AVX2
  if (simd == 2) {
    psd_tridiagonalise_avx512(k, m->a_kk, m->d_k, m->work, m->v_kk, m->work + kk, m->work + 2 * kk);
    psd_build_qt_avx512(k, m->zt_kk, m->v_kk, m->work + kk, m->work + 2 * kk);
    return;
  }
#endif
  psd_tridiagonalise(simd, k, m->a_kk, m->d_k, m->work, m->v_kk, m->work + kk, m->work + 2 * kk);
  psd_build_qt(simd, k, m->zt_kk, m->v_kk, m->work + kk, m->work + 2 * kk);
}

/* psd_prepare on n_m matrices, their Householder steps interleaved. */
static void psd_prepare_many(int simd, int k, int n_m, const double *const *H, psd_mat *m) {
  const int ld = psd_ld(k);
#ifdef PSD_HAVE_AVX2
  if (simd == 2) {
    const size_t kk = (size_t)k;
    for (int t = 0; t < n_m; t++) psd_scale(simd, k, H[t], &m[t]);
    for (int s = 0; s < k - 2; s++)
      for (int t = 0; t < n_m; t++)
        psd_tridiagonal_step_avx512(k, s, m[t].a_kk, m[t].work, m[t].v_kk, m[t].work + kk,
                                    m[t].work + 2 * kk);
    for (int t = 0; t < n_m; t++) {
      double *a = m[t].a_kk, *d = m[t].d_k, *e = m[t].work, *zt = m[t].zt_kk;
      for (int i = 0; i < k; i++) d[i] = a[i * ld + i];
      e[k - 2] = a[(k - 1) * ld + k - 2];
      e[k - 1] = 0;
      for (int i = 0; i < k * ld; i++) zt[i] = 0;
      for (int i = 0; i < k; i++) zt[i * ld + i] = 1;
    }
    for (int s = k - 3; s >= 0; s--)
      for (int t = 0; t < n_m; t++)
        psd_qt_step_avx512(k, s, m[t].zt_kk, m[t].v_kk, m[t].work + kk, m[t].work + 2 * kk);
    for (int t = 0; t < n_m; t++) psd_qt_transpose(k, m[t].zt_kk);
    return;
  }
#endif
  for (int t = 0; t < n_m; t++) psd_prepare(simd, k, H[t], &m[t]);
}

/* Everything after the QL (ql_failed: GSL's solver instead): the clamped eigenvalues, the norm,
 * and D = sum_m (mu_m / norm) z_m z_m'. */
static double psd_finish(int simd, int k, const double *H, double *D, psd_mat *m, int ql_failed) {
  const int ld = psd_ld(k);
  double *d_k = m->d_k, *zt_kk = m->zt_kk, *work = m->work;
  const int expo = m->expo, pow2_ok = m->pow2_ok;
  if (ql_failed) {
    for (int i = 0; i < k; i++)
      for (int j = 0; j <= i; j++)
        m->a_kk[i * ld + j] = m->a_kk[j * ld + i] = ldexp(H[i * k + j], -expo);
    psd_eigen_gsl(k, m->a_kk, d_k, zt_kk, m->v_kk, work);
  }
  const double up = pow2_ok ? ldexp(1.0, expo) : 0;
  double norm = RCTD_PSD_EIG_FLOOR;
  for (int i = 0; i < k; i++) {
    double v = pow2_ok ? d_k[i] * up : ldexp(d_k[i], expo);
    d_k[i] = v > RCTD_PSD_EIG_FLOOR ? v : RCTD_PSD_EIG_FLOOR; /* fmax: v is not NaN */
    if (d_k[i] > norm) norm = d_k[i];
  }
  /* D = sum_m (mu_m / norm) z_m z_m' (lower triangle accumulated row by row, then mirrored). */
#ifdef PSD_HAVE_AVX2
  if (simd) {
    double *s_k = work; /* e, tau and the scratch are no longer needed */
    for (int i = 0; i < k; i++) s_k[i] = d_k[i] / norm;
    if (simd == 2)
      psd_reconstruct_avx512(k, zt_kk, s_k, D);
    else
      psd_reconstruct_avx2(k, zt_kk, s_k, D);
  } else
#endif
  {
    for (int i = 0; i < k * k; i++) D[i] = 0;
    for (int r = 0; r < k; r++) {
      const double *z = zt_kk + (size_t)r * ld;
      const double s = d_k[r] / norm;
      for (int i = 0; i < k; i++) psd_axpy_x(simd, i + 1, D + (size_t)i * k, s * z[i], z);
    }
  }
  for (int i = 0; i < k; i++)
    for (int j = 0; j < i; j++) D[j * k + i] = D[i * k + j];
  return norm;
}

static double psd_general(int k, const double *H, double *D, void *workspace) {
  const int simd = psd_simd_level();
  psd_mat m = psd_carve(k, workspace);
  psd_prepare(simd, k, H, &m);
  int failed = psd_tridiagonal_ql(simd, k, m.d_k, m.work, m.zt_kk) != 0;
  return psd_finish(simd, k, H, D, &m, failed);
}

/* ---- the interleaved QL ---- */

/* The rotations i = hi-1 down to lo of one sweep, (row i, row i+1) <- (c x - s y, s x + c y),
 * on the rows of zt: what psd_tridiagonal_ql's psd_rotate_rows_x calls do, element by element
 * the same operations in the same order, but a column block at a time with the lower row
 * carried in a register. */
static void psd_sweep_rows(int n, double *zt, int lo, int hi, const double *cs, const double *sn) {
  const int ld = psd_ld(n);
  for (int j = 0; j < n; j++) {
    double y = zt[(size_t)hi * ld + j];
    for (int i = hi - 1; i >= lo; i--) {
      double x = zt[(size_t)i * ld + j];
      zt[(size_t)(i + 1) * ld + j] = sn[i] * x + cs[i] * y;
      y = cs[i] * x - sn[i] * y;
    }
    zt[(size_t)lo * ld + j] = y;
  }
}

#ifdef PSD_HAVE_AVX2
/* Blocks of 16 columns: four registers carried at once (independent chains), the last
 * partial register under a mask. */
__attribute__((target("avx2"))) static void psd_sweep_rows_avx2(int n, double *zt, int lo, int hi,
                                                                const double *cs,
                                                                const double *sn) {
  const int ld = psd_ld(n);
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
  for (int j0 = 0; j0 < n; j0 += 16) {
    __m256i mask[4];
    for (int b = 0; b < 4; b++)
      mask[b] = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - j0 - 4 * b), lane);
    const double *top = zt + (size_t)hi * ld + j0;
    __m256d y0 = _mm256_maskload_pd(top, mask[0]), y1 = _mm256_maskload_pd(top + 4, mask[1]);
    __m256d y2 = _mm256_maskload_pd(top + 8, mask[2]), y3 = _mm256_maskload_pd(top + 12, mask[3]);
    for (int i = hi - 1; i >= lo; i--) {
      const __m256d c = _mm256_set1_pd(cs[i]), s = _mm256_set1_pd(sn[i]);
      const double *xi = zt + (size_t)i * ld + j0;
      double *yi = zt + (size_t)(i + 1) * ld + j0;
      const __m256d x0 = _mm256_maskload_pd(xi, mask[0]), x1 = _mm256_maskload_pd(xi + 4, mask[1]);
      const __m256d x2 = _mm256_maskload_pd(xi + 8, mask[2]);
      const __m256d x3 = _mm256_maskload_pd(xi + 12, mask[3]);
      _mm256_maskstore_pd(yi, mask[0], _mm256_add_pd(_mm256_mul_pd(s, x0), _mm256_mul_pd(c, y0)));
      _mm256_maskstore_pd(yi + 4, mask[1],
                          _mm256_add_pd(_mm256_mul_pd(s, x1), _mm256_mul_pd(c, y1)));
      _mm256_maskstore_pd(yi + 8, mask[2],
                          _mm256_add_pd(_mm256_mul_pd(s, x2), _mm256_mul_pd(c, y2)));
      _mm256_maskstore_pd(yi + 12, mask[3],
                          _mm256_add_pd(_mm256_mul_pd(s, x3), _mm256_mul_pd(c, y3)));
      y0 = _mm256_sub_pd(_mm256_mul_pd(c, x0), _mm256_mul_pd(s, y0));
      y1 = _mm256_sub_pd(_mm256_mul_pd(c, x1), _mm256_mul_pd(s, y1));
      y2 = _mm256_sub_pd(_mm256_mul_pd(c, x2), _mm256_mul_pd(s, y2));
      y3 = _mm256_sub_pd(_mm256_mul_pd(c, x3), _mm256_mul_pd(s, y3));
    }
    double *bottom = zt + (size_t)lo * ld + j0;
    _mm256_maskstore_pd(bottom, mask[0], y0);
    _mm256_maskstore_pd(bottom + 4, mask[1], y1);
    _mm256_maskstore_pd(bottom + 8, mask[2], y2);
    _mm256_maskstore_pd(bottom + 12, mask[3], y3);
  }
}

/* One block of 8 nreg columns from column j0 (nreg a constant where inlined: the registers
 * stay registers), the last register under a mask: nreg independent chains.  Every load of
 * row i comes before the stores to row i + 1: the last register's masked load reaches into row
 * i + 1, and a load that overlaps a pending store waits for it. */
__attribute__((target("avx512f"), always_inline)) static inline void psd_sweep_block_avx512(
    int n, double *zt, int lo, int hi, const double *cs, const double *sn, int j0, const int nreg) {
  const int ld = psd_ld(n);
  __mmask8 mask[4];
  __m512d x[4], y[4];
#pragma GCC unroll 4
  for (int b = 0; b < nreg; b++) {
    mask[b] = psd_mask8(n - j0 - 8 * b);
    y[b] = _mm512_maskz_loadu_pd(mask[b], zt + (size_t)hi * ld + j0 + 8 * b);
  }
  for (int i = hi - 1; i >= lo; i--) {
    const __m512d c = _mm512_set1_pd(cs[i]), s = _mm512_set1_pd(sn[i]);
    const double *xi = zt + (size_t)i * ld + j0;
    double *yi = zt + (size_t)(i + 1) * ld + j0;
#pragma GCC unroll 4
    for (int b = 0; b < nreg; b++) x[b] = _mm512_maskz_loadu_pd(mask[b], xi + 8 * b);
#pragma GCC unroll 4
    for (int b = 0; b < nreg; b++) {
      _mm512_mask_storeu_pd(yi + 8 * b, mask[b],
                            _mm512_add_pd(_mm512_mul_pd(s, x[b]), _mm512_mul_pd(c, y[b])));
      y[b] = _mm512_sub_pd(_mm512_mul_pd(c, x[b]), _mm512_mul_pd(s, y[b]));
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < nreg; b++)
    _mm512_mask_storeu_pd(zt + (size_t)lo * ld + j0 + 8 * b, mask[b], y[b]);
}

/* Blocks of 32 columns in four 8-lane registers (four independent chains per rotation), the
 * last block only as many registers as it has columns (k = 30: one block, 30 of 32 lanes). */
__attribute__((target("avx512f"))) static void psd_sweep_rows_avx512(int n, double *zt, int lo,
                                                                     int hi, const double *cs,
                                                                     const double *sn) {
  int j0 = 0;
  for (; j0 + 32 <= n; j0 += 32) psd_sweep_block_avx512(n, zt, lo, hi, cs, sn, j0, 4);
  switch ((n - j0 + 7) / 8) {
    case 4:
      psd_sweep_block_avx512(n, zt, lo, hi, cs, sn, j0, 4);
      break;
    case 3:
      psd_sweep_block_avx512(n, zt, lo, hi, cs, sn, j0, 3);
      break;
    case 2:
      psd_sweep_block_avx512(n, zt, lo, hi, cs, sn, j0, 2);
      break;
    case 1:
      psd_sweep_block_avx512(n, zt, lo, hi, cs, sn, j0, 1);
      break;
    default:
      break;
  }
}

#endif

/* simd: 0 plain, 1 AVX2, 2 AVX-512 (the same bits). */
static void psd_sweep_rows_x(int simd, int n, double *zt, int lo, int hi, const double *cs,
                             const double *sn) {
#ifdef PSD_HAVE_AVX2
  if (simd == 2) {
    psd_sweep_rows_avx512(n, zt, lo, hi, cs, sn);
    return;
  }
  if (simd) {
    psd_sweep_rows_avx2(n, zt, lo, hi, cs, sn);
    return;
  }
#endif
  psd_sweep_rows(n, zt, lo, hi, cs, sn);
}

/* psd_tridiagonal_ql's state between two rotations. */
typedef struct {
  double *d, *e, *zt, *cs, *sn;
  double s, c, p, g;
  int l, m, i, iter;
  int status; /* 1 in a sweep, 0 done, -1 failed (more than 60 sweeps for one eigenvalue) */
} psd_ql_state;

/* Finds the next sweep (from eigenvalue l on) and its shift, as psd_tridiagonal_ql does. */
static void psd_ql_next(int n, psd_ql_state *q) {
  double *d = q->d, *e = q->e;
  for (;;) {
    const int l = q->l;
    if (l >= n) {
      q->status = 0;
      return;
    }
    int m = l;
    for (; m < n - 1; m++)
      if (fabs(e[m]) <= 0x1p-53 * (fabs(d[m]) + fabs(d[m + 1]))) break;
    if (m == l) {
      q->l++;
      q->iter = 0;
      continue;
    }
    if (q->iter == 60) {
      q->status = -1;
      return;
    }
    double g = (d[l + 1] - d[l]) / (2 * e[l]);
    double r = psd_hypot(g, 1);
    q->g = d[m] - d[l] + e[l] / (g + copysign(r, g));
    q->s = 1, q->c = 1, q->p = 0;
    q->m = m, q->i = m - 1;
    q->status = 1;
    return;
  }
}

/* One rotation of the current sweep; at the sweep's end (or at an underflow restart) applies
 * its rotations to zt and moves on to the next sweep. */
static inline void psd_ql_step(int simd, int n, psd_ql_state *q) {
  double *d = q->d, *e = q->e;
  const int i = q->i;
  double s = q->s, c = q->c, p = q->p, g = q->g;
  double f = s * e[i], b = c * e[i];
  double r = sqrt(f * f + g * g);
  if (!(r > 0x1p-500 && r < 0x1p500)) r = psd_hypot(f, g);
  e[i + 1] = r;
  if (r == 0) { /* underflow: deflate and restart this eigenvalue */
    d[i + 1] -= p;
    e[q->m] = 0;
    if (i + 1 < q->m) psd_sweep_rows_x(simd, n, q->zt, i + 1, q->m, q->cs, q->sn);
    q->iter++;
    psd_ql_next(n, q);
    return;
  }
  s = f / r;
  c = g / r;
  g = d[i + 1] - p;
  r = (d[i] - g) * s + 2 * c * b;
  p = s * r;
  d[i + 1] = g + p;
  g = c * r - b;
  q->cs[i] = c, q->sn[i] = s;
  q->s = s, q->c = c, q->p = p, q->g = g;
  q->i = i - 1;
  if (i - 1 >= q->l) return;
  d[q->l] -= p;
  e[q->l] = g;
  e[q->m] = 0;
  psd_sweep_rows_x(simd, n, q->zt, q->l, q->m, q->cs, q->sn);
  q->iter++;
  psd_ql_next(n, q);
}

/* psd_tridiagonal_ql on every state, one rotation of each in turn. */
static void psd_ql_interleaved(int simd, int n, int n_q, psd_ql_state *q) {
  int active[RCTD_PSD_MANY_MAX], n_active = 0;
  for (int t = 0; t < n_q; t++) {
    q[t].l = 0, q[t].iter = 0;
    psd_ql_next(n, &q[t]);
    if (q[t].status == 1) active[n_active++] = t;
  }
  while (n_active > 0) {
    for (int t = 0; t < n_active; t++) psd_ql_step(simd, n, &q[active[t]]);
    int kept = 0;
    for (int t = 0; t < n_active; t++)
      if (q[active[t]].status == 1) active[kept++] = active[t];
    n_active = kept;
  }
}

void rctd_psd_scaled_many(int k, int n_mat, const double *const *H, double *const *D,
                          void *const *workspace, double *norm) {
  const int simd = psd_simd_level();
  psd_ql_state q[RCTD_PSD_MANY_MAX];
  psd_mat mat[RCTD_PSD_MANY_MAX];
  const double *Hq[RCTD_PSD_MANY_MAX];
  int idx[RCTD_PSD_MANY_MAX], n_q = 0;
  for (int t = 0; t < n_mat; t++) {
    if (k < 3) {
      norm[t] = rctd_psd_scaled(k, H[t], D[t], workspace[t]);
      continue;
    }
    if (!psd_finite(simd, k, H[t])) {
      norm[t] = -1.0;
      continue;
    }
    mat[n_q] = psd_carve(k, workspace[t]);
    Hq[n_q] = H[t];
    idx[n_q++] = t;
  }
  psd_prepare_many(simd, k, n_q, Hq, mat);
  for (int u = 0; u < n_q; u++)
    q[u] = (psd_ql_state){.d = mat[u].d_k,
                          .e = mat[u].work,
                          .zt = mat[u].zt_kk,
                          .cs = mat[u].cos_k,
                          .sn = mat[u].sin_k};
  psd_ql_interleaved(simd, k, n_q, q);
  for (int u = 0; u < n_q; u++) {
    const int t = idx[u];
    norm[t] = psd_finish(simd, k, H[t], D[t], &mat[u], q[u].status != 0);
  }
}

double rctd_psd_scaled(int k, const double *H_kk, double *D_kk, void *workspace) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++)
      if (!isfinite(H_kk[i * k + j])) return -1.0;
  if (k == 1) return psd_one(H_kk[0], D_kk);
  if (k == 2) return psd_two(H_kk, D_kk);
  return psd_general(k, H_kk, D_kk, workspace);
}
