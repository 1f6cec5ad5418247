/* Positive semidefinite projection of the IRWLS Hessian (spacexr psd() and the 2-norm scaling of
 * solveWLS), shared by the CPU IRWLS and its tests. */
#ifndef RCTD_CPU_PSD_H
#define RCTD_CPU_PSD_H
#include <stddef.h>

#include "common/psd2.h"

#define RCTD_PSD_EIG_FLOOR RK_EIG_FLOOR /* psd(): eigenvalues clamped from below at 1e-3 */

/* Bytes of workspace rctd_psd_scaled needs for k x k. */
size_t rctd_psd_workspace_bytes(int k);

/* P = V diag(max(lambda, 1e-3)) V' for the symmetric H_kk = V diag(lambda) V'; writes
 * D_kk = P / norm(P, "2") (symmetric) and returns norm(P, "2") = the largest clamped eigenvalue.
 * Returns a negative value (and leaves D_kk undefined) when H has a non-finite entry.
 * Reads only the lower triangle of H.  Thread-safe, allocation-free. */
double rctd_psd_scaled(int k, const double *H_kk, double *D_kk, void *workspace);

#define RCTD_PSD_MANY_MAX 8 /* matrices per rctd_psd_scaled_many call */

/* rctd_psd_scaled on n_mat (<= RCTD_PSD_MANY_MAX) k x k matrices, each with its own D and
 * workspace; norm[t] is what rctd_psd_scaled returns for H[t].  The same bits as n_mat calls
 * of rctd_psd_scaled; faster for k >= 3, where the matrices' eigensolvers run interleaved. */
void rctd_psd_scaled_many(int k, int n_mat, const double *const *H, double *const *D,
                          void *const *workspace, double *norm);

#endif
