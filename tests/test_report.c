/* rctd report (lib/stage/report.c, lib/io/raster.c): the PNG maps of a synthetic layout at known
 * coordinates, the HTML rendered by headless chromium (the vignette's report and a 100,000-pixel
 * synthetic one), the PNG encoder, and bad input (no weights, NaN coordinates, a row count that
 * differs, an unwritable output): one line, exit 1, no report.  Python checks:
 * tests/report_check.py. */
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "raster.h"
#include "report.h"
#include "synth_result.h"
#include "test.h"

/* Commands run from the repository root (tests/report_check.py, data/vignette, workflows/). */
#define REPO_SH(fmt, ...) test_sh("cd '%s' && " fmt, test_repo_dir(), __VA_ARGS__)

static char rep_err[1024];

/* Comma-separated hex colours of the first K qualitative colours. */
static void rep_colours(char *buf, size_t len, int K) {
  int used = 0;
  for (int k = 0; k < K && used + 8 < (int)len; k++) {
    rctd_rgb c = rctd_raster_qualitative(k);
    used += snprintf(buf + used, len - (size_t)used, "%s%02x%02x%02x", k ? "," : "", c.r, c.g, c.b);
  }
}

static const char *rep_path(const char *name) {
  static char paths[8][4096];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, sizeof paths[0], "%s/%s", test_tmp_dir(), name);
  return p;
}

TEST(report_palette_is_distinct_and_avoids_grey_and_white) {
  for (int a = 0; a < RCTD_RASTER_MAX_QUALITATIVE; a++) {
    rctd_rgb x = rctd_raster_qualitative(a);
    CHECK_MSG(!(x.r == x.g && x.g == x.b), "colour %d is grey", a);
    for (int b = 0; b < a; b++) {
      rctd_rgb y = rctd_raster_qualitative(b);
      int d = abs(x.r - y.r) + abs(x.g - y.g) + abs(x.b - y.b);
      CHECK_MSG(d >= 40, "colours %d and %d are too close (%d)", a, b, d);
    }
  }
  rctd_rgb lo = rctd_raster_viridis(0), hi = rctd_raster_viridis(1);
  CHECK(lo.r == 68 && lo.g == 1 && lo.b == 84 && hi.r == 253 && hi.g == 231 && hi.b == 37);
}

TEST(report_png_encoder_round_trips_through_zlib) {
  rctd_raster r;
  CHECK(rctd_raster_init(&r, 7, 5) == 0);
  rctd_raster_disc(&r, 3.5, 2.5, 1.2, 3, 0);
  rctd_raster_square(&r, 0.2, 0.2, 0.5, 9, 0);
  CHECK(r.cells[2 * 7 + 3] == 3 && r.cells[0] == 9 && r.cells[4 * 7 + 6] == 0);
  rctd_rgb pal[16] = {{0, 0, 0}};
  unsigned char *png;
  size_t len;
  CHECK(rctd_png_encode(&r, pal, 16, 300, "k", "v", &png, &len) == 0);
  CHECK(len > 57 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0 && memcmp(png + 12, "IHDR", 4) == 0);
  /* find IDAT and inflate it: rows of 1 filter byte + 7 indices */
  size_t at = 8;
  int ok = 0;
  while (at + 8 <= len) {
    uint32_t n = (uint32_t)png[at] << 24 | png[at + 1] << 16 | png[at + 2] << 8 | png[at + 3];
    if (memcmp(png + at + 4, "IDAT", 4) == 0) {
      unsigned char raw[5 * 8];
      uLongf raw_len = sizeof raw;
      ok = uncompress(raw, &raw_len, png + at + 8, n) == Z_OK && raw_len == sizeof raw &&
           raw[0] == 0 && raw[1] == 9 && raw[2 * 8 + 1 + 3] == 3;
    }
    at += 12 + n;
  }
  free(png);
  rctd_raster_free(&r);
  CHECK(ok);
  char *b = rctd_base64((const unsigned char *)"rctd!", 5);
  CHECK(b && strcmp(b, "cmN0ZCE=") == 0);
  free(b);
}

