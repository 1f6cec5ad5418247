/* AnnData h5ad reader (anndata on-disk format, 0.7 and later; sparse X of anndata < 0.7).
 *
 * X (or layers/NAME) may be CSR (streamed directly by row ranges), CSC (transposed once through
 * a temporary file, see input_transpose.c) or dense (read by row blocks).  obs/var names come
 * from the dataframe's `_index` attribute.  Cell type columns may be categorical (group with
 * codes + categories, or the older codes dataset with a `categories` reference into
 * obs/__categories), string, integer or float. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "input_internal.h"

typedef enum { H5AD_CSR, H5AD_CSC, H5AD_DENSE } h5ad_layout;

typedef struct {
  const char *path;
  const char *tmp_dir;
  hid_t file;
  input_h5_csr *csc; /* CSC on disk: its "rows" are genes */
  input_tx *tx;      /* built on first read */
  hid_t dense;
  int64_t n_rows, n_genes;
  double *dense_buf;
} h5ad_state;

/* ---- listing names for messages ---- */

typedef struct {
  char *buf;
  size_t size, len;
  int count;
} h5ad_names;

static herr_t h5ad_collect_name(hid_t group, const char *name, const H5L_info_t *info, void *data) {
  (void)group;
  (void)info;
  h5ad_names *names = data;
  if (name[0] == '_' && name[1] == '_') return 0; /* __categories */
  if (strcmp(name, "_index") == 0) return 0;
  if (names->count == 12) {
    snprintf(names->buf + names->len, names->size - names->len, ", ...");
    names->len = strlen(names->buf);
    names->count++;
    return 1;
  }
  snprintf(names->buf + names->len, names->size - names->len, "%s%s", names->count ? ", " : "",
           name);
  names->len = strlen(names->buf);
  names->count++;
  return 0;
}

static void h5ad_list(hid_t file, const char *group_name, char *buf, size_t size) {
  h5ad_names names = {buf, size, 0, 0};
  buf[0] = '\0';
  hid_t group = input_h5_exists(file, group_name) ? H5Gopen2(file, group_name, H5P_DEFAULT) : -1;
  if (group >= 0) {
    H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, h5ad_collect_name, &names);
    H5Gclose(group);
  }
  if (!names.count) snprintf(buf, size, "none");
}

/* ---- dataframes ---- */

static int h5ad_is_group(hid_t loc, const char *name) {
  H5O_info_t info;
  if (H5Oget_info_by_name(loc, name, &info, H5P_DEFAULT) < 0) return 0;
  return info.type == H5O_TYPE_GROUP;
}

