/* Stream format: round trips of every record type through files and pipes, chunked reading,
 * pass-through, bounded memory on 2,000,000 rows, and rejection of damaged input. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "stream.h"
#include "test.h"
#include "test_stream_sample.h"

static void stream_path(char *buf, size_t len, const char *name) {
  snprintf(buf, len, "%s/%s", test_tmp_dir(), name);
}

static unsigned char *stream_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int stream_spit(const char *path, const unsigned char *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t n = fwrite(buf, 1, len, f);
  return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Reads every record and chunk of PATH.  0 ok, -1 with the reader's message in err. */
static int stream_read_all(const char *path, char *err, size_t err_len) {
  rctd_reader *r = rctd_reader_open(path, err, err_len);
  if (!r) return -1;
  const rctd_record_info *info;
  int rc;
  while ((rc = rctd_reader_next(r, &info)) == 1) {
    rctd_chunk c;
    int crc;
    while ((crc = rctd_reader_chunk(r, &c)) == 1) {
    }
    if (crc < 0) {
      rc = -1;
      break;
    }
  }
  if (rc < 0) snprintf(err, err_len, "%s", rctd_reader_error(r));
  rctd_reader_close(r);
  return rc;
}

/* Same, on bytes in memory (no disk I/O for the many damaged variants), named LABEL. */
static int stream_read_mem(const unsigned char *bytes, size_t len, const char *label, char *err,
                           size_t err_len) {
  static const unsigned char nothing[1];
  FILE *f = fmemopen((void *)(len ? bytes : nothing), len ? len : 1, "rb");
  if (!f) return snprintf(err, err_len, "fmemopen failed"), -2;
  if (!len) fgetc(f); /* an empty input: glibc refuses a 0-byte buffer */
  rctd_reader *r = rctd_reader_fopen(f, label, err, err_len);
  int rc = -1;
  if (r) {
    const rctd_record_info *info;
    while ((rc = rctd_reader_next(r, &info)) == 1) {
      rctd_chunk c;
      int crc;
      while ((crc = rctd_reader_chunk(r, &c)) == 1) {
      }
      if (crc < 0) {
        rc = -1;
        break;
      }
    }
    if (rc < 0) snprintf(err, err_len, "%s", rctd_reader_error(r));
    rctd_reader_close(r);
  }
  fclose(f);
  return rc;
}

static int stream_check_path(const char *path, char *msg, size_t len) {
  rctd_reader *r = rctd_reader_open(path, msg, len);
  if (!r) return -1;
  int rc = rctd_test_sample_check(r, msg, len);
  rctd_reader_close(r);
  return rc;
}

TEST(stream_roundtrip_file) {
  char path[512], msg[RCTD_ERR_LEN];
  unsigned chunk_sizes[] = {0, 1, 3, 1000};
  for (int i = 0; i < 4; i++) {
    stream_path(path, sizeof path, "sample.rctd");
    CHECK(rctd_test_sample_write_path(path, chunk_sizes[i]) == 0);
    CHECK_MSG(stream_check_path(path, msg, sizeof msg) == 0, "chunk rows %u: %s", chunk_sizes[i],
              msg);
  }
  rctd_record rec;
  CHECK_MSG(rctd_load_record(path, "types", &rec, msg, sizeof msg) == 0, "%s", msg);
  CHECK(rec.rows == 3 && strcmp(rec.strings[2], "Endothelial") == 0);
  rctd_record_free(&rec);
  CHECK(rctd_load_record(path, "absent", &rec, msg, sizeof msg) == -1);
  CHECK_MSG(strstr(msg, "no record named 'absent'") && strstr(msg, path), "%s", msg);
}

