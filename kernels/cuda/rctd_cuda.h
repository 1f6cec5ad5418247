/* CUDA backend: creation with options beyond rctd_backend_cuda() of kernels/rctd_kernels.h.
 *
 * rctd_backend_cuda(devices, n, err, len) is rctd_backend_cuda_ex() with the defaults below
 * (float64).  The backend behaves as the CPU one: irwls_batch gives every categorical equal and
 * weights equal to rounding (k_sub <= 2 fits are computed in the CPU kernel's exact operation
 * order; larger fits differ only through the eigensolver of psd()), qtable gives the CPU table
 * to rounding.  Bulk-mode and sum-constrained fits (one fit per run in RCTD) run on the host
 * with the CPU kernel.
 *
 * RCTD_CUDA_FLOAT32: fits of k_sub >= 3 types solve each IRWLS step's Newton system in float
 * (the Hessian as stored, psd()'s eigensolver, the QP); the weights, predictions, likelihood
 * spline, the Hessian's accumulation and scores stay float64, and k_sub <= 2 fits are float64
 * (as above).  Fits whose float step fails are fitted again in float64.  Agreement with float64:
 * bench/gpu/NOTES.md. */
#ifndef RCTD_CUDA_H
#define RCTD_CUDA_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "rctd_kernels.h"

enum { RCTD_CUDA_FLOAT64 = 0, RCTD_CUDA_FLOAT32 = 1 };

typedef struct {
  int precision;           /* RCTD_CUDA_FLOAT64 (default) or RCTD_CUDA_FLOAT32 (below) */
  double mem_fraction;     /* share of free device memory a batch may use (default 0.5) */
  int max_fits_per_launch; /* 0: chosen from memory; > 0 caps sub-batches (tests) */
  int profile;             /* 1: count cycles per phase of the k >= 3 kernel (stats.prof) */
} rctd_cuda_opts;

void rctd_cuda_opts_default(rctd_cuda_opts *opts);

/* CUDA backend on devices[0..n_devices) (NULL / 0: device 0).  NULL with one line in err when
 * no device is usable. */
rctd_backend *rctd_backend_cuda_ex(const int *devices, int n_devices, const rctd_cuda_opts *opts,
                                   char *err, size_t err_len);

/* Number of CUDA devices visible (0 when none or no driver). */
int rctd_cuda_device_count(void);

/* The device's name ("NVIDIA H100 80GB HBM3"); 0, or -1 when it has none. */
int rctd_cuda_device_name(int device, char *name, size_t name_len);

/* Statistics of the last irwls_batch call (for benchmarks): seconds spent uploading, in the
 * kernels and downloading, summed over devices, and fit-iterations run. */
typedef struct {
  double upload_s, kernel_s, download_s;
  long long n_iterations;
  int n_launches;
  int counts_reused;   /* sub-batches whose counts were on the device already */
  int n_refit_float64; /* float32: fits whose float solve failed, refitted in float64 */
  /* with opts.profile: cycles (summed over warps) in genes+Hessian products, Hessian checks,
   * warm start, Jacobi, psd, QP; then Jacobi sweeps, QP subspace solves, IRWLS steps */
  unsigned long long prof[9];
} rctd_cuda_stats;

int rctd_cuda_last_stats(const rctd_backend *be, rctd_cuda_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
