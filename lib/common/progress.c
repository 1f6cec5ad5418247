/* Progress reporter: a redrawn bar on a terminal, occasional plain lines otherwise, nothing
 * when quiet.  RCTD_PROGRESS_INTERVAL (seconds) overrides the plain-line interval. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#include <stdio.h>
#include "log.h"

struct rctd_progress {
  char label[128];
  char unit[32];
  uint64_t total;
  _Atomic uint64_t done;
  double start, last_draw, interval;
  int tty, quiet, drawn;
  pthread_mutex_t lock;
};

double rctd_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Exact below 100000, then 123k, 1.2M, ... */
static void progress_human(double v, char *buf, size_t len) {
  static const char *const suffix[] = {"", "k", "M", "G", "T"};
  if (v < 1e5) {
    snprintf(buf, len, "%.0f", v);
    return;
  }
  int i = 0;
  while (v >= 1000 && i < 4) v /= 1000, i++;
  snprintf(buf, len, "%.*f%s", v < 100 ? 1 : 0, v, suffix[i]);
}

static void progress_duration(double s, char *buf, size_t len) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

static void progress_draw(rctd_progress *p, double now, int final) {
  uint64_t done = atomic_load(&p->done);
  double elapsed = now - p->start, rate = elapsed > 0 ? (double)done / elapsed : 0;
  char done_s[32], total_s[32], rate_s[32], eta_s[32] = "", time_s[32];
  progress_human((double)done, done_s, sizeof done_s);
  progress_human((double)p->total, total_s, sizeof total_s);
  progress_human(rate, rate_s, sizeof rate_s);
  progress_duration(elapsed, time_s, sizeof time_s);
  if (p->total && done >= p->total)
    progress_duration(0, eta_s, sizeof eta_s);
  else if (p->total && rate > 0)
    progress_duration((double)(p->total - done) / rate, eta_s, sizeof eta_s);
  double frac = p->total ? (double)done / (double)p->total : 0;
  if (frac > 1) frac = 1;
  const char *tool = rctd_tool();
  if (p->tty) {
    char bar[32];
    int width = 24, fill = (int)(frac * width);
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[width] = 0;
    if (p->total)
      fprintf(stderr, "\r%s: %s [%s] %3.0f%% %s/%s %s %s/s %s%s\033[K", tool, p->label, bar,
              100 * frac, done_s, total_s, p->unit, rate_s, *eta_s ? "ETA " : "", eta_s);
    else
      fprintf(stderr, "\r%s: %s %s %s %s/s %s\033[K", tool, p->label, done_s, p->unit, rate_s,
              time_s);
    if (final) fputc('\n', stderr);
  } else if (final) {
    fprintf(stderr, "%s: %s: %s %s done in %s (%s/s)\n", tool, p->label, done_s, p->unit, time_s,
            rate_s);
  } else if (p->total) {
    fprintf(stderr, "%s: %s: %s/%s %s (%.0f%%), %s/s, ETA %s\n", tool, p->label, done_s, total_s,
            p->unit, 100 * frac, rate_s, *eta_s ? eta_s : "?");
  } else {
    fprintf(stderr, "%s: %s: %s %s, %s/s\n", tool, p->label, done_s, p->unit, rate_s);
  }
  fflush(stderr);
  p->last_draw = now;
  p->drawn = 1;
}

rctd_progress *rctd_progress_start(const char *label, uint64_t total, const char *unit) {
  rctd_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->label, sizeof p->label, "%s", label ? label : "");
  snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "items");
  p->total = total;
  p->quiet = rctd_quiet();
  p->tty = isatty(STDERR_FILENO);
  p->start = p->last_draw = rctd_now();
  p->interval = p->tty ? 0.1 : 10.0;
  const char *env = getenv("RCTD_PROGRESS_INTERVAL");
  if (env && *env) p->interval = atof(env);
  pthread_mutex_init(&p->lock, NULL);
  return p;
}

static void progress_maybe_draw(rctd_progress *p) {
  if (p->quiet) return;
  double now = rctd_now();
  if (now - p->last_draw < p->interval) return;
  if (pthread_mutex_trylock(&p->lock) != 0) return;
  if (now - p->last_draw >= p->interval) progress_draw(p, now, 0);
  pthread_mutex_unlock(&p->lock);
}

void rctd_progress_add(rctd_progress *p, uint64_t done) {
  if (!p) return;
  atomic_fetch_add(&p->done, done);
  progress_maybe_draw(p);
}

void rctd_progress_set(rctd_progress *p, uint64_t done) {
  if (!p) return;
  atomic_store(&p->done, done);
  progress_maybe_draw(p);
}

void rctd_progress_finish(rctd_progress *p) {
  if (!p) return;
  /* A final line only where progress was shown (short tasks stay silent). */
  if (!p->quiet && p->drawn) progress_draw(p, rctd_now(), 1);
  pthread_mutex_destroy(&p->lock);
  free(p);
}
