/* HDF5 reads shared by the input readers, rctd-merge's and rctd report's reads of h5ad files
 * (input_hdf5.c): opening quietly, strings, numeric ranges, CSR groups on disk.  PATH is the
 * file name for messages. */
#ifndef RCTD_H5_READ_H
#define RCTD_H5_READ_H
#include <hdf5.h>

#include "h5_attr.h"
#include "input.h"
#include "input_util.h"

void input_h5_silence(void);
/* 1 when the file carries the HDF5 signature, else 0 (also for anything but a regular file,
 * which is not opened); -1 when unreadable. */
int input_is_hdf5(const char *path);
hid_t input_h5_open_file(const char *path, char *err, size_t err_size);
int input_h5_exists(hid_t loc, const char *name); /* link exists (no intermediate check) */
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
/* Lowers FILE's metadata-cache ceiling for the matrix reads that follow (input_hdf5.c says why). */
void input_h5_cap_cache_for_reads(hid_t file);
/* Opens data/indices/indptr under group; checks lengths. */
int input_h5_csr_init(input_h5_csr *csr, const char *path, hid_t file, hid_t group,
                      const char *group_name, int64_t n_rows, int64_t n_cols, char *err,
                      size_t err_size);

#endif
