/* Reading a large h5ad in chunks keeps memory bounded: a 1,000,000-row CSR X (32 entries per
 * row, 264 MB uncompressed) and a CSC layer (8 per row, 72 MB, transposed through the
 * temporary file) are streamed in a forked child whose peak RSS growth must stay far below the
 * data: neither the names of the rows (a temporary file; about 20 MB in memory) nor the counts
 * are held. */
#include <hdf5.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "input.h"
#include "test.h"

#define MEM_ROWS 1000000
#define MEM_GENES 200
#define MEM_CSR_PER_ROW 32
#define MEM_CSC_PER_ROW 8
#define MEM_CHUNK_ROWS 10000
#define MEM_MEASURE_RSS TEST_MEASURES_RSS
#define MEM_RSS_LIMIT_KB (48 * 1024)       /* whole run (72 MB while the names were held) */
#define MEM_STREAM_LIMIT_KB (16 * 1024)    /* streaming CSR beyond what open needed */
#define MEM_TRANSPOSE_LIMIT_KB (48 * 1024) /* streaming CSC, transpose buffers included */

/* Entry k of row r (genes distinct within a row; not sorted, on purpose). */
static int32_t csr_gene(int64_t r, int k) {
  return (int32_t)((r * 31 + k * 6) % MEM_GENES);
}
static double csr_value(int64_t r, int k) {
  return 1 + (double)((r + k) % 7);
}
static int32_t csc_gene(int64_t r, int k) {
  return (int32_t)((r * 7 + k * 25) % MEM_GENES);
}
static double csc_value(int64_t r, int k) {
  return 1 + (double)((r * 3 + k) % 5);
}

#define MEM_CHUNK 65536 /* elements per HDF5 chunk, but where a test asks for smaller ones */

/* A 1-d dataset of N elements in chunks of at most MAX_CHUNK. */
static hid_t mem_dataset(hid_t loc, const char *name, hid_t type, hsize_t n, const void *data,
                         hsize_t max_chunk) {
  hsize_t chunk = n < max_chunk ? (n ? n : 1) : max_chunk;
  hid_t space = H5Screate_simple(1, &n, NULL);
  hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(plist, 1, &chunk);
  H5Pset_deflate(plist, 1);
  hid_t dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, plist, H5P_DEFAULT);
  herr_t rc = dset >= 0 ? H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
  H5Pclose(plist);
  H5Sclose(space);
  if (dset >= 0) H5Dclose(dset);
  return rc;
}

static void mem_attr_string(hid_t obj, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, type, &value);
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

static int mem_strings(hid_t loc, const char *name, const char *fmt, int64_t n) {
  char **items = malloc((size_t)n * sizeof *items);
  char *text = malloc((size_t)n * 16);
  for (int64_t i = 0; i < n; i++) {
    items[i] = text + i * 16;
    snprintf(items[i], 16, fmt, (long)i);
  }
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  int rc = mem_dataset(loc, name, type, (hsize_t)n, items, MEM_CHUNK) < 0 ? -1 : 0;
  H5Tclose(type);
  free(items);
  free(text);
  return rc;
}

/* The shape of a sparse group: the matrix's rows (shape[0]) and its arrays' chunk size. */
typedef struct {
  int64_t n_rows;
  hsize_t chunk;
} mem_layout;