TEST(stream_roundtrip_pipe) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  fflush(stdout);
  pid_t writer = fork();
  CHECK(writer >= 0);
  if (writer == 0) {
    /* The writer streams to "-" = stdout, which is the pipe. */
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[1]);
    _exit(rctd_test_sample_write_path("-", 2) == 0 ? 0 : 1);
  }
  close(fds[1]);
  FILE *in = fdopen(fds[0], "rb");
  char msg[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_fopen(in, "pipe", msg, sizeof msg);
  CHECK_MSG(r != NULL, "%s", msg);
  int rc = rctd_test_sample_check(r, msg, sizeof msg);
  rctd_reader_close(r);
  fclose(in);
  int status;
  waitpid(writer, &status, 0);
  CHECK_MSG(rc == 0, "%s", msg);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  /* And a reader on "-" = stdin, fed from a pipe. */
  char path[512];
  stream_path(path, sizeof path, "pipe-sample.rctd");
  CHECK(rctd_test_sample_write_path(path, 0) == 0);
  CHECK(pipe(fds) == 0);
  pid_t reader = fork();
  CHECK(reader >= 0);
  if (reader == 0) {
    close(fds[1]);
    dup2(fds[0], STDIN_FILENO);
    close(fds[0]);
    char m[RCTD_ERR_LEN];
    _exit(stream_check_path("-", m, sizeof m) == 0 ? 0 : (fprintf(stderr, "  %s\n", m), 1));
  }
  close(fds[0]);
  size_t len;
  unsigned char *bytes = stream_slurp(path, &len);
  CHECK(bytes != NULL);
  /* Small writes, so the reader sees partial reads from the pipe. */
  for (size_t off = 0; off < len; off += 7) {
    size_t n = len - off < 7 ? len - off : 7;
    if (write(fds[1], bytes + off, n) != (ssize_t)n) break;
  }
  close(fds[1]);
  free(bytes);
  waitpid(reader, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(stream_chunk_iteration) {
  char path[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "chunks.rctd");
  CHECK(rctd_test_sample_write_path(path, 0) == 0);
  rctd_reader *r = rctd_reader_open(path, err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  const rctd_record_info *info;
  CHECK(rctd_reader_find(r, "profiles", NULL, &info) == 1);
  CHECK(info->rows == 7 && info->cols == 3 && info->chunk_rows == 2);
  CHECK(strcmp(info->row_names, "genes") == 0 && strcmp(info->col_names, "types") == 0);
  uint64_t expect_rows[] = {2, 2, 2, 1};
  rctd_chunk c;
  for (int i = 0; i < 4; i++) {
    CHECK(rctd_reader_chunk(r, &c) == 1);
    CHECK(c.rows == expect_rows[i] && c.first_row == (uint64_t)(2 * i));
    CHECK(((const double *)c.data)[0] == (i == 3 ? 13.0 : i == 2 ? 7.0 : i == 1 ? 1e300 : 1.0));
  }
  CHECK(rctd_reader_chunk(r, &c) == 0);
  CHECK(rctd_reader_rows_read(r) == 7);
  /* The unknown-total CSR record: rows known only at its end. */
  CHECK(rctd_reader_find(r, "counts", NULL, &info) == 1);
  CHECK(info->rows == RCTD_ROWS_UNKNOWN && info->kind == RCTD_CSR && info->dtype == RCTD_I32);
  CHECK(strcmp(rctd_record_attr(info, "unit"), "UMI") == 0);
  uint64_t nnz = 0, rows = 0;
  int rc;
  while ((rc = rctd_reader_chunk(r, &c)) == 1) {
    CHECK(c.indptr[0] == 0 && (uint64_t)c.indptr[c.rows] == c.nnz);
    nnz += c.nnz;
    rows += c.rows;
  }
  CHECK(rc == 0 && rows == 5 && nnz == 9);
  /* A record can be abandoned halfway: next() skips the rest. */
  CHECK(rctd_reader_next(r, &info) == 1 && strcmp(info->name, "norm") == 0);
  CHECK(rctd_reader_chunk(r, &c) == 1);
  CHECK(rctd_reader_next(r, &info) == 1 && strcmp(info->name, "empty") == 0);
  CHECK(rctd_reader_chunk(r, &c) == 0);
  CHECK(rctd_reader_next(r, &info) == 1 && strcmp(info->name, "nothing") == 0);
  CHECK(rctd_reader_next(r, &info) == 0);
  CHECK(rctd_reader_next(r, &info) == 0);
  rctd_reader_close(r);
}

/* Chunks skipped undecoded, from a file (seeks) and from a pipe (reads): the chunks read between
 * them are the right rows, the record's end is checked, a damaged skipped frame goes unseen but
 * a damaged block header does not. */
static int stream_skip_profiles(rctd_reader *r, char *why, size_t why_len) {
  const rctd_record_info *info;
  rctd_chunk c;
  uint64_t rows = 0;
  if (rctd_reader_find(r, "profiles", NULL, &info) != 1) return snprintf(why, why_len, "find"), -1;
  if (rctd_reader_chunk_skip(r, &rows) != 1 || rows != 2)
    return snprintf(why, why_len, "skip 1"), -1;
  if (rctd_reader_chunk(r, &c) != 1 || c.first_row != 2 || ((const double *)c.data)[0] != 1e300)
    return snprintf(why, why_len, "chunk 2"), -1;
  if (rctd_reader_chunk_skip(r, &rows) != 1 || rows != 2 || rctd_reader_rows_read(r) != 6)
    return snprintf(why, why_len, "skip 3"), -1;
  if (rctd_reader_chunk(r, &c) != 1 || c.first_row != 6 || ((const double *)c.data)[0] != 13.0)
    return snprintf(why, why_len, "chunk 4"), -1;
  if (rctd_reader_chunk_skip(r, &rows) != 0 || rctd_reader_chunk_skip(r, &rows) != 0)
    return snprintf(why, why_len, "end: %s", rctd_reader_error(r)), -1;
  /* the next record reads as usual after a record ended by skips */
  if (rctd_reader_find(r, "counts", NULL, &info) != 1)
    return snprintf(why, why_len, "next: %s", rctd_reader_error(r)), -1;
  return 0;
}

TEST(stream_chunk_skip) {
  char path[512], err[RCTD_ERR_LEN], why[RCTD_ERR_LEN] = "";
  stream_path(path, sizeof path, "skip.rctd");
  CHECK(rctd_test_sample_write_path(path, 0) == 0);
  rctd_reader *r = rctd_reader_open(path, err, sizeof err);
  CHECK_MSG(r && stream_skip_profiles(r, why, sizeof why) == 0, "file: %s", why);
  rctd_reader_close(r);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "cat '%s'", path);
  FILE *pipe = popen(cmd, "r");
  CHECK(pipe);
  r = rctd_reader_fopen(pipe, "pipe", err, sizeof err);
  CHECK_MSG(r && stream_skip_profiles(r, why, sizeof why) == 0, "pipe: %s", why);
  rctd_reader_close(r);
  pclose(pipe);

  /* Damage: the first chunk's frame (skipped: unseen), then its block header (seen). */
  size_t len;
  unsigned char *buf = stream_slurp(path, &len), *chunk = NULL;
  CHECK(buf);
  FILE *f = fopen(path, "rb");
  CHECK(f);
  r = rctd_reader_fopen(f, path, err, sizeof err);
  const rctd_record_info *info;
  CHECK(r && rctd_reader_find(r, "profiles", NULL, &info) == 1);
  long at = ftell(f); /* after the record's header */
  rctd_reader_close(r);
  fclose(f);
  for (size_t i = (size_t)at; i + 4 <= len && !chunk; i++)
    if (memcmp(buf + i, "CHNK", 4) == 0) chunk = buf + i;
  CHECK(chunk && chunk + 32 + 20 < buf + len);
  chunk[32 + 16] ^= 0x55; /* inside the zstd frame */
  CHECK(stream_spit(path, buf, len) == 0);
  r = rctd_reader_open(path, err, sizeof err);
  CHECK_MSG(r && stream_skip_profiles(r, why, sizeof why) == 0, "damaged frame: %s", why);
  rctd_reader_close(r);
  chunk[32 + 16] ^= 0x55;
  chunk[9] ^= 0x01; /* the row count in the block header: its crc fails */
  CHECK(stream_spit(path, buf, len) == 0);
  r = rctd_reader_open(path, err, sizeof err);
  uint64_t rows;
  CHECK(r && rctd_reader_find(r, "profiles", NULL, &info) == 1);
  CHECK(rctd_reader_chunk_skip(r, &rows) == -1);
  CHECK_MSG(strstr(rctd_reader_error(r), "checksum"), "%s", rctd_reader_error(r));
  rctd_reader_close(r);
  free(buf);
}

TEST(stream_passthrough) {
  char in_path[512], out_path[512], err[RCTD_ERR_LEN];
  stream_path(in_path, sizeof in_path, "pass-in.rctd");
  stream_path(out_path, sizeof out_path, "pass-out.rctd");
  CHECK(rctd_test_sample_write_path(in_path, 2) == 0);
  /* Copying every record reproduces the stream byte for byte. */
  rctd_reader *r = rctd_reader_open(in_path, err, sizeof err);
  rctd_writer *w = rctd_writer_open(out_path, NULL, err, sizeof err);
  CHECK(r && w);
  const rctd_record_info *info;
  int rc;
  while ((rc = rctd_reader_next(r, &info)) == 1) CHECK(rctd_reader_copy(r, w) == 0);
  CHECK(rc == 0);
  CHECK_MSG(rctd_writer_close(w, err, sizeof err) == 0, "%s", err);
  rctd_reader_close(r);
  size_t a_len, b_len;
  unsigned char *a = stream_slurp(in_path, &a_len), *b = stream_slurp(out_path, &b_len);
  CHECK(a && b);
  int same = a_len == b_len && memcmp(a, b, a_len) == 0;
  free(a);
  free(b);
  CHECK(same);

  /* A tool that consumes one record and passes the rest through (rctd_reader_find). */
  r = rctd_reader_open(in_path, err, sizeof err);
  w = rctd_writer_open(out_path, NULL, err, sizeof err);
  CHECK(r && w);
  CHECK(rctd_reader_find(r, "numi", w, &info) == 1);
  rctd_record rec;
  CHECK(rctd_reader_load(r, &rec) == 0);
  for (uint64_t i = 0; i < rec.rows; i++) ((float *)rec.data)[i] *= 2;
  CHECK(rctd_write_record(w, &rec) == 0);
  CHECK(rctd_reader_find(r, "not there", w, &info) == 0);
  CHECK_MSG(rctd_writer_close(w, err, sizeof err) == 0, "%s", err);
  rctd_reader_close(r);
  rctd_record numi;
  CHECK(rctd_load_record(out_path, "numi", &numi, err, sizeof err) == 0);
  CHECK(numi.ndim == 1 && numi.rows == 5 && strcmp(numi.row_names, "barcodes") == 0);
  int doubled =
      ((float *)numi.data)[0] == ((float *)rec.data)[0] && ((float *)numi.data)[0] == 201.0f;
  rctd_record_free(&numi);
  rctd_record_free(&rec);
  CHECK(doubled);
  r = rctd_reader_open(out_path, err, sizeof err);
  int n = 0;
  while (rctd_reader_next(r, &info) == 1) n++;
  rctd_reader_close(r);
  CHECK(n == rctd_test_sample_records());
}

/* ---- 2,000,000 rows in bounded memory ---- */

#define BIG_ROWS 2000000
#define BIG_COLS 16

static double big_value(uint64_t row, uint64_t col) {
  return (double)(row * 31 + col * 7 % 13);
}

static long stream_status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0) kb = atol(line + n + 1);
  fclose(f);
  return kb;
}

