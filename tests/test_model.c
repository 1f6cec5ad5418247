/* lib/model: model records and pixel blocks round trip through a stream; errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rrng.h"
#include "stream.h"
#include "test.h"

static char *model_test_dup(const char *s) {
  char *d = malloc(strlen(s) + 1);
  if (d) strcpy(d, s);
  return d;
}

static char **model_test_names(const char *prefix, int n) {
  char **names = calloc((size_t)n, sizeof *names);
  for (int i = 0; i < n; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s%d", prefix, i);
    names[i] = model_test_dup(buf);
  }
  return names;
}

/* A small model: K = 3 types (two share a class), 5 reg genes, 7 bulk genes, 11 pixels. */
static void model_test_build(rctd_model *m, int with_coords) {
  memset(m, 0, sizeof *m);
  int K = 3;
  m->n_types = K;
  m->type_names = model_test_names("type", K);
  m->class_names = calloc(3, sizeof(char *));
  m->class_names[0] = model_test_dup("neuron");
  m->class_names[1] = model_test_dup("glia");
  m->class_names[2] = model_test_dup("neuron");
  m->class_k = calloc(3, sizeof(int32_t));
  m->class_k[1] = 1;
  m->n_classes = 2;
  m->n_reg = 5;
  m->n_bulk = 7;
  m->genes_reg = model_test_names("reg", 5);
  m->genes_bulk = model_test_names("bulk", 7);
  m->profiles_gk = malloc(5 * 3 * sizeof(double));
  m->profiles_bulk_gk = malloc(7 * 3 * sizeof(double));
  for (int i = 0; i < 15; i++) m->profiles_gk[i] = 1.0 / (i + 3);
  for (int i = 0; i < 21; i++) m->profiles_bulk_gk[i] = 1.0 / (i + 7);
  m->bulk_weights_k = malloc(3 * sizeof(double));
  m->bulk_weights_k[0] = 0.25, m->bulk_weights_k[1] = 1e-9, m->bulk_weights_k[2] = 1.5;
  m->bulk_converged = 1;
  m->n_pixels = 11;
  m->pixel_numi_n = malloc(11 * sizeof(double));
  for (int p = 0; p < 11; p++) m->pixel_numi_n[p] = 100 + 7 * p;
  m->sum_numi = 0.1 + 0.2; /* not a short decimal: must survive the text round trip */
  m->has_coords = with_coords;
  rctd_model_config_set(m, "UMI_min", "100");
  rctd_model_config_set(m, "gene_cutoff", "0.000125");
  rctd_rrng rng;
  rctd_rrng_seed(&rng, 3);
  (void)rctd_rrng_unif(&rng);
  m->rng_state = malloc(RCTD_R_SEED_WORDS * sizeof(int32_t));
  m->n_rng = RCTD_R_SEED_WORDS;
  rctd_rng_state_save(&rng, m->rng_state);
}

/* Pixel p has counts (p + g) at genes g = p % 5 and (p + 2) % 5, or none when p % 4 == 3. */
static int model_test_write_blocks(rctd_writer *w, const rctd_model *m, int block) {
  for (int64_t first = 0; first < m->n_pixels; first += block) {
    int64_t n = m->n_pixels - first < block ? m->n_pixels - first : block;
    const char *bc[16];
    char bc_buf[16][32];
    double numi[16], coords[32], values[32];
    int64_t rows[16], indptr[17];
    int32_t idx[32];
    indptr[0] = 0;
    for (int64_t i = 0; i < n; i++) {
      int64_t p = first + i;
      snprintf(bc_buf[i], sizeof bc_buf[i], "bc%lld", (long long)p);
      bc[i] = bc_buf[i];
      if (rctd_model_pixel_numi(m, p, 1, &numi[i]) < 0) return -1;
      rows[i] = 2 * p + 1;
      coords[2 * i] = p, coords[2 * i + 1] = -p;
      int64_t k = indptr[i];
      if (p % 4 != 3) {
        idx[k] = (int32_t)(p % 5), values[k++] = (double)(p + p % 5);
        idx[k] = (int32_t)((p + 2) % 5), values[k++] = (double)(p + (p + 2) % 5);
      }
      indptr[i + 1] = k;
    }
    rctd_pixel_block b;
    rctd_pixel_block_init(&b);
    b.first = first, b.n = n, b.barcodes = bc, b.numi_n = numi, b.row_n = rows;
    b.coords_n2 = m->has_coords ? coords : NULL;
    b.indptr = indptr, b.indices = idx, b.values = values, b.nnz = indptr[n];
    if (rctd_pixel_block_write(w, &b, m->n_reg) < 0) return -1;
  }
  return 0;
}

