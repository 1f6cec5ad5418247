/* Result writers (lib/io/output.h) fed with R's own results (tests/data/gold/vignette): the CSV files
 * must come out byte for byte as R wrote them, the h5ad must open in anndata with R's values in
 * the documented slots, and the bytes must not depend on time or on how the pixels are
 * chunked. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "input.h"
#include "output.h"
#include "stream.h"
#include "test.h"
#include "test_output_gold.h"

/* ------------------------------------------------------------------ gold loading */

static int og_read_lines(const char *path, char ***lines, int *n) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  *lines = NULL;
  *n = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    *lines = realloc(*lines, (size_t)(*n + 1) * sizeof **lines);
    (*lines)[(*n)++] = strdup(line);
  }
  free(line);
  fclose(f);
  return 0;
}

/* Splits a CSV line (quoted fields with doubled quotes) into fields; returns the count. */
static int og_split(const char *line, char **fields, int max) {
  int n = 0;
  const char *p = line;
  while (n < max) {
    char *out = malloc(strlen(p) + 1), *o = out;
    if (*p == '"') {
      p++;
      while (*p) {
        if (*p == '"' && p[1] == '"') {
          *o++ = '"';
          p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else {
          *o++ = *p++;
        }
      }
    } else {
      while (*p && *p != ',') *o++ = *p++;
    }
    *o = 0;
    fields[n++] = out;
    if (*p != ',') break;
    p++;
  }
  return n;
}

static void og_free_fields(char **fields, int n) {
  for (int i = 0; i < n; i++) free(fields[i]);
}

static void og_free_lines(char **lines, int n) {
  for (int i = 0; i < n; i++) free(lines[i]);
  free(lines);
}

static int og_type_index(const og_gold *g, const char *name) {
  for (int k = 0; k < g->n_types; k++)
    if (strcmp(g->type_names[k], name) == 0) return k;
  return -1;
}

/* weights.csv: type names and barcodes in order, the matrix. */
static int og_load_weights(og_gold *g, const char *dir) {
  char path[1200], **lines;
  int n;
  snprintf(path, sizeof path, "%s/weights.csv", dir);
  if (og_read_lines(path, &lines, &n) < 0 || n < 2) return -1;
  char *fields[64];
  int nf = og_split(lines[0], fields, 64);
  g->n_types = nf - 1;
  for (int k = 0; k < g->n_types; k++) g->type_names[k] = strdup(fields[k + 1]);
  og_free_fields(fields, nf);
  g->n = n - 1;
  g->barcodes = calloc((size_t)g->n, sizeof *g->barcodes);
  g->weights_nk = calloc((size_t)g->n * g->n_types, sizeof(double));
  for (int i = 0; i < g->n; i++) {
    nf = og_split(lines[i + 1], fields, 64);
    g->barcodes[i] = strdup(fields[0]);
    for (int k = 0; k < g->n_types; k++)
      g->weights_nk[i * g->n_types + k] = strtod(fields[k + 1], NULL);
    og_free_fields(fields, nf);
  }
  og_free_lines(lines, n);
  return 0;
}

static int og_load_doublet(og_gold *g, const char *dir) {
  char path[1200], **lines;
  int n;
  const int N = g->n;
  g->spot_class = calloc((size_t)N, 1);
  g->first_type = calloc((size_t)N, sizeof(int32_t));
  g->second_type = calloc((size_t)N, sizeof(int32_t));
  g->first_class = calloc((size_t)N, 1);
  g->second_class = calloc((size_t)N, 1);
  g->conv_all = calloc((size_t)N, 1);
  g->conv_doublet = calloc((size_t)N, 1);
  g->min_score = calloc((size_t)N, sizeof(double));
  g->singlet_score = calloc((size_t)N, sizeof(double));
  g->weights_doublet = calloc((size_t)N * 2, sizeof(double));
  g->n_candidates = calloc((size_t)N, sizeof(int32_t));
  snprintf(path, sizeof path, "%s/results_df.csv", dir);
  if (og_read_lines(path, &lines, &n) < 0 || n != N + 1) return -1;
  char *f[16];
  for (int i = 0; i < N; i++) {
    int nf = og_split(lines[i + 1], f, 16);
    if (nf != 10 || strcmp(f[0], g->barcodes[i]) != 0) return -1;
    g->spot_class[i] = 255;
    for (int s = 0; s < RCTD_OUT_N_SPOT_CLASSES; s++)
      if (strcmp(f[1], rctd_out_spot_class_name(s)) == 0) g->spot_class[i] = (uint8_t)s;
    g->first_type[i] = og_type_index(g, f[2]);
    g->second_type[i] = og_type_index(g, f[3]);
    g->first_class[i] = strcmp(f[4], "TRUE") == 0;
    g->second_class[i] = strcmp(f[5], "TRUE") == 0;
    g->min_score[i] = strtod(f[6], NULL);
    g->singlet_score[i] = strtod(f[7], NULL);
    g->conv_all[i] = strcmp(f[8], "TRUE") == 0;
    g->conv_doublet[i] = strcmp(f[9], "TRUE") == 0;
    og_free_fields(f, nf);
  }
  og_free_lines(lines, n);
  snprintf(path, sizeof path, "%s/weights_doublet.csv", dir);
  if (og_read_lines(path, &lines, &n) < 0 || n != N + 1) return -1;
  for (int i = 0; i < N; i++) {
    int nf = og_split(lines[i + 1], f, 16);
    g->weights_doublet[2 * i] = strtod(f[1], NULL);
    g->weights_doublet[2 * i + 1] = strtod(f[2], NULL);
    og_free_fields(f, nf);
  }
  og_free_lines(lines, n);
  return 0;
}

/* Splits "a;b;c" in place-free fashion into at most max malloc'd parts. */
static int og_split_list(const char *s, char **parts, int max) {
  int n = 0;
  if (!*s) return 0;
  const char *p = s;
  while (n < max) {
    const char *q = strchr(p, ';');
    size_t len = q ? (size_t)(q - p) : strlen(p);
    parts[n++] = strndup(p, len);
    if (!q) break;
    p = q + 1;
  }
  return n;
}

static int og_load_multi(og_gold *g, const char *dir) {
  char path[1200], **lines;
  int n;
  const int N = g->n, M = OG_MULTI_SLOTS;
  g->multi_status = calloc((size_t)N, 1);
  g->n_types_n = calloc((size_t)N, sizeof(int32_t));
  g->types_nm = calloc((size_t)N * M, sizeof(int32_t));
  g->conf_nm = calloc((size_t)N * M, 1);
  g->sub_weights_nm = calloc((size_t)N * M, sizeof(double));
  g->min_score = calloc((size_t)N, sizeof(double));
  g->conv_all = calloc((size_t)N, 1);
  g->conv_sub = calloc((size_t)N, 1);
  snprintf(path, sizeof path, "%s/multi_results.csv", dir);
  if (og_read_lines(path, &lines, &n) < 0 || n != N + 1) return -1;
  char *f[8], *parts[8];
  for (int i = 0; i < N; i++) {
    int nf = og_split(lines[i + 1], f, 8);
    if (nf != 6 || strcmp(f[0], g->barcodes[i]) != 0) return -1;
    int t = atoi(f[1]);
    g->n_types_n[i] = t;
    for (int j = 0; j < M; j++) g->types_nm[i * M + j] = -1;
    int np = og_split_list(f[2], parts, 8);
    for (int j = 0; j < np; j++) g->types_nm[i * M + j] = og_type_index(g, parts[j]);
    og_free_fields(parts, np);
    np = og_split_list(f[3], parts, 8);
    for (int j = 0; j < np; j++) g->conf_nm[i * M + j] = strcmp(parts[j], "TRUE") == 0;
    og_free_fields(parts, np);
    np = og_split_list(f[4], parts, 8);
    for (int j = 0; j < np; j++) g->sub_weights_nm[i * M + j] = strtod(parts[j], NULL);
    og_free_fields(parts, np);
    g->min_score[i] = strtod(f[5], NULL);
    g->conv_all[i] = g->conv_sub[i] = 1;
    og_free_fields(f, nf);
  }
  og_free_lines(lines, n);
  return 0;
}

static int og_load_list(const char *path, char ***out, int *n) {
  return og_read_lines(path, out, n);
}

int og_gold_load(og_gold *g, const char *mode) {
  memset(g, 0, sizeof *g);
  snprintf(g->mode_name, sizeof g->mode_name, "%s", mode);
  g->mode = strcmp(mode, "full") == 0      ? RCTD_OUT_FULL
            : strcmp(mode, "doublet") == 0 ? RCTD_OUT_DOUBLET
                                           : RCTD_OUT_MULTI;
  snprintf(g->dir, sizeof g->dir, "%s/tests/data/gold/vignette/%s", test_repo_dir(), mode);
  if (og_load_weights(g, g->dir) < 0) return -1;
  char path[1200];
  snprintf(path, sizeof path, "%s/gene_list_reg.txt", g->dir);
  if (og_load_list(path, &g->genes_reg, &g->n_reg) < 0) return -1;
  snprintf(path, sizeof path, "%s/gene_list_bulk.txt", g->dir);
  if (og_load_list(path, &g->genes_bulk, &g->n_bulk) < 0) return -1;
  g->numi = calloc((size_t)g->n, sizeof(double));
  g->row = calloc((size_t)g->n, sizeof(int64_t));
  g->conv = calloc((size_t)g->n, 1);
  for (int i = 0; i < g->n; i++) {
    g->numi[i] = 100 + i;
    g->row[i] = i;
    g->conv[i] = 1;
  }
  if (g->mode == RCTD_OUT_DOUBLET && og_load_doublet(g, g->dir) < 0) return -1;
  if (g->mode == RCTD_OUT_MULTI && og_load_multi(g, g->dir) < 0) return -1;
  static const char *const keys[] = {"UMI_min", "doublet_mode", "sigma_c"};
  g->config_values[0] = "100";
  g->config_values[1] = g->mode_name;
  g->config_values[2] = "0.84";
  g->info = (rctd_results_info){.mode = g->mode,
                                .sigma = 0.84,
                                .n_types = g->n_types,
                                .type_names = (const char *const *)g->type_names,
                                .class_names = (const char *const *)g->type_names,
                                .multi_slots = OG_MULTI_SLOTS,
                                .n_fitted = g->n,
                                .n_reg = g->n_reg,
                                .n_bulk = g->n_bulk,
                                .genes_reg = (const char *const *)g->genes_reg,
                                .genes_bulk = (const char *const *)g->genes_bulk,
                                .n_config = 3,
                                .config_keys = keys,
                                .config_values = g->config_values};
  return 0;
}

void og_gold_free(og_gold *g) {
  for (int k = 0; k < g->n_types; k++) free(g->type_names[k]);
  for (int i = 0; i < g->n; i++) free(g->barcodes[i]);
  og_free_lines(g->genes_reg, g->n_reg);
  og_free_lines(g->genes_bulk, g->n_bulk);
  void *arrays[] = {
      g->barcodes,       g->weights_nk,    g->numi,        g->row,          g->conv,
      g->spot_class,     g->first_type,    g->second_type, g->first_class,  g->second_class,
      g->min_score,      g->singlet_score, g->conv_all,    g->conv_doublet, g->weights_doublet,
      g->n_candidates,   g->multi_status,  g->n_types_n,   g->types_nm,     g->conf_nm,
      g->sub_weights_nm, g->conv_sub};
  for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) free(arrays[i]);
  memset(g, 0, sizeof *g);
}

