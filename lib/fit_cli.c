/* The command line shared by rctd-fit-full, rctd-fit-doublet and rctd-fit-multi: one option
 * table per mode, then lib/fit_stage. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cuda_select.h"
#include "fit_stage.h"
#include "sigma.h"

typedef struct {
  double sigma, confidence, doublet;
  int max_multi, chunk_pixels;
  const char *shard, *cache_dir, *device, *precision;
} fit_cli_values;

static const char *const fit_cli_summary[] = {
    "fit every pixel with all cell types (RCTD full mode)",
    "classify every pixel as singlet or doublet and fit its types (RCTD doublet mode)",
    "fit every pixel with a greedy choice of up to MAX_MULTI_TYPES types (RCTD multi mode)"};

static const char *const fit_cli_description[] = {
    "Reads a model stream (rctd-normalize | rctd-sigma) from STREAM or stdin and writes a result "
    "stream: per pixel the raw (unnormalised) weights of the unconstrained IRWLS fit and its "
    "convergence flag.  Pixels are fitted chunk by chunk; --shard I/N fits one of N equal slices "
    "of the chunks for rctd-merge to gather.  See rctd-fit-full(1) and rctd-stream(5).",
    "Reads a model stream (rctd-normalize | rctd-sigma) from STREAM or stdin and writes a result "
    "stream: per pixel spacexr's results_df (spot_class, first_type, second_type, classes, "
    "scores, convergence flags), the full fit's weights and the doublet weights.  Pixels are "
    "fitted chunk by chunk; --shard I/N fits one of N equal slices of the chunks for rctd-merge "
    "to gather.  See rctd-fit-doublet(1) and rctd-stream(5).",
    "Reads a model stream (rctd-normalize | rctd-sigma) from STREAM or stdin and writes a result "
    "stream: per pixel the selected types, their confidence flags and weights, the score and the "
    "full fit's weights.  A pixel without any candidate type (R stops there) is flagged and the "
    "run goes on.  --shard I/N fits one of N equal slices of the chunks for rctd-merge to gather. "
    " See rctd-fit-multi(1) and rctd-stream(5)."};

int rctd_fit_main(rctd_fit_mode mode, int argc, char **argv) {
  static char tool[32];
  snprintf(tool, sizeof tool, "rctd-fit-%s", rctd_fit_mode_name(mode));
  fit_cli_values v;
  memset(&v, 0, sizeof v);
  rctd_opt opts[18];
  int n = 0;
  opts[n++] = (rctd_opt){
      "sigma",   0,   RCTD_OPT_DOUBLE,
      &v.sigma,  "0", "sigma_c to use instead of the stream's (e.g. 0.84); 0 = the stream's",
      "sigma_c", "X"};
  if (mode != RCTD_FIT_FULL) {
    opts[n++] = (rctd_opt){
        "confidence-threshold", 0,   RCTD_OPT_DOUBLE,
        &v.confidence,          "5", "CONFIDENCE_THRESHOLD: score margin for a confident call",
        "CONFIDENCE_THRESHOLD", "X"};
    opts[n++] = (rctd_opt){
        "doublet-threshold", 0,    RCTD_OPT_DOUBLE,
        &v.doublet,          "20", "DOUBLET_THRESHOLD: score gain that a second type must bring",
        "DOUBLET_THRESHOLD", "X"};
  }
  if (mode == RCTD_FIT_MULTI)
    opts[n++] = (rctd_opt){"max-multi-types", 0,   RCTD_OPT_INT,
                           &v.max_multi,      "4", "MAX_MULTI_TYPES: most types per pixel",
                           "MAX_MULTI_TYPES", "N"};
  opts[n++] = (rctd_opt){"shard",  0,     RCTD_OPT_STRING,
                         &v.shard, "1/1", "fit only slice I of N of the pixel chunks (1-based)",
                         "",       "I/N"};
  opts[n++] =
      (rctd_opt){"chunk-pixels", 0,
                 RCTD_OPT_INT,   &v.chunk_pixels,
                 "1024",         "pixels per chunk (shards of one run must use the same value)",
                 NULL,           "N"};
  opts[n++] = (rctd_opt){
      "cache-dir",  0,    RCTD_OPT_STRING,
      &v.cache_dir, NULL, "likelihood-table cache (default $XDG_CACHE_HOME/rctd; '' = none)",
      NULL,         "DIR"};
  opts[n++] = (rctd_opt){"device",  0,     RCTD_OPT_STRING,
                         &v.device, "cpu", "backend of the fits: cpu, auto, cuda, cuda:N[,M]",
                         "device",  "DEV"};
  opts[n++] = (rctd_opt){"precision",  0,         RCTD_OPT_STRING,
                         &v.precision, "float64", "CUDA fits: float64 or float32 (faster)",
                         "precision",  "P"};
  opts[n] = (rctd_opt){0};

  rctd_cli cli = {.tool = tool,
                  .args_usage = "[STREAM]",
                  .summary = fit_cli_summary[mode],
                  .description = fit_cli_description[mode],
                  .opts = opts,
                  .min_args = 0,
                  .max_args = 1,
                  .has_output = 1};
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) return rc;
  rctd_fit_stage_opts so;
  rctd_fit_stage_opts_default(&so);
  so.mode = mode;
  so.sigma = v.sigma;
  if (mode != RCTD_FIT_FULL) {
    so.confidence_threshold = v.confidence;
    so.doublet_threshold = v.doublet;
  }
  if (mode == RCTD_FIT_MULTI) so.max_multi_types = v.max_multi;
  so.chunk_pixels = v.chunk_pixels;
  so.cache_dir = v.cache_dir;
  so.n_threads = cli.threads;
  so.progress = !cli.quiet;
  so.cli = &cli;
  char err[RCTD_ERR_LEN];
  if (rctd_fit_parse_shard(v.shard, &so.shard_index, &so.shard_count, err, sizeof err) < 0) {
    rc = rctd_cli_usage_error(&cli, "option --shard: %s", err);
    rctd_cli_free(&cli);
    return rc;
  }
  if (v.sigma != 0 && rctd_sigma_value_of(v.sigma) < 0) {
    rc = rctd_cli_usage_error(&cli,
                              "option --sigma: %g is not on the sigma grid (0.10..0.70 by "
                              "0.01, 0.72..2.00 by 0.02)",
                              v.sigma);
    rctd_cli_free(&cli);
    return rc;
  }
  if (v.chunk_pixels < 1) {
    rc = rctd_cli_usage_error(&cli, "option --chunk-pixels: must be at least 1");
    rctd_cli_free(&cli);
    return rc;
  }
  char note[512] = "";
  so.backend = rctd_backend_open_precision(v.device, v.precision, cli.threads, note, sizeof note,
                                           err, sizeof err);
  if (!so.backend) {
    rctd_log_error("%s", err);
    rctd_cli_free(&cli);
    return RCTD_EXIT_USAGE;
  }
  if (note[0] && strcmp(v.device, "cpu") != 0) rctd_log_info("%s", note);
  const char *in = cli.n_args > 0 ? cli.args[0] : "-";
  rc = RCTD_EXIT_OK;
  if (rctd_fit_stage_run(in, cli.output, &so, err, sizeof err) < 0) {
    rctd_log_error("%s", err);
    rc = RCTD_EXIT_RUNTIME;
  }
  so.backend->destroy(so.backend);
  rctd_cli_free(&cli);
  return rc;
}
