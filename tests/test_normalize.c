/* lib/normalize and rctd-normalize: DE gene lists, fitBulk, get_norm_ref, and the vignette
 * against R's gold output (pixels, gene lists, proportions, normalised profiles); bad input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "model.h"
#include "normalize.h"
#include "strlist.h"
#include "test.h"

/* ---------------------------------------------------------------- unit tests */

TEST(normalize_de_genes_rules) {
  /* Reference genes in this order; "mt-" anywhere in a name removes it. */
  const char *genes[] = {"a", "mt-Co1", "Xmt-y", "b", "c", "d", "e", "MT-1"};
  /* 3 types.  a: type 2 high; b: type 0 high; c: low everywhere; d: type 0 and 1 high;
   * e: not in the spatial data; MT-1 (upper case, kept): type 1 high. */
  double prof[8 * 3] = {
      1e-5, 1e-5, 1e-3, /* a */
      1e-2, 1e-5, 1e-5, /* mt-Co1 */
      1e-2, 1e-5, 1e-5, /* Xmt-y */
      1e-3, 1e-5, 1e-5, /* b */
      1e-6, 1e-7, 1e-7, /* c: fold change but below the expression cutoff */
      1e-3, 2e-3, 1e-6, /* d */
      1e-3, 1e-6, 1e-6, /* e */
      1e-6, 1e-3, 1e-6, /* MT-1 */
  };
  const char *sp_genes[] = {"d", "MT-1", "a", "b", "c", "mt-Co1", "Xmt-y", "rare"};
  double totals[] = {50, 50, 50, 50, 50, 50, 50, 1};
  int32_t sp_of_ref[8], out[8];
  CHECK(rctd_gene_match(genes, 8, sp_genes, 8, sp_of_ref) == 7);
  CHECK(sp_of_ref[0] == 2 && sp_of_ref[6] == -1 && sp_of_ref[7] == 1);
  int n;
  char err[512];
  CHECK(rctd_de_genes(prof, 8, 3, genes, sp_of_ref, totals, 8, 0.75, 0.0002, 3, out, &n, err,
                      sizeof err) == 0);
  /* Type 0 finds b and d (reference order), type 1 adds MT-1 (d already found), type 2 a. */
  CHECK_MSG(n == 4, "n = %d", n);
  CHECK(out[0] == 3 && out[1] == 5 && out[2] == 7 && out[3] == 0);
  /* MIN_OBS: a gene seen fewer times in the spatial data is not a candidate. */
  totals[3] = 2; /* b */
  CHECK(rctd_de_genes(prof, 8, 3, genes, sp_of_ref, totals, 8, 0.75, 0.0002, 3, out, &n, err,
                      sizeof err) == 0);
  CHECK(n == 3 && out[0] == 5);
  /* K = 2: the other mean is the single other column. */
  double prof2[2 * 2] = {1e-3, 2e-4, 1e-3, 1e-3};
  const char *g2[] = {"p", "q"};
  int32_t sp2[2] = {0, 1};
  double tot2[2] = {10, 10};
  CHECK(rctd_de_genes(prof2, 2, 2, g2, sp2, tot2, 2, 0.75, 0.0002, 3, out, &n, err, sizeof err) ==
        0);
  CHECK(n == 1 && out[0] == 0); /* log(1e-3 / 2e-4) = 1.61 > 0.75 */
  /* No common gene. */
  int32_t none[2] = {-1, -1};
  CHECK(rctd_de_genes(prof2, 2, 2, g2, none, tot2, 2, 0.75, 0.0002, 3, out, &n, err, sizeof err) ==
        -1);
  CHECK_MSG(strstr(err, "no gene in common") != NULL, "%s", err);
  /* Fewer than 10% of min(reference genes, spatial genes) observed MIN_OBS times. */
  double few[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(rctd_de_genes(prof, 8, 3, genes, sp_of_ref, few, 8, 0.75, 0.0002, 3, out, &n, err,
                      sizeof err) == -1);
  CHECK_MSG(strstr(err, "10%") != NULL, "%s", err);
}

TEST(normalize_norm_ref_formula) {
  double prof[3 * 2] = {0.1, 0.3, 0.02, 0.04, 0.5, 0.0};
  int32_t genes[2] = {2, 0};
  double totals[2] = {30, 0}, w[2] = {2.0, 6.0}, out[2 * 2];
  rctd_norm_ref(prof, 2, genes, 2, totals, 1000, w, out);
  /* Gene 2: weighted average 0.5 * 0.25 = 0.125, target 0.03: renorm = p * 0.03 / 0.125. */
  CHECK(out[0] == 0.5 / (0.125 / 0.03) && out[1] == 0.0);
  /* A gene absent from the spatial data: target 0, factor infinite, profile 0. */
  CHECK(out[2] == 0 && out[3] == 0);
}

TEST(normalize_fit_bulk_recovers_proportions) {
  /* B = S w exactly (no noise): the Gaussian-on-logs fit returns w. */
  enum { G = 40, K = 3 };
  double prof[G * K], totals[G];
  int32_t genes[G];
  double w_true[K] = {0.2, 0.5, 0.3}, sum_numi = 1e5;
  for (int g = 0; g < G; g++) {
    genes[g] = g;
    double s = 0;
    for (int k = 0; k < K; k++) {
      prof[g * K + k] = (1 + ((g * 7 + k * 3) % 11)) * 1e-3 * (k == g % K ? 5 : 1);
      s += prof[g * K + k] * w_true[k];
    }
    totals[g] = s * sum_numi;
  }
  rctd_normalize_opts o;
  rctd_normalize_opts_default(&o);
  double w[K];
  int conv, used;
  char err[512];
  CHECK_MSG(
      rctd_fit_bulk(prof, K, genes, G, totals, sum_numi, &o, w, &conv, &used, err, sizeof err) == 0,
      "%s", err);
  CHECK(used == G && conv == 1);
  for (int k = 0; k < K; k++) CHECK_NEAR(w[k], w_true[k], 1e-3); /* stops at MIN_CHANGE 1e-4 */
  o.min_change_bulk = 1e-13;
  CHECK(rctd_fit_bulk(prof, K, genes, G, totals, sum_numi, &o, w, &conv, &used, err, sizeof err) ==
        0);
  for (int k = 0; k < K; k++) CHECK_NEAR(w[k], w_true[k], 1e-9);
  /* Genes below bulk MIN_OBS are left out; none left is an error. */
  o.bulk_min_obs = 1e12;
  CHECK(rctd_fit_bulk(prof, K, genes, G, totals, sum_numi, &o, w, &conv, &used, err, sizeof err) ==
        -1);
}

TEST(normalize_class_table_renumbers_classes) {
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/normalize_classes.csv", test_tmp_dir());
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f, "type,class\nc,glia\na,neuron\nb,glia\n");
  fclose(f);
  const char *types[] = {"a", "b", "c"};
  rctd_model m = {0};
  m.n_types = 3;
  m.type_names = rctd_strlist_copy(types, 3);
  m.class_names = rctd_strlist_copy(types, 3);
  CHECK(m.type_names && m.class_names && rctd_model_class_ids(&m) == 0);
  CHECK(m.n_classes == 3 && m.class_k[2] == 2);
  CHECK_MSG(rctd_normalize_class_table(&m, path, err, sizeof err) == 0, "%s", err);
  /* Ids in order of first appearance over the types: neuron 0, glia 1. */
  CHECK(m.n_classes == 2 && m.class_k[0] == 0 && m.class_k[1] == 1 && m.class_k[2] == 1);
  CHECK(strcmp(m.class_names[0], "neuron") == 0 && strcmp(m.class_names[2], "glia") == 0);
  /* A type without a row: an error naming it, the model unchanged. */
  f = fopen(path, "w");
  CHECK(f != NULL);
  fprintf(f, "type,class\na,x\nb,y\n");
  fclose(f);
  CHECK(rctd_normalize_class_table(&m, path, err, sizeof err) == -1);
  CHECK_MSG(strstr(err, "no class: c") != NULL, "%s", err);
  CHECK(m.n_classes == 2 && strcmp(m.class_names[0], "neuron") == 0);
  rctd_model_free(&m);
}

