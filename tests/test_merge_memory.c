/* rctd-merge on result streams written here by hand (the layout of lib/stage/fit_stage.h): memory
 * stays bounded by the chunk, not by the pixels, and damaged streams are refused. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fit_stage.h"
#include "merge.h"
#include "stream.h"
#include "test.h"

#define TMM_MEASURE_RSS TEST_MEASURES_RSS

typedef struct {
  int64_t n_pixels;
  int n_types, chunk_pixels, shard_index, shard_count;
  int64_t skip_pixel; /* a pixel index written twice in place of the next one (damage), or -1 */
} tmm_spec;

static int tmm_put(rctd_writer *w, const char *name, rctd_kind kind, rctd_dtype dtype,
                   uint64_t cols, uint64_t n, const void *data, int64_t first, int64_t chunk) {
  char f[32], c[32];
  snprintf(f, sizeof f, "%" PRId64, first);
  snprintf(c, sizeof c, "%" PRId64, chunk);
  const char *keys[] = {"first", "chunk"}, *values[] = {f, c};
  rctd_record_spec spec = {.name = name,
                           .kind = kind,
                           .dtype = dtype,
                           .ndim = cols == 1 ? 1 : 2,
                           .cols = cols,
                           .rows = n,
                           .n_attrs = 2,
                           .attr_keys = keys,
                           .attr_values = values};
  if (rctd_write_begin(w, &spec) < 0) return -1;
  int rc = kind == RCTD_STRINGS ? rctd_write_strings(w, data, n) : rctd_write_rows(w, data, n);
  return rc < 0 ? -1 : rctd_write_end(w);
}

/* A full-mode result stream (shard I/N of the chunks). */
static int tmm_write(const char *path, const tmm_spec *s) {
  char err[RCTD_ERR_LEN];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  if (!w) return -1;
  const int K = s->n_types, C = s->chunk_pixels;
  const int64_t n_chunks = (s->n_pixels + C - 1) / C;
  int64_t c0, c1;
  rctd_fit_shard_chunks(n_chunks, s->shard_index, s->shard_count, &c0, &c1);
  int64_t p0 = c0 * C, p1 = c1 * C < s->n_pixels ? c1 * C : s->n_pixels;
  char v[18][32];
  const char *keys[18] = {"format",      "version",     "mode",         "sigma",     "sigma_value",
                          "n_types",     "n_pixels",    "chunk_pixels", "n_chunks",  "shard",
                          "shard_index", "shard_count", "first_chunk",  "end_chunk", "first_pixel",
                          "end_pixel",   "fingerprint", "multi_slots"};
  const char *values[18];
  snprintf(v[0], 32, "%s", RCTD_RESULT_FORMAT);
  snprintf(v[1], 32, "%d", RCTD_RESULT_VERSION);
  snprintf(v[2], 32, "full");
  snprintf(v[3], 32, "0.84");
  snprintf(v[4], 32, "84");
  snprintf(v[5], 32, "%d", K);
  snprintf(v[6], 32, "%" PRId64, s->n_pixels);
  snprintf(v[7], 32, "%d", C);
  snprintf(v[8], 32, "%" PRId64, n_chunks);
  snprintf(v[9], 32, "%d/%d", s->shard_index, s->shard_count);
  snprintf(v[10], 32, "%d", s->shard_index);
  snprintf(v[11], 32, "%d", s->shard_count);
  snprintf(v[12], 32, "%" PRId64, c0);
  snprintf(v[13], 32, "%" PRId64, c1);
  snprintf(v[14], 32, "%" PRId64, p0);
  snprintf(v[15], 32, "%" PRId64, p1);
  snprintf(v[16], 32, "00000000deadbeef");
  snprintf(v[17], 32, "0");
  for (int i = 0; i < 18; i++) values[i] = v[i];
  int rc = rctd_write_meta(w, RCTD_RES_REC_META, keys, values, 18);
  char **types = calloc((size_t)K, sizeof *types);
  for (int k = 0; k < K; k++) {
    types[k] = malloc(16);
    snprintf(types[k], 16, "type%d", k);
  }
  const char *genes[] = {"g1", "g2", "g3"};
  if (rc == 0) rc = rctd_write_string_list(w, "model.type_names", (const char *const *)types, K);
  if (rc == 0) rc = rctd_write_string_list(w, "model.genes_reg", genes, 3);
  if (rc == 0) rc = rctd_write_string_list(w, "model.genes_bulk", genes, 3);
  int64_t *pix = malloc((size_t)C * sizeof *pix), *row = malloc((size_t)C * sizeof *row);
  double *numi = malloc((size_t)C * sizeof *numi);
  double *wts = malloc((size_t)C * K * sizeof *wts);
  uint8_t *conv = malloc((size_t)C);
  char **bc = calloc((size_t)C, sizeof *bc), *bc_buf = malloc((size_t)C * 24);
  for (int64_t c = c0; c < c1 && rc == 0; c++) {
    int64_t first = c * C, n = first + C <= s->n_pixels ? C : s->n_pixels - first;
    for (int64_t i = 0; i < n; i++) {
      int64_t p = first + i;
      if (s->skip_pixel >= 0 && p == s->skip_pixel + 1) p = s->skip_pixel;
      pix[i] = p;
      row[i] = p;
      numi[i] = 100 + p % 1000;
      conv[i] = 1;
      bc[i] = bc_buf + i * 24;
      snprintf(bc[i], 24, "BC%" PRId64, p);
      for (int k = 0; k < K; k++) wts[i * K + k] = (double)((p + k) % 97) / 97.0;
    }
    rc |= tmm_put(w, RCTD_RES_REC_PIXEL, RCTD_DENSE, RCTD_I64, 1, n, pix, first, c);
    rc |= tmm_put(w, RCTD_RES_REC_BARCODE, RCTD_STRINGS, RCTD_U8, 1, n, bc, first, c);
    rc |= tmm_put(w, RCTD_RES_REC_ROW, RCTD_DENSE, RCTD_I64, 1, n, row, first, c);
    rc |= tmm_put(w, RCTD_RES_REC_NUMI, RCTD_DENSE, RCTD_F64, 1, n, numi, first, c);
    rc |= tmm_put(w, RCTD_RES_REC_WEIGHTS, RCTD_DENSE, RCTD_F64, K, n, wts, first, c);
    rc |= tmm_put(w, RCTD_RES_REC_CONV, RCTD_DENSE, RCTD_U8, 1, n, conv, first, c);
  }
  char chunks[32], pixels[32];
  snprintf(chunks, sizeof chunks, "%" PRId64, c1 - c0);
  snprintf(pixels, sizeof pixels, "%" PRId64, p1 - p0);
  const char *skeys[] = {"chunks", "pixels"}, *svalues[] = {chunks, pixels};
  if (rc == 0) rc = rctd_write_meta(w, RCTD_RES_REC_SUMMARY, skeys, svalues, 2);
  for (int k = 0; k < K; k++) free(types[k]);
  free(types);
  free(pix);
  free(row);
  free(numi);
  free(wts);
  free(conv);
  free(bc);
  free(bc_buf);
  if (rc != 0) {
    rctd_writer_abort(w);
    return -1;
  }
  return rctd_writer_close(w, err, sizeof err);
}