TEST_E2E(report_png_maps_show_each_type_at_its_coordinates) {
  const char *h5ad = rep_path("synth_small.h5ad"), *dir = rep_path("synth_png");
  const int K = 7, n = 2500; /* side 50 */
  CHECK_MSG(rctd_synth_result_write(h5ad, n, K, 1, rep_err, sizeof rep_err) == 0, "%s", rep_err);
  CHECK(REPO_SH("%s/rctd report --quiet --png '%s' --dpi 150 '%s'", test_bin_dir(), dir, h5ad) ==
        0);
  char colours[1024];
  rep_colours(colours, sizeof colours, K);
  CHECK(REPO_SH("/usr/bin/python3 tests/report_check.py png '%s' --side 50 --types %d "
                "--colours %s --dpi 150",
                dir, K, colours) == 0);
  CHECK(REPO_SH("test -f '%s/spot_class.png' && test -f '%s/numi.png' && test $(ls '%s' | wc -l) "
                "-eq %d",
                dir, dir, dir, 4 + K) == 0);
}

TEST_E2E(report_html_renders_in_chromium_at_100000_pixels) {
  const char *h5ad = rep_path("synth_100k.h5ad"), *html = rep_path("synth_100k.html");
  const int K = 19;
  CHECK_MSG(rctd_synth_result_write(h5ad, 100000, K, 1, rep_err, sizeof rep_err) == 0, "%s",
            rep_err);
  CHECK(REPO_SH("%s/rctd report --quiet '%s' -o '%s'", test_bin_dir(), h5ad, html) == 0);
  char colours[1024];
  rep_colours(colours, sizeof colours, K);
  CHECK(REPO_SH("/usr/bin/python3 tests/report_check.py browser '%s' '%s' --sections "
                "summary,maps,type-maps,types,doublets --images %d --colours %s --min-pixels 100",
                html, rep_path("synth_100k.png"), 4 + K, colours) == 0);
}

/* The vignette through rctd run --report, its spatial input given as a Space Ranger folder
 * (made from the vignette h5ad; every 5th spot off the tissue): the result's obsm/spatial holds
 * the in-tissue spots' positions, and the report renders. */
TEST_E2E(report_vignette_from_a_space_ranger_folder_renders_in_chromium) {
  const char *folder = rep_path("vignette_outs"), *h5ad = rep_path("vignette_sr.h5ad");
  const char *html = rep_path("vignette_sr.html");
  CHECK(REPO_SH("/usr/bin/python3 tests/report_check.py spaceranger "
                "data/vignette/h5ad/spatial.h5ad '%s' >/dev/null",
                folder) == 0);
  CHECK(REPO_SH("%s/rctd run --quiet --no-summary --reference data/vignette/h5ad/reference.h5ad "
                "--reference-numi-col nUMI --cell-type-col cell_type_name --spatial '%s' --mode "
                "doublet -o '%s' --report '%s'",
                test_bin_dir(), folder, h5ad, html) == 0);
  CHECK(REPO_SH("/usr/bin/python3 tests/report_check.py coords '%s' '%s'", h5ad, folder) == 0);
  CHECK(REPO_SH("grep -q 'rctd run --quiet' '%s' && grep -q 'stage timings</td><td>reference' "
                "'%s'",
                html, html) == 0);
  char colours[1024];
  rep_colours(colours, sizeof colours, 19);
  CHECK(REPO_SH("/usr/bin/python3 tests/report_check.py browser '%s' '%s' --sections "
                "summary,maps,type-maps,types,doublets --images %d --colours %s --min-pixels 30 "
                "--min-colours 4",
                html, rep_path("vignette_sr.png"), 4 + 19, colours) == 0);
}

TEST_E2E(report_without_coordinates_says_so_and_shows_the_rest) {
  const char *h5ad = rep_path("synth_nocoords.h5ad"), *html = rep_path("nocoords.html");
  CHECK_MSG(rctd_synth_result_write(h5ad, 400, 5, 0, rep_err, sizeof rep_err) == 0, "%s", rep_err);
  CHECK(REPO_SH("%s/rctd report --quiet '%s' -o '%s'", test_bin_dir(), h5ad, html) == 0);
  CHECK(REPO_SH("grep -q 'id=\"no-coordinates\"' '%s' && grep -q 'id=\"bars-dominant\"' '%s' && "
                "! grep -q '<img' '%s'",
                html, html, html) == 0);
  /* nor has this result sigma's epochs */
  CHECK(REPO_SH("grep -q '<td>sigma likelihood per epoch</td><td>not in the result (no "
                "uns/rctd/sigma_epochs' '%s'",
                html) == 0);
  CHECK(REPO_SH("%s/rctd report --quiet --png '%s' '%s' 2>/dev/null", test_bin_dir(),
                rep_path("nocoords_png"), h5ad) == 1);
}

