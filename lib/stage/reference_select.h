/* Steps 1-5 of the reference (spacexr Reference() and create.RCTD's draws): which input cells
 * form the reference and which cell types remain (reference_select.c).  reference.h builds on it;
 * nothing here needs the rest of the stage. */
#ifndef RCTD_REFERENCE_SELECT_H
#define RCTD_REFERENCE_SELECT_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  double min_umi;       /* min_UMI 100: cells with nUMI >= min_umi are kept */
  int64_t max_cells;    /* n_max_cells 10000 per type */
  int64_t cell_min;     /* CELL_MIN_INSTANCE 25 */
  int drop_small_types; /* 0: R's error; 1: drop types below cell_min (warning) */
  int32_t seed;         /* set.seed(seed) before Reference() */
} rctd_reference_opts;

void rctd_reference_opts_default(rctd_reference_opts *opts);

/* Which input rows form the reference, and the levels (cell types) that remain. */
typedef struct {
  int n_levels;           /* levels after drops (R's levels(reference@cell_types)) */
  int32_t *level_code_l;  /* n_levels: the input code of each level */
  int64_t *level_cells_l; /* n_levels: cells per level in the reference (duplicates counted) */
  int32_t *level_of_code; /* n_codes: level of an input code, or -1 when dropped */
  int64_t n_ref;          /* cells in the reference (length of R's index_keep) */
  int64_t *ref_rows;      /* n_ref: input row of each reference cell, in R's reference order */
  int32_t *mult_n;        /* n_rows: times an input row appears in the reference (0 = not) */
  int64_t n_rows;
  int64_t n_umi_kept;     /* cells kept by the min_UMI filter */
  int downsampled;        /* 1 when step 3 ran */
  int n_dropped;          /* levels dropped by step 2 (drop_small_types) */
  int32_t *dropped_codes; /* n_dropped input codes */
  int64_t *dropped_cells; /* n_dropped: their cell counts */
} rctd_ref_cells;

void rctd_ref_cells_free(rctd_ref_cells *cells);

/* Messages (warnings) a stage function wants shown; the tool prints them unless quiet. */
typedef void (*rctd_warn_fn)(void *ctx, const char *message);

/* Steps 1-5.  codes_n[row] indexes code_names (n_codes) or is -1 (no label: the row is not a
 * reference cell).  rng_state (R's .Random.seed, RCTD_REF_RNG_WORDS words) receives the random
 * state after the draws of steps 3 and 5.  warn may be NULL. */
int rctd_reference_select(int64_t n_rows, int n_codes, const char *const *code_names,
                          const int32_t *codes_n, const double *numi_n,
                          const rctd_reference_opts *opts, rctd_ref_cells *cells,
                          int32_t *rng_state, rctd_warn_fn warn, void *warn_ctx, char *err,
                          size_t err_len);

#endif
