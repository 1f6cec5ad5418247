/* Positive semidefinite projection of the IRWLS Hessian (spacexr psd() and the 2-norm scaling of
 * solveWLS), shared by the CPU IRWLS and its tests. */
#ifndef RCTD_CPU_PSD_H
#define RCTD_CPU_PSD_H
#include <stddef.h>

#define RCTD_PSD_EIG_FLOOR 1e-3 /* psd(): eigenvalues clamped from below at 1e-3 */

/* Bytes of workspace rctd_psd_scaled needs for k x k. */
size_t rctd_psd_workspace_bytes(int k);

/* P = V diag(max(lambda, 1e-3)) V' for the symmetric H_kk = V diag(lambda) V'; writes
 * D_kk = P / norm(P, "2") (symmetric) and returns norm(P, "2") = the largest clamped eigenvalue.
 * Returns a negative value (and leaves D_kk undefined) when H has a non-finite entry.
 * Reads only the lower triangle of H.  Thread-safe, allocation-free. */
double rctd_psd_scaled(int k, const double *H_kk, double *D_kk, void *workspace);

#endif
