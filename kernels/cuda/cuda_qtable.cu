/* Likelihood tables on the GPU: spacexr's get_Q quadrature and solve_sq spline for one sigma,
 * the same arithmetic as kernels/cpu/qtable.c.
 *
 * Every input of a term (Y_j, -e^{Y_j}, log ht(Y_j), log x, lgamma) is computed on the host with
 * the CPU kernel's operations, and the term's argument g - lgamma + k log x on the device with
 * the same roundings (no contraction).  The differences left: the device exp (within an ulp of
 * glibc's) and the sum, which is exact (double-double) here and long double on the CPU.  The
 * spline uses the CPU's inverse of the spline system and its summation order, so sq equals the
 * CPU's whenever q does.
 *
 * Work: one block per table row (k), one thread per lambda node; a first pass finds the largest
 * exponent, a second sums the terms within e^80 of it (smaller terms cannot change the sum). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/qtable_math.h"
#include "cuda/cuda_internal.h"

namespace rctd_cuda {

/* The constants, the density and the spline system: kernels/common/qtable_math.h (shared with
 * kernels/cpu/qtable.c). */
#define QTC_N_Y RK_QT_N_Y
#define QTC_N_POINTS RK_QT_N_POINTS
#define QTC_GAMMA RK_QT_GAMMA
#define QTC_SKIP RK_QT_SKIP
#define QTC_FLOOR RK_QT_FLOOR
#define QTC_N_INT RK_QT_N_INT
#define QTC_SPLINE_ROWS 8

/* The inverse of the spline system as the CPU kernel builds it (rk_qt_spline_inverse), stored
 * transposed: inv_t[j * n + i] = MI[i][j]. */
static void qtc_spline_inverse_t(const double *x, double *inv_t) {
  const int n = QTC_N_INT;
  double u[QTC_N_INT], l[QTC_N_INT], c[QTC_N_INT];
  double *inv = (double *)malloc((size_t)n * n * sizeof(double));
  if (!inv) return;
  rk_qt_spline_inverse(x, u, l, c, inv);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) inv_t[(size_t)j * n + i] = inv[(size_t)i * n + j];
  free(inv);
}

__device__ __forceinline__ void qtc_dd_add(double &hi, double &lo, double t) {
  double s = hi + t;
  double bb = s - hi;
  double e = (hi - (s - bb)) + (t - bb);
  lo += e;
  double s2 = s + lo;
  lo = lo - (s2 - s);
  hi = s2;
}

/* qt_quadrature_row of kernels/cpu/qtable.c in parallel: q[k][i] for rows k_begin + blockIdx.x,
 * every lambda node i = threadIdx.x. */
__global__ void __launch_bounds__(448)
    qtc_quadrature(const double *y_j, const double *nexp_j, const double *lht_j,
                   const double *lgam_k, const double *x_vals, const double *log_x, int k_begin,
                   double *q_kx) {
  extern __shared__ double qtc_kyl[];
  const int k = k_begin + blockIdx.x;
  const double kd = (double)k;
  for (int j = threadIdx.x; j < QTC_N_POINTS; j += blockDim.x) qtc_kyl[j] = kd * y_j[j] + lht_j[j];
  __syncthreads();
  const int i = threadIdx.x;
  if (i >= RCTD_N_X) return;
  const double x = x_vals[i];
  const double klx = kd * log_x[i];
  const double lg = lgam_k[k];
  double g_max = -INFINITY;
  for (int j = 0; j < QTC_N_POINTS; j++) g_max = fmax(g_max, nexp_j[j] * x + qtc_kyl[j]);
  const double threshold = g_max - QTC_SKIP;
  double hi = 0, lo = 0;
  for (int j = 0; j < QTC_N_POINTS; j++) {
    double g = nexp_j[j] * x + qtc_kyl[j];
    if (g < threshold) continue;
    qtc_dd_add(hi, lo, exp(g - lg + klx));
  }
  double p = (hi + lo) * QTC_GAMMA;
  q_kx[(size_t)k * RCTD_N_X + i] = log(p > QTC_FLOOR ? p : QTC_FLOOR);
}

/* qt_spline_row of kernels/cpu/qtable.c in parallel: sq[k][i + 1] = sum_j fbd_k[j] MI[i][j]
 * (j ascending) for QTC_SPLINE_ROWS rows per block. */