/* Writes BIG_ROWS rows (total unknown at the start) to fd; exit status 0 ok.  Reports the
 * peak RSS growth in KiB through report_fd. */
static int big_writer(int fd, int report_fd) {
  long base = stream_status_kb("VmRSS");
  FILE *f = fdopen(fd, "wb");
  char err[RCTD_ERR_LEN];
  rctd_writer_opts opts = {.chunk_rows = 8192};
  rctd_writer *w = rctd_writer_fopen(f, "pipe", &opts, err, sizeof err);
  if (!w) return 1;
  rctd_record_spec spec = {.name = "pixels",
                           .kind = RCTD_DENSE,
                           .dtype = RCTD_F64,
                           .cols = BIG_COLS,
                           .rows = RCTD_ROWS_UNKNOWN};
  if (rctd_write_begin(w, &spec) != 0) return 1;
  static double batch[1000 * BIG_COLS];
  for (uint64_t row = 0; row < BIG_ROWS; row += 1000) {
    for (uint64_t i = 0; i < 1000; i++)
      for (uint64_t j = 0; j < BIG_COLS; j++) batch[i * BIG_COLS + j] = big_value(row + i, j);
    if (rctd_write_rows(w, batch, 1000) != 0) return 1;
  }
  if (rctd_write_end(w) != 0 || rctd_writer_close(w, err, sizeof err) != 0) return 1;
  fclose(f);
  long grown = stream_status_kb("VmHWM") - base;
  return write(report_fd, &grown, sizeof grown) == sizeof grown ? 0 : 1;
}