/* ---------------------------------------------------------------- vignette vs R */

/* Splits a CSV line (R's write.csv) into at most cap fields, unquoting. */
static int norm_test_fields(char *line, char **f, int cap) {
  int n = 0;
  for (char *tok = strtok(line, ",\r\n"); tok && n < cap; tok = strtok(NULL, ",\r\n")) {
    if (*tok == '"') {
      tok++;
      char *q = strrchr(tok, '"');
      if (q) *q = '\0';
    }
    f[n++] = tok;
  }
  return n;
}

static int norm_test_make_reference(char *out, size_t len) {
  snprintf(out, len, "%s/norm_vignette_ref.rctd", test_tmp_dir());
  if (test_sh("test -e %s", out) == 0) return 0;
  return test_sh("%s/rctd-reference %s/data/vignette/h5ad/reference.h5ad --numi-col nUMI -q -o %s",
                 test_bin_dir(), test_repo_dir(), out);
}

/* Checks a model stream against gold/vignette/full. */
static void norm_test_check_gold(const char *path, int *failed_) {
  char err[RCTD_ERR_LEN], file[512], line[16384];
  const char *gold = test_repo_dir();
  rctd_model_reader *mr = rctd_model_open(path, err, sizeof err);
  CHECK_MSG(mr != NULL, "%s", err);
  rctd_model *m = rctd_model_reader_model(mr);
  CHECK(m->n_types == 19 && m->n_pixels == 71);

  /* Gene lists, element by element. */
  const char *lists[2] = {"gene_list_reg.txt", "gene_list_bulk.txt"};
  char **mine[2] = {m->genes_reg, m->genes_bulk};
  int sizes[2] = {m->n_reg, m->n_bulk};
  CHECK(m->n_reg == 313 && m->n_bulk == 340);
  for (int l = 0; l < 2; l++) {
    snprintf(file, sizeof file, "%s/tests/data/gold/vignette/full/%s", gold, lists[l]);
    FILE *f = fopen(file, "r");
    CHECK(f != NULL);
    int i = 0;
    while (fgets(line, sizeof line, f)) {
      line[strcspn(line, "\r\n")] = '\0';
      CHECK_MSG(i < sizes[l] && strcmp(mine[l][i], line) == 0, "%s[%d]", lists[l], i);
      i++;
    }
    fclose(f);
    CHECK(i == sizes[l]);
  }

  /* Bulk proportions: relative 1e-10 (R's 15 digits; the smallest weights, ~1e-7, carry the
   * rounding of the largest, so their tolerance is relative to the largest times 1e-6). */
  snprintf(file, sizeof file, "%s/tests/data/gold/vignette/full/bulk_proportions.csv", gold);
  FILE *f = fopen(file, "r");
  CHECK(f && fgets(line, sizeof line, f));
  double want_w[19], max_w = 0, worst = 0;
  for (int k = 0; k < 19; k++) {
    char *fields[2];
    CHECK(fgets(line, sizeof line, f) && norm_test_fields(line, fields, 2) == 2);
    CHECK(strcmp(fields[0], m->type_names[k]) == 0);
    want_w[k] = atof(fields[1]);
    if (want_w[k] > max_w) max_w = want_w[k];
  }
  fclose(f);
  for (int k = 0; k < 19; k++) {
    double scale = fmax(fabs(want_w[k]), 1e-6 * max_w);
    double rel = fabs(m->bulk_weights_k[k] - want_w[k]) / scale;
    if (rel > worst) worst = rel;
    CHECK_MSG(rel <= 1e-10, "weight %d: %.17g vs %.17g", k, m->bulk_weights_k[k], want_w[k]);
  }
  fprintf(stderr, "  bulk proportions: max relative difference to R %.3g\n", worst);

  /* Normalised profiles over the bulk genes, and the reg rows the fits use. */
  snprintf(file, sizeof file, "%s/tests/data/gold/vignette/full/norm_profiles.csv", gold);
  f = fopen(file, "r");
  CHECK(f && fgets(line, sizeof line, f));
  worst = 0;
  for (int g = 0; g < m->n_bulk; g++) {
    char *fields[20];
    CHECK(fgets(line, sizeof line, f) && norm_test_fields(line, fields, 20) == 20);
    CHECK(strcmp(fields[0], m->genes_bulk[g]) == 0);
    for (int k = 0; k < 19; k++) {
      double want = atof(fields[k + 1]), got = m->profiles_bulk_gk[g * 19 + k];
      double rel = want == 0 ? fabs(got) : fabs(got - want) / fabs(want);
      if (rel > worst) worst = rel;
      CHECK_MSG(rel <= 1e-10, "profile %s/%d: %.17g vs %.17g", fields[0], k, got, want);
    }
  }
  fclose(f);
  fprintf(stderr, "  normalised profiles: max relative difference to R %.3g\n", worst);
  for (int i = 0; i < m->n_reg; i++) {
    int b = 0;
    while (b < m->n_bulk && strcmp(m->genes_bulk[b], m->genes_reg[i]) != 0) b++;
    CHECK(b < m->n_bulk);
    CHECK(memcmp(m->profiles_gk + i * 19, m->profiles_bulk_gk + b * 19, 19 * sizeof(double)) == 0);
  }

  /* Pixels: R's 71 barcodes in order (weights.csv rows), counts = spatial counts at reg genes,
   * nUMI = count sums over all genes. */
  snprintf(file, sizeof file, "%s/tests/data/gold/vignette/full/weights.csv", gold);
  f = fopen(file, "r");
  CHECK(f && fgets(line, sizeof line, f));
  rctd_input_options io;
  rctd_input_options_init(&io);
  snprintf(file, sizeof file, "%s/data/vignette/csv/spatial/MappedDGEForR.csv", gold);
  rctd_input *in = rctd_input_open(file, &io, err, sizeof err);
  CHECK_MSG(in != NULL, "%s", err);
  int64_t n_sp = rctd_input_n_genes(in);
  int32_t *sp_of_reg = malloc(sizeof(int32_t) * (size_t)m->n_reg);
  double *dense = malloc(sizeof(double) * (size_t)n_sp * 100);
  CHECK(rctd_gene_match((const char *const *)m->genes_reg, m->n_reg, rctd_input_gene_names(in),
                        n_sp, sp_of_reg) == m->n_reg);
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  CHECK(rctd_input_next_chunk(in, 1000, &chunk, err, sizeof err) == 1 && chunk.n_rows == 100);
  memset(dense, 0, sizeof(double) * (size_t)n_sp * 100);
  for (int64_t r = 0; r < 100; r++)
    for (int64_t i = chunk.row_ptr[r]; i < chunk.row_ptr[r + 1]; i++)
      dense[r * n_sp + chunk.gene_idx[i]] = chunk.values[i];
  rctd_pixel_block blk;
  rctd_pixel_block_init(&blk);
  double *y = malloc(sizeof(double) * 71 * (size_t)m->n_reg);
  int64_t seen = 0;
  int got;
  while ((got = rctd_model_next_block(mr, &blk)) > 0) {
    rctd_pixel_block_dense(&blk, m->n_reg, y);
    for (int64_t p = 0; p < blk.n; p++) {
      char *fields[2];
      CHECK(fgets(line, sizeof line, f) && norm_test_fields(line, fields, 2) >= 1);
      CHECK_MSG(strcmp(blk.barcodes[p], fields[0]) == 0, "pixel %lld", (long long)(blk.first + p));
      int64_t row = blk.row_n[p];
      CHECK(strcmp(rctd_input_barcodes(in)[row], fields[0]) == 0);
      double sum = 0;
      for (int64_t s = 0; s < n_sp; s++) sum += dense[row * n_sp + s];
      CHECK(blk.numi_n[p] == sum);
      for (int g = 0; g < m->n_reg; g++)
        CHECK(y[p * m->n_reg + g] == dense[row * n_sp + sp_of_reg[g]]);
      for (int64_t i = blk.indptr[p] + 1; i < blk.indptr[p + 1]; i++)
        CHECK(blk.indices[i - 1] < blk.indices[i]);
    }
    seen += blk.n;
  }
  CHECK_MSG(got == 0, "%s", rctd_model_reader_error(mr));
  CHECK(seen == 71 && !fgets(line, sizeof line, f));
  fclose(f);
  free(y);
  free(dense);
  free(sp_of_reg);
  rctd_pixel_block_free(&blk);
  rctd_csr_chunk_free(&chunk);
  rctd_input_close(in);
  /* The reference's random state is carried on, and the provenance of both tools. */
  CHECK(m->n_rng == RCTD_R_SEED_WORDS);
  CHECK(rctd_model_extra(m, "provenance.rctd-reference") != NULL);
  CHECK(rctd_model_extra(m, "provenance.rctd-normalize") != NULL);
  double v;
  CHECK(rctd_model_config_double(m, "counts_MIN", &v) == 0 && v == 10);
  CHECK(rctd_model_config_double(m, "min_UMI", &v) == 0 && v == 100);
  rctd_model_reader_close(mr);
}

