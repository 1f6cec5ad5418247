/* The option tables of the stages and of rctd run (see stage_opts.h). */
#include "stage_opts.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ------------------------------------------------------------------ tables */

void rctd_opt_table_init(rctd_opt_table *t, const char *run_prefix) {
  memset(t, 0, sizeof *t);
  t->run_prefix = run_prefix;
}

/* The shortest text that reads back as V (integers without an exponent). */
static void opt_format_double(double v, char *buf, size_t len) {
  if (v == floor(v) && fabs(v) < 1e15) {
    snprintf(buf, len, "%.0f", v);
    return;
  }
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, len, "%.*g", p, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* The default text of O from the value at its dest, or NULL for an unset string. */
static const char *opt_default_text(const rctd_opt *o, char *buf, size_t len) {
  switch (o->type) {
    case RCTD_OPT_FLAG:
      return *(const int *)o->dest ? "true" : "false";
    case RCTD_OPT_INT:
      snprintf(buf, len, "%d", *(const int *)o->dest);
      return buf;
    case RCTD_OPT_I64:
      snprintf(buf, len, "%" PRId64, *(const int64_t *)o->dest);
      return buf;
    case RCTD_OPT_DOUBLE:
      opt_format_double(*(const double *)o->dest, buf, len);
      return buf;
    case RCTD_OPT_STRING:
      return *(const char *const *)o->dest;
  }
  return NULL;
}

int rctd_opt_table_add(rctd_opt_table *t, rctd_opt o, rctd_fwd fwd) {
  if (t->n >= RCTD_OPT_TABLE_MAX) return -1;
  int i = t->n++;
  if (!o.default_value)
    o.default_value = opt_default_text(&o, t->default_[i], sizeof t->default_[i]);
  t->opts[i] = o;
  t->fwd[i] = (unsigned char)fwd;
  t->opts[t->n] = (rctd_opt){0};
  return 0;
}

const rctd_opt *rctd_opt_table_find(const rctd_opt_table *t, const char *name) {
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->opts[i].name, name) == 0) return &t->opts[i];
  return NULL;
}

/* The reader options of rctd_input_cli: prefixed in rctd run, but for the ones only one input
 * has (--cell-type-col, --cell-type-table, --coords-table) and --tmp-dir. */
static int opt_add_input(rctd_opt_table *t, rctd_input_cli *in, const char *key_prefix,
                         const char *format_what, unsigned parts) {
  rctd_opt tmp[RCTD_INPUT_CLI_MAX_OPTS + 1] = {{0}};
  if (rctd_input_cli_add_opts(in, key_prefix, format_what, parts, tmp, sizeof tmp / sizeof *tmp) <
      0)
    return -1;
  for (int i = 0; tmp[i].name; i++) {
    const char *name = tmp[i].name;
    int own = !strcmp(name, "cell-type-col") || !strcmp(name, "cell-type-table");
    int shared = own || !strcmp(name, "coords-table") || !strcmp(name, "tmp-dir");
    if (rctd_opt_table_add(t, tmp[i], shared ? RCTD_FWD_SAME : RCTD_FWD_PREFIX) < 0) return -1;
    if (own)
      t->run_key[t->n - 1] = !strcmp(name, "cell-type-col") ? "cell_type_col" : "cell_type_table";
  }
  return 0;
}

#define OPT_ADD(t, fwd, ...)                                                    \
  do {                                                                          \
    if (rctd_opt_table_add((t), (rctd_opt){__VA_ARGS__}, (fwd)) < 0) return -1; \
  } while (0)
#define SAME RCTD_FWD_SAME
#define PREFIX RCTD_FWD_PREFIX
#define NONE RCTD_FWD_NONE

/* ------------------------------------------------------------------ rctd-reference */

void rctd_reference_cli_default(rctd_reference_cli *c) {
  memset(c, 0, sizeof *c);
  rctd_reference_opts_default(&c->select);
  c->seed = c->select.seed;
}