static int big_reader(int fd, int report_fd) {
  long base = stream_status_kb("VmRSS");
  FILE *f = fdopen(fd, "rb");
  char err[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_fopen(f, "pipe", err, sizeof err);
  if (!r) return 1;
  const rctd_record_info *info;
  if (rctd_reader_next(r, &info) != 1 || info->rows != RCTD_ROWS_UNKNOWN) return 2;
  rctd_chunk c;
  int rc;
  uint64_t rows = 0, bad = 0;
  while ((rc = rctd_reader_chunk(r, &c)) == 1) {
    const double *x = c.data;
    for (uint64_t i = 0; i < c.rows; i++)
      for (uint64_t j = 0; j < BIG_COLS; j++)
        bad += x[i * BIG_COLS + j] != big_value(c.first_row + i, j);
    rows += c.rows;
  }
  if (rc != 0 || rows != BIG_ROWS || bad) return 3;
  if (rctd_reader_next(r, &info) != 0) return 4;
  rctd_reader_close(r);
  fclose(f);
  long grown = stream_status_kb("VmHWM") - base;
  return write(report_fd, &grown, sizeof grown) == sizeof grown ? 0 : 5;
}

TEST(stream_two_million_rows_bounded_memory) {
  int data[2], report[2];
  CHECK(pipe(data) == 0 && pipe(report) == 0);
  fflush(stdout);
  fflush(stderr);
  pid_t writer = fork();
  if (writer == 0) {
    close(data[0]);
    close(report[0]);
    _exit(big_writer(data[1], report[1]));
  }
  pid_t reader = fork();
  if (reader == 0) {
    close(data[1]);
    close(report[0]);
    _exit(big_reader(data[0], report[1]));
  }
  close(data[0]);
  close(data[1]);
  close(report[1]);
  int ws, rs;
  waitpid(writer, &ws, 0);
  waitpid(reader, &rs, 0);
  long grown[2] = {-1, -1};
  CHECK(read(report[0], grown, sizeof grown) == sizeof grown);
  close(report[0]);
  CHECK_MSG(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "writer status %d", ws);
  CHECK_MSG(WIFEXITED(rs) && WEXITSTATUS(rs) == 0, "reader status %d", rs);
  long data_kb = (long)BIG_ROWS * BIG_COLS * 8 / 1024; /* 250 MiB */
  fprintf(stderr, "  2M rows (%ld KiB): peak RSS growth %ld and %ld KiB\n", data_kb, grown[0],
          grown[1]);
  CHECK(grown[0] >= 0 && grown[1] >= 0);
  CHECK_MSG(grown[0] < data_kb / 10 && grown[1] < data_kb / 10, "peak growth %ld / %ld KiB",
            grown[0], grown[1]);
}

/* ---- damaged input ---- */

TEST(stream_rejects_truncation_everywhere) {
  char path[512], cut[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "whole.rctd");
  stream_path(cut, sizeof cut, "cut.rctd");
  CHECK(rctd_test_sample_write_path(path, 2) == 0);
  size_t len;
  unsigned char *bytes = stream_slurp(path, &len);
  CHECK(bytes != NULL);
  CHECK(stream_read_all(path, err, sizeof err) == 0);
  for (size_t n = 0; n < len; n++) {
    int rc = stream_read_mem(bytes, n, cut, err, sizeof err);
    int named = strncmp(err, cut, strlen(cut)) == 0;
    int says = strstr(err, "truncated") || (n == 0 && strstr(err, "empty input"));
    if (rc != -1 || !named || !says) free(bytes);
    CHECK_MSG(rc == -1, "cut at %zu of %zu accepted", n, len);
    CHECK_MSG(named && says, "cut at %zu: %s", n, err);
  }
  free(bytes);
}

/* Reads the sample from memory: 0 when it decodes to exactly the sample, else -1 with the
 * message (the reader's, or the sample check's for wrong contents). */
static int stream_check_mem(const unsigned char *bytes, size_t len, const char *label, char *msg,
                            size_t msg_len) {
  FILE *f = fmemopen((void *)bytes, len, "rb");
  if (!f) return snprintf(msg, msg_len, "fmemopen failed"), -1;
  rctd_reader *r = rctd_reader_fopen(f, label, msg, msg_len);
  int rc = r ? rctd_test_sample_check(r, msg, msg_len) : -1;
  rctd_reader_close(r);
  fclose(f);
  return rc;
}

TEST(stream_rejects_every_flipped_byte) {
  char path[512], bad[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "flip.rctd");
  stream_path(bad, sizeof bad, "flipped.rctd");
  CHECK(rctd_test_sample_write_path(path, 2) == 0);
  size_t len;
  unsigned char *bytes = stream_slurp(path, &len);
  CHECK(bytes != NULL);
  /* Every flip is either reported as damage of the named file, or (in bits zstd's entropy
   * decoder ignores) harmless: the contents still decode exactly.  Never a wrong result. */
  int wrong = -1, harmless = 0, flips = 0;
  for (size_t i = 0; i < len && wrong < 0; i++) {
    for (int bit = 0; bit < 8 && wrong < 0; bit += 3, flips++) {
      bytes[i] ^= (unsigned char)(1u << bit);
      int rc = stream_check_mem(bytes, len, bad, err, sizeof err);
      if (rc == 0)
        harmless++;
      else if (strncmp(err, bad, strlen(bad)) != 0)
        wrong = (int)i;
      bytes[i] ^= (unsigned char)(1u << bit);
    }
  }
  free(bytes);
  CHECK_MSG(wrong < 0, "flip at byte %d of %zu not reported properly: %s", wrong, len, err);
  CHECK_MSG(harmless * 100 < flips, "%d of %d flips went unnoticed", harmless, flips);
}

/* Offset of the first CHNK block of record NAME in a stream buffer, walking blocks. */
static long stream_find_chunk(const unsigned char *b, size_t len, const char *name) {
  size_t off = 16;
  int in_wanted = 0;
  while (off + 32 <= len) {
    uint64_t comp = 0;
    for (int i = 7; i >= 0; i--) comp = (comp << 8) | b[off + 24 + i];
    if (memcmp(b + off, "RHDR", 4) == 0) {
      unsigned char raw[4096];
      size_t n = ZSTD_decompress(raw, sizeof raw, b + off + 32, comp);
      uint32_t name_len = (uint32_t)raw[40] | (uint32_t)raw[41] << 8;
      in_wanted = !ZSTD_isError(n) && name_len == strlen(name) && !memcmp(raw + 44, name, name_len);
    } else if (memcmp(b + off, "CHNK", 4) == 0 && in_wanted) {
      return (long)off;
    }
    off += 32 + comp;
  }
  return -1;
}

TEST(stream_reports_corrupt_chunk_with_record_name) {
  char path[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "corrupt-chunk.rctd");
  CHECK(rctd_test_sample_write_path(path, 2) == 0);
  size_t len;
  unsigned char *bytes = stream_slurp(path, &len);
  long at = stream_find_chunk(bytes, len, "profiles");
  CHECK(at > 0);
  bytes[at + 32 + 20] ^= 0x40; /* inside the compressed frame of the first chunk */
  CHECK(stream_spit(path, bytes, len) == 0);
  /* A block header damaged: its CRC catches it. */
  bytes[at + 32 + 20] ^= 0x40;
  bytes[at + 9] ^= 0x01;
  char path2[512];
  stream_path(path2, sizeof path2, "corrupt-block.rctd");
  CHECK(stream_spit(path2, bytes, len) == 0);
  free(bytes);
  CHECK(stream_read_all(path, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, path) && strstr(err, "record 'profiles'") && strstr(err, "chunk 1") &&
                strstr(err, "corrupted"),
            "%s", err);
  CHECK(stream_read_all(path2, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "record 'profiles'") && strstr(err, "corrupted block header"), "%s", err);
}

TEST(stream_rejects_bad_magic_version_empty) {
  char path[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "magic.rctd");
  CHECK(rctd_test_sample_write_path(path, 0) == 0);
  size_t len;
  unsigned char *bytes = stream_slurp(path, &len);
  bytes[0] = 'X';
  CHECK(stream_spit(path, bytes, len) == 0);
  CHECK(rctd_reader_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, path) && strstr(err, "not an rctd stream"), "%s", err);
  bytes[0] = 'R';
  bytes[8] = 9;
  CHECK(stream_spit(path, bytes, len) == 0);
  CHECK(rctd_reader_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "unsupported stream format version 9"), "%s", err);
  free(bytes);
  CHECK(stream_spit(path, (const unsigned char *)"gene,count\nActb,3\n", 18) == 0);
  CHECK(rctd_reader_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "not an rctd stream"), "%s", err);
  CHECK(stream_spit(path, (const unsigned char *)"", 0) == 0);
  CHECK(rctd_reader_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "empty input"), "%s", err);
  stream_path(path, sizeof path, "does-not-exist.rctd");
  CHECK(rctd_reader_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, path) && strstr(err, "cannot open"), "%s", err);
}

