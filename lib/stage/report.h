/* `rctd report`: one self-contained HTML file (embedded PNG maps as data URIs, inline SVG bars
 * and legends, no script, nothing fetched) and/or the maps as PNG files, from a result h5ad
 * (lib/io/output.h's layout: obsm/rctd_weights, obs/rctd_*, uns/rctd, obsm/spatial).
 *
 * The report holds: the run's summary (mode, sigma and its per-epoch likelihood from
 * uns/rctd/sigma_epochs, gene lists, pixels in / filtered / fitted, version, tools,
 * configuration; command line and stage timings when the caller knows them),
 * maps at the pixels' coordinates (dominant type, spot class or number of types, nUMI, one
 * small map per type of its proportion; filtered pixels grey), bars per type (pixels by
 * dominant type, mean proportion) and, in doublet mode, the doublet pairs as a heat map.
 *
 * Memory: the result is read in row chunks (twice: ranges, then drawing); the maps are byte
 * rasters whose size is set by the page (or the dpi), not by the number of pixels.  Points are
 * drawn as discs whose size follows the pixel density. */
#ifndef RCTD_REPORT_H
#define RCTD_REPORT_H
#include <stddef.h>

typedef struct {
  const char *result;  /* the result h5ad */
  const char *html;    /* write the HTML report here ("-" = standard output), or NULL */
  const char *png_dir; /* write the maps as PNG files into this directory, or NULL */
  int dpi;             /* PNG maps: resolution (main maps 6 in wide, type maps 3 in) */
  const char *command; /* the command line that made the result, or NULL (not recorded) */
  int n_timings;       /* stage timings, or 0 */
  const char *const *timing_names;
  const double *timing_s;
  int html_width;           /* HTML main maps' width in raster cells (0: 392) */
  const char *sigma_stream; /* rctd-sigma's output: its epochs instead of the result's, or NULL */
} rctd_report_opts;

#define RCTD_REPORT_DEFAULT_DPI 300

/* 0, or -1 with one line "FILE: what is wrong and what to do" in err; no output file is left
 * behind on failure (PNG files already written by a failing run are removed). */
int rctd_report_write(const rctd_report_opts *opts, char *err, size_t err_len);

/* `rctd report` (argv[0] = "report"): options, then rctd_report_write.  Returns the exit
 * status. */
int rctd_report_main(int argc, char **argv);

#endif
