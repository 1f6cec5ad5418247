/* rctd-merge: result streams (one, or the shards of a run in any order) -> h5ad, CSV, JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "merge.h"
#include "stage_opts.h"

static rctd_merge_cli mc;
static rctd_opt_table merge_t;

int main(int argc, char **argv) {
  rctd_cli cli = {
      .tool = "rctd-merge",
      .args_usage = "[RESULT...]",
      .summary = "gather fit results (one stream or N shards) into h5ad, CSV and a JSON summary",
      .description =
          "Reads the result streams of rctd-fit-full, rctd-fit-doublet or rctd-fit-multi (files "
          "or standard input, default -): one stream, or the shards of one run (--shard I/N) in "
          "any order.  Every fitted pixel must be present exactly once: a missing, duplicated, "
          "truncated or foreign shard (another model or settings) is an error that names it.  "
          "Writes an AnnData h5ad (into a copy of --spatial when it is an h5ad, with "
          "obsm['rctd_weights'], obs['rctd_dominant_type'] and the mode's columns; filtered "
          "pixels keep their rows with NaN weights and the label 'filtered'), spacexr's CSV "
          "layout (weights.csv, weights_doublet.csv, results_df.csv, multi_results.csv), or "
          "both.  The output bytes do not depend on the number or order of the shards.  See "
          "rctd-merge(1).",
      .opts = merge_t.opts,
      .min_args = 0,
      .max_args = -1,
      .has_output = 1};
  rctd_merge_cli_default(&mc);
  if (rctd_merge_add_opts(&merge_t, &mc) < 0) {
    fprintf(stderr, "%s: option table too small\n", cli.tool);
    return RCTD_EXIT_RUNTIME;
  }
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) return rc;
  const char *stdin_only[] = {"-"};
  rctd_merge_opts o = {.inputs = cli.n_args ? (const char *const *)cli.args : stdin_only,
                       .n_inputs = cli.n_args ? cli.n_args : 1,
                       .spatial = mc.spatial,
                       .spatial_format = mc.spatial_format,
                       .coords_table = mc.coords_table,
                       .json_path = mc.json_path,
                       .summary_path = mc.summary_path,
                       .multiqc_path = mc.multiqc_path,
                       .multiqc_sample = mc.multiqc_sample,
                       .progress = !cli.quiet};
  const int have_output = strcmp(cli.output, "-") != 0;
  const char *fmt = mc.format ? mc.format : "h5ad";
  int want_h5ad = 0, want_csv = 0;
  if (strcmp(fmt, "h5ad") == 0)
    want_h5ad = 1;
  else if (strcmp(fmt, "csv") == 0)
    want_csv = 1;
  else if (strcmp(fmt, "h5ad,csv") == 0 || strcmp(fmt, "csv,h5ad") == 0)
    want_h5ad = want_csv = 1;
  else {
    rc = rctd_cli_usage_error(&cli, "--format %s: expected h5ad, csv or h5ad,csv", fmt);
    rctd_cli_free(&cli);
    return rc;
  }
  if (!have_output && (mc.format || !(mc.json_path || mc.summary_path || mc.multiqc_path))) {
    rc = rctd_cli_usage_error(&cli, "give -o FILE.h5ad (or -o DIR with --format csv)%s",
                              mc.format ? "" : ", or --json/--summary/--multiqc alone");
    rctd_cli_free(&cli);
    return rc;
  }
  char *derived_csv = NULL;
  if (have_output) {
    if (want_h5ad) o.h5ad_path = cli.output;
    if (want_csv && !want_h5ad) o.csv_dir = cli.output;
    if (want_csv && want_h5ad) {
      derived_csv = mc.csv_dir ? NULL : rctd_merge_csv_dir_for(cli.output);
      o.csv_dir = mc.csv_dir ? mc.csv_dir : derived_csv;
    }
  }
  char err[RCTD_ERR_LEN * 2];
  rc = rctd_merge_run(&o, err, sizeof err);
  if (rc != 0) rctd_log_error("%s", err);
  free(derived_csv);
  rctd_cli_free(&cli);
  return rc == 0 ? RCTD_EXIT_OK : RCTD_EXIT_RUNTIME;
}