static int h5ad_read_index(const char *path, hid_t file, const char *df, input_strings *names,
                           char *err, size_t err_size) {
  if (!input_h5_exists(file, df))
    return input_fail(err, err_size, path, "no '%s' group: not an AnnData file", df);
  if (!h5ad_is_group(file, df))
    return input_fail(err, err_size, path,
                      "'%s' is a compound dataset (anndata < 0.7): re-save the file with a recent "
                      "anndata",
                      df);
  hid_t group = H5Gopen2(file, df, H5P_DEFAULT);
  char index[256] = "_index";
  if (input_h5_attr_string(group, "_index", index, sizeof index) != 0 &&
      !input_h5_exists(group, "_index") && input_h5_exists(group, "index"))
    snprintf(index, sizeof index, "index");
  int rc;
  if (!input_h5_exists(group, index))
    rc = input_fail(err, err_size, path, "%s has no index dataset '%s': the file is corrupt", df,
                    index);
  else
    rc = input_h5_read_strings(path, group, index, names, err, err_size);
  H5Gclose(group);
  if (rc == 0 && input_strings_seal(names) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  return rc;
}

/* Labels of a numeric or string array dataset, one per row; missing[i] set for NaN. */
static int h5ad_read_labels(const char *path, hid_t dset, const char *what, int64_t n,
                            input_strings *labels, unsigned char *missing, char *err,
                            size_t err_size) {
  if (input_h5_is_string(dset))
    return input_h5_read_strings_dset(path, dset, what, labels, err, err_size);
  double *values = malloc((size_t)(n ? n : 1) * sizeof *values);
  if (!values) return input_fail(err, err_size, path, "out of memory");
  int rc = input_h5_read_f64(path, dset, what, 0, n, values, err, err_size);
  for (int64_t i = 0; rc == 0 && i < n; i++) {
    char text[64] = "";
    if (isnan(values[i]))
      missing[i] = 1;
    else
      snprintf(text, sizeof text, "%.15g", values[i]);
    if (input_strings_push(labels, text, strlen(text)) != 0)
      rc = input_fail(err, err_size, path, "out of memory");
  }
  free(values);
  return rc;
}

static int64_t h5ad_dset_length(hid_t dset) {
  hid_t space = H5Dget_space(dset);
  int64_t n =
      H5Sget_simple_extent_ndims(space) == 1 ? (int64_t)H5Sget_simple_extent_npoints(space) : -1;
  H5Sclose(space);
  return n;
}

/* Categorical: codes (-1 missing) index categories, which become the levels in order. */
static int h5ad_categorical(rctd_input *input, hid_t codes, hid_t categories, const char *col,
                            char *err, size_t err_size) {
  const char *path = input->path;
  int64_t n = input->n_rows;
  if (h5ad_dset_length(codes) != n)
    return input_fail(err, err_size, path, "obs/%s has %lld codes for %lld rows: corrupt file", col,
                      (long long)h5ad_dset_length(codes), (long long)n);
  int64_t n_levels = h5ad_dset_length(categories);
  if (n_levels < 0)
    return input_fail(err, err_size, path, "obs/%s categories are not a 1-D array", col);
  unsigned char *unused = calloc((size_t)n_levels + 1, 1);
  input_strings_init(&input->type_names);
  int rc = unused ? h5ad_read_labels(path, categories, "categories", n_levels, &input->type_names,
                                     unused, err, err_size)
                  : input_fail(err, err_size, path, "out of memory");
  free(unused);
  if (rc == 0 && input_strings_seal(&input->type_names) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  int64_t *codes_n = malloc((size_t)n * sizeof *codes_n);
  input->type_codes = malloc((size_t)n * sizeof *input->type_codes);
  if (rc == 0 && (!codes_n || !input->type_codes))
    rc = input_fail(err, err_size, path, "out of memory");
  if (rc == 0) rc = input_h5_read_i64(path, codes, "codes", 0, n, codes_n, err, err_size);
  for (int64_t i = 0; rc == 0 && i < n; i++) {
    if (codes_n[i] < -1 || codes_n[i] >= n_levels)
      rc = input_fail(err, err_size, path,
                      "obs/%s code %lld out of range (%lld categories): the file is corrupt", col,
                      (long long)codes_n[i], (long long)n_levels);
    else
      input->type_codes[i] = (int32_t)codes_n[i];
  }
  free(codes_n);
  return rc;
}

/* Non-categorical column: R's factor() of its values. */
static int h5ad_factor_column(rctd_input *input, hid_t dset, const char *col, char *err,
                              size_t err_size) {
  int64_t n = input->n_rows;
  if (h5ad_dset_length(dset) != n)
    return input_fail(err, err_size, input->path,
                      "obs/%s has %lld values for %lld rows: the file is corrupt", col,
                      (long long)h5ad_dset_length(dset), (long long)n);
  input_strings labels;
  input_strings_init(&labels);
  unsigned char *missing = calloc((size_t)n, 1);
  const char **pointers = malloc((size_t)n * sizeof *pointers);
  int rc = missing && pointers
               ? h5ad_read_labels(input->path, dset, col, n, &labels, missing, err, err_size)
               : input_fail(err, err_size, input->path, "out of memory");
  if (rc == 0 && input_strings_seal(&labels) != 0)
    rc = input_fail(err, err_size, input->path, "out of memory");
  if (rc == 0) {
    for (int64_t i = 0; i < n; i++) pointers[i] = missing[i] ? NULL : labels.items[i];
    rc = input_labels_to_factor(input, pointers, n, err, err_size);
  }
  free(pointers);
  free(missing);
  input_strings_free(&labels);
  return rc;
}

/* The old categorical encoding: codes dataset whose `categories` attribute references the
 * categories dataset (obs/__categories/NAME). */
static hid_t h5ad_old_categories(hid_t obs, hid_t codes, const char *col) {
  if (H5Aexists(codes, "categories") > 0) {
    hid_t attr = H5Aopen(codes, "categories", H5P_DEFAULT);
    hobj_ref_t ref;
    hid_t target = -1;
    if (attr >= 0 && H5Aread(attr, H5T_STD_REF_OBJ, &ref) >= 0)
      target = H5Rdereference2(codes, H5P_DEFAULT, H5R_OBJECT, &ref);
    if (attr >= 0) H5Aclose(attr);
    if (target >= 0) return target;
  }
  char name[1024];
  snprintf(name, sizeof name, "__categories/%s", col);
  return input_h5_exists(obs, name) ? H5Dopen2(obs, name, H5P_DEFAULT) : -1;
}

static int h5ad_read_cell_types(rctd_input *input, hid_t file, char *err, size_t err_size) {
  const char *col = input->options.cell_type_col ? input->options.cell_type_col : "cell_type";
  hid_t obs = H5Gopen2(file, "obs", H5P_DEFAULT);
  if (!input_h5_exists(obs, col)) {
    H5Gclose(obs);
    if (input->options.cell_types != RCTD_CELL_TYPES_REQUIRED || input->options.cell_type_table)
      return 0;
    char names[1024];
    h5ad_list(file, "obs", names, sizeof names);
    return input_fail(err, err_size, input->path,
                      "obs has no cell type column '%s' (columns: %s): name it with "
                      "--cell-type-col",
                      col, names);
  }
  int rc;
  char encoding[64] = "";
  if (h5ad_is_group(obs, col)) {
    hid_t group = H5Gopen2(obs, col, H5P_DEFAULT);
    input_h5_attr_string(group, "encoding-type", encoding, sizeof encoding);
    if (strcmp(encoding, "categorical") == 0 && input_h5_exists(group, "codes") &&
        input_h5_exists(group, "categories")) {
      hid_t codes = H5Dopen2(group, "codes", H5P_DEFAULT);
      hid_t categories = H5Dopen2(group, "categories", H5P_DEFAULT);
      rc = h5ad_categorical(input, codes, categories, col, err, err_size);
      H5Dclose(codes);
      H5Dclose(categories);
    } else {
      rc = input_fail(err, err_size, input->path,
                      "obs/%s has encoding '%s', not a categorical, string or number column: "
                      "pick another --cell-type-col",
                      col, encoding);
    }
    H5Gclose(group);
  } else {
    hid_t dset = H5Dopen2(obs, col, H5P_DEFAULT);
    hid_t categories = h5ad_old_categories(obs, dset, col);
    if (categories >= 0) {
      rc = h5ad_categorical(input, dset, categories, col, err, err_size);
      H5Dclose(categories);
    } else {
      rc = h5ad_factor_column(input, dset, col, err, err_size);
    }
    H5Dclose(dset);
  }
  H5Gclose(obs);
  return rc;
}

static int h5ad_read_numi(rctd_input *input, hid_t file, char *err, size_t err_size) {
  const char *col = input->options.numi_col;
  if (!col || input->options.numi_table) return 0;
  hid_t obs = H5Gopen2(file, "obs", H5P_DEFAULT);
  char name[1024];
  snprintf(name, sizeof name, "%s", col);
  int rc = 0;
  if (!input_h5_exists(obs, col)) {
    char names[1024];
    h5ad_list(file, "obs", names, sizeof names);
    rc = input_fail(err, err_size, input->path,
                    "obs has no nUMI column '%s' (columns: %s): name it with --numi-col or leave "
                    "it out to use count sums",
                    col, names);
    goto done;
  }
  if (h5ad_is_group(obs, col)) /* nullable-integer: values (+ mask) */
    snprintf(name, sizeof name, "%s/values", col);
  hid_t dset = input_h5_exists(obs, name) ? H5Dopen2(obs, name, H5P_DEFAULT) : -1;
  if (dset < 0 || input_h5_is_string(dset) || h5ad_dset_length(dset) != input->n_rows ||
      H5Aexists(dset, "categories") > 0) {
    rc = input_fail(err, err_size, input->path,
                    "obs/%s is not a numeric column with one value per row: give a numeric "
                    "--numi-col",
                    col);
    if (dset >= 0) H5Dclose(dset);
    goto done;
  }
  input->numi_given = malloc((size_t)input->n_rows * sizeof *input->numi_given);
  rc = input->numi_given ? input_h5_read_f64(input->path, dset, col, 0, input->n_rows,
                                             input->numi_given, err, err_size)
                         : input_fail(err, err_size, input->path, "out of memory");
  H5Dclose(dset);
  snprintf(name, sizeof name, "%s/mask", col);
  if (rc == 0 && input_h5_exists(obs, name)) {
    double *mask = malloc((size_t)input->n_rows * sizeof *mask);
    hid_t mask_dset = H5Dopen2(obs, name, H5P_DEFAULT);
    if (mask &&
        input_h5_read_f64(input->path, mask_dset, name, 0, input->n_rows, mask, NULL, 0) == 0)
      for (int64_t i = 0; i < input->n_rows; i++)
        if (mask[i] != 0) input->numi_given[i] = NAN;
    H5Dclose(mask_dset);
    free(mask);
  }
done:
  H5Gclose(obs);
  return rc;
}

static int h5ad_read_coords(rctd_input *input, hid_t file, char *err, size_t err_size) {
  if (input->options.coords_table || !input_h5_exists(file, "obsm/spatial") ||
      h5ad_is_group(file, "obsm/spatial"))
    return 0;
  hid_t dset = H5Dopen2(file, "obsm/spatial", H5P_DEFAULT);
  hid_t space = H5Dget_space(dset);
  hsize_t dims[2] = {0, 0};
  int ndims = H5Sget_simple_extent_ndims(space);
  if (ndims == 2) H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  int rc = 0;
  if (ndims != 2 || (int64_t)dims[0] != input->n_rows || dims[1] < 2) {
    rc = input_fail(err, err_size, input->path,
                    "obsm/spatial is not an n_obs x 2 array: fix it or give a coordinates table");
  } else {
    double *all = malloc((size_t)(dims[0] * dims[1]) * sizeof *all);
    input->coords = malloc((size_t)(2 * dims[0]) * sizeof *input->coords);
    if (!all || !input->coords)
      rc = input_fail(err, err_size, input->path, "out of memory");
    else if (H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) < 0)
      rc = input_fail(err, err_size, input->path,
                      "cannot read obsm/spatial (truncated or not numeric?)");
    for (hsize_t i = 0; rc == 0 && i < dims[0]; i++) {
      input->coords[2 * i] = all[i * dims[1]];
      input->coords[2 * i + 1] = all[i * dims[1] + 1];
    }
    free(all);
  }
  H5Dclose(dset);
  return rc;
}

/* ---- the matrix ---- */

static int h5ad_read_rows_dense(void *state, int64_t row_begin, int64_t row_end,
                                rctd_csr_chunk *chunk, char *err, size_t err_size) {
  h5ad_state *s = state;
  int64_t n_genes = s->n_genes, n = row_end - row_begin;
  int64_t block = (4 << 20) / (n_genes ? n_genes : 1);
  if (block < 1) block = 1;
  if (!s->dense_buf) s->dense_buf = malloc((size_t)(block * n_genes) * sizeof *s->dense_buf);
  if (!s->dense_buf) return input_fail(err, err_size, s->path, "out of memory");
  int64_t nnz = 0;
  if (input_chunk_reserve(chunk, n, 0) != 0)
    return input_fail(err, err_size, s->path, "out of memory");
  for (int64_t r0 = row_begin; r0 < row_end; r0 += block) {
    int64_t rows = row_end - r0 < block ? row_end - r0 : block;
    hid_t file_space = H5Dget_space(s->dense);
    hsize_t offset[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)rows, (hsize_t)n_genes};
    hid_t mem_space = H5Screate_simple(2, count, NULL);
    herr_t ok = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, offset, NULL, count, NULL);
    if (ok >= 0)
      ok = H5Dread(s->dense, H5T_NATIVE_DOUBLE, mem_space, file_space, H5P_DEFAULT, s->dense_buf);
    H5Sclose(mem_space);
    H5Sclose(file_space);
    if (ok < 0)
      return input_fail(err, err_size, s->path,
                        "cannot read dense X rows [%lld, %lld) (truncated or corrupt?)",
                        (long long)r0, (long long)(r0 + rows));
    int64_t block_nnz = 0;
    for (int64_t i = 0; i < rows * n_genes; i++) block_nnz += s->dense_buf[i] != 0;
    if (input_chunk_reserve(chunk, n, nnz + block_nnz) != 0)
      return input_fail(err, err_size, s->path, "out of memory");
    for (int64_t r = 0; r < rows; r++) {
      chunk->row_ptr[r0 - row_begin + r] = nnz;
      const double *row = s->dense_buf + r * n_genes;
      for (int64_t g = 0; g < n_genes; g++) {
        if (row[g] == 0) continue;
        chunk->gene_idx[nnz] = (int32_t)g;
        chunk->values[nnz++] = row[g];
      }
    }
  }
  chunk->row_ptr[n] = nnz;
  chunk->nnz = nnz;
  return 0;
}

