/* AnnData h5ad results (layout in output.h), with the HDF5 C library and anndata's element
 * encodings (encoding-type / encoding-version attributes, as anndata >= 0.8 writes them):
 * dataframes, arrays, categoricals (codes + categories), string arrays (variable-length UTF-8),
 * dicts and scalars.
 *
 * The output is a byte copy of the spatial h5ad to which groups and datasets are added, or a
 * fresh file.  Every object is created without time stamps and datasets are contiguous and
 * allocated (with their fill value: NaN, "filtered", false) at creation, so the bytes depend only
 * on the inputs and on the order of the writes, which rctd-merge makes the fit order. */
#define _GNU_SOURCE
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_out.h"
#include "error.h"
#include "h5_attr.h"
#include "h5guard.h"
#include "log.h"
#include "output.h"
#include "progress.h"
#include "strlist.h"

/* Rows between two fitted pixels that one block write may cover (gaps get the fill value). */
#define H5OUT_MAX_GAP 64

typedef enum { H5COL_F64, H5COL_I32, H5COL_BOOL } h5col_kind;

/* One output dataset written by row blocks. */
typedef struct {
  hid_t dset;
  h5col_kind kind;
  int cols;
  union {
    double f64;
    int32_t i32;
    uint8_t b;
  } fill;
  void *block; /* block buffer: rows x cols elements */
} h5col;

enum {
  COL_WEIGHTS,
  COL_PROPORTIONS,
  COL_DOMINANT,
  COL_FILTERED,
  COL_NUMI,
  COL_CONVERGED, /* full */
  COL_SPOT_CLASS,
  COL_FIRST_TYPE,
  COL_SECOND_TYPE,
  COL_FIRST_CLASS,
  COL_SECOND_CLASS,
  COL_MIN_SCORE,
  COL_SINGLET_SCORE,
  COL_CONV_ALL,
  COL_CONV_DOUBLET,
  COL_N_CANDIDATES,
  COL_WEIGHTS_DOUBLET,
  COL_N_TYPES,
  COL_MULTI_STATUS,
  COL_CONV_SUB,
  COL_SUB_WEIGHTS,
  COL_MULTI_CONF,
  COL_WEIGHTS_MULTI,
  COL_FIXED_END
};

struct rctd_h5ad_writer {
  const rctd_results_info *info;
  char *path;
  FILE *out; /* the atomic output (rctd_out_open); HDF5 writes through its name */
  char tmp_path[PATH_MAX];
  hid_t file, obs, obsm, str_type, bool_type;
  int64_t n_rows;
  int copy;             /* results added to a copy of the spatial h5ad */
  const char *spatial;  /* that h5ad (messages) */
  hid_t index_dset;     /* obs names: checked (copy) or written (rows = fitted pixels) */
  int rows_from_pixels; /* fresh file without barcodes: row = fit index */
  /* rows_from_pixels: the obs names so far, each ended by '\0', in an anonymous temporary file
   * (memory independent of the pixel count), written at close in order (the string heap then
   * does not depend on the chunking); the row of the next name. */
  FILE *names_spill;
  int64_t names_next;
  /* fresh file: the spatial input's names (rctd_h5ad_target), written at open, then checked */
  const char *(*barcode)(const void *barcode_src, int64_t row);
  const void *barcode_src;
  char filtered_label[64];
  int n_cols;
  h5col *cols;       /* COL_FIXED_END fixed columns, then multi type slots */
  int64_t block_cap; /* rows the block buffers hold */
  int64_t max_row;   /* largest row written so far (-1) */
  int monotone;      /* rows arrived strictly increasing so far */
};

/* ------------------------------------------------------------------ HDF5 helpers */

static hid_t h5o_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

/* numpy's bool as h5py stores it: an int8 enum FALSE = 0, TRUE = 1. */
static hid_t h5o_bool_type(void) {
  hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
  int8_t no = 0, yes = 1;
  H5Tenum_insert(t, "FALSE", &no);
  H5Tenum_insert(t, "TRUE", &yes);
  return t;
}

/* Object creation properties: no time stamps (the bytes must not depend on the clock). */
static hid_t h5o_gcpl(void) {
  hid_t p = H5Pcreate(H5P_GROUP_CREATE);
  H5Pset_obj_track_times(p, 0);
  return p;
}

static hid_t h5o_dcpl(hid_t mem_type, const void *fill) {
  hid_t p = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(p, 0);
  H5Pset_layout(p, H5D_CONTIGUOUS);
  H5Pset_alloc_time(p, H5D_ALLOC_TIME_EARLY);
  if (fill) H5Pset_fill_value(p, mem_type, fill);
  return p;
}

static int h5o_exists(hid_t loc, const char *name) {
  return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

static int h5o_delete(hid_t loc, const char *name) {
  if (!h5o_exists(loc, name)) return 0;
  return H5Ldelete(loc, name, H5P_DEFAULT) < 0 ? -1 : 0;
}

static int h5o_attr_str(hid_t obj, const char *name, const char *value) {
  if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
  hid_t t = h5o_string_type(), s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 || H5Awrite(a, t, &value) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  return rc;
}

static int h5o_attr_bool(hid_t obj, const char *name, int value) {
  if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
  hid_t t = h5o_bool_type(), s = H5Screate(H5S_SCALAR);
  int8_t v = value ? 1 : 0;
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 || H5Awrite(a, t, &v) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  return rc;
}

static int h5o_attr_strings(hid_t obj, const char *name, const char *const *values, size_t n) {
  if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
  hsize_t dim = n;
  hid_t t = h5o_string_type(), s = H5Screate_simple(1, &dim, NULL);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = a < 0 || (n && H5Awrite(a, t, values) < 0) ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  return rc;
}

static int h5o_encoding(hid_t obj, const char *type, const char *version) {
  if (h5o_attr_str(obj, "encoding-type", type) < 0) return -1;
  return h5o_attr_str(obj, "encoding-version", version);
}

/* A new group (replacing one of that name) with an encoding. */
static hid_t h5o_group_new(hid_t loc, const char *name, const char *type, const char *version) {
  if (h5o_delete(loc, name) < 0) return -1;
  hid_t p = h5o_gcpl();
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, p, H5P_DEFAULT);
  H5Pclose(p);
  if (g < 0) return -1;
  if (h5o_encoding(g, type, version) < 0) {
    H5Gclose(g);
    return -1;
  }
  return g;
}

/* An existing dict-like group, or a new one. */
static hid_t h5o_group_open(hid_t loc, const char *name) {
  if (h5o_exists(loc, name)) return H5Gopen2(loc, name, H5P_DEFAULT);
  return h5o_group_new(loc, name, "dict", "0.1.0");
}

/* A dataset with anndata's "array" (or ENCODING) attributes, allocated and filled. */
static hid_t h5o_dataset(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                         const hsize_t *dims, const void *fill, const char *encoding) {
  if (h5o_delete(loc, name) < 0) return -1;
  hid_t s = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
  hid_t p = h5o_dcpl(mem_type, fill);
  hid_t d = H5Dcreate2(loc, name, file_type, s, H5P_DEFAULT, p, H5P_DEFAULT);
  H5Pclose(p);
  H5Sclose(s);
  if (d < 0) return -1;
  if (h5o_encoding(d, encoding ? encoding : "array", "0.2.0") < 0) {
    H5Dclose(d);
    return -1;
  }
  return d;
}

static int h5o_write_all(hid_t d, hid_t mem_type, const void *data) {
  int rc = H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
  H5Dclose(d);
  return rc;
}

