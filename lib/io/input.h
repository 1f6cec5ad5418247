/* Readers for count matrices as users have them: AnnData h5ad, 10x HDF5 (Cell Ranger, Space
 * Ranger, Xenium), 10x MTX directories and spacexr CSV tables.
 *
 * Every reader presents the same view: n_rows rows (cells or pixels) x n_genes genes, with row
 * names (barcodes), gene names, optional cell type labels, optional coordinates, and the counts
 * streamed as CSR row chunks.  Per-row values are held in memory (one entry per row), row names
 * in a temporary file (rctd_input_barcode); the counts never are held: they are read chunk by
 * chunk, and inputs stored genes-major (CSC h5ad, spacexr CSV, MTX in any entry order) are
 * transposed once through an anonymous temporary file (see rctd_input_open) so that memory stays
 * bounded by the chunk size.
 *
 * Errors: every function that can fail takes `char *err, size_t err_size` and on failure writes
 * one line "FILE: what is wrong and what to do" (no trailing newline, no program name) and
 * returns -1 (or NULL).  Library code never prints or exits.  HDF5's own error printing is
 * turned off by rctd_input_open. */
#ifndef RCTD_INPUT_H
#define RCTD_INPUT_H
#include <stddef.h>
#include <stdint.h>

typedef enum {
  RCTD_INPUT_AUTO = 0, /* detect: directory -> MTX; HDF5 with /matrix -> 10x; HDF5 -> h5ad;
                          .csv/.tsv/.txt(.gz) -> CSV */
  RCTD_INPUT_H5AD,
  RCTD_INPUT_10X_H5,
  RCTD_INPUT_MTX,
  RCTD_INPUT_CSV
} rctd_input_format;

typedef enum {
  RCTD_CELL_TYPES_OPTIONAL = 0, /* read the column when it exists, else no labels */
  RCTD_CELL_TYPES_REQUIRED,     /* missing column or fewer than 2 types is an error */
  RCTD_CELL_TYPES_IGNORE        /* never read labels */
} rctd_cell_type_need;

typedef struct {
  rctd_input_format format; /* RCTD_INPUT_AUTO unless the caller knows */
  rctd_cell_type_need cell_types;
  const char *cell_type_col; /* NULL: "cell_type" (obs column, or column of the cell type
                                table; a 2-column table with no such header uses column 2) */
  const char *numi_col;      /* NULL: nUMI = count sums (R's default); else obs column, or
                                column of the nUMI table ("nUMI", or the only value column
                                when NULL and a table is given).  Formats without per-cell
                                columns (10x, MTX, CSV) need numi_table with it. */
  const char *layer;         /* h5ad: read layers/NAME instead of X */
  const char *gene_names;    /* 10x h5 and MTX: "name" (default) or "id" */
  int allow_noninteger;      /* accept non-integer counts and nUMI (R: require_int = FALSE) */
  /* Side tables (CSV/TSV, optionally .gz; first column = barcode; a header row unless every
   * field of the first line but the barcode is a number), for any format; they override what
   * the main file holds.  Rows of the matrix missing from a table get code -1 (cell types) or
   * an error (nUMI, coordinates); table rows not in the matrix are ignored. */
  const char *cell_type_table; /* barcode, type (spacexr meta_data.csv / cell_types) */
  const char *numi_table;      /* barcode, nUMI (may be the same file as cell_type_table) */
  const char *coords_table;    /* barcode, x, y: columns named x/y, xcoord/ycoord or
                                  array_row/array_col (Visium, as spacexr), else columns 2-3
                                  (BeadLocationsForR.csv); headerless 6 columns: Visium's
                                  tissue_positions_list.csv, columns 3-4 */
  const char *tmp_dir;         /* for the transpose file; NULL: $TMPDIR or /tmp */
} rctd_input_options;

/* Fills options with the defaults above. */
void rctd_input_options_init(rctd_input_options *options);

typedef struct rctd_input rctd_input;

/* Opens path (file, MTX directory, or a spacexr directory holding dge.csv [+ meta_data.csv as
 * cell type table, and as nUMI table when numi_col is set] or MappedDGEForR.csv [+
 * BeadLocationsForR.csv as coordinates]), reads names, labels, coordinates and the matrix layout,
 * and validates them (duplicated gene/barcode names, missing groups, empty matrix, cell types).
 * Counts are validated while streaming.  Returns NULL with err set on failure. */
rctd_input *rctd_input_open(const char *path, const rctd_input_options *options, char *err,
                            size_t err_size);
void rctd_input_close(rctd_input *input);

