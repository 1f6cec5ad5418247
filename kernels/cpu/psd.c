/* psd(H) / norm(psd(H), "2") for the IRWLS step: the symmetric eigendecomposition with the
 * eigenvalues clamped at 1e-3.  k = 1 and k = 2 are closed forms (a 2 x 2 symmetric matrix is
 * diagonalised exactly by one Jacobi rotation).  Larger k: Householder tridiagonalisation and
 * implicit QL with Wilkinson shifts, written for small dense matrices in our workspace (about
 * three times faster than GSL's symmv at k = 19, whose BLAS-1 calls dominate at this size);
 * GSL's symmv remains as the fallback should the QL ever fail to converge.  Backward stable like
 * LAPACK's dsyevr that R's eigen() calls, so D agrees with R's to rounding. */
#include "cpu/psd.h"

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>
#include <math.h>

#include "cpu/spline_fast.h"

static size_t psd_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

size_t rctd_psd_workspace_bytes(int k) {
  size_t kk = (size_t)(k > 0 ? k : 1);
  /* matrix copy, reflectors, eigenvectors, eigenvalues, four work vectors */
  return 3 * psd_align(kk * kk * sizeof(double)) + psd_align(kk * sizeof(double)) +
         psd_align(4 * kk * sizeof(double));
}

static double psd_one(double h, double *D) {
  double p = fmax(h, RCTD_PSD_EIG_FLOOR);
  D[0] = p / p;
  return p;
}

