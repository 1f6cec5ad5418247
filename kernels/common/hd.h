/* Scalar math shared by the CPU and CUDA backends (the headers of kernels/common): one source,
 * compiled as C by the CPU kernels and as host + device code by nvcc, so the two backends compute
 * the same operations in the same order by construction (the build disables FMA contraction on both
 * sides: ISO C on the CPU, -fmad=false under nvcc).
 *
 * RK_HD marks a function of both sides: `__host__ __device__` under nvcc, `static inline` in C.
 * RK_HD_SMALL is the same for the few-line helpers of the hot loops (forced inline on the
 * device, as the hand-written mirrors were).  RK_HOST: host-side helpers (tables built on the CPU
 * for both backends). */
#ifndef RCTD_KERNELS_COMMON_HD_H
#define RCTD_KERNELS_COMMON_HD_H
#include <math.h>

#ifdef __CUDACC__
#define RK_HD __host__ __device__ inline
#define RK_HD_SMALL __host__ __device__ __forceinline__
#define RK_HD_ONCE __host__ __device__ inline
#else
#define RK_HD static inline
#define RK_HD_SMALL static inline
/* A function with one caller per backend, inlined into it (as when it was the caller's body). */
#define RK_HD_ONCE static inline __attribute__((always_inline))
#endif
#define RK_HOST static inline

/* max(a, b) for a not NaN (b NaN gives a), inline: libm's fmax is a call in the hot loops. */
RK_HD_SMALL double rk_max(double a, double b) {
  return b > a ? b : a;
}

#endif
