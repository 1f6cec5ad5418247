/* The constants and clamps of one solveWLS step (spacexr), shared by the CPU IRWLS
 * (kernels/cpu/irwls.c) and the CUDA fits (kernels/cuda/cuda_fit.cu). */
#ifndef RCTD_KERNELS_COMMON_IRWLS_STEP_H
#define RCTD_KERNELS_COMMON_IRWLS_STEP_H
#include "common/hd.h"

#define RK_IRWLS_ALPHA 0.3     /* solveWLS's damping: w = s + 0.3 x */
#define RK_IRWLS_RIDGE 1e-7    /* added to the scaled Hessian's diagonal */
#define RK_IRWLS_PRED_MIN 1e-4 /* prediction floor: max(1e-4, nUMI * 1e-7) */
#define RK_IRWLS_PRED_NUMI 1e-7

/* The prediction floor of a pixel with nUMI numi. */
RK_HD_SMALL double rk_irwls_pred_floor(double numi) {
  return fmax(RK_IRWLS_PRED_MIN, numi * RK_IRWLS_PRED_NUMI);
}

#endif