TEST_E2E(normalize_vignette_h5ad_matches_r) {
  char ref[512], out[512];
  CHECK(norm_test_make_reference(ref, sizeof ref) == 0);
  snprintf(out, sizeof out, "%s/norm_vignette_h5ad.rctd", test_tmp_dir());
  CHECK(test_sh("%s/rctd-normalize %s/data/vignette/h5ad/spatial.h5ad %s -o %s 2> %s.log",
                test_bin_dir(), test_repo_dir(), ref, out, out) == 0);
  CHECK(test_sh("grep -q '^rctd-normalize: gene lists: reg=313 bulk=340$' %s.log", out) == 0);
  norm_test_check_gold(out, failed_);
}

TEST_E2E(normalize_vignette_csv_pipe_and_blocks) {
  /* rctd-reference | rctd-normalize with the CSV inputs and small blocks: same model and
   * pixels as from the h5ad files. */
  char out[512];
  const char *bin = test_bin_dir(), *sh = test_repo_dir();
  snprintf(out, sizeof out, "%s/norm_vignette_csv.rctd", test_tmp_dir());
  CHECK(test_sh("%s/rctd-reference %s/data/vignette/csv/reference/dge.csv --cell-type-table "
                "%s/data/vignette/csv/reference/meta_data.csv --cell-type-col cluster "
                "--numi-table %s/data/vignette/csv/reference/meta_data.csv --numi-col nUMI -q | "
                "%s/rctd-normalize %s/data/vignette/csv/spatial/MappedDGEForR.csv --coords-table "
                "%s/data/vignette/csv/spatial/BeadLocationsForR.csv --block-pixels 7 -q -o %s",
                bin, sh, sh, sh, bin, sh, sh, out) == 0);
  norm_test_check_gold(out, failed_);
  char err[RCTD_ERR_LEN];
  rctd_model_reader *mr = rctd_model_open(out, err, sizeof err);
  CHECK(mr != NULL && rctd_model_reader_model(mr)->has_coords);
  rctd_pixel_block blk;
  rctd_pixel_block_init(&blk);
  CHECK(rctd_model_next_block(mr, &blk) == 1 && blk.n == 7);
  /* First pixel of BeadLocationsForR.csv: TTGGACGTTTCAAT,3411.272727,2254.628099. */
  CHECK(strcmp(blk.barcodes[0], "TTGGACGTTTCAAT") == 0);
  CHECK(blk.coords_n2[0] == 3411.272727 && blk.coords_n2[1] == 2254.628099);
  rctd_pixel_block_free(&blk);
  rctd_model_reader_close(mr);
}

