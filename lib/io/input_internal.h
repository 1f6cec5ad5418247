/* Private to the input readers (lib/input*.c): the reader state, the per-format backends and
 * transpose file and the side tables.  The helpers they share live below them, each in its own
 * module: input_util.h (messages, string arenas, chunk storage), h5_read.h (HDF5 reads), text.h
 * (delimited text); input.c dispatches down to the readers and nothing calls back up into it. */
#ifndef RCTD_INPUT_INTERNAL_H
#define RCTD_INPUT_INTERNAL_H
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>

#include "h5_read.h"
#include "input.h"
#include "input_util.h"

/* ---- a backend reads raw CSR rows [row_begin, row_end): entries may be unsorted within a row,
 * duplicated or zero; input.c sorts, folds and validates them. ---- */
typedef struct {
  int (*read_rows)(void *state, int64_t row_begin, int64_t row_end, rctd_csr_chunk *chunk,
                   char *err, size_t err_size);
  void (*close)(void *state);
} input_backend;

/* What a format reader fills in at open.  Strings are owned by the reader struct. */
struct rctd_input {
  rctd_input_format format;
  char *path;
  rctd_input_options options; /* string fields point to copies in option_strings */
  char *option_strings[16];
  int64_t n_rows, n_genes;
  input_strings gene_names, barcodes;
  /* Cell type labels as read, one per row (before factor ordering): either codes into
   * label_levels (categorical: levels in category order, levels_ordered = 1), or raw per-row
   * strings in row_labels (sorted into factor levels by input.c). */
  input_strings type_names;
  int32_t *type_codes;
  double *coords;         /* n_rows x 2 */
  char *tissue_positions; /* Space Ranger folder: its positions file (input_spaceranger.c) */
  double *numi_given;     /* from a column or table */
  double *count_sums;
  int64_t next_row;
  input_backend backend;
  void *backend_state;
  /* scratch for sorting a row */
  void *sort_buf;
  size_t sort_cap;
};

/* Labels per row (NULL entry: missing) to factor levels and codes, R's factor() order.
 * labels_n has n entries. */
int input_labels_to_factor(rctd_input *input, const char *const *labels_n, int64_t n, char *err,
                           size_t err_size);

/* ---- format readers: fill n_rows, n_genes, names, optional labels/numi/coords, backend ---- */
int input_h5ad_open(rctd_input *input, char *err, size_t err_size);
int input_10x_open(rctd_input *input, char *err, size_t err_size);
int input_mtx_open(rctd_input *input, const char *dir, char *err, size_t err_size);
int input_csv_open(rctd_input *input, char *err, size_t err_size);
/* Space Ranger outs/ folder (input_spaceranger.c): 1 when DIR is one (path and
 * tissue_positions set, read as 10x h5); apply reads the positions after the tables (coordinates
 * unless a table gave them; spots with in_tissue = 0 dropped). */
int input_spaceranger_dir(rctd_input *input, const char *dir);
int input_spaceranger_apply(rctd_input *input, char *err, size_t err_size);

/* ---- transpose through an anonymous temporary file (input_transpose.c) ----
 * Entries (row, col, value) arrive in any order; after finish, rows are read back as CSR with
 * entries of a row in arrival order.  Memory: per-row offsets plus a fixed buffer budget. */
typedef struct input_tx input_tx;
input_tx *input_tx_create(const char *path, int64_t n_rows, const char *tmp_dir, char *err,
                          size_t err_size);
int input_tx_add(input_tx *tx, int64_t row, int32_t col, double value, char *err, size_t err_size);
int input_tx_finish(input_tx *tx, char *err, size_t err_size);
int input_tx_read_rows(void *tx, int64_t row_begin, int64_t row_end, rctd_csr_chunk *chunk,
                       char *err, size_t err_size);
void input_tx_free(void *tx);
int64_t input_tx_nnz(const input_tx *tx);

/* ---- delimited text (input_csv.c) ---- */
#include "text.h"

/* Side tables keyed by barcode: fills labels/numi/coords for matching rows.  They look up every
 * barcode, so the names stay in memory when any is given (input_tables_given). */
int input_tables_given(const rctd_input_options *options);
int input_apply_tables(rctd_input *input, char *err, size_t err_size);

#endif
