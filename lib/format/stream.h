/* The rctd stream: a self-describing sequence of named, typed, chunked records (byte layout in
 * man/man5/rctd-stream.5).
 *
 * Reading:   rctd_reader_open -> loop rctd_reader_next -> per record either
 *            rctd_reader_chunk (chunk by chunk), rctd_reader_load (whole record),
 *            rctd_reader_copy (pass through undecoded) or rctd_reader_skip.
 * Writing:   rctd_writer_open -> per record rctd_write_begin, rctd_write_{rows,csr,strings,kv}
 *            ..., rctd_write_end (or a one-call rctd_write_dense/_string_list/_meta) ->
 *            rctd_writer_close (commits the atomic rename) or rctd_writer_abort.
 *
 * Errors: functions return 0 (or a count) on success and -1 on error; the message, already of
 * the form "FILE: record 'NAME': what is wrong", is in rctd_reader_error / rctd_writer_error.
 * A tool prints it as "rctd-TOOL: " + message (rctd_log_error in cli.h).
 *
 * Ordering rule: streams are read sequentially (pipes cannot seek).  Writers emit small records
 * a consumer needs in full (metadata, gene/type names, profiles, sigma) BEFORE large row-chunked
 * records (pixels); a record referenced as row/col names must come before the records that
 * reference it.  Readers keep what they need of small records in memory while they stream the
 * large ones. */
#ifndef RCTD_STREAM_H
#define RCTD_STREAM_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RCTD_STREAM_VERSION 1
#define RCTD_ROWS_UNKNOWN UINT64_MAX /* record total not known when writing starts */
#define RCTD_ERR_LEN 512             /* size for caller-provided error buffers */

typedef enum {
  RCTD_F64 = 1,
  RCTD_F32 = 2,
  RCTD_I32 = 3,
  RCTD_I64 = 4,
  RCTD_U8 = 5,
} rctd_dtype;

typedef enum {
  RCTD_DENSE = 1,   /* rows x cols array of dtype, row-major; ndim 1 = vector (cols == 1) */
  RCTD_CSR = 2,     /* rows x cols sparse: per row, int32 column indices and dtype values */
  RCTD_STRINGS = 3, /* list of UTF-8 strings, one per row */
  RCTD_META = 4,    /* key/value string pairs, one pair per row */
} rctd_kind;

size_t rctd_dtype_size(rctd_dtype dtype);      /* 0 for an invalid dtype */
const char *rctd_dtype_name(rctd_dtype dtype); /* "f64", "f32", "i32", "i64", "u8" */
const char *rctd_kind_name(rctd_kind kind);    /* "dense", "csr", "strings", "meta" */
int rctd_dtype_from_name(const char *name);    /* -1 when unknown */

/* What a record header says.  Strings are owned by the reader (valid until the next record). */
typedef struct {
  const char *name;
  rctd_kind kind;
  rctd_dtype dtype;      /* element type of dense data / CSR values; RCTD_U8 for strings/meta */
  int ndim;              /* dense: 1 (vector) or 2 (matrix); others 2 */
  uint64_t cols;         /* dense/CSR: columns; strings: 1; meta: 2 */
  uint64_t rows;         /* declared total, or RCTD_ROWS_UNKNOWN (then known at the end) */
  uint64_t chunk_rows;   /* rows per chunk the writer used (last chunk may be shorter) */
  const char *row_names; /* name of a strings record naming the rows, or NULL */
  const char *col_names; /* name of a strings record naming the columns, or NULL */
  size_t n_attrs;        /* free-form key/value attributes (row_names/col_names included) */
  const char *const *attr_keys;
  const char *const *attr_values;
} rctd_record_info;

/* Checks that a record is what a tool expects: KIND, DTYPE (-1 = any), COLS (0 = any).  0, or
 * -1 with "LABEL: record 'NAME': expected dense f64 with 19 columns, found csr i32 with 5000
 * columns" in err. */
int rctd_record_check(const rctd_record_info *info, rctd_kind kind, int dtype, uint64_t cols,
                      const char *label, char *err, size_t err_len);

/* Value of attribute KEY of a record, or NULL. */
const char *rctd_record_attr(const rctd_record_info *info, const char *key);