/* Runs rctd_merge_run in a child; returns its exit status and peak RSS in KiB. */
static int tmm_merge_child(const rctd_merge_opts *o, long *max_rss_kib, char *err, size_t len) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    char msg[RCTD_ERR_LEN * 2] = "";
    int rc = rctd_merge_run(o, msg, sizeof msg);
    if (write(fds[1], msg, strlen(msg)) < 0) rc = 1;
    _exit(rc == 0 ? 0 : 1);
  }
  close(fds[1]);
  ssize_t got = read(fds[0], err, len - 1);
  err[got > 0 ? got : 0] = 0;
  close(fds[0]);
  int status = 0;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) != pid) return -1;
  *max_rss_kib = ru.ru_maxrss;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(merge_memory_bounded_by_chunk) {
  /* 200000 pixels x 64 types: 102 MB of weights (twice that with the proportions). */
  const tmm_spec s = {.n_pixels = 200000, .n_types = 64, .chunk_pixels = 1024, .shard_count = 2};
  char a[1024], b[1024], out[1024], csv[1024], err[RCTD_ERR_LEN * 2];
  snprintf(a, sizeof a, "%s/mem_1.rctd", test_tmp_dir());
  snprintf(b, sizeof b, "%s/mem_2.rctd", test_tmp_dir());
  snprintf(out, sizeof out, "%s/mem.h5ad", test_tmp_dir());
  snprintf(csv, sizeof csv, "%s/mem_csv", test_tmp_dir());
  tmm_spec s1 = s, s2 = s;
  s1.shard_index = 1;
  s2.shard_index = 2;
  s1.skip_pixel = s2.skip_pixel = -1;
  CHECK(tmm_write(a, &s1) == 0 && tmm_write(b, &s2) == 0);
  const char *inputs[] = {b, a};
  rctd_merge_opts o = {.inputs = inputs, .n_inputs = 2, .h5ad_path = out, .csv_dir = csv};
  long rss = 0;
  CHECK_MSG(tmm_merge_child(&o, &rss, err, sizeof err) == 0, "%s", err);
  fprintf(stderr, "  rctd_merge_run, 200000 pixels x 64 types to h5ad + CSV: peak RSS %ld KiB\n",
          rss);
  CHECK_MSG(!TMM_MEASURE_RSS || rss < 64 * 1024, "peak RSS %ld KiB for 200000 pixels x 64 types",
            rss);
  CHECK(test_sh("/usr/bin/python3 -c \"import h5py, numpy as np; f = h5py.File('%s'); "
                "w = f['obsm/rctd_weights']; assert w.shape == (200000, 64); "
                "p = 123456; assert np.allclose(w[p], [((p + k) %% 97) / 97 for k in "
                "range(64)]); assert f['obs/_index'][p].decode() == 'BC123456'\"",
                out) == 0);
  CHECK(test_sh("test $(wc -l < '%s/weights.csv') -eq 200001", csv) == 0);
  unlink(out);
  test_sh("rm -rf '%s'", csv);
}

