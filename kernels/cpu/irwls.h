/* CPU IRWLS internals shared by kernels/cpu/irwls.c, the CPU backend and the tests. */
#ifndef RCTD_CPU_IRWLS_H
#define RCTD_CPU_IRWLS_H
#include <stddef.h>

#include "rctd_kernels.h"

/* Bytes of workspace rctd_irwls_fit_kg needs (the design is supplied already transposed). */
size_t rctd_irwls_kg_workspace_bytes(int n_genes, int n_types);

/* rctd_irwls_fit with the design transposed: S_kg is types x genes (S_kg[k * G + g]).  The CPU
 * backend builds S_kg directly from the profiles; rctd_irwls_fit transposes into its workspace
 * and calls this. */
int rctd_irwls_fit_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                      const double *y_g, double numi, const rctd_irwls_opts *opts,
                      const double *init_k, double *weights_k, void *workspace);

/* -sum_g d0(y_g, sum_k S_kg w_k): spacexr's calc_log_l_vec of the prediction S %*% weights
 * (no floor: calc_Q_all clamps lambda itself), summed in long double as R's sum().  pred_g and
 * d0_g are G-long scratch arrays. */
double rctd_irwls_score_kg(const rctd_qtable *table, int n_genes, int n_types, const double *S_kg,
                           const double *y_g, const double *weights_k, double *pred_g,
                           double *d0_g);

#endif
