/* Benchmark of rctd-fit-{full,doublet,multi} on synthetic pixels (recipe in lib/stage/synth.h: the
 * vignette reference, K = 19, G = 384, sigma 1.00, half doublets).  For each pixel count and mode
 * it runs the real binary on a generated model stream and reports wall time, pixels/s, pixels/s
 * per core (threads), pixels per CPU-second (robust to a busy machine) and the peak RSS.
 *   fit [-n 10000,100000] [-m full,doublet,multi] [-t THREADS] [-s SEED] [-w 2000]
 * -w SIZES: the whole run of each size (comma-separated; 0: none) and mode, rctd-sigma then
 * rctd-fit-MODE on sigma's output, timed together with sigma's likelihood tables cached (one
 * untimed sigma run per size fills the cache first); at 2,000 pixels and 2 threads it prints the
 * ratio to rctd-py's whole run on the same 2 cores (issue 13). Needs $RCTD_BIN (the binaries) and
 * the repository root ($RCTD_REPO, default ".": the vignette reference in data/vignette). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_run.h"
#include "qtable_cache.h"
#include "synth.h"

/* rctd-py on CPU, 2,000 vignette-recipe pixels, whole run, this 2-core machine (issue 13). */
#define BF_RCTD_PY_2000_S 51.8

typedef struct {
  const char *bin, *cache, *threads;
} bf_ctx;

/* Runs rctd-TOOL -q --threads T --cache-dir CACHE -o OUT IN; its wall and CPU seconds added to
 * *wall, *cpu.  Exit status as bench_run. */
static int bf_tool(const bf_ctx *c, const char *tool, const char *out, const char *in, double *wall,
                   double *cpu) {
  char path[4200];
  snprintf(path, sizeof path, "%s/rctd-%s", c->bin, tool);
  char *args[] = {path,          "-q",
                  "--threads",   (char *)c->threads,
                  "--cache-dir", (char *)c->cache,
                  "-o",          (char *)out,
                  (char *)in,    NULL};
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  double t0 = rctd_now();
  int status = bench_run(args, NULL, &ru);
  *wall += rctd_now() - t0;
  *cpu += bench_cpu_s(&ru);
  if (status != 0) fprintf(stderr, "fit bench: %s exited with %d\n", path, status);
  return status;
}

/* The whole run of one size and mode: sigma (tables cached) then the fit on its output. */
static int bf_whole(const bf_ctx *c, const char *dir, const char *stream, const char *sigma,
                    int64_t n, const char *mode) {
  char fit[4300], fit_tool[64];
  snprintf(fit, sizeof fit, "%s/fit-%s.rctd", dir, mode);
  snprintf(fit_tool, sizeof fit_tool, "fit-%s", mode);
  double sigma_wall = 0, fit_wall = 0, cpu = 0;
  if (bf_tool(c, "sigma", sigma, stream, &sigma_wall, &cpu)) return 1;
  if (bf_tool(c, fit_tool, fit, sigma, &fit_wall, &cpu)) return 1;
  const double wall = sigma_wall + fit_wall;
  printf("whole mode=%s pixels=%lld threads=%s sigma_s=%.2f fit_s=%.2f wall_s=%.2f cpu_s=%.2f",
         mode, (long long)n, c->threads, sigma_wall, fit_wall, wall, cpu);
  if (n == 2000)
    printf(" rctd_py_s=%.1f speedup=%.1f", BF_RCTD_PY_2000_S, BF_RCTD_PY_2000_S / wall);
  printf("\n");
  fflush(stdout);
  remove(fit);
  return 0;
}

static int bf_generate(const rctd_synth_reference *ref, int64_t n_pixels, unsigned long seed,
                       const char *path) {
  rctd_synth_opts o;
  rctd_synth_opts_default(&o);
  o.n_pixels = n_pixels;
  o.seed = seed;
  char err[512];
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  int rc = w ? rctd_synth_write(ref, &o, w, err, sizeof err) : -1;
  if (rc == 0)
    rc = rctd_writer_close(w, err, sizeof err);
  else if (w)
    rctd_writer_abort(w);
  if (rc) fprintf(stderr, "fit bench: %s\n", err);
  return rc;
}