int rctd_reference_add_opts(rctd_opt_table *t, rctd_reference_cli *c) {
  t->run_prefix = "reference-";
  OPT_ADD(t, SAME, "min-umi", 0, RCTD_OPT_DOUBLE, &c->select.min_umi, NULL,
          "keep cells with nUMI >= X (Reference's min_UMI)", "min_UMI", "X");
  OPT_ADD(t, SAME, "max-cells", 0, RCTD_OPT_I64, &c->select.max_cells, NULL,
          "cells per type; above it every type is downsampled with R's sample() (n_max_cells)",
          "n_max_cells", "N");
  OPT_ADD(t, SAME, "cell-min", 0, RCTD_OPT_I64, &c->select.cell_min, NULL,
          "cells a type needs (CELL_MIN_INSTANCE); fewer is an error", "CELL_MIN_INSTANCE", "N");
  OPT_ADD(t, SAME, "drop-small-types", 0, RCTD_OPT_FLAG, &c->select.drop_small_types, NULL,
          "drop types with fewer than --cell-min cells (warning) instead of failing",
          "drop_small_types", NULL);
  OPT_ADD(t, SAME, "cell-types", 0, RCTD_OPT_STRING, &c->cell_types, NULL,
          "profile only these types, comma-separated, in this order (cell_type_names)",
          "cell_type_names", "LIST");
  OPT_ADD(t, SAME, "class-table", 0, RCTD_OPT_STRING, &c->class_table, NULL,
          "CSV/TSV (header; cell type, class) mapping types to classes (class_df)", "class_table",
          "FILE");
  OPT_ADD(t, SAME, "seed", 0, RCTD_OPT_I64, &c->seed, NULL,
          "R's set.seed() value for the random draws", "seed", "N");
  return opt_add_input(t, &c->in, "reference_", "input format", RCTD_INPUT_CLI_CELL_TYPES);
}

/* ------------------------------------------------------------------ rctd-normalize */

void rctd_normalize_cli_default(rctd_normalize_cli *c) {
  memset(c, 0, sizeof *c);
  rctd_normalize_opts_default(&c->o);
  c->min_genes = c->o.min_genes;
  c->bulk_max_iter = c->o.bulk_max_iter;
}

int rctd_normalize_add_opts(rctd_opt_table *t, rctd_normalize_cli *c) {
  rctd_normalize_opts *o = &c->o;
  t->run_prefix = "spatial-";
  OPT_ADD(t, SAME, "umi-min", 0, RCTD_OPT_DOUBLE, &o->umi_min, NULL, "keep pixels with nUMI >= X",
          "UMI_min", "X");
  OPT_ADD(t, SAME, "umi-max", 0, RCTD_OPT_DOUBLE, &o->umi_max, NULL, "and nUMI <= X", "UMI_max",
          "X");
  OPT_ADD(t, SAME, "counts-min", 0, RCTD_OPT_DOUBLE, &o->counts_min, NULL,
          "and at least X counts over all genes, then over the bulk genes", "counts_MIN", "X");
  OPT_ADD(t, SAME, "gene-cutoff", 0, RCTD_OPT_DOUBLE, &o->gene_cutoff, NULL,
          "bulk gene list: minimum normalised expression", "gene_cutoff", "X");
  OPT_ADD(t, SAME, "fc-cutoff", 0, RCTD_OPT_DOUBLE, &o->fc_cutoff, NULL,
          "bulk gene list: minimum log fold change", "fc_cutoff", "X");
  OPT_ADD(t, SAME, "gene-cutoff-reg", 0, RCTD_OPT_DOUBLE, &o->gene_cutoff_reg, NULL,
          "regression gene list: minimum normalised expression", "gene_cutoff_reg", "X");
  OPT_ADD(t, SAME, "fc-cutoff-reg", 0, RCTD_OPT_DOUBLE, &o->fc_cutoff_reg, NULL,
          "regression gene list: minimum log fold change", "fc_cutoff_reg", "X");
  OPT_ADD(t, SAME, "min-obs", 0, RCTD_OPT_DOUBLE, &o->min_obs, NULL,
          "gene lists: minimum spatial total of a gene", "MIN_OBS", "X");
  OPT_ADD(t, SAME, "min-genes", 0, RCTD_OPT_I64, &c->min_genes, NULL,
          "fewer genes in a list than N is an error", "min_genes", "N");
  OPT_ADD(t, SAME, "bulk-min-obs", 0, RCTD_OPT_DOUBLE, &o->bulk_min_obs, NULL,
          "fitBulk: minimum spatial total of a bulk gene", "bulk_MIN_OBS", "X");
  OPT_ADD(t, SAME, "bulk-max-iter", 0, RCTD_OPT_I64, &c->bulk_max_iter, NULL,
          "fitBulk: IRWLS iterations", "bulk_n_iter", "N");
  OPT_ADD(t, SAME, "min-change-bulk", 0, RCTD_OPT_DOUBLE, &o->min_change_bulk, NULL,
          "fitBulk: convergence threshold", "MIN_CHANGE_BULK", "X");
  OPT_ADD(t, SAME, "block-pixels", 0, RCTD_OPT_I64, &o->block_pixels, NULL,
          "pixels per output block (memory of the later stages)", "block_pixels", "N");
  /* rctd run's --class-table is the reference's */
  OPT_ADD(t, NONE, "class-table", 0, RCTD_OPT_STRING, &c->class_table, NULL,
          "CSV/TSV (header; cell type, class) replacing the reference's classes", "class_table",
          "FILE");
  return opt_add_input(t, &c->in, "spatial_", "spatial input format", RCTD_INPUT_CLI_COORDS);
}