/* Rewrites obsm/spatial of H5AD: one NaN (ROWS 0) or a dataset of ROWS rows. */
static int rep_damage_coords(const char *h5ad, int rows) {
  hid_t f = H5Fopen(h5ad, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return -1;
  int rc = 0;
  if (rows == 0) {
    hid_t d = H5Dopen2(f, "obsm/spatial", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    hsize_t start[2] = {5, 1}, count[2] = {1, 1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mem = H5Screate_simple(2, count, NULL);
    double nan = NAN;
    rc = H5Dwrite(d, H5T_NATIVE_DOUBLE, mem, space, H5P_DEFAULT, &nan) < 0 ? -1 : 0;
    H5Sclose(mem), H5Sclose(space), H5Dclose(d);
  } else {
    H5Ldelete(f, "obsm/spatial", H5P_DEFAULT);
    hsize_t dims[2] = {(hsize_t)rows, 2};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d =
        H5Dcreate2(f, "obsm/spatial", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    double *zero = calloc((size_t)rows * 2, sizeof *zero);
    rc = d < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zero) < 0 ? -1 : 0;
    free(zero);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
  }
  H5Fclose(f);
  return rc;
}

/* Adds uns/rctd/sigma_epochs to H5AD with lists of different lengths (2, 1, 2). */
static int rep_damage_epochs(const char *h5ad) {
  hid_t f = H5Fopen(h5ad, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return -1;
  hid_t g = H5Gcreate2(f, "uns/rctd/sigma_epochs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = g < 0 ? -1 : 0;
  const char *names[3] = {"sigma", "likelihood", "sigma_chosen"};
  const double v[2] = {1.0, 0.84};
  for (int i = 0; i < 3 && rc == 0; i++) {
    hsize_t n = i == 1 ? 1 : 2;
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(g, names[i], H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    rc = d < 0 || H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
  }
  if (g >= 0) H5Gclose(g);
  H5Fclose(f);
  return rc;
}

TEST_E2E(report_bad_input_one_line_exit_1_no_report) {
  const char *good = rep_path("bad_good.h5ad"), *nan = rep_path("bad_nan.h5ad");
  const char *rows = rep_path("bad_rows.h5ad"), *out = rep_path("bad.html");
  CHECK_MSG(rctd_synth_result_write(good, 300, 4, 1, rep_err, sizeof rep_err) == 0, "%s", rep_err);
  const char *epochs = rep_path("bad_epochs.h5ad");
  CHECK(REPO_SH("cp '%s' '%s' && cp '%s' '%s' && cp '%s' '%s'", good, nan, good, rows, good,
                epochs) == 0);
  CHECK(rep_damage_coords(nan, 0) == 0 && rep_damage_coords(rows, 299) == 0 &&
        rep_damage_epochs(epochs) == 0);
  struct {
    const char *input, *output, *message;
  } cases[] = {
      {"data/vignette/h5ad/spatial.h5ad", out, "no obsm/rctd_weights: not an rctd result"},
      {nan, out, "coordinates of pixel 6 are not finite"},
      {rows, out, "obsm/spatial has 299 rows but the result has 300 pixels"},
      {epochs, out, "uns/rctd/sigma_epochs: sigma, likelihood and sigma_chosen are not lists of "
                    "one length: the result is damaged"},
      {good, "/nonexistent-dir/report.html", "/nonexistent-dir/report.html"},
      {rep_path("missing.h5ad"), out, "missing.h5ad"},
  };
  const char *log = rep_path("bad.log");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    int status = REPO_SH("%s/rctd report '%s' -o '%s' 2>'%s'", test_bin_dir(), cases[i].input,
                         cases[i].output, log);
    CHECK_MSG(status == 1, "case %zu: exit %d", i, status);
    CHECK_MSG(REPO_SH("test $(wc -l <'%s') -eq 1 && grep -q '^rctd report: .*%s' '%s'", log,
                      cases[i].message, log) == 0,
              "case %zu: message", i);
    CHECK_MSG(REPO_SH("test ! -e '%s' && test -z \"$(ls -a '%s' | grep '\\.tmp\\.')\"", out,
                      test_tmp_dir()) == 0,
              "case %zu: a report or temporary file was left", i);
  }
}

/* The Snakemake workflow's `reports` target: every sample's HTML report and MultiQC statistics. */
TEST_E2E(report_snakemake_reports_target) {
  char work[4096], bin[4096], repo[4096];
  snprintf(work, sizeof work, "%s/smk_reports", test_tmp_dir());
  CHECK(realpath(test_bin_dir(), bin) != NULL && realpath(test_repo_dir(), repo) != NULL);
  CHECK(REPO_SH("mkdir -p '%s' && printf 'bin_dir: %s\\noutdir: out\\nreference:\\n  input: "
                "%s/data/vignette/h5ad/reference.h5ad\\n  options: \"--cell-type-col "
                "cell_type_name --numi-col nUMI\"\\nformats: h5ad\\ndefaults:\\n  mode: doublet\\n"
                "  shards: 2\\n  chunk_pixels: 32\\n  threads: 1\\nsamples:\\n  slideA:\\n    "
                "spatial: %s/data/vignette/h5ad/spatial.h5ad\\n' >'%s/config.yaml'",
                work, bin, repo, repo, work) == 0);
  CHECK(REPO_SH("snakemake -q -j2 -s workflows/snakemake/Snakefile --directory '%s' "
                "--configfile='%s/config.yaml' reports >'%s/log' 2>&1 || { cat '%s/log'; exit 1; }",
                work, work, work, work) == 0);
  CHECK(REPO_SH("grep -q 'id=\"maps\"' '%s/out/slideA/slideA.html' && grep -q '\"slideA\": "
                "{\"pixels_fitted\": 71' '%s/out/slideA/slideA_mqc.json'",
                work, work) == 0);
}

/* The report shows rctd-sigma's per-epoch likelihood from the result itself
 * (uns/rctd/sigma_epochs): rctd run --report and rctd report on the h5ad alone both give the
 * values rctd-sigma printed (10 significant digits); a given sigma is said to be given;
 * --sigma-stream still reads rctd-sigma's output and refuses a stream without its record. */
TEST_E2E(report_sigma_trace_from_the_result) {
  const char *keep = rep_path("trace_keep"), *h5ad = rep_path("trace.h5ad");
  const char *html = rep_path("trace.html"), *log = rep_path("trace.log");
  const char *again = rep_path("trace_again.html"), *given = rep_path("given.h5ad");
  /* every epoch line of the log has its row in the report's table */
#define REP_TRACE_ROWS(LOG, HTML)                                                                \
  REPO_SH("n=0; for v in $(sed -n 's/.*Likelihood value: //p' '%s'); do n=$((n+1)); "             \
          "grep -q \"<td>$n</td><td>[0-9.]*</td><td>$(printf %%.10g $v)</td>\" '%s' || "          \
          "exit 1; done; test $n -ge 1 && grep -q 'id=\"sigma-trace\"' '%s'",                       \
          LOG, HTML, HTML)
  CHECK(REPO_SH("%s/rctd run --no-summary --reference data/vignette/h5ad/reference.h5ad "
                "--reference-numi-col nUMI --cell-type-col cell_type_name --spatial "
                "data/vignette/h5ad/spatial.h5ad -o '%s' --keep-intermediates '%s' --report '%s' "
                "2>'%s'",
                test_bin_dir(), h5ad, keep, html, log) == 0);
  CHECK(REP_TRACE_ROWS(log, html) == 0);
  CHECK(REPO_SH("grep -q '<td>sigma estimate</td><td>2 epochs on 6 fit pixels, converged' '%s'",
                html) == 0);
  CHECK(REPO_SH("%s/rctd report --quiet '%s' -o '%s'", test_bin_dir(), h5ad, again) == 0);
  CHECK(REP_TRACE_ROWS(log, again) == 0);
  CHECK(REPO_SH("%s/rctd report --quiet '%s' -o '%s' --sigma-stream '%s/3-sigma.rctd'",
                test_bin_dir(), h5ad, again, keep) == 0);
  CHECK(REP_TRACE_ROWS(log, again) == 0);
#undef REP_TRACE_ROWS
  CHECK(REPO_SH("%s/rctd report --quiet '%s' -o '%s' --sigma-stream '%s/2-model.rctd' 2>'%s'",
                test_bin_dir(), h5ad, rep_path("trace2.html"), keep, log) == 1);
  CHECK(REPO_SH("grep -q \"no 'sigma' record\" '%s' && test ! -e '%s'", log,
                rep_path("trace2.html")) == 0);
  /* a given sigma */
  CHECK(REPO_SH("%s/rctd run --no-summary --quiet --reference data/vignette/h5ad/reference.h5ad "
                "--reference-numi-col nUMI --cell-type-col cell_type_name --spatial "
                "data/vignette/h5ad/spatial.h5ad --sigma 0.84 -o '%s' --report '%s'",
                test_bin_dir(), given, html) == 0);
  CHECK(REPO_SH("grep -q '<td>sigma likelihood per epoch</td><td>none: sigma was given, not "
                "estimated' '%s' && ! grep -q 'id=\"sigma-trace\"' '%s'",
                html, html) == 0);
}