/* Streams the CSC arrays once, entry by entry, into the transpose file. */
static int h5ad_build_transpose(h5ad_state *s, char *err, size_t err_size) {
  input_h5_csr *csc = s->csc;
  int64_t n_genes = csc->n_rows;
  int64_t *indptr = malloc((size_t)(n_genes + 1) * sizeof *indptr);
  int64_t block = 1 << 18;
  int64_t *indices = malloc((size_t)block * sizeof *indices);
  double *data = malloc((size_t)block * sizeof *data);
  int rc = indptr && indices && data ? 0 : input_fail(err, err_size, s->path, "out of memory");
  if (rc == 0)
    rc = input_h5_read_i64(s->path, csc->indptr, "indptr", 0, n_genes + 1, indptr, err, err_size);
  for (int64_t g = 0; rc == 0 && g < n_genes; g++)
    if (indptr[g + 1] < indptr[g])
      rc = input_fail(err, err_size, s->path,
                      "CSC indptr decreases at column %lld: the file is corrupt", (long long)g);
  if (rc == 0) {
    s->tx = input_tx_create(s->path, s->n_rows, s->tmp_dir, err, err_size);
    if (!s->tx) rc = -1;
  }
  int64_t gene = 0;
  for (int64_t start = 0; rc == 0 && start < csc->nnz; start += block) {
    int64_t count = csc->nnz - start < block ? csc->nnz - start : block;
    rc = input_h5_read_i64(s->path, csc->indices, "indices", start, count, indices, err, err_size);
    if (rc == 0)
      rc = input_h5_read_f64(s->path, csc->data, "data", start, count, data, err, err_size);
    for (int64_t i = 0; rc == 0 && i < count; i++) {
      while (indptr[gene + 1] <= start + i) gene++;
      if (data[i] != 0) rc = input_tx_add(s->tx, indices[i], (int32_t)gene, data[i], err, err_size);
    }
  }
  if (rc == 0) rc = input_tx_finish(s->tx, err, err_size);
  free(indptr);
  free(indices);
  free(data);
  return rc;
}

