/* Writers of the files users open: AnnData h5ad (for scanpy/squidpy) and CSV in spacexr's layout
 * (for R users), fed chunk by chunk with the per-pixel results of a fit, so that memory does not
 * grow with the number of pixels.  rctd-merge (lib/stage/merge.h) reads result streams into these
 * structures; the writers know nothing of streams.
 *
 * h5ad layout (written into a copy of the spatial h5ad, or into a fresh file whose obs names are
 * the spatial barcodes; rows line up with the spatial input, filtered pixels included):
 *   obsm/rctd_weights            f64 n x K  the full fit's raw weights (spacexr's weights /
 *                                           all_weights); NaN on filtered rows
 *   obsm/rctd_proportions        f64 n x K  the same rows normalised to sum 1
 *   obs/rctd_dominant_type       categorical: type with the largest weight; "filtered"
 *   obs/rctd_filtered            bool: removed by the pixel filters (not fitted)
 *   obs/rctd_numi                f64: nUMI used (NaN when filtered)
 *   full:    obs/rctd_converged  bool
 *   doublet: obs/rctd_spot_class (reject, singlet, doublet_certain, doublet_uncertain, filtered),
 *            obs/rctd_first_type, obs/rctd_second_type (categorical: types, "filtered"),
 *            obs/rctd_first_class, obs/rctd_second_class, obs/rctd_conv_all,
 *            obs/rctd_conv_doublet (bool), obs/rctd_min_score, obs/rctd_singlet_score (f64),
 *            obs/rctd_n_candidates (i32), obsm/rctd_weights_doublet (f64 n x 2: first, second)
 *   multi:   obs/rctd_n_types (i32), obs/rctd_multi_status (ok, no_candidate, no_type,
 *            filtered), obs/rctd_type_1..M (categorical; empty slot NaN), obs/rctd_min_score,
 *            obs/rctd_conv_all, obs/rctd_conv_sub (bool), obsm/rctd_sub_weights (f64 n x M),
 *            obsm/rctd_multi_conf (bool n x M), obsm/rctd_weights_multi (f64 n x K: the
 *            sub-weights spread over all types)
 *   uns/rctd: mode, sigma, cell_types, cell_type_classes, genes_reg, genes_bulk,
 *            bulk_proportions, config (dict of strings: the effective configuration), version,
 *            tools (dict tool -> version), n_pixels_{input,filtered,fitted}, summary counts,
 *            sigma_epochs (when rctd-sigma's record came with the results: dict of source
 *            "estimated"/"given" and, for an estimate, n_fit, converged (0/1) and per epoch
 *            sigma (f64 sigma_c the pixels were fitted with), likelihood (R's "Likelihood
 *            value") and sigma_chosen (chooseSigma's choice)).
 * Objects are written without time stamps and datasets are allocated at creation, so the bytes
 * depend only on the inputs.
 *
 * CSV layout (one directory): weights.csv (every mode; "" then type names; raw weights),
 * doublet: weights_doublet.csv, results_df.csv (spacexr's columns); multi: multi_results.csv
 * (barcode, n_types, cell_types, conf, sub_weights, min_score; lists ';'-separated).  Numbers
 * are written as R's write.csv writes them (15 significant digits); multi_results.csv has the
 * layout of tests/data/gold (R's list results flattened), numbers as R's format(x, digits = 17)
 * gives them (a pixel's weights formatted together).
 *
 * Errors: functions return 0 or -1 with one line "FILE: what is wrong" in err. */
#ifndef RCTD_OUTPUT_H
#define RCTD_OUTPUT_H
#include <stddef.h>
#include <stdint.h>

#include "sigma_trace.h"

enum { RCTD_OUT_FULL = 0, RCTD_OUT_DOUBLET = 1, RCTD_OUT_MULTI = 2 }; /* = rctd_fit_mode */

#define RCTD_OUT_N_SPOT_CLASSES 4    /* reject, singlet, doublet_certain, doublet_uncertain */
#define RCTD_OUT_N_MULTI_STATUS 3    /* ok, no_candidate, no_type */
#define RCTD_OUT_FILTERED "filtered" /* label of rows the filters removed */

/* spacexr's names: spot classes (R's factor levels) and the multi status of lib/stage/fit_stage.h.
 */
const char *rctd_out_spot_class_name(int spot_class);
const char *rctd_out_multi_status_name(int status);

/* What is known before the first pixel (the result stream's header records). */
typedef struct {
  int mode;     /* RCTD_OUT_FULL, _DOUBLET or _MULTI */
  double sigma; /* sigma_c */
  int n_types;
  const char *const *type_names;  /* K */
  const char *const *class_names; /* K, or NULL */
  int multi_slots;                /* M (multi mode) */
  int64_t n_fitted;               /* pixels fitted */
  int n_reg, n_bulk;
  const char *const *genes_reg, *const *genes_bulk;
  const double *bulk_weights_k; /* K, or NULL */
  size_t n_config;              /* effective configuration, R's names */
  const char *const *config_keys, *const *config_values;
  size_t n_tools; /* the tools that made the results, with their versions */
  const char *const *tool_names, *const *tool_versions;
  const rctd_sigma_trace *sigma_trace; /* rctd-sigma's epochs, or NULL */
} rctd_results_info;

/* The results of n consecutive fitted pixels (first .. first + n - 1 in fit order).  Arrays not
 * used by the mode may be NULL. */