static int h5o_string_array(hid_t loc, const char *name, const char *const *values, size_t n) {
  hid_t t = h5o_string_type();
  hsize_t dim = n;
  hid_t d = h5o_dataset(loc, name, t, t, 1, &dim, NULL, "string-array");
  int rc = d < 0 ? -1 : n ? h5o_write_all(d, t, values) : (H5Dclose(d), 0);
  H5Tclose(t);
  return rc;
}

static int h5o_string_scalar(hid_t loc, const char *name, const char *value) {
  hid_t t = h5o_string_type();
  hid_t d = h5o_dataset(loc, name, t, t, 0, NULL, NULL, "string");
  int rc = d < 0 ? -1 : h5o_write_all(d, t, &value);
  H5Tclose(t);
  return rc;
}

static int h5o_f64_scalar(hid_t loc, const char *name, double value) {
  hid_t d =
      h5o_dataset(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, NULL, "numeric-scalar");
  return d < 0 ? -1 : h5o_write_all(d, H5T_NATIVE_DOUBLE, &value);
}

static int h5o_i64_scalar(hid_t loc, const char *name, int64_t value) {
  hid_t d =
      h5o_dataset(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, NULL, NULL, "numeric-scalar");
  return d < 0 ? -1 : h5o_write_all(d, H5T_NATIVE_INT64, &value);
}

static int h5o_f64_array(hid_t loc, const char *name, const double *values, size_t n) {
  hsize_t dim = n;
  hid_t d = h5o_dataset(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &dim, NULL, NULL);
  return d < 0 ? -1 : n ? h5o_write_all(d, H5T_NATIVE_DOUBLE, values) : (H5Dclose(d), 0);
}

static int h5o_i64_array(hid_t loc, const char *name, const int64_t *values, size_t n) {
  hsize_t dim = n;
  hid_t d = h5o_dataset(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &dim, NULL, NULL);
  return d < 0 ? -1 : n ? h5o_write_all(d, H5T_NATIVE_INT64, values) : (H5Dclose(d), 0);
}

/* Reads a 1-D string dataset's rows [start, start + n) (variable or fixed length) into
 * malloc'd copies.  0 or -1. */
static int h5o_read_strings(hid_t d, int64_t start, int64_t n, char **out) {
  hid_t ftype = H5Dget_type(d);
  if (ftype < 0) return -1;
  if (H5Tget_class(ftype) != H5T_STRING) {
    H5Tclose(ftype);
    return -1;
  }
  int variable = H5Tis_variable_str(ftype) > 0;
  size_t width = H5Tget_size(ftype);
  hid_t mtype = H5Tcopy(H5T_C_S1);
  H5Tset_size(mtype, variable ? H5T_VARIABLE : width + 1);
  H5Tset_cset(mtype, H5Tget_cset(ftype));
  H5Tclose(ftype);
  hid_t fspace = H5Dget_space(d);
  hsize_t h_start = (hsize_t)start, h_count = (hsize_t)n;
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &h_start, NULL, &h_count, NULL);
  hid_t mspace = H5Screate_simple(1, &h_count, NULL);
  void *buf = calloc((size_t)n ? (size_t)n : 1, variable ? sizeof(char *) : width + 1);
  int rc = buf && H5Dread(d, mtype, mspace, fspace, H5P_DEFAULT, buf) >= 0 ? 0 : -1;
  for (int64_t i = 0; i < n; i++) out[i] = NULL;
  for (int64_t i = 0; rc == 0 && i < n; i++) {
    const char *s = variable ? ((char **)buf)[i] : (char *)buf + i * (width + 1);
    out[i] = strdup(s ? s : "");
    if (!out[i]) rc = -1;
  }
  if (buf && variable) H5Dvlen_reclaim(mtype, mspace, H5P_DEFAULT, buf);
  free(buf);
  H5Sclose(mspace);
  H5Sclose(fspace);
  H5Tclose(mtype);
  return rc;
}

/* The strings of a 1-D string attribute (column-order); an empty numeric array gives none. */
static int h5o_read_attr_strings(hid_t obj, const char *name, char ***out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t ftype = H5Aget_type(a), space = H5Aget_space(a);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  int rc = 0;
  if (n > 0 && H5Tget_class(ftype) != H5T_STRING) rc = -1;
  if (rc == 0 && n > 0) {
    int variable = H5Tis_variable_str(ftype) > 0;
    size_t w = H5Tget_size(ftype);
    hid_t mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, variable ? H5T_VARIABLE : w + 1);
    H5Tset_cset(mtype, H5Tget_cset(ftype));
    void *buf = calloc((size_t)n, variable ? sizeof(char *) : w + 1);
    *out = calloc((size_t)n, sizeof **out);
    if (!buf || !*out || H5Aread(a, mtype, buf) < 0) rc = -1;
    for (hssize_t i = 0; rc == 0 && i < n; i++) {
      const char *s = variable ? ((char **)buf)[i] : (char *)buf + i * (w + 1);
      if (!((*out)[i] = strdup(s ? s : ""))) rc = -1;
      (*n_out)++;
    }
    if (buf && variable) H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
    free(buf);
    H5Tclose(mtype);
  }
  H5Sclose(space);
  H5Tclose(ftype);
  H5Aclose(a);
  return rc;
}

/* ------------------------------------------------------------------ columns */

static int h5o_col_create(rctd_h5ad_writer *w, h5col *c, hid_t loc, const char *name,
                          h5col_kind kind, hid_t file_type, int cols) {
  hsize_t dims[2] = {(hsize_t)w->n_rows, (hsize_t)cols};
  hid_t mem = kind == H5COL_F64   ? H5T_NATIVE_DOUBLE
              : kind == H5COL_I32 ? H5T_NATIVE_INT32
                                  : w->bool_type;
  c->kind = kind;
  c->cols = cols;
  c->dset = h5o_dataset(loc, name, file_type, mem, cols > 1 || loc == w->obsm ? 2 : 1, dims,
                        &c->fill, NULL);
  return c->dset < 0 ? -1 : 0;
}

static size_t h5o_col_elem(const h5col *c) {
  return c->kind == H5COL_F64 ? sizeof(double) : c->kind == H5COL_I32 ? sizeof(int32_t) : 1;
}

/* Smallest signed integer type for categorical codes (as anndata writes them). */
static hid_t h5o_code_type(int n_categories) {
  return n_categories < 128 ? H5T_STD_I8LE : n_categories < 32768 ? H5T_STD_I16LE : H5T_STD_I32LE;
}

/* A categorical obs column: group with categories and codes; the codes are the column. */
static int h5o_categorical(rctd_h5ad_writer *w, h5col *c, const char *name,
                           const char *const *categories, int n_categories, int32_t fill) {
  hid_t g = h5o_group_new(w->obs, name, "categorical", "0.2.0");
  if (g < 0) return -1;
  int rc = h5o_attr_bool(g, "ordered", 0);
  if (rc == 0) rc = h5o_string_array(g, "categories", categories, (size_t)n_categories);
  c->fill.i32 = fill;
  if (rc == 0) rc = h5o_col_create(w, c, g, "codes", H5COL_I32, h5o_code_type(n_categories), 1);
  H5Gclose(g);
  return rc;
}

static int h5o_obs_f64(rctd_h5ad_writer *w, h5col *c, const char *name) {
  c->fill.f64 = NAN;
  return h5o_col_create(w, c, w->obs, name, H5COL_F64, H5T_IEEE_F64LE, 1);
}

