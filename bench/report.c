/* Benchmark: rctd report on a synthetic doublet result (lib/stage/synth_result.h's layout).
 *   report [-n PIXELS] [-k TYPES] [-d DIR] [--png]
 * Prints "report pixels=... types=... write_s=... report_s=... html_bytes=... max_rss_kb=...". */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "synth_result.h"

int main(int argc, char **argv) {
  long long n = 500000;
  int k = 60, png = 0;
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
      n = atoll(argv[++i]);
    else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
      k = atoi(argv[++i]);
    else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
      dir = argv[++i];
    else if (strcmp(argv[i], "--png") == 0)
      png = 1;
    else
      return fprintf(stderr, "usage: report [-n PIXELS] [-k TYPES] [-d DIR] [--png]\n"), 2;
  }
  char h5ad[4096], html[4096], pngdir[4096], err[RCTD_ERR_LEN];
  snprintf(h5ad, sizeof h5ad, "%s/bench-report-%d.h5ad", dir, (int)getpid());
  snprintf(html, sizeof html, "%s/bench-report-%d.html", dir, (int)getpid());
  snprintf(pngdir, sizeof pngdir, "%s/bench-report-%d-png", dir, (int)getpid());
  double t0 = rctd_now();
  if (rctd_synth_result_write(h5ad, n, k, 1, err, sizeof err) != 0)
    return fprintf(stderr, "report: %s\n", err), 1;
  double t1 = rctd_now();
  rctd_report_opts o = {.result = h5ad, .html = html, .png_dir = png ? pngdir : NULL, .dpi = 300};
  int rc = rctd_report_write(&o, err, sizeof err);
  double t2 = rctd_now();
  if (rc != 0) fprintf(stderr, "report: %s\n", err);
  struct stat st;
  long long bytes = stat(html, &st) == 0 ? (long long)st.st_size : -1;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf(
      "report pixels=%lld types=%d png=%d write_s=%.2f report_s=%.2f html_bytes=%lld "
      "max_rss_kb=%ld\n",
      n, k, png, t1 - t0, t2 - t1, bytes, ru.ru_maxrss);
  remove(h5ad);
  remove(html);
  if (png) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pngdir);
    if (system(cmd) != 0) rc = 1;
  }
  return rc == 0 ? 0 : 1;
}