/* ------------------------------------------------------------------ rctd-sigma */

void rctd_sigma_cli_default(rctd_sigma_cli *c) {
  memset(c, 0, sizeof *c);
  rctd_sigma_stage_opts_default(&c->o);
  c->n_epoch = c->o.sigma.n_epoch;
  c->device = "cpu";
}

int rctd_sigma_add_opts(rctd_opt_table *t, rctd_sigma_cli *c) {
  rctd_sigma_opts *o = &c->o.sigma;
  t->run_prefix = "sigma-";
  OPT_ADD(t, SAME, "sigma", 0, RCTD_OPT_STRING, &c->sigma_text, NULL,
          "use this sigma (0.84, or the grid value 84) instead of estimating it", "sigma_c", "X");
  OPT_ADD(t, SAME, "n-fit", 0, RCTD_OPT_I64, &o->n_fit, NULL,
          "pixels fitted to estimate sigma (at most)", "N_fit", "N");
  OPT_ADD(t, SAME, "umi-min-sigma", 0, RCTD_OPT_DOUBLE, &o->umi_min_sigma, NULL,
          "only pixels with nUMI > X are fitted", "UMI_min_sigma", "X");
  OPT_ADD(t, SAME, "n-epoch", 0, RCTD_OPT_I64, &c->n_epoch, NULL,
          "at most N rounds of fit and choice", "N_epoch", "N");
  OPT_ADD(t, PREFIX, "min-change", 0, RCTD_OPT_DOUBLE, &o->min_change, NULL,
          "IRWLS convergence threshold of the sigma fits (R: decompose_batch's MIN.CHANGE)",
          "sigma_min_change", "X");
  OPT_ADD(t, SAME, "cache-dir", 0, RCTD_OPT_STRING, &c->o.cache_dir, NULL,
          "likelihood-table cache (default $XDG_CACHE_HOME/rctd; '' = none)", "cache_dir", "DIR");
  OPT_ADD(t, SAME, "tmp-dir", 0, RCTD_OPT_STRING, &c->o.tmp_dir, NULL,
          "directory for the copy of a piped input (default $TMPDIR or /tmp)", NULL, "DIR");
  OPT_ADD(t, SAME, "device", 0, RCTD_OPT_STRING, &c->device, NULL,
          "backend of the sigma fits: cpu, auto, cuda, cuda:N", "device", "DEV");
  OPT_ADD(t, PREFIX, "seed", 0, RCTD_OPT_STRING, &c->seed_text, NULL,
          "set.seed(N) before the draws (default: continue the model's random stream, or 1)",
          "sigma_seed", "N");
  return 0;
}

/* ------------------------------------------------------------------ rctd-fit-* */