static int h5o_obs_bool(rctd_h5ad_writer *w, h5col *c, const char *name, int fill) {
  c->fill.b = (uint8_t)fill;
  return h5o_col_create(w, c, w->obs, name, H5COL_BOOL, w->bool_type, 1);
}

static int h5o_obs_i32(rctd_h5ad_writer *w, h5col *c, const char *name, int32_t fill) {
  c->fill.i32 = fill;
  return h5o_col_create(w, c, w->obs, name, H5COL_I32, H5T_STD_I32LE, 1);
}

static int h5o_obsm_f64(rctd_h5ad_writer *w, h5col *c, const char *name, int cols) {
  c->fill.f64 = NAN;
  return h5o_col_create(w, c, w->obsm, name, H5COL_F64, H5T_IEEE_F64LE, cols);
}

/* The obs column names this mode adds, in order. */
static size_t h5o_obs_names(const rctd_results_info *info, char names[][32], size_t max) {
  static const char *const common[] = {"rctd_dominant_type", "rctd_filtered", "rctd_numi"};
  static const char *const full[] = {"rctd_converged"};
  static const char *const doublet[] = {
      "rctd_spot_class",   "rctd_first_type",  "rctd_second_type",   "rctd_first_class",
      "rctd_second_class", "rctd_min_score",   "rctd_singlet_score", "rctd_conv_all",
      "rctd_conv_doublet", "rctd_n_candidates"};
  static const char *const multi[] = {"rctd_n_types", "rctd_multi_status", "rctd_min_score",
                                      "rctd_conv_all", "rctd_conv_sub"};
  size_t n = 0;
#define H5O_ADD(list)                                                \
  for (size_t i = 0; i < sizeof list / sizeof *list && n < max; i++) \
  snprintf(names[n++], 32, "%s", list[i])
  H5O_ADD(common);
  if (info->mode == RCTD_OUT_FULL) H5O_ADD(full);
  if (info->mode == RCTD_OUT_DOUBLET) H5O_ADD(doublet);
  if (info->mode == RCTD_OUT_MULTI) {
    H5O_ADD(multi);
    for (int j = 0; j < info->multi_slots && n < max; j++)
      snprintf(names[n++], 32, "rctd_type_%d", j + 1);
  }
#undef H5O_ADD
  return n;
}

/* Removes earlier rctd_* results from obs and obsm (a rerun on its own output) and appends
 * this run's obs columns to obs's column-order. */
static int h5o_prepare_obs(rctd_h5ad_writer *w) {
  char **order = NULL;
  size_t n_order = 0;
  if (h5o_read_attr_strings(w->obs, "column-order", &order, &n_order) < 0) return -1;
  char names[64][32];
  size_t n_new = h5o_obs_names(w->info, names, 64);
  const char **merged = calloc(n_order + n_new + 1, sizeof *merged);
  if (!merged) {
    rctd_strlist_free(order, n_order);
    return -1;
  }
  size_t n = 0;
  int rc = 0;
  for (size_t i = 0; i < n_order && rc == 0; i++) {
    if (strncmp(order[i], "rctd_", 5) == 0)
      rc = h5o_delete(w->obs, order[i]);
    else
      merged[n++] = order[i];
  }
  for (size_t i = 0; i < n_new; i++) merged[n++] = names[i];
  if (rc == 0) rc = h5o_attr_strings(w->obs, "column-order", merged, n);
  free(merged);
  rctd_strlist_free(order, n_order);
  return rc;
}

static herr_t h5o_collect_rctd(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  (void)g;
  (void)info;
  if (strncmp(name, "rctd_", 5) != 0) return 0;
  char ***list = data;
  size_t n = 0;
  while (*list && (*list)[n]) n++;
  char **grown = realloc(*list, (n + 2) * sizeof **list);
  if (!grown) return -1;
  grown[n] = strdup(name);
  grown[n + 1] = NULL;
  *list = grown;
  return grown[n] ? 0 : -1;
}

static int h5o_clear_obsm(rctd_h5ad_writer *w) {
  char **names = NULL;
  if (H5Literate(w->obsm, H5_INDEX_NAME, H5_ITER_INC, NULL, h5o_collect_rctd, &names) < 0)
    return -1;
  int rc = 0;
  for (size_t i = 0; names && names[i]; i++) {
    if (rc == 0) rc = h5o_delete(w->obsm, names[i]);
    free(names[i]);
  }
  free(names);
  return rc;
}

/* Categories of the type columns: the type names, then the filtered label. */
static const char **h5o_type_categories(rctd_h5ad_writer *w) {
  const int K = w->info->n_types;
  const char **cats = malloc(((size_t)K + 1) * sizeof *cats);
  if (!cats) return NULL;
  for (int k = 0; k < K; k++) cats[k] = w->info->type_names[k];
  cats[K] = w->filtered_label;
  return cats;
}

static int h5o_create_columns(rctd_h5ad_writer *w) {
  const rctd_results_info *info = w->info;
  const int K = info->n_types, M = info->mode == RCTD_OUT_MULTI ? info->multi_slots : 0;
  w->n_cols = COL_FIXED_END + M;
  w->cols = calloc((size_t)w->n_cols, sizeof *w->cols);
  const char **cats = h5o_type_categories(w);
  if (!w->cols || !cats) {
    free(cats);
    return -1;
  }
  for (int i = 0; i < w->n_cols; i++) w->cols[i].dset = -1;
  h5col *c = w->cols;
  int rc = 0;
  rc |= h5o_obsm_f64(w, &c[COL_WEIGHTS], "rctd_weights", K);
  rc |= h5o_obsm_f64(w, &c[COL_PROPORTIONS], "rctd_proportions", K);
  if (rc == 0) rc = h5o_categorical(w, &c[COL_DOMINANT], "rctd_dominant_type", cats, K + 1, K);
  if (rc == 0) rc = h5o_obs_bool(w, &c[COL_FILTERED], "rctd_filtered", 1);
  if (rc == 0) rc = h5o_obs_f64(w, &c[COL_NUMI], "rctd_numi");
  if (rc == 0 && info->mode == RCTD_OUT_FULL)
    rc = h5o_obs_bool(w, &c[COL_CONVERGED], "rctd_converged", 0);
  if (rc == 0 && info->mode == RCTD_OUT_DOUBLET) {
    const char *classes[RCTD_OUT_N_SPOT_CLASSES + 1];
    for (int s = 0; s < RCTD_OUT_N_SPOT_CLASSES; s++) classes[s] = rctd_out_spot_class_name(s);
    classes[RCTD_OUT_N_SPOT_CLASSES] = w->filtered_label;
    rc |= h5o_categorical(w, &c[COL_SPOT_CLASS], "rctd_spot_class", classes,
                          RCTD_OUT_N_SPOT_CLASSES + 1, RCTD_OUT_N_SPOT_CLASSES);
    rc |= h5o_categorical(w, &c[COL_FIRST_TYPE], "rctd_first_type", cats, K + 1, K);
    rc |= h5o_categorical(w, &c[COL_SECOND_TYPE], "rctd_second_type", cats, K + 1, K);
    rc |= h5o_obs_bool(w, &c[COL_FIRST_CLASS], "rctd_first_class", 0);
    rc |= h5o_obs_bool(w, &c[COL_SECOND_CLASS], "rctd_second_class", 0);
    rc |= h5o_obs_f64(w, &c[COL_MIN_SCORE], "rctd_min_score");
    rc |= h5o_obs_f64(w, &c[COL_SINGLET_SCORE], "rctd_singlet_score");
    rc |= h5o_obs_bool(w, &c[COL_CONV_ALL], "rctd_conv_all", 0);
    rc |= h5o_obs_bool(w, &c[COL_CONV_DOUBLET], "rctd_conv_doublet", 0);
    rc |= h5o_obs_i32(w, &c[COL_N_CANDIDATES], "rctd_n_candidates", 0);
    rc |= h5o_obsm_f64(w, &c[COL_WEIGHTS_DOUBLET], "rctd_weights_doublet", 2);
  }
  if (rc == 0 && info->mode == RCTD_OUT_MULTI) {
    const char *status[RCTD_OUT_N_MULTI_STATUS + 1];
    for (int s = 0; s < RCTD_OUT_N_MULTI_STATUS; s++) status[s] = rctd_out_multi_status_name(s);
    status[RCTD_OUT_N_MULTI_STATUS] = w->filtered_label;
    rc |= h5o_obs_i32(w, &c[COL_N_TYPES], "rctd_n_types", 0);
    rc |= h5o_categorical(w, &c[COL_MULTI_STATUS], "rctd_multi_status", status,
                          RCTD_OUT_N_MULTI_STATUS + 1, RCTD_OUT_N_MULTI_STATUS);
    rc |= h5o_obs_f64(w, &c[COL_MIN_SCORE], "rctd_min_score");
    rc |= h5o_obs_bool(w, &c[COL_CONV_ALL], "rctd_conv_all", 0);
    rc |= h5o_obs_bool(w, &c[COL_CONV_SUB], "rctd_conv_sub", 0);
    rc |= h5o_obsm_f64(w, &c[COL_SUB_WEIGHTS], "rctd_sub_weights", M);
    c[COL_MULTI_CONF].fill.b = 0;
    rc |= h5o_col_create(w, &c[COL_MULTI_CONF], w->obsm, "rctd_multi_conf", H5COL_BOOL,
                         w->bool_type, M);
    rc |= h5o_obsm_f64(w, &c[COL_WEIGHTS_MULTI], "rctd_weights_multi", K);
    for (int j = 0; rc == 0 && j < M; j++) {
      char name[32];
      snprintf(name, sizeof name, "rctd_type_%d", j + 1);
      rc = h5o_categorical(w, &c[COL_FIXED_END + j], name, cats, K + 1, K);
    }
  }
  free(cats);
  return rc ? -1 : 0;
}