static int h5ad_read_rows_csc(void *state, int64_t row_begin, int64_t row_end,
                              rctd_csr_chunk *chunk, char *err, size_t err_size) {
  h5ad_state *s = state;
  if (!s->tx && h5ad_build_transpose(s, err, err_size)) {
    input_tx_free(s->tx);
    s->tx = NULL;
    return -1;
  }
  return input_tx_read_rows(s->tx, row_begin, row_end, chunk, err, err_size);
}

static void h5ad_close(void *state) {
  h5ad_state *s = state;
  if (!s) return;
  if (s->csc) {
    s->csc->file = -1; /* closed below */
    input_h5_csr_close(s->csc);
  }
  input_tx_free(s->tx);
  if (s->dense > 0) H5Dclose(s->dense);
  if (s->file > 0) H5Fclose(s->file);
  free(s->dense_buf);
  free(s);
}

/* Sparse layout and shape from the group's attributes (anndata >= 0.7, or h5sparse). */
static int h5ad_sparse_kind(hid_t group, h5ad_layout *layout, int64_t shape[2]) {
  char encoding[64] = "";
  const char *shape_attr = "shape";
  if (input_h5_attr_string(group, "encoding-type", encoding, sizeof encoding) == 0) {
    if (strcmp(encoding, "csr_matrix") == 0)
      *layout = H5AD_CSR;
    else if (strcmp(encoding, "csc_matrix") == 0)
      *layout = H5AD_CSC;
    else
      return -1;
  } else if (input_h5_attr_string(group, "h5sparse_format", encoding, sizeof encoding) == 0) {
    *layout = strcmp(encoding, "csc") == 0 ? H5AD_CSC : H5AD_CSR;
    shape_attr = "h5sparse_shape";
  } else {
    return -1;
  }
  if (H5Aexists(group, shape_attr) <= 0) return -1;
  hid_t attr = H5Aopen(group, shape_attr, H5P_DEFAULT);
  hid_t space = H5Aget_space(attr);
  int ok = H5Sget_simple_extent_npoints(space) == 2 && H5Aread(attr, H5T_NATIVE_INT64, shape) >= 0;
  H5Sclose(space);
  H5Aclose(attr);
  return ok ? 0 : -1;
}