void rctd_fit_cli_default(rctd_fit_cli *c) {
  memset(c, 0, sizeof *c);
  rctd_fit_stage_opts_default(&c->o);
  c->shard = "1/1";
  c->device = "cpu";
  c->precision = "float64";
}

int rctd_fit_add_opts(rctd_opt_table *t, rctd_fit_cli *c, rctd_fit_mode mode) {
  rctd_fit_stage_opts *o = &c->o;
  /* rctd run's --sigma is rctd-sigma's */
  OPT_ADD(t, NONE, "sigma", 0, RCTD_OPT_DOUBLE, &o->sigma, NULL,
          "sigma_c to use instead of the stream's (e.g. 0.84); 0 = the stream's", "sigma_c", "X");
  if (mode != RCTD_FIT_FULL) {
    OPT_ADD(t, SAME, "confidence-threshold", 0, RCTD_OPT_DOUBLE, &o->confidence_threshold, NULL,
            "CONFIDENCE_THRESHOLD: score margin for a confident call", "CONFIDENCE_THRESHOLD", "X");
    OPT_ADD(t, SAME, "doublet-threshold", 0, RCTD_OPT_DOUBLE, &o->doublet_threshold, NULL,
            "DOUBLET_THRESHOLD: score gain that a second type must bring", "DOUBLET_THRESHOLD",
            "X");
  }
  if (mode == RCTD_FIT_MULTI)
    OPT_ADD(t, SAME, "max-multi-types", 0, RCTD_OPT_INT, &o->max_multi_types, NULL,
            "MAX_MULTI_TYPES: most types per pixel", "MAX_MULTI_TYPES", "N");
  OPT_ADD(t, NONE, "shard", 0, RCTD_OPT_STRING, &c->shard, NULL,
          "fit only slice I of N of the pixel chunks (1-based)", "", "I/N");
  OPT_ADD(t, SAME, "chunk-pixels", 0, RCTD_OPT_INT, &o->chunk_pixels, NULL,
          "pixels per chunk (shards of one run must use the same value)", NULL, "N");
  OPT_ADD(t, SAME, "cache-dir", 0, RCTD_OPT_STRING, &o->cache_dir, NULL,
          "likelihood-table cache (default $XDG_CACHE_HOME/rctd; '' = none)", NULL, "DIR");
  OPT_ADD(t, SAME, "device", 0, RCTD_OPT_STRING, &c->device, NULL,
          "backend of the fits: cpu, auto, cuda, cuda:N[,M]", "device", "DEV");
  OPT_ADD(t, SAME, "precision", 0, RCTD_OPT_STRING, &c->precision, NULL,
          "CUDA fits: float64 or float32 (faster)", "precision", "P");
  return 0;
}

/* ------------------------------------------------------------------ rctd-merge */

void rctd_merge_cli_default(rctd_merge_cli *c) {
  memset(c, 0, sizeof *c);
  c->spatial_format = "auto";
}

int rctd_merge_add_opts(rctd_opt_table *t, rctd_merge_cli *c) {
  /* rctd run gives --spatial, --format, --json and --summary itself */
  OPT_ADD(t, NONE, "spatial", 0, RCTD_OPT_STRING, &c->spatial, NULL,
          "the run's spatial input: an h5ad is copied and the results added; another format "
          "gives the obs names of a fresh h5ad",
          .metavar = "FILE");
  OPT_ADD(t, NONE, "format", 'f', RCTD_OPT_STRING, &c->format, NULL,
          "what -o is: h5ad (a file), csv (a directory in spacexr's layout) or h5ad,csv "
          "(default h5ad)",
          .metavar = "FMT");
  OPT_ADD(t, SAME, "spatial-format", 0, RCTD_OPT_STRING, &c->spatial_format, NULL,
          "format of --spatial: auto, h5ad, 10x-h5, mtx, csv", .metavar = "FMT");
  OPT_ADD(t, SAME, "coords-table", 0, RCTD_OPT_STRING, &c->coords_table, NULL,
          "CSV table barcode, x, y: obsm['spatial'] of a fresh h5ad", .metavar = "FILE");
  OPT_ADD(t, SAME, "csv-dir", 0, RCTD_OPT_STRING, &c->csv_dir, NULL,
          "with --format h5ad,csv: directory of the CSV files (default: -o without .h5ad)",
          .metavar = "DIR");
  OPT_ADD(t, NONE, "json", 0, RCTD_OPT_STRING, &c->json_path, NULL,
          "JSON summary: mode, sigma, pixel counts, spot classes, dominant types, timings ('-' = "
          "standard output)",
          .metavar = "FILE");
  OPT_ADD(t, NONE, "summary", 0, RCTD_OPT_STRING, &c->summary_path, NULL,
          "the same summary as text ('-' = standard output)", .metavar = "FILE");
  return 0;
}