/* ------------------------------------------------------------------ open */

/* The spatial input's obs names dataset (copy mode). */
static int h5o_open_index(rctd_h5ad_writer *w, char *err, size_t err_len) {
  char index_name[256] = "_index";
  /* read as the h5ad reader reads it (padding stripped, one value only) */
  input_h5_attr_string(w->obs, "_index", index_name, sizeof index_name);
  if (!h5o_exists(w->obs, index_name))
    return rctd_fail(err, err_len, "%s: obs has no index dataset '%s' (not an AnnData file?)",
                     w->path, index_name);
  w->index_dset = H5Dopen2(w->obs, index_name, H5P_DEFAULT);
  if (w->index_dset < 0)
    return rctd_fail(err, err_len, "%s: cannot open obs/%s", w->path, index_name);
  hid_t s = H5Dget_space(w->index_dset);
  hsize_t n = 0;
  int rank = H5Sget_simple_extent_ndims(s);
  if (rank == 1) H5Sget_simple_extent_dims(s, &n, NULL);
  H5Sclose(s);
  if (rank != 1)
    return rctd_fail(err, err_len, "%s: obs/%s is not a 1-D array", w->path, index_name);
  w->n_rows = (int64_t)n;
  return 0;
}

/* Copies SRC's bytes to the open output and opens the copy with HDF5. */
static int h5o_open_copy(rctd_h5ad_writer *w, const char *src, char *err, size_t err_len) {
  FILE *in = fopen(src, "rb");
  if (!in) return rctd_fail(err, err_len, "%s: cannot open: %s", src, strerror(errno));
  char buf[1 << 16];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, got, w->out) != got) break;
  int failed = ferror(in) || ferror(w->out) || fflush(w->out) != 0;
  fclose(in);
  if (failed)
    return rctd_fail(err, err_len, "%s: cannot copy %s: %s", w->path, src, strerror(errno));
  if (H5Fis_hdf5(w->tmp_path) <= 0)
    return rctd_fail(err, err_len, "%s: not an HDF5 file (h5ad expected)", src);
  w->file = H5Fopen(w->tmp_path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (w->file < 0) return rctd_fail(err, err_len, "%s: cannot open the copy of %s", w->path, src);
  if (!h5o_exists(w->file, "obs"))
    return rctd_fail(err, err_len, "%s: no obs group (not an AnnData h5ad)", src);
  H5O_info_t oi;
  if (H5Oget_info_by_name(w->file, "obs", &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
    return rctd_fail(err, err_len,
                     "%s: obs uses the pre-0.7 AnnData layout; save the file again with a recent "
                     "anndata (adata.write_h5ad) and retry",
                     src);
  w->obs = H5Gopen2(w->file, "obs", H5P_DEFAULT);
  if (w->obs < 0) return rctd_fail(err, err_len, "%s: cannot open obs", src);
  if (h5o_open_index(w, err, err_len) < 0) return -1;
  w->obsm = h5o_group_open(w->file, "obsm");
  if (w->obsm < 0 || h5o_clear_obsm(w) < 0)
    return rctd_fail(err, err_len, "%s: cannot prepare obsm", w->path);
  return 0;
}

/* obs/_index written in order from NEXT(STATE, row) (h5o_write_names, below). */
typedef const char *(*h5o_next_name)(void *state, int64_t row);
static int h5o_write_names(rctd_h5ad_writer *w, h5o_next_name next, void *state, char *err,
                           size_t err_len);

static const char *h5o_input_name(void *state, int64_t row) {
  const rctd_h5ad_writer *w = state;
  return w->barcode(w->barcode_src, row);
}

/* A fresh AnnData file: obs (names), empty var, the standard groups, obsm/spatial. */
static int h5o_open_fresh(rctd_h5ad_writer *w, const rctd_h5ad_target *t, char *err,
                          size_t err_len) {
  w->n_rows = t->barcode ? t->n_rows : w->info->n_fitted;
  w->rows_from_pixels = t->barcode == NULL;
  w->barcode = t->barcode;
  w->barcode_src = t->barcode_src;
  if (w->rows_from_pixels && !(w->names_spill = rctd_temp_file(NULL, "rctd-merge")))
    return rctd_fail(err, err_len,
                     "%s: cannot create a temporary file for the obs names (%s): set TMPDIR to a "
                     "writable directory",
                     w->path, strerror(errno));
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  H5Pset_obj_track_times(fcpl, 0);
  w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (w->file < 0) return rctd_fail(err, err_len, "%s: cannot create the h5ad file", w->path);
  int rc = h5o_encoding(w->file, "anndata", "0.1.0");
  w->obs = h5o_group_new(w->file, "obs", "dataframe", "0.2.0");
  hid_t var = h5o_group_new(w->file, "var", "dataframe", "0.2.0");
  rc |= w->obs < 0 || var < 0;
  if (rc == 0) {
    rc |= h5o_attr_str(w->obs, "_index", "_index") | h5o_attr_str(var, "_index", "_index");
    rc |= h5o_attr_strings(var, "column-order", NULL, 0);
    rc |= h5o_string_array(var, "_index", NULL, 0);
  }
  if (var >= 0) H5Gclose(var);
  static const char *const dicts[] = {"layers", "obsm", "obsp", "uns", "varm", "varp"};
  for (size_t i = 0; rc == 0 && i < sizeof dicts / sizeof *dicts; i++) {
    hid_t g = h5o_group_new(w->file, dicts[i], "dict", "0.1.0");
    if (g < 0) rc = -1;
    if (g >= 0) H5Gclose(g);
  }
  if (rc == 0) w->obsm = H5Gopen2(w->file, "obsm", H5P_DEFAULT);
  if (rc == 0 && w->obsm < 0) rc = -1;
  if (rc == 0) {
    hid_t st = w->str_type;
    hsize_t dim = (hsize_t)w->n_rows;
    w->index_dset = h5o_dataset(w->obs, "_index", st, st, 1, &dim, NULL, "string-array");
    if (w->index_dset < 0) rc = -1;
  }
  if (rc == 0 && t->barcode && w->n_rows > 0) {
    int names = h5o_write_names(w, h5o_input_name, w, err, err_len);
    if (names == -2)
      return rctd_fail(err, err_len, "%s: cannot read the spatial input's barcodes back (%s)",
                       w->path, strerror(errno));
    if (names < 0) return -1;
  }
  if (rc == 0 && t->barcode && t->coords_n2) {
    hsize_t dims[2] = {(hsize_t)w->n_rows, 2};
    hid_t d =
        h5o_dataset(w->obsm, "spatial", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dims, NULL, NULL);
    rc = d < 0 ? -1 : h5o_write_all(d, H5T_NATIVE_DOUBLE, t->coords_n2);
  }
  return rc ? rctd_fail(err, err_len, "%s: cannot write the AnnData skeleton", w->path) : 0;
}

static void h5o_close_handles(rctd_h5ad_writer *w) {
  for (int i = 0; w->cols && i < w->n_cols; i++) {
    if (w->cols[i].dset >= 0) H5Dclose(w->cols[i].dset);
    w->cols[i].dset = -1;
    free(w->cols[i].block);
    w->cols[i].block = NULL;
  }
  if (w->index_dset >= 0) H5Dclose(w->index_dset);
  if (w->obsm >= 0) H5Gclose(w->obsm);
  if (w->obs >= 0) H5Gclose(w->obs);
  if (w->file >= 0) H5Fclose(w->file);
  w->index_dset = w->obsm = w->obs = w->file = -1;
}

static void h5o_free(rctd_h5ad_writer *w) {
  h5o_close_handles(w);
  if (w->names_spill) fclose(w->names_spill);
  if (w->str_type >= 0) H5Tclose(w->str_type);
  if (w->bool_type >= 0) H5Tclose(w->bool_type);
  free(w->cols);
  free(w->path);
  free(w);
}

void rctd_h5ad_abort(rctd_h5ad_writer *w) {
  if (!w) return;
  h5o_close_handles(w);
  if (w->out) rctd_out_abort(w->out);
  h5o_free(w);
}

static rctd_h5ad_writer *h5o_open(const char *path, const rctd_h5ad_target *target,
                                  const rctd_results_info *info, char *err, size_t err_len) {
  if (strcmp(path, "-") == 0) {
    rctd_fail(err, err_len, "-: an h5ad cannot be written to standard output; give -o FILE.h5ad");
    return NULL;
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  rctd_h5ad_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->path = strdup(path))) {
    free(w);
    rctd_fail(err, err_len, "%s: out of memory", path);
    return NULL;
  }
  w->info = info;
  w->file = w->obs = w->obsm = w->index_dset = -1;
  w->str_type = h5o_string_type();
  w->bool_type = h5o_bool_type();
  w->max_row = -1;
  w->monotone = 1;
  snprintf(w->filtered_label, sizeof w->filtered_label, "%s", RCTD_OUT_FILTERED);
  for (int k = 0; k < info->n_types; k++)
    if (strcmp(info->type_names[k], w->filtered_label) == 0)
      snprintf(w->filtered_label, sizeof w->filtered_label, "rctd_%s", RCTD_OUT_FILTERED);
  w->out = rctd_out_open_seekable(path, err, err_len);
  char link[64];
  ssize_t n = -1;
  if (w->out) {
    snprintf(link, sizeof link, "/proc/self/fd/%d", fileno(w->out));
    n = readlink(link, w->tmp_path, sizeof w->tmp_path - 1);
  }
  if (!w->out || n <= 0) {
    if (w->out) rctd_fail(err, err_len, "%s: cannot locate the temporary output", path);
    rctd_h5ad_abort(w);
    return NULL;
  }
  w->tmp_path[n] = 0;
  w->copy = target->spatial_h5ad != NULL;
  w->spatial = target->spatial_h5ad;
  int rc = w->copy ? h5o_open_copy(w, target->spatial_h5ad, err, err_len)
                   : h5o_open_fresh(w, target, err, err_len);
  if (rc == 0 && (h5o_prepare_obs(w) < 0 || h5o_create_columns(w) < 0))
    rc = rctd_fail(err, err_len, "%s: cannot create the result datasets", path);
  if (rc != 0) {
    rctd_h5ad_abort(w);
    return NULL;
  }
  return w;
}

/* The copy of the user's spatial h5ad is read and written under the HDF5 guard (h5guard.h):
 * libhdf5 may crash on a damaged file. */
rctd_h5ad_writer *rctd_h5ad_open(const char *path, const rctd_h5ad_target *target,
                                 const rctd_results_info *info, char *err, size_t err_len) {
  if (target->spatial_h5ad) rctd_h5_guard_enter(target->spatial_h5ad);
  rctd_h5ad_writer *w = h5o_open(path, target, info, err, err_len);
  if (target->spatial_h5ad) rctd_h5_guard_leave();
  return w;
}

int64_t rctd_h5ad_n_rows(const rctd_h5ad_writer *w) {
  return w->n_rows;
}

/* ------------------------------------------------------------------ chunks */

static int h5o_ensure_blocks(rctd_h5ad_writer *w, int64_t rows) {
  if (rows <= w->block_cap) return 0;
  for (int i = 0; i < w->n_cols; i++) {
    h5col *c = &w->cols[i];
    if (c->dset < 0) continue;
    void *p = realloc(c->block, (size_t)rows * c->cols * h5o_col_elem(c));
    if (!p) return -1;
    c->block = p;
  }
  w->block_cap = rows;
  return 0;
}

static void h5o_block_fill(h5col *c, int64_t rows) {
  int64_t n = rows * c->cols;
  if (c->kind == H5COL_F64)
    for (int64_t i = 0; i < n; i++) ((double *)c->block)[i] = c->fill.f64;
  else if (c->kind == H5COL_I32)
    for (int64_t i = 0; i < n; i++) ((int32_t *)c->block)[i] = c->fill.i32;
  else
    memset(c->block, c->fill.b, (size_t)n);
}

static int h5o_block_write(rctd_h5ad_writer *w, h5col *c, int64_t row0, int64_t rows) {
  rctd_h5_guard_tick();
  hid_t fspace = H5Dget_space(c->dset);
  int rank = H5Sget_simple_extent_ndims(fspace);
  hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)rows, (hsize_t)c->cols};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
  hid_t mspace = H5Screate_simple(rank, count, NULL);
  hid_t mem = c->kind == H5COL_F64   ? H5T_NATIVE_DOUBLE
              : c->kind == H5COL_I32 ? H5T_NATIVE_INT32
                                     : w->bool_type;
  herr_t rc = H5Dwrite(c->dset, mem, mspace, fspace, H5P_DEFAULT, c->block);
  H5Sclose(mspace);
  H5Sclose(fspace);
  return rc < 0 ? -1 : 0;
}

