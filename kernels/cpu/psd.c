/* psd(H) / norm(psd(H), "2") for the IRWLS step: the symmetric eigendecomposition with the
 * eigenvalues clamped at 1e-3.  k = 1 and k = 2 are closed forms (a 2 x 2 symmetric matrix is
 * diagonalised exactly by one Jacobi rotation); larger k use GSL's symmetric QR (symmv) with its
 * workspace carved from ours, so nothing is allocated per call. */
#include "cpu/psd.h"

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>
#include <math.h>

static size_t psd_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

size_t rctd_psd_workspace_bytes(int k) {
  size_t kk = (size_t)(k > 0 ? k : 1);
  /* matrix copy, eigenvectors, eigenvalues, GSL's four work vectors */
  return 2 * psd_align(kk * kk * sizeof(double)) + 5 * psd_align(kk * sizeof(double));
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

static double psd_general(int k, const double *H, double *D, void *workspace) {
  size_t kk = (size_t)k;
  char *p = workspace;
  double *a_kk = (double *)p;
  p += psd_align(kk * kk * sizeof(double));
  double *v_kk = (double *)p;
  p += psd_align(kk * kk * sizeof(double));
  double *eval = (double *)p;
  p += psd_align(kk * sizeof(double));
  double *work[4];
  for (int i = 0; i < 4; i++) work[i] = (double *)p, p += psd_align(kk * sizeof(double));
  gsl_matrix_view a = gsl_matrix_view_array(a_kk, kk, kk);
  gsl_vector_view e = gsl_vector_view_array(eval, kk);

  gsl_eigen_symmv_workspace gws = {kk, work[0], work[1], work[2], work[3]};
  for (int i = 0; i < k; i++)
    for (int j = 0; j <= i; j++) a_kk[i * k + j] = a_kk[j * k + i] = H[i * k + j];
  gsl_matrix_view v = gsl_matrix_view_array(v_kk, kk, kk);
  gsl_eigen_symmv(&a.matrix, &e.vector, &v.matrix, &gws);

  double norm = RCTD_PSD_EIG_FLOOR;
  for (int m = 0; m < k; m++) {
    eval[m] = fmax(eval[m], RCTD_PSD_EIG_FLOOR);
    norm = fmax(norm, eval[m]);
  }
  for (int m = 0; m < k; m++) eval[m] /= norm;
  for (int i = 0; i < k; i++) {
    for (int j = 0; j <= i; j++) {
      double sum = 0;
      for (int m = 0; m < k; m++) sum += v_kk[i * k + m] * eval[m] * v_kk[j * k + m];
      D[i * k + j] = D[j * k + i] = sum;
    }
  }
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