#undef SAME
#undef PREFIX
#undef NONE

/* ------------------------------------------------------------------ rctd run */

static const char *const run_tools[RCTD_RUN_N_STAGES] = {"rctd-reference", "rctd-normalize",
                                                         "rctd-sigma", "rctd-fit-*", "rctd-merge"};

static int run_find(const rctd_opt_table *t, const char *name) {
  for (int j = 0; j < t->n; j++)
    if (strcmp(t->opts[j].name, name) == 0) return j;
  return -1;
}

/* rctd run's entry for entry I of stage S: a new one, or the one another stage created. */
static int run_link(rctd_run_opts *r, int s, int i) {
  const rctd_opt_table *st = &r->stage[s];
  const rctd_opt *o = &st->opts[i];
  r->run_of[s][i] = -1;
  if (st->fwd[i] == RCTD_FWD_NONE) return 0;
  char name[64];
  snprintf(name, sizeof name, "%s%s", st->fwd[i] == RCTD_FWD_PREFIX ? st->run_prefix : "", o->name);
  int j = run_find(&r->run, name);
  if (j < 0) {
    rctd_opt_table *t = &r->run;
    if (t->n >= RCTD_OPT_TABLE_MAX) return -1;
    j = t->n;
    snprintf(t->name_[j], sizeof t->name_[j], "%s", name);
    snprintf(t->default_[j], sizeof t->default_[j], "%s", o->default_value ? o->default_value : "");
    snprintf(t->help_[j], sizeof t->help_[j], "%s", o->help ? o->help : "");
    int flag = o->type == RCTD_OPT_FLAG;
    rctd_opt ro = {t->name_[j],
                   0,
                   flag ? RCTD_OPT_FLAG : RCTD_OPT_STRING,
                   flag ? (void *)&r->flag[j] : (void *)&r->text[j],
                   NULL,
                   t->help_[j],
                   st->run_key[i] ? st->run_key[i] : o->config_key,
                   o->metavar};
    t->opts[j] = ro;
    t->fwd[j] = RCTD_FWD_SAME;
    t->n++;
    t->opts[t->n] = (rctd_opt){0};
  }
  r->run_of[s][i] = j;
  /* the stages it goes to, listed in the help by run_help */
  char *tools = r->tools_[j];
  size_t used = strlen(tools);
  snprintf(tools + used, sizeof r->tools_[j] - used, "%s%s", used ? ", " : "", run_tools[s]);
  return 0;
}

/* snprintf that may truncate (help texts). */
static void run_print(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void run_print(char *dst, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, len, fmt, ap);
  va_end(ap);
}

/* rctd run's help of entry J: the first stage's help, then the stages and their default. */
static void run_help(rctd_run_opts *r, int j) {
  rctd_opt_table *t = &r->run;
  char help[sizeof t->help_[j]];
  memcpy(help, t->help_[j], sizeof help);
  if (t->default_[j][0])
    run_print(t->help_[j], sizeof t->help_[j], "%s (%s: %s)", help, r->tools_[j], t->default_[j]);
  else
    run_print(t->help_[j], sizeof t->help_[j], "%s (%s)", help, r->tools_[j]);
}