/* rctd-normalize on the vignette's h5ad twice, with COMMON and then COMMON and EXTRA, into
 * OUT[0] and OUT[1] (named after TAG).  0 when both ran. */
static int norm_two_runs(const char *tag, const char *common, const char *extra, char out[2][512]) {
  char ref[512];
  if (norm_test_make_reference(ref, sizeof ref) != 0) return -1;
  const char *opts[2] = {"", extra};
  for (int i = 0; i < 2; i++) {
    snprintf(out[i], 512, "%s/norm_%s%d.rctd", test_tmp_dir(), tag, i);
    if (test_sh("%s/rctd-normalize %s/data/vignette/h5ad/spatial.h5ad %s %s %s -q -o %s",
                test_bin_dir(), test_repo_dir(), ref, common, opts[i], out[i]) != 0)
      return -1;
  }
  return 0;
}

/* Whether the two streams hold the same records (rctd-view, the provenance aside). */
static int norm_same_records(char out[2][512]) {
  return test_sh("%s/bench/compare_streams.sh %s %s %s/rctd-view > /dev/null", test_repo_dir(),
                 out[0], out[1], test_bin_dir()) == 0;
}

TEST_E2E(normalize_chunk_rows_reach_the_pixels) {
  /* The pixel records are encoded during the second read of the input, into a temporary stream
   * copied after the model: --chunk-rows still sets their chunks, and the pixels are those of
   * the default run (rctd-view prints every record but the provenance the same). */
  char out[2][512];
  CHECK(norm_two_runs("chunks", "--block-pixels 10", "--chunk-rows 3", out) == 0);
  /* 10 pixels a block in chunks of 3 rows: 4 chunks per pixel record. */
  CHECK(test_sh("%s/rctd-view %s | grep -q '^pixels.counts\tcsr f64\t10x313\t4\t'", test_bin_dir(),
                out[1]) == 0);
  CHECK(test_sh("%s/rctd-view %s | grep -q '^pixels.counts\tcsr f64\t10x313\t1\t'", test_bin_dir(),
                out[0]) == 0);
  CHECK(norm_same_records(out));
}