/* The results of pixels [first, first + n). */
rctd_results_chunk og_chunk(const og_gold *g, int64_t first, int64_t n) {
  const int K = g->n_types, M = OG_MULTI_SLOTS;
  rctd_results_chunk c = {.first = first, .n = n};
  c.row_n = g->row + first;
  c.barcode_n = (const char *const *)g->barcodes + first;
  c.numi_n = g->numi + first;
  c.weights_nk = g->weights_nk + first * K;
  c.conv_n = g->conv + first;
  if (g->mode == RCTD_OUT_DOUBLET) {
    c.spot_class_n = g->spot_class + first;
    c.first_type_n = g->first_type + first;
    c.second_type_n = g->second_type + first;
    c.first_class_n = g->first_class + first;
    c.second_class_n = g->second_class + first;
    c.min_score_n = g->min_score + first;
    c.singlet_score_n = g->singlet_score + first;
    c.conv_all_n = g->conv_all + first;
    c.conv_doublet_n = g->conv_doublet + first;
    c.weights_doublet_n2 = g->weights_doublet + first * 2;
    c.n_candidates_n = g->n_candidates + first;
  }
  if (g->mode == RCTD_OUT_MULTI) {
    c.multi_status_n = g->multi_status + first;
    c.n_types_n = g->n_types_n + first;
    c.types_nm = g->types_nm + first * M;
    c.conf_nm = g->conf_nm + first * M;
    c.sub_weights_nm = g->sub_weights_nm + first * M;
    c.min_score_n = g->min_score + first;
    c.conv_all_n = g->conv_all + first;
    c.conv_sub_n = g->conv_sub + first;
  }
  return c;
}

