/* Likelihood tables on demand with the on-disk cache (lib/format/qtable_cache.c). */
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "common/poison.h"
#include "qtable_cache.h"
#include "test.h"

/* Reference rows computed directly with the kernel. */
static double *qct_direct(int sigma_value, int n_k, double **sq) {
  double x[RCTD_N_X];
  rctd_x_grid(x);
  double *q = malloc(sizeof(double) * (size_t)n_k * RCTD_N_X);
  *sq = malloc(sizeof(double) * (size_t)n_k * RCTD_N_X);
  if (!q || !*sq || rctd_qtable_rows(sigma_value / 100.0, x, 0, n_k, q, *sq) != 0) return NULL;
  return q;
}

static int qct_same(const rctd_qtable_owned *t, const double *q, const double *sq, int n_k) {
  size_t bytes = sizeof(double) * (size_t)n_k * RCTD_N_X;
  return t->table.n_k == n_k && t->table.q_kx == t->q_kx && t->table.x_vals == t->x_vals &&
         memcmp(t->q_kx, q, bytes) == 0 && memcmp(t->sq_kx, sq, bytes) == 0;
}

/* PATH: the entry for SIGMA_VALUE in the cache directory DIR. */
static void qct_entry_path(const char *dir, int sigma_value, char *path, size_t path_len) {
  snprintf(path, path_len, "%s/qtable-v%d-s%03d.rctd", dir, RCTD_QTABLE_VERSION, sigma_value);
}

/* A test's cache (its directory and entry), options, messages and reference rows. */
typedef struct {
  char dir[512], path[600], note[1024], err[RCTD_ERR_LEN];
  rctd_qtable_opts opts;
  double *q, *sq; /* qct_direct's rows */
} qct_env;

/* The cache NAME in the tests' folder with its entry for SIGMA_VALUE, N_K reference rows,
 * N_THREADS; 0 or -1. */
static int qct_env_init(qct_env *e, const char *name, int sigma_value, int n_k, int n_threads) {
  memset(e, 0, sizeof *e);
  snprintf(e->dir, sizeof e->dir, "%s/%s", test_tmp_dir(), name);
  qct_entry_path(e->dir, sigma_value, e->path, sizeof e->path);
  e->opts = (rctd_qtable_opts){.cache_dir = e->dir, .n_threads = n_threads};
  e->q = qct_direct(sigma_value, n_k, &e->sq);
  return e->q ? 0 : -1;
}

static void qct_env_free(qct_env *e) {
  free(e->q);
  free(e->sq);
}

/* rctd_qtable_get with E's options and messages. */
static int qct_get(qct_env *e, int sigma_value, int n_k, rctd_qtable_owned *t) {
  return rctd_qtable_get(sigma_value, n_k, &e->opts, t, e->note, sizeof e->note, e->err,
                         sizeof e->err);
}

/* A get of N_K rows for SIGMA_VALUE that returns E's reference rows with a note holding WANT
 * (the table freed); 1 when so. */
static int qct_get_same(qct_env *e, int sigma_value, int n_k, const char *want) {
  rctd_qtable_owned t;
  if (qct_get(e, sigma_value, n_k, &t) != 0) return 0;
  int ok = qct_same(&t, e->q, e->sq, n_k) && strstr(e->note, want);
  rctd_qtable_owned_free(&t);
  return ok;
}

static int qct_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static int qct_rows_same(const rctd_qtable_owned *t, const double *q, const double *sq,
                         const unsigned char *keep, int n_k);
static int qct_meta_is(const char *path, const char *key, const char *want);

TEST(qtable_compute_independent_of_threads) {
  enum { N_K = 40 };
  double *a = malloc(sizeof(double) * N_K * RCTD_N_X),
         *as = malloc(sizeof(double) * N_K * RCTD_N_X);
  double *b = malloc(sizeof(double) * N_K * RCTD_N_X),
         *bs = malloc(sizeof(double) * N_K * RCTD_N_X);
  CHECK(a && as && b && bs);
  CHECK(rctd_qtable_compute(0.84, 0, N_K, 1, a, as) == 0);
  CHECK(rctd_qtable_compute(0.84, 0, N_K, 3, b, bs) == 0);
  CHECK(memcmp(a, b, sizeof(double) * N_K * RCTD_N_X) == 0);
  CHECK(memcmp(as, bs, sizeof(double) * N_K * RCTD_N_X) == 0);
  /* Only the requested rows are written. */
  memset(b, 0, sizeof(double) * N_K * RCTD_N_X);
  CHECK(rctd_qtable_compute(0.84, 30, N_K, 4, b, bs) == 0);
  CHECK(b[29 * RCTD_N_X + 5] == 0 && b[30 * RCTD_N_X + 5] == a[30 * RCTD_N_X + 5]);
  CHECK(rctd_qtable_compute(0.84, 5, 4, 2, b, bs) == -1);
  free(a);
  free(as);
  free(b);
  free(bs);
}