#define H5O_F64(col, o, j) (((double *)w->cols[col].block)[(o)*w->cols[col].cols + (j)])
#define H5O_I32(col, o, j) (((int32_t *)w->cols[col].block)[(o)*w->cols[col].cols + (j)])
#define H5O_BOOL(col, o, j) (((uint8_t *)w->cols[col].block)[(o)*w->cols[col].cols + (j)])

/* Puts pixel I of chunk C into block row O of every column. */
static void h5o_put_pixel(rctd_h5ad_writer *w, const rctd_results_chunk *c, int64_t i, int64_t o) {
  const rctd_results_info *info = w->info;
  const int K = info->n_types, M = info->mode == RCTD_OUT_MULTI ? info->multi_slots : 0;
  const double *wk = c->weights_nk + i * K;
  double sum = 0;
  for (int k = 0; k < K; k++) sum += wk[k];
  for (int k = 0; k < K; k++) {
    H5O_F64(COL_WEIGHTS, o, k) = wk[k];
    H5O_F64(COL_PROPORTIONS, o, k) = wk[k] / sum;
  }
  H5O_I32(COL_DOMINANT, o, 0) = rctd_out_argmax(wk, K);
  H5O_BOOL(COL_FILTERED, o, 0) = 0;
  H5O_F64(COL_NUMI, o, 0) = c->numi_n[i];
  if (info->mode == RCTD_OUT_FULL) H5O_BOOL(COL_CONVERGED, o, 0) = c->conv_n[i] != 0;
  if (info->mode == RCTD_OUT_DOUBLET) {
    H5O_I32(COL_SPOT_CLASS, o, 0) = c->spot_class_n[i];
    H5O_I32(COL_FIRST_TYPE, o, 0) = c->first_type_n[i];
    H5O_I32(COL_SECOND_TYPE, o, 0) = c->second_type_n[i];
    H5O_BOOL(COL_FIRST_CLASS, o, 0) = c->first_class_n[i] != 0;
    H5O_BOOL(COL_SECOND_CLASS, o, 0) = c->second_class_n[i] != 0;
    H5O_F64(COL_MIN_SCORE, o, 0) = c->min_score_n[i];
    H5O_F64(COL_SINGLET_SCORE, o, 0) = c->singlet_score_n[i];
    H5O_BOOL(COL_CONV_ALL, o, 0) = c->conv_all_n[i] != 0;
    H5O_BOOL(COL_CONV_DOUBLET, o, 0) = c->conv_doublet_n[i] != 0;
    H5O_I32(COL_N_CANDIDATES, o, 0) = c->n_candidates_n[i];
    H5O_F64(COL_WEIGHTS_DOUBLET, o, 0) = c->weights_doublet_n2[i * 2];
    H5O_F64(COL_WEIGHTS_DOUBLET, o, 1) = c->weights_doublet_n2[i * 2 + 1];
  }
  if (info->mode == RCTD_OUT_MULTI) {
    H5O_I32(COL_N_TYPES, o, 0) = c->n_types_n[i];
    H5O_I32(COL_MULTI_STATUS, o, 0) = c->multi_status_n[i];
    H5O_F64(COL_MIN_SCORE, o, 0) = c->min_score_n[i];
    H5O_BOOL(COL_CONV_ALL, o, 0) = c->conv_all_n[i] != 0;
    H5O_BOOL(COL_CONV_SUB, o, 0) = c->conv_sub_n[i] != 0;
    for (int k = 0; k < K; k++) H5O_F64(COL_WEIGHTS_MULTI, o, k) = 0;
    for (int j = 0; j < M; j++) {
      int32_t t = c->types_nm[i * M + j];
      int used = j < c->n_types_n[i] && t >= 0 && t < K;
      H5O_F64(COL_SUB_WEIGHTS, o, j) = used ? c->sub_weights_nm[i * M + j] : 0;
      H5O_BOOL(COL_MULTI_CONF, o, j) = used && c->conf_nm[i * M + j];
      H5O_I32(COL_FIXED_END + j, o, 0) = used ? t : -1;
      if (used) H5O_F64(COL_WEIGHTS_MULTI, o, t) = c->sub_weights_nm[i * M + j];
    }
  }
}