/* A block larger than the input (--block-pixels 2^62) holds all its pixels, with the memory of
 * the pixels there are: the default run's stream (it crashed: the block's arrays overflowed). */
TEST_E2E(normalize_huge_block_pixels) {
  char out[2][512];
  CHECK(norm_two_runs("huge_block", "", "--block-pixels 4611686018427387904", out) == 0);
  CHECK(norm_same_records(out));
}

/* ---------------------------------------------------------------- bad input */

/* Runs rctd-normalize with ARGS; checks failure, one stderr line containing EXPECT, no output. */
static void norm_test_fails(const char *args, const char *expect, int *failed_) {
  char out[512], log[512];
  snprintf(out, sizeof out, "%s/norm_bad.rctd", test_tmp_dir());
  snprintf(log, sizeof log, "%s/norm_bad.log", test_tmp_dir());
  int rc = test_sh("%s/rctd-normalize %s -q -o %s 2> %s", test_bin_dir(), args, out, log);
  CHECK_MSG(rc != 0 && rc != 2, "exit %d for %s", rc, args);
  CHECK_MSG(test_sh("test \"$(wc -l < '%s')\" -eq 1", log) == 0, "stderr of %s is not one line",
            args);
  CHECK_MSG(test_sh("grep -q '^rctd-normalize: .*%s' %s", expect, log) == 0,
            "message for %s lacks '%s'", args, expect);
  CHECK_MSG(test_sh("test ! -e %s", out) == 0, "%s left an output", args);
}

