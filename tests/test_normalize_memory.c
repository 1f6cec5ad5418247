/* The normalisation stage at growing pixel counts: its own memory does not grow with the pixels
 * (only what the input reader holds per row does: the barcodes), and spilling the pixels' nUMI
 * to a temporary file writes the same bytes as holding them in memory. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "input.h"
#include "model.h"
#include "normalize.h"
#include "reference.h"
#include "stream.h"
#include "synth_slide.h"
#include "test.h"

#define NM_MEASURE_RSS TEST_MEASURES_RSS

#define NM_SMALL 20000
#define NM_LARGE 400000
/* Growth of the stage's peak RSS beyond the opened input's, from NM_SMALL to NM_LARGE pixels:
 * 550-750 KiB when the test runs alone, up to 1,136 KiB in a loaded full run (the measure moves
 * with the runner's heap before the fork; measured twice in one process, 1.5-1.7 MiB).  The
 * peak is reached in prepare (its second pass encodes the pixels), so the limit catches data
 * held per pixel through prepare (8 bytes a pixel: 2.9 MiB over the 380,000 more pixels), not
 * data held only while the pixels are written (the hold_numi run below: 684-708 KiB, seen by
 * a session 6 review). */
#define NM_GROWTH_LIMIT_KB 1536

/* A small slide: 4 types, 200 spatial genes, median nUMI 300. */
static void nm_opts(rctd_slide_opts *o, int64_t n_pixels) {
  rctd_slide_opts_default(o);
  o->n_types = 4;
  o->markers_per_type = 20;
  o->ref_genes = 300;
  o->cells_per_type = 40;
  o->spatial_genes = 200;
  o->shared_fraction = 1.0;
  o->n_pixels = n_pixels;
  o->pixel_numi_median = 300;
}

/* The peak RSS so far (VmHWM), in KiB, or -1. */
static long nm_peak_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (kib < 0 && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  fclose(f);
  return kib;
}

/* Makes the peak RSS the current one, after handing the runner's free heap back to the system:
 * what the child inherits from the tests before it then counts for nothing.  0 or -1. */
static int nm_reset_peak(void) {
  /* A fixed mmap threshold: glibc otherwise raises it to the largest block freed so far (the
   * input's sorted barcode pointers: larger with more pixels), which changes where later
   * blocks live and so the RSS by a few MiB either way. */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  malloc_trim(0);
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f) return -1;
  int rc = fputs("5", f) < 0 ? -1 : 0;
  return fclose(f) != 0 ? -1 : rc;
}

/* rctd-normalize's work (prepare, then the model and the pixels) from SPATIAL and REF to OUT.
 * With HOLD_NUMI, the pixels' nUMI are read back from the spill into memory before writing, as
 * the stage did before it spilled them.  0 or -1. */
static int nm_normalize(const char *spatial, const char *ref_path, const char *out, int hold_numi,
                        long *rss_open_kib, char *err, size_t err_len) {
  rctd_reference_data ref = {0};
  rctd_model model = {0};
  rctd_normalize_plan plan = {0};
  rctd_normalize_opts opts;
  rctd_normalize_opts_default(&opts);
  opts.block_pixels = 1000;
  rctd_input_options in_opts;
  rctd_input_options_init(&in_opts);
  in_opts.cell_types = RCTD_CELL_TYPES_IGNORE;
  /* Small stream chunks: the writer's own buffers (about 1 MiB of raw rows per record by
   * default) are then full-sized at either pixel count. */
  rctd_writer_opts wopts = {.chunk_rows = 4096};
  opts.pixels_writer = wopts;
  rctd_input *in = NULL;
  rctd_writer *w = NULL;
  int rc = -1;
  if (rctd_reference_load(ref_path, &ref, err, err_len) < 0) goto done;
  if (!(in = rctd_input_open(spatial, &in_opts, err, err_len))) goto done;
  if (rss_open_kib) *rss_open_kib = nm_peak_kib();
  if (rctd_normalize_prepare(in, &ref, &opts, &model, &plan, NULL, NULL, err, err_len) < 0)
    goto done;
  if (hold_numi) {
    FILE *f = model.pixel_numi_spill;
    model.pixel_numi_n = malloc((size_t)model.n_pixels * sizeof *model.pixel_numi_n);
    if (!model.pixel_numi_n || fseek(f, 0, SEEK_SET) != 0 ||
        fread(model.pixel_numi_n, sizeof(double), (size_t)model.n_pixels, f) !=
            (size_t)model.n_pixels) {
      snprintf(err, err_len, "cannot read the spill back");
      goto done;
    }
    fclose(f);
    model.pixel_numi_spill = NULL;
  }
  if (!(w = rctd_writer_open(out, &wopts, err, err_len))) goto done;
  if (rctd_model_write(w, &model) < 0 || rctd_normalize_write_pixels(&plan, w, err, err_len) < 0) {
    if (!err[0]) snprintf(err, err_len, "%s", rctd_writer_error(w));
    rctd_writer_abort(w);
    goto done;
  }
  rc = rctd_writer_close(w, err, err_len);
done:
  rctd_normalize_plan_free(&plan);
  rctd_model_free(&model);
  rctd_reference_data_free(&ref);
  rctd_input_close(in);
  return rc;
}

