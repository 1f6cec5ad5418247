/* The rctd stream format: writer, reader, pass-through.  Byte layout: man/man5/rctd-stream.5. */
#include "stream.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#include "atomic_out.h"
#include "error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rctd streams store array data little-endian; this build assumes a little-endian host"
#endif

#define STREAM_MAGIC "RCTDSTRM"
#define BLOCK_BYTES 32
#define MAX_HEADER_RAW ((uint64_t)1 << 26)
#define MAX_CHUNK_RAW ((uint64_t)1 << 36)
#define MAX_NAME_BYTES 4096
#define AUTO_DENSE_BYTES ((uint64_t)1 << 20)
#define AUTO_CSR_ROWS 1024
#define AUTO_STRING_ROWS 65536
#define ZSTD_FRAME_MAGIC 0xFD2FB528u

/* ------------------------------------------------------------------ small helpers */

static const char *const tag_header = "RHDR", *const tag_chunk = "CHNK", *const tag_end = "REND",
                         *const tag_stream_end = "SEND";

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Grows *buf to at least need bytes.  0 or -1. */
static int stream_reserve(void *bufp, size_t *cap, size_t need) {
  void **buf = bufp;
  if (need <= *cap && *buf) return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n = n > SIZE_MAX / 2 ? need : 2 * n;
  void *p = realloc(*buf, n);
  if (!p) return -1;
  *buf = p;
  *cap = n;
  return 0;
}

/* a * b with overflow detection: 0 ok, -1 overflow. */
static int mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  if (a && b > UINT64_MAX / a) return -1;
  *out = a * b;
  return 0;
}

size_t rctd_dtype_size(rctd_dtype dtype) {
  switch (dtype) {
    case RCTD_F64:
      return 8;
    case RCTD_F32:
      return 4;
    case RCTD_I32:
      return 4;
    case RCTD_I64:
      return 8;
    case RCTD_U8:
      return 1;
  }
  return 0;
}

const char *rctd_dtype_name(rctd_dtype dtype) {
  switch (dtype) {
    case RCTD_F64:
      return "f64";
    case RCTD_F32:
      return "f32";
    case RCTD_I32:
      return "i32";
    case RCTD_I64:
      return "i64";
    case RCTD_U8:
      return "u8";
  }
  return "?";
}

const char *rctd_kind_name(rctd_kind kind) {
  switch (kind) {
    case RCTD_DENSE:
      return "dense";
    case RCTD_CSR:
      return "csr";
    case RCTD_STRINGS:
      return "strings";
    case RCTD_META:
      return "meta";
  }
  return "?";
}

int rctd_dtype_from_name(const char *name) {
  static const rctd_dtype all[] = {RCTD_F64, RCTD_F32, RCTD_I32, RCTD_I64, RCTD_U8};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (strcmp(name, rctd_dtype_name(all[i])) == 0) return (int)all[i];
  return -1;
}

static int kind_valid(uint32_t kind) {
  return kind >= RCTD_DENSE && kind <= RCTD_META;
}
static int dtype_valid(uint32_t dtype) {
  return dtype >= RCTD_F64 && dtype <= RCTD_U8;
}

/* Block header: tag[4] crc32[4] a[8] b[8] c[8]; crc over tag and a, b, c. */
static uint32_t block_crc(const unsigned char *block) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, block, 4);
  crc = crc32(crc, block + 8, BLOCK_BYTES - 8);
  return (uint32_t)crc;
}

static void block_pack(unsigned char *block, const char *tag, uint64_t a, uint64_t b, uint64_t c) {
  memcpy(block, tag, 4);
  put_u64(block + 8, a);
  put_u64(block + 16, b);
  put_u64(block + 24, c);
  put_u32(block + 4, block_crc(block));
}

/* Offset of CSR values in a chunk payload: indptr, indices, zero padding to 8 bytes. */
static uint64_t csr_values_offset(uint64_t rows, uint64_t nnz) {
  uint64_t off = 8 * (rows + 1) + 4 * nnz;
  return (off + 7) & ~(uint64_t)7;
}

/* ------------------------------------------------------------------ record metadata */

const char *rctd_record_attr(const rctd_record_info *info, const char *key) {
  for (size_t i = 0; i < info->n_attrs; i++)
    if (strcmp(info->attr_keys[i], key) == 0) return info->attr_values[i];
  return NULL;
}

static void describe_type(char *buf, size_t len, rctd_kind kind, int dtype, uint64_t cols) {
  int with_dtype = dtype >= 0 && (kind == RCTD_DENSE || kind == RCTD_CSR);
  int with_cols = cols && (kind == RCTD_DENSE || kind == RCTD_CSR);
  snprintf(buf, len, "%s%s%s%s%.0llu%s", rctd_kind_name(kind), with_dtype ? " " : "",
           with_dtype ? rctd_dtype_name((rctd_dtype)dtype) : "", with_cols ? " with " : "",
           with_cols ? (unsigned long long)cols : 0ull, with_cols ? " columns" : "");
}

int rctd_record_check(const rctd_record_info *info, rctd_kind kind, int dtype, uint64_t cols,
                      const char *label, char *err, size_t err_len) {
  int kind_ok = info->kind == kind;
  int dtype_ok =
      dtype < 0 || kind == RCTD_STRINGS || kind == RCTD_META || (int)info->dtype == dtype;
  int cols_ok = cols == 0 || info->cols == cols;
  if (kind_ok && dtype_ok && cols_ok) return 0;
  char want[96], found[96];
  describe_type(want, sizeof want, kind, dtype, cols);
  describe_type(found, sizeof found, info->kind, (int)info->dtype, cols ? info->cols : 0);
  return rctd_fail(err, err_len, "%s: record '%s': expected %s, found %s", label, info->name, want,
                   found);
}

void rctd_record_free(rctd_record *rec) {
  if (!rec) return;
  free(rec->name);
  free(rec->row_names);
  free(rec->col_names);
  for (size_t i = 0; i < rec->n_attrs; i++) {
    free(rec->attr_keys[i]);
    free(rec->attr_values[i]);
  }
  free(rec->attr_keys);
  free(rec->attr_values);
  free(rec->data);
  free(rec->indptr);
  free(rec->indices);
  free(rec->values);
  if (rec->strings) {
    uint64_t n = rec->kind == RCTD_META ? 2 * rec->rows : rec->rows;
    for (uint64_t i = 0; i < n; i++) free(rec->strings[i]);
  }
  free(rec->strings);
  memset(rec, 0, sizeof *rec);
}

const char *rctd_record_meta_get(const rctd_record *rec, const char *key) {
  if (rec->kind != RCTD_META) return NULL;
  const char *found = NULL;
  for (uint64_t i = 0; i < rec->rows; i++)
    if (strcmp(rec->strings[2 * i], key) == 0) found = rec->strings[2 * i + 1];
  return found;
}

int64_t rctd_record_string_index(const rctd_record *rec, const char *s) {
  if (rec->kind != RCTD_STRINGS) return -1;
  for (uint64_t i = 0; i < rec->rows; i++)
    if (strcmp(rec->strings[i], s) == 0) return (int64_t)i;
  return -1;
}

/* ------------------------------------------------------------------ writer */

struct rctd_writer {
  FILE *file;
  int atomic; /* file came from rctd_out_open */
  int failed;
  char label[256];
  char err[RCTD_ERR_LEN];
  rctd_writer_opts opts;
  ZSTD_CCtx *cctx;
  uint64_t n_records;
  /* current record */
  int in_record;
  char name[MAX_NAME_BYTES + 1];
  rctd_kind kind;
  rctd_dtype dtype;
  uint64_t cols, declared_rows, chunk_rows, rows_total, chunks;
  /* current chunk */
  uint64_t chunk_rows_held;
  unsigned char *buf; /* dense rows / strings bytes / CSR values */
  size_t buf_len, buf_cap;
  int64_t *csr_indptr; /* rows + 1 */
  size_t csr_indptr_cap;
  int32_t *csr_indices;
  size_t csr_indices_cap;
  uint64_t csr_nnz;
  unsigned char *comp;
  size_t comp_cap;
};

