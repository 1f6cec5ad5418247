/* Benchmark of every stage on a synthetic slide of real-world shape (lib/stage/synth_slide.h): the
 * reference h5ad and the spatial 10x HDF5 are generated (kept in the data directory, reused when
 * present), then rctd-reference, rctd-normalize, rctd-sigma and rctd-fit-MODE run one after the
 * other through files, each timed: wall, CPU seconds (user + system), peak RSS, and for sigma and
 * the fits pixels/s per core (pixels / wall / threads) and pixels per CPU-second (robust to a
 * busy machine).  With -e, `rctd run` end to end instead (its own stage timings in --json).
 *   slide [-r realistic|k50|xenium] [-n PIXELS] [-c CELLS_PER_TYPE] [-m doublet,full,multi]
 *         [-t THREADS] [-d DATA_DIR] [-e] [-g (generate only)]
 * Needs $RCTD_BIN (the binaries; default bin).  Sigma runs twice: with an empty likelihood-table
 * cache (its figure includes building the tables it needs, as on a fresh machine), then warm. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_run.h"
#include "synth_slide.h"

static int sb_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

typedef struct {
  const char *bin, *dir, *log;
  char threads[16];
  int n_threads;
  int64_t n_pixels;
} sb_ctx;

/* One stage: prints its line; 0 or -1. */
static int sb_stage(const sb_ctx *c, const char *label, char *const argv[], int64_t pixels) {
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  double t0 = rctd_now();
  int status = bench_run(argv, c->log, &ru);
  double wall = rctd_now() - t0, cpu = bench_cpu_s(&ru);
  if (status != 0) {
    fprintf(stderr, "slide bench: %s exited with %d (see %s)\n", argv[0], status, c->log);
    return -1;
  }
  printf("| %-12s | %9.2f | %9.2f | %8.1f |", label, wall, cpu, (double)ru.ru_maxrss / 1024);
  if (pixels > 0)
    printf(" %10.0f | %10.0f |\n", (double)pixels / wall / c->n_threads, (double)pixels / cpu);
  else
    printf(" %10s | %10s |\n", "", "");
  fflush(stdout);
  return 0;
}

static int sb_generate(const rctd_slide_opts *o, const char *ref, const char *spatial) {
  char err[512];
  double t0 = rctd_now();
  int rc = rctd_slide_write(o, sb_exists(ref) ? NULL : ref, sb_exists(spatial) ? NULL : spatial,
                            err, sizeof err);
  if (rc) {
    fprintf(stderr, "slide bench: %s\n", err);
    remove(ref);
    remove(spatial);
    return -1;
  }
  printf("slide: data in %.1f s (reused when present)\n", rctd_now() - t0);
  return 0;
}