/* ------------------------------------------------------------------ writers */

static int og_write_csv(const og_gold *g, const char *dir, int64_t chunk) {
  char err[RCTD_ERR_LEN];
  rctd_csv_writer *w = rctd_csv_open(dir, &g->info, err, sizeof err);
  if (!w) return fprintf(stderr, "  %s\n", err), -1;
  for (int64_t first = 0; first < g->n; first += chunk) {
    int64_t n = first + chunk <= g->n ? chunk : g->n - first;
    rctd_results_chunk c = og_chunk(g, first, n);
    if (rctd_csv_write_chunk(w, &c, err, sizeof err) < 0) {
      fprintf(stderr, "  %s\n", err);
      rctd_csv_abort(w);
      return -1;
    }
  }
  if (rctd_csv_close(w, err, sizeof err) < 0) return fprintf(stderr, "  %s\n", err), -1;
  return 0;
}

static int og_write_h5ad(const og_gold *g, const char *path, const rctd_h5ad_target *t,
                         int64_t chunk) {
  char err[RCTD_ERR_LEN];
  rctd_h5ad_writer *w = rctd_h5ad_open(path, t, &g->info, err, sizeof err);
  if (!w) return fprintf(stderr, "  %s\n", err), -1;
  rctd_results_summary s;
  rctd_results_summary_init(&s, &g->info);
  for (int64_t first = 0; first < g->n; first += chunk) {
    int64_t n = first + chunk <= g->n ? chunk : g->n - first;
    rctd_results_chunk c = og_chunk(g, first, n);
    rctd_results_summary_add(&s, &g->info, &c);
    if (rctd_h5ad_write_chunk(w, &c, err, sizeof err) < 0) {
      fprintf(stderr, "  %s\n", err);
      rctd_h5ad_abort(w);
      rctd_results_summary_free(&s);
      return -1;
    }
  }
  int rc = rctd_h5ad_close(w, &s, err, sizeof err);
  if (rc < 0) fprintf(stderr, "  %s\n", err);
  rctd_results_summary_free(&s);
  return rc;
}