static int writer_fail(rctd_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int writer_fail(rctd_writer *w, const char *fmt, ...) {
  char msg[RCTD_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (w->in_record)
    rctd_fail(w->err, sizeof w->err, "%s: record '%s': %s", w->label, w->name, msg);
  else
    rctd_fail(w->err, sizeof w->err, "%s: %s", w->label, msg);
  w->failed = 1;
  return -1;
}

static int writer_put(rctd_writer *w, const void *data, size_t n) {
  if (n && fwrite(data, 1, n, w->file) != n)
    return writer_fail(w, "write failed: %s", strerror(errno ? errno : EIO));
  return 0;
}

static rctd_writer *writer_new(FILE *file, const char *label, const rctd_writer_opts *opts,
                               char *err, size_t err_len) {
  rctd_writer *w = calloc(1, sizeof *w);
  if (!w) {
    snprintf(err, err_len, "%s: out of memory", label);
    return NULL;
  }
  w->file = file;
  snprintf(w->label, sizeof w->label, "%s", label);
  if (opts) w->opts = *opts;
  if (w->opts.level == 0) w->opts.level = 3;
  w->cctx = ZSTD_createCCtx();
  if (!w->cctx) {
    snprintf(err, err_len, "%s: out of memory", label);
    free(w);
    return NULL;
  }
  ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->opts.level);
  ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
  unsigned char header[16];
  memcpy(header, STREAM_MAGIC, 8);
  put_u32(header + 8, RCTD_STREAM_VERSION);
  put_u32(header + 12, 0);
  if (writer_put(w, header, sizeof header) != 0) {
    snprintf(err, err_len, "%s", w->err);
    ZSTD_freeCCtx(w->cctx);
    free(w);
    return NULL;
  }
  return w;
}

rctd_writer *rctd_writer_fopen(FILE *file, const char *label, const rctd_writer_opts *opts,
                               char *err, size_t err_len) {
  return writer_new(file, label, opts, err, err_len);
}

rctd_writer *rctd_writer_open(const char *path, const rctd_writer_opts *opts, char *err,
                              size_t err_len) {
  FILE *file = rctd_out_open(path, err, err_len);
  if (!file) return NULL;
  const char *label = strcmp(path, "-") == 0 ? "stdout" : path;
  rctd_writer *w = writer_new(file, label, opts, err, err_len);
  if (!w) {
    rctd_out_abort(file);
    return NULL;
  }
  w->atomic = 1;
  return w;
}

static void writer_free(rctd_writer *w) {
  ZSTD_freeCCtx(w->cctx);
  free(w->buf);
  free(w->csr_indptr);
  free(w->csr_indices);
  free(w->comp);
  free(w);
}

void rctd_writer_abort(rctd_writer *w) {
  if (!w) return;
  if (w->atomic) rctd_out_abort(w->file);
  writer_free(w);
}

const char *rctd_writer_error(const rctd_writer *w) {
  return w->err;
}

int rctd_writer_close(rctd_writer *w, char *err, size_t err_len) {
  if (!w->failed && w->in_record) writer_fail(w, "closed before the record was ended");
  if (!w->failed) {
    unsigned char block[BLOCK_BYTES];
    block_pack(block, tag_stream_end, w->n_records, 0, 0);
    writer_put(w, block, sizeof block);
  }
  if (!w->failed && fflush(w->file) != 0)
    writer_fail(w, "write failed: %s", strerror(errno ? errno : EIO));
  if (w->failed) {
    snprintf(err, err_len, "%s", w->err);
    rctd_writer_abort(w);
    return -1;
  }
  int rc = 0;
  if (w->atomic && rctd_out_commit(w->file, err, err_len) != 0) rc = -1;
  writer_free(w);
  return rc;
}

/* Compresses the concatenation of PARTS into one zstd frame (with content size and checksum)
 * in w->comp and writes it after a block header TAG(a, raw size, compressed size). */
static int writer_emit_frame(rctd_writer *w, const char *tag, uint64_t a, const void *const *parts,
                             const size_t *lens, int n_parts) {
  uint64_t raw = 0;
  for (int i = 0; i < n_parts; i++) raw += lens[i];
  size_t bound = ZSTD_compressBound((size_t)raw);
  if (stream_reserve(&w->comp, &w->comp_cap, bound) != 0) return writer_fail(w, "out of memory");
  ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_only);
  ZSTD_CCtx_setPledgedSrcSize(w->cctx, raw);
  ZSTD_outBuffer out = {w->comp, bound, 0};
  for (int i = 0; i <= n_parts; i++) {
    int last = i == n_parts;
    ZSTD_inBuffer in = {last ? NULL : parts[i], last ? 0 : lens[i], 0};
    ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      size_t left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
      if (ZSTD_isError(left)) return writer_fail(w, "zstd: %s", ZSTD_getErrorName(left));
      if (last ? left == 0 : in.pos == in.size) break;
      if (out.pos == out.size) return writer_fail(w, "zstd: output larger than its bound");
    }
  }
  unsigned char block[BLOCK_BYTES];
  block_pack(block, tag, a, raw, out.pos);
  if (writer_put(w, block, sizeof block) != 0) return -1;
  return writer_put(w, w->comp, out.pos);
}

static int writer_flush_chunk(rctd_writer *w) {
  if (w->chunk_rows_held == 0) return 0;
  static const unsigned char zeros[8] = {0};
  const void *parts[4];
  size_t lens[4];
  int n = 0;
  if (w->kind == RCTD_CSR) {
    uint64_t rows = w->chunk_rows_held;
    uint64_t idx_end = 8 * (rows + 1) + 4 * w->csr_nnz;
    parts[n] = w->csr_indptr, lens[n++] = 8 * (rows + 1);
    parts[n] = w->csr_indices, lens[n++] = 4 * w->csr_nnz;
    parts[n] = zeros, lens[n++] = csr_values_offset(rows, w->csr_nnz) - idx_end;
    parts[n] = w->buf, lens[n++] = w->buf_len;
  } else {
    parts[n] = w->buf, lens[n++] = w->buf_len;
  }
  if (writer_emit_frame(w, tag_chunk, w->chunk_rows_held, parts, lens, n) != 0) return -1;
  w->chunks++;
  w->chunk_rows_held = 0;
  w->buf_len = 0;
  w->csr_nnz = 0;
  return 0;
}

static int writer_usable(rctd_writer *w, rctd_kind kind, const char *what) {
  if (w->failed) return -1;
  if (!w->in_record) return writer_fail(w, "%s outside a record (call rctd_write_begin)", what);
  if (w->kind != kind) return writer_fail(w, "%s on a %s record", what, rctd_kind_name(w->kind));
  return 0;
}

/* Counts rows toward the declared total. */
static int writer_count_rows(rctd_writer *w, uint64_t rows) {
  if (w->declared_rows != RCTD_ROWS_UNKNOWN && w->rows_total + rows > w->declared_rows)
    return writer_fail(w, "more rows written than the %llu declared",
                       (unsigned long long)w->declared_rows);
  w->rows_total += rows;
  return 0;
}

static uint64_t auto_chunk_rows(rctd_kind kind, uint64_t row_bytes) {
  if (kind == RCTD_DENSE) {
    uint64_t rows = AUTO_DENSE_BYTES / (row_bytes ? row_bytes : 1);
    return rows < 1 ? 1 : rows > (1u << 20) ? (1u << 20) : rows;
  }
  return kind == RCTD_CSR ? AUTO_CSR_ROWS : AUTO_STRING_ROWS;
}