/* Checks (or writes) the obs names of the pixels [i0, i1) of C, which lie in rows
 * [row0, row0 + rows). */
static int h5o_names(rctd_h5ad_writer *w, const rctd_results_chunk *c, int64_t i0, int64_t i1,
                     int64_t row0, int64_t rows, char *err, size_t err_len) {
  if (w->rows_from_pixels) {
    for (int64_t i = i0; i < i1; i++) {
      if (c->first + i != w->names_next)
        return rctd_fail(err, err_len, "%s: pixel %" PRId64 " comes after pixel %" PRId64, w->path,
                         c->first + i, w->names_next - 1);
      const char *name = c->barcode_n[i];
      if (fwrite(name, 1, strlen(name) + 1, w->names_spill) != strlen(name) + 1)
        return rctd_fail(err, err_len, "%s: cannot write the temporary file of obs names (%s)",
                         w->path, strerror(errno));
      w->names_next++;
    }
    return 0;
  }
  /* Named at open from the spatial input (barcode): the caller, which reads those names
   * anyway, checks each pixel against its row (rctd-merge, mg_flush_block); a second read of
   * every name here would only repeat it. */
  if (w->barcode) return 0;
  char **names = calloc((size_t)rows, sizeof *names);
  int rc = names ? h5o_read_strings(w->index_dset, row0, rows, names) : -1;
  if (rc < 0) {
    rctd_strlist_free(names, names ? (size_t)rows : 0);
    return rctd_fail(err, err_len, "%s: cannot read the obs names of the spatial h5ad", w->path);
  }
  for (int64_t i = i0; i < i1 && rc == 0; i++) {
    const char *have = names[c->row_n[i] - row0];
    if (strcmp(have, c->barcode_n[i]) != 0)
      rc = rctd_fail(err, err_len,
                     "%s: pixel %s is row %" PRId64
                     " of the fit but that row of this h5ad is %s: give --spatial the spatial "
                     "input of this run",
                     w->spatial, c->barcode_n[i], c->row_n[i], have);
  }
  rctd_strlist_free(names, (size_t)rows);
  return rc;
}

/* Writes pixels [i0, i1) of C, whose rows increase, as one block of rows (gaps filled). */
static int h5o_write_segment(rctd_h5ad_writer *w, const rctd_results_chunk *c, int64_t i0,
                             int64_t i1, char *err, size_t err_len) {
  const int64_t row0 = w->rows_from_pixels ? c->first + i0 : c->row_n[i0];
  const int64_t row_last = w->rows_from_pixels ? c->first + i1 - 1 : c->row_n[i1 - 1];
  const int64_t rows = row_last - row0 + 1;
  if (h5o_names(w, c, i0, i1, row0, rows, err, err_len) < 0) return -1;
  if (h5o_ensure_blocks(w, rows) < 0) return rctd_fail(err, err_len, "%s: out of memory", w->path);
  for (int j = 0; j < w->n_cols; j++)
    if (w->cols[j].dset >= 0) h5o_block_fill(&w->cols[j], rows);
  for (int64_t i = i0; i < i1; i++) {
    int64_t row = w->rows_from_pixels ? c->first + i : c->row_n[i];
    h5o_put_pixel(w, c, i, row - row0);
  }
  for (int j = 0; j < w->n_cols; j++)
    if (w->cols[j].dset >= 0 && h5o_block_write(w, &w->cols[j], row0, rows) < 0)
      return rctd_fail(err, err_len, "%s: cannot write the results (HDF5 error)", w->path);
  if (row_last > w->max_row) w->max_row = row_last;
  return 0;
}