/* Rows of the gold pixels in the vignette's spatial h5ad (the file the h5ad is copied from). */
static int og_spatial_rows(og_gold *g, char *spatial, size_t len) {
  snprintf(spatial, len, "%s/data/vignette/h5ad/spatial.h5ad", test_repo_dir());
  rctd_input_options o;
  rctd_input_options_init(&o);
  o.cell_types = RCTD_CELL_TYPES_IGNORE;
  char err[RCTD_ERR_LEN];
  rctd_input *in = rctd_input_open(spatial, &o, err, sizeof err);
  if (!in) return fprintf(stderr, "  %s\n", err), -1;
  const char *const *names = rctd_input_barcodes(in);
  int64_t rows = rctd_input_n_rows(in);
  int rc = 0;
  for (int i = 0; i < g->n && rc == 0; i++) {
    g->row[i] = -1;
    for (int64_t r = 0; r < rows; r++)
      if (strcmp(names[r], g->barcodes[i]) == 0) g->row[i] = r;
    if (g->row[i] < 0) rc = -1;
  }
  rctd_input_close(in);
  return rc;
}

/* ------------------------------------------------------------------ tests */

/* Every number R wrote in the gold CSVs comes back as the same text. */
TEST(output_format_double_matches_r_write_csv) {
  static const char *const files[] = {"doublet/weights.csv", "doublet/weights_doublet.csv",
                                      "doublet/results_df.csv", "full/norm_profiles.csv",
                                      "full/bulk_proportions.csv"};
  int checked = 0;
  for (size_t fi = 0; fi < sizeof files / sizeof *files; fi++) {
    char path[1024], **lines, *f[64];
    int n;
    snprintf(path, sizeof path, "%s/tests/data/gold/vignette/%s", test_repo_dir(), files[fi]);
    CHECK_MSG(og_read_lines(path, &lines, &n) == 0, "%s", path);
    for (int i = 1; i < n; i++) {
      int nf = og_split(lines[i], f, 64);
      for (int j = 1; j < nf; j++) {
        char *end;
        double x = strtod(f[j], &end);
        if (end == f[j] || *end || !strchr(lines[i], ',')) continue;
        if (strstr(lines[i], f[j]) && lines[i][strstr(lines[i], f[j]) - lines[i] - 1] == '"')
          continue; /* a quoted string that looks like a number (type names) */
        char buf[64];
        rctd_out_format_double(x, 15, buf, sizeof buf);
        CHECK_MSG(strcmp(buf, f[j]) == 0, "%s: R wrote %s, we write %s", files[fi], f[j], buf);
        checked++;
      }
      og_free_fields(f, nf);
    }
    og_free_lines(lines, n);
  }
  CHECK(checked > 5000);
  char buf[64];
  rctd_out_format_double(1e-4, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "1e-04") == 0);
  rctd_out_format_double(0.0001234, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "0.0001234") == 0);
  rctd_out_format_double(123456, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "123456") == 0);
  rctd_out_format_double(1e15, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "1e+15") == 0);
  rctd_out_format_double(-2.5, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "-2.5") == 0);
  rctd_out_format_double(0.1 + 0.2, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "0.3") == 0);
  rctd_out_format_double(0.1 + 0.2, 17, buf, sizeof buf);
  CHECK(strcmp(buf, "0.30000000000000004") == 0);
  rctd_out_format_double(NAN, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "NA") == 0);
  rctd_out_format_double(0, 15, buf, sizeof buf);
  CHECK(strcmp(buf, "0") == 0);
}

