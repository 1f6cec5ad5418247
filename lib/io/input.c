/* Input readers: format detection, dispatch, shared validation and the chunk stream. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5guard.h"
#include "input_internal.h"
#include "strlist.h"

/* ---- options ---- */

void rctd_input_options_init(rctd_input_options *options) {
  memset(options, 0, sizeof *options);
  options->format = RCTD_INPUT_AUTO;
  options->cell_types = RCTD_CELL_TYPES_OPTIONAL;
}

const char *rctd_input_format_name(rctd_input_format format) {
  switch (format) {
    case RCTD_INPUT_H5AD:
      return "h5ad";
    case RCTD_INPUT_10X_H5:
      return "10x-h5";
    case RCTD_INPUT_MTX:
      return "mtx";
    case RCTD_INPUT_CSV:
      return "csv";
    default:
      return "auto";
  }
}

int rctd_input_format_from_name(const char *name, rctd_input_format *format) {
  static const rctd_input_format all[] = {RCTD_INPUT_AUTO, RCTD_INPUT_H5AD, RCTD_INPUT_10X_H5,
                                          RCTD_INPUT_MTX, RCTD_INPUT_CSV};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (!name || strcmp(name, rctd_input_format_name(all[i])) == 0) {
      *format = name ? all[i] : RCTD_INPUT_AUTO;
      return 0;
    }
  return -1;
}

static int input_copy_option(rctd_input *input, int slot, const char **field) {
  if (!*field) return 0;
  input->option_strings[slot] = strdup(*field);
  if (!input->option_strings[slot]) return -1;
  *field = input->option_strings[slot];
  return 0;
}

static int input_copy_options(rctd_input *input, const rctd_input_options *options) {
  if (options)
    input->options = *options;
  else
    rctd_input_options_init(&input->options);
  rctd_input_options *o = &input->options;
  const char **fields[] = {&o->cell_type_col,   &o->numi_col,   &o->layer,        &o->gene_names,
                           &o->cell_type_table, &o->numi_table, &o->coords_table, &o->tmp_dir};
  for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
    if (input_copy_option(input, i, fields[i]) != 0) return -1;
  return 0;
}

/* ---- detection ---- */

static int input_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  if (m > n) return 0;
  for (size_t i = 0; i < m; i++)
    if (tolower((unsigned char)s[n - m + i]) != tolower((unsigned char)suffix[i])) return 0;
  return 1;
}

static int input_file_in_dir(const char *dir, const char *name, char *out, size_t out_size) {
  int len = snprintf(out, out_size, "%s/%s", dir, name);
  if (len < 0 || (size_t)len >= out_size) return 0;
  struct stat st;
  return stat(out, &st) == 0 && S_ISREG(st.st_mode);
}

static int input_is_text_table(const char *path) {
  const char *exts[] = {".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz"};
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (input_ends_with(path, exts[i])) return 1;
  return 0;
}

/* spacexr's directory layouts: reference (dge.csv + meta_data.csv) and read.SpatialRNA
 * (MappedDGEForR.csv + BeadLocationsForR.csv).  Sets the CSV path and default side tables. */
static int input_spacexr_dir(rctd_input *input, const char *dir_path) {
  char file[4096], dir[4096];
  snprintf(dir, sizeof dir, "%s", dir_path); /* dir_path may be input->path, replaced below */
  rctd_input_options *o = &input->options;
  if (input_file_in_dir(dir, "MappedDGEForR.csv", file, sizeof file)) {
    free(input->path);
    input->path = strdup(file);
    if (!o->coords_table && input_file_in_dir(dir, "BeadLocationsForR.csv", file, sizeof file)) {
      input->option_strings[8] = strdup(file);
      o->coords_table = input->option_strings[8];
    }
    return 1;
  }
  if (input_file_in_dir(dir, "dge.csv", file, sizeof file)) {
    free(input->path);
    input->path = strdup(file);
    if (input_file_in_dir(dir, "meta_data.csv", file, sizeof file)) {
      if (!o->cell_type_table && o->cell_types != RCTD_CELL_TYPES_IGNORE) {
        input->option_strings[9] = strdup(file);
        o->cell_type_table = input->option_strings[9];
      }
      if (!o->numi_table && o->numi_col) {
        input->option_strings[10] = strdup(file);
        o->numi_table = input->option_strings[10];
      }
    }
    return 1;
  }
  return 0;
}