/* The temporary directory fills up during the second pass (a file size limit, SIGXFSZ ignored:
 * writes fail with EFBIG): one line naming the directory, a runtime exit, no output. */
TEST_E2E(normalize_tmp_dir_full) {
  char ref[512], out[512], log[512], dir[512];
  CHECK(norm_test_make_reference(ref, sizeof ref) == 0);
  snprintf(out, sizeof out, "%s/norm_full.rctd", test_tmp_dir());
  snprintf(log, sizeof log, "%s/norm_full.log", test_tmp_dir());
  snprintf(dir, sizeof dir, "%s/norm_full_tmp", test_tmp_dir());
  CHECK(test_sh("mkdir -p %s", dir) == 0);
  int rc = test_sh(
      "(trap '' XFSZ; ulimit -f 16; exec %s/rctd-normalize "
      "%s/data/vignette/h5ad/spatial.h5ad %s --block-pixels 10 --tmp-dir %s -q -o %s) "
      "2> %s",
      test_bin_dir(), test_repo_dir(), ref, dir, out, log);
  CHECK_MSG(rc != 0 && rc != 2, "exit %d", rc);
  CHECK(test_sh("test \"$(wc -l < '%s')\" -eq 1", log) == 0);
  CHECK(test_sh("grep -q '^rctd-normalize: %s: the temporary file of pixels: .*--tmp-dir' %s", dir,
                log) == 0);
  CHECK(test_sh("test ! -e %s && test -z \"$(ls -A %s)\"", out, dir) == 0);
}