static int model_test_write(const char *path, const rctd_model *m, int block, int extra_between) {
  char err[RCTD_ERR_LEN];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  if (!w) return -1;
  const char *k[] = {"tool"}, *v[] = {"test"};
  if (rctd_model_write(w, m) < 0 || rctd_write_meta(w, "provenance.test", k, v, 1) < 0 ||
      (extra_between && rctd_write_meta(w, "other.record", k, v, 1) < 0) ||
      model_test_write_blocks(w, m, block) < 0) {
    fprintf(stderr, "  %s\n", rctd_writer_error(w));
    rctd_writer_abort(w);
    return -1;
  }
  return rctd_writer_close(w, err, sizeof err);
}

TEST(model_round_trip) {
  rctd_model m;
  model_test_build(&m, 1);
  char path[512];
  snprintf(path, sizeof path, "%s/model_rt.rctd", test_tmp_dir());
  CHECK(model_test_write(path, &m, 4, 0) == 0);
  char err[RCTD_ERR_LEN];
  rctd_model_reader *mr = rctd_model_open(path, err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  rctd_model *r = rctd_model_reader_model(mr);
  CHECK(r->n_types == 3 && r->n_reg == 5 && r->n_bulk == 7 && r->n_pixels == 11);
  CHECK(strcmp(r->type_names[2], "type2") == 0 && strcmp(r->genes_bulk[6], "bulk6") == 0);
  CHECK(strcmp(r->class_names[2], "neuron") == 0);
  CHECK(r->n_classes == 2 && r->class_k[0] == 0 && r->class_k[1] == 1 && r->class_k[2] == 0);
  CHECK(memcmp(r->profiles_gk, m.profiles_gk, 15 * sizeof(double)) == 0);
  CHECK(memcmp(r->profiles_bulk_gk, m.profiles_bulk_gk, 21 * sizeof(double)) == 0);
  CHECK(memcmp(r->bulk_weights_k, m.bulk_weights_k, 3 * sizeof(double)) == 0);
  CHECK(memcmp(r->pixel_numi_n, m.pixel_numi_n, 11 * sizeof(double)) == 0);
  CHECK(r->sum_numi == m.sum_numi && r->bulk_converged == 1 && r->has_coords == 1);
  double v;
  CHECK(rctd_model_config_double(r, "gene_cutoff", &v) == 0 && v == 0.000125);
  CHECK(rctd_model_config(r, "nonexistent") == NULL);
  CHECK(rctd_model_extra(r, "provenance.test") != NULL);
  CHECK(rctd_model_type_index(r, "type1") == 1 && rctd_model_type_index(r, "x") == -1);
  /* The random state continues the same stream. */
  rctd_rrng a, b;
  rctd_rrng_seed(&a, 3);
  (void)rctd_rrng_unif(&a);
  CHECK(rctd_model_rng(r, &b) == 0);
  for (int i = 0; i < 1000; i++) CHECK(rctd_rrng_unif(&a) == rctd_rrng_unif(&b));

  rctd_pixel_block blk;
  rctd_pixel_block_init(&blk);
  int64_t seen = 0, n_blocks = 0;
  int got;
  double y_ng[4 * 5];
  while ((got = rctd_model_next_block(mr, &blk)) > 0) {
    CHECK(blk.first == seen && blk.n <= 4);
    rctd_pixel_block_dense(&blk, r->n_reg, y_ng);
    for (int64_t i = 0; i < blk.n; i++) {
      int64_t p = blk.first + i;
      char want[32];
      snprintf(want, sizeof want, "bc%lld", (long long)p);
      CHECK(strcmp(blk.barcodes[i], want) == 0);
      CHECK(blk.numi_n[i] == 100 + 7 * p && blk.row_n[i] == 2 * p + 1);
      CHECK(blk.coords_n2[2 * i] == p && blk.coords_n2[2 * i + 1] == -p);
      for (int g = 0; g < 5; g++) {
        double expect = (p % 4 != 3 && (g == p % 5 || g == (p + 2) % 5)) ? (double)(p + g) : 0;
        CHECK(y_ng[i * 5 + g] == expect);
      }
    }
    seen += blk.n;
    n_blocks++;
  }
  CHECK_MSG(got == 0, "%s", rctd_model_reader_error(mr));
  CHECK(seen == 11 && n_blocks == 3);
  CHECK(rctd_model_next_block(mr, &blk) == 0);
  rctd_pixel_block_free(&blk);
  rctd_model_reader_close(mr);
  rctd_model_free(&m);
}

/* A model read with its pixel nUMI spilled to a temporary file: the same values through
 * rctd_model_pixel_numi, the same blocks, and written back the same bytes as from memory; a
 * block whose nUMI disagree with the spilled ones is refused. */
TEST(model_spilled_pixel_numi) {
  rctd_model m;
  model_test_build(&m, 1);
  char path[512], again[512], held[512], err[RCTD_ERR_LEN];
  snprintf(path, sizeof path, "%s/model_spill.rctd", test_tmp_dir());
  snprintf(again, sizeof again, "%s/model_spill_again.rctd", test_tmp_dir());
  snprintf(held, sizeof held, "%s/model_spill_held.rctd", test_tmp_dir());
  CHECK(model_test_write(path, &m, 4, 0) == 0);
  rctd_model_reader *mr = rctd_model_open_spilled(path, NULL, 1, test_tmp_dir(), err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  rctd_model *r = rctd_model_reader_model(mr);
  CHECK(r->pixel_numi_n == NULL && r->pixel_numi_spill != NULL && r->n_pixels == 11);
  double numi[11];
  CHECK(rctd_model_pixel_numi(r, 0, 11, numi) == 0);
  CHECK(memcmp(numi, m.pixel_numi_n, sizeof numi) == 0);
  CHECK(rctd_model_pixel_numi(r, 7, 2, numi) == 0 && numi[0] == 100 + 7 * 7 && numi[1] == 156);
  CHECK(rctd_model_pixel_numi(r, 10, 2, numi) == -1); /* past the last pixel */
  rctd_pixel_block blk;
  rctd_pixel_block_init(&blk);
  int64_t seen = 0;
  int got;
  while ((got = rctd_model_next_block(mr, &blk)) > 0) seen += blk.n;
  CHECK_MSG(got == 0 && seen == 11, "%s", rctd_model_reader_error(mr));
  rctd_pixel_block_free(&blk);
  /* Written back from the spill and from memory: the same bytes. */
  CHECK(model_test_write(again, r, 4, 0) == 0);
  FILE *spill = r->pixel_numi_spill;
  double all[11];
  CHECK(rctd_model_pixel_numi(r, 0, 11, all) == 0);
  r->pixel_numi_spill = NULL, r->pixel_numi_n = all;
  int wrote = model_test_write(held, r, 4, 0);
  r->pixel_numi_spill = spill, r->pixel_numi_n = NULL;
  CHECK(wrote == 0);
  CHECK(test_sh("cmp -s %s %s", again, held) == 0);
  rctd_model_reader_close(mr);

  /* A block's nUMI that differ from the (spilled) model record. */
  m.pixel_numi_n[9] += 1;
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  CHECK(w != NULL && rctd_model_write(w, &m) == 0);
  m.pixel_numi_n[9] -= 1;
  CHECK(model_test_write_blocks(w, &m, 4) == 0 && rctd_writer_close(w, err, sizeof err) == 0);
  mr = rctd_model_open_spilled(path, NULL, 1, NULL, err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  while ((got = rctd_model_next_block(mr, &blk)) > 0) {
  }
  CHECK(got < 0 && strstr(rctd_model_reader_error(mr), "pixel 9: nUMI differs") != NULL);
  rctd_pixel_block_free(&blk);
  rctd_model_reader_close(mr);
  rctd_model_free(&m);
}

TEST(model_pass_through_and_no_coords) {
  rctd_model m;
  model_test_build(&m, 0);
  char path[512], out[512];
  snprintf(path, sizeof path, "%s/model_pass.rctd", test_tmp_dir());
  snprintf(out, sizeof out, "%s/model_pass_out.rctd", test_tmp_dir());
  CHECK(model_test_write(path, &m, 5, 1) == 0);
  char err[RCTD_ERR_LEN];
  rctd_model_reader *mr = rctd_model_open(path, err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  /* "other.record" precedes the pixels, so it is an extra record of the model. */
  CHECK(rctd_model_extra(rctd_model_reader_model(mr), "other.record") != NULL);
  rctd_writer *w = rctd_writer_open(out, NULL, err, sizeof err);
  CHECK(w != NULL);
  CHECK(rctd_model_write(w, rctd_model_reader_model(mr)) == 0);
  rctd_model_reader_set_pass(mr, w);
  rctd_pixel_block blk;
  rctd_pixel_block_init(&blk);
  int got;
  while ((got = rctd_model_next_block(mr, &blk)) > 0) {
    CHECK(blk.coords_n2 == NULL);
    CHECK(rctd_pixel_block_write(w, &blk, 5) == 0);
  }
  CHECK(got == 0);
  rctd_pixel_block_free(&blk);
  rctd_model_reader_close(mr);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  /* The rewritten stream reads back the same. */
  mr = rctd_model_open(out, err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  int64_t seen = 0;
  while ((got = rctd_model_next_block(mr, &blk)) > 0) seen += blk.n;
  CHECK(got == 0 && seen == 11);
  rctd_pixel_block_free(&blk);
  rctd_model_reader_close(mr);
  rctd_model_free(&m);
}

TEST(model_rejects_bad_streams) {
  char err[RCTD_ERR_LEN], path[512];
  /* Not a model stream. */
  snprintf(path, sizeof path, "%s/not_model.rctd", test_tmp_dir());
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  const char *k[] = {"format", "version"}, *v[] = {"rctd-reference", "1"};
  CHECK(rctd_write_meta(w, "reference.meta", k, v, 2) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  CHECK(rctd_model_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "not a model stream") != NULL, "%s", err);

  /* Another model format version. */
  snprintf(path, sizeof path, "%s/model_v99.rctd", test_tmp_dir());
  w = rctd_writer_open(path, NULL, err, sizeof err);
  const char *v99[] = {RCTD_MODEL_FORMAT, "99"};
  CHECK(rctd_write_meta(w, RCTD_MODEL_REC_META, k, v99, 2) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  CHECK(rctd_model_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "version 99") != NULL, "%s", err);

  /* A stream cut after the model: fewer pixels than declared. */
  rctd_model m;
  model_test_build(&m, 1);
  snprintf(path, sizeof path, "%s/model_short.rctd", test_tmp_dir());
  w = rctd_writer_open(path, NULL, err, sizeof err);
  CHECK(rctd_model_write(w, &m) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  rctd_model_reader *mr = rctd_model_open(path, err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  rctd_pixel_block blk;
  rctd_pixel_block_init(&blk);
  CHECK(rctd_model_next_block(mr, &blk) == -1);
  CHECK_MSG(strstr(rctd_model_reader_error(mr), "0 of 11 pixels") != NULL, "%s",
            rctd_model_reader_error(mr));
  rctd_model_reader_close(mr);

  /* Missing records. */
  snprintf(path, sizeof path, "%s/model_missing.rctd", test_tmp_dir());
  w = rctd_writer_open(path, NULL, err, sizeof err);
  const char *vm[] = {RCTD_MODEL_FORMAT, "1"};
  CHECK(rctd_write_meta(w, RCTD_MODEL_REC_META, k, vm, 2) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  CHECK(rctd_model_open(path, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "missing") != NULL, "%s", err);

  /* Non-finite profile. */
  m.profiles_gk[4] = -1;
  CHECK(rctd_model_check(&m, err, sizeof err) == -1);
  rctd_model_free(&m);
}
