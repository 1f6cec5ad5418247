/* What the bench programs share: running a tool as a child with its resource usage. */
#ifndef RCTD_BENCH_RUN_H
#define RCTD_BENCH_RUN_H
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "progress.h" /* rctd_now: the one monotonic clock */

static inline double bench_seconds(struct timeval tv) {
  return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

/* CPU seconds (user + system) of a finished child. */
static inline double bench_cpu_s(const struct rusage *ru) {
  return bench_seconds(ru->ru_utime) + bench_seconds(ru->ru_stime);
}

/* Runs argv with stdout to /dev/null and stderr appended to LOG (NULL: /dev/null too); fills its
 * rusage.  Exit status, or -1 when it could not run or died of a signal. */
static inline int bench_run(char *const argv[], const char *log, struct rusage *ru) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout) || !freopen(log ? log : "/dev/null", "a", stderr))
      _exit(127);
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  while (wait4(pid, &status, 0, ru) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
