/* Internal interface between the CUDA backend's translation units (host side only). */
#ifndef RCTD_CUDA_INTERNAL_H
#define RCTD_CUDA_INTERNAL_H
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* rctd_kernels.h is a C header without linkage guards. */
extern "C" {
#include "rctd_kernels.h"
}

namespace rctd_cuda {

/* Code of a count that has no table row (NaN, negative): the fit's outputs become NaN, as the
 * CPU kernel's spline returns NaN for it. */
constexpr uint16_t kBadCount = 0xFFFF;

/* Device-side inputs of one launch of the fit kernels (all pointers are device pointers). */
struct FitLaunch {
  int n_genes, n_types, gene_stride; /* profiles_kg rows are gene_stride long, zero padded */
  const double *profiles_kg;         /* n_types x gene_stride */
  const double *x_vals;              /* RCTD_N_X */
  const void *spline_coef;           /* n_k x (RCTD_N_X - 1) SplineCoef (cuda_math.cuh) */
  int n_k;
  const uint16_t *counts; /* codes (row of the table, or kBadCount) */
  int counts_transposed;  /* 0: [pix][gene]; 1: [gene][pix] */
  int n_pix;              /* pixels held in counts (local indices) */
  const double *numi;     /* n_pix */
  int n_fits, k_sub;
  const int32_t *pix_f;    /* local pixel index of every fit */
  const int32_t *types_fk; /* n_fits x k_sub, or NULL: types 0..k_sub-1 */
  int n_iter;
  double min_change;
  int qp_warm; /* 1: each step's QP starts from the previous step's working set (the CPU's
                * rctd_qp_solve_warm), 0: from the empty set */
  int float32; /* 1: the k >= 3 kernel's per-step linear algebra (Hessian as stored, psd
                * eigensolver, QP) in float; k <= 2 fits are float64 always */
  double *weights_fk;
  int32_t *conv_f;
  double *score_f;          /* NULL: no scores */
  int32_t *iters_f;         /* iterations run per fit (statistics), may be NULL */
  int *work_counter;        /* fits handed out so far */
  unsigned long long *prof; /* kProfCounters phase counters of the warp kernel, or NULL */
};

/* Fills the spline coefficient table (n_k x (RCTD_N_X - 1) of 4 doubles) from a table's q and
 * sq rows on the device. */
cudaError_t launch_spline_coef(const double *x_vals, const double *q_kx, const double *sq_kx,
                               int n_k, void *coef, cudaStream_t stream);

/* Counters of FitLaunch.prof: cycles in genes, Hessian, warm start, Jacobi, psd, QP; then Jacobi
 * sweeps, QP subspace solves and IRWLS steps. */
constexpr int kProfCounters = 9;

/* Transposes count codes [pix][gene] to [gene][pix]. */
cudaError_t launch_transpose_codes(const uint16_t *codes, int n_pix, int n_genes, uint16_t *out,
                                   cudaStream_t stream);

/* Launches the fit kernel that suits k_sub on the current device and stream.  Returns a CUDA
 * error code (cudaSuccess when launched). */
cudaError_t launch_fits(const FitLaunch &p, int n_sm, cudaStream_t stream);

/* Largest k_sub the device kernels handle; larger fits run on the host. */
constexpr int kMaxDeviceTypes = 32;

/* Likelihood table of one sigma on the current device: rows [k_begin, k_end) of q and sq into
 * host arrays (rows from 0).  x_vals is rctd_x_grid's. */
int qtable_rows_device(double sigma_c, const double *x_vals, int k_begin, int k_end, double *q_kx,
                       double *sq_kx, cudaStream_t stream, char *err, size_t err_len);

}  // namespace rctd_cuda

#endif