static int input_has_10x_matrix(const char *path) {
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) return 0;
  int found = input_h5_exists(file, "matrix");
  if (!found && !input_h5_exists(file, "X") && !input_h5_exists(file, "obs")) {
    /* Cell Ranger 2: one group per genome holding indptr/gene_names */
    H5G_info_t info;
    if (H5Gget_info(file, &info) >= 0 && info.nlinks >= 1) {
      char name[256];
      for (hsize_t i = 0; i < info.nlinks && !found; i++) {
        if (H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
          continue;
        char probe[300];
        snprintf(probe, sizeof probe, "%s/gene_names", name);
        found = input_h5_exists(file, name) && input_h5_exists(file, probe);
      }
    }
  }
  H5Fclose(file);
  return found;
}

static int input_detect(rctd_input *input, char *err, size_t err_size, char *mtx_dir,
                        size_t mtx_dir_size) {
  const char *path = input->path;
  struct stat st;
  if (stat(path, &st) != 0)
    return input_fail(err, err_size, path, "cannot open: %s: check the path", strerror(errno));
  char file[4096];
  if (S_ISDIR(st.st_mode)) {
    if (input_file_in_dir(path, "matrix.mtx.gz", file, sizeof file) ||
        input_file_in_dir(path, "matrix.mtx", file, sizeof file)) {
      snprintf(mtx_dir, mtx_dir_size, "%s", path);
      input->format = RCTD_INPUT_MTX;
      return 0;
    }
    if (input_spacexr_dir(input, path)) {
      input->format = RCTD_INPUT_CSV;
      return 0;
    }
    if (input_spaceranger_dir(input, path)) {
      input->format = RCTD_INPUT_10X_H5;
      return 0;
    }
    return input_fail(err, err_size, path,
                      "directory holds no matrix.mtx(.gz) (10x MTX), dge.csv or "
                      "MappedDGEForR.csv (spacexr) nor filtered_feature_bc_matrix.h5 with "
                      "spatial/tissue_positions(_list).csv (Space Ranger outs/): give the matrix "
                      "file or directory");
  }
  if (input_ends_with(path, ".mtx") || input_ends_with(path, ".mtx.gz")) {
    snprintf(mtx_dir, mtx_dir_size, "%s", path);
    char *slash = strrchr(mtx_dir, '/');
    if (slash)
      *slash = '\0';
    else
      snprintf(mtx_dir, mtx_dir_size, ".");
    input->format = RCTD_INPUT_MTX;
    return 0;
  }
  int hdf5 = input_is_hdf5(path);
  if (hdf5 < 0)
    return input_fail(err, err_size, path, "cannot read: %s: check permissions", strerror(errno));
  if (hdf5) {
    input->format = input_has_10x_matrix(path) ? RCTD_INPUT_10X_H5 : RCTD_INPUT_H5AD;
    return 0;
  }
  if (input_is_text_table(path)) {
    input->format = RCTD_INPUT_CSV;
    return 0;
  }
  if (!S_ISREG(st.st_mode)) /* (a pipe: no content to go by, and HDF5 needs a file) */
    return input_fail(err, err_size, path,
                      "not a regular file (a pipe?): its format cannot be detected: give "
                      "--format csv for a piped counts table, or the file itself");
  if (input_ends_with(path, ".h5ad") || input_ends_with(path, ".h5") ||
      input_ends_with(path, ".hdf5"))
    return input_fail(err, err_size, path,
                      "not an HDF5 file (no HDF5 signature: truncated, corrupt or another "
                      "format): re-export it");
  return input_fail(err, err_size, path,
                    "unknown input format: give an .h5ad, a 10x .h5, a 10x MTX directory or a "
                    "spacexr .csv counts table");
}

