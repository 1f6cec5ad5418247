/* The option tables (see stage_opts.h): the table helpers and the tables of rctd-sigma, rctd-fit-*
 * and rctd-merge; stage_opts_input.c has the reference's and normalize's (they take the reader
 * options), stage_opts_run.c rctd run's.  Apart so that each tool links only what it uses. */
#include "stage_opts.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define OPT_ADD RCTD_OPT_ADD
#define SAME RCTD_FWD_SAME
#define PREFIX RCTD_FWD_PREFIX
#define NONE RCTD_FWD_NONE

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
          "directory for temporary files: the copy of a piped input, the pixels' nUMI "
          "(default $TMPDIR or /tmp)",
          NULL, "DIR");
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
  OPT_ADD(t, SAME, "multiqc", 0, RCTD_OPT_STRING, &c->multiqc_path, NULL,
          "MultiQC general statistics of this sample (NAME_mqc.json or NAME_mqc.tsv)",
          .metavar = "FILE");
  OPT_ADD(t, SAME, "multiqc-sample", 0, RCTD_OPT_STRING, &c->multiqc_sample, NULL,
          "its sample name (default: -o's base name without .h5ad)", .metavar = "NAME");
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
