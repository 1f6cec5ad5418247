/* HDF5 helpers shared by the h5ad and 10x readers: strings, numeric ranges, on-disk CSR. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5guard.h"
#include "h5_read.h"

void input_h5_silence(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* The HDF5 superblock sits at offset 0, 512, 1024, 2048, ... (a user block may precede it).
 * Only a regular file is looked into: opening a FIFO waits for a writer, and a probe would eat
 * a pipe's first bytes (or, closing it, kill its writer with SIGPIPE). */
int input_is_hdf5(const char *path) {
  static const unsigned char signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (!S_ISREG(st.st_mode)) return 0;
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  unsigned char buf[8];
  int found = 0;
  for (long offset = 0; offset <= (1L << 20) && !found; offset = offset ? 2 * offset : 512) {
    if (fseek(f, offset, SEEK_SET) != 0 || fread(buf, 1, 8, f) != 8) break;
    found = memcmp(buf, signature, 8) == 0;
  }
  fclose(f);
  return found;
}

hid_t input_h5_open_file(const char *path, char *err, size_t err_size) {
  input_h5_silence();
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* (opening a FIFO would wait) */
    input_fail(err, err_size, path,
               "not a regular file (a pipe?): HDF5 files are read in place: give the file itself");
    return -1;
  }
  /* HDF5's metadata cache may grow to 32 MiB on files with a million strings (global heap
   * collections); a smaller ceiling keeps the reader's memory bounded and costs no speed here. */
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5AC_cache_config_t config;
  config.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  if (H5Pget_mdc_config(fapl, &config) >= 0) {
    config.set_initial_size = 1;
    config.initial_size = 1 << 20;
    config.min_size = 1 << 20;
    config.max_size = 4 << 20;
    H5Pset_mdc_config(fapl, &config);
  }
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (file < 0)
    input_fail(err, err_size, path,
               "cannot be opened as HDF5 (truncated or corrupt): re-copy or re-export the file");
  return file;
}

int input_h5_exists(hid_t loc, const char *name) {
  /* H5Lexists fails (rather than answering 0) when an intermediate group is missing. */
  char partial[1024];
  size_t len = strlen(name);
  if (len >= sizeof partial) return 0;
  for (size_t i = 0; i <= len; i++) {
    if (name[i] != '/' && name[i] != '\0') continue;
    memcpy(partial, name, i);
    partial[i] = '\0';
    if (i == 0) continue;
    if (H5Lexists(loc, partial, H5P_DEFAULT) <= 0) return 0;
  }
  return 1;
}

static hid_t input_h5_string_memtype(hid_t file_type) {
  hid_t mem = H5Tcopy(H5T_C_S1);
  if (H5Tis_variable_str(file_type) > 0)
    H5Tset_size(mem, H5T_VARIABLE);
  else
    H5Tset_size(mem, H5Tget_size(file_type));
  H5Tset_cset(mem, H5Tget_cset(file_type));
  H5Tset_strpad(mem, H5Tget_strpad(file_type));
  return mem;
}

/* Length of a fixed-size string field without its padding. */
static size_t input_h5_fixed_len(const char *s, size_t size, H5T_str_t pad) {
  size_t len = strnlen(s, size);
  if (pad == H5T_STR_SPACEPAD)
    while (len > 0 && s[len - 1] == ' ') len--;
  return len;
}

int input_h5_attr_string(hid_t obj, const char *name, char *buf, size_t buf_size) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  if (attr < 0) return -1;
  hid_t type = H5Aget_type(attr);
  hid_t space = H5Aget_space(attr);
  int rc = -1;
  if (H5Tget_class(type) == H5T_STRING && H5Sget_simple_extent_npoints(space) == 1) {
    hid_t mem = input_h5_string_memtype(type);
    if (H5Tis_variable_str(type) > 0) {
      char *value = NULL;
      if (H5Aread(attr, mem, &value) >= 0 && value) {
        snprintf(buf, buf_size, "%s", value);
        rc = 0;
      }
      if (value) H5free_memory(value);
    } else {
      size_t size = H5Tget_size(type);
      char *value = calloc(1, size + 1);
      if (value && H5Aread(attr, mem, value) >= 0) {
        size_t len = input_h5_fixed_len(value, size, H5Tget_strpad(type));
        snprintf(buf, buf_size, "%.*s", (int)len, value);
        rc = 0;
      }
      free(value);
    }
    H5Tclose(mem);
  }
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(attr);
  return rc;
}