TEST(stream_record_type_check) {
  char path[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "types.rctd");
  CHECK(rctd_test_sample_write_path(path, 0) == 0);
  rctd_reader *r = rctd_reader_open(path, err, sizeof err);
  const rctd_record_info *info;
  CHECK(rctd_reader_find(r, "counts", NULL, &info) == 1);
  CHECK(rctd_record_check(info, RCTD_CSR, RCTD_I32, 7, path, err, sizeof err) == 0);
  CHECK(rctd_record_check(info, RCTD_CSR, -1, 0, path, err, sizeof err) == 0);
  CHECK(rctd_record_check(info, RCTD_DENSE, RCTD_F64, 19, path, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, path) &&
                strstr(err,
                       "record 'counts': expected dense f64 with 19 columns, found csr i32 "
                       "with 7 columns"),
            "%s", err);
  CHECK(rctd_record_check(info, RCTD_STRINGS, -1, 0, path, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "expected strings, found csr i32"), "%s", err);
  rctd_reader_close(r);
}

/* ---- the documented byte layout, written by hand (as another language would) ---- */

static size_t hand_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
  return 4;
}
static size_t hand_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
  return 8;
}

/* Appends a block (tag, a, b, c + crc32) and, when payload is given, its zstd frame. */
static size_t hand_block(unsigned char *out, const char *tag, uint64_t a, const void *payload,
                         size_t payload_len, uint64_t c_if_no_payload) {
  unsigned char frame[4096];
  size_t comp = 0;
  if (payload) {
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    comp = ZSTD_compress2(cctx, frame, sizeof frame, payload, payload_len);
    ZSTD_freeCCtx(cctx);
  }
  memcpy(out, tag, 4);
  hand_u64(out + 8, a);
  hand_u64(out + 16, payload ? payload_len : c_if_no_payload);
  hand_u64(out + 24, payload ? comp : 0);
  uLong crc = crc32(crc32(0, Z_NULL, 0), out, 4);
  crc = crc32(crc, out + 8, 24);
  hand_u32(out + 4, (uint32_t)crc);
  memcpy(out + 32, frame, comp);
  return 32 + comp;
}