static double psd_two(const double *H, double *D) {
  double a = H[0], b = H[2], c = H[3];
  double cs = 1.0, sn = 0.0, lam1 = a, lam2 = c;
  if (b != 0.0) {
    double theta = (c - a) / (2.0 * b);
    double t = fabs(theta) > 1e150 ? 0.5 / theta
                                   : copysign(1.0, theta) / (fabs(theta) + sqrt(theta * theta + 1));
    cs = 1.0 / sqrt(t * t + 1.0);
    sn = t * cs;
    lam1 = a - t * b; /* eigenvector (cs, -sn) */
    lam2 = c + t * b; /* eigenvector (sn, cs) */
  }
  double mu1 = fmax(lam1, RCTD_PSD_EIG_FLOOR), mu2 = fmax(lam2, RCTD_PSD_EIG_FLOOR);
  double norm = fmax(mu1, mu2);
  double s1 = mu1 / norm, s2 = mu2 / norm;
  D[0] = cs * cs * s1 + sn * sn * s2;
  D[1] = D[2] = cs * sn * (s2 - s1);
  D[3] = sn * sn * s1 + cs * cs * s2;
  return norm;
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
  for (int i = 0; i < k; i++) {
    double *row = D + (size_t)i * k;
    int j = 0;
    for (; j + 4 <= i + 1; j += 4) {
      __m256d acc = _mm256_setzero_pd();
      for (int m = 0; m < k; m++) {
        const double *z = zt + (size_t)m * k;
        const __m256d w = _mm256_set1_pd(s_k[m] * z[i]);
        acc = _mm256_add_pd(acc, _mm256_mul_pd(w, _mm256_loadu_pd(z + j)));
      }
      _mm256_storeu_pd(row + j, acc);
    }
    for (; j <= i; j++) {
      double acc = 0;
      for (int m = 0; m < k; m++) acc += (s_k[m] * zt[(size_t)m * k + i]) * zt[(size_t)m * k + j];
      row[j] = acc;
    }
  }
}
#endif

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
 * T = Q' A Q: diagonal d, subdiagonal e (e[i] couples i and i + 1), and zt_nn = Q' (rows of Q').
 * v_nn and p_n are scratch. */
static void psd_tridiagonalise(int simd, int n, double *a, double *d, double *e, double *zt,
                               double *v, double *tau, double *p) {
  for (int k = 0; k < n - 2; k++) {
    const int m = n - k - 1; /* the reflector acts on indices k+1 .. n-1 */
    double *vk = v + (size_t)k * n;
    double tail = 0;
    for (int i = 1; i < m; i++) tail += a[(k + 1 + i) * n + k] * a[(k + 1 + i) * n + k];
    double x0 = a[(k + 1) * n + k];
    if (tail == 0) {
      tau[k] = 0;
      e[k] = x0;
      continue;
    }
    double alpha = -copysign(sqrt(x0 * x0 + tail), x0);
    vk[0] = x0 - alpha;
    for (int i = 1; i < m; i++) vk[i] = a[(k + 1 + i) * n + k];
    tau[k] = 2 / (vk[0] * vk[0] + tail);
    e[k] = alpha;
    /* B <- H B H with H = I - tau v v': p = tau B v, w = p - (tau/2)(v'p) v, B -= v w' + w v'. */
    double vp = 0;
    for (int i = 0; i < m; i++) {
      p[i] = tau[k] * psd_dot(m, a + (size_t)(k + 1 + i) * n + k + 1, vk);
      vp += vk[i] * p[i];
    }
    const double half = 0.5 * tau[k] * vp;
    for (int i = 0; i < m; i++) p[i] -= half * vk[i];
    for (int i = 0; i < m; i++)
      psd_sub2_x(simd, m, a + (size_t)(k + 1 + i) * n + k + 1, vk[i], p, p[i], vk);
  }
  for (int i = 0; i < n; i++) d[i] = a[i * n + i];
  e[n - 2] = a[(n - 1) * n + n - 2];
  e[n - 1] = 0;
  /* Q = H_0 H_1 ... H_{n-3}, built from the right end; Q is symmetric in no way, so transpose
   * once at the end (the QL sweeps rotate rows of Q'). */
  for (int i = 0; i < n * n; i++) zt[i] = 0;
  for (int i = 0; i < n; i++) zt[i * n + i] = 1;
  for (int k = n - 3; k >= 0; k--) {
    if (tau[k] == 0) continue;
    const int m = n - k - 1;
    const double *vk = v + (size_t)k * n;
    /* rows k+1.. of Q <- H_k Q: Q -= tau v (v' Q), columns k+1.. only (the rest is identity). */
    for (int j = 0; j < m; j++) p[j] = 0;
    for (int i = 0; i < m; i++) psd_axpy_x(simd, m, p, vk[i], zt + (size_t)(k + 1 + i) * n + k + 1);
    for (int i = 0; i < m; i++)
      psd_axpy_x(simd, m, zt + (size_t)(k + 1 + i) * n + k + 1, -tau[k] * vk[i], p);
  }
  for (int i = 0; i < n; i++)
    for (int j = 0; j < i; j++) {
      double t = zt[i * n + j];
      zt[i * n + j] = zt[j * n + i];
      zt[j * n + i] = t;
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
        psd_rotate_rows_x(simd, n, zt + (size_t)i * n, zt + (size_t)(i + 1) * n, c, s);
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
  gsl_eigen_symmv_workspace gws = {(size_t)n, work4, work4 + n, work4 + 2 * n, work4 + 3 * n};
  gsl_matrix_view av = gsl_matrix_view_array(a, (size_t)n, (size_t)n);
  gsl_matrix_view vv = gsl_matrix_view_array(v, (size_t)n, (size_t)n);
  gsl_vector_view dv = gsl_vector_view_array(d, (size_t)n);
  gsl_eigen_symmv(&av.matrix, &dv.vector, &vv.matrix, &gws);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) zt[j * n + i] = v[i * n + j];
}

static double psd_general(int k, const double *H, double *D, void *workspace) {
  const size_t kk = (size_t)k;
  char *p = workspace;
  double *a_kk = (double *)p;
  p += psd_align(kk * kk * sizeof(double));
  double *v_kk = (double *)p;
  p += psd_align(kk * kk * sizeof(double));
  double *zt_kk = (double *)p;
  p += psd_align(kk * kk * sizeof(double));
  double *d_k = (double *)p;
  p += psd_align(kk * sizeof(double));
  double *work = (double *)p; /* 4 k: e, tau, scratch (and GSL's four vectors) */

  /* Scale by a power of two (exact) so that the reduction works on entries of order one. */
  double amax = 0;
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++) {
      double v = fabs(H[i * k + j]); /* finite (checked by the caller) */
      if (v > amax) amax = v;
    }
  int expo = 0;
  if (amax > 0) frexp(amax, &expo);
  /* x * 2^-expo is ldexp(x, -expo) (both the correctly rounded product) when 2^-expo is normal */
  const int pow2_ok = expo > -1000 && expo < 1000;
  const double down = pow2_ok ? ldexp(1.0, -expo) : 0, up = pow2_ok ? ldexp(1.0, expo) : 0;
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++)
      a_kk[i * k + j] = a_kk[j * k + i] =
          pow2_ok ? H[i * k + j] * down : ldexp(H[i * k + j], -expo);
  const int simd = rctd_cpu_simd(-1);
  psd_tridiagonalise(simd, k, a_kk, d_k, work, zt_kk, v_kk, work + kk, work + 2 * kk);
  if (psd_tridiagonal_ql(simd, k, d_k, work, zt_kk) != 0) {
    for (int i = 0; i < k; i++)
      for (int j = 0; j <= i; j++) a_kk[i * k + j] = a_kk[j * k + i] = ldexp(H[i * k + j], -expo);
    psd_eigen_gsl(k, a_kk, d_k, zt_kk, v_kk, work);
  }

  double norm = RCTD_PSD_EIG_FLOOR;
  for (int m = 0; m < k; m++) {
    double v = pow2_ok ? d_k[m] * up : ldexp(d_k[m], expo);
    d_k[m] = v > RCTD_PSD_EIG_FLOOR ? v : RCTD_PSD_EIG_FLOOR; /* fmax: v is not NaN */
    if (d_k[m] > norm) norm = d_k[m];
  }
  /* D = sum_m (mu_m / norm) z_m z_m' (lower triangle accumulated row by row, then mirrored). */
#ifdef PSD_HAVE_AVX2
  if (simd) {
    double *s_k = work; /* e, tau and the scratch are no longer needed */
    for (int m = 0; m < k; m++) s_k[m] = d_k[m] / norm;
    psd_reconstruct_avx2(k, zt_kk, s_k, D);
  } else
#endif
  {
    for (int i = 0; i < k * k; i++) D[i] = 0;
    for (int m = 0; m < k; m++) {
      const double *z = zt_kk + (size_t)m * k;
      const double s = d_k[m] / norm;
      for (int i = 0; i < k; i++) psd_axpy_x(simd, i + 1, D + (size_t)i * k, s * z[i], z);
    }
  }
  for (int i = 0; i < k; i++)
    for (int j = 0; j < i; j++) D[j * k + i] = D[i * k + j];
  return norm;
}

double rctd_psd_scaled(int k, const double *H_kk, double *D_kk, void *workspace) {
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++)
      if (!isfinite(H_kk[i * k + j])) return -1.0;
  if (k == 1) return psd_one(H_kk[0], D_kk);
  if (k == 2) return psd_two(H_kk, D_kk);
  return psd_general(k, H_kk, D_kk, workspace);
}