/* Serialises the record header payload into w->buf (which is free between records). */
static int writer_header_payload(rctd_writer *w, const rctd_record_spec *spec, int ndim,
                                 const char *const *keys, const char *const *values,
                                 size_t n_attrs) {
  size_t name_len = strlen(spec->name);
  size_t need = 48 + name_len + 4;
  for (size_t i = 0; i < n_attrs; i++) need += 8 + strlen(keys[i]) + strlen(values[i]);
  if (need > MAX_HEADER_RAW) return writer_fail(w, "record header too large");
  if (stream_reserve(&w->buf, &w->buf_cap, need) != 0) return writer_fail(w, "out of memory");
  unsigned char *p = w->buf;
  put_u32(p, w->kind);
  put_u32(p + 4, w->dtype);
  put_u32(p + 8, (uint32_t)ndim);
  put_u32(p + 12, 0);
  put_u64(p + 16, w->cols);
  put_u64(p + 24, w->declared_rows);
  put_u64(p + 32, w->chunk_rows);
  put_u32(p + 40, (uint32_t)name_len);
  memcpy(p + 44, spec->name, name_len);
  p += 44 + name_len;
  put_u32(p, (uint32_t)n_attrs);
  p += 4;
  for (size_t i = 0; i < n_attrs; i++) {
    size_t kl = strlen(keys[i]), vl = strlen(values[i]);
    put_u32(p, (uint32_t)kl);
    memcpy(p + 4, keys[i], kl);
    p += 4 + kl;
    put_u32(p, (uint32_t)vl);
    memcpy(p + 4, values[i], vl);
    p += 4 + vl;
  }
  w->buf_len = (size_t)(p - w->buf);
  return 0;
}

int rctd_write_begin(rctd_writer *w, const rctd_record_spec *spec) {
  if (w->failed) return -1;
  if (w->in_record) return writer_fail(w, "record '%s' not ended before the next", w->name);
  if (!spec->name || !*spec->name || strlen(spec->name) > MAX_NAME_BYTES)
    return writer_fail(w, "record name empty or longer than %d bytes", MAX_NAME_BYTES);
  if (!kind_valid(spec->kind)) return writer_fail(w, "record '%s': invalid kind", spec->name);
  rctd_dtype dtype = spec->kind == RCTD_STRINGS || spec->kind == RCTD_META ? RCTD_U8 : spec->dtype;
  if (!dtype_valid(dtype)) return writer_fail(w, "record '%s': invalid dtype", spec->name);
  int ndim = spec->kind == RCTD_DENSE && spec->ndim == 1 ? 1 : 2;
  uint64_t cols = spec->kind == RCTD_STRINGS ? 1 : spec->kind == RCTD_META ? 2 : spec->cols;
  if (ndim == 1 && cols != 1)
    return writer_fail(w, "record '%s': a vector has one column", spec->name);
  if (spec->kind == RCTD_CSR && cols > INT32_MAX)
    return writer_fail(w, "record '%s': too many columns for int32 indices", spec->name);
  snprintf(w->name, sizeof w->name, "%s", spec->name);
  w->kind = spec->kind;
  w->dtype = dtype;
  w->cols = cols;
  w->declared_rows = spec->rows;
  uint64_t row_bytes = 0;
  if (spec->kind == RCTD_DENSE && mul_u64(cols, rctd_dtype_size(dtype), &row_bytes) != 0)
    return writer_fail(w, "record '%s': too many columns", spec->name);
  w->chunk_rows = spec->chunk_rows     ? spec->chunk_rows
                  : w->opts.chunk_rows ? w->opts.chunk_rows
                                       : auto_chunk_rows(spec->kind, row_bytes);
  uint64_t chunk_bytes;
  if (mul_u64(w->chunk_rows, row_bytes, &chunk_bytes) != 0 || chunk_bytes > MAX_CHUNK_RAW)
    return writer_fail(w, "record '%s': chunk of %llu rows too large", spec->name,
                       (unsigned long long)w->chunk_rows);
  /* Attributes: row_names / col_names first, then the caller's. */
  size_t n_attrs = spec->n_attrs + (spec->row_names != NULL) + (spec->col_names != NULL);
  const char **keys = calloc(n_attrs + 1, sizeof *keys);
  const char **values = calloc(n_attrs + 1, sizeof *values);
  if (!keys || !values) {
    free(keys);
    free(values);
    return writer_fail(w, "out of memory");
  }
  size_t k = 0;
  if (spec->row_names) keys[k] = "row_names", values[k++] = spec->row_names;
  if (spec->col_names) keys[k] = "col_names", values[k++] = spec->col_names;
  for (size_t i = 0; i < spec->n_attrs; i++)
    keys[k] = spec->attr_keys[i], values[k++] = spec->attr_values[i];
  int rc = writer_header_payload(w, spec, ndim, keys, values, n_attrs);
  free(keys);
  free(values);
  if (rc != 0) return -1;
  const void *parts[1] = {w->buf};
  size_t lens[1] = {w->buf_len};
  w->in_record = 1;
  if (writer_emit_frame(w, tag_header, 0, parts, lens, 1) != 0) return -1;
  w->rows_total = w->chunks = w->chunk_rows_held = 0;
  w->buf_len = 0;
  w->csr_nnz = 0;
  return 0;
}

int rctd_write_rows(rctd_writer *w, const void *data, uint64_t rows) {
  if (writer_usable(w, RCTD_DENSE, "rctd_write_rows") != 0) return -1;
  if (writer_count_rows(w, rows) != 0) return -1;
  size_t row_bytes = (size_t)(w->cols * rctd_dtype_size(w->dtype));
  const unsigned char *src = data;
  while (rows > 0) {
    /* Whole chunks straight from the caller's array, without a copy. */
    if (w->chunk_rows_held == 0 && rows >= w->chunk_rows) {
      const void *parts[1] = {src};
      size_t lens[1] = {(size_t)w->chunk_rows * row_bytes};
      if (writer_emit_frame(w, tag_chunk, w->chunk_rows, parts, lens, 1) != 0) return -1;
      w->chunks++;
      src += lens[0];
      rows -= w->chunk_rows;
      continue;
    }
    uint64_t take = w->chunk_rows - w->chunk_rows_held;
    if (take > rows) take = rows;
    size_t bytes = (size_t)take * row_bytes;
    if (stream_reserve(&w->buf, &w->buf_cap, w->buf_len + bytes) != 0)
      return writer_fail(w, "out of memory");
    if (bytes) memcpy(w->buf + w->buf_len, src, bytes);
    w->buf_len += bytes;
    w->chunk_rows_held += take;
    src += bytes;
    rows -= take;
    if (w->chunk_rows_held == w->chunk_rows && writer_flush_chunk(w) != 0) return -1;
  }
  return 0;
}