TEST_E2E(normalize_bad_input) {
  char ref[512], args[2048], path[512];
  const char *tmp = test_tmp_dir(), *sh = test_repo_dir();
  CHECK(norm_test_make_reference(ref, sizeof ref) == 0);
  char spatial[512];
  snprintf(spatial, sizeof spatial, "%s/data/vignette/h5ad/spatial.h5ad", sh);

  /* Every pixel filtered out. */
  snprintf(args, sizeof args, "%s %s --umi-min 1e9", spatial, ref);
  norm_test_fails(args, "every pixel is filtered out", failed_);
  /* Too few DE genes. */
  snprintf(args, sizeof args, "%s %s --gene-cutoff-reg 0.05", spatial, ref);
  norm_test_fails(args, "fewer than 10 regression differentially expressed genes", failed_);
  /* No common genes: the spatial genes renamed. */
  snprintf(path, sizeof path, "%s/renamed.csv", tmp);
  CHECK(test_sh("sed '2,$s/^\"/\"X_/' %s/data/vignette/csv/spatial/MappedDGEForR.csv > %s", sh,
                path) == 0);
  snprintf(args, sizeof args, "%s %s", path, ref);
  norm_test_fails(args, "no gene in common", failed_);
  /* A reference stream of another stream format version (header word at byte 8). */
  snprintf(path, sizeof path, "%s/ref_v9.rctd", tmp);
  CHECK(test_sh("cp %s %s && printf '\\011' | dd of=%s bs=1 seek=8 conv=notrunc 2>/dev/null", ref,
                path, path) == 0);
  snprintf(args, sizeof args, "%s %s", spatial, path);
  norm_test_fails(args, "version", failed_);
  /* A reference stream whose reference format version is another. */
  snprintf(path, sizeof path, "%s/ref_meta_v2.rctd", tmp);
  char err[RCTD_ERR_LEN];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  CHECK(w != NULL);
  const char *k[] = {"format", "version"}, *v[] = {"rctd-reference", "2"};
  CHECK(rctd_write_meta(w, "reference.meta", k, v, 2) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  snprintf(args, sizeof args, "%s %s", spatial, path);
  norm_test_fails(args, "reference format version 2", failed_);
  /* A model stream given as the reference. */
  snprintf(path, sizeof path, "%s/not_a_ref.rctd", tmp);
  CHECK(test_sh("%s/rctd-normalize %s %s -q -o %s", test_bin_dir(), spatial, ref, path) == 0);
  snprintf(args, sizeof args, "%s %s", spatial, path);
  norm_test_fails(args, "not a reference stream", failed_);
  /* Reg genes outside the bulk list (cutoffs in the wrong order). */
  snprintf(args, sizeof args, "%s %s --fc-cutoff 2", spatial, ref);
  norm_test_fails(args, "is not in the bulk gene list", failed_);
}