TEST(qtable_cache_compute_store_reuse_extend) {
  qct_env e;
  CHECK(qct_env_init(&e, "qcache/nested", 84, 24, 2) == 0);
  rctd_qtable_owned t;

  /* First use: computed, written (the directory is created). */
  CHECK_MSG(qct_get_same(&e, 84, 16, "rows 0..15 computed") && strstr(e.note, "cached"), "%s",
            e.note);
  CHECK(qct_exists(e.path));

  /* Second use: from the cache, same bits; fewer rows also come from it. */
  CHECK_MSG(qct_get_same(&e, 84, 16, "from cache"), "%s", e.note);
  CHECK_MSG(qct_get_same(&e, 84, 5, "from cache"), "%s", e.note);

  /* More rows: only the missing ones are computed, and the entry grows. */
  CHECK_MSG(qct_get_same(&e, 84, 24, "rows 16..23 computed"), "%s", e.note);
  CHECK(qct_get(&e, 84, 24, &t) == 0);
  CHECK(qct_same(&t, e.q, e.sq, 24) && strstr(e.note, "from cache"));

  /* The records read back from a stream are the same table. */
  char err2[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_open(e.path, err2, sizeof err2);
  CHECK(r);
  rctd_qtable_owned back;
  CHECK(rctd_qtable_read_records(r, NULL, 84, 24, 0, &back, err2, sizeof err2) == 0);
  rctd_reader_close(r);
  CHECK(qct_same(&back, e.q, e.sq, 24));
  rctd_qtable_owned_free(&back);
  r = rctd_reader_open(e.path, err2, sizeof err2);
  CHECK(r);
  CHECK(rctd_qtable_read_records(r, NULL, 84, 25, 0, &back, err2, sizeof err2) == -1);
  CHECK_MSG(strstr(err2, "24 rows, 25 needed"), "%s", err2);
  rctd_reader_close(r);

  rctd_qtable_owned_free(&t);
  qct_env_free(&e);
}

/* keep_rows: a whole entry read back keeps only the flagged rows (the same bits there, the
 * others not written); an entry that must grow is read whole and stored whole. */
TEST(qtable_cache_keep_rows) {
  enum { N_K = 20 };
  unsigned char keep[N_K] = {0};
  keep[0] = keep[3] = keep[N_K - 1] = 1;
  qct_env e;
  CHECK(qct_env_init(&e, "qcache-keep", 62, N_K, 1) == 0);
  e.opts.keep_rows = keep;
  rctd_qtable_owned t;
  /* computed (an entry of 12 rows first, then grown with keep_rows set: the blocks of the
   * rows kept and the entry's last block, here all of them) */
  e.opts.keep_rows = NULL;
  CHECK(qct_get(&e, 62, 12, &t) == 0);
  CHECK(qct_same(&t, e.q, e.sq, 12));
  rctd_qtable_owned_free(&t);
  e.opts.keep_rows = keep;
  CHECK(qct_get(&e, 62, N_K, &t) == 0);
  CHECK_MSG(qct_rows_same(&t, e.q, e.sq, keep, N_K) && strstr(e.note, "rows 12..19 computed"), "%s",
            e.note);
  rctd_qtable_owned_free(&t);
  e.opts.keep_rows = keep;
  /* read from the cache: the flagged rows equal, the others left as they were */
  CHECK(qct_get(&e, 62, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "from cache"), "%s", e.note);
  int wrong = 0;
  for (int k = 0; k < N_K; k++) {
    if (!keep[k]) continue;
    size_t at = (size_t)k * RCTD_N_X, bytes = sizeof(double) * RCTD_N_X;
    wrong +=
        memcmp(t.q_kx + at, e.q + at, bytes) != 0 || memcmp(t.sq_kx + at, e.sq + at, bytes) != 0;
  }
  CHECK(t.table.n_k == N_K && wrong == 0);
  /* the rows left unset are marked (and, in the sanitizer build, poisoned: a read fails) */
  int marks_ok = t.row_loaded != NULL, poison_ok = 1;
  for (int k = 0; k < N_K && marks_ok; k++) {
    marks_ok = rctd_qtable_row_loaded(&t, k) == keep[k];
    poison_ok &= RCTD_IS_POISONED(t.q_kx + (size_t)k * RCTD_N_X) == (RCTD_ASAN_ON && !keep[k]);
    poison_ok &= RCTD_IS_POISONED(t.sq_kx + (size_t)k * RCTD_N_X + 7) == (RCTD_ASAN_ON && !keep[k]);
  }
  CHECK(marks_ok && poison_ok && !rctd_qtable_row_loaded(&t, N_K));
  /* and such a table is never written out (its unset rows would get fresh checksums) */
  char part[600];
  snprintf(part, sizeof part, "%s/partial.rctd", e.dir);
  rctd_writer *w = rctd_writer_open(part, NULL, e.err, sizeof e.err);
  CHECK(w && rctd_qtable_write_records(w, &t) != 0);
  if (w) rctd_writer_abort(w);
  CHECK(access(part, F_OK) != 0);
  /* so are the spline coefficients built for the kept rows only; the built ones are the whole
   * build's */
  const size_t n_coef = rctd_spline_coef_doubles(N_K), per_row = n_coef / N_K;
  double *coef = malloc(n_coef * sizeof *coef), *all = malloc(n_coef * sizeof *all);
  CHECK(coef && all);
  rctd_spline_coef_build_rows(&t.table, keep, coef);
  rctd_qtable whole = {N_K, t.x_vals, e.q, e.sq};
  rctd_spline_coef_build(&whole, all);
  int coef_ok = 1;
  for (int k = 0; k < N_K; k++) {
    const double *row = coef + (size_t)k * per_row;
    if (keep[k]) coef_ok &= memcmp(row, all + (size_t)k * per_row, per_row * sizeof *row) == 0;
    coef_ok &= RCTD_IS_POISONED(row + per_row / 2) == (RCTD_ASAN_ON && !keep[k]);
  }
  CHECK(coef_ok);
  rctd_spline_coef_build_rows(&whole, NULL, coef); /* all rows again: set, none poisoned */
  CHECK(memcmp(coef, all, n_coef * sizeof *coef) == 0);
  free(coef);
  free(all);
  rctd_qtable_owned_free(&t);
  /* the entry itself is whole */
  e.opts.keep_rows = NULL;
  CHECK(qct_get(&e, 62, N_K, &t) == 0);
  CHECK(qct_same(&t, e.q, e.sq, N_K) && strstr(e.note, "from cache"));
  rctd_qtable_owned_free(&t);
  qct_env_free(&e);
}

/* Writes BYTES at OFFSET of PATH (or truncates there when bytes is NULL). */
static int qct_damage(const char *path, long offset, const char *bytes) {
  if (!bytes) return truncate(path, offset);
  FILE *f = fopen(path, "r+b");
  if (!f) return -1;
  int rc = fseek(f, offset, SEEK_SET) == 0 && fwrite(bytes, 1, strlen(bytes), f) == strlen(bytes);
  return fclose(f) == 0 && rc ? 0 : -1;
}

static long qct_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Writes an entry of sigma 84 by hand: the meta record's crc32 WHOLE and N_EXTRA (at most 2)
 * more keys, q and sq in chunks of CHUNK_ROWS rows (0: the writer's default). */
static int qct_write_entry(const char *path, const rctd_qtable_owned *t, const char *whole,
                           const char *const *extra_keys, const char *const *extra_values,
                           int n_extra, int chunk_rows) {
  if (n_extra < 0 || n_extra > 2) return -1;
  char err[RCTD_ERR_LEN], nk[16], version[16], nx[16];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  if (!w) return -1;
  snprintf(nk, sizeof nk, "%d", t->table.n_k);
  snprintf(version, sizeof version, "%d", RCTD_QTABLE_VERSION); /* what the reader checks */
  snprintf(nx, sizeof nx, "%d", RCTD_N_X);
  const char *keys[9] = {"format", "version", "sigma", "sigma_c", "n_k", "n_x", "crc32"};
  const char *values[9] = {
      RCTD_QTABLE_FORMAT, version, "84", "0x1.ae147ae147ae1p-1", nk, nx, whole};
  for (int i = 0; i < n_extra; i++) keys[7 + i] = extra_keys[i], values[7 + i] = extra_values[i];
  int bad = rctd_write_meta(w, RCTD_QTABLE_REC_META, keys, values, (size_t)(7 + n_extra)) != 0 ||
            rctd_write_vector(w, RCTD_QTABLE_REC_X, RCTD_F64, RCTD_N_X, t->x_vals, NULL) != 0;
  const char *names[] = {RCTD_QTABLE_REC_Q, RCTD_QTABLE_REC_SQ};
  const double *data[] = {t->q_kx, t->sq_kx};
  for (int i = 0; i < 2 && !bad; i++)
    bad = rctd_write_dense_chunked(w, names[i], RCTD_F64, (uint64_t)t->table.n_k, RCTD_N_X, data[i],
                                   NULL, NULL, (uint64_t)chunk_rows) != 0;
  if (bad) {
    rctd_writer_abort(w);
    return -1;
  }
  return rctd_writer_close(w, err, sizeof err);
}

/* An entry whose meta record also says KEY = VALUE, with crc32 "0" (for stale-entry tests). */
static int qct_write_fake(const char *path, const rctd_qtable_owned *t, const char *key,
                          const char *value) {
  return qct_write_entry(path, t, "0", &key, &value, 1, 0);
}

/* Corrupt, truncated, foreign or stale entries are rebuilt, never fatal. */
TEST(qtable_cache_rebuilds_bad_entries) {
  qct_env e;
  CHECK(qct_env_init(&e, "qcache-bad", 84, 6, 2) == 0);
  rctd_qtable_owned t;
  CHECK(qct_get(&e, 84, 6, &t) == 0);
  long size = qct_size(e.path);
  CHECK(size > 100);

  struct {
    const char *what;
    long offset;
    const char *bytes;
  } damage[] = {
      {"garbage in the data", size / 2, "\x13\x37garbage\x42\x99"},
      {"garbage at the start", 0, "not a stream"},
      {"truncated", size / 3, NULL},
      {"empty", 0, NULL},
  };
  for (size_t i = 0; i < sizeof damage / sizeof *damage; i++) {
    CHECK(qct_damage(e.path, damage[i].offset, damage[i].bytes) == 0);
    rctd_qtable_owned u;
    CHECK_MSG(qct_get(&e, 84, 6, &u) == 0, "%s: %s", damage[i].what, e.err);
    CHECK_MSG(qct_same(&u, e.q, e.sq, 6), "%s", damage[i].what);
    CHECK_MSG(strstr(e.note, "unusable") && strstr(e.note, "cached"), "%s: %s", damage[i].what,
              e.note);
    rctd_qtable_owned_free(&u);
    /* The entry was rewritten and is good again. */
    CHECK(qct_get(&e, 84, 6, &u) == 0);
    CHECK_MSG(strstr(e.note, "from cache"), "%s: %s", damage[i].what, e.note);
    rctd_qtable_owned_free(&u);
  }

  /* Well-formed streams that are not this build's table for this sigma. */
  struct {
    const char *key, *value, *expect;
  } stale[] = {
      {"version", "999", "version"},
      {"sigma", "85", "another sigma"},
      {"format", "something-else", "not a likelihood table"},
      {"note", "x", "checksum"}, /* crc32 "0" does not match the data */
  };
  for (size_t i = 0; i < sizeof stale / sizeof *stale; i++) {
    CHECK(qct_write_fake(e.path, &t, stale[i].key, stale[i].value) == 0);
    rctd_qtable_owned u;
    CHECK(qct_get(&e, 84, 6, &u) == 0);
    CHECK_MSG(qct_same(&u, e.q, e.sq, 6), "%s", stale[i].key);
    CHECK_MSG(strstr(e.note, "unusable") && strstr(e.note, stale[i].expect), "%s: %s", stale[i].key,
              e.note);
    rctd_qtable_owned_free(&u);
  }

  /* A cache that cannot be written: the table is still returned. */
  char file_dir[600];
  snprintf(file_dir, sizeof file_dir, "%s/plain-file", test_tmp_dir());
  FILE *f = fopen(file_dir, "w");
  CHECK(f && fclose(f) == 0);
  char sub[700];
  snprintf(sub, sizeof sub, "%s/sub", file_dir);
  rctd_qtable_opts bad_dir = {.cache_dir = sub, .n_threads = 1};
  rctd_qtable_owned u;
  CHECK(rctd_qtable_get(84, 6, &bad_dir, &u, e.note, sizeof e.note, e.err, sizeof e.err) == 0);
  CHECK(qct_same(&u, e.q, e.sq, 6));
  CHECK_MSG(strstr(e.note, "not cached"), "%s", e.note);
  rctd_qtable_owned_free(&u);
  /* the cache directory itself a file: the note says so (not mkdir's "File exists") */
  bad_dir.cache_dir = file_dir;
  CHECK(rctd_qtable_get(84, 6, &bad_dir, &u, e.note, sizeof e.note, e.err, sizeof e.err) == 0);
  CHECK(qct_same(&u, e.q, e.sq, 6));
  const char *why_not = strstr(e.note, "not cached: ");
  CHECK_MSG(why_not && strstr(why_not, "Not a directory"), "%s", e.note);
  rctd_qtable_owned_free(&u);

  /* No cache at all. */
  rctd_qtable_opts none = {.cache_dir = "", .n_threads = 1};
  CHECK(rctd_qtable_get(84, 6, &none, &u, e.note, sizeof e.note, e.err, sizeof e.err) == 0);
  CHECK(qct_same(&u, e.q, e.sq, 6) && strstr(e.note, "no cache"));
  rctd_qtable_owned_free(&u);

  rctd_qtable_owned_free(&t);
  qct_env_free(&e);
}

TEST(qtable_cache_bad_arguments_and_default_dir) {
  char note[512], err[RCTD_ERR_LEN], buf[1024];
  rctd_qtable_opts none = {.cache_dir = ""};
  rctd_qtable_owned t;
  CHECK(rctd_qtable_get(85, 5, &none, &t, note, sizeof note, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "not on the grid"), "%s", err);
  CHECK(rctd_qtable_get(9, 5, &none, &t, note, sizeof note, err, sizeof err) == -1);
  CHECK(rctd_qtable_get(84, 0, &none, &t, note, sizeof note, err, sizeof err) == -1);
  CHECK(rctd_qtable_get(84, RCTD_N_K_FULL + 1, &none, &t, note, sizeof note, err, sizeof err) ==
        -1);

  const char *old_xdg = getenv("XDG_CACHE_HOME"), *old_home = getenv("HOME");
  char saved_xdg[1024] = "", saved_home[1024] = "";
  if (old_xdg) snprintf(saved_xdg, sizeof saved_xdg, "%s", old_xdg);
  if (old_home) snprintf(saved_home, sizeof saved_home, "%s", old_home);
  setenv("XDG_CACHE_HOME", "/some/xdg", 1);
  setenv("HOME", "/home/someone", 1);
  int ok1 = rctd_qtable_cache_dir_default(buf, sizeof buf) == 0 && !strcmp(buf, "/some/xdg/rctd");
  setenv("XDG_CACHE_HOME", "relative/xdg", 1); /* not absolute: ignored, as the spec says */
  int ok2 = rctd_qtable_cache_dir_default(buf, sizeof buf) == 0 &&
            !strcmp(buf, "/home/someone/.cache/rctd");
  unsetenv("XDG_CACHE_HOME");
  unsetenv("HOME");
  int ok3 = rctd_qtable_cache_dir_default(buf, sizeof buf) == -1;
  if (old_xdg) setenv("XDG_CACHE_HOME", saved_xdg, 1);
  if (old_home) setenv("HOME", saved_home, 1);
  CHECK(ok1 && ok2 && ok3);
}

/* Offset of the NTH (1-based) CHNK block of the stream in BUF, walking its blocks; -1. */
static long qct_chunk_at(const unsigned char *buf, size_t len, int nth) {
  size_t pos = 16;
  while (pos + 32 <= len) {
    uint64_t c;
    memcpy(&c, buf + pos + 24, 8);
    if (memcmp(buf + pos, "CHNK", 4) == 0 && --nth == 0) return (long)pos;
    if (memcmp(buf + pos, "RHDR", 4) == 0 || memcmp(buf + pos, "CHNK", 4) == 0)
      pos += 32 + (size_t)c;
    else if (memcmp(buf + pos, "REND", 4) == 0)
      pos += 32;
    else
      return -1;
  }
  return -1;
}

/* Flips a byte inside the frame of the NTH (1-based) chunk of the entry at PATH (zstd's frame
 * checks may pass; the crc32 fails). */
static int qct_damage_chunk(const char *path, int nth) {
  FILE *f = fopen(path, "r+b");
  if (!f) return -1;
  long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  unsigned char *buf = len > 0 ? malloc((size_t)len) : NULL;
  int ok = buf && fseek(f, 0, SEEK_SET) == 0 && fread(buf, 1, (size_t)len, f) == (size_t)len;
  long at = ok ? qct_chunk_at(buf, (size_t)len, nth) + 32 + 100 : -1;
  ok = ok && at > 132 && at < len && fseek(f, at, SEEK_SET) == 0 && fputc(buf[at] ^ 0x5a, f) != EOF;
  free(buf);
  return fclose(f) == 0 && ok ? 0 : -1;
}

static int qct_meta_is(const char *path, const char *key, const char *want) {
  rctd_record meta;
  char err[RCTD_ERR_LEN];
  if (rctd_load_record(path, RCTD_QTABLE_REC_META, &meta, err, sizeof err) != 0) return 0;
  const char *v = rctd_record_meta_get(&meta, key);
  int ok = want ? v && strcmp(v, want) == 0 : v == NULL;
  rctd_record_free(&meta);
  return ok;
}

static int qct_rows_same(const rctd_qtable_owned *t, const double *q, const double *sq,
                         const unsigned char *keep, int n_k) {
  for (int k = 0; k < n_k; k++) {
    size_t at = (size_t)k * RCTD_N_X, bytes = sizeof(double) * RCTD_N_X;
    if (keep[k] && (memcmp(t->q_kx + at, q + at, bytes) || memcmp(t->sq_kx + at, sq + at, bytes)))
      return 0;
  }
  return t->table.n_k == n_k;
}

/* Entries in blocks of rows: a keep_rows read decodes only the blocks it needs (a damaged
 * block it does not need goes unseen; a whole read rebuilds the entry), and an entry of the
 * first layout (one checksum over all the data) is read and stored again in blocks. */
TEST(qtable_cache_blocks) {
  enum { N_K = 40 }; /* five blocks of 8 rows */
  unsigned char keep[N_K] = {0};
  keep[1] = keep[33] = 1; /* blocks 0 and 4 */
  qct_env e;
  CHECK(qct_env_init(&e, "qcache-blocks", 70, N_K, 2) == 0);
  rctd_qtable_owned t;
  CHECK(qct_get(&e, 70, N_K, &t) == 0);
  CHECK(qct_same(&t, e.q, e.sq, N_K));
  CHECK(qct_meta_is(e.path, "block_rows", "8"));

  /* q's block 2 (chunks: meta, x, then q's five) damaged inside its frame */
  CHECK(qct_damage_chunk(e.path, 5) == 0);
  e.opts.keep_rows = keep;
  rctd_qtable_owned u;
  CHECK(qct_get(&e, 70, N_K, &u) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_rows_same(&u, e.q, e.sq, keep, N_K), "%s", e.note);
  rctd_qtable_owned_free(&u);
  keep[20] = 1; /* now block 2 is needed: the damage is seen, the entry rebuilt */
  CHECK(qct_get(&e, 70, N_K, &u) == 0);
  CHECK_MSG(strstr(e.note, "unusable") && qct_rows_same(&u, e.q, e.sq, keep, N_K), "%s", e.note);
  rctd_qtable_owned_free(&u);
  CHECK(qct_get(&e, 70, N_K, &u) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_rows_same(&u, e.q, e.sq, keep, N_K), "%s", e.note);
  rctd_qtable_owned_free(&u);

  /* the first layout (as a model stream carries the table): read, and stored again in blocks,
   * whole although fewer rows were asked for */
  rctd_writer *w = rctd_writer_open(e.path, NULL, e.err, sizeof e.err);
  CHECK(w && rctd_qtable_write_records(w, &t) == 0 &&
        rctd_writer_close(w, e.err, sizeof e.err) == 0);
  CHECK(qct_meta_is(e.path, "block_rows", NULL));
  CHECK(qct_get(&e, 70, 30, &u) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_same(&u, e.q, e.sq, 30), "%s", e.note);
  rctd_qtable_owned_free(&u);
  CHECK(qct_meta_is(e.path, "block_rows", "8") && qct_meta_is(e.path, "n_k", "40"));
  e.opts.keep_rows = NULL;
  CHECK(qct_get(&e, 70, N_K, &u) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_same(&u, e.q, e.sq, N_K), "%s", e.note);
  rctd_qtable_owned_free(&u);

  /* block_rows without its crc32 list (qct_write_fake's header is sigma 84's): unusable */
  double *sq84, *q84 = qct_direct(84, N_K, &sq84);
  CHECK(q84);
  qct_entry_path(e.dir, 84, e.path, sizeof e.path);
  CHECK(qct_write_fake(e.path, &t, "block_rows", "8") == 0);
  CHECK(qct_get(&e, 84, N_K, &u) == 0);
  CHECK_MSG(strstr(e.note, "unusable") && strstr(e.note, "blocks") && qct_same(&u, q84, sq84, N_K),
            "%s", e.note);
  rctd_qtable_owned_free(&u);
  free(q84);
  free(sq84);
  rctd_qtable_owned_free(&t);
  qct_env_free(&e);
}

/* A blocked entry of sigma 84 written by hand: the meta's whole-data crc32 WHOLE, block list
 * CRCS and chunks of CHUNK_ROWS rows (an entry of this build has chunks of block_rows 8 and
 * their crc32s). */
static int qct_write_blocked(const char *path, const rctd_qtable_owned *t, const char *whole,
                             const char *crcs, int chunk_rows) {
  const char *keys[] = {"block_rows", "block_crc32"}, *values[] = {"8", crcs};
  return qct_write_entry(path, t, whole, keys, values, 2, chunk_rows);
}

/* The crc32 of all q rows then all sq rows. */
static unsigned long qct_whole_crc(const rctd_qtable_owned *t) {
  const uInt bytes = (uInt)(sizeof(double) * RCTD_N_X * (size_t)t->table.n_k);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, (const Bytef *)t->q_kx, bytes);
  return crc32(crc, (const Bytef *)t->sq_kx, bytes);
}

/* Each 8-row block's crc32 over its q rows then its sq rows, computed here from the table. */
static void qct_block_crcs(const rctd_qtable_owned *t, char *list, size_t cap) {
  size_t used = 0;
  for (int first = 0; first < t->table.n_k; first += 8) {
    const int rows = t->table.n_k - first < 8 ? t->table.n_k - first : 8;
    const size_t at = (size_t)first * RCTD_N_X, bytes = sizeof(double) * RCTD_N_X * rows;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)(t->q_kx + at), (uInt)bytes);
    crc = crc32(crc, (const Bytef *)(t->sq_kx + at), (uInt)bytes);
    used += (size_t)snprintf(list + used, cap - used, first ? " %lu" : "%lu", (unsigned long)crc);
  }
}