static int h5ad_open_matrix(rctd_input *input, hid_t file, const char *matrix, char *err,
                            size_t err_size) {
  const char *path = input->path;
  h5ad_state *s = calloc(1, sizeof *s);
  if (!s) return input_fail(err, err_size, path, "out of memory");
  s->path = input->path;
  s->tmp_dir = input->options.tmp_dir;
  s->n_rows = input->n_rows;
  s->n_genes = input->n_genes;
  s->file = file;
  input->backend_state = s;
  input->backend.close = h5ad_close;
  if (!h5ad_is_group(file, matrix)) {
    s->dense = H5Dopen2(file, matrix, H5P_DEFAULT);
    hid_t space = H5Dget_space(s->dense);
    hsize_t dims[2] = {0, 0};
    int ndims = H5Sget_simple_extent_ndims(space);
    if (ndims == 2) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    if (s->dense < 0 || ndims < 0)
      return input_fail(err, err_size, path,
                        "cannot open %s or read its shape: the file is corrupt; copy or export it "
                        "again",
                        matrix);
    if (ndims != 2 || (int64_t)dims[0] != input->n_rows || (int64_t)dims[1] != input->n_genes)
      return input_fail(err, err_size, path,
                        "%s is %dD (%lld x %lld) but obs x var is %lld x %lld: the file is "
                        "inconsistent",
                        matrix, ndims, (long long)dims[0], (long long)dims[1],
                        (long long)input->n_rows, (long long)input->n_genes);
    input_h5_cap_cache_for_reads(file);
    input->backend.read_rows = h5ad_read_rows_dense;
    return 0;
  }
  hid_t group = H5Gopen2(file, matrix, H5P_DEFAULT);
  h5ad_layout layout;
  int64_t shape[2];
  int rc = 0;
  if (h5ad_sparse_kind(group, &layout, shape) != 0) {
    rc = input_fail(err, err_size, path,
                    "%s is a group but not a csr_matrix or csc_matrix with a shape: re-save "
                    "it with anndata",
                    matrix);
  } else if (shape[0] != input->n_rows || shape[1] != input->n_genes) {
    rc = input_fail(err, err_size, path,
                    "%s has shape %lld x %lld but obs x var is %lld x %lld: the file is "
                    "inconsistent",
                    matrix, (long long)shape[0], (long long)shape[1], (long long)input->n_rows,
                    (long long)input->n_genes);
  } else if (layout == H5AD_CSR) {
    input_h5_csr *csr = calloc(1, sizeof *csr);
    if (!csr) {
      rc = input_fail(err, err_size, path, "out of memory");
    } else {
      /* The CSR backend owns the file from here. */
      s->file = -1;
      h5ad_close(s);
      input->backend_state = csr;
      input->backend.close = input_h5_csr_close;
      input->backend.read_rows = input_h5_csr_read_rows;
      rc = input_h5_csr_init(csr, path, file, group, matrix, input->n_rows, input->n_genes, err,
                             err_size);
    }
  } else {
    s->csc = calloc(1, sizeof *s->csc);
    if (!s->csc)
      rc = input_fail(err, err_size, path, "out of memory");
    else
      rc = input_h5_csr_init(s->csc, path, file, group, matrix, input->n_genes, input->n_rows, err,
                             err_size);
    input->backend.read_rows = h5ad_read_rows_csc;
  }
  H5Gclose(group);
  return rc;
}