int rctd_write_csr(rctd_writer *w, const int64_t *indptr, const int32_t *indices,
                   const void *values, uint64_t rows) {
  if (writer_usable(w, RCTD_CSR, "rctd_write_csr") != 0) return -1;
  if (writer_count_rows(w, rows) != 0) return -1;
  size_t vsize = rctd_dtype_size(w->dtype);
  for (uint64_t i = 0; i < rows; i++) {
    int64_t begin = indptr[i], end = indptr[i + 1];
    if (end < begin) return writer_fail(w, "decreasing indptr at row %llu", (unsigned long long)i);
    uint64_t n = (uint64_t)(end - begin);
    for (uint64_t j = 0; j < n; j++)
      if (indices[begin + j] < 0 || (uint64_t)indices[begin + j] >= w->cols)
        return writer_fail(w, "column index %d out of range [0, %llu)", indices[begin + j],
                           (unsigned long long)w->cols);
    uint64_t held = w->chunk_rows_held;
    if (stream_reserve(&w->csr_indptr, &w->csr_indptr_cap, 8 * (held + 2)) != 0 ||
        stream_reserve(&w->csr_indices, &w->csr_indices_cap, 4 * (w->csr_nnz + n)) != 0 ||
        stream_reserve(&w->buf, &w->buf_cap, vsize * (w->csr_nnz + n)) != 0)
      return writer_fail(w, "out of memory");
    if (held == 0) w->csr_indptr[0] = 0;
    memcpy(w->csr_indices + w->csr_nnz, indices + begin, 4 * n);
    memcpy(w->buf + vsize * w->csr_nnz, (const unsigned char *)values + vsize * (uint64_t)begin,
           vsize * n);
    w->csr_nnz += n;
    w->buf_len = vsize * w->csr_nnz;
    w->csr_indptr[held + 1] = (int64_t)w->csr_nnz;
    w->chunk_rows_held++;
    if (w->chunk_rows_held == w->chunk_rows && writer_flush_chunk(w) != 0) return -1;
  }
  return 0;
}

/* Appends N NUL-terminated strings as one row. */
static int writer_string_row(rctd_writer *w, const char *const *strs, int n) {
  size_t need = w->buf_len;
  for (int i = 0; i < n; i++) need += strlen(strs[i]) + 1;
  if (stream_reserve(&w->buf, &w->buf_cap, need) != 0) return writer_fail(w, "out of memory");
  for (int i = 0; i < n; i++) {
    size_t len = strlen(strs[i]) + 1;
    memcpy(w->buf + w->buf_len, strs[i], len);
    w->buf_len += len;
  }
  w->chunk_rows_held++;
  if (w->chunk_rows_held == w->chunk_rows) return writer_flush_chunk(w);
  return 0;
}

int rctd_write_strings(rctd_writer *w, const char *const *strings, uint64_t n) {
  if (writer_usable(w, RCTD_STRINGS, "rctd_write_strings") != 0) return -1;
  if (writer_count_rows(w, n) != 0) return -1;
  for (uint64_t i = 0; i < n; i++)
    if (writer_string_row(w, strings + i, 1) != 0) return -1;
  return 0;
}

int rctd_write_kv(rctd_writer *w, const char *key, const char *value) {
  if (writer_usable(w, RCTD_META, "rctd_write_kv") != 0) return -1;
  if (writer_count_rows(w, 1) != 0) return -1;
  const char *pair[2] = {key, value};
  return writer_string_row(w, pair, 2);
}

int rctd_write_end(rctd_writer *w) {
  if (w->failed) return -1;
  if (!w->in_record) return writer_fail(w, "rctd_write_end outside a record");
  if (writer_flush_chunk(w) != 0) return -1;
  if (w->declared_rows != RCTD_ROWS_UNKNOWN && w->rows_total != w->declared_rows)
    return writer_fail(w, "%llu rows written, %llu declared", (unsigned long long)w->rows_total,
                       (unsigned long long)w->declared_rows);
  unsigned char block[BLOCK_BYTES];
  block_pack(block, tag_end, w->rows_total, w->chunks, 0);
  if (writer_put(w, block, sizeof block) != 0) return -1;
  w->in_record = 0;
  w->n_records++;
  return 0;
}

int rctd_write_dense(rctd_writer *w, const char *name, rctd_dtype dtype, uint64_t rows,
                     uint64_t cols, const void *data, const char *row_names,
                     const char *col_names) {
  return rctd_write_dense_chunked(w, name, dtype, rows, cols, data, row_names, col_names, 0);
}

int rctd_write_dense_chunked(rctd_writer *w, const char *name, rctd_dtype dtype, uint64_t rows,
                             uint64_t cols, const void *data, const char *row_names,
                             const char *col_names, uint64_t chunk_rows) {
  rctd_record_spec spec = {.name = name,
                           .kind = RCTD_DENSE,
                           .dtype = dtype,
                           .ndim = 2,
                           .cols = cols,
                           .rows = rows,
                           .chunk_rows = chunk_rows,
                           .row_names = row_names,
                           .col_names = col_names};
  if (rctd_write_begin(w, &spec) != 0 || rctd_write_rows(w, data, rows) != 0) return -1;
  return rctd_write_end(w);
}

int rctd_write_vector(rctd_writer *w, const char *name, rctd_dtype dtype, uint64_t n,
                      const void *data, const char *names) {
  rctd_record_spec spec = {.name = name,
                           .kind = RCTD_DENSE,
                           .dtype = dtype,
                           .ndim = 1,
                           .cols = 1,
                           .rows = n,
                           .row_names = names};
  if (rctd_write_begin(w, &spec) != 0 || rctd_write_rows(w, data, n) != 0) return -1;
  return rctd_write_end(w);
}

int rctd_write_string_list(rctd_writer *w, const char *name, const char *const *strings,
                           uint64_t n) {
  rctd_record_spec spec = {.name = name, .kind = RCTD_STRINGS, .rows = n};
  if (rctd_write_begin(w, &spec) != 0 || rctd_write_strings(w, strings, n) != 0) return -1;
  return rctd_write_end(w);
}

int rctd_write_meta(rctd_writer *w, const char *name, const char *const *keys,
                    const char *const *values, size_t n) {
  rctd_record_spec spec = {.name = name, .kind = RCTD_META, .rows = n};
  if (rctd_write_begin(w, &spec) != 0) return -1;
  for (size_t i = 0; i < n; i++)
    if (rctd_write_kv(w, keys[i], values[i]) != 0) return -1;
  return rctd_write_end(w);
}

int rctd_write_record(rctd_writer *w, const rctd_record *rec) {
  /* row_names / col_names are stored among the attributes; pass the others. */
  const char **keys = calloc(rec->n_attrs + 1, sizeof *keys);
  const char **values = calloc(rec->n_attrs + 1, sizeof *values);
  if (!keys || !values) {
    free(keys);
    free(values);
    return writer_fail(w, "out of memory");
  }
  size_t n = 0;
  for (size_t i = 0; i < rec->n_attrs; i++) {
    if (strcmp(rec->attr_keys[i], "row_names") == 0 || strcmp(rec->attr_keys[i], "col_names") == 0)
      continue;
    keys[n] = rec->attr_keys[i], values[n++] = rec->attr_values[i];
  }
  rctd_record_spec spec = {.name = rec->name,
                           .kind = rec->kind,
                           .dtype = rec->dtype,
                           .ndim = rec->ndim,
                           .cols = rec->cols,
                           .rows = rec->rows,
                           .row_names = rec->row_names,
                           .col_names = rec->col_names,
                           .n_attrs = n,
                           .attr_keys = keys,
                           .attr_values = values};
  int rc = rctd_write_begin(w, &spec);
  free(keys);
  free(values);
  if (rc != 0) return -1;
  switch (rec->kind) {
    case RCTD_DENSE:
      rc = rctd_write_rows(w, rec->data, rec->rows);
      break;
    case RCTD_CSR:
      rc = rctd_write_csr(w, rec->indptr, rec->indices, rec->values, rec->rows);
      break;
    case RCTD_STRINGS:
      rc = rctd_write_strings(w, (const char *const *)rec->strings, rec->rows);
      break;
    case RCTD_META:
      for (uint64_t i = 0; i < rec->rows && rc == 0; i++)
        rc = rctd_write_kv(w, rec->strings[2 * i], rec->strings[2 * i + 1]);
      break;
  }
  if (rc != 0) return -1;
  return rctd_write_end(w);
}

/* ------------------------------------------------------------------ reader */

enum { AT_START, IN_RECORD, BETWEEN, AT_END, BROKEN };

