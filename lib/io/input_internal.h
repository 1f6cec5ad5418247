/* Private to the input readers (lib/input*.c): the reader state, the per-format backends and
 * shared helpers (string arenas, HDF5 helpers, the transpose file, delimited tables). */
#ifndef RCTD_INPUT_INTERNAL_H
#define RCTD_INPUT_INTERNAL_H
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>

#include "input.h"

/* ---- errors ---- */
/* Writes "PATH: message" into err; returns -1 so callers can `return input_fail(...)`. */
int input_fail(char *err, size_t err_size, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- string arrays: a pointer array into a list of fixed arena blocks (strings never move,
 * and no large block is ever copied to grow) ---- */
typedef struct input_arena_block input_arena_block;
typedef struct {
  int64_t n, cap;
  char **items;
  input_arena_block *blocks;
} input_strings;

void input_strings_init(input_strings *s);
int input_strings_reserve(input_strings *s, int64_t n);                /* -1: out of memory */
int input_strings_push(input_strings *s, const char *str, size_t len); /* -1: out of memory */
/* Makes items valid when there are no strings (items never NULL). -1: out of memory. */
int input_strings_seal(input_strings *s);
void input_strings_free(input_strings *s);

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
  double *coords;     /* n_rows x 2 */
  char *tissue_positions; /* Space Ranger folder: its positions file (input_spaceranger.c) */
  double *numi_given; /* from a column or table */
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

/* ---- chunk storage ---- */
int input_chunk_reserve(rctd_csr_chunk *chunk, int64_t n_rows, int64_t nnz);

/* ---- HDF5 helpers (input_hdf5.c); path is the file name for messages ---- */
void input_h5_silence(void);
/* "hdf5" when the file carries the HDF5 signature, else 0; -1 when unreadable. */
int input_is_hdf5(const char *path);
hid_t input_h5_open_file(const char *path, char *err, size_t err_size);
int input_h5_exists(hid_t loc, const char *name); /* link exists (no intermediate check) */
#include "h5_attr.h"
/* Reads a 1-D string dataset (fixed or variable length) in blocks, appending to out. */
int input_h5_read_strings(const char *path, hid_t loc, const char *name, input_strings *out,
                          char *err, size_t err_size);
int input_h5_read_strings_dset(const char *path, hid_t dset, const char *name, input_strings *out,
                               char *err, size_t err_size);
/* Number of elements of a 1-D dataset (or -1). */
int64_t input_h5_length(hid_t loc, const char *name);
/* Reads elements [start, start+count) of a 1-D numeric dataset, converting to int64/double. */
int input_h5_read_i64(const char *path, hid_t dset, const char *what, int64_t start, int64_t count,
                      int64_t *out, char *err, size_t err_size);
int input_h5_read_f64(const char *path, hid_t dset, const char *what, int64_t start, int64_t count,
                      double *out, char *err, size_t err_size);
int input_h5_is_string(hid_t dset);

/* CSR-on-disk (h5ad CSR, 10x CSC = cells-major): data, indices, indptr datasets in a group. */
typedef struct {
  const char *path;
  hid_t file, data, indices, indptr;
  int64_t n_rows, n_cols_on_disk, nnz;
  int32_t *col_map; /* on-disk column -> gene, -1 dropped; NULL: identity */
  int64_t *indptr_buf;
  int64_t *idx_buf;
  size_t idx_cap;
} input_h5_csr;

int input_h5_csr_read_rows(void *state, int64_t row_begin, int64_t row_end, rctd_csr_chunk *chunk,
                           char *err, size_t err_size);
void input_h5_csr_close(void *state);
/* Opens data/indices/indptr under group; checks lengths. */
int input_h5_csr_init(input_h5_csr *csr, const char *path, hid_t file, hid_t group,
                      const char *group_name, int64_t n_rows, int64_t n_cols, char *err,
                      size_t err_size);

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

/* Side tables keyed by barcode: fills labels/numi/coords for matching rows. */
int input_apply_tables(rctd_input *input, char *err, size_t err_size);

#endif
