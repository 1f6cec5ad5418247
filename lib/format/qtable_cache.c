/* Likelihood tables on demand with an on-disk cache (see qtable_cache.h). */
#include "qtable_cache.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/poison.h"

#define QC_ROW_BYTES (sizeof(double) * RCTD_N_X)

/* Messages may be cut at the buffer size, which is fine (vsnprintf: no truncation warnings). */
static void qc_msg(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void qc_msg(char *dst, size_t cap, const char *fmt, ...) {
  if (!dst || !cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ storage */

static void qc_set_view(rctd_qtable_owned *t, int n_k) {
  t->table = (rctd_qtable){n_k, t->x_vals, t->q_kx, t->sq_kx};
}

/* Allocates a table of n_k rows (contents of q/sq undefined) with the X grid filled. */
static int qc_alloc(rctd_qtable_owned *t, int sigma_value, int n_k) {
  memset(t, 0, sizeof *t);
  t->sigma_value = sigma_value;
  t->sigma_c = sigma_value / 100.0;
  t->x_vals = malloc(QC_ROW_BYTES);
  t->q_kx = malloc(QC_ROW_BYTES * (size_t)n_k);
  t->sq_kx = malloc(QC_ROW_BYTES * (size_t)n_k);
  if (!t->x_vals || !t->q_kx || !t->sq_kx) {
    rctd_qtable_owned_free(t);
    return -1;
  }
  rctd_x_grid(t->x_vals);
  qc_set_view(t, n_k);
  return 0;
}

/* Unpoisons the rows left unset (before the arrays are copied or freed). */
static void qc_unpoison(rctd_qtable_owned *t) {
  if (!t->row_loaded) return;
  for (int k = 0; k < t->table.n_k; k++) {
    RCTD_UNPOISON(t->q_kx + (size_t)k * RCTD_N_X, QC_ROW_BYTES);
    RCTD_UNPOISON(t->sq_kx + (size_t)k * RCTD_N_X, QC_ROW_BYTES);
  }
}

/* Marks the rows of KEEP (n_k flags) as the only ones set, the others poisoned; 0 or -1. */
static int qc_keep_only(rctd_qtable_owned *t, const unsigned char *keep) {
  const int n_k = t->table.n_k;
  t->row_loaded = malloc((size_t)n_k);
  if (!t->row_loaded) return -1;
  for (int k = 0; k < n_k; k++) {
    t->row_loaded[k] = keep[k] != 0;
    if (keep[k]) continue;
    RCTD_POISON(t->q_kx + (size_t)k * RCTD_N_X, QC_ROW_BYTES);
    RCTD_POISON(t->sq_kx + (size_t)k * RCTD_N_X, QC_ROW_BYTES);
  }
  return 0;
}

int rctd_qtable_row_loaded(const rctd_qtable_owned *t, int k) {
  return k >= 0 && k < t->table.n_k && (!t->row_loaded || t->row_loaded[k]);
}

/* Grows (or shrinks) to n_k rows, keeping the first rows (all of them set). */
static int qc_resize(rctd_qtable_owned *t, int n_k) {
  if (t->row_loaded) return -1; /* (a keep_rows read is never resized) */
  double *q = realloc(t->q_kx, QC_ROW_BYTES * (size_t)n_k);
  if (!q) return -1;
  t->q_kx = q;
  double *sq = realloc(t->sq_kx, QC_ROW_BYTES * (size_t)n_k);
  if (!sq) return -1;
  t->sq_kx = sq;
  qc_set_view(t, n_k);
  return 0;
}

void rctd_qtable_owned_free(rctd_qtable_owned *t) {
  if (!t) return;
  if (t->q_kx && t->sq_kx) qc_unpoison(t);
  free(t->row_loaded);
  free(t->x_vals);
  free(t->q_kx);
  free(t->sq_kx);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ computing rows */

typedef struct {
  double sigma_c;
  const double *x_vals;
  int k_end;
  const unsigned char *todo; /* NULL: every row below k_end; else the flagged ones */
  double *q_kx, *sq_kx;
  atomic_int next_row;
  atomic_int failed;
} qc_job;

/* Rows are handed out in chunks growing with k: low rows cost up to ten times more than high
 * ones (their sums are wider) and every kernel call pays a fixed setup (~0.5 ms). */
static int qc_chunk_rows(int k) {
  return 1 + k / 16;
}

/* The chunk of rows to compute starting at or after K: [*begin, *end) (flagged rows, one run);
 * 0 when none is left. */
static int qc_next_chunk(const qc_job *job, int k, int *begin, int *end) {
  while (k < job->k_end && job->todo && !job->todo[k]) k++;
  if (k >= job->k_end) return 0;
  int e = k + qc_chunk_rows(k);
  if (e > job->k_end) e = job->k_end;
  int run = k + 1;
  while (run < e && (!job->todo || job->todo[run])) run++;
  *begin = k;
  *end = run;
  return 1;
}

static void *qc_worker(void *arg) {
  qc_job *job = arg;
  for (;;) {
    int k = atomic_load(&job->next_row), begin, end;
    do {
      if (!qc_next_chunk(job, k, &begin, &end)) return NULL;
    } while (!atomic_compare_exchange_weak(&job->next_row, &k, end));
    if (rctd_qtable_rows(job->sigma_c, job->x_vals, begin, end, job->q_kx, job->sq_kx) != 0)
      atomic_store(&job->failed, 1);
  }
}

/* Rows [k_begin, k_end) (only those flagged in TODO, when not NULL) split across threads. */
static int qc_compute_rows(double sigma_c, int k_begin, int k_end, const unsigned char *todo,
                           int n_threads, double *q_kx, double *sq_kx) {
  if (k_begin < 0 || k_end < k_begin || !q_kx || !sq_kx) return -1;
  double x_vals[RCTD_N_X];
  rctd_x_grid(x_vals);
  qc_job job = {.sigma_c = sigma_c,
                .x_vals = x_vals,
                .k_end = k_end,
                .todo = todo,
                .q_kx = q_kx,
                .sq_kx = sq_kx};
  atomic_init(&job.next_row, k_begin);
  atomic_init(&job.failed, 0);
  int n_chunks = 0;
  for (int k = k_begin, b, e; qc_next_chunk(&job, k, &b, &e); k = e) n_chunks++;
  if (n_threads > n_chunks) n_threads = n_chunks;
  if (n_threads < 1) n_threads = 1;
  pthread_t *threads = calloc((size_t)n_threads, sizeof *threads);
  if (!threads) return -1;
  int started = 0;
  for (; started < n_threads - 1; started++)
    if (pthread_create(&threads[started], NULL, qc_worker, &job) != 0) break;
  qc_worker(&job); /* the calling thread works too (and alone when no thread started) */
  for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
  free(threads);
  return atomic_load(&job.failed) ? -1 : 0;
}

int rctd_qtable_compute(double sigma_c, int k_begin, int k_end, int n_threads, double *q_kx,
                        double *sq_kx) {
  return qc_compute_rows(sigma_c, k_begin, k_end, NULL, n_threads, q_kx, sq_kx);
}

/* ------------------------------------------------------------------ records */

static uLong qc_crc(uLong crc, const void *data, size_t bytes) {
  const unsigned char *p = data;
  while (bytes > 0) { /* crc32 takes a uInt length */
    uInt n = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
    crc = crc32(crc, p, n);
    p += n;
    bytes -= n;
  }
  return crc;
}

/* Cache entries hold the rows in blocks of QC_BLOCK_ROWS (one zstd frame each) with each
 * block's crc32 in the meta record, so that a reader keeping few rows (keep_rows) decompresses
 * and checks only their blocks; their frames are compressed at the fastest level (the doubles
 * barely compress: 5% smaller at level 3, which decompresses five times slower).  Model streams
 * keep the writer's chunks and level (block_rows 0): their bytes do not change. */
#define QC_BLOCK_ROWS 8
#define QC_ENTRY_LEVEL -1
#define QC_CRC_CHARS 11 /* "4294967295 " */

static int qc_n_blocks(long long n_k, long long block_rows) {
  return (int)((n_k + block_rows - 1) / block_rows);
}

/* Whether every row of block B (of BLOCK_ROWS rows) of an n_k-row table is flagged in HAVE
 * (NULL: all are). */
static int qc_block_whole(const unsigned char *have, int n_k, int block_rows, int b) {
  for (int k = b * block_rows; have && k < n_k && k < (b + 1) * block_rows; k++)
    if (!have[k]) return 0;
  return 1;
}

/* The space-separated crc32 of each block (its q rows, then its sq rows), "-" for a block with
 * a row not flagged in HAVE (when not NULL); NULL out of memory. */
static char *qc_block_crcs(const rctd_qtable_owned *t, int block_rows, const unsigned char *have) {
  const int n_k = t->table.n_k, n_blocks = qc_n_blocks(n_k, block_rows);
  char *list = malloc((size_t)n_blocks * QC_CRC_CHARS + 1), *at = list;
  if (!list) return NULL;
  *at = 0;
  for (int b = 0; b < n_blocks; b++) {
    const int first = b * block_rows, rows = n_k - first < block_rows ? n_k - first : block_rows;
    if (!qc_block_whole(have, n_k, block_rows, b)) {
      at += sprintf(at, b ? " -" : "-");
      continue;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = qc_crc(crc, t->q_kx + (size_t)first * RCTD_N_X, QC_ROW_BYTES * (size_t)rows);
    crc = qc_crc(crc, t->sq_kx + (size_t)first * RCTD_N_X, QC_ROW_BYTES * (size_t)rows);
    at += sprintf(at, b ? " %lu" : "%lu", (unsigned long)crc);
  }
  return list;
}

static int qc_write_matrix(rctd_writer *w, const char *name, int n_k, int block_rows,
                           const double *data) {
  return rctd_write_dense_chunked(w, name, RCTD_F64, (uint64_t)n_k, RCTD_N_X, data, NULL, NULL,
                                  (uint64_t)block_rows);
}

/* The four records; BLOCK_ROWS > 0: a cache entry's blocks (chunks of that many rows, their
 * crc32 listed in the meta record).  HAVE (n_k flags, or NULL when all rows are set; only with
 * blocks): the rows computed; a block with another row is stored absent (zeros, "-" in the
 * list; the entry's crc32 "-" too, which no whole-table reader accepts). */
static int qc_write_records(rctd_writer *w, const rctd_qtable_owned *t, int block_rows,
                            const unsigned char *have) {
  /* A table read with keep_rows has rows that were never set: written out, they would get
   * fresh checksums and pass every later check as a valid table. */
  if (t->row_loaded) return -1;
  int n_k = t->table.n_k;
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = qc_crc(crc, t->q_kx, QC_ROW_BYTES * (size_t)n_k);
  crc = qc_crc(crc, t->sq_kx, QC_ROW_BYTES * (size_t)n_k);
  char version[16], sigma[16], sigma_c[40], nk[16], nx[16], crc_s[24];
  snprintf(version, sizeof version, "%d", RCTD_QTABLE_VERSION);
  snprintf(sigma, sizeof sigma, "%d", t->sigma_value);
  snprintf(sigma_c, sizeof sigma_c, "%a", t->sigma_c);
  snprintf(nk, sizeof nk, "%d", n_k);
  snprintf(nx, sizeof nx, "%d", RCTD_N_X);
  snprintf(crc_s, sizeof crc_s, "%lu", (unsigned long)crc);
  for (int b = 0; have && b < qc_n_blocks(n_k, block_rows); b++)
    if (!qc_block_whole(have, n_k, block_rows, b)) snprintf(crc_s, sizeof crc_s, "-");
  char block_s[16];
  snprintf(block_s, sizeof block_s, "%d", block_rows);
  char *crcs = block_rows > 0 ? qc_block_crcs(t, block_rows, have) : NULL;
  if (block_rows > 0 && !crcs) return -1;
  const char *keys[] = {"format", "version", "sigma",      "sigma_c",    "n_k",
                        "n_x",    "crc32",   "quadrature", "block_rows", "block_crc32"};
  const char *values[] = {RCTD_QTABLE_FORMAT,
                          version,
                          sigma,
                          sigma_c,
                          nk,
                          nx,
                          crc_s,
                          "spacexr get_Q: Y = (-5000..5000) * 0.004, heavy-tailed ht_pdf, "
                          "log(max(P, 1e-300)); solve_sq natural spline",
                          block_s,
                          crcs};
  const size_t n_keys = sizeof keys / sizeof *keys - (block_rows > 0 ? 0 : 2);
  int rc = rctd_write_meta(w, RCTD_QTABLE_REC_META, keys, values, n_keys);
  free(crcs);
  if (rc != 0) return -1;
  if (rctd_write_vector(w, RCTD_QTABLE_REC_X, RCTD_F64, RCTD_N_X, t->x_vals, NULL) != 0) return -1;
  if (qc_write_matrix(w, RCTD_QTABLE_REC_Q, n_k, block_rows, t->q_kx) != 0) return -1;
  return qc_write_matrix(w, RCTD_QTABLE_REC_SQ, n_k, block_rows, t->sq_kx);
}

int rctd_qtable_write_records(rctd_writer *w, const rctd_qtable_owned *t) {
  return qc_write_records(w, t, 0, NULL);
}

/* Parses a non-negative decimal integer field; -1 when absent or malformed. */
static long long qc_meta_int(const rctd_record *meta, const char *key) {
  const char *v = rctd_record_meta_get(meta, key);
  if (!v || !*v) return -1;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || *end || x < 0) return -1;
  return x;
}

/* An entry's blocks (block_rows 0: an entry of the first layout, or a model stream's records,
 * read whole against the crc32 of all the data). */
typedef struct {
  long long block_rows;
  int n_blocks;
  uLong *want;  /* n_blocks crc32 from the meta record */
  uLong *got;   /* of the blocks read */
  char *needed; /* n_blocks flags: the blocks with a row to keep */
  char *absent; /* n_blocks flags: blocks not stored ("-" in a partial entry's list) */
  int n_absent;
  int whole; /* every block needed: the crc32 of all the data is checked too */
} qc_blocks;

static void qc_blocks_free(qc_blocks *b) {
  free(b->want);
  free(b->got);
  free(b->needed);
  free(b->absent);
  memset(b, 0, sizeof *b);
}

/* The meta record's block_rows and block_crc32 (both absent, or both well-formed: 0 or -1);
 * "-" (an absent block) only when PARTIAL. */
static int qc_parse_blocks(const rctd_record *meta, long long n_k, int partial, qc_blocks *b) {
  memset(b, 0, sizeof *b);
  const char *list = rctd_record_meta_get(meta, "block_crc32");
  long long rows = qc_meta_int(meta, "block_rows");
  if (!list && !rctd_record_meta_get(meta, "block_rows")) return 0;
  if (!list || rows < 1 || rows > RCTD_N_K_FULL) return -1;
  b->block_rows = rows;
  b->n_blocks = qc_n_blocks(n_k, rows);
  b->want = calloc((size_t)b->n_blocks, sizeof *b->want);
  b->got = calloc((size_t)b->n_blocks, sizeof *b->got);
  b->needed = calloc((size_t)b->n_blocks, 1);
  b->absent = calloc((size_t)b->n_blocks, 1);
  if (!b->want || !b->got || !b->needed || !b->absent) return -1;
  /* exactly what the writer puts there: n_blocks decimal numbers, one space between them */
  const char *at = list;
  for (int i = 0; i < b->n_blocks; i++) {
    if (i > 0 && *at++ != ' ') return -1;
    if (partial && *at == '-') {
      b->absent[i] = 1;
      b->n_absent++;
      at++;
      continue;
    }
    if (!isdigit((unsigned char)*at)) return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(at, &end, 10);
    if (errno || v > UINT_MAX) return -1;
    b->want[i] = (uLong)v;
    at = end;
  }
  return *at || (partial && b->n_absent == 0) ? -1 : 0;
}

/* Positions R on the next record, which must be NAME; 0 or -1 with a message. */
static int qc_next(rctd_reader *r, const char *name, const rctd_record_info **info, char *err,
                   size_t err_len) {
  int rc = rctd_reader_next(r, info);
  if (rc < 0) {
    qc_msg(err, err_len, "%s", rctd_reader_error(r));
    return -1;
  }
  if (rc == 0 || strcmp((*info)->name, name) != 0) {
    qc_msg(err, err_len, "%s: expected record '%s'", rctd_reader_label(r), name);
    return -1;
  }
  return 0;
}

/* Rows [first, first + rows) of a chunk into dst (rows from 0): all, or the flagged ones. */
static void qc_copy_rows(double *dst, const double *data, uint64_t first, uint64_t rows,
                         const unsigned char *keep) {
  if (!keep) {
    memcpy(dst + first * RCTD_N_X, data, QC_ROW_BYTES * rows);
    return;
  }
  for (uint64_t k = 0; k < rows; k++)
    if (keep[first + k]) memcpy(dst + (first + k) * RCTD_N_X, data + k * RCTD_N_X, QC_ROW_BYTES);
}

/* Continues block I's crc32 with DATA, and *CRC (the whole data's) when B is read whole:
 * each byte hashed once, the two crc32s combined. */
static void qc_block_crc(qc_blocks *b, int i, uLong *crc, const void *data, size_t bytes) {
  if (!b->whole) {
    b->got[i] = qc_crc(b->got[i], data, bytes);
    return;
  }
  const uLong c = qc_crc(crc32(0L, Z_NULL, 0), data, bytes);
  b->got[i] = crc32_combine(b->got[i], c, (z_off_t)bytes);
  *crc = crc32_combine(*crc, c, (z_off_t)bytes);
}

/* Streams a dense f64 n_k x RCTD_N_X record of an entry in blocks: decodes the needed blocks
 * (their crc32 continued in b->got, and in *CRC, the whole data's, when all are), skips the
 * others undecoded. */
static int qc_read_blocks(rctd_reader *r, uint64_t n_k, int n_keep, const unsigned char *keep,
                          double *dst, uLong *crc, qc_blocks *b, char *err, size_t err_len) {
  rctd_chunk chunk;
  int rc = 1;
  for (int i = 0; i < b->n_blocks && rc == 1; i++) {
    const uint64_t first = (uint64_t)i * (uint64_t)b->block_rows;
    const uint64_t block = (uint64_t)b->block_rows,
                   rows = n_k - first < block ? n_k - first : block;
    uint64_t got = 0;
    if (!b->needed[i]) {
      rc = rctd_reader_chunk_skip(r, &got);
    } else if ((rc = rctd_reader_chunk(r, &chunk)) == 1) {
      got = chunk.rows;
      if (got == rows) {
        qc_block_crc(b, i, crc, chunk.data, QC_ROW_BYTES * rows);
        uint64_t n = first + rows > (uint64_t)n_keep ? (uint64_t)n_keep - first : rows;
        if (first < (uint64_t)n_keep) qc_copy_rows(dst, chunk.data, first, n, keep);
      }
    }
    if (rc == 1 && got != rows) {
      qc_msg(err, err_len, "%s: table blocks differ from its header", rctd_reader_label(r));
      return -1;
    }
  }
  if (rc == 1 && rctd_reader_skip(r) == 0 && rctd_reader_rows_read(r) == n_k) return 0;
  qc_msg(err, err_len, "%s",
         rc < 0 || rctd_reader_error(r)[0] ? rctd_reader_error(r) : "record cut short");
  return -1;
}

/* Streams a dense f64 n_k x RCTD_N_X record: keeps rows < n_keep in dst (only those flagged in
 * keep, when not NULL); in blocks when B has them, else adding all to the crc. */
static int qc_read_rows(rctd_reader *r, const rctd_record_info *info, uint64_t n_k, int n_keep,
                        const unsigned char *keep, double *dst, uLong *crc, qc_blocks *b, char *err,
                        size_t err_len) {
  if (info->kind != RCTD_DENSE || info->dtype != RCTD_F64 || info->cols != RCTD_N_X ||
      info->rows != n_k) {
    qc_msg(err, err_len, "%s: record '%s' is not a %llu x %d f64 matrix", rctd_reader_label(r),
           info->name, (unsigned long long)n_k, RCTD_N_X);
    return -1;
  }
  if (b->block_rows > 0) return qc_read_blocks(r, n_k, n_keep, keep, dst, crc, b, err, err_len);
  rctd_chunk chunk;
  int rc;
  while ((rc = rctd_reader_chunk(r, &chunk)) == 1) {
    *crc = qc_crc(*crc, chunk.data, QC_ROW_BYTES * chunk.rows);
    if (chunk.first_row >= (uint64_t)n_keep) continue;
    uint64_t rows = chunk.rows;
    if (chunk.first_row + rows > (uint64_t)n_keep) rows = (uint64_t)n_keep - chunk.first_row;
    qc_copy_rows(dst, chunk.data, chunk.first_row, rows, keep);
  }
  if (rc < 0 || rctd_reader_rows_read(r) != n_k) {
    qc_msg(err, err_len, "%s", rc < 0 ? rctd_reader_error(r) : "record cut short");
    return -1;
  }
  return 0;
}

/* Checks the meta record: the format, version, sigma and grid size this build computes. */
/* *PARTIAL (when not NULL: a cache entry) is set when the crc32 is "-" (blocks absent). */
static int qc_check_meta(const rctd_record *meta, int sigma_value, const char *label,
                         long long *n_k, unsigned long *crc, int *partial, char *err,
                         size_t err_len) {
  const char *format = rctd_record_meta_get(meta, "format");
  long long version = qc_meta_int(meta, "version"), sigma = qc_meta_int(meta, "sigma");
  long long n_x = qc_meta_int(meta, "n_x"), crc_v = qc_meta_int(meta, "crc32");
  const char *sigma_c = rctd_record_meta_get(meta, "sigma_c");
  char want_sigma_c[40];
  snprintf(want_sigma_c, sizeof want_sigma_c, "%a", sigma_value / 100.0);
  *n_k = qc_meta_int(meta, "n_k");
  const char *crc_text = rctd_record_meta_get(meta, "crc32");
  if (partial) *partial = crc_text && strcmp(crc_text, "-") == 0;
  if (partial && *partial) crc_v = 0;
  const char *what = NULL;
  if (meta->kind != RCTD_META || !format || strcmp(format, RCTD_QTABLE_FORMAT) != 0)
    what = "not a likelihood table";
  else if (version != RCTD_QTABLE_VERSION)
    what = "table version differs from this build's";
  else if (sigma != sigma_value || !sigma_c || strcmp(sigma_c, want_sigma_c) != 0)
    what = "table is for another sigma";
  else if (n_x != RCTD_N_X || *n_k < 1 || *n_k > RCTD_N_K_FULL || crc_v < 0 || crc_v > UINT_MAX)
    what = "malformed table header";
  if (what) {
    qc_msg(err, err_len, "%s: %s", label, what);
    return -1;
  }
  *crc = (unsigned long)crc_v;
  return 0;
}

int rctd_qtable_check_loaded(const rctd_record *meta, const rctd_record *q, const rctd_record *sq,
                             int sigma_value, const char *label, char *err, size_t err_len) {
  long long n_k;
  unsigned long want_crc;
  if (qc_check_meta(meta, sigma_value, label, &n_k, &want_crc, NULL, err, err_len) != 0) return -1;
  if ((long long)q->rows != n_k || (long long)sq->rows != n_k || q->cols != RCTD_N_X ||
      sq->cols != RCTD_N_X) {
    qc_msg(err, err_len, "%s: likelihood table: shape differs from its header", label);
    return -1;
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = qc_crc(crc, q->data, QC_ROW_BYTES * (size_t)n_k);
  crc = qc_crc(crc, sq->data, QC_ROW_BYTES * (size_t)n_k);
  if (crc != want_crc) {
    qc_msg(err, err_len,
           "%s: likelihood table data fail their crc32 (the stream was altered): rerun "
           "rctd-sigma",
           label);
    return -1;
  }
  return 0;
}

/* The blocks holding a row < n_keep flagged in KEEP (every row when NULL). */
static void qc_need_blocks(qc_blocks *b, int n_keep, const unsigned char *keep) {
  for (int k = 0; k < n_keep; k++)
    if (!keep || keep[k]) b->needed[k / b->block_rows] = 1;
}

/* The crc32 of every block read against the meta record's; read whole, the whole data's too
 * (CRC against WANT_CRC). */
static int qc_blocks_ok(const qc_blocks *b, uLong crc, unsigned long want_crc) {
  for (int i = 0; i < b->n_blocks; i++)
    if (b->needed[i] && b->got[i] != b->want[i]) return 0;
  return !b->whole || crc == want_crc;
}

/* Marks the rows of OUT's absent blocks as not loaded (poisoned); 0 or -1 out of memory. */
static int qc_mark_absent(rctd_qtable_owned *t, const qc_blocks *b) {
  const int n_k = t->table.n_k;
  unsigned char *loaded = malloc((size_t)n_k);
  if (!loaded) return -1;
  for (int k = 0; k < n_k; k++) loaded[k] = !b->absent[k / b->block_rows];
  int rc = qc_keep_only(t, loaded);
  free(loaded);
  return rc;
}

/* What a read of a table's records asks for. */
typedef struct {
  int sigma_value;
  int n_k_min; /* an entry with fewer rows is an error */
  int n_k_max; /* rows kept, when the table has that many (0: all) */
  /* n_k_max flags, or NULL: when the table has at least n_k_max rows, only the flagged ones are
   * copied (only their blocks decoded, in an entry with blocks) */
  const unsigned char *keep;
  int whole_unblocked; /* a table without blocks is read whole (for the cache to store it again
                          in blocks) */
  int partial_ok;      /* a cache entry: it may lack blocks */
} qc_read_req;

/* What a read for REQ of a table of N_K rows (B's blocks parsed) copies: *N_KEEP rows, those
 * flagged in *KEEP when not NULL; B's needed blocks (only those present) and whole set.  Returns
 * 1 when the entry lacks a block that holds a row wanted (then every row is read, KEEP ignored),
 * else 0. */
static int qc_plan_read(const qc_read_req *req, long long n_k, qc_blocks *b, int *n_keep_out,
                        const unsigned char **keep_out) {
  const unsigned char *keep = req->keep;
  int n_keep = req->n_k_max > 0 && req->n_k_max < n_k ? req->n_k_max : (int)n_k;
  if (req->n_k_max <= 0 || n_k < req->n_k_max)
    keep = NULL; /* rows will be added and the whole stored */
  if (b->block_rows == 0 && req->whole_unblocked) n_keep = (int)n_k, keep = NULL;
  if (b->block_rows > 0) qc_need_blocks(b, n_keep, keep);
  int lacks = 0;
  for (int i = 0; i < b->n_blocks; i++) lacks |= b->needed[i] && b->absent[i];
  if (lacks) {
    n_keep = (int)n_k, keep = NULL;
    qc_need_blocks(b, n_keep, NULL);
  }
  b->whole = b->block_rows > 0;
  for (int i = 0; i < b->n_blocks; i++) {
    if (b->absent[i]) b->needed[i] = 0;
    b->whole &= b->needed[i];
  }
  *n_keep_out = n_keep;
  *keep_out = keep;
  return lacks;
}

/* REQ->partial_ok: an entry lacking a block that holds a row wanted is read whole (all its rows,
 * keep ignored, those of absent blocks unset: row_loaded) and 2 returned, so that the cache
 * completes it without reading it again. */
static int qc_read_records_in(rctd_reader *r, const rctd_record_info *info, const qc_read_req *req,
                              qc_blocks *b, rctd_qtable_owned *out, char *err, size_t err_len) {
  const int sigma_value = req->sigma_value;
  const char *label = rctd_reader_label(r);
  memset(out, 0, sizeof *out);
  if (!info && qc_next(r, RCTD_QTABLE_REC_META, &info, err, err_len) != 0) return -1;
  if (strcmp(info->name, RCTD_QTABLE_REC_META) != 0) {
    qc_msg(err, err_len, "%s: expected record '%s'", label, RCTD_QTABLE_REC_META);
    return -1;
  }
  rctd_record meta;
  if (rctd_reader_load(r, &meta) != 0) {
    qc_msg(err, err_len, "%s", rctd_reader_error(r));
    return -1;
  }
  long long n_k;
  unsigned long want_crc;
  int partial = 0;
  int bad = qc_check_meta(&meta, sigma_value, label, &n_k, &want_crc,
                          req->partial_ok ? &partial : NULL, err, err_len);
  if (!bad && (qc_parse_blocks(&meta, n_k, partial, b) != 0 || (partial && !b->block_rows))) {
    qc_msg(err, err_len, "%s: malformed table header (blocks)", label);
    bad = 1;
  }
  rctd_record_free(&meta);
  if (bad) return -1;
  if (n_k < req->n_k_min) {
    qc_msg(err, err_len, "%s: table has %lld rows, %d needed", label, n_k, req->n_k_min);
    return -1;
  }
  int n_keep;
  const unsigned char *keep;
  const int lacks = qc_plan_read(req, n_k, b, &n_keep, &keep);
  if (qc_alloc(out, sigma_value, n_keep) != 0 || (keep && qc_keep_only(out, keep) != 0) ||
      (lacks && qc_mark_absent(out, b) != 0)) {
    rctd_qtable_owned_free(out);
    qc_msg(err, err_len, "%s: out of memory", label);
    return -1;
  }
  /* The X grid must be this build's, bit for bit. */
  if (qc_next(r, RCTD_QTABLE_REC_X, &info, err, err_len) != 0) goto fail;
  rctd_record x;
  if (rctd_reader_load(r, &x) != 0) {
    qc_msg(err, err_len, "%s", rctd_reader_error(r));
    goto fail;
  }
  int x_ok = x.kind == RCTD_DENSE && x.dtype == RCTD_F64 && x.rows * x.cols == RCTD_N_X &&
             memcmp(x.data, out->x_vals, QC_ROW_BYTES) == 0;
  rctd_record_free(&x);
  if (!x_ok) {
    qc_msg(err, err_len, "%s: table X grid differs from this build's", label);
    goto fail;
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  if (qc_next(r, RCTD_QTABLE_REC_Q, &info, err, err_len) != 0 ||
      qc_read_rows(r, info, (uint64_t)n_k, n_keep, keep, out->q_kx, &crc, b, err, err_len) != 0 ||
      qc_next(r, RCTD_QTABLE_REC_SQ, &info, err, err_len) != 0 ||
      qc_read_rows(r, info, (uint64_t)n_k, n_keep, keep, out->sq_kx, &crc, b, err, err_len) != 0)
    goto fail;
  if (b->block_rows > 0 ? !qc_blocks_ok(b, crc, want_crc) : crc != want_crc || partial) {
    qc_msg(err, err_len, "%s: table data fail their checksum", label);
    goto fail;
  }
  return lacks ? 2 : 0;
fail:
  rctd_qtable_owned_free(out);
  return -1;
}

/* rctd_qtable_read_records for REQ; *BLOCKED (when not NULL) tells whether the table had
 * blocks. */
static int qc_read_records(rctd_reader *r, const rctd_record_info *info, const qc_read_req *req,
                           int *blocked, rctd_qtable_owned *out, char *err, size_t err_len) {
  qc_blocks b = {0};
  int rc = qc_read_records_in(r, info, req, &b, out, err, err_len);
  if (blocked) *blocked = b.block_rows > 0;
  qc_blocks_free(&b);
  return rc;
}

int rctd_qtable_read_records(rctd_reader *r, const rctd_record_info *info, int sigma_value,
                             int n_k_min, int n_k_max, rctd_qtable_owned *out, char *err,
                             size_t err_len) {
  const qc_read_req req = {.sigma_value = sigma_value, .n_k_min = n_k_min, .n_k_max = n_k_max};
  return qc_read_records(r, info, &req, NULL, out, err, err_len);
}

/* ------------------------------------------------------------------ the cache */

int rctd_qtable_cache_dir_default(char *buf, size_t len) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  int n;
  if (xdg && xdg[0] == '/')
    n = snprintf(buf, len, "%s/rctd", xdg);
  else if (home && home[0])
    n = snprintf(buf, len, "%s/.cache/rctd", home);
  else
    return -1;
  return n > 0 && (size_t)n < len ? 0 : -1;
}

/* mkdir -p; 0 when the directory exists afterwards. */
static int qc_mkdirs(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -1;
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(path, 0777) != 0 && errno != EEXIST) return -1;
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  if (S_ISDIR(st.st_mode)) return 0;
  errno = ENOTDIR; /* (mkdir's EEXIST would say "File exists") */
  return -1;
}

/* What is at PATH: 0 nothing, 1 a regular file (or what lstat cannot tell: the open says), -1
 * something else (with the message).  The cache makes only regular files, so a FIFO there would
 * block a read, and a symbolic link would make the store replace the file it names. */
static int qc_entry_kind(const char *path, char *msg, size_t msg_len) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : 1;
  if (S_ISREG(st.st_mode)) return 1;
  qc_msg(msg, msg_len, "%s: not a regular file (the cache writes only regular files): remove it",
         path);
  return -1;
}

/* Loads a cache entry with up to n_k rows (all of an entry without blocks: *BLOCKED 0); 1
 * loaded, 0 absent, -1 unusable (why in msg), 2 a block holding a wanted row (below n_k, in
 * KEEP when not NULL) is absent: the entry read whole, the rows of absent blocks unset
 * (row_loaded). */
static int qc_load(const char *path, int sigma_value, int n_k, const unsigned char *keep,
                   rctd_qtable_owned *t, int *blocked, char *msg, size_t msg_len) {
  const int kind = qc_entry_kind(path, msg, msg_len);
  if (kind <= 0) return kind;
  rctd_reader *r = rctd_reader_open(path, msg, msg_len);
  if (!r) return -1;
  const qc_read_req req = {.sigma_value = sigma_value,
                           .n_k_min = 1,
                           .n_k_max = n_k,
                           .keep = keep,
                           .whole_unblocked = 1,
                           .partial_ok = 1};
  int rc = qc_read_records(r, NULL, &req, blocked, t, msg, msg_len);
  rctd_reader_close(r);
  return rc == 0 ? 1 : rc == 2 ? 2 : -1;
}

/* Stores T (HAVE: its rows set, or NULL for all) as the entry PATH, atomically. */
static int qc_store(const char *dir, const char *path, const rctd_qtable_owned *t,
                    const unsigned char *have, char *msg, size_t msg_len) {
  if (qc_mkdirs(dir) != 0) {
    qc_msg(msg, msg_len, "%s: cannot create directory: %s", dir, strerror(errno));
    return -1;
  }
  if (qc_entry_kind(path, msg, msg_len) < 0) return -1;
  const rctd_writer_opts wo = {.level = QC_ENTRY_LEVEL};
  rctd_writer *w = rctd_writer_open(path, &wo, msg, msg_len);
  if (!w) return -1;
  if (qc_write_records(w, t, QC_BLOCK_ROWS, have) != 0) {
    qc_msg(msg, msg_len, "%s", rctd_writer_error(w));
    rctd_writer_abort(w);
    return -1;
  }
  return rctd_writer_close(w, msg, msg_len);
}

/* "a..b, c..d" of the flagged rows (cut short with "..." when long). */
static void qc_row_ranges(const unsigned char *rows, int n_k, char *dst, size_t cap) {
  size_t at = 0;
  dst[0] = 0;
  for (int k = 0; k < n_k; k++) {
    if (!rows[k]) continue;
    int e = k;
    while (e + 1 < n_k && rows[e + 1]) e++;
    int n = snprintf(dst + at, cap - at, "%s%d..%d", at ? ", " : "", k, e);
    if (n < 0 || (size_t)n >= cap - at) {
      if (cap > 4) snprintf(dst + (at < cap - 4 ? at : cap - 4), 4, "...");
      return;
    }
    at += (size_t)n;
    k = e;
  }
}

/* A table being completed: the entry's rows (HAVE) and those to compute (TODO), n rows. */
typedef struct {
  rctd_qtable_owned t;
  int n;
  unsigned char *have, *todo;
} qc_fill;

static void qc_fill_free(qc_fill *f) {
  rctd_qtable_owned_free(&f->t);
  free(f->have);
  free(f->todo);
  memset(f, 0, sizeof *f);
}

/* Starts F from ENTRY (an entry read whole, taken over; NULL: none), grown to at least n_k
 * rows.  0 or -1 out of memory. */
static int qc_fill_start(qc_fill *f, rctd_qtable_owned *entry, int sigma_value, int n_k) {
  memset(f, 0, sizeof *f);
  if (entry) {
    f->t = *entry;
    memset(entry, 0, sizeof *entry);
  } else if (qc_alloc(&f->t, sigma_value, n_k) != 0) {
    return -1;
  }
  const int n_e = entry ? f->t.table.n_k : 0;
  f->n = n_e > n_k ? n_e : n_k;
  f->have = calloc((size_t)f->n, 1);
  f->todo = calloc((size_t)f->n, 1);
  if (!f->have || !f->todo) return -1;
  for (int k = 0; k < n_e; k++) f->have[k] = rctd_qtable_row_loaded(&f->t, k);
  qc_unpoison(&f->t);
  free(f->t.row_loaded);
  f->t.row_loaded = NULL;
  return f->n > f->t.table.n_k ? qc_resize(&f->t, f->n) : 0;
}

/* The rows to compute: every row lacking in a block (of the entry's) that holds a row wanted
 * (below n_k, flagged in KEEP when not NULL) or a row of the entry (a grown entry's last
 * block, which would be dropped otherwise); 0 when there is none. */
static int qc_fill_plan(qc_fill *f, int n_k, const unsigned char *keep) {
  int any = 0;
  for (int first = 0; first < f->n; first += QC_BLOCK_ROWS) {
    const int end = first + QC_BLOCK_ROWS < f->n ? first + QC_BLOCK_ROWS : f->n;
    int wanted = 0, some = 0;
    for (int k = first; k < end; k++) {
      wanted |= k < n_k && !f->have[k] && (!keep || keep[k]);
      some |= f->have[k];
    }
    for (int k = first; k < end && (wanted || some); k++) {
      f->todo[k] = !f->have[k];
      any |= f->todo[k];
    }
  }
  return any;
}

/* Computes F's rows to compute (all of them with the backend when the entry had none); then
 * rows still unset are zeroed (an absent block's bytes).  *ON_BACKEND: whether the backend
 * computed them.  0 or -1. */
static int qc_fill_compute(qc_fill *f, const rctd_qtable_opts *opts, int *on_backend) {
  int any_have = 0, rc;
  for (int k = 0; k < f->n; k++) any_have |= f->have[k];
  *on_backend = !any_have && opts->backend;
  if (*on_backend) {
    rc = opts->backend->qtable(opts->backend, f->t.sigma_c, f->n, f->t.q_kx, f->t.sq_kx);
    memset(f->todo, 1, (size_t)f->n);
  } else {
    rc = qc_compute_rows(f->t.sigma_c, 0, f->n, f->todo, opts->n_threads, f->t.q_kx, f->t.sq_kx);
  }
  for (int k = 0; k < f->n; k++) {
    f->have[k] |= f->todo[k];
    if (f->have[k]) continue;
    memset(f->t.q_kx + (size_t)k * RCTD_N_X, 0, QC_ROW_BYTES);
    memset(f->t.sq_kx + (size_t)k * RCTD_N_X, 0, QC_ROW_BYTES);
  }
  return rc;
}

/* F's table as the caller's: n_k rows, only KEEP's marked set when KEEP.  0, -1 out of memory
 * (the caller says so) or -2 with the cause in ERR. */
static int qc_fill_finish(qc_fill *f, int n_k, const unsigned char *keep, rctd_qtable_owned *out,
                          char *err, size_t err_len) {
  const int sigma_value = f->t.sigma_value;
  for (int k = 0; k < n_k; k++)
    if (!f->have[k] && (!keep || keep[k])) { /* (qc_fill_plan's promise) */
      qc_msg(err, err_len,
             "sigma %d: table row %d was not computed (an internal error): please "
             "report it",
             sigma_value, k);
      return -2;
    }
  if ((f->n > n_k && qc_resize(&f->t, n_k) != 0) || (keep && qc_keep_only(&f->t, keep) != 0))
    return -1;
  *out = f->t;
  memset(&f->t, 0, sizeof f->t);
  return 0;
}

int rctd_qtable_get(int sigma_value, int n_k, const rctd_qtable_opts *opts, rctd_qtable_owned *out,
                    char *note, size_t note_len, char *err, size_t err_len) {
  static const rctd_qtable_opts no_opts = {0};
  if (!opts) opts = &no_opts;
  if (note && note_len) note[0] = 0;
  memset(out, 0, sizeof *out);
  if (rctd_sigma_index(sigma_value) < 0) {
    qc_msg(err, err_len, "sigma %d is not on the grid (10..70 by 1, 72..200 by 2)", sigma_value);
    return -1;
  }
  if (n_k < 1 || n_k > RCTD_N_K_FULL) {
    qc_msg(err, err_len, "table rows %d out of range 1..%d", n_k, RCTD_N_K_FULL);
    return -1;
  }
  char dir[PATH_MAX] = "", path[PATH_MAX] = "", msg[RCTD_ERR_LEN] = "";
  if (opts->cache_dir)
    snprintf(dir, sizeof dir, "%s", opts->cache_dir);
  else if (rctd_qtable_cache_dir_default(dir, sizeof dir) != 0)
    dir[0] = 0;
  if (dir[0] && snprintf(path, sizeof path, "%s/qtable-v%d-s%03d.rctd", dir, RCTD_QTABLE_VERSION,
                         sigma_value) >= (int)sizeof path)
    dir[0] = path[0] = 0;

  int n_have = 0, loaded = 0, blocked = 1;
  if (path[0]) {
    loaded = qc_load(path, sigma_value, n_k, opts->keep_rows, out, &blocked, msg, sizeof msg);
    if (loaded == 1) n_have = out->table.n_k;
  }
  if (n_have >= n_k && !blocked) { /* an entry of the first layout: stored again in blocks */
    qc_store(dir, path, out, NULL, msg, sizeof msg); /* (the table was read: no matter if not) */
    if (n_have > n_k && qc_resize(out, n_k) != 0) goto oom;
    n_have = n_k;
  }
  if (n_have >= n_k) {
    if (note && note_len)
      qc_msg(note, note_len, "sigma %d: table from cache %s", sigma_value, path);
    return 0;
  }

  /* Rows or blocks lacking: the entry (read whole by qc_load then; a damaged one counts as
   * absent), the lacking blocks that hold a wanted row computed (each row on its own: the same
   * bits as a whole table's), the entry stored again with them. */
  char why[RCTD_ERR_LEN] = "";
  if (loaded < 0) snprintf(why, sizeof why, "%s", msg);
  qc_fill f;
  if (qc_fill_start(&f, loaded > 0 ? out : NULL, sigma_value, n_k) != 0) {
    qc_fill_free(&f);
    goto oom;
  }
  qc_fill_plan(&f, n_k, opts->keep_rows);
  int on_backend;
  const int rc = qc_fill_compute(&f, opts, &on_backend);
  char rows[160], why_s[RCTD_ERR_LEN + 64] = "";
  qc_row_ranges(f.todo, f.n, rows, sizeof rows);
  if (rc != 0) {
    qc_fill_free(&f);
    qc_msg(err, err_len, "sigma %d: computing table rows %s on %s failed%s", sigma_value, rows,
           on_backend ? opts->backend->name : "the CPU",
           on_backend ? ": try --device cpu" : " (out of memory)");
    return -1;
  }
  if (why[0]) snprintf(why_s, sizeof why_s, " (cache entry unusable: %s)", why);
  int stored = path[0] ? qc_store(dir, path, &f.t, f.have, msg, sizeof msg) : 1;
  const int finished = qc_fill_finish(&f, n_k, opts->keep_rows, out, err, err_len);
  qc_fill_free(&f);
  if (finished == -1) goto oom; /* (OUT still empty: qc_fill_start took the entry) */
  if (finished != 0) return -1;
  if (note && note_len && stored == 1)
    qc_msg(note, note_len, "sigma %d: table rows %s computed (no cache)", sigma_value, rows);
  else if (note && note_len && stored != 0)
    qc_msg(note, note_len, "sigma %d: table rows %s computed%s; not cached: %s", sigma_value, rows,
           why_s, msg);
  else if (note && note_len)
    qc_msg(note, note_len, "sigma %d: table rows %s computed%s, cached in %s", sigma_value, rows,
           why_s, path);
  return 0;
oom:
  rctd_qtable_owned_free(out);
  qc_msg(err, err_len, "sigma %d: out of memory for the likelihood table", sigma_value);
  return -1;
}