static int og_files_equal(const char *a, const char *b) {
  return test_sh("cmp -s '%s' '%s'", a, b) == 0;
}

static void og_csv_equals_gold(int *failed_, const char *mode, const char *const *files,
                               int n_files) {
  og_gold g;
  CHECK_MSG(og_gold_load(&g, mode) == 0, "cannot read the %s gold files", mode);
  static const int64_t chunks[] = {1000, 16, 1};
  for (size_t c = 0; c < sizeof chunks / sizeof *chunks; c++) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/csv_%s_%lld", test_tmp_dir(), mode, (long long)chunks[c]);
    CHECK(og_write_csv(&g, dir, chunks[c]) == 0);
    for (int i = 0; i < n_files; i++) {
      char got[1200], want[1200];
      snprintf(got, sizeof got, "%s/%s", dir, files[i]);
      snprintf(want, sizeof want, "%s/%s", g.dir, files[i]);
      if (!og_files_equal(got, want)) test_sh("diff %s %s | head -5 >&2", got, want);
      CHECK_MSG(og_files_equal(got, want), "%s differs from R's %s", got, want);
    }
    CHECK(test_sh("ls -A '%s' | grep -q tmp", dir) != 0);
  }
  og_gold_free(&g);
}

TEST(output_csv_doublet_equals_r_bytes) {
  const char *files[] = {"weights.csv", "weights_doublet.csv", "results_df.csv"};
  og_csv_equals_gold(failed_, "doublet", files, 3);
}

TEST(output_csv_full_equals_r_bytes) {
  const char *files[] = {"weights.csv"};
  og_csv_equals_gold(failed_, "full", files, 1);
}

TEST(output_csv_multi_equals_r_bytes) {
  const char *files[] = {"weights.csv", "multi_results.csv"};
  og_csv_equals_gold(failed_, "multi", files, 2);
}

TEST(output_csv_refuses_out_of_order_chunks) {
  og_gold g;
  CHECK(og_gold_load(&g, "full") == 0);
  char dir[1024], err[RCTD_ERR_LEN];
  snprintf(dir, sizeof dir, "%s/csv_order", test_tmp_dir());
  rctd_csv_writer *w = rctd_csv_open(dir, &g.info, err, sizeof err);
  CHECK(w);
  rctd_results_chunk c = og_chunk(&g, 10, 5);
  CHECK(rctd_csv_write_chunk(w, &c, err, sizeof err) < 0);
  CHECK(strstr(err, "out of order"));
  rctd_csv_abort(w);
  CHECK(test_sh("test -e '%s/weights.csv'", dir) != 0);
  og_gold_free(&g);
}

