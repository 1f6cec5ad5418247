/* The option tables of rctd-reference and rctd-normalize, with the reader options (see
 * stage_opts.h). */
#include <string.h>

#include "input_cli.h"
#include "stage_opts.h"

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

#define OPT_ADD RCTD_OPT_ADD
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

#undef SAME
#undef PREFIX
#undef NONE
