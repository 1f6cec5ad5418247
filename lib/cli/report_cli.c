/* `rctd report RESULT.h5ad -o REPORT.html [--png DIR] [--dpi N]` (see report.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "report.h"

static const char *report_png_dir, *report_sigma_stream;
static int report_dpi;

static rctd_opt report_opts[] = {
    {"png", 0, RCTD_OPT_STRING, &report_png_dir, NULL,
     "also write the maps as PNG files into DIR (created if missing)", "png", "DIR"},
    {"dpi", 0, RCTD_OPT_INT, &report_dpi, "300",
     "PNG maps: resolution (main maps 6 in wide, type maps 3 in)", "dpi", "N"},
    {"sigma-stream", 0, RCTD_OPT_STRING, &report_sigma_stream, NULL,
     "take sigma's per-epoch likelihood from rctd-sigma's output instead of the result's "
     "uns/rctd/sigma_epochs (for results written without them)",
     "sigma_stream", "FILE"},
    {0}};

int rctd_report_main(int argc, char **argv) {
  rctd_cli cli = {
      .tool = "rctd report",
      .args_usage = "RESULT.h5ad",
      .summary = "one self-contained HTML report (maps, bars, summary) of a result h5ad",
      .description =
          "Reads a result h5ad of rctd run or rctd-merge in chunks and writes one HTML file that "
          "opens offline (PNG maps embedded, SVG bars; no script): the run's summary, maps at "
          "obsm['spatial'] of the dominant type, spot class (doublet) or number of types "
          "(multi), nUMI and each type's proportion (filtered pixels grey), bars per type and "
          "the doublet pairs.  --png DIR writes the maps as PNG files at --dpi.  See "
          "rctd-report(1).",
      .opts = report_opts,
      .min_args = 1,
      .max_args = 1,
      .has_output = 1};
  int rc = rctd_cli_parse(&cli, argc, argv);
  if (rc != RCTD_CLI_CONTINUE) return rc;
  if (report_dpi < 10 || report_dpi > 2400) {
    rc = rctd_cli_usage_error(&cli, "--dpi %d: expected 10 to 2400", report_dpi);
    rctd_cli_free(&cli);
    return rc;
  }
  int html = strcmp(cli.output, "-") != 0 || !report_png_dir;
  rctd_report_opts o = {.result = cli.args[0],
                        .html = html ? cli.output : NULL,
                        .png_dir = report_png_dir,
                        .dpi = report_dpi,
                        .sigma_stream = report_sigma_stream};
  char err[RCTD_ERR_LEN];
  double t0 = rctd_now();
  rc = rctd_report_write(&o, err, sizeof err);
  if (rc != 0)
    rctd_log_error("%s", err);
  else
    rctd_log_info("wrote %s%s%s (%.1f s)", o.html ? o.html : "", o.html && o.png_dir ? " and " : "",
                  o.png_dir ? o.png_dir : "", rctd_now() - t0);
  rctd_cli_free(&cli);
  return rc == 0 ? RCTD_EXIT_OK : RCTD_EXIT_RUNTIME;
}