struct rctd_reader {
  FILE *file;
  int own_file;
  int seekable; /* a regular file: chunk_skip seeks past frames, else reads them (a pipe) */
  int state;
  char label[256];
  char err[RCTD_ERR_LEN];
  ZSTD_DCtx *dctx;
  uint64_t n_records;
  /* current record */
  rctd_record_info info;
  char *hdr_strings; /* name and attributes, NUL-terminated */
  const char **attr_ptrs;
  unsigned char hdr_block[BLOCK_BYTES];
  unsigned char *hdr_comp;
  size_t hdr_comp_len, hdr_comp_cap;
  uint64_t rows_read, chunks_read;
  int chunk_touched; /* a chunk was decoded or skipped */
  /* chunk buffers */
  unsigned char *comp;
  size_t comp_cap;
  unsigned char *raw;
  size_t raw_cap;
  const char **strs;
  size_t strs_cap;
};

static int reader_fail(rctd_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reader_fail(rctd_reader *r, const char *fmt, ...) {
  char msg[RCTD_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->state == IN_RECORD && r->info.name)
    rctd_fail(r->err, sizeof r->err, "%s: record '%s': %s", r->label, r->info.name, msg);
  else
    rctd_fail(r->err, sizeof r->err, "%s: %s", r->label, msg);
  r->state = BROKEN;
  return -1;
}

/* Reads exactly n bytes: 0 ok, 1 clean EOF before any byte, 2 EOF inside, -1 I/O error. */
static int reader_read(rctd_reader *r, void *buf, size_t n) {
  size_t got = n ? fread(buf, 1, n, r->file) : 0;
  if (got == n) return 0;
  if (ferror(r->file)) return -1;
  return got == 0 ? 1 : 2;
}

/* Reads n bytes or fails with a message mentioning WHAT. */
static int reader_need(rctd_reader *r, void *buf, size_t n, const char *what) {
  int rc = reader_read(r, buf, n);
  if (rc == 0) return 0;
  if (rc < 0) return reader_fail(r, "read error: %s", strerror(errno ? errno : EIO));
  return reader_fail(r, "truncated stream (ends inside %s)", what);
}

const char *rctd_reader_error(const rctd_reader *r) {
  return r->err;
}
const char *rctd_reader_label(const rctd_reader *r) {
  return r->label;
}
uint64_t rctd_reader_rows_read(const rctd_reader *r) {
  return r->rows_read;
}

static rctd_reader *reader_new(FILE *file, int own, const char *label, char *err, size_t err_len) {
  rctd_reader *r = calloc(1, sizeof *r);
  if (!r || !(r->dctx = ZSTD_createDCtx())) {
    snprintf(err, err_len, "%s: out of memory", label);
    free(r);
    if (own) fclose(file);
    return NULL;
  }
  r->file = file;
  r->own_file = own;
  struct stat st;
  r->seekable = fstat(fileno(file), &st) == 0 && S_ISREG(st.st_mode);
  snprintf(r->label, sizeof r->label, "%s", label);
  unsigned char header[16];
  size_t got = fread(header, 1, sizeof header, file);
  const char *problem = NULL;
  char version_msg[128];
  if (ferror(file))
    problem = "read error";
  else if (got == 0)
    problem = "empty input, not an rctd stream";
  else if (memcmp(header, STREAM_MAGIC, got < 8 ? got : 8) != 0)
    problem = "not an rctd stream (bad magic number)";
  else if (got < sizeof header)
    problem = "truncated stream (ends inside the stream header)";
  else if (get_u32(header + 8) != RCTD_STREAM_VERSION) {
    snprintf(version_msg, sizeof version_msg,
             "unsupported stream format version %u (this build reads version %d)",
             get_u32(header + 8), RCTD_STREAM_VERSION);
    problem = version_msg;
  } else if (get_u32(header + 12) != 0)
    problem = "corrupted stream header (reserved field not zero)";
  if (problem) {
    snprintf(err, err_len, "%s: %s", label, problem);
    r->own_file = own;
    rctd_reader_close(r);
    return NULL;
  }
  r->state = BETWEEN;
  return r;
}

rctd_reader *rctd_reader_open(const char *path, char *err, size_t err_len) {
  if (strcmp(path, "-") == 0) return reader_new(stdin, 0, "stdin", err, err_len);
  FILE *file = fopen(path, "rb");
  if (!file) {
    snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  return reader_new(file, 1, path, err, err_len);
}

/* (A failure to open names PATH, the temporary copy: the input itself was read.) */
rctd_reader *rctd_reader_open_as(const char *path, const char *label, char *err, size_t err_len) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    snprintf(err, err_len, "%s: cannot open the temporary copy of %s: %s", path, label,
             strerror(errno));
    return NULL;
  }
  return reader_new(file, 1, label, err, err_len);
}

rctd_reader *rctd_reader_fopen(FILE *file, const char *label, char *err, size_t err_len) {
  return reader_new(file, 0, label, err, err_len);
}

void rctd_reader_close(rctd_reader *r) {
  if (!r) return;
  if (r->own_file) fclose(r->file);
  ZSTD_freeDCtx(r->dctx);
  free(r->hdr_strings);
  free(r->attr_ptrs);
  free(r->hdr_comp);
  free(r->comp);
  free(r->raw);
  free(r->strs);
  free(r);
}

/* Reads and checks a block header.  rc 1 = clean EOF before it. */
static int reader_block(rctd_reader *r, unsigned char *block, const char *where) {
  int rc = reader_read(r, block, BLOCK_BYTES);
  if (rc == 1) return 1;
  if (rc < 0) return reader_fail(r, "read error: %s", strerror(errno ? errno : EIO));
  if (rc == 2) return reader_fail(r, "truncated stream (ends inside a block header %s)", where);
  if (get_u32(block + 4) != block_crc(block))
    return reader_fail(r, "corrupted block header %s (checksum mismatch)", where);
  return 0;
}

/* Decompresses COMP (comp_len bytes, one zstd frame) into r->raw, expecting raw_len bytes. */
static int reader_decompress(rctd_reader *r, const unsigned char *comp, size_t comp_len,
                             uint64_t raw_len, const char *what) {
  if (comp_len < 6 || get_u32(comp) != ZSTD_FRAME_MAGIC)
    return reader_fail(r, "%s: corrupted data (not a zstd frame)", what);
  if (!(comp[4] & 0x04)) return reader_fail(r, "%s: zstd frame has no content checksum", what);
  if (ZSTD_findFrameCompressedSize(comp, comp_len) != comp_len)
    return reader_fail(r, "%s: corrupted data (zstd frame size mismatch)", what);
  unsigned long long content = ZSTD_getFrameContentSize(comp, comp_len);
  if (content != raw_len) return reader_fail(r, "%s: corrupted data (size mismatch)", what);
  if (stream_reserve(&r->raw, &r->raw_cap, raw_len + 1) != 0)
    return reader_fail(r, "%s: out of memory (%llu bytes)", what, (unsigned long long)raw_len);
  size_t got = ZSTD_decompressDCtx(r->dctx, r->raw, raw_len, comp, comp_len);
  if (ZSTD_isError(got))
    return reader_fail(r, "%s: corrupted data (zstd: %s)", what, ZSTD_getErrorName(got));
  if (got != raw_len) return reader_fail(r, "%s: corrupted data (size mismatch)", what);
  return 0;
}

static int reader_read_frame(rctd_reader *r, unsigned char **buf, size_t *cap, uint64_t comp_len,
                             uint64_t raw_len, uint64_t raw_max, const char *what) {
  if (raw_len > raw_max || comp_len > ZSTD_compressBound((size_t)raw_len) + 64 || comp_len < 6)
    return reader_fail(r, "%s: corrupted block header (implausible sizes)", what);
  if (stream_reserve(buf, cap, comp_len) != 0) return reader_fail(r, "%s: out of memory", what);
  if (reader_need(r, *buf, comp_len, what) != 0) return -1;
  return reader_decompress(r, *buf, comp_len, raw_len, what);
}