/* One decoded chunk.  Pointers are owned by the reader and valid until the next call. */
typedef struct {
  uint64_t first_row; /* index of this chunk's first row in the record */
  uint64_t rows;      /* rows in this chunk */
  /* RCTD_DENSE: rows * cols elements of info->dtype, row-major. */
  const void *data;
  /* RCTD_CSR: indptr[rows + 1] (indptr[0] == 0, local to the chunk), indices[nnz] (column
   * numbers, 0-based, ascending within a row is NOT required), values[nnz] of info->dtype. */
  const int64_t *indptr;
  const int32_t *indices;
  const void *values;
  uint64_t nnz;
  /* RCTD_STRINGS: strings[rows]; RCTD_META: strings[2 * rows] = key0, value0, key1, ... */
  const char *const *strings;
} rctd_chunk;

/* A whole record in memory (rctd_reader_load).  Owns everything; free with rctd_record_free. */
typedef struct {
  char *name;
  rctd_kind kind;
  rctd_dtype dtype;
  int ndim;
  uint64_t rows, cols;
  char *row_names, *col_names; /* referenced strings records, or NULL */
  size_t n_attrs;
  char **attr_keys, **attr_values;
  void *data;      /* dense: rows * cols of dtype */
  int64_t *indptr; /* CSR: rows + 1, global */
  int32_t *indices;
  void *values;
  uint64_t nnz;
  char **strings; /* strings: rows; meta: 2 * rows (key, value, ...) */
} rctd_record;

void rctd_record_free(rctd_record *rec);
/* Meta records: value for KEY (last one wins), or NULL. */
const char *rctd_record_meta_get(const rctd_record *rec, const char *key);
/* Strings records: index of S, or -1 (linear scan). */
int64_t rctd_record_string_index(const rctd_record *rec, const char *s);

/* ---------------------------------------------------------------- reading */
typedef struct rctd_reader rctd_reader;
typedef struct rctd_writer rctd_writer;

/* Opens PATH ("-" = stdin) and checks the stream header.  NULL on error (message in err). */
rctd_reader *rctd_reader_open(const char *path, char *err, size_t err_len);
/* Opens PATH (a file) but names it LABEL in messages (a temporary copy of an input). */
rctd_reader *rctd_reader_open_as(const char *path, const char *label, char *err, size_t err_len);
/* Reads from an open FILE (not closed by rctd_reader_close); LABEL names it in messages. */
rctd_reader *rctd_reader_fopen(FILE *file, const char *label, char *err, size_t err_len);
void rctd_reader_close(rctd_reader *r);
const char *rctd_reader_error(const rctd_reader *r);
const char *rctd_reader_label(const rctd_reader *r); /* the file name used in messages */

/* Advances to the next record header (finishing the current record without decoding if it was
 * not read to its end).  Returns 1 and sets *info, 0 at a well-formed end of stream, -1 on
 * error (including a stream cut before its end record). */
int rctd_reader_next(rctd_reader *r, const rctd_record_info **info);
/* Next chunk of the current record: 1 and fills *chunk; 0 at the end of the record (the total
 * row count was checked; rctd_reader_rows_read gives it); -1 on error. */
int rctd_reader_chunk(rctd_reader *r, rctd_chunk *chunk);
uint64_t rctd_reader_rows_read(const rctd_reader *r); /* rows of the current record so far */
/* Skips the next chunk of the current record without decompressing it: its block header is
 * checked, its data are not (for a reader that knows it needs none of its rows, e.g. the
 * likelihood-table cache's blocks).  1 and *ROWS, 0 at the end of the record, -1 on error. */
int rctd_reader_chunk_skip(rctd_reader *r, uint64_t *rows);
/* Skips the rest of the current record (frames are not decompressed). */
int rctd_reader_skip(rctd_reader *r);
/* Copies the current record, from its header, to W without decoding its chunks.  Must be called
 * before the first rctd_reader_chunk of the record. */
int rctd_reader_copy(rctd_reader *r, rctd_writer *w);
/* Reads the rest of the current record into REC (no chunk may have been read yet). */
int rctd_reader_load(rctd_reader *r, rctd_record *rec);
/* Advances to the record named NAME (records before it are copied to PASS if not NULL, else
 * skipped).  1 found (positioned as after rctd_reader_next), 0 not found before the end, -1. */