int rctd_run_opts_init(rctd_run_opts *r) {
  memset(r, 0, sizeof *r);
  rctd_reference_cli_default(&r->ref);
  rctd_normalize_cli_default(&r->norm);
  rctd_sigma_cli_default(&r->sigma);
  rctd_fit_cli_default(&r->fit);
  rctd_merge_cli_default(&r->merge);
  for (int s = 0; s < RCTD_RUN_N_STAGES; s++) rctd_opt_table_init(&r->stage[s], NULL);
  rctd_opt_table_init(&r->run, NULL);
  if (rctd_reference_add_opts(&r->stage[RCTD_RUN_REFERENCE], &r->ref) < 0 ||
      rctd_normalize_add_opts(&r->stage[RCTD_RUN_NORMALIZE], &r->norm) < 0 ||
      rctd_sigma_add_opts(&r->stage[RCTD_RUN_SIGMA], &r->sigma) < 0 ||
      rctd_fit_add_opts(&r->stage[RCTD_RUN_FIT], &r->fit, RCTD_FIT_MULTI) < 0 ||
      rctd_merge_add_opts(&r->stage[RCTD_RUN_MERGE], &r->merge) < 0)
    return -1;
  for (int j = 0; j < RCTD_OPT_TABLE_MAX; j++) r->flag[j] = -1;
  for (int s = 0; s < RCTD_RUN_N_STAGES; s++)
    for (int i = 0; i < r->stage[s].n; i++)
      if (run_link(r, s, i) < 0) return -1;
  for (int j = 0; j < r->run.n; j++) run_help(r, j);
  return 0;
}

int rctd_run_opts_append(const rctd_run_opts *r, rctd_opt *opts, size_t capacity) {
  size_t n = 0;
  while (n < capacity && opts[n].name) n++;
  if (n + (size_t)r->run.n + 1 > capacity) return -1;
  memcpy(opts + n, r->run.opts, (size_t)r->run.n * sizeof *opts);
  opts[n + (size_t)r->run.n] = (rctd_opt){0};
  return 0;
}

int rctd_run_opts_apply(rctd_run_opts *r, char *err, size_t err_len) {
  for (int s = 0; s < RCTD_RUN_N_STAGES; s++) {
    for (int i = 0; i < r->stage[s].n; i++) {
      int j = r->run_of[s][i];
      if (j < 0) continue;
      const rctd_opt *o = &r->stage[s].opts[i];
      if (o->type == RCTD_OPT_FLAG) {
        if (r->flag[j] >= 0) *(int *)o->dest = r->flag[j];
        continue;
      }
      if (!r->text[j]) continue;
      char why[200];
      if (rctd_opt_set(o, r->text[j], why, sizeof why) != 0)
        return rctd_fail(err, err_len, "option --%s: %s", r->run.opts[j].name, why);
    }
  }
  return 0;
}

const char *rctd_run_opts_given(const rctd_run_opts *r, const char *name) {
  int j = run_find(&r->run, name);
  return j >= 0 && r->run.opts[j].type != RCTD_OPT_FLAG ? r->text[j] : NULL;
}

void rctd_run_opts_stage_args(const rctd_run_opts *r, int stage, rctd_fit_mode mode,
                              void (*add)(void *ctx, const char *arg), void *ctx) {
  const rctd_opt_table *st = &r->stage[stage];
  static rctd_opt_table mode_table; /* the fit stage: MODE's own table (main thread) */
  const rctd_opt_table *walk = st;
  if (stage == RCTD_RUN_FIT) {
    rctd_fit_cli scratch;
    rctd_fit_cli_default(&scratch);
    rctd_opt_table_init(&mode_table, NULL);
    if (rctd_fit_add_opts(&mode_table, &scratch, mode) == 0) walk = &mode_table;
  }
  for (int k = 0; k < walk->n; k++) {
    int i = run_find(st, walk->opts[k].name);
    int j = i >= 0 ? r->run_of[stage][i] : -1;
    if (j < 0) continue;
    char opt[96];
    if (st->opts[i].type == RCTD_OPT_FLAG) {
      if (r->flag[j] < 0) continue;
      snprintf(opt, sizeof opt, "--%s%s", r->flag[j] ? "" : "no-", st->opts[i].name);
      add(ctx, opt);
    } else if (r->text[j]) {
      snprintf(opt, sizeof opt, "--%s", st->opts[i].name);
      add(ctx, opt);
      add(ctx, r->text[j]);
    }
  }
}