/* Parses the decoded record header in r->raw (len bytes). */
static int reader_parse_header(rctd_reader *r, size_t len) {
  const unsigned char *p = r->raw, *end = r->raw + len;
  if (len < 48) return reader_fail(r, "corrupted record header (too short)");
  uint32_t kind = get_u32(p), dtype = get_u32(p + 4), ndim = get_u32(p + 8);
  if (get_u32(p + 12) != 0) return reader_fail(r, "corrupted record header (reserved field)");
  uint64_t cols = get_u64(p + 16), rows = get_u64(p + 24), chunk_rows = get_u64(p + 32);
  uint32_t name_len = get_u32(p + 40);
  p += 44;
  if (name_len == 0 || name_len > MAX_NAME_BYTES || (size_t)(end - p) < (size_t)name_len + 4)
    return reader_fail(r, "corrupted record header (bad name length)");
  const unsigned char *name = p;
  p += name_len;
  uint32_t n_attrs = get_u32(p);
  p += 4;
  if (n_attrs > len / 8) return reader_fail(r, "corrupted record header (bad attribute count)");
  /* Strings copied NUL-terminated: name, then key/value pairs. */
  free(r->hdr_strings);
  free(r->attr_ptrs);
  r->hdr_strings = malloc(len + 2 * (size_t)n_attrs + 1);
  r->attr_ptrs = calloc(2 * (size_t)n_attrs + 1, sizeof *r->attr_ptrs);
  if (!r->hdr_strings || !r->attr_ptrs) return reader_fail(r, "out of memory");
  char *s = r->hdr_strings;
  memcpy(s, name, name_len);
  s[name_len] = 0;
  if (memchr(s, 0, name_len)) return reader_fail(r, "corrupted record header (NUL in name)");
  memset(&r->info, 0, sizeof r->info);
  r->info.name = s;
  s += name_len + 1;
  for (uint32_t i = 0; i < 2 * n_attrs; i++) {
    if (end - p < 4) return reader_fail(r, "corrupted record header (attributes cut)");
    uint32_t l = get_u32(p);
    p += 4;
    if ((size_t)(end - p) < l) return reader_fail(r, "corrupted record header (attributes cut)");
    memcpy(s, p, l);
    s[l] = 0;
    r->attr_ptrs[i] = s;
    s += l + 1;
    p += l;
  }
  r->state = IN_RECORD; /* messages from here on name the record */
  if (p != end) return reader_fail(r, "corrupted record header (trailing bytes)");
  if (!kind_valid(kind)) return reader_fail(r, "unknown record type %u", kind);
  if (!dtype_valid(dtype)) return reader_fail(r, "unknown element type %u", dtype);
  if (ndim != 1 && ndim != 2) return reader_fail(r, "bad dimension count %u", ndim);
  if ((kind == RCTD_STRINGS && cols != 1) || (kind == RCTD_META && cols != 2) ||
      (ndim == 1 && cols != 1) || (kind == RCTD_CSR && cols > INT32_MAX))
    return reader_fail(r, "bad column count %llu", (unsigned long long)cols);
  uint64_t row_bytes;
  if (kind == RCTD_DENSE && mul_u64(cols, rctd_dtype_size(dtype), &row_bytes) != 0)
    return reader_fail(r, "bad column count %llu", (unsigned long long)cols);
  r->info.kind = kind;
  r->info.dtype = dtype;
  r->info.ndim = (int)ndim;
  r->info.cols = cols;
  r->info.rows = rows;
  r->info.chunk_rows = chunk_rows;
  r->info.n_attrs = n_attrs;
  r->info.attr_keys = r->attr_ptrs;
  r->info.attr_values = r->attr_ptrs + n_attrs;
  /* keys/values are interleaved in attr_ptrs; split them into two arrays. */
  const char **tmp = malloc((2 * (size_t)n_attrs + 1) * sizeof *tmp);
  if (!tmp) return reader_fail(r, "out of memory");
  for (uint32_t i = 0; i < n_attrs; i++) {
    tmp[i] = r->attr_ptrs[2 * i];
    tmp[n_attrs + i] = r->attr_ptrs[2 * i + 1];
  }
  free(r->attr_ptrs);
  r->attr_ptrs = tmp;
  r->info.attr_keys = tmp;
  r->info.attr_values = tmp + n_attrs;
  r->info.row_names = rctd_record_attr(&r->info, "row_names");
  r->info.col_names = rctd_record_attr(&r->info, "col_names");
  return 0;
}

/* Skips or finishes the current record (reads remaining blocks without decompressing). */
static int reader_finish_record(rctd_reader *r, rctd_writer *copy_to);

int rctd_reader_next(rctd_reader *r, const rctd_record_info **info) {
  if (r->state == BROKEN) return -1;
  if (r->state == AT_END) return 0;
  if (r->state == IN_RECORD && reader_finish_record(r, NULL) != 0) return -1;
  char where[MAX_NAME_BYTES + 64];
  if (r->n_records == 0)
    snprintf(where, sizeof where, "after the stream header");
  else
    snprintf(where, sizeof where, "after record '%s'", r->info.name);
  unsigned char block[BLOCK_BYTES];
  int rc = reader_block(r, block, where);
  if (rc < 0) return -1;
  if (rc == 1)
    return reader_fail(r, "truncated stream (no end-of-stream marker %s; %llu records read)", where,
                       (unsigned long long)r->n_records);
  if (memcmp(block, tag_stream_end, 4) == 0) {
    if (get_u64(block + 8) != r->n_records)
      return reader_fail(r, "corrupted stream (end marker counts %llu records, %llu read)",
                         (unsigned long long)get_u64(block + 8), (unsigned long long)r->n_records);
    int c = fgetc(r->file);
    if (c != EOF) return reader_fail(r, "unexpected data after the end-of-stream marker");
    r->state = AT_END;
    return 0;
  }
  if (memcmp(block, tag_header, 4) != 0)
    return reader_fail(r, "corrupted stream (expected a record header %s)", where);
  memcpy(r->hdr_block, block, BLOCK_BYTES);
  uint64_t raw_len = get_u64(block + 16), comp_len = get_u64(block + 24);
  char what[sizeof "record header " + sizeof where]; /* room for all of WHERE */
  snprintf(what, sizeof what, "record header %s", where);
  if (reader_read_frame(r, &r->hdr_comp, &r->hdr_comp_cap, comp_len, raw_len, MAX_HEADER_RAW,
                        what) != 0)
    return -1;
  r->hdr_comp_len = (size_t)comp_len;
  if (reader_parse_header(r, (size_t)raw_len) != 0) return -1;
  r->rows_read = r->chunks_read = 0;
  r->chunk_touched = 0;
  r->n_records++;
  *info = &r->info;
  return 1;
}

/* Checks the end-of-record block against what was read. */
static int reader_check_end(rctd_reader *r, const unsigned char *block) {
  uint64_t total = get_u64(block + 8), chunks = get_u64(block + 16);
  if (total != r->rows_read || chunks != r->chunks_read)
    return reader_fail(r,
                       "corrupted stream (end of record says %llu rows in %llu chunks, read "
                       "%llu in %llu)",
                       (unsigned long long)total, (unsigned long long)chunks,
                       (unsigned long long)r->rows_read, (unsigned long long)r->chunks_read);
  if (r->info.rows != RCTD_ROWS_UNKNOWN && total != r->info.rows)
    return reader_fail(r, "record has %llu rows, its header declared %llu",
                       (unsigned long long)total, (unsigned long long)r->info.rows);
  r->state = BETWEEN;
  return 0;
}

