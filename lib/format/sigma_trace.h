/* The sigma record's epochs (rctd-sigma's choice), as the h5ad writer and rctd report use them;
 * read from the record by rctd_sigma_trace_read (lib/stage/sigma.h). */
#ifndef RCTD_SIGMA_TRACE_H
#define RCTD_SIGMA_TRACE_H
#include <stdint.h>

/* The epochs of a sigma record, as rctd-merge carries them into uns/rctd/sigma_epochs and rctd
 * report shows them. */
struct rctd_sigma_trace {
  char source[16];               /* "estimated", "given", or "" when the record does not say */
  int64_t n_fit;                 /* fit pixels, -1 when not recorded */
  int converged;                 /* 1 / 0, -1 when not recorded */
  int n_epochs;                  /* 0 when sigma was given */
  int *sigma_fit, *sigma_chosen; /* n_epochs grid values: fitted with, chosen */
  double *log_l;                 /* n_epochs: R's "Likelihood value" */
};
typedef struct rctd_sigma_trace rctd_sigma_trace;

#endif