rctd_input_format rctd_input_get_format(const rctd_input *input);
const char *rctd_input_format_name(rctd_input_format format); /* "h5ad", "10x-h5", ... */
/* The format named NAME ("auto", "h5ad", "10x-h5", "mtx" or "csv"; NULL = "auto").  Returns 0,
 * or -1 (FORMAT untouched) for an unknown name. */
int rctd_input_format_from_name(const char *name, rctd_input_format *format);
const char *rctd_input_path(const rctd_input *input);
int64_t rctd_input_n_rows(const rctd_input *input);  /* cells or pixels */
int64_t rctd_input_n_genes(const rctd_input *input); /* after 10x feature_type filtering */
const char *const *rctd_input_gene_names(const rctd_input *input); /* n_genes */
/* Row names.  Where no side table needs them all at once, the names live in an anonymous
 * temporary file in tmp_dir (in memory where none can be made) and are read back a block at a
 * time: rctd_input_barcode gives the name of ROW, valid until the next call on INPUT (rows in
 * order read each block once), or NULL when it cannot be read back (errno set).
 * rctd_input_barcodes holds every name in memory (n_rows; loaded at its first call) for callers
 * that need them all: NULL when out of memory or unreadable. */
const char *rctd_input_barcode(const rctd_input *input, int64_t row);
const char *const *rctd_input_barcodes(rctd_input *input);

/* Cell types: n_types == 0 when there are no labels.  Names are in factor level order: the
 * categorical's category order (h5ad); otherwise the sorted unique labels as R's factor() gives
 * them (numeric order when every label is a number, else byte order).  codes_n[row] indexes
 * names, or is -1 for a row without a label (missing in the table, NaN category). */
int rctd_input_n_cell_types(const rctd_input *input);
const char *const *rctd_input_cell_type_names(const rctd_input *input);
const int32_t *rctd_input_cell_type_codes(const rctd_input *input);

/* Coordinates, n_rows x 2 row-major (x, y), or NULL when the input has none. */
const double *rctd_input_coords(const rctd_input *input);

/* nUMI per row: the --numi-col column or table when given, else count sums (computed by one
 * full pass over the counts the first time, which also validates every count).  The array is
 * owned by input.  Returns 0, or -1 with err set. */
int rctd_input_numi(rctd_input *input, const double **numi_n, char *err, size_t err_size);
/* Count sums per row (one pass, cached), whatever numi_col says. */
int rctd_input_count_sums(rctd_input *input, const double **sums_n, char *err, size_t err_size);
/* The nUMI of --numi-col or a nUMI table (n_rows, owned by input), or NULL when nUMI are the
 * count sums: a caller that streams the counts anyway then sums each row itself
 * (rctd_csr_row_count_sum) and holds nothing per row. */
const double *rctd_input_numi_given(const rctd_input *input);
/* The directory for temporary files (options.tmp_dir; NULL: $TMPDIR or /tmp). */
const char *rctd_input_tmp_dir(const rctd_input *input);

/* A chunk of rows [row_begin, row_begin + n_rows) in CSR form, zero-based.  row_ptr has
 * n_rows + 1 entries starting at 0; within a row gene_idx is strictly increasing (duplicate
 * entries summed) and explicit zeros are dropped.  Buffers belong to the chunk and are reused
 * by the next call. */
typedef struct {
  int64_t row_begin;
  int64_t n_rows;
  int64_t nnz;
  int64_t *row_ptr;  /* n_rows + 1 */
  int32_t *gene_idx; /* nnz */
  double *values;    /* nnz */
  /* private capacity */
  int64_t cap_rows, cap_nnz;
} rctd_csr_chunk;

void rctd_csr_chunk_init(rctd_csr_chunk *chunk);
/* Row R's count sum, accumulated in long double as R's colSums: the nUMI when none is given. */
double rctd_csr_row_count_sum(const rctd_csr_chunk *chunk, int64_t r);
void rctd_csr_chunk_free(rctd_csr_chunk *chunk);

/* Restarts streaming at row 0. */
void rctd_input_rewind(rctd_input *input);
/* Reads the next chunk of at most max_rows rows.  Returns 1 with a chunk, 0 at the end, -1 with
 * err set (negative, NaN/Inf or non-integer count, corrupt file).  Counts are validated here. */
int rctd_input_next_chunk(rctd_input *input, int64_t max_rows, rctd_csr_chunk *chunk, char *err,
                          size_t err_size);

/* R's gene overlap rule helper: number of names of a found in b (exact match). */
int64_t rctd_gene_overlap(const char *const *genes_a, int64_t n_a, const char *const *genes_b,
                          int64_t n_b);

#endif