/* A stream with one dense i32 2x2 record (or KIND as given), made without the library. */
static size_t hand_stream(unsigned char *out, uint32_t kind) {
  size_t n = 0;
  memcpy(out, "RCTDSTRM", 8);
  n += 8;
  n += hand_u32(out + n, 1);
  n += hand_u32(out + n, 0);
  unsigned char hdr[256];
  size_t h = 0;
  h += hand_u32(hdr + h, kind);
  h += hand_u32(hdr + h, 3); /* i32 */
  h += hand_u32(hdr + h, 2);
  h += hand_u32(hdr + h, 0);
  h += hand_u64(hdr + h, 2);          /* cols */
  h += hand_u64(hdr + h, UINT64_MAX); /* rows unknown */
  h += hand_u64(hdr + h, 1);          /* chunk rows */
  h += hand_u32(hdr + h, 4);
  memcpy(hdr + h, "hand", 4);
  h += 4;
  h += hand_u32(hdr + h, 1);
  h += hand_u32(hdr + h, 3);
  memcpy(hdr + h, "who", 3);
  h += 3;
  h += hand_u32(hdr + h, 5);
  memcpy(hdr + h, "other", 5);
  h += 5;
  n += hand_block(out + n, "RHDR", 0, hdr, h, 0);
  int32_t row0[2] = {1, -2}, row1[2] = {3, 40000};
  n += hand_block(out + n, "CHNK", 1, row0, 8, 0);
  n += hand_block(out + n, "CHNK", 1, row1, 8, 0);
  n += hand_block(out + n, "REND", 2, NULL, 0, 2);
  n += hand_block(out + n, "SEND", 1, NULL, 0, 0);
  return n;
}