static int og_check_py(const char *h5ad, const char *gold_dir, const char *mode,
                       const char *extra) {
  return test_sh("/usr/bin/python3 tests/h5ad_check.py '%s' '%s' %s --tol 0 %s >&2", h5ad, gold_dir,
                 mode, extra);
}

/* A fresh h5ad (no spatial input): rows are the fitted pixels. */
TEST(output_h5ad_fresh_opens_in_anndata) {
  static const char *const modes[] = {"full", "doublet", "multi"};
  for (int m = 0; m < 3; m++) {
    og_gold g;
    CHECK(og_gold_load(&g, modes[m]) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/fresh_%s.h5ad", test_tmp_dir(), modes[m]);
    rctd_h5ad_target t = {0};
    CHECK(og_write_h5ad(&g, path, &t, 16) == 0);
    CHECK_MSG(og_check_py(path, g.dir, modes[m], "--fitted-only") == 0, "%s", path);
    og_gold_free(&g);
  }
}

/* Into a copy of the vignette's spatial h5ad: every input row kept, filtered rows labelled. */
TEST(output_h5ad_copy_of_spatial_keeps_rows) {
  static const char *const modes[] = {"doublet", "multi", "full"};
  for (int m = 0; m < 3; m++) {
    og_gold g;
    char spatial[1024], path[1024], extra[1100];
    CHECK(og_gold_load(&g, modes[m]) == 0);
    CHECK(og_spatial_rows(&g, spatial, sizeof spatial) == 0);
    snprintf(path, sizeof path, "%s/copy_%s.h5ad", test_tmp_dir(), modes[m]);
    rctd_h5ad_target t = {.spatial_h5ad = spatial};
    CHECK(og_write_h5ad(&g, path, &t, 7) == 0);
    snprintf(extra, sizeof extra, "--spatial '%s'", spatial);
    CHECK_MSG(og_check_py(path, g.dir, modes[m], extra) == 0, "%s", path);
    /* A second run on the output replaces the results (no duplicated columns). */
    char again[1100];
    snprintf(again, sizeof again, "%s.again.h5ad", path);
    rctd_h5ad_target t2 = {.spatial_h5ad = path};
    CHECK(og_write_h5ad(&g, again, &t2, 71) == 0);
    CHECK_MSG(og_check_py(again, g.dir, modes[m], extra) == 0, "%s", again);
    og_gold_free(&g);
  }
}

/* Bytes depend neither on the clock nor on the chunking. */
TEST(output_h5ad_bytes_deterministic) {
  og_gold g;
  char spatial[1024], a[1024], b[1024], c[1024], d[1024], e[1024];
  CHECK(og_gold_load(&g, "doublet") == 0);
  CHECK(og_spatial_rows(&g, spatial, sizeof spatial) == 0);
  snprintf(a, sizeof a, "%s/det_a.h5ad", test_tmp_dir());
  snprintf(b, sizeof b, "%s/det_b.h5ad", test_tmp_dir());
  snprintf(c, sizeof c, "%s/det_c.h5ad", test_tmp_dir());
  snprintf(d, sizeof d, "%s/det_d.h5ad", test_tmp_dir());
  snprintf(e, sizeof e, "%s/det_e.h5ad", test_tmp_dir());
  rctd_h5ad_target t = {.spatial_h5ad = spatial};
  CHECK(og_write_h5ad(&g, a, &t, 71) == 0);
  CHECK(og_write_h5ad(&g, c, &t, 3) == 0);
  rctd_h5ad_target fresh = {0};
  CHECK(og_write_h5ad(&g, d, &fresh, 5) == 0);
  usleep(1100000); /* HDF5 time stamps have a resolution of one second */
  CHECK(og_write_h5ad(&g, b, &t, 71) == 0);
  CHECK(og_write_h5ad(&g, e, &fresh, 71) == 0);
  CHECK_MSG(og_files_equal(a, b), "same input, another second: %s != %s", a, b);
  CHECK_MSG(og_files_equal(a, c), "other chunking: %s != %s", a, c);
  CHECK_MSG(og_files_equal(d, e), "fresh file: %s != %s", d, e);
  og_gold_free(&g);
}

TEST(output_h5ad_refuses_bad_spatial_and_rows) {
  og_gold g;
  CHECK(og_gold_load(&g, "full") == 0);
  char path[1024], bad[1024], err[RCTD_ERR_LEN];
  snprintf(bad, sizeof bad, "%s/not.h5ad", test_tmp_dir());
  CHECK(test_sh("echo hello > '%s'", bad) == 0);
  snprintf(path, sizeof path, "%s/bad_out.h5ad", test_tmp_dir());
  rctd_h5ad_target t = {.spatial_h5ad = bad};
  CHECK(rctd_h5ad_open(path, &t, &g.info, err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "not an HDF5 file"), "%s", err);
  CHECK(test_sh("ls -A '%s' | grep -q 'bad_out'", test_tmp_dir()) != 0);
  /* Rows beyond the spatial input, and barcodes that are not the spatial input's. */
  char spatial[1024];
  CHECK(og_spatial_rows(&g, spatial, sizeof spatial) == 0);
  rctd_h5ad_target ts = {.spatial_h5ad = spatial};
  rctd_h5ad_writer *w = rctd_h5ad_open(path, &ts, &g.info, err, sizeof err);
  CHECK(w);
  CHECK(rctd_h5ad_n_rows(w) == 100);
  int64_t saved = g.row[3];
  g.row[3] = 100;
  rctd_results_chunk c = og_chunk(&g, 0, 10);
  CHECK(rctd_h5ad_write_chunk(w, &c, err, sizeof err) < 0);
  CHECK_MSG(strstr(err, "which has 100 rows"), "%s", err);
  g.row[3] = saved == 0 ? 1 : 0;
  CHECK(rctd_h5ad_write_chunk(w, &c, err, sizeof err) < 0);
  CHECK_MSG(strstr(err, "give --spatial the spatial input"), "%s", err);
  rctd_h5ad_abort(w);
  CHECK(test_sh("ls -A '%s' | grep -q 'bad_out'", test_tmp_dir()) != 0);
  CHECK(rctd_h5ad_open("-", &ts, &g.info, err, sizeof err) == NULL);
  og_gold_free(&g);
}

/* A spatial h5ad with obs columns and uns of its own (as users have them): all kept. */
TEST(output_h5ad_keeps_existing_columns) {
  og_gold g;
  char spatial[1024], own[1024], path[1024];
  CHECK(og_gold_load(&g, "doublet") == 0);
  CHECK(og_spatial_rows(&g, spatial, sizeof spatial) == 0);
  snprintf(own, sizeof own, "%s/own_columns.h5ad", test_tmp_dir());
  snprintf(path, sizeof path, "%s/own_columns_out.h5ad", test_tmp_dir());
  CHECK(test_sh("/usr/bin/python3 -c \"import anndata, numpy as np, pandas as pd; "
                "a = anndata.read_h5ad('%s'); "
                "a.obs['region'] = pd.Categorical(np.where(np.arange(a.n_obs) %% 2, 'in', 'out')); "
                "a.obs['score'] = np.arange(a.n_obs, dtype=float); a.uns['note'] = 'mine'; "
                "a.write_h5ad('%s')\"",
                spatial, own) == 0);
  rctd_h5ad_target t = {.spatial_h5ad = own};
  CHECK(og_write_h5ad(&g, path, &t, 16) == 0);
  CHECK(og_check_py(path, g.dir, "doublet", "") == 0);
  CHECK(test_sh("/usr/bin/python3 -c \"import anndata, numpy as np; "
                "a = anndata.read_h5ad('%s'); cols = list(a.obs.columns); "
                "assert cols[:2] == ['region', 'score'], cols; "
                "assert (a.obs['score'].values == np.arange(a.n_obs)).all(); "
                "assert list(a.obs['region'][:2]) == ['out', 'in']; "
                "assert a.uns['note'] == 'mine' and 'rctd' in a.uns\"",
                path) == 0);
  og_gold_free(&g);
}