/* The block list is checked: a wrong crc32 (zstd's own frame checks pass), too few or too many
 * values, a value that is not a number, or chunks other than the header's blocks make the entry
 * unusable and it is rebuilt; so does a wrong whole-data crc32 in an entry read whole (its
 * blocks intact), which a read of some blocks does not check. */
TEST(qtable_cache_block_list_checked) {
  enum { N_K = 20 }; /* blocks of 8, 8 and 4 rows */
  qct_env e;
  CHECK(qct_env_init(&e, "qcache-blist", 84, N_K, 2) == 0);
  rctd_qtable_owned t, u;
  CHECK(qct_get(&e, 84, N_K, &t) == 0);
  char good[64], wrong[64], few[64], many[80], whole[24], whole_wrong[24];
  qct_block_crcs(&t, good, sizeof good);
  snprintf(whole, sizeof whole, "%lu", qct_whole_crc(&t));
  snprintf(whole_wrong, sizeof whole_wrong, "%lu", qct_whole_crc(&t) ^ 1UL);
  unsigned long first = strtoul(good, NULL, 10);
  snprintf(wrong, sizeof wrong, "%lu%s", first ^ 1UL, strchr(good, ' '));
  snprintf(few, sizeof few, "%.*s", (int)(strrchr(good, ' ') - good), good);
  snprintf(many, sizeof many, "%s 12345", good);
  struct {
    const char *whole, *crcs;
    int chunk_rows;
    const char *expect; /* NULL: read from the cache */
  } cases[] = {{whole, good, 8, NULL},        {whole, wrong, 8, "checksum"},
               {whole, few, 8, "header"},     {whole, many, 8, "header"},
               {whole, "1 2 x", 8, "header"}, {whole, "1 2 3 ", 8, "header"},
               {whole, good, 4, "differ"},    {whole_wrong, good, 8, "checksum"}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    CHECK(qct_write_blocked(e.path, &t, cases[i].whole, cases[i].crcs, cases[i].chunk_rows) == 0);
    CHECK(qct_get(&e, 84, N_K, &u) == 0);
    const char *want = cases[i].expect ? cases[i].expect : "from cache";
    CHECK_MSG(qct_same(&u, e.q, e.sq, N_K) && strstr(e.note, want) &&
                  (!cases[i].expect || strstr(e.note, "unusable")),
              "case %zu: %s", i, e.note);
    rctd_qtable_owned_free(&u);
  }
  /* the wrong whole crc32 goes unchecked by a read keeping rows (some blocks) */
  unsigned char keep[N_K] = {0};
  keep[3] = 1;
  e.opts.keep_rows = keep;
  CHECK(qct_write_blocked(e.path, &t, whole_wrong, good, 8) == 0);
  CHECK(qct_get(&e, 84, N_K, &u) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_rows_same(&u, e.q, e.sq, keep, N_K), "%s", e.note);
  rctd_qtable_owned_free(&u);
  rctd_qtable_owned_free(&t);
  qct_env_free(&e);
}