int input_h5ad_open(rctd_input *input, char *err, size_t err_size) {
  const char *path = input->path;
  hid_t file = input_h5_open_file(path, err, err_size);
  if (file < 0) return -1;
  char matrix[1024] = "X";
  if (input->options.layer) snprintf(matrix, sizeof matrix, "layers/%s", input->options.layer);
  int rc = 0;
  if (!input_h5_exists(file, matrix)) {
    char names[1024];
    h5ad_list(file, "layers", names, sizeof names);
    if (input->options.layer)
      rc = input_fail(err, err_size, path, "no layer '%s' (layers: %s): check --layer",
                      input->options.layer, names);
    else
      rc = input_fail(err, err_size, path,
                      "no X matrix: not an AnnData file (or X is stored elsewhere: layers: %s; "
                      "use --layer)",
                      names);
  }
  if (rc == 0) rc = h5ad_read_index(path, file, "obs", &input->barcodes, err, err_size);
  if (rc == 0) rc = h5ad_read_index(path, file, "var", &input->gene_names, err, err_size);
  if (rc != 0) {
    H5Fclose(file);
    return -1;
  }
  input->n_rows = input->barcodes.n;
  input->n_genes = input->gene_names.n;
  /* The backend owns the file from here and closes it. */
  if (h5ad_open_matrix(input, file, matrix, err, err_size)) return -1;
  if (input->options.cell_types != RCTD_CELL_TYPES_IGNORE &&
      h5ad_read_cell_types(input, file, err, err_size))
    return -1;
  if (h5ad_read_numi(input, file, err, err_size)) return -1;
  return h5ad_read_coords(input, file, err, err_size);
}