static int h5o_write_chunk(rctd_h5ad_writer *w, const rctd_results_chunk *c, char *err,
                           size_t err_len) {
  if (!w->rows_from_pixels)
    for (int64_t i = 0; i < c->n; i++)
      if (c->row_n[i] < 0 || c->row_n[i] >= w->n_rows)
        return rctd_fail(err, err_len,
                         "%s: pixel %s is row %" PRId64 " of the spatial input, which has %" PRId64
                         " rows: give --spatial the spatial input of this run",
                         w->path, c->barcode_n[i], c->row_n[i], w->n_rows);
  /* Segments of increasing rows; gaps are filled only while every row so far came in order,
   * so a fill never lands on a row already written. */
  int64_t i0 = 0;
  while (i0 < c->n) {
    int64_t i1 = i0 + 1;
    int64_t prev = w->rows_from_pixels ? c->first + i0 : c->row_n[i0];
    if (prev <= w->max_row) w->monotone = 0;
    while (i1 < c->n) {
      int64_t row = w->rows_from_pixels ? c->first + i1 : c->row_n[i1];
      int64_t gap = row - prev;
      if (gap < 1 || (gap > 1 && (!w->monotone || gap > H5OUT_MAX_GAP))) break;
      prev = row;
      i1++;
    }
    if (h5o_write_segment(w, c, i0, i1, err, err_len) < 0) return -1;
    i0 = i1;
  }
  return 0;
}

/* ------------------------------------------------------------------ close */

static char *h5o_safe_name(const char *key) {
  char *s = strdup(*key ? key : "_");
  for (char *p = s; p && *p; p++)
    if (*p == '/' || (*p == '.' && p == s)) *p = '_';
  return s;
}

static int h5o_string_dict(hid_t loc, const char *name, const char *const *keys,
                           const char *const *values, size_t n) {
  hid_t g = h5o_group_new(loc, name, "dict", "0.1.0");
  if (g < 0) return -1;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    char *key = h5o_safe_name(keys[i]);
    rc = key ? h5o_string_scalar(g, key, values[i]) : -1;
    free(key);
  }
  H5Gclose(g);
  return rc;
}

static int h5o_counts_dict(hid_t loc, const char *name, const char *const *labels,
                           const int64_t *counts, int n) {
  hid_t g = h5o_group_new(loc, name, "dict", "0.1.0");
  if (g < 0) return -1;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    char *key = h5o_safe_name(labels[i]);
    rc = key ? h5o_i64_scalar(g, key, counts[i]) : -1;
    free(key);
  }
  H5Gclose(g);
  return rc;
}

static int h5o_summary(rctd_h5ad_writer *w, hid_t rctd, const rctd_results_summary *s) {
  const rctd_results_info *info = w->info;
  hid_t g = h5o_group_new(rctd, "summary", "dict", "0.1.0");
  if (g < 0) return -1;
  int rc = h5o_counts_dict(g, "dominant_type", info->type_names, s->dominant_k, info->n_types);
  if (rc == 0 && info->mode == RCTD_OUT_DOUBLET) {
    const char *names[RCTD_OUT_N_SPOT_CLASSES];
    for (int i = 0; i < RCTD_OUT_N_SPOT_CLASSES; i++) names[i] = rctd_out_spot_class_name(i);
    rc = h5o_counts_dict(g, "spot_class", names, s->spot_class, RCTD_OUT_N_SPOT_CLASSES);
  }
  if (rc == 0 && info->mode == RCTD_OUT_MULTI) {
    const char *names[RCTD_OUT_N_MULTI_STATUS];
    for (int i = 0; i < RCTD_OUT_N_MULTI_STATUS; i++) names[i] = rctd_out_multi_status_name(i);
    rc = h5o_counts_dict(g, "multi_status", names, s->multi_status, RCTD_OUT_N_MULTI_STATUS);
    if (rc == 0) rc = h5o_i64_array(g, "n_types", s->n_types_counts, (size_t)s->multi_slots + 1);
  }
  H5Gclose(g);
  return rc;
}

/* uns/rctd/sigma_epochs: rctd-sigma's choice, epoch by epoch (sigmas as sigma_c). */
static int h5o_sigma_epochs(hid_t rctd, const rctd_sigma_trace *t) {
  hid_t g = h5o_group_new(rctd, "sigma_epochs", "dict", "0.1.0");
  if (g < 0) return -1;
  int rc = h5o_string_scalar(g, "source", t->source);
  if (t->n_fit >= 0) rc |= h5o_i64_scalar(g, "n_fit", t->n_fit);
  if (t->converged >= 0) rc |= h5o_i64_scalar(g, "converged", t->converged);
  const size_t n = (size_t)t->n_epochs;
  double *v = n ? malloc(n * sizeof *v) : NULL;
  if (n && !v) rc = -1;
  if (n && v) {
    for (size_t e = 0; e < n; e++) v[e] = t->sigma_fit[e] / 100.0;
    rc |= h5o_f64_array(g, "sigma", v, n);
    rc |= h5o_f64_array(g, "likelihood", t->log_l, n);
    for (size_t e = 0; e < n; e++) v[e] = t->sigma_chosen[e] / 100.0;
    rc |= h5o_f64_array(g, "sigma_chosen", v, n);
  }
  free(v);
  H5Gclose(g);
  return rc ? -1 : 0;
}

static int h5o_write_uns(rctd_h5ad_writer *w, const rctd_results_summary *s) {
  const rctd_results_info *info = w->info;
  hid_t uns = h5o_group_open(w->file, "uns");
  if (uns < 0) return -1;
  hid_t g = h5o_group_new(uns, "rctd", "dict", "0.1.0");
  H5Gclose(uns);
  if (g < 0) return -1;
  static const char *const modes[] = {"full", "doublet", "multi"};
  const int64_t fitted = s ? s->n_fitted : info->n_fitted;
  int rc = 0;
  rc |= h5o_string_scalar(g, "mode", modes[info->mode]);
  rc |= h5o_f64_scalar(g, "sigma", info->sigma);
  rc |= h5o_string_scalar(g, "version", RCTD_VERSION);
  rc |= h5o_string_array(g, "cell_types", info->type_names, (size_t)info->n_types);
  if (info->class_names)
    rc |= h5o_string_array(g, "cell_type_classes", info->class_names, (size_t)info->n_types);
  rc |= h5o_string_array(g, "genes_reg", info->genes_reg, (size_t)info->n_reg);
  rc |= h5o_string_array(g, "genes_bulk", info->genes_bulk, (size_t)info->n_bulk);
  if (info->bulk_weights_k)
    rc |= h5o_f64_array(g, "bulk_proportions", info->bulk_weights_k, (size_t)info->n_types);
  if (info->mode == RCTD_OUT_MULTI) rc |= h5o_i64_scalar(g, "max_multi_types", info->multi_slots);
  rc |= h5o_string_dict(g, "config", info->config_keys, info->config_values, info->n_config);
  rc |= h5o_string_dict(g, "tools", info->tool_names, info->tool_versions, info->n_tools);
  rc |= h5o_i64_scalar(g, "n_pixels_input", w->rows_from_pixels ? fitted : w->n_rows);
  rc |= h5o_i64_scalar(g, "n_pixels_fitted", fitted);
  rc |= h5o_i64_scalar(g, "n_pixels_filtered", w->rows_from_pixels ? 0 : w->n_rows - fitted);
  rc |= h5o_string_scalar(g, "filtered_label", w->filtered_label);
  if (rc == 0 && s) rc = h5o_summary(w, g, s);
  if (rc == 0 && info->sigma_trace) rc = h5o_sigma_epochs(g, info->sigma_trace);
  H5Gclose(g);
  return rc ? -1 : 0;
}