TEST(stream_byte_layout_by_hand) {
  unsigned char bytes[8192];
  size_t len = hand_stream(bytes, 1);
  char path[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "hand.rctd");
  CHECK(stream_spit(path, bytes, len) == 0);
  rctd_record rec;
  CHECK_MSG(rctd_load_record(path, "hand", &rec, err, sizeof err) == 0, "%s", err);
  int ok = rec.kind == RCTD_DENSE && rec.dtype == RCTD_I32 && rec.rows == 2 && rec.cols == 2 &&
           ((int32_t *)rec.data)[1] == -2 && ((int32_t *)rec.data)[3] == 40000 &&
           rec.n_attrs == 1 && strcmp(rec.attr_values[0], "other") == 0;
  rctd_record_free(&rec);
  CHECK(ok);
  /* An unknown record type code is reported with the record's name. */
  len = hand_stream(bytes, 9);
  CHECK(stream_spit(path, bytes, len) == 0);
  CHECK(stream_read_all(path, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "record 'hand': unknown record type 9"), "%s", err);
  /* The library's own output has the same header and frame structure. */
  CHECK(rctd_test_sample_write_path(path, 0) == 0);
  size_t lib_len;
  unsigned char *lib = stream_slurp(path, &lib_len);
  CHECK(lib && memcmp(lib, "RCTDSTRM\x01\0\0\0\0\0\0\0", 16) == 0);
  CHECK(memcmp(lib + lib_len - 32, "SEND", 4) == 0);
  CHECK(lib[lib_len - 24] == rctd_test_sample_records());
  free(lib);
}