__global__ void qtc_spline(const double *x_vals, const double *inv_t, const double *q_kx,
                           int k_begin, int k_end, double *sq_kx) {
  __shared__ double fbd[QTC_SPLINE_ROWS][QTC_N_INT];
  const int k0 = k_begin + blockIdx.x * QTC_SPLINE_ROWS;
  const int n_rows = min(QTC_SPLINE_ROWS, k_end - k0);
  for (int e = threadIdx.x; e < n_rows * QTC_N_INT; e += blockDim.x) {
    const int r = e / QTC_N_INT, i = e % QTC_N_INT;
    fbd[r][i] = rk_qt_spline_rhs(x_vals, q_kx + (size_t)(k0 + r) * RCTD_N_X, i);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < QTC_N_INT; i += blockDim.x) {
    double s[QTC_SPLINE_ROWS];
#pragma unroll
    for (int r = 0; r < QTC_SPLINE_ROWS; r++) s[r] = 0;
    for (int j = 0; j < QTC_N_INT; j++) {
      const double m = inv_t[(size_t)j * QTC_N_INT + i];
#pragma unroll
      for (int r = 0; r < QTC_SPLINE_ROWS; r++) s[r] += fbd[r][j] * m;
    }
    for (int r = 0; r < n_rows; r++) sq_kx[(size_t)(k0 + r) * RCTD_N_X + i + 1] = s[r];
  }
  if (threadIdx.x < n_rows) {
    sq_kx[(size_t)(k0 + threadIdx.x) * RCTD_N_X] = 0;
    sq_kx[(size_t)(k0 + threadIdx.x) * RCTD_N_X + RCTD_N_X - 1] = 0;
  }
}

static void qtc_err(char *err, size_t err_len, const char *what, cudaError_t e) {
  if (err && err_len) snprintf(err, err_len, "cuda qtable: %s: %s", what, cudaGetErrorString(e));
}

int qtable_rows_device(double sigma_c, const double *x_vals, int k_begin, int k_end, double *q_kx,
                       double *sq_kx, cudaStream_t stream, char *err, size_t err_len) {
  if (!(sigma_c > 0) || !isfinite(sigma_c) || k_begin < 0 || k_end < k_begin) return -1;
  if (k_begin == k_end) return 0;
  const int n_rows = k_end - k_begin;
  /* host inputs, with the CPU kernel's operations */
  const size_t n_pts = QTC_N_POINTS, n_int = QTC_N_INT;
  size_t host_doubles = 3 * n_pts + (size_t)k_end + 2 * RCTD_N_X + n_int * n_int;
  double *h = (double *)malloc(host_doubles * sizeof(double));
  if (!h) {
    if (err && err_len) snprintf(err, err_len, "cuda qtable: out of host memory");
    return -1;
  }
  double *h_y = h, *h_nexp = h_y + n_pts, *h_lht = h_nexp + n_pts, *h_lgam = h_lht + n_pts;
  double *h_x = h_lgam + k_end, *h_logx = h_x + RCTD_N_X, *h_inv = h_logx + RCTD_N_X;
  for (int j = 0; j < QTC_N_POINTS; j++) {
    h_y[j] = (double)(j - QTC_N_Y) * QTC_GAMMA;
    h_nexp[j] = -exp(h_y[j]);
    h_lht[j] = rk_qt_log_ht_pdf(h_y[j], sigma_c);
  }
  for (int k = 0; k < k_end; k++) h_lgam[k] = rk_qt_lgamma_k1(k);
  for (int i = 0; i < RCTD_N_X; i++) {
    h_x[i] = x_vals[i];
    h_logx[i] = log(x_vals[i]);
  }
  qtc_spline_inverse_t(x_vals, h_inv);

  double *d = NULL;
  const size_t table_doubles = (size_t)k_end * RCTD_N_X;
  cudaError_t e = cudaMalloc(&d, (host_doubles + 2 * table_doubles) * sizeof(double));
  if (e != cudaSuccess) {
    free(h);
    qtc_err(err, err_len, "device memory", e);
    return -1;
  }
  double *d_y = d, *d_nexp = d_y + n_pts, *d_lht = d_nexp + n_pts, *d_lgam = d_lht + n_pts;
  double *d_x = d_lgam + k_end, *d_logx = d_x + RCTD_N_X, *d_inv = d_logx + RCTD_N_X;
  double *d_q = d + host_doubles, *d_sq = d_q + table_doubles;
  int rc = -1;
  const size_t quad_smem = n_pts * sizeof(double);
  e = cudaMemcpyAsync(d, h, host_doubles * sizeof(double), cudaMemcpyHostToDevice, stream);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(qtc_quadrature, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)quad_smem);
  if (e == cudaSuccess) {
    qtc_quadrature<<<n_rows, 448, quad_smem, stream>>>(d_y, d_nexp, d_lht, d_lgam, d_x, d_logx,
                                                       k_begin, d_q);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) {
    int blocks = (n_rows + QTC_SPLINE_ROWS - 1) / QTC_SPLINE_ROWS;
    qtc_spline<<<blocks, 448, 0, stream>>>(d_x, d_inv, d_q, k_begin, k_end, d_sq);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(q_kx + (size_t)k_begin * RCTD_N_X, d_q + (size_t)k_begin * RCTD_N_X,
                        (size_t)n_rows * RCTD_N_X * sizeof(double), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess)
    e = cudaMemcpyAsync(sq_kx + (size_t)k_begin * RCTD_N_X, d_sq + (size_t)k_begin * RCTD_N_X,
                        (size_t)n_rows * RCTD_N_X * sizeof(double), cudaMemcpyDeviceToHost, stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
  if (e == cudaSuccess)
    rc = 0;
  else
    qtc_err(err, err_len, "table kernels", e);
  cudaFree(d);
  free(h);
  return rc;
}

}  // namespace rctd_cuda