int input_h5_is_string(hid_t dset) {
  hid_t type = H5Dget_type(dset);
  int is = H5Tget_class(type) == H5T_STRING;
  H5Tclose(type);
  return is;
}

int64_t input_h5_length(hid_t loc, const char *name) {
  hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
  if (dset < 0) return -1;
  hid_t space = H5Dget_space(dset);
  int64_t n =
      H5Sget_simple_extent_ndims(space) == 1 ? (int64_t)H5Sget_simple_extent_npoints(space) : -1;
  H5Sclose(space);
  H5Dclose(dset);
  return n;
}

/* Reads [start, start + count) of a 1-D dataset into out with memory type mem_type. */
static herr_t input_h5_read_range(hid_t dset, hid_t mem_type, int64_t start, int64_t count,
                                  void *out) {
  if (count == 0) return 0;
  rctd_h5_guard_tick();
  hid_t file_space = H5Dget_space(dset);
  if (file_space < 0) return -1;
  hsize_t offset = (hsize_t)start, n = (hsize_t)count;
  herr_t rc = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &offset, NULL, &n, NULL);
  hid_t mem_space = H5Screate_simple(1, &n, NULL);
  if (rc >= 0) rc = H5Dread(dset, mem_type, mem_space, file_space, H5P_DEFAULT, out);
  H5Sclose(mem_space);
  H5Sclose(file_space);
  return rc;
}

int input_h5_read_i64(const char *path, hid_t dset, const char *what, int64_t start, int64_t count,
                      int64_t *out, char *err, size_t err_size) {
  if (input_h5_read_range(dset, H5T_NATIVE_INT64, start, count, out) < 0)
    return input_fail(err, err_size, path,
                      "cannot read %s [%lld, %lld) (truncated or corrupt file?): re-export it",
                      what, (long long)start, (long long)(start + count));
  return 0;
}

int input_h5_read_f64(const char *path, hid_t dset, const char *what, int64_t start, int64_t count,
                      double *out, char *err, size_t err_size) {
  if (input_h5_read_range(dset, H5T_NATIVE_DOUBLE, start, count, out) < 0)
    return input_fail(err, err_size, path,
                      "cannot read %s [%lld, %lld) (truncated, corrupt or not numeric?): "
                      "re-export it",
                      what, (long long)start, (long long)(start + count));
  return 0;
}

/* Strings are read in blocks so that HDF5's per-string allocations stay bounded. */
#define INPUT_H5_STRING_BLOCK 16384

int input_h5_read_strings_dset(const char *path, hid_t dset, const char *name, input_strings *out,
                               char *err, size_t err_size) {
  hid_t type = H5Dget_type(dset), space = H5Dget_space(dset);
  int rc = 0;
  if (H5Tget_class(type) != H5T_STRING || H5Sget_simple_extent_ndims(space) != 1) {
    rc = input_fail(err, err_size, path, "%s is not a 1-D string array: re-export the file", name);
    goto done;
  }
  int64_t n = (int64_t)H5Sget_simple_extent_npoints(space);
  int variable = H5Tis_variable_str(type) > 0;
  size_t size = variable ? sizeof(char *) : H5Tget_size(type);
  H5T_str_t pad = H5Tget_strpad(type);
  hid_t mem = input_h5_string_memtype(type);
  char *buf = malloc((size_t)INPUT_H5_STRING_BLOCK * size);
  if (!buf || input_strings_reserve(out, out->n + n) != 0)
    rc = input_fail(err, err_size, path, "out of memory");
  for (int64_t start = 0; rc == 0 && start < n; start += INPUT_H5_STRING_BLOCK) {
    int64_t count = n - start < INPUT_H5_STRING_BLOCK ? n - start : INPUT_H5_STRING_BLOCK;
    if (variable) memset(buf, 0, (size_t)count * size);
    if (input_h5_read_range(dset, mem, start, count, buf) < 0) {
      rc = input_fail(err, err_size, path, "cannot read %s (truncated or corrupt file?)", name);
      break;
    }
    for (int64_t i = 0; i < count && rc == 0; i++) {
      const char *s = variable ? ((char **)buf)[i] : buf + (size_t)i * size;
      size_t len = variable ? (s ? strlen(s) : 0) : input_h5_fixed_len(s, size, pad);
      if (input_strings_push(out, s ? s : "", len) != 0)
        rc = input_fail(err, err_size, path, "out of memory");
    }
    if (variable) {
      hsize_t dims = (hsize_t)count;
      hid_t mem_space = H5Screate_simple(1, &dims, NULL);
      H5Dvlen_reclaim(mem, mem_space, H5P_DEFAULT, buf);
      H5Sclose(mem_space);
    }
  }
  free(buf);
  H5Tclose(mem);
done:
  H5Sclose(space);
  H5Tclose(type);
  return rc;
}