TEST(stream_writer_misuse_is_reported) {
  char path[512], err[RCTD_ERR_LEN];
  stream_path(path, sizeof path, "misuse.rctd");
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  CHECK(w != NULL);
  double x[4] = {1, 2, 3, 4};
  rctd_record_spec spec = {
      .name = "m", .kind = RCTD_DENSE, .dtype = RCTD_F64, .cols = 2, .rows = 1};
  CHECK(rctd_write_begin(w, &spec) == 0);
  CHECK(rctd_write_rows(w, x, 2) == -1);
  CHECK_MSG(strstr(rctd_writer_error(w), "record 'm': more rows written than the 1 declared"), "%s",
            rctd_writer_error(w));
  CHECK(rctd_writer_close(w, err, sizeof err) == -1);
  CHECK(access(path, F_OK) != 0); /* a failed writer leaves no file */

  w = rctd_writer_open(path, NULL, err, sizeof err);
  spec.rows = 3;
  CHECK(rctd_write_begin(w, &spec) == 0 && rctd_write_rows(w, x, 2) == 0);
  CHECK(rctd_write_end(w) == -1);
  CHECK_MSG(strstr(rctd_writer_error(w), "2 rows written, 3 declared"), "%s", rctd_writer_error(w));
  rctd_writer_abort(w);
  CHECK(access(path, F_OK) != 0);

  w = rctd_writer_open(path, NULL, err, sizeof err);
  rctd_record_spec csr = {
      .name = "c", .kind = RCTD_CSR, .dtype = RCTD_F64, .cols = 3, .rows = RCTD_ROWS_UNKNOWN};
  int64_t indptr[2] = {0, 1};
  int32_t bad_col[1] = {3};
  CHECK(rctd_write_begin(w, &csr) == 0);
  CHECK(rctd_write_csr(w, indptr, bad_col, x, 1) == -1);
  CHECK_MSG(strstr(rctd_writer_error(w), "column index 3 out of range"), "%s",
            rctd_writer_error(w));
  rctd_writer_abort(w);

  w = rctd_writer_open(path, NULL, err, sizeof err);
  rctd_record_spec vec = {.name = "v", .kind = RCTD_DENSE, .dtype = RCTD_F64, .ndim = 1, .cols = 2};
  CHECK(rctd_write_begin(w, &vec) == -1);
  CHECK(rctd_write_string_list(w, "late", NULL, 0) == -1); /* the writer stays failed */
  rctd_writer_abort(w);

  /* Closing with an open record fails and removes the output. */
  w = rctd_writer_open(path, NULL, err, sizeof err);
  spec.rows = RCTD_ROWS_UNKNOWN;
  CHECK(rctd_write_begin(w, &spec) == 0 && rctd_write_rows(w, x, 2) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "closed before the record was ended"), "%s", err);
  CHECK(access(path, F_OK) != 0);
  CHECK(test_sh("ls -A '%s' | grep -q '\\.tmp\\.'", test_tmp_dir()) != 0); /* no temporaries */
}

TEST(stream_reads_committed_version_1_fixture) {
  /* tests/data/stream_sample_v1.rctd was written by rctd 0.1.0 (the sample, 2 rows per chunk).
   * Reading it keeps format version 1 readable whatever later changes to the writer. */
  char err[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_open("tests/data/stream_sample_v1.rctd", err, sizeof err);
  CHECK_MSG(r != NULL, "%s", err);
  int rc = rctd_test_sample_check(r, err, sizeof err);
  rctd_reader_close(r);
  CHECK_MSG(rc == 0, "%s", err);
}
