/* Jobs on threads: the one copy of start, run one here, join (the CPU backend's batches and
 * the stages of lib/ use it; it sits in kernels/, the bottom layer, so that both can). */
#include "jobs.h"

#include <pthread.h>
#include <stdlib.h>

void rctd_run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int n_jobs) {
  if (n_jobs < 1) return;
  pthread_t *threads = n_jobs > 1 ? malloc((size_t)(n_jobs - 1) * sizeof *threads) : NULL;
  int *started = n_jobs > 1 ? calloc((size_t)(n_jobs - 1), sizeof *started) : NULL;
  const int can_start = threads && started; /* out of memory: every job here, in turn */
  for (int t = 1; t < n_jobs && can_start; t++)
    started[t - 1] = pthread_create(&threads[t - 1], NULL, fn, (char *)jobs + t * job_size) == 0;
  fn(jobs);
  for (int t = 1; t < n_jobs; t++) {
    if (can_start && started[t - 1])
      pthread_join(threads[t - 1], NULL);
    else
      fn((char *)jobs + t * job_size);
  }
  free(threads);
  free(started);
}