/* One sparse group: n_outer indptr entries (+1), indices/data given. */
static int mem_sparse(hid_t file, const char *name, const char *encoding, const mem_layout *lay,
                      const int64_t *indptr, int64_t n_outer, const int32_t *indices,
                      const float *data, int64_t nnz) {
  hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  mem_attr_string(group, "encoding-type", encoding);
  mem_attr_string(group, "encoding-version", "0.1.0");
  int64_t shape[2] = {lay->n_rows, MEM_GENES};
  hsize_t two = 2;
  hid_t space = H5Screate_simple(1, &two, NULL);
  hid_t attr = H5Acreate2(group, "shape", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(attr, H5T_NATIVE_INT64, shape);
  H5Aclose(attr);
  H5Sclose(space);
  int rc = 0;
  rc |=
      mem_dataset(group, "indptr", H5T_NATIVE_INT64, (hsize_t)n_outer + 1, indptr, lay->chunk) < 0;
  rc |= mem_dataset(group, "indices", H5T_NATIVE_INT32, (hsize_t)nnz, indices, lay->chunk) < 0;
  rc |= mem_dataset(group, "data", H5T_NATIVE_FLOAT, (hsize_t)nnz, data, lay->chunk) < 0;
  H5Gclose(group);
  return rc;
}

static int mem_dataframe(hid_t file, const char *name, const char *fmt, int64_t n) {
  hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  mem_attr_string(group, "_index", "_index");
  mem_attr_string(group, "encoding-type", "dataframe");
  int rc = mem_strings(group, "_index", fmt, n);
  H5Gclose(group);
  return rc;
}

/* The CSR X of LAY's rows (csr_gene, csr_value).  0 or -1. */
static int mem_write_csr_x(hid_t file, const mem_layout *lay) {
  const int64_t n = lay->n_rows, nnz = n * MEM_CSR_PER_ROW;
  int64_t *indptr = malloc(((size_t)n + 1) * sizeof *indptr);
  int32_t *indices = malloc((size_t)nnz * sizeof *indices);
  float *data = malloc((size_t)nnz * sizeof *data);
  int rc = indptr && indices && data ? 0 : -1;
  for (int64_t r = 0; rc == 0 && r <= n; r++) indptr[r] = r * MEM_CSR_PER_ROW;
  for (int64_t p = 0; rc == 0 && p < nnz; p++) {
    indices[p] = csr_gene(p / MEM_CSR_PER_ROW, (int)(p % MEM_CSR_PER_ROW));
    data[p] = (float)csr_value(p / MEM_CSR_PER_ROW, (int)(p % MEM_CSR_PER_ROW));
  }
  if (rc == 0) rc = mem_sparse(file, "X", "csr_matrix", lay, indptr, n, indices, data, nnz);
  free(indptr);
  free(indices);
  free(data);
  return rc;
}

/* Writes the big file (run in a child: its memory does not count). */
static int mem_write_file(const char *path) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return -1;
  const mem_layout big = {MEM_ROWS, MEM_CHUNK};
  int rc = mem_write_csr_x(file, &big);
  /* CSC layer: counting sort of its entries by gene, rows ascending within a gene */
  int64_t csc_nnz = (int64_t)MEM_ROWS * MEM_CSC_PER_ROW;
  int32_t *indices = malloc((size_t)csc_nnz * sizeof *indices);
  float *data = malloc((size_t)csc_nnz * sizeof *data);
  if (rc != 0 || !indices || !data) {
    free(indices);
    free(data);
    H5Fclose(file);
    return -1;
  }
  int64_t col_ptr[MEM_GENES + 1] = {0}, next[MEM_GENES];
  for (int64_t r = 0; r < MEM_ROWS; r++)
    for (int k = 0; k < MEM_CSC_PER_ROW; k++) col_ptr[csc_gene(r, k) + 1]++;
  for (int g = 0; g < MEM_GENES; g++) col_ptr[g + 1] += col_ptr[g];
  memcpy(next, col_ptr, sizeof next);
  for (int64_t r = 0; r < MEM_ROWS; r++)
    for (int k = 0; k < MEM_CSC_PER_ROW; k++) {
      int64_t p = next[csc_gene(r, k)]++;
      indices[p] = (int32_t)r;
      data[p] = (float)csc_value(r, k);
    }
  hid_t layers = H5Gcreate2(file, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Gclose(layers);
  rc |= mem_sparse(file, "layers/csc", "csc_matrix", &big, col_ptr, MEM_GENES, indices, data,
                   csc_nnz);
  rc |= mem_dataframe(file, "obs", "cell%07ld", MEM_ROWS);
  rc |= mem_dataframe(file, "var", "gene%ld", MEM_GENES);
  free(indices);
  free(data);
  H5Fclose(file);
  return rc;
}

typedef struct {
  int ok;
  double total, weighted;
  long rss_start_kb, rss_open_kb, rss_peak_kb;
  char err[512];
} mem_result;

static long mem_maxrss_kb(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

/* Streams path (layer or X) and sums; runs in a forked child. */
static void mem_stream(const char *path, const char *layer, mem_result *result) {
  result->rss_start_kb = mem_maxrss_kb();
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.layer = layer;
  rctd_input *input = rctd_input_open(path, &options, result->err, sizeof result->err);
  if (!input) return;
  result->rss_open_kb = mem_maxrss_kb();
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  int rc;
  int64_t rows = 0;
  while ((rc = rctd_input_next_chunk(input, MEM_CHUNK_ROWS, &chunk, result->err,
                                     sizeof result->err)) == 1) {
    for (int64_t r = 0; r < chunk.n_rows; r++)
      for (int64_t p = chunk.row_ptr[r]; p < chunk.row_ptr[r + 1]; p++) {
        result->total += chunk.values[p];
        result->weighted += chunk.values[p] * (double)(chunk.gene_idx[p] + 1) *
                            (double)((chunk.row_begin + r) % 1000);
      }
    rows += chunk.n_rows;
  }
  rctd_csr_chunk_free(&chunk);
  result->ok = rc == 0 && rows == MEM_ROWS && rctd_input_n_genes(input) == MEM_GENES &&
               rctd_input_barcode(input, MEM_ROWS - 1) &&
               !strcmp(rctd_input_barcode(input, MEM_ROWS - 1), "cell0999999");
  rctd_input_close(input);
  result->rss_peak_kb = mem_maxrss_kb();
}

/* Runs BODY(ARG, OUT) in a forked child (the runner's heap, which later tests' RSS measures
 * inherit, stays as it was) and copies its OUT_SIZE bytes of OUT back.  0 when the child
 * exited 0 having sent them all, else -1. */
static int mem_fork(int (*body)(void *arg, void *out), void *arg, void *out, size_t out_size) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    int rc = body(arg, out);
    ssize_t written = write(fds[1], out, out_size);
    _exit(written == (ssize_t)out_size && rc == 0 ? 0 : 1);
  }
  close(fds[1]);
  ssize_t got = read(fds[0], out, out_size);
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return got == (ssize_t)out_size && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

typedef struct {
  const char *path, *layer;
} mem_job;

static int mem_job_run(void *arg, void *out) {
  const mem_job *job = arg;
  mem_result *mine = out;
  if (job->layer && !strcmp(job->layer, "write"))
    mine->ok = mem_write_file(job->path) == 0;
  else
    mem_stream(job->path, job->layer, mine);
  return 0;
}

static int mem_in_child(const char *path, const char *layer, mem_result *result) {
  mem_job job = {path, layer};
  memset(result, 0, sizeof *result);
  return mem_fork(mem_job_run, &job, result, sizeof *result);
}

TEST(input_memory_large_h5ad_streams_in_bounded_rss) {
  char path[1024];
  snprintf(path, sizeof path, "%s/large.h5ad", test_tmp_dir());
  mem_result result;
  CHECK(mem_in_child(path, "write", &result) == 0 && result.ok);
  double csr_total = 0, csr_weighted = 0, csc_total = 0, csc_weighted = 0;
  for (int64_t r = 0; r < MEM_ROWS; r++) {
    for (int k = 0; k < MEM_CSR_PER_ROW; k++) {
      csr_total += csr_value(r, k);
      csr_weighted += csr_value(r, k) * (csr_gene(r, k) + 1) * (double)(r % 1000);
    }
    for (int k = 0; k < MEM_CSC_PER_ROW; k++) {
      csc_total += csc_value(r, k);
      csc_weighted += csc_value(r, k) * (csc_gene(r, k) + 1) * (double)(r % 1000);
    }
  }
  /* CSR: read straight from disk by row ranges */
  CHECK(mem_in_child(path, NULL, &result) == 0);
  CHECK_MSG(result.ok, "%s", result.err);
  CHECK_NEAR(result.total, csr_total, 0);
  CHECK_NEAR(result.weighted, csr_weighted, 0);
  long csr_growth = result.rss_peak_kb - result.rss_start_kb;
  long csr_stream = result.rss_peak_kb - result.rss_open_kb;
  CHECK_MSG(!MEM_MEASURE_RSS || (csr_growth < MEM_RSS_LIMIT_KB && csr_stream < MEM_STREAM_LIMIT_KB),
            "CSR peak RSS grew by %ld KiB, %ld KiB of it while streaming (data: %lld KiB)",
            csr_growth, csr_stream, (long long)MEM_ROWS * MEM_CSR_PER_ROW * 8 / 1024);
  /* CSC: transposed through the temporary file, entries back in row order */
  CHECK(mem_in_child(path, "csc", &result) == 0);
  CHECK_MSG(result.ok, "%s", result.err);
  CHECK_NEAR(result.total, csc_total, 0);
  CHECK_NEAR(result.weighted, csc_weighted, 0);
  long csc_growth = result.rss_peak_kb - result.rss_start_kb;
  long csc_stream = result.rss_peak_kb - result.rss_open_kb;
  CHECK_MSG(
      !MEM_MEASURE_RSS || (csc_growth < MEM_RSS_LIMIT_KB && csc_stream < MEM_TRANSPOSE_LIMIT_KB),
      "CSC peak RSS grew by %ld KiB, %ld KiB of it while streaming", csc_growth, csc_stream);
  if (getenv("RCTD_TEST_VERBOSE"))
    fprintf(stderr, "  peak RSS growth: CSR %ld KiB (%ld streaming), CSC %ld KiB (%ld)\n",
            csr_growth, csr_stream, csc_growth, csc_stream);
}

/* HDF5 keeps the chunk-index (v1 B-tree) nodes a read walks through in its metadata cache,
 * counted at their size on disk (about 2 KiB) though each takes about 18 KiB of memory: until
 * the reader lowered the cache's ceiling for its matrix reads, they piled up with the chunks
 * read (3.4 MB at a million 10x pixels).  A CSR X of 100,000 rows in chunks of 256 entries (195
 * index leaves per array): the heap in use grew by 7,285 KiB from the first chunk read to the
 * last before, -22 KiB now (mallinfo2: counted, not sampled like the RSS). */
#define MEM_INDEX_ROWS 100000
#define MEM_INDEX_CHUNK 256
#define MEM_INDEX_LIMIT_KB 1024

static int mem_write_small_chunks(const char *path) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return -1;
  const mem_layout small = {MEM_INDEX_ROWS, MEM_INDEX_CHUNK};
  int rc = mem_write_csr_x(file, &small);
  if (rc == 0)
    rc = mem_dataframe(file, "obs", "cell%07ld", MEM_INDEX_ROWS) |
         mem_dataframe(file, "var", "gene%ld", MEM_GENES);
  H5Fclose(file);
  return rc;
}

