/* The stages' option tables (lib/cli/stage_opts.h): defaults from the stages' *_opts_default, the
 * man pages' stated defaults against the tables, rctd run's options (the names and config keys
 * users rely on) and what it forwards to each stage. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_opts.h"
#include "test.h"

static rctd_run_opts so_run; /* large: static */

/* ---- man pages ---- */

/* A man page's option paragraphs: per .TP, the long options named on its first line and the
 * values of a "Default: ..." / "Defaults: a, b, ..." sentence in its text. */
typedef struct {
  char names[4][48];
  int n_names;
  char values[4][48];
  int n_values;
} so_para;

static char *so_read(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

/* The long options of a .B/.BI line ("\-\-min\-umi" -> "min-umi"). */
static void so_names(const char *line, so_para *p) {
  for (const char *q = strstr(line, "\\-\\-"); q && p->n_names < 4; q = strstr(q, "\\-\\-")) {
    q += 4;
    char *out = p->names[p->n_names];
    size_t k = 0;
    while (k + 1 < sizeof p->names[0]) {
      if (q[0] == '\\' && q[1] == '-') {
        out[k++] = '-';
        q += 2;
      } else if (isalnum((unsigned char)*q)) {
        out[k++] = *q++;
      } else {
        break;
      }
    }
    out[k] = 0;
    if (k) p->n_names++;
  }
}

/* The values after "Default: " or "Defaults: " in TEXT. */
static void so_values(const char *text, so_para *p) {
  const char *d = strstr(text, "Defaults: ");
  d = d ? d + 10 : (d = strstr(text, "Default: ")) ? d + 9 : NULL;
  while (d && p->n_values < 4) {
    char *out = p->values[p->n_values++];
    size_t k = 0;
    while (*d && *d != ',' && !isspace((unsigned char)*d) && k + 1 < sizeof p->values[0])
      out[k++] = *d++;
    if (k && out[k - 1] == '.') k--; /* the sentence's full stop */
    out[k] = 0;
    if (*d != ',') break;
    d += 2;
  }
}

/* Whether the table's default text T and the man page's value M say the same. */
static int so_same(const char *t, const char *m) {
  char *end_t, *end_m;
  double a = strtod(t, &end_t), b = strtod(m, &end_m);
  if (*t && !*end_t && *m && !*end_m) return a == b;
  if (!strcmp(t, "false")) return !strcmp(m, "off") || !strcmp(m, "false");
  if (!strcmp(t, "true")) return !strcmp(m, "on") || !strcmp(m, "true");
  return !strcmp(t, m);
}

/* Checks TABLE against man/man1/PAGE.1: every option documented, every stated default the
 * table's.  0, or -1 with the first problem in msg. */
static int so_check_man(const rctd_opt_table *t, const char *page, char *msg, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/man/man1/%s.1", test_repo_dir(), page);
  char *text = so_read(path);
  if (!text) return snprintf(msg, len, "cannot read the man page of %s", page), -1;
  int rc = 0;
  for (int i = 0; i < t->n && rc == 0; i++) {
    const rctd_opt *o = &t->opts[i];
    int documented = 0;
    for (char *tp = strstr(text, "\n.TP\n"); tp && rc == 0; tp = strstr(tp + 1, "\n.TP\n")) {
      char *line = tp + 5, *eol = strchr(line, '\n');
      if (!eol) break;
      so_para p = {0};
      *eol = 0;
      so_names(line, &p);
      *eol = '\n';
      int at = -1;
      for (int k = 0; k < p.n_names; k++)
        if (!strcmp(p.names[k], o->name)) at = k;
      if (at < 0) continue;
      documented = 1;
      char *next = strstr(eol, "\n.TP\n"), *sh = strstr(eol, "\n.SH");
      if (sh && (!next || sh < next)) next = sh;
      char save = next ? *next : 0;
      if (next) *next = 0;
      so_values(eol, &p);
      if (next) *next = save;
      if (!o->default_value || p.n_values == 0) continue;
      const char *m = p.n_values == p.n_names ? p.values[at] : p.values[0];
      if (!so_same(o->default_value, m))
        rc = -1, snprintf(msg, len, "%s: --%s: the man page says %s, the table %s", page, o->name,
                          m, o->default_value);
    }
    if (rc == 0 && !documented)
      rc = -1, snprintf(msg, len, "%s: --%s is not documented", page, o->name);
  }
  free(text);
  return rc;
}

TEST(stage_opts_defaults_from_the_stages) {
  rctd_opt_table t;
  rctd_normalize_cli n;
  rctd_normalize_cli_default(&n);
  rctd_opt_table_init(&t, NULL);
  CHECK(rctd_normalize_add_opts(&t, &n) == 0);
  rctd_normalize_opts d;
  rctd_normalize_opts_default(&d);
  const rctd_opt *o = rctd_opt_table_find(&t, "gene-cutoff-reg");
  CHECK(o && o->dest == &n.o.gene_cutoff_reg &&
        strtod(o->default_value, NULL) == d.gene_cutoff_reg);
  o = rctd_opt_table_find(&t, "umi-max");
  CHECK(o && !strcmp(o->default_value, "20000000"));
  o = rctd_opt_table_find(&t, "format");
  CHECK(o && !strcmp(o->default_value, "auto") && !strcmp(o->config_key, "spatial_format"));
  CHECK(!rctd_opt_table_find(&t, "cell-type-col")); /* spatial data has no cell types */
  /* a default that is not a round number reads back exactly */
  rctd_sigma_cli s;
  rctd_sigma_cli_default(&s);
  s.o.sigma.min_change = 0.1 + 0.2;
  rctd_opt_table_init(&t, NULL);
  CHECK(rctd_sigma_add_opts(&t, &s) == 0);
  o = rctd_opt_table_find(&t, "min-change");
  CHECK(o && strtod(o->default_value, NULL) == 0.1 + 0.2);
}

TEST(stage_opts_man_pages_state_the_tables_defaults) {
  static rctd_opt_table t;
  char msg[512] = "";
  rctd_reference_cli r;
  rctd_reference_cli_default(&r);
  rctd_opt_table_init(&t, NULL);
  CHECK(rctd_reference_add_opts(&t, &r) == 0);
  CHECK_MSG(so_check_man(&t, "rctd-reference", msg, sizeof msg) == 0, "%s", msg);
  rctd_normalize_cli n;
  rctd_normalize_cli_default(&n);
  rctd_opt_table_init(&t, NULL);
  CHECK(rctd_normalize_add_opts(&t, &n) == 0);
  CHECK_MSG(so_check_man(&t, "rctd-normalize", msg, sizeof msg) == 0, "%s", msg);
  rctd_sigma_cli s;
  rctd_sigma_cli_default(&s);
  rctd_opt_table_init(&t, NULL);
  CHECK(rctd_sigma_add_opts(&t, &s) == 0);
  CHECK_MSG(so_check_man(&t, "rctd-sigma", msg, sizeof msg) == 0, "%s", msg);
  static const char *const fit_pages[] = {"rctd-fit-full", "rctd-fit-doublet", "rctd-fit-multi"};
  for (int m = 0; m < 3; m++) {
    rctd_fit_cli f;
    rctd_fit_cli_default(&f);
    rctd_opt_table_init(&t, NULL);
    CHECK(rctd_fit_add_opts(&t, &f, (rctd_fit_mode)m) == 0);
    CHECK_MSG(so_check_man(&t, fit_pages[m], msg, sizeof msg) == 0, "%s", msg);
  }
  rctd_merge_cli mc;
  rctd_merge_cli_default(&mc);
  rctd_opt_table_init(&t, NULL);
  CHECK(rctd_merge_add_opts(&t, &mc) == 0);
  CHECK_MSG(so_check_man(&t, "rctd-merge", msg, sizeof msg) == 0, "%s", msg);
}

/* rctd run's forwarded options: the names and config keys of its interface. */
TEST(stage_opts_run_interface) {
  static const char *const expect[][2] = {
      {"min-umi", "min_UMI"},
      {"max-cells", "n_max_cells"},
      {"cell-min", "CELL_MIN_INSTANCE"},
      {"drop-small-types", "drop_small_types"},
      {"cell-types", "cell_type_names"},
      {"class-table", "class_table"},
      {"seed", "seed"},
      {"reference-format", "reference_format"},
      {"cell-type-col", "cell_type_col"},
      {"reference-numi-col", "reference_numi_col"},
      {"cell-type-table", "cell_type_table"},
      {"reference-numi-table", "reference_numi_table"},
      {"reference-layer", "reference_layer"},
      {"reference-gene-names", "reference_gene_names"},
      {"reference-allow-noninteger", "reference_allow_noninteger"},
      {"umi-min", "UMI_min"},
      {"umi-max", "UMI_max"},
      {"counts-min", "counts_MIN"},
      {"gene-cutoff", "gene_cutoff"},
      {"fc-cutoff", "fc_cutoff"},
      {"gene-cutoff-reg", "gene_cutoff_reg"},
      {"fc-cutoff-reg", "fc_cutoff_reg"},
      {"min-obs", "MIN_OBS"},
      {"min-genes", "min_genes"},
      {"bulk-min-obs", "bulk_MIN_OBS"},
      {"bulk-max-iter", "bulk_n_iter"},
      {"min-change-bulk", "MIN_CHANGE_BULK"},
      {"block-pixels", "block_pixels"},
      {"spatial-format", "spatial_format"},
      {"spatial-numi-col", "spatial_numi_col"},
      {"spatial-numi-table", "spatial_numi_table"},
      {"coords-table", "coords_table"},
      {"spatial-layer", "spatial_layer"},
      {"spatial-gene-names", "spatial_gene_names"},
      {"spatial-allow-noninteger", "spatial_allow_noninteger"},
      {"sigma", "sigma_c"},
      {"n-fit", "N_fit"},
      {"umi-min-sigma", "UMI_min_sigma"},
      {"n-epoch", "N_epoch"},
      {"sigma-min-change", "sigma_min_change"},
      {"confidence-threshold", "CONFIDENCE_THRESHOLD"},
      {"doublet-threshold", "DOUBLET_THRESHOLD"},
      {"max-multi-types", "MAX_MULTI_TYPES"},
      {"chunk-pixels", "chunk_pixels"},
      {"cache-dir", "cache_dir"},
      {"tmp-dir", "tmp_dir"},
      {"csv-dir", "csv_dir"},
      {"device", "device"},
      {"sigma-seed", "sigma_seed"},
      {"precision", "precision"},
      {"multiqc", "multiqc"},
      {"multiqc-sample", "multiqc_sample"},
  };
  const int n_expect = (int)(sizeof expect / sizeof *expect);
  CHECK(rctd_run_opts_init(&so_run) == 0);
  CHECK_MSG(so_run.run.n == n_expect, "%d forwarded options, expected %d", so_run.run.n, n_expect);
  for (int i = 0; i < n_expect; i++) {
    const rctd_opt *o = rctd_opt_table_find(&so_run.run, expect[i][0]);
    CHECK_MSG(o, "rctd run lacks --%s", expect[i][0]);
    char key[64];
    snprintf(key, sizeof key, "%s", o->config_key ? o->config_key : o->name);
    for (char *c = key; *c; c++)
      if (*c == '-') *c = '_';
    CHECK_MSG(!strcmp(key, expect[i][1]), "--%s: config key %s, expected %s", expect[i][0], key,
              expect[i][1]);
    CHECK(o->default_value == NULL); /* not given = the stage's default */
  }
}

typedef struct {
  char text[1024];
} so_args;

static void so_add(void *ctx, const char *arg) {
  so_args *a = ctx;
  size_t n = strlen(a->text);
  snprintf(a->text + n, sizeof a->text - n, "%s%s", n ? " " : "", arg);
}

static const char *so_stage_args(int stage, rctd_fit_mode mode) {
  static so_args a;
  a.text[0] = 0;
  rctd_run_opts_stage_args(&so_run, stage, mode, so_add, &a);
  return a.text;
}

/* Given values reach the stages that have them, under the stages' names, checked by the stages'
 * own parsers; the fit stage gets only what its mode takes. */
TEST(stage_opts_run_forwards_by_walking_the_stages) {
  CHECK(rctd_run_opts_init(&so_run) == 0);
  static const char *const given[][2] = {{"reference-numi-col", "nUMI"},
                                         {"cell-type-col", "type"},
                                         {"tmp-dir", "/t"},
                                         {"spatial-format", "csv"},
                                         {"umi-min", "50"},
                                         {"sigma-seed", "3"},
                                         {"cache-dir", "/c"},
                                         {"device", "cpu"},
                                         {"max-multi-types", "3"},
                                         {"confidence-threshold", "4"},
                                         {"csv-dir", "out"},
                                         {"coords-table", "xy.csv"}};
  for (size_t i = 0; i < sizeof given / sizeof *given; i++) {
    const rctd_opt *o = rctd_opt_table_find(&so_run.run, given[i][0]);
    CHECK(o && o->type == RCTD_OPT_STRING);
    *(const char **)o->dest = given[i][1];
  }
  const rctd_opt *drop = rctd_opt_table_find(&so_run.run, "drop-small-types");
  CHECK(drop && drop->type == RCTD_OPT_FLAG);
  *(int *)drop->dest = 0;
  char why[256];
  int bad = -1;
  CHECK(rctd_run_opts_apply(&so_run, &bad, why, sizeof why) == 0);
  CHECK(so_run.norm.o.umi_min == 50 && so_run.ref.select.min_umi == 100);
  CHECK(!strcmp(so_run.ref.in.numi_col, "nUMI") && !so_run.norm.in.numi_col);
  CHECK(so_run.fit.o.max_multi_types == 3 && !strcmp(so_run.sigma.o.cache_dir, "/c"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_REFERENCE, RCTD_FIT_DOUBLET),
                "--no-drop-small-types --cell-type-col type --numi-col nUMI --tmp-dir /t"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_NORMALIZE, RCTD_FIT_DOUBLET),
                "--umi-min 50 --format csv --coords-table xy.csv --tmp-dir /t"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_SIGMA, RCTD_FIT_DOUBLET),
                "--cache-dir /c --tmp-dir /t --device cpu --seed 3"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_FIT, RCTD_FIT_MULTI),
                "--confidence-threshold 4 --max-multi-types 3 --cache-dir /c --device cpu"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_FIT, RCTD_FIT_DOUBLET),
                "--confidence-threshold 4 --cache-dir /c --device cpu"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_FIT, RCTD_FIT_FULL), "--cache-dir /c --device cpu"));
  CHECK(!strcmp(so_stage_args(RCTD_RUN_MERGE, RCTD_FIT_DOUBLET),
                "--spatial-format csv --coords-table xy.csv --csv-dir out"));
  /* a value the stage's parser refuses fails here, under rctd run's name */
  const rctd_opt *min_umi = rctd_opt_table_find(&so_run.run, "min-umi");
  *(const char **)min_umi->dest = "abc";
  CHECK(rctd_run_opts_apply(&so_run, &bad, why, sizeof why) < 0);
  CHECK(bad >= 0 && !strcmp(so_run.run.opts[bad].name, "min-umi"));
  CHECK_MSG(!strcmp(why, "invalid number 'abc'"), "%s", why);
}