TEST(merge_fresh_h5ad_memory_does_not_grow_with_pixels) {
  /* A fresh h5ad's obs names go to a temporary file until they are written at close: peak RSS
   * for 400,000 pixels within 6 MiB of that for 50,000 (holding every name, as before, took
   * about 40 bytes per pixel: 14 MiB more). */
  const int64_t sizes[2] = {50000, 400000};
  long rss[2] = {0, 0};
  char in[1024], out[1024], err[RCTD_ERR_LEN * 2];
  snprintf(in, sizeof in, "%s/grow.rctd", test_tmp_dir());
  snprintf(out, sizeof out, "%s/grow.h5ad", test_tmp_dir());
  for (int i = 0; i < 2; i++) {
    const tmm_spec s = {.n_pixels = sizes[i],
                        .n_types = 4,
                        .chunk_pixels = 1024,
                        .shard_index = 1,
                        .shard_count = 1,
                        .skip_pixel = -1};
    CHECK(tmm_write(in, &s) == 0);
    const char *inputs[] = {in};
    rctd_merge_opts o = {.inputs = inputs, .n_inputs = 1, .h5ad_path = out};
    CHECK_MSG(tmm_merge_child(&o, &rss[i], err, sizeof err) == 0, "%s", err);
    CHECK(test_sh("/usr/bin/python3 -c \"import h5py; n = h5py.File('%s')['obs/_index'][:]; "
                  "assert [x.decode() for x in n] == ['BC%%d' %% p for p in range(%lld)]\"",
                  out, (long long)sizes[i]) == 0);
  }
  fprintf(stderr,
          "  rctd_merge_run to a fresh h5ad: peak RSS %ld KiB (50000 pixels), %ld KiB "
          "(400000)\n",
          rss[0], rss[1]);
  CHECK_MSG(!TMM_MEASURE_RSS || rss[1] - rss[0] < 6 * 1024, "%ld KiB more", rss[1] - rss[0]);
  unlink(in);
  unlink(out);
}

TEST(merge_refuses_pixels_out_of_order) {
  const tmm_spec s = {.n_pixels = 100,
                      .n_types = 3,
                      .chunk_pixels = 16,
                      .shard_index = 1,
                      .shard_count = 1,
                      .skip_pixel = 40};
  char in[1024], out[1024], err[RCTD_ERR_LEN * 2];
  snprintf(in, sizeof in, "%s/damaged.rctd", test_tmp_dir());
  snprintf(out, sizeof out, "%s/damaged.h5ad", test_tmp_dir());
  CHECK(tmm_write(in, &s) == 0);
  const char *inputs[] = {in};
  rctd_merge_opts o = {.inputs = inputs, .n_inputs = 1, .h5ad_path = out};
  CHECK(rctd_merge_run(&o, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "pixel 40 where pixel 41 was expected"), "%s", err);
  CHECK(access(out, F_OK) != 0);
  /* Intact, the same stream merges. */
  tmm_spec ok = s;
  ok.skip_pixel = -1;
  CHECK(tmm_write(in, &ok) == 0);
  CHECK_MSG(rctd_merge_run(&o, err, sizeof err) == 0, "%s", err);
  CHECK(access(out, F_OK) == 0);
}