/* A cold get keeping rows computes only the blocks (8 rows) holding them, with the bits of a
 * whole computation, and stores an entry lacking the others ("-" in its block list and as its
 * crc32, which no whole-table reader accepts); a later get needing other blocks computes just
 * those and the entry grows; a whole get fills in the rest. */
TEST(qtable_cache_cold_blocks) {
  enum { N_K = 45 }; /* six blocks, the last of 5 rows */
  unsigned char keep[N_K] = {0};
  keep[1] = keep[33] = keep[34] = 1; /* blocks 0 and 4 */
  qct_env e;
  CHECK(qct_env_init(&e, "qcache-cold", 56, N_K, 2) == 0);
  e.opts.keep_rows = keep;
  rctd_qtable_owned t;
  CHECK(qct_get(&e, 56, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "rows 0..7, 32..39 computed") && strstr(e.note, "cached"), "%s", e.note);
  CHECK(qct_rows_same(&t, e.q, e.sq, keep, N_K));
  int marks_ok = 1; /* the rows not computed are marked, and poisoned in the sanitizer build */
  for (int k = 0; k < N_K; k++) {
    marks_ok &= rctd_qtable_row_loaded(&t, k) == keep[k];
    marks_ok &= RCTD_IS_POISONED(t.q_kx + (size_t)k * RCTD_N_X) == (RCTD_ASAN_ON && !keep[k]);
    marks_ok &= RCTD_IS_POISONED(t.sq_kx + (size_t)k * RCTD_N_X + 9) == (RCTD_ASAN_ON && !keep[k]);
  }
  CHECK(marks_ok);
  rctd_qtable_owned_free(&t);
  CHECK(qct_meta_is(e.path, "crc32", "-"));
  CHECK(qct_meta_is(e.path, "n_k", "45"));
  /* a model-stream read (whole tables only) refuses such an entry */
  rctd_reader *r = rctd_reader_open(e.path, e.err, sizeof e.err);
  CHECK(r);
  rctd_qtable_owned back;
  CHECK(rctd_qtable_read_records(r, NULL, 56, 1, 0, &back, e.err, sizeof e.err) == -1);
  rctd_reader_close(r);
  /* the same rows again: from the cache */
  CHECK(qct_get(&e, 56, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_rows_same(&t, e.q, e.sq, keep, N_K), "%s", e.note);
  rctd_qtable_owned_free(&t);
  /* another block needed (and the last, short one): just those computed */
  keep[20] = keep[44] = 1;
  CHECK(qct_get(&e, 56, N_K, &t) == 0);
  CHECK_MSG(
      strstr(e.note, "rows 16..23, 40..44 computed") && qct_rows_same(&t, e.q, e.sq, keep, N_K),
      "%s", e.note);
  rctd_qtable_owned_free(&t);
  /* fewer rows asked for, keeping rows of present blocks: from the cache, the entry kept */
  CHECK(qct_get(&e, 56, 30, &t) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_rows_same(&t, e.q, e.sq, keep, 30), "%s", e.note);
  rctd_qtable_owned_free(&t);
  /* a whole get: the rest computed, the entry whole (a numeric crc32), the same bits */
  e.opts.keep_rows = NULL;
  CHECK(qct_get(&e, 56, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "rows 8..15, 24..31 computed") && qct_same(&t, e.q, e.sq, N_K), "%s",
            e.note);
  CHECK(t.row_loaded == NULL);
  rctd_qtable_owned_free(&t);
  CHECK(!qct_meta_is(e.path, "crc32", "-"));
  CHECK(qct_get(&e, 56, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "from cache") && qct_same(&t, e.q, e.sq, N_K), "%s", e.note);
  rctd_qtable_owned_free(&t);
  r = rctd_reader_open(e.path, e.err, sizeof e.err);
  CHECK(r && rctd_qtable_read_records(r, NULL, 56, N_K, 0, &back, e.err, sizeof e.err) == 0);
  if (r) rctd_reader_close(r);
  CHECK(qct_same(&back, e.q, e.sq, N_K));
  rctd_qtable_owned_free(&back);

  /* a partial entry with a damaged present block: rebuilt (only the blocks needed), never
   * fatal; a whole get of an entry with more rows than asked keeps them */
  unsigned char keep2[N_K] = {0};
  keep2[2] = 1;
  qct_entry_path(e.dir, 84, e.path, sizeof e.path);
  double *sq84, *q84 = qct_direct(84, N_K, &sq84);
  CHECK(q84);
  e.opts.keep_rows = keep2;
  CHECK(qct_get(&e, 84, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "rows 0..7 computed"), "%s", e.note);
  rctd_qtable_owned_free(&t);
  CHECK(qct_damage_chunk(e.path, 2) == 0); /* q's block 0 */
  CHECK(qct_get(&e, 84, N_K, &t) == 0);
  CHECK_MSG(strstr(e.note, "rows 0..7 computed") && strstr(e.note, "unusable") &&
                qct_rows_same(&t, q84, sq84, keep2, N_K),
            "%s", e.note);
  rctd_qtable_owned_free(&t);
  e.opts.keep_rows = NULL;
  CHECK(qct_get(&e, 84, 20, &t) == 0);
  CHECK_MSG(strstr(e.note, "rows 8..23 computed") && qct_same(&t, q84, sq84, 20), "%s", e.note);
  rctd_qtable_owned_free(&t);
  CHECK(qct_meta_is(e.path, "n_k", "45") && qct_meta_is(e.path, "crc32", "-"));
  free(q84);
  free(sq84);
  qct_env_free(&e);
}

static int qct_failing_qtable(rctd_backend *be, double sigma_c, int n_k, double *q_kx,
                              double *sq_kx) {
  (void)be, (void)sigma_c, (void)n_k, (void)q_kx, (void)sq_kx;
  return -1;
}

/* A fill failing for another cause than memory says so (here a backend failing to compute the
 * rows), and stores nothing. */
TEST(qtable_cache_fill_failure_cause) {
  rctd_backend failing = {.name = "fake:0", .qtable = qct_failing_qtable};
  qct_env e;
  CHECK(qct_env_init(&e, "qcache-fail", 84, 1, 1) == 0);
  e.opts.backend = &failing;
  rctd_qtable_owned t;
  CHECK(qct_get(&e, 84, 12, &t) == -1);
  CHECK_MSG(
      strstr(e.err, "sigma 84: computing table rows 0..11 on fake:0 failed: try --device cpu") &&
          !strstr(e.err, "memory") && !strchr(e.err, '\n'),
      "%s", e.err);
  CHECK(!qct_exists(e.path) && t.q_kx == NULL);
  qct_env_free(&e);
}

/* In a forked child (so that a regression that blocks fails at the alarm instead of hanging
 * the suite): a get of sigma 84's 6 rows from DIR; exit status 0 when it returned the table,
 * 1 when it failed, 2 when the bits differ; the note is written to NOTE_PATH. */
static int qct_get_in_child(const char *dir, const char *note_path) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(20);
    char note[1024] = "", err[RCTD_ERR_LEN];
    rctd_qtable_opts opts = {.cache_dir = dir, .n_threads = 1};
    rctd_qtable_owned t;
    double *sq, *q = qct_direct(84, 6, &sq);
    int rc = rctd_qtable_get(84, 6, &opts, &t, note, sizeof note, err, sizeof err) != 0 ? 1
             : !q || !qct_same(&t, q, sq, 6)                                            ? 2
                                                                                        : 0;
    FILE *f = fopen(note_path, "w");
    if (f) fprintf(f, "%s", rc == 1 ? err : note), fclose(f);
    _exit(rc);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* An entry path that is not a regular file (a FIFO nobody writes, a symbolic link to a file
 * that is not the cache's, a directory) is neither read (a FIFO would block the run) nor
 * written through (the file a link names would be replaced by a cache entry): the table is
 * computed, the note says why it was not cached, and the thing in the cache is left alone. */
TEST(qtable_cache_entry_not_a_regular_file) {
  char dir[512], path[600], note_path[600], precious[600];
  snprintf(dir, sizeof dir, "%s/qcache-odd", test_tmp_dir());
  snprintf(path, sizeof path, "%s/qtable-v%d-s084.rctd", dir, RCTD_QTABLE_VERSION);
  snprintf(note_path, sizeof note_path, "%s/note.txt", test_tmp_dir());
  snprintf(precious, sizeof precious, "%s/precious.txt", test_tmp_dir());
  CHECK(test_sh("mkdir -p '%s' && rm -f '%s' && mkfifo '%s'", dir, path, path) == 0);
  CHECK(qct_get_in_child(dir, note_path) == 0);
  CHECK(test_sh("test -p '%s' && grep -q 'not cached: %s: not a regular file' '%s'", path, path,
                note_path) == 0);
  CHECK(test_sh("rm -f '%s' && echo precious > '%s' && ln -s '%s' '%s'", path, precious, precious,
                path) == 0);
  CHECK(qct_get_in_child(dir, note_path) == 0);
  CHECK(test_sh("test -L '%s' && test \"$(cat '%s')\" = precious && grep -q 'not a regular file' "
                "'%s'",
                path, precious, note_path) == 0);
  CHECK(test_sh("rm -f '%s' && mkdir '%s'", path, path) == 0);
  CHECK(qct_get_in_child(dir, note_path) == 0);
  CHECK(test_sh("test -d '%s' && grep -q 'not a regular file' '%s'", path, note_path) == 0);
}