/* Whole runs at every size of SIZES, every mode of MODES. */
static int bf_whole_all(const bf_ctx *c, const rctd_synth_reference *ref, unsigned long seed,
                        const char *dir, const char *sizes, const char *modes) {
  char sizes_buf[256], stream[4300], sigma[4300];
  snprintf(sizes_buf, sizeof sizes_buf, "%s", sizes);
  char *save_n = NULL;
  for (char *sz = strtok_r(sizes_buf, ",", &save_n); sz; sz = strtok_r(NULL, ",", &save_n)) {
    const int64_t n = atoll(sz);
    if (n <= 0) continue;
    snprintf(stream, sizeof stream, "%s/whole-%lld.rctd", dir, (long long)n);
    snprintf(sigma, sizeof sigma, "%s/sigma.rctd", dir);
    if (bf_generate(ref, n, seed, stream) != 0) return 1;
    double cold_wall = 0, cold_cpu = 0; /* fills the cache with the tables sigma's epochs use */
    if (bf_tool(c, "sigma", sigma, stream, &cold_wall, &cold_cpu)) return 1;
    printf("whole: %lld pixels, sigma with the tables built %.2f s (%.2f CPU-s)\n", (long long)n,
           cold_wall, cold_cpu);
    char modes_buf[256];
    snprintf(modes_buf, sizeof modes_buf, "%s", modes);
    char *save_m = NULL;
    for (char *m = strtok_r(modes_buf, ",", &save_m); m; m = strtok_r(NULL, ",", &save_m))
      if (bf_whole(c, dir, stream, sigma, n, m)) return 1;
    remove(sigma);
    remove(stream);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *sizes = "10000,100000", *modes = "full,doublet,multi";
  int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  unsigned long seed = 20240601;
  const char *whole_sizes = "2000";
  for (int c; (c = getopt(argc, argv, "n:m:t:s:w:")) != -1;) {
    if (c == 'n')
      sizes = optarg;
    else if (c == 'm')
      modes = optarg;
    else if (c == 't')
      threads = atoi(optarg);
    else if (c == 's')
      seed = strtoul(optarg, NULL, 10);
    else if (c == 'w')
      whole_sizes = optarg;
    else {
      fprintf(stderr,
              "usage: fit [-n N1,N2] [-m full,doublet,multi] [-t THREADS] [-s SEED] [-w N1,N2]\n");
      return 2;
    }
  }
  if (threads < 1) threads = 1;
  const char *bin = getenv("RCTD_BIN") ? getenv("RCTD_BIN") : "bin";
  const char *repo = getenv("RCTD_REPO") ? getenv("RCTD_REPO") : ".";
  char ref_dir[4096], dir[] = "/tmp/rctd-bench-fit.XXXXXX", err[512];
  snprintf(ref_dir, sizeof ref_dir, "%s/data/vignette/csv/reference", repo);
  rctd_synth_reference ref;
  if (rctd_synth_reference_load(ref_dir, &ref, err, sizeof err) < 0) {
    fprintf(stderr, "fit bench: %s\n", err);
    return 1;
  }
  if (!mkdtemp(dir)) {
    perror("fit bench: mkdtemp");
    return 1;
  }
  /* The table for sigma 1.00 is built once, outside the timings (the cache of a real machine). */
  char cache[4200];
  snprintf(cache, sizeof cache, "%s/cache", dir);
  rctd_qtable_opts qo = {.cache_dir = cache, .n_threads = threads};
  rctd_qtable_owned table;
  double t0 = rctd_now();
  if (rctd_qtable_get(100, RCTD_N_K_FULL, &qo, &table, NULL, 0, err, sizeof err) < 0) {
    fprintf(stderr, "fit bench: %s\n", err);
    return 1;
  }
  rctd_qtable_owned_free(&table);
  printf("fit: table sigma 1.00 (1003 rows) %.2f s, threads %d, K %d, G %d\n", rctd_now() - t0,
         threads, ref.n_types, ref.n_genes);
  char sizes_buf[256];
  snprintf(sizes_buf, sizeof sizes_buf, "%s", sizes);
  int rc = 0;
  for (char *sz = strtok(sizes_buf, ","); sz && rc == 0; sz = strtok(NULL, ",")) {
    int64_t n = atoll(sz);
    char stream[4300];
    snprintf(stream, sizeof stream, "%s/synth-%lld.rctd", dir, (long long)n);
    t0 = rctd_now();
    if (bf_generate(&ref, n, seed, stream) != 0) {
      rc = 1;
      break;
    }
    printf("fit: %lld synthetic pixels generated in %.2f s\n", (long long)n, rctd_now() - t0);
    char modes_buf[256];
    snprintf(modes_buf, sizeof modes_buf, "%s", modes);
    char *save = NULL;
    for (char *m = strtok_r(modes_buf, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
      char tool[4200], threads_s[16];
      snprintf(tool, sizeof tool, "%s/rctd-fit-%s", bin, m);
      snprintf(threads_s, sizeof threads_s, "%d", threads);
      char *args[] = {tool, "-q", "--threads", threads_s, "--cache-dir", cache, stream, NULL};
      struct rusage ru;
      memset(&ru, 0, sizeof ru);
      t0 = rctd_now();
      int status = bench_run(args, NULL, &ru);
      double wall = rctd_now() - t0, cpu = bench_cpu_s(&ru);
      if (status != 0) {
        fprintf(stderr, "fit bench: %s exited with %d\n", tool, status);
        rc = 1;
        continue;
      }
      printf(
          "fit mode=%s pixels=%lld threads=%d wall_s=%.2f px_per_s=%.0f px_per_s_per_core=%.0f "
          "px_per_cpu_s=%.0f peak_rss_mb=%.1f\n",
          m, (long long)n, threads, wall, (double)n / wall, (double)n / wall / threads,
          (double)n / cpu, (double)ru.ru_maxrss / 1024);
      fflush(stdout);
    }
    remove(stream);
  }
  char threads_s[16];
  snprintf(threads_s, sizeof threads_s, "%d", threads);
  const bf_ctx ctx = {bin, cache, threads_s};
  if (rc == 0) rc = bf_whole_all(&ctx, &ref, seed, dir, whole_sizes, modes);
  rctd_synth_reference_free(&ref);
  char rm[4200];
  snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
  if (system(rm) != 0) fprintf(stderr, "fit bench: could not remove %s\n", dir);
  return rc;
}