int input_h5_read_strings(const char *path, hid_t loc, const char *name, input_strings *out,
                          char *err, size_t err_size) {
  hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
  if (dset < 0) return input_fail(err, err_size, path, "cannot open %s: the file is corrupt", name);
  int rc = input_h5_read_strings_dset(path, dset, name, out, err, err_size);
  H5Dclose(dset);
  return rc;
}

/* ---- on-disk CSR ---- */

/* HDF5's metadata cache counts a chunk-index (v1 B-tree) node at its size on disk, about 2 KiB,
 * though the node takes about 18 KiB of memory (its native keys are sized for 33 dimensions).
 * The matrix reads walk the index in order and leave every node they visit in the cache: one
 * node per 64 chunks read, never evicted under the 4 MiB ceiling set at open (room for 2,000
 * nodes, 36 MB): 3.4 MB at a million 10x pixels, growing with the pixel count.  The reads are
 * sequential, so the nodes they still need are the recent ones: a 64 KiB ceiling for the rest
 * of the file's life (the names are read before) keeps them and bounds the others. */
#define INPUT_H5_READ_MDC_MAX (64 << 10)

void input_h5_cap_cache_for_reads(hid_t file) {
  H5AC_cache_config_t config;
  config.version = H5AC__CURR_CACHE_CONFIG_VERSION;
  if (H5Fget_mdc_config(file, &config) < 0 || config.max_size <= INPUT_H5_READ_MDC_MAX) return;
  config.set_initial_size = 1;
  config.initial_size = INPUT_H5_READ_MDC_MAX;
  config.max_size = INPUT_H5_READ_MDC_MAX;
  if (config.min_size > INPUT_H5_READ_MDC_MAX) config.min_size = INPUT_H5_READ_MDC_MAX;
  H5Fset_mdc_config(file, &config);
}

int input_h5_csr_init(input_h5_csr *csr, const char *path, hid_t file, hid_t group,
                      const char *group_name, int64_t n_rows, int64_t n_cols, char *err,
                      size_t err_size) {
  csr->path = path;
  csr->file = file;
  csr->n_rows = n_rows;
  csr->n_cols_on_disk = n_cols;
  const char *names[3] = {"data", "indices", "indptr"};
  hid_t *dsets[3] = {&csr->data, &csr->indices, &csr->indptr};
  for (int i = 0; i < 3; i++) {
    *dsets[i] = -1;
    if (!input_h5_exists(group, names[i]))
      return input_fail(err, err_size, path, "%s/%s is missing: the sparse matrix is incomplete",
                        group_name, names[i]);
    *dsets[i] = H5Dopen2(group, names[i], H5P_DEFAULT);
    if (*dsets[i] < 0)
      return input_fail(err, err_size, path, "cannot open %s/%s: the file is corrupt", group_name,
                        names[i]);
  }
  int64_t n_data = input_h5_length(group, "data"), n_indices = input_h5_length(group, "indices");
  int64_t n_indptr = input_h5_length(group, "indptr");
  if (n_data < 0 || n_data != n_indices)
    return input_fail(err, err_size, path,
                      "%s/data and %s/indices differ in length: the file is corrupt", group_name,
                      group_name);
  if (n_indptr != n_rows + 1)
    return input_fail(err, err_size, path,
                      "%s/indptr has %lld entries for %lld rows: the file is corrupt", group_name,
                      (long long)n_indptr, (long long)n_rows);
  csr->nnz = n_data;
  input_h5_cap_cache_for_reads(file);
  int64_t ends[2];
  if (input_h5_read_i64(path, csr->indptr, "indptr", 0, 1, &ends[0], err, err_size) ||
      input_h5_read_i64(path, csr->indptr, "indptr", n_rows, 1, &ends[1], err, err_size))
    return -1;
  if (ends[0] != 0 || ends[1] != n_data)
    return input_fail(err, err_size, path,
                      "%s/indptr runs from %lld to %lld but there are %lld entries: the file is "
                      "corrupt or truncated",
                      group_name, (long long)ends[0], (long long)ends[1], (long long)n_data);
  return 0;
}

