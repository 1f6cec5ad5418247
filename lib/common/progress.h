/* Progress on stderr and the monotonic clock (progress.c). */
#ifndef RCTD_PROGRESS_H
#define RCTD_PROGRESS_H
#include <stdint.h>

/* ---- progress ----
 * On a terminal: a bar "LABEL [=====>    ] 42% 1.2M/2.9M rows 350k/s ETA 0:05" redrawn at most
 * ~10 times a second; otherwise a plain line about every 10 s; nothing when quiet.  TOTAL 0 =
 * unknown (no bar or ETA).  rctd_progress_add is thread-safe. */
typedef struct rctd_progress rctd_progress;
rctd_progress *rctd_progress_start(const char *label, uint64_t total, const char *unit);
void rctd_progress_add(rctd_progress *p, uint64_t done); /* adds to the count */
void rctd_progress_set(rctd_progress *p, uint64_t done); /* sets the count */
void rctd_progress_finish(rctd_progress *p);             /* final line; frees P (NULL ok) */

/* Seconds on the monotonic clock (for durations: stage and progress timings). */
double rctd_now(void);

#endif