int rctd_reader_find(rctd_reader *r, const char *name, rctd_writer *pass,
                     const rctd_record_info **info);
/* Convenience: opens PATH, loads the record NAME, closes.  0, or -1 with a message in err. */
int rctd_load_record(const char *path, const char *name, rctd_record *rec, char *err,
                     size_t err_len);

/* ---------------------------------------------------------------- writing */
typedef struct {
  uint64_t chunk_rows; /* default rows per chunk; 0 = automatic (about 1 MiB of raw data) */
  int level;           /* zstd level; 0 = default (3) */
} rctd_writer_opts;

/* Opens PATH for writing ("-" = stdout).  A file is written under a temporary name in the same
 * directory and renamed by rctd_writer_close; on abort, error exit or SIGINT/SIGTERM the
 * temporary file is removed (see rctd_out_open in cli.h).  OPTS may be NULL. */
rctd_writer *rctd_writer_open(const char *path, const rctd_writer_opts *opts, char *err,
                              size_t err_len);
/* Writes to an open FILE (not closed, not renamed); LABEL names it in messages. */
rctd_writer *rctd_writer_fopen(FILE *file, const char *label, const rctd_writer_opts *opts,
                               char *err, size_t err_len);
/* Writes the end record, flushes, commits the file.  Frees W.  0 or -1 (message in err). */
int rctd_writer_close(rctd_writer *w, char *err, size_t err_len);
/* Discards the output (removes the temporary file) and frees W. */
void rctd_writer_abort(rctd_writer *w);
const char *rctd_writer_error(const rctd_writer *w);

/* Header of a record to write.  Unused fields zero. */
typedef struct {
  const char *name;
  rctd_kind kind;
  rctd_dtype dtype;      /* dense data / CSR values; ignored for strings and meta */
  int ndim;              /* dense: 1 (vector, cols must be 1) or 2; 0 means 2 */
  uint64_t cols;         /* dense and CSR */
  uint64_t rows;         /* total if known, else RCTD_ROWS_UNKNOWN (0 is a valid empty total) */
  uint64_t chunk_rows;   /* 0 = the writer's default */
  const char *row_names; /* optional reference to a strings record written earlier */
  const char *col_names;
  size_t n_attrs; /* extra key/value attributes */
  const char *const *attr_keys;
  const char *const *attr_values;
} rctd_record_spec;

int rctd_write_begin(rctd_writer *w, const rctd_record_spec *spec);
/* Dense: appends ROWS rows (rows * cols elements of the record's dtype). */
int rctd_write_rows(rctd_writer *w, const void *data, uint64_t rows);
/* CSR: appends ROWS rows; indptr[rows + 1] indexes indices/values (indptr[0] need not be 0). */
int rctd_write_csr(rctd_writer *w, const int64_t *indptr, const int32_t *indices,
                   const void *values, uint64_t rows);
/* Strings: appends N strings. */
int rctd_write_strings(rctd_writer *w, const char *const *strings, uint64_t n);
/* Meta: appends one key/value pair. */
int rctd_write_kv(rctd_writer *w, const char *key, const char *value);
/* Flushes the last chunk and writes the end-of-record marker with the total row count. */
int rctd_write_end(rctd_writer *w);

/* One-call writers for small records. */
int rctd_write_dense(rctd_writer *w, const char *name, rctd_dtype dtype, uint64_t rows,
                     uint64_t cols, const void *data, const char *row_names, const char *col_names);
/* The same in chunks of CHUNK_ROWS rows (0: the writer's default). */
int rctd_write_dense_chunked(rctd_writer *w, const char *name, rctd_dtype dtype, uint64_t rows,
                             uint64_t cols, const void *data, const char *row_names,
                             const char *col_names, uint64_t chunk_rows);
int rctd_write_vector(rctd_writer *w, const char *name, rctd_dtype dtype, uint64_t n,
                      const void *data, const char *names);
int rctd_write_string_list(rctd_writer *w, const char *name, const char *const *strings,
                           uint64_t n);
int rctd_write_meta(rctd_writer *w, const char *name, const char *const *keys,
                    const char *const *values, size_t n);
/* Writes a loaded record back out (e.g. after modifying it). */
int rctd_write_record(rctd_writer *w, const rctd_record *rec);

#endif
