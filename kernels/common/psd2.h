/* psd(H) / norm(psd(H), "2") for k = 1 and 2 in closed form (a 2 x 2 symmetric matrix is
 * diagonalised exactly by one Jacobi rotation), eigenvalues clamped from below at
 * RK_EIG_FLOOR.  Shared by kernels/cpu/psd.c and the CUDA k <= 2 fits (cuda_fit.cu). */
#ifndef RCTD_KERNELS_COMMON_PSD2_H
#define RCTD_KERNELS_COMMON_PSD2_H
#include "common/hd.h"

#define RK_EIG_FLOOR 1e-3 /* psd(): eigenvalues clamped from below at 1e-3 */

/* k = 1: D = [1], returns the clamped h. */
RK_HD_SMALL double rk_psd_one(double h, double *D) {
  double p = fmax(h, RK_EIG_FLOOR);
  D[0] = p / p;
  return p;
}

/* k = 2: H = [a b; b c]; D row-major 2 x 2; returns the norm. */
RK_HD_SMALL double rk_psd_two(double a, double b, double c, double *D) {
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
  double mu1 = fmax(lam1, RK_EIG_FLOOR), mu2 = fmax(lam2, RK_EIG_FLOOR);
  double norm = fmax(mu1, mu2);
  double s1 = mu1 / norm, s2 = mu2 / norm;
  D[0] = cs * cs * s1 + sn * sn * s2;
  D[1] = D[2] = cs * sn * (s2 - s1);
  D[3] = sn * sn * s1 + cs * cs * s2;
  return norm;
}

#endif