static int sb_pipeline(const sb_ctx *c, const char *modes, const char *ref, const char *spatial) {
  char ref_out[4200], model[4200], sig[4200], fit[4200], tool[4200];
  snprintf(ref_out, sizeof ref_out, "%s/reference.rctd", c->dir);
  snprintf(model, sizeof model, "%s/model.rctd", c->dir);
  snprintf(sig, sizeof sig, "%s/sigma.rctd", c->dir);
  snprintf(fit, sizeof fit, "%s/fit.rctd", c->dir);
  char *th = (char *)c->threads;
  printf("| stage        |    wall s |     CPU s |  peak MB | px/s/core  | px/CPU-s   |\n"
         "| ---          |       --- |       --- |      --- |        --- |        --- |\n");
  snprintf(tool, sizeof tool, "%s/rctd-reference", c->bin);
  char *a1[] = {tool, "-q", "--threads", th, "-o", ref_out, (char *)ref, NULL};
  if (sb_stage(c, "reference", a1, 0)) return -1;
  snprintf(tool, sizeof tool, "%s/rctd-normalize", c->bin);
  char *a2[] = {tool, "-q", "--threads", th, "-o", model, (char *)spatial, ref_out, NULL};
  if (sb_stage(c, "normalize", a2, 0)) return -1;
  /* sigma twice: with an empty likelihood-table cache (a fresh machine: the tables are built),
   * then with the tables cached (every later run) */
  char cache[4200], rm[4300];
  snprintf(cache, sizeof cache, "%s/qtable-cache", c->dir);
  snprintf(rm, sizeof rm, "rm -rf '%s'", cache);
  if (system(rm) != 0) return -1;
  snprintf(tool, sizeof tool, "%s/rctd-sigma", c->bin);
  char *a3[] = {tool, "-q", "--threads", th, "--cache-dir", cache, "-o", sig, model, NULL};
  if (sb_stage(c, "sigma (cold)", a3, 0)) return -1;
  if (sb_stage(c, "sigma (warm)", a3, 0)) return -1;
  char modes_buf[256], *save = NULL;
  snprintf(modes_buf, sizeof modes_buf, "%s", modes);
  for (char *m = strtok_r(modes_buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
    char label[64];
    snprintf(tool, sizeof tool, "%s/rctd-fit-%s", c->bin, m);
    snprintf(label, sizeof label, "fit-%s", m);
    char *a4[] = {tool, "-q", "--threads", th, "-o", fit, sig, NULL};
    if (sb_stage(c, label, a4, c->n_pixels)) return -1;
  }
  remove(fit);
  return 0;
}

static int sb_run_all(const sb_ctx *c, const char *mode, const char *ref, const char *spatial) {
  char tool[4200], out[4200], json[4200];
  snprintf(tool, sizeof tool, "%s/rctd", c->bin);
  snprintf(out, sizeof out, "%s/run.h5ad", c->dir);
  snprintf(json, sizeof json, "%s/run.json", c->dir);
  char *argv[] = {tool,        "run",          "-r",   (char *)ref, "-s",       (char *)spatial,
                  "-m",        (char *)mode,   "-o",   out,         "--json",   json,
                  "--threads", (char *)c->threads, "--cache-dir", "",   "--summary=false", NULL};
  printf("| stage        |    wall s |     CPU s |  peak MB | px/s/core  | px/CPU-s   |\n"
         "| ---          |       --- |       --- |      --- |        --- |        --- |\n");
  int rc = sb_stage(c, "rctd run", argv, c->n_pixels);
  if (rc == 0) printf("slide: stage timings in %s\n", json);
  remove(out);
  return rc;
}

int main(int argc, char **argv) {
  const char *recipe = "realistic", *modes = "doublet,full,multi", *data_dir = "out/bench/slide";
  int64_t n_pixels = 10000;
  int cells = 0, end_to_end = 0, generate_only = 0;
  int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  for (int c; (c = getopt(argc, argv, "r:n:c:m:t:d:eg")) != -1;) {
    if (c == 'r')
      recipe = optarg;
    else if (c == 'n')
      n_pixels = atoll(optarg);
    else if (c == 'c')
      cells = atoi(optarg);
    else if (c == 'm')
      modes = optarg;
    else if (c == 't')
      threads = atoi(optarg);
    else if (c == 'd')
      data_dir = optarg;
    else if (c == 'e')
      end_to_end = 1;
    else if (c == 'g')
      generate_only = 1;
    else {
      fprintf(stderr, "usage: slide [-r realistic|k50|xenium] [-n PIXELS] [-c CELLS_PER_TYPE] "
                      "[-m MODES] [-t THREADS] [-d DIR] [-e] [-g]\n");
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  rctd_slide_opts o;
  rctd_slide_opts_default(&o);
  if (rctd_slide_opts_recipe(&o, recipe) != 0) {
    fprintf(stderr, "slide bench: unknown recipe '%s' (realistic, k50, xenium)\n", recipe);
    return 2;
  }
  o.n_pixels = n_pixels;
  if (cells > 0) o.cells_per_type = cells;
  char dir[4096], ref[4200], spatial[4200], log[4200];
  snprintf(dir, sizeof dir, "%s/%s-c%d", data_dir, recipe, o.cells_per_type);
  char mk[4200];
  snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
  if (system(mk) != 0) return 1;
  snprintf(ref, sizeof ref, "%s/reference.h5ad", dir);
  snprintf(spatial, sizeof spatial, "%s/spatial-%lld.h5", dir, (long long)n_pixels);
  snprintf(log, sizeof log, "%s/stderr.log", dir);
  printf("slide: recipe %s, K %d, reference %d genes x %d cells, spatial %d genes x %lld "
         "pixels (median nUMI %.0f), threads %d, %s\n",
         recipe, o.n_types, o.ref_genes, o.n_types * o.cells_per_type, o.spatial_genes,
         (long long)n_pixels, o.pixel_numi_median, threads, dir);
  if (sb_generate(&o, ref, spatial) != 0) return 1;
  if (generate_only) return 0;
  sb_ctx c = {getenv("RCTD_BIN") ? getenv("RCTD_BIN") : "bin", dir, log, "", threads, n_pixels};
  snprintf(c.threads, sizeof c.threads, "%d", threads);
  remove(log);
  int rc = end_to_end ? sb_run_all(&c, modes, ref, spatial) : sb_pipeline(&c, modes, ref, spatial);
  return rc ? 1 : 0;
}