/* ---- validation ---- */

static int input_cmp_strptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The smallest name S holds more than once (malloc'd) in *DUP, or NULL: in bounded memory
 * (input_strings_find_duplicate's sorted runs, beyond 65,536 names in a temporary file); where
 * no temporary file can be made, in one run in memory (16 bytes a name).  0 or -1 (errno). */
static int input_find_duplicate(const rctd_input *input, const input_strings *s, char **dup) {
  int rc = input_strings_find_duplicate(s, input->options.tmp_dir, NULL, 0, dup);
  if (rc == -2) rc = input_strings_find_duplicate(s, NULL, NULL, s->n, dup);
  return rc;
}

/* The message for a failed duplicate check of WHAT. */
static int input_dup_check_fail(const rctd_input *input, const char *what, char *err,
                                size_t err_size) {
  if (errno == ENOMEM) return input_fail(err, err_size, input->path, "out of memory");
  return input_fail(err, err_size, input->path,
                    "cannot check the %s through a temporary file (%s): free some space or give "
                    "another directory with --tmp-dir",
                    what, strerror(errno));
}

/* Row R's name for a message: "row N" where it cannot be read back. */
static const char *input_barcode_or_row(const rctd_input *input, int64_t r) {
  static _Thread_local char row[32];
  const char *name = input_strings_get(&input->barcodes, r);
  if (name) return name;
  snprintf(row, sizeof row, "row %lld", (long long)r + 1);
  return row;
}

static int input_barcode_dup_fail(const rctd_input *input, const char *dup, char *err,
                                  size_t err_size) {
  return input_fail(err, err_size, input->path,
                    "barcode '%s' appears more than once: make barcodes unique", dup);
}

static int input_check_barcodes(rctd_input *input, char *err, size_t err_size) {
  char *dup = NULL;
  if (input_find_duplicate(input, &input->barcodes, &dup) != 0)
    return input_dup_check_fail(input, "barcodes", err, err_size);
  int rc = dup ? input_barcode_dup_fail(input, dup, err, err_size) : 0;
  free(dup);
  return rc;
}

static int input_validate(rctd_input *input, char *err, size_t err_size) {
  const char *path = input->path;
  if (input->n_rows == 0 || input->n_genes == 0)
    return input_fail(err, err_size, path,
                      "the matrix is empty (%lld rows x %lld genes): give a file with counts",
                      (long long)input->n_rows, (long long)input->n_genes);
  if (input->n_genes > INT32_MAX)
    return input_fail(err, err_size, path, "%lld genes: more than this reader handles (2^31 - 1)",
                      (long long)input->n_genes);
  if (input->gene_names.n != input->n_genes)
    return input_fail(err, err_size, path, "%lld gene names for %lld genes: the file is corrupt",
                      (long long)input->gene_names.n, (long long)input->n_genes);
  if (input->barcodes.n != input->n_rows)
    return input_fail(err, err_size, path, "%lld barcodes for %lld rows: the file is corrupt",
                      (long long)input->barcodes.n, (long long)input->n_rows);
  char *gene_dup = NULL;
  if (input_find_duplicate(input, &input->gene_names, &gene_dup) != 0)
    return input_dup_check_fail(input, "gene names", err, err_size);
  if (gene_dup) {
    input_fail(err, err_size, path,
               "gene name '%s' appears more than once: make gene names unique%s", gene_dup,
               input->format == RCTD_INPUT_10X_H5 || input->format == RCTD_INPUT_MTX
                   ? " or use --gene-names id"
                   : "");
    free(gene_dup);
    return -1;
  }
  if (input_check_barcodes(input, err, err_size) != 0) return -1;
  for (int64_t r = 0; input->numi_given && r < input->n_rows; r++) {
    double v = input->numi_given[r];
    if (isfinite(v) && v >= 0 && (input->options.allow_noninteger || floor(v) == v)) continue;
    return input_fail(err, err_size, path,
                      "nUMI %g of barcode '%s' is %s: nUMI must be a non-negative %s", v,
                      input_barcode_or_row(input, r),
                      isnan(v) ? "missing (NaN)"
                      : v < 0  ? "negative"
                               : "not valid",
                      input->options.allow_noninteger ? "number" : "integer");
  }
  for (int64_t r = 0; input->coords && r < input->n_rows; r++)
    if (!isfinite(input->coords[2 * r]) || !isfinite(input->coords[2 * r + 1]))
      return input_fail(err, err_size, path,
                        "coordinates of barcode '%s' are missing or not finite: give every "
                        "pixel x and y",
                        input_barcode_or_row(input, r));
  const char *dup = rctd_strlist_duplicate((const char *const *)input->type_names.items,
                                           (size_t)input->type_names.n);
  if (dup)
    return input_fail(err, err_size, path,
                      "cell type '%s' appears twice among the categories: cell type names must "
                      "be unique",
                      dup);
  if (input->options.cell_types != RCTD_CELL_TYPES_REQUIRED) return 0;
  int64_t n_types = input->type_names.n;
  if (n_types < 2)
    return input_fail(err, err_size, path,
                      "%lld cell type%s: a reference needs at least 2 cell types",
                      (long long)n_types, n_types == 1 ? "" : "s");
  for (int64_t k = 0; k < n_types; k++)
    if (input->type_names.items[k][0] == '\0')
      return input_fail(err, err_size, path,
                        "a cell type has an empty name: give every cell type a non-empty name");
  int64_t labelled = 0;
  for (int64_t r = 0; r < input->n_rows; r++) labelled += input->type_codes[r] >= 0;
  if (labelled == 0)
    return input_fail(err, err_size, path,
                      "no row has a cell type label: check that the cell type table's barcodes "
                      "match the matrix");
  return 0;
}

/* ---- open / close ---- */

static rctd_input *input_open_guarded(const char *path, const rctd_input_options *options,
                                      char *err, size_t err_size);

rctd_input *rctd_input_open(const char *path, const rctd_input_options *options, char *err,
                            size_t err_size) {
  input_h5_silence();
  if (err && err_size) err[0] = '\0';
  if (path && strcmp(path, "-") == 0) {
    input_fail(err, err_size, path,
               "counts are not read from standard input: give the file (a piped counts table: "
               "/dev/stdin with --format csv)");
    return NULL;
  }
  /* An HDF5 file is read under the guard: a crash or hang in libhdf5 becomes one line. */
  int guarded = path && input_is_hdf5(path) == 1;
  if (guarded) rctd_h5_guard_enter(path);
  rctd_input *input = input_open_guarded(path, options, err, err_size);
  if (guarded) rctd_h5_guard_leave();
  return input;
}

static rctd_input *input_open_guarded(const char *path, const rctd_input_options *options,
                                      char *err, size_t err_size) {
  rctd_input *input = calloc(1, sizeof *input);
  if (!input) {
    input_fail(err, err_size, path, "out of memory");
    return NULL;
  }
  input->path = strdup(path ? path : "");
  if (!input->path || input_copy_options(input, options) != 0) {
    input_fail(err, err_size, path, "out of memory");
    rctd_input_close(input);
    return NULL;
  }
  char mtx_dir[4096] = "";
  input->format = input->options.format;
  int rc = 0;
  if (input->format == RCTD_INPUT_AUTO)
    rc = input_detect(input, err, err_size, mtx_dir, sizeof mtx_dir);
  if (rc == 0 && input->format == RCTD_INPUT_MTX && !mtx_dir[0])
    snprintf(mtx_dir, sizeof mtx_dir, "%s", input->path);
  /* Names go to a temporary file unless a side table or a positions file looks them all up;
   * where none can be made they stay in memory. */
  if (rc == 0 && !input_tables_given(&input->options) && !input->tissue_positions)
    input_strings_spill(&input->barcodes, input->options.tmp_dir);
  if (rc == 0) {
    switch (input->format) {
      case RCTD_INPUT_H5AD:
        rc = input_h5ad_open(input, err, err_size);
        break;
      case RCTD_INPUT_10X_H5:
        rc = input_10x_open(input, err, err_size);
        break;
      case RCTD_INPUT_MTX:
        rc = input_mtx_open(input, mtx_dir, err, err_size);
        break;
      case RCTD_INPUT_CSV:
        rc = input_csv_open(input, err, err_size);
        break;
      default:
        rc = input_fail(err, err_size, path, "unknown input format");
        break;
    }
  }
  if (rc == 0) rc = input_apply_tables(input, err, err_size);
  if (rc == 0 && input->tissue_positions) rc = input_spaceranger_apply(input, err, err_size);
  if (rc == 0 && input->options.cell_types == RCTD_CELL_TYPES_REQUIRED && !input->type_codes)
    rc = input_fail(err, err_size, input->path,
                    "no cell type column '%s': name it with --cell-type-col or give a cell "
                    "type table",
                    input->options.cell_type_col ? input->options.cell_type_col : "cell_type");
  if (rc == 0 && input->options.numi_col && !input->numi_given)
    rc = input_fail(err, err_size, input->path,
                    "--numi-col %s: a %s input has no per-cell columns: give a nUMI table too, "
                    "or leave --numi-col out to use count sums",
                    input->options.numi_col, rctd_input_format_name(input->format));
  if (rc == 0) rc = input_validate(input, err, err_size);
  if (rc != 0) {
    rctd_input_close(input);
    return NULL;
  }
  return input;
}

static int input_is_h5(const rctd_input *input) {
  return input->format == RCTD_INPUT_H5AD || input->format == RCTD_INPUT_10X_H5;
}

void rctd_input_close(rctd_input *input) {
  if (!input) return;
  if (input_is_h5(input)) rctd_h5_guard_enter(input->path);
  if (input->backend.close && input->backend_state) input->backend.close(input->backend_state);
  if (input_is_h5(input)) rctd_h5_guard_leave();
  free(input->path);
  for (size_t i = 0; i < sizeof input->option_strings / sizeof input->option_strings[0]; i++)
    free(input->option_strings[i]);
  input_strings_free(&input->gene_names);
  input_strings_free(&input->barcodes);
  input_strings_free(&input->type_names);
  free(input->type_codes);
  free(input->coords);
  free(input->tissue_positions);
  free(input->numi_given);
  free(input->count_sums);
  free(input->sort_buf);
  free(input);
}

/* ---- accessors ---- */

rctd_input_format rctd_input_get_format(const rctd_input *input) {
  return input->format;
}
const char *rctd_input_path(const rctd_input *input) {
  return input->path;
}
int64_t rctd_input_n_rows(const rctd_input *input) {
  return input->n_rows;
}
int64_t rctd_input_n_genes(const rctd_input *input) {
  return input->n_genes;
}
const char *const *rctd_input_gene_names(const rctd_input *input) {
  return (const char *const *)input->gene_names.items;
}
const char *rctd_input_barcode(const rctd_input *input, int64_t row) {
  return input_strings_get(&input->barcodes, row);
}
const char *const *rctd_input_barcodes(rctd_input *input) {
  if (input_strings_unspill(&input->barcodes) != 0) return NULL;
  return (const char *const *)input->barcodes.items;
}
int rctd_input_n_cell_types(const rctd_input *input) {
  return input->type_codes ? (int)input->type_names.n : 0;
}
const char *const *rctd_input_cell_type_names(const rctd_input *input) {
  return input->type_codes ? (const char *const *)input->type_names.items : NULL;
}
const int32_t *rctd_input_cell_type_codes(const rctd_input *input) {
  return input->type_codes;
}
const double *rctd_input_coords(const rctd_input *input) {
  return input->coords;
}

/* ---- chunks ---- */

void rctd_csr_chunk_init(rctd_csr_chunk *chunk) {
  memset(chunk, 0, sizeof *chunk);
}

void rctd_csr_chunk_free(rctd_csr_chunk *chunk) {
  free(chunk->row_ptr);
  free(chunk->gene_idx);
  free(chunk->values);
  memset(chunk, 0, sizeof *chunk);
}

void rctd_input_rewind(rctd_input *input) {
  input->next_row = 0;
}

typedef struct {
  int32_t gene;
  int32_t order;
  double value;
} input_entry;

static int input_cmp_entry(const void *a, const void *b) {
  const input_entry *x = a, *y = b;
  if (x->gene != y->gene) return x->gene < y->gene ? -1 : 1;
  return (x->order > y->order) - (x->order < y->order);
}

static int input_check_value(const rctd_input *input, int64_t row, int32_t gene, double value,
                             char *err, size_t err_size) {
  if (gene < 0 || gene >= input->n_genes)
    return input_fail(err, err_size, input->path,
                      "gene index %ld out of range in row %lld: the file is corrupt", (long)gene,
                      (long long)row + 1);
  const char *what = NULL;
  if (isnan(value))
    what = "is NaN";
  else if (isinf(value))
    what = "is infinite";
  else if (value < 0)
    what = "is negative";
  else if (!input->options.allow_noninteger && floor(value) != value)
    what = "is not an integer (use --allow-noninteger if that is intended)";
  if (!what) return 0;
  return input_fail(err, err_size, input->path,
                    "count %g for barcode '%s', gene '%s' %s: give raw UMI counts", value,
                    input_barcode_or_row(input, row), input->gene_names.items[gene], what);
}

/* Sorts each row by gene, sums duplicates, drops zeros, validates values, in place. */
static int input_normalize_chunk(rctd_input *input, rctd_csr_chunk *chunk, char *err,
                                 size_t err_size) {
  int64_t out = 0;
  for (int64_t r = 0; r < chunk->n_rows; r++) {
    int64_t begin = chunk->row_ptr[r], end = chunk->row_ptr[r + 1];
    int64_t row = chunk->row_begin + r;
    int sorted = 1;
    for (int64_t p = begin; p < end; p++) {
      if (input_check_value(input, row, chunk->gene_idx[p], chunk->values[p], err, err_size))
        return -1;
      if (p > begin && chunk->gene_idx[p] <= chunk->gene_idx[p - 1]) sorted = 0;
    }
    chunk->row_ptr[r] = out;
    if (!sorted) {
      size_t need = (size_t)(end - begin) * sizeof(input_entry);
      if (need > input->sort_cap) {
        void *buf = realloc(input->sort_buf, need);
        if (!buf) return input_fail(err, err_size, input->path, "out of memory");
        input->sort_buf = buf;
        input->sort_cap = need;
      }
      input_entry *entries = input->sort_buf;
      for (int64_t p = begin; p < end; p++)
        entries[p - begin] =
            (input_entry){chunk->gene_idx[p], (int32_t)(p - begin), chunk->values[p]};
      qsort(entries, (size_t)(end - begin), sizeof *entries, input_cmp_entry);
      for (int64_t i = 0; i < end - begin; i++) {
        if (out > chunk->row_ptr[r] && chunk->gene_idx[out - 1] == entries[i].gene) {
          chunk->values[out - 1] += entries[i].value;
          continue;
        }
        if (out > chunk->row_ptr[r] && chunk->values[out - 1] == 0) out--;
        chunk->gene_idx[out] = entries[i].gene;
        chunk->values[out++] = entries[i].value;
      }
    } else {
      for (int64_t p = begin; p < end; p++) {
        if (chunk->values[p] == 0) continue;
        chunk->gene_idx[out] = chunk->gene_idx[p];
        chunk->values[out++] = chunk->values[p];
      }
    }
    if (out > chunk->row_ptr[r] && chunk->values[out - 1] == 0) out--;
  }
  chunk->row_ptr[chunk->n_rows] = out;
  chunk->nnz = out;
  return 0;
}

static int input_read_chunk(rctd_input *input, int64_t row_begin, int64_t row_end,
                            rctd_csr_chunk *chunk, char *err, size_t err_size) {
  chunk->row_begin = row_begin;
  chunk->n_rows = row_end - row_begin;
  if (input_is_h5(input)) rctd_h5_guard_enter(input->path);
  int rc = input->backend.read_rows(input->backend_state, row_begin, row_end, chunk, err, err_size);
  if (input_is_h5(input)) rctd_h5_guard_leave();
  if (rc) return -1;
  return input_normalize_chunk(input, chunk, err, err_size);
}

int rctd_input_next_chunk(rctd_input *input, int64_t max_rows, rctd_csr_chunk *chunk, char *err,
                          size_t err_size) {
  if (max_rows < 1) max_rows = 1;
  if (input->next_row >= input->n_rows) return 0;
  int64_t row_end = input->next_row + max_rows;
  if (row_end > input->n_rows) row_end = input->n_rows;
  if (input_read_chunk(input, input->next_row, row_end, chunk, err, err_size)) return -1;
  input->next_row = row_end;
  return 1;
}

/* Rows per chunk for internal passes. */
#define INPUT_PASS_ROWS 8192

int rctd_input_count_sums(rctd_input *input, const double **sums_n, char *err, size_t err_size) {
  if (input->count_sums) {
    *sums_n = input->count_sums;
    return 0;
  }
  double *sums = malloc((size_t)input->n_rows * sizeof *sums);
  if (!sums) return input_fail(err, err_size, input->path, "out of memory");
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  for (int64_t row = 0; row < input->n_rows; row += INPUT_PASS_ROWS) {
    int64_t row_end = row + INPUT_PASS_ROWS < input->n_rows ? row + INPUT_PASS_ROWS : input->n_rows;
    if (input_read_chunk(input, row, row_end, &chunk, err, err_size)) {
      rctd_csr_chunk_free(&chunk);
      free(sums);
      return -1;
    }
    for (int64_t r = 0; r < chunk.n_rows; r++) sums[row + r] = rctd_csr_row_count_sum(&chunk, r);
  }
  rctd_csr_chunk_free(&chunk);
  input->count_sums = sums;
  *sums_n = sums;
  return 0;
}

double rctd_csr_row_count_sum(const rctd_csr_chunk *chunk, int64_t r) {
  long double total = 0; /* R's colSums accumulates in long double */
  for (int64_t p = chunk->row_ptr[r]; p < chunk->row_ptr[r + 1]; p++) total += chunk->values[p];
  return (double)total;
}

const double *rctd_input_numi_given(const rctd_input *input) {
  return input->numi_given;
}

const char *rctd_input_tmp_dir(const rctd_input *input) {
  return input->options.tmp_dir;
}

int rctd_input_numi(rctd_input *input, const double **numi_n, char *err, size_t err_size) {
  if (input->numi_given) {
    *numi_n = input->numi_given;
    return 0;
  }
  return rctd_input_count_sums(input, numi_n, err, err_size);
}

int64_t rctd_gene_overlap(const char *const *genes_a, int64_t n_a, const char *const *genes_b,
                          int64_t n_b) {
  if (n_a <= 0 || n_b <= 0) return 0;
  const char **sorted = malloc((size_t)n_b * sizeof *sorted);
  if (!sorted) return -1;
  memcpy(sorted, genes_b, (size_t)n_b * sizeof *sorted);
  qsort(sorted, (size_t)n_b, sizeof *sorted, input_cmp_strptr);
  int64_t shared = 0;
  for (int64_t i = 0; i < n_a; i++)
    shared += bsearch(&genes_a[i], sorted, (size_t)n_b, sizeof *sorted, input_cmp_strptr) != NULL;
  free(sorted);
  return shared;
}