/* Expected payload size of a chunk of ROWS rows for fixed-size kinds (dense). */
static int reader_check_chunk_block(rctd_reader *r, const unsigned char *block, char *what,
                                    size_t what_len) {
  snprintf(what, what_len, "chunk %llu", (unsigned long long)r->chunks_read + 1);
  uint64_t rows = get_u64(block + 8), raw_len = get_u64(block + 16);
  if (rows == 0) return reader_fail(r, "%s: corrupted block header (empty chunk)", what);
  if (r->info.rows != RCTD_ROWS_UNKNOWN && r->rows_read + rows > r->info.rows)
    return reader_fail(r, "%s: more rows than the %llu declared", what,
                       (unsigned long long)r->info.rows);
  if (r->info.kind == RCTD_DENSE) {
    uint64_t expect;
    if (mul_u64(rows, r->info.cols * rctd_dtype_size(r->info.dtype), &expect) != 0 ||
        expect != raw_len)
      return reader_fail(r, "%s: corrupted block header (size does not match %llu rows)", what,
                         (unsigned long long)rows);
  }
  return 0;
}

static int reader_finish_record(rctd_reader *r, rctd_writer *copy_to) {
  for (;;) {
    unsigned char block[BLOCK_BYTES];
    int rc = reader_block(r, block, "inside the record");
    if (rc == 1)
      return reader_fail(r, "truncated stream (ends after %llu rows, before the end of the record)",
                         (unsigned long long)r->rows_read);
    if (rc < 0) return -1;
    if (memcmp(block, tag_end, 4) == 0) {
      if (reader_check_end(r, block) != 0) return -1;
      if (copy_to && writer_put(copy_to, block, BLOCK_BYTES) != 0) return -1;
      if (copy_to) copy_to->n_records++;
      return 0;
    }
    if (memcmp(block, tag_chunk, 4) != 0)
      return reader_fail(r, "corrupted stream (expected a chunk after %llu rows)",
                         (unsigned long long)r->rows_read);
    char what[64];
    if (reader_check_chunk_block(r, block, what, sizeof what) != 0) return -1;
    uint64_t comp_len = get_u64(block + 24), raw_len = get_u64(block + 16);
    if (raw_len > MAX_CHUNK_RAW || comp_len > ZSTD_compressBound((size_t)raw_len) + 64)
      return reader_fail(r, "%s: corrupted block header (implausible sizes)", what);
    /* Skipped and passed-through chunks are decompressed too, for their checksum: a damaged
     * chunk is an error wherever it goes, not only where it is used. */
    if (reader_read_frame(r, &r->comp, &r->comp_cap, comp_len, raw_len, MAX_CHUNK_RAW, what) != 0)
      return -1;
    if (copy_to && (writer_put(copy_to, block, BLOCK_BYTES) != 0 ||
                    writer_put(copy_to, r->comp, (size_t)comp_len) != 0))
      return -1;
    r->rows_read += get_u64(block + 8);
    r->chunks_read++;
    r->chunk_touched = 1;
  }
}

int rctd_reader_skip(rctd_reader *r) {
  if (r->state != IN_RECORD) return r->state == BROKEN ? -1 : 0;
  return reader_finish_record(r, NULL);
}

int rctd_reader_copy(rctd_reader *r, rctd_writer *w) {
  if (r->state != IN_RECORD) return reader_fail(r, "rctd_reader_copy outside a record");
  if (r->chunk_touched) return reader_fail(r, "rctd_reader_copy after chunks were read");
  if (w->failed) return -1;
  if (w->in_record) return writer_fail(w, "pass-through inside record '%s'", w->name);
  if (writer_put(w, r->hdr_block, BLOCK_BYTES) != 0 ||
      writer_put(w, r->hdr_comp, r->hdr_comp_len) != 0)
    return -1;
  int rc = reader_finish_record(r, w);
  if (rc != 0 && !w->failed)
    writer_fail(w, "pass-through of record '%s' failed: %s", r->info.name, r->err);
  return rc;
}

/* Checks a CSR payload in r->raw and fills the chunk pointers. */
static int reader_csr_chunk(rctd_reader *r, uint64_t rows, uint64_t raw_len, rctd_chunk *c,
                            const char *what) {
  if (raw_len < 8 * (rows + 1)) return reader_fail(r, "%s: corrupted data (CSR too short)", what);
  const int64_t *indptr = (const int64_t *)r->raw;
  if (indptr[0] != 0) return reader_fail(r, "%s: corrupted data (indptr[0] != 0)", what);
  for (uint64_t i = 0; i < rows; i++)
    if (indptr[i + 1] < indptr[i])
      return reader_fail(r, "%s: corrupted data (decreasing indptr)", what);
  uint64_t nnz = (uint64_t)indptr[rows];
  size_t vsize = rctd_dtype_size(r->info.dtype);
  uint64_t voff = csr_values_offset(rows, nnz);
  if (nnz > raw_len || voff + vsize * nnz != raw_len)
    return reader_fail(r, "%s: corrupted data (CSR sizes do not add up)", what);
  const int32_t *indices = (const int32_t *)(r->raw + 8 * (rows + 1));
  for (uint64_t j = 0; j < nnz; j++)
    if (indices[j] < 0 || (uint64_t)indices[j] >= r->info.cols)
      return reader_fail(r, "%s: corrupted data (column index %d out of range)", what, indices[j]);
  c->indptr = indptr;
  c->indices = indices;
  c->values = r->raw + voff;
  c->nnz = nnz;
  return 0;
}

/* Splits NUL-terminated strings in r->raw into r->strs; expects exactly N of them. */
static int reader_string_chunk(rctd_reader *r, uint64_t n, uint64_t raw_len, rctd_chunk *c,
                               const char *what) {
  if (n > raw_len || (raw_len && r->raw[raw_len - 1] != 0) || (n && !raw_len))
    return reader_fail(r, "%s: corrupted data (string count mismatch)", what);
  if (stream_reserve(&r->strs, &r->strs_cap, (size_t)(n + 1) * sizeof *r->strs) != 0)
    return reader_fail(r, "%s: out of memory", what);
  uint64_t found = 0;
  const char *s = (const char *)r->raw, *end = s + raw_len;
  while (s < end) {
    if (found == n) return reader_fail(r, "%s: corrupted data (string count mismatch)", what);
    r->strs[found++] = s;
    s += strlen(s) + 1;
  }
  if (found != n) return reader_fail(r, "%s: corrupted data (string count mismatch)", what);
  c->strings = r->strs;
  return 0;
}

/* The next block of the current record into BLOCK, checked: 1 a chunk's (WHAT names it), 0 the
 * end of the record (checked), -1. */
static int reader_chunk_block(rctd_reader *r, unsigned char *block, char *what, size_t what_len) {
  if (r->state == BROKEN) return -1;
  if (r->state != IN_RECORD) return 0;
  r->chunk_touched = 1;
  int rc = reader_block(r, block, "inside the record");
  if (rc == 1)
    return reader_fail(r, "truncated stream (ends after %llu rows, before the end of the record)",
                       (unsigned long long)r->rows_read);
  if (rc < 0) return -1;
  if (memcmp(block, tag_end, 4) == 0) return reader_check_end(r, block) == 0 ? 0 : -1;
  if (memcmp(block, tag_chunk, 4) != 0)
    return reader_fail(r, "corrupted stream (expected a chunk after %llu rows)",
                       (unsigned long long)r->rows_read);
  return reader_check_chunk_block(r, block, what, what_len) == 0 ? 1 : -1;
}

