/* rctd_run_jobs (kernels/jobs.c). */
#include <pthread.h>
#include <stdatomic.h>

#include "jobs.h"
#include "test.h"

typedef struct {
  int index, runs;
  pthread_t ran_on;
} jobs_t_job;

static void *jobs_t_run(void *arg) {
  jobs_t_job *j = arg;
  j->runs++;
  j->ran_on = pthread_self();
  return NULL;
}

TEST(run_jobs_runs_each_job_once_the_first_here) {
  for (int n = 1; n <= 9; n++) {
    jobs_t_job jobs[9] = {{0}};
    for (int t = 0; t < n; t++) jobs[t].index = t;
    rctd_run_jobs(jobs_t_run, jobs, sizeof *jobs, n);
    for (int t = 0; t < n; t++)
      CHECK_MSG(jobs[t].runs == 1, "n %d job %d ran %d times", n, t, jobs[t].runs);
    for (int t = n; t < 9; t++) CHECK(jobs[t].runs == 0);
    CHECK(pthread_equal(jobs[0].ran_on, pthread_self()));
    for (int t = 1; t < n; t++) CHECK(!pthread_equal(jobs[t].ran_on, pthread_self()));
  }
  rctd_run_jobs(jobs_t_run, NULL, 0, 0); /* no job: nothing runs */
}

typedef struct {
  atomic_int next, done[100];
} jobs_t_shared;

static void *jobs_t_take(void *arg) {
  jobs_t_shared *s = arg;
  for (int i; (i = atomic_fetch_add(&s->next, 1)) < 100;) atomic_fetch_add(&s->done[i], 1);
  return NULL;
}

TEST(run_jobs_size_zero_shares_one_job) {
  static jobs_t_shared s;
  atomic_init(&s.next, 0);
  for (int i = 0; i < 100; i++) atomic_init(&s.done[i], 0);
  rctd_run_jobs(jobs_t_take, &s, 0, 4);
  for (int i = 0; i < 100; i++) CHECK(atomic_load(&s.done[i]) == 1);
}