typedef struct {
  int64_t first, n;
  const int64_t *row_n;             /* row of each pixel in the spatial input */
  const char *const *barcode_n;     /* n */
  const double *numi_n;             /* n */
  const double *weights_nk;         /* n x K raw weights of the full fit */
  const uint8_t *conv_n;            /* full */
  const uint8_t *spot_class_n;      /* doublet: 0..3 */
  const int32_t *first_type_n;      /* doublet: type index */
  const int32_t *second_type_n;     /* doublet */
  const uint8_t *first_class_n;     /* doublet */
  const uint8_t *second_class_n;    /* doublet */
  const double *min_score_n;        /* doublet, multi */
  const double *singlet_score_n;    /* doublet */
  const uint8_t *conv_all_n;        /* doublet, multi */
  const uint8_t *conv_doublet_n;    /* doublet */
  const double *weights_doublet_n2; /* doublet: n x 2 */
  const int32_t *n_candidates_n;    /* doublet */
  const uint8_t *multi_status_n;    /* multi: 0..2 */
  const int32_t *n_types_n;         /* multi */
  const int32_t *types_nm;          /* multi: n x M type indices, -1 = empty slot */
  const uint8_t *conf_nm;           /* multi: n x M */
  const double *sub_weights_nm;     /* multi: n x M */
  const uint8_t *conv_sub_n;        /* multi */
} rctd_results_chunk;

/* Counts over every fitted pixel (what rctd-merge --json reports and uns/rctd/summary holds). */
typedef struct {
  int n_types, multi_slots;
  int64_t n_input, n_filtered, n_fitted; /* n_input 0 when unknown */
  int64_t *dominant_k;                   /* K: pixels whose largest weight is type k */
  int64_t spot_class[RCTD_OUT_N_SPOT_CLASSES];
  int64_t multi_status[RCTD_OUT_N_MULTI_STATUS];
  int64_t *n_types_counts; /* multi: M + 1 entries, pixels with 0..M types */
} rctd_results_summary;

int rctd_results_summary_init(rctd_results_summary *s, const rctd_results_info *info);
/* Checks that every code of C is in range for INFO (spot classes, multi statuses, type indices
 * in [0, K), slot counts, flags 0/1): a tampered stream must not give an h5ad that anndata
 * cannot read or a silent 'filtered' label.  0, or -1 with "LABEL: pixel N: ..." in err. */
int rctd_results_chunk_check(const rctd_results_info *info, const rctd_results_chunk *c,
                             const char *label, char *err, size_t err_len);
void rctd_results_summary_add(rctd_results_summary *s, const rctd_results_info *info,
                              const rctd_results_chunk *chunk);
void rctd_results_summary_free(rctd_results_summary *s);

/* Index of the largest of n weights (the first on ties). */
int rctd_out_argmax(const double *w, int n);

/* R's formatting of a double (formatReal with DIGITS significant digits, scipen 0): the fewest
 * digits that show the value to DIGITS digits, fixed or scientific whichever is narrower (fixed
 * on ties); NA, NaN, Inf, -Inf.  BUF needs 32 bytes. */
void rctd_out_format_double(double x, int digits, char *buf, size_t len);
/* The same over a vector, as R's format(x, digits = DIGITS): one notation and number of
 * decimals for all, each value right-aligned to the common width. */
void rctd_out_format_doubles(const double *x, int n, int digits, char (*bufs)[40]);

/* ---- h5ad ---- */
typedef struct {
  /* Copy this h5ad and add the results to the copy; NULL: write a fresh file. */
  const char *spatial_h5ad;
  /* Fresh file: n_rows obs named by barcode(barcode_src, row) (the spatial input's: names are
   * asked for in row order, each used before the next call; NULL when it cannot be read),
   * optional coordinates (obsm/spatial, n_rows x 2); the caller checks that each pixel's
   * barcode is that of its row (the writer does not read the names twice).  With barcode NULL
   * the rows are the fitted pixels in fit order and the obs names come from the results. */
  int64_t n_rows;
  const char *(*barcode)(const void *barcode_src, int64_t row);
  const void *barcode_src;
  const double *coords_n2;
} rctd_h5ad_target;

typedef struct rctd_h5ad_writer rctd_h5ad_writer;

/* Creates PATH (atomically: nothing appears unless rctd_h5ad_close succeeds) and writes what
 * does not depend on pixels. */
rctd_h5ad_writer *rctd_h5ad_open(const char *path, const rctd_h5ad_target *target,
                                 const rctd_results_info *info, char *err, size_t err_len);
/* Rows of the output (obs). */
int64_t rctd_h5ad_n_rows(const rctd_h5ad_writer *w);
/* Writes one chunk into its rows (checking each barcode against the obs name of its row in a
 * copied h5ad; see rctd_h5ad_target for a fresh file). */
int rctd_h5ad_write_chunk(rctd_h5ad_writer *w, const rctd_results_chunk *chunk, char *err,
                          size_t err_len);
/* Writes uns/rctd (with SUMMARY's counts), closes and renames into place.  Frees W. */
int rctd_h5ad_close(rctd_h5ad_writer *w, const rctd_results_summary *summary, char *err,
                    size_t err_len);
void rctd_h5ad_abort(rctd_h5ad_writer *w);

/* ---- CSV ---- */
typedef struct rctd_csv_writer rctd_csv_writer;

/* Creates directory DIR if needed and opens its files (atomically, each renamed into place by
 * rctd_csv_close).  Chunks must come in fit order. */
rctd_csv_writer *rctd_csv_open(const char *dir, const rctd_results_info *info, char *err,
                               size_t err_len);
int rctd_csv_write_chunk(rctd_csv_writer *w, const rctd_results_chunk *chunk, char *err,
                         size_t err_len);
int rctd_csv_close(rctd_csv_writer *w, char *err, size_t err_len);
void rctd_csv_abort(rctd_csv_writer *w);

#endif
