/* Benchmark: stream write and read throughput for a dense f64 record and a sparse counts record
 * (synthetic, deterministic), through a temporary file.
 *   stream [-n ROWS] [-c COLS] [-r CHUNK_ROWS] [-d DIR]
 * Prints "stream dense rows=... write_MBps=... read_MBps=... ratio=..." and the same for csr. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double bs_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static long bs_file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return n;
}

/* Reads every chunk of every record; returns rows read or -1. */
static long bs_read_all(const char *path) {
  char err[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_open(path, err, sizeof err);
  if (!r) return fprintf(stderr, "%s\n", err), -1;
  const rctd_record_info *info;
  long rows = 0;
  int rc;
  while ((rc = rctd_reader_next(r, &info)) == 1) {
    rctd_chunk c;
    while ((rc = rctd_reader_chunk(r, &c)) == 1) rows += (long)c.rows;
    if (rc < 0) break;
  }
  if (rc < 0) fprintf(stderr, "%s\n", rctd_reader_error(r)), rows = -1;
  rctd_reader_close(r);
  return rows;
}

static int bs_dense(const char *path, long n_rows, int n_cols, long chunk_rows) {
  char err[RCTD_ERR_LEN];
  rctd_writer_opts opts = {.chunk_rows = (uint64_t)chunk_rows};
  rctd_record_spec spec = {.name = "dense",
                           .kind = RCTD_DENSE,
                           .dtype = RCTD_F64,
                           .cols = (uint64_t)n_cols,
                           .rows = RCTD_ROWS_UNKNOWN};
  /* One pre-generated batch, written repeatedly: the timing is the writer's. */
  double *batch = malloc(sizeof(double) * 1024 * (size_t)n_cols);
  uint64_t state = 88172645463325252ull;
  for (long i = 0; i < 1024L * n_cols; i++) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    batch[i] = (double)(state % 1000) / 7.0; /* some repetition, like real values */
  }
  double t0 = bs_now();
  rctd_writer *w = rctd_writer_open(path, &opts, err, sizeof err);
  if (!w) return fprintf(stderr, "%s\n", err), 1;
  if (rctd_write_begin(w, &spec) != 0) return 1;
  for (long row = 0; row < n_rows; row += 1024) {
    long n = n_rows - row < 1024 ? n_rows - row : 1024;
    if (rctd_write_rows(w, batch, (uint64_t)n) != 0)
      return fprintf(stderr, "%s\n", rctd_writer_error(w)), 1;
  }
  free(batch);
  if (rctd_write_end(w) != 0 || rctd_writer_close(w, err, sizeof err) != 0) return 1;
  double t1 = bs_now();
  long rows = bs_read_all(path);
  double t2 = bs_now();
  double mb = (double)n_rows * n_cols * 8 / 1e6;
  printf("stream dense rows=%ld cols=%d chunk_rows=%ld write_MBps=%.0f read_MBps=%.0f ratio=%.2f\n",
         rows, n_cols, chunk_rows, mb / (t1 - t0), mb / (t2 - t1),
         mb * 1e6 / (double)bs_file_size(path));
  return rows == n_rows ? 0 : 1;
}

static int bs_csr(const char *path, long n_rows, int n_cols, long chunk_rows) {
  char err[RCTD_ERR_LEN];
  rctd_writer_opts opts = {.chunk_rows = (uint64_t)chunk_rows};
  rctd_record_spec spec = {.name = "counts",
                           .kind = RCTD_CSR,
                           .dtype = RCTD_I32,
                           .cols = (uint64_t)n_cols,
                           .rows = RCTD_ROWS_UNKNOWN};
  /* 1000 pre-generated rows (~2% of genes detected), written in turn. */
  enum { POOL = 1000 };
  int64_t *indptr = malloc(sizeof(int64_t) * (POOL + 1));
  int32_t *indices = malloc(sizeof(int32_t) * (size_t)n_cols * POOL);
  int32_t *values = malloc(sizeof(int32_t) * (size_t)n_cols * POOL);
  uint64_t state = 88172645463325252ull, nnz = 0;
  indptr[0] = 0;
  for (int i = 0; i < POOL; i++) {
    int64_t n = indptr[i];
    for (int j = 0; j < n_cols; j++) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      if (state % 50 == 0) indices[n] = j, values[n++] = 1 + (int32_t)((state >> 40) % 5);
    }
    indptr[i + 1] = n;
  }
  double t0 = bs_now();
  rctd_writer *w = rctd_writer_open(path, &opts, err, sizeof err);
  if (!w) return fprintf(stderr, "%s\n", err), 1;
  if (rctd_write_begin(w, &spec) != 0) return 1;
  for (long row = 0; row < n_rows; row++) {
    int i = (int)(row % POOL);
    nnz += (uint64_t)(indptr[i + 1] - indptr[i]);
    if (rctd_write_csr(w, indptr + i, indices, values, 1) != 0)
      return fprintf(stderr, "%s\n", rctd_writer_error(w)), 1;
  }
  free(indptr);
  free(indices);
  free(values);
  if (rctd_write_end(w) != 0 || rctd_writer_close(w, err, sizeof err) != 0) return 1;
  double t1 = bs_now();
  long rows = bs_read_all(path);
  double t2 = bs_now();
  double mb = (double)nnz * 8 / 1e6;
  printf("stream csr rows=%ld cols=%d nnz=%llu write_MBps=%.0f read_MBps=%.0f bytes_per_nnz=%.2f\n",
         rows, n_cols, (unsigned long long)nnz, mb / (t1 - t0), mb / (t2 - t1),
         (double)bs_file_size(path) / (double)nnz);
  return rows == n_rows ? 0 : 1;
}

int main(int argc, char **argv) {
  long n_rows = 1000000, chunk_rows = 0;
  int n_cols = 32, opt;
  const char *dir = "/tmp";
  while ((opt = getopt(argc, argv, "n:c:r:d:")) != -1) {
    switch (opt) {
      case 'n':
        n_rows = atol(optarg);
        break;
      case 'c':
        n_cols = atoi(optarg);
        break;
      case 'r':
        chunk_rows = atol(optarg);
        break;
      case 'd':
        dir = optarg;
        break;
      default:
        fprintf(stderr, "usage: stream [-n ROWS] [-c COLS] [-r CHUNK_ROWS] [-d DIR]\n");
        return 2;
    }
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/rctd-bench-stream.%d.rctd", dir, (int)getpid());
  int rc = bs_dense(path, n_rows, n_cols, chunk_rows);
  if (rc == 0) rc = bs_csr(path, n_rows / 4, 5000, chunk_rows);
  unlink(path);
  return rc;
}