/* nm_normalize in a child: the peak RSS after opening the input and at the end, in KiB. */
static int nm_child(const char *spatial, const char *ref, const char *out, long rss_kib[2]) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    char err[RCTD_ERR_LEN] = "";
    long r[2] = {0, 0};
    /* Without /proc/self/clear_refs (or VmHWM) the peaks say nothing: -1, and no check. */
    int measured = nm_reset_peak() == 0;
    int rc = nm_normalize(spatial, ref, out, 0, &r[0], err, sizeof err);
    r[1] = nm_peak_kib();
    if (!measured || r[0] < 0 || r[1] < 0) r[0] = r[1] = -1;
    if (rc != 0) fprintf(stderr, "  %s\n", err);
    if (write(fds[1], r, sizeof r) != (ssize_t)sizeof r) rc = -1;
    _exit(rc == 0 ? 0 : 1);
  }
  close(fds[1]);
  ssize_t got = read(fds[0], rss_kib, 2 * sizeof *rss_kib);
  close(fds[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return got == (ssize_t)(2 * sizeof *rss_kib) && WIFEXITED(status) && WEXITSTATUS(status) == 0
             ? 0
             : -1;
}

static int nm_same_file(const char *a, const char *b) {
  return test_sh("cmp -s %s %s", a, b) == 0;
}

TEST_E2E(normalize_memory_does_not_grow_with_pixels) {
  const char *tmp = test_tmp_dir();
  char ref_h5ad[512], ref[512], spatial[2][512], out[2][512], held[512], err[RCTD_ERR_LEN];
  snprintf(ref_h5ad, sizeof ref_h5ad, "%s/nm_ref.h5ad", tmp);
  snprintf(ref, sizeof ref, "%s/nm_ref.rctd", tmp);
  const int64_t sizes[2] = {NM_SMALL, NM_LARGE};
  long rss[2][2];
  for (int i = 0; i < 2; i++) {
    rctd_slide_opts o;
    nm_opts(&o, sizes[i]);
    snprintf(spatial[i], sizeof spatial[i], "%s/nm_spatial_%d.h5", tmp, i);
    snprintf(out[i], sizeof out[i], "%s/nm_model_%d.rctd", tmp, i);
    CHECK_MSG(rctd_slide_write(&o, i == 0 ? ref_h5ad : NULL, spatial[i], err, sizeof err) == 0,
              "%s", err);
    if (i == 0) CHECK(test_sh("%s/rctd-reference -q -o %s %s", test_bin_dir(), ref, ref_h5ad) == 0);
    CHECK(nm_child(spatial[i], ref, out[i], rss[i]) == 0);
    rctd_model_reader *mr = rctd_model_open(out[i], err, sizeof err);
    CHECK_MSG(mr != NULL, "%s", err);
    int64_t n = rctd_model_reader_model(mr)->n_pixels;
    rctd_model_reader_close(mr);
    CHECK_MSG(n > sizes[i] * 3 / 4, "%lld pixels kept of %lld", (long long)n, (long long)sizes[i]);
  }
  long growth_kib = (rss[1][1] - rss[1][0]) - (rss[0][1] - rss[0][0]);
  fprintf(stderr,
          "  normalize peak RSS (KiB, after opening the input / at the end): %ld / %ld (%d "
          "pixels), %ld / %ld (%d); growth beyond the input %ld KiB\n",
          rss[0][0], rss[0][1], NM_SMALL, rss[1][0], rss[1][1], NM_LARGE, growth_kib);
  int measured = rss[0][0] >= 0 && rss[1][0] >= 0;
  if (NM_MEASURE_RSS && measured)
    CHECK_MSG(growth_kib <= NM_GROWTH_LIMIT_KB, "%ld KiB", growth_kib);

  /* The same bytes whether the pixels' nUMI were spilled (out[0]) or held. */
  snprintf(held, sizeof held, "%s/nm_model_held.rctd", tmp);
  CHECK_MSG(nm_normalize(spatial[0], ref, held, 1, NULL, err, sizeof err) == 0, "%s", err);
  CHECK(nm_same_file(out[0], held));
  for (int i = 0; i < 2; i++) remove(spatial[i]), remove(out[i]);
  remove(held);
}

TEST_E2E(normalize_tmp_dir_unwritable) {
  /* The nUMI spill needs a temporary file: a missing --tmp-dir is one clear line, no output. */
  char out[512], log[512];
  snprintf(out, sizeof out, "%s/nm_tmp_bad.rctd", test_tmp_dir());
  snprintf(log, sizeof log, "%s/nm_tmp_bad.log", test_tmp_dir());
  CHECK(test_sh("%s/rctd-reference %s/data/vignette/h5ad/reference.h5ad --numi-col nUMI -q | "
                "%s/rctd-normalize -q --tmp-dir %s/no/such/dir -o %s "
                "%s/data/vignette/h5ad/spatial.h5ad 2> %s",
                test_bin_dir(), test_repo_dir(), test_bin_dir(), test_tmp_dir(), out,
                test_repo_dir(), log) != 0);
  CHECK(test_sh("test ! -e %s", out) == 0);
  CHECK(test_sh("test $(wc -l < %s) = 1 && grep -q '/no/such/dir: cannot create a "
                "temporary file there.*--tmp-dir' %s",
                log, log) == 0);
}
