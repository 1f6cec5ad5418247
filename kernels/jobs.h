/* Jobs on threads (jobs.c): for the kernels' CPU backend and for lib/. */
#ifndef RCTD_JOBS_H
#define RCTD_JOBS_H
#include <stddef.h>

/* Runs fn on the N_JOBS jobs at JOBS, JOB_SIZE bytes apart (0: every job is JOBS itself, for
 * workers that share one job): job 0 on the calling thread, the others on new threads, joined
 * before it returns; a job whose thread cannot start runs on the calling thread after the
 * others, so every job runs whatever the system allows. */
void rctd_run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int n_jobs);

#endif