int input_h5_csr_read_rows(void *state, int64_t row_begin, int64_t row_end, rctd_csr_chunk *chunk,
                           char *err, size_t err_size) {
  input_h5_csr *csr = state;
  int64_t n = row_end - row_begin;
  int64_t *indptr = realloc(csr->indptr_buf, (size_t)(n + 1) * sizeof *indptr);
  if (!indptr) return input_fail(err, err_size, csr->path, "out of memory");
  csr->indptr_buf = indptr;
  if (input_h5_read_i64(csr->path, csr->indptr, "indptr", row_begin, n + 1, indptr, err, err_size))
    return -1;
  for (int64_t r = 0; r < n; r++)
    if (indptr[r + 1] < indptr[r] || indptr[r] < 0 || indptr[r + 1] > csr->nnz)
      return input_fail(err, err_size, csr->path,
                        "indptr is not increasing at row %lld: the file is corrupt",
                        (long long)(row_begin + r + 1));
  int64_t start = indptr[0], nnz = indptr[n] - indptr[0];
  if (input_chunk_reserve(chunk, n, nnz) != 0)
    return input_fail(err, err_size, csr->path, "out of memory");
  if ((size_t)nnz > csr->idx_cap) {
    int64_t *idx = realloc(csr->idx_buf, (size_t)nnz * sizeof *idx);
    if (!idx) return input_fail(err, err_size, csr->path, "out of memory");
    csr->idx_buf = idx;
    csr->idx_cap = (size_t)nnz;
  }
  if (input_h5_read_i64(csr->path, csr->indices, "indices", start, nnz, csr->idx_buf, err,
                        err_size) ||
      input_h5_read_f64(csr->path, csr->data, "data", start, nnz, chunk->values, err, err_size))
    return -1;
  int64_t out = 0;
  for (int64_t r = 0; r < n; r++) {
    chunk->row_ptr[r] = out;
    for (int64_t p = indptr[r] - start; p < indptr[r + 1] - start; p++) {
      int64_t col = csr->idx_buf[p];
      if (col < 0 || col >= csr->n_cols_on_disk)
        return input_fail(err, err_size, csr->path,
                          "index %lld out of range [0, %lld) in row %lld: the file is corrupt",
                          (long long)col, (long long)csr->n_cols_on_disk,
                          (long long)(row_begin + r + 1));
      int32_t gene = csr->col_map ? csr->col_map[col] : (int32_t)col;
      if (gene < 0) continue;
      chunk->gene_idx[out] = gene;
      chunk->values[out++] = chunk->values[p];
    }
  }
  chunk->row_ptr[n] = out;
  chunk->nnz = out;
  return 0;
}

void input_h5_csr_close(void *state) {
  input_h5_csr *csr = state;
  if (!csr) return;
  hid_t dsets[3] = {csr->data, csr->indices, csr->indptr};
  for (int i = 0; i < 3; i++)
    if (dsets[i] > 0) H5Dclose(dsets[i]);
  if (csr->file > 0) H5Fclose(csr->file);
  free(csr->col_map);
  free(csr->indptr_buf);
  free(csr->idx_buf);
  free(csr);
}