int rctd_reader_chunk_skip(rctd_reader *r, uint64_t *rows) {
  unsigned char block[BLOCK_BYTES];
  char what[64];
  int rc = reader_chunk_block(r, block, what, sizeof what);
  if (rc <= 0) return rc;
  uint64_t comp_len = get_u64(block + 24), raw_len = get_u64(block + 16);
  if (raw_len > MAX_CHUNK_RAW || comp_len > ZSTD_compressBound((size_t)raw_len) + 64 ||
      comp_len < 6)
    return reader_fail(r, "%s: corrupted block header (implausible sizes)", what);
  /* A file seeks past the frame (a cut one shows at the next block); a pipe reads it. */
  if (!r->seekable || fseeko(r->file, (off_t)comp_len, SEEK_CUR) != 0) {
    if (stream_reserve(&r->comp, &r->comp_cap, comp_len) != 0)
      return reader_fail(r, "%s: out of memory", what);
    if (reader_need(r, r->comp, comp_len, what) != 0) return -1;
  }
  *rows = get_u64(block + 8);
  r->rows_read += *rows;
  r->chunks_read++;
  return 1;
}

int rctd_reader_chunk(rctd_reader *r, rctd_chunk *chunk) {
  memset(chunk, 0, sizeof *chunk);
  unsigned char block[BLOCK_BYTES];
  char what[64];
  int rc = reader_chunk_block(r, block, what, sizeof what);
  if (rc <= 0) return rc;
  uint64_t rows = get_u64(block + 8), raw_len = get_u64(block + 16);
  if (reader_read_frame(r, &r->comp, &r->comp_cap, get_u64(block + 24), raw_len, MAX_CHUNK_RAW,
                        what) != 0)
    return -1;
  chunk->first_row = r->rows_read;
  chunk->rows = rows;
  rc = 0;
  switch (r->info.kind) {
    case RCTD_DENSE:
      chunk->data = r->raw;
      break;
    case RCTD_CSR:
      rc = reader_csr_chunk(r, rows, raw_len, chunk, what);
      break;
    case RCTD_STRINGS:
      rc = reader_string_chunk(r, rows, raw_len, chunk, what);
      break;
    case RCTD_META:
      rc = reader_string_chunk(r, 2 * rows, raw_len, chunk, what);
      break;
  }
  if (rc != 0) return -1;
  r->rows_read += rows;
  r->chunks_read++;
  return 1;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

/* Appends bytes to a growing array tracked by len/cap. */
static int append_bytes(void *bufp, size_t *len, size_t *cap, const void *src, size_t n) {
  if (stream_reserve(bufp, cap, *len + n) != 0) return -1;
  if (n) memcpy(*(unsigned char **)bufp + *len, src, n);
  *len += n;
  return 0;
}

static int reader_load_fill(rctd_reader *r, rctd_record *rec) {
  size_t data_len = 0, data_cap = 0, idx_len = 0, idx_cap = 0, ptr_len = 0, ptr_cap = 0;
  size_t str_len = 0, str_cap = 0;
  size_t vsize = rctd_dtype_size(rec->dtype);
  if (rec->kind == RCTD_CSR) {
    int64_t zero = 0;
    if (append_bytes(&rec->indptr, &ptr_len, &ptr_cap, &zero, 8) != 0) goto oom;
  }
  for (;;) {
    rctd_chunk c;
    int rc = rctd_reader_chunk(r, &c);
    if (rc < 0) return -1;
    if (rc == 0) break;
    if (rec->kind == RCTD_DENSE) {
      if (append_bytes(&rec->data, &data_len, &data_cap, c.data, c.rows * rec->cols * vsize) != 0)
        goto oom;
    } else if (rec->kind == RCTD_CSR) {
      int64_t base = rec->indptr[ptr_len / 8 - 1];
      for (uint64_t i = 1; i <= c.rows; i++) {
        int64_t v = base + c.indptr[i];
        if (append_bytes(&rec->indptr, &ptr_len, &ptr_cap, &v, 8) != 0) goto oom;
      }
      if (append_bytes(&rec->indices, &idx_len, &idx_cap, c.indices, 4 * c.nnz) != 0 ||
          append_bytes(&rec->values, &data_len, &data_cap, c.values, vsize * c.nnz) != 0)
        goto oom;
      rec->nnz += c.nnz;
    } else {
      uint64_t n = rec->kind == RCTD_META ? 2 * c.rows : c.rows;
      for (uint64_t i = 0; i < n; i++) {
        char *s = strdup(c.strings[i]);
        if (!s || append_bytes(&rec->strings, &str_len, &str_cap, &s, sizeof s) != 0) {
          free(s);
          goto oom;
        }
      }
    }
    rec->rows += c.rows;
  }
  /* Empty records still get (empty) allocated arrays so callers need no NULL checks. */
  if (rec->kind == RCTD_DENSE && !rec->data && !(rec->data = malloc(1))) goto oom;
  if (rec->kind == RCTD_CSR && ((!rec->indices && !(rec->indices = malloc(1))) ||
                                (!rec->values && !(rec->values = malloc(1)))))
    goto oom;
  if ((rec->kind == RCTD_STRINGS || rec->kind == RCTD_META) && !rec->strings &&
      !(rec->strings = malloc(sizeof(char *))))
    goto oom;
  return 0;
oom:
  return reader_fail(r, "out of memory loading the record");
}

int rctd_reader_load(rctd_reader *r, rctd_record *rec) {
  memset(rec, 0, sizeof *rec);
  if (r->state != IN_RECORD) return reader_fail(r, "rctd_reader_load outside a record");
  if (r->chunk_touched) return reader_fail(r, "rctd_reader_load after chunks were read");
  const rctd_record_info *info = &r->info;
  rec->name = strdup(info->name);
  rec->kind = info->kind;
  rec->dtype = info->dtype;
  rec->ndim = info->ndim;
  rec->cols = info->cols;
  rec->row_names = dup_or_null(info->row_names);
  rec->col_names = dup_or_null(info->col_names);
  rec->attr_keys = calloc(info->n_attrs + 1, sizeof *rec->attr_keys);
  rec->attr_values = calloc(info->n_attrs + 1, sizeof *rec->attr_values);
  int ok = rec->name && rec->attr_keys && rec->attr_values &&
           (!info->row_names || rec->row_names) && (!info->col_names || rec->col_names);
  for (size_t i = 0; ok && i < info->n_attrs; i++) {
    rec->attr_keys[i] = strdup(info->attr_keys[i]);
    rec->attr_values[i] = strdup(info->attr_values[i]);
    rec->n_attrs = i + 1;
    ok = rec->attr_keys[i] && rec->attr_values[i];
  }
  if (!ok) {
    rctd_record_free(rec);
    return reader_fail(r, "out of memory");
  }
  if (reader_load_fill(r, rec) != 0) {
    rctd_record_free(rec);
    return -1;
  }
  return 0;
}

int rctd_reader_find(rctd_reader *r, const char *name, rctd_writer *pass,
                     const rctd_record_info **info) {
  if (r->state == IN_RECORD) {
    int rc = pass && !r->chunk_touched ? rctd_reader_copy(r, pass) : rctd_reader_skip(r);
    if (rc != 0) return -1;
  }
  for (;;) {
    int rc = rctd_reader_next(r, info);
    if (rc <= 0) return rc;
    if (strcmp((*info)->name, name) == 0) return 1;
    if (pass && rctd_reader_copy(r, pass) != 0) return -1;
  }
}

int rctd_load_record(const char *path, const char *name, rctd_record *rec, char *err,
                     size_t err_len) {
  memset(rec, 0, sizeof *rec);
  rctd_reader *r = rctd_reader_open(path, err, err_len);
  if (!r) return -1;
  const rctd_record_info *info;
  int found = rctd_reader_find(r, name, NULL, &info);
  int rc = found == 1 ? rctd_reader_load(r, rec) : -1;
  if (found == 0)
    snprintf(err, err_len, "%s: no record named '%s'", r->label, name);
  else if (rc != 0)
    snprintf(err, err_len, "%s", r->err);
  rctd_reader_close(r);
  return rc;
}
