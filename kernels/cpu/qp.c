/* The exact QP of kernels/common/qp.h (rk_qp_solve), with its workspace carved from one block.
 * The CUDA fits call the same source. */
#include "common/qp.h"

#include <stddef.h>

#include "cpu/irwls.h"
#include "rctd_kernels.h"

static size_t qp_align(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

size_t rctd_qp_workspace_bytes(int k) {
  size_t kk = (size_t)(k > 0 ? k : 1);
  return 2 * qp_align(kk * sizeof(int)) + qp_align(kk * kk * sizeof(double)) +
         4 * qp_align(kk * sizeof(double));
}

/* The workspace's layout (rctd_qp_workspace_bytes): in_work, free_idx, chol, rhs, ones, x_sub. */
static rk_qp_work qp_ws_carve(int k, void *workspace) {
  size_t kk = (size_t)k;
  char *p = workspace;
  rk_qp_work ws;
  ws.in_work = (int *)p, p += qp_align(kk * sizeof(int));
  ws.free_idx = (int *)p, p += qp_align(kk * sizeof(int));
  ws.chol = (double *)p, p += qp_align(kk * kk * sizeof(double));
  ws.rhs = (double *)p, p += qp_align(kk * sizeof(double));
  ws.ones = (double *)p, p += qp_align(kk * sizeof(double));
  ws.x_sub = (double *)p;
  return ws;
}

int rctd_qp_solve(int k, const double *D_kk, const double *d_k, const double *lower_k, int with_sum,
                  double sum_target, double *x_k, void *workspace) {
  return rctd_qp_solve_warm(k, D_kk, d_k, lower_k, with_sum, sum_target, x_k, workspace, 0);
}

int rctd_qp_solve_warm(int k, const double *D_kk, const double *d_k, const double *lower_k,
                       int with_sum, double sum_target, double *x_k, void *workspace, int warm) {
  if (k < 1) return -1;
  rk_qp_work ws = qp_ws_carve(k, workspace);
  return rk_qp_solve(k, k, D_kk, d_k, lower_k, with_sum, sum_target, x_k, &ws, warm);
}