typedef struct {
  long growth_kb;
  char err[512];
} mem_index_out;

/* Writes the file at ARG (a path) and reads it: OUT's growth_kb is the heap in use after the
 * last chunk read minus after the first.  0, or -1 with a message in OUT's err. */
static int mem_index_run(void *arg, void *result) {
  const char *path = arg;
  mem_index_out *out = result;
  int rc = mem_write_small_chunks(path);
  rctd_input_options options;
  rctd_input_options_init(&options);
  rctd_input *input = rc == 0 ? rctd_input_open(path, &options, out->err, sizeof out->err) : NULL;
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  int64_t rows = 0;
  size_t first = 0, last = 0;
  while (input &&
         (rc = rctd_input_next_chunk(input, 4096, &chunk, out->err, sizeof out->err)) == 1) {
    rows += chunk.n_rows;
    last = mallinfo2().uordblks;
    if (rows == chunk.n_rows) first = last;
  }
  rctd_csr_chunk_free(&chunk);
  rctd_input_close(input);
  remove(path);
  if ((rc != 0 || rows != MEM_INDEX_ROWS) && !out->err[0])
    snprintf(out->err, sizeof out->err, "%lld rows read (the file written: %s)", (long long)rows,
             rc == 0 ? "yes" : "no");
  out->growth_kb = ((long)last - (long)first) / 1024;
  return out->err[0] ? -1 : 0;
}

/* mem_index_run in a forked child.  0, or -1 with a message in err. */
static int mem_index_child(const char *path, long *growth_kb, char *err, size_t err_len) {
  mem_index_out out = {0, ""};
  int rc = mem_fork(mem_index_run, (void *)path, &out, sizeof out);
  snprintf(err, err_len, "%s", out.err);
  *growth_kb = out.growth_kb;
  return rc;
}

TEST(input_memory_chunk_index_bounded) {
  char path[1024], err[512] = "";
  snprintf(path, sizeof path, "%s/small_chunks.h5ad", test_tmp_dir());
  long growth_kb = 0;
  CHECK_MSG(mem_index_child(path, &growth_kb, err, sizeof err) == 0, "%s", err);
  if (getenv("RCTD_TEST_VERBOSE"))
    fprintf(stderr, "  heap in use after the last chunk - after the first: %ld KiB\n", growth_kb);
  CHECK_MSG(growth_kb < MEM_INDEX_LIMIT_KB, "%ld KiB", growth_kb);
}