/* obs/_index in order, H5O_NAMES_PIECE names per write.  HDF5 converts variable-length strings
 * in strips of its type-conversion buffer (1 MiB by default: 65,536 16-byte references) and the
 * string heap follows the strips, so pieces of exactly that many names write the same bytes as
 * one call with every name (checked: smaller pieces do not).  -2 when NEXT gives no name. */
#define H5O_NAMES_PIECE 65536
static int h5o_write_names(rctd_h5ad_writer *w, h5o_next_name next, void *state, char *err,
                           size_t err_len) {
  char **names = malloc(H5O_NAMES_PIECE * sizeof *names);
  size_t *at = malloc(H5O_NAMES_PIECE * sizeof *at);
  char *arena = NULL;
  size_t arena_len = 0, arena_cap = 0;
  int rc = names && at ? 0 : rctd_fail(err, err_len, "%s: out of memory", w->path);
  hid_t fspace = rc == 0 ? H5Dget_space(w->index_dset) : -1;
  for (int64_t first = 0; rc == 0 && first < w->n_rows; first += H5O_NAMES_PIECE) {
    hsize_t start = (hsize_t)first,
            count = (hsize_t)(w->n_rows - first < H5O_NAMES_PIECE ? w->n_rows - first
                                                                  : H5O_NAMES_PIECE);
    arena_len = 0;
    for (hsize_t i = 0; rc == 0 && i < count; i++) {
      const char *name = next(state, first + (int64_t)i);
      if (!name) {
        rc = -2;
        break;
      }
      size_t len = strlen(name) + 1;
      if (arena_len + len > arena_cap) {
        size_t cap = arena_cap ? 2 * arena_cap : 1 << 20;
        while (cap < arena_len + len) cap *= 2;
        char *grown = realloc(arena, cap);
        if (!grown) {
          rc = rctd_fail(err, err_len, "%s: out of memory", w->path);
          break;
        }
        arena = grown, arena_cap = cap;
      }
      memcpy(arena + arena_len, name, len);
      at[i] = arena_len;
      arena_len += len;
    }
    for (hsize_t i = 0; rc == 0 && i < count; i++) names[i] = arena + at[i];
    hid_t mspace = H5Screate_simple(1, &count, NULL);
    if (rc == 0 && (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
                    H5Dwrite(w->index_dset, w->str_type, mspace, fspace, H5P_DEFAULT, names) < 0))
      rc = rctd_fail(err, err_len, "%s: cannot write obs names", w->path);
    H5Sclose(mspace);
  }
  if (fspace >= 0) H5Sclose(fspace);
  free(names);
  free(at);
  free(arena);
  return rc;
}

/* The obs names' temporary file, read back in order: each name ends with '\0'. */
typedef struct {
  FILE *f;
  char *line;
  size_t cap;
} h5o_spilled_names;

static const char *h5o_spilled_name(void *state, int64_t row) {
  (void)row;
  h5o_spilled_names *s = state;
  ssize_t len = getdelim(&s->line, &s->cap, '\0', s->f);
  return len > 0 && s->line[len - 1] == '\0' ? s->line : NULL;
}

/* The names of rows_from_pixels, from their temporary file. */
static int h5o_write_spilled_names(rctd_h5ad_writer *w, char *err, size_t err_len) {
  h5o_spilled_names s = {w->names_spill, NULL, 0};
  int rc = fflush(s.f) != 0 || fseeko(s.f, 0, SEEK_SET) != 0
               ? -2
               : h5o_write_names(w, h5o_spilled_name, &s, err, err_len);
  free(s.line);
  if (rc == -2)
    rc = rctd_fail(err, err_len, "%s: cannot read the temporary file of obs names back", w->path);
  return rc;
}

/* "PATH: cannot WHAT: REASON" for a failed HDF5 write: the system's reason for a storage error
 * that libhdf5's write left in errno (cleared before the calls), else "HDF5 error" (any other
 * errno may be left over from one of libhdf5's many calls that succeeded). */
static int h5o_write_fail(const rctd_h5ad_writer *w, const char *what, char *err, size_t err_len) {
  int e = errno;
  int storage = e == EFBIG || e == ENOSPC || e == EDQUOT || e == EIO;
  return rctd_fail(err, err_len, "%s: cannot %s: %s", w->path, what,
                   storage ? strerror(e) : "HDF5 error");
}

static int h5o_close(rctd_h5ad_writer *w, const rctd_results_summary *summary, char *err,
                     size_t err_len) {
  int rc = 0;
  if (w->rows_from_pixels) {
    if (w->names_next < w->n_rows)
      rc = rctd_fail(err, err_len, "%s: no results for pixel %" PRId64, w->path, w->names_next);
    rctd_h5_guard_tick();
    if (rc == 0 && w->n_rows > 0) rc = h5o_write_spilled_names(w, err, err_len);
  }
  rctd_h5_guard_tick();
  errno = 0; /* (a failed write of libhdf5's leaves the system's reason there) */
  if (rc == 0 && h5o_write_uns(w, summary) < 0)
    rc = h5o_write_fail(w, "write uns/rctd", err, err_len);
  for (int i = 0; w->cols && i < w->n_cols; i++) {
    /* (libhdf5 writes a dataset's cached data when it is closed) */
    errno = 0;
    if (w->cols[i].dset >= 0 && H5Dclose(w->cols[i].dset) < 0 && rc == 0)
      rc = h5o_write_fail(w, "finish the h5ad file", err, err_len);
    w->cols[i].dset = -1;
  }
  if (w->index_dset >= 0) H5Dclose(w->index_dset);
  if (w->obsm >= 0) H5Gclose(w->obsm);
  if (w->obs >= 0) H5Gclose(w->obs);
  w->index_dset = w->obsm = w->obs = -1;
  rctd_h5_guard_tick();
  errno = 0;
  if (rc == 0 && H5Fclose(w->file) < 0)
    rc = h5o_write_fail(w, "finish the h5ad file", err, err_len);
  else if (rc != 0)
    H5Fclose(w->file);
  w->file = -1;
  FILE *out = w->out;
  w->out = NULL;
  if (rc == 0)
    rc = rctd_out_commit(out, err, err_len);
  else
    rctd_out_abort(out);
  h5o_free(w);
  return rc;
}

int rctd_h5ad_write_chunk(rctd_h5ad_writer *w, const rctd_results_chunk *c, char *err,
                          size_t err_len) {
  if (w->copy) rctd_h5_guard_enter(w->spatial);
  int rc = h5o_write_chunk(w, c, err, err_len);
  if (w->copy) rctd_h5_guard_leave();
  return rc;
}

int rctd_h5ad_close(rctd_h5ad_writer *w, const rctd_results_summary *summary, char *err,
                    size_t err_len) {
  int copy = w->copy;
  if (copy) rctd_h5_guard_enter(w->spatial);
  int rc = h5o_close(w, summary, err, err_len);
  if (copy) rctd_h5_guard_leave();
  return rc;
}
