/* See h5guard.h.  The handlers are async-signal-safe: write(), unlink() (through
 * rctd_out_remove_all) and _exit(); the messages are composed when the guard is entered. */
#include "h5guard.h"

#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "atomic_out.h"
#include "log.h"

static const int guard_signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
#define GUARD_N_SIGNALS ((int)(sizeof guard_signals / sizeof guard_signals[0]))

static volatile sig_atomic_t guard_depth;
static int guard_installed;
static struct sigaction guard_old[GUARD_N_SIGNALS], guard_old_alarm;
static double guard_limit_s;
static char guard_prefix[PATH_MAX + 128]; /* "rctd-TOOL: FILE: damaged HDF5 file: " */
static size_t guard_prefix_len;
static char guard_hang[160];
static size_t guard_hang_len;
static const char guard_advice[] = "; check it with h5dump, or copy or export it again\n";

static void guard_write(const char *s, size_t n) {
  while (n > 0) {
    ssize_t put = write(STDERR_FILENO, s, n);
    if (put <= 0 && errno != EINTR) return;
    if (put > 0) s += put, n -= (size_t)put;
  }
}

static const char *guard_signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "the HDF5 library crashed reading it (segmentation fault)";
    case SIGBUS:
      return "the HDF5 library crashed reading it (bus error)";
    case SIGABRT:
      return "the HDF5 library aborted reading it (memory corruption)";
    case SIGFPE:
      return "the HDF5 library crashed reading it (arithmetic exception)";
    default:
      return "the HDF5 library crashed reading it (illegal instruction)";
  }
}

static void guard_die(const char *what, size_t len) {
  rctd_out_remove_all();
  guard_write(guard_prefix, guard_prefix_len);
  guard_write(what, len);
  guard_write(guard_advice, sizeof guard_advice - 1);
  _exit(RCTD_EXIT_RUNTIME);
}

static void guard_on_crash(int sig) {
  if (guard_depth > 0) {
    const char *what = guard_signal_name(sig);
    guard_die(what, strlen(what));
  }
  /* Not ours: the handler that was there before (the default, or a sanitizer's) takes the
   * signal again when the faulting instruction reruns or abort() raises it once more. */
  for (int i = 0; i < GUARD_N_SIGNALS; i++)
    if (guard_signals[i] == sig) sigaction(sig, &guard_old[i], NULL);
}

static void guard_on_alarm(int sig) {
  (void)sig;
  if (guard_depth > 0) guard_die(guard_hang, guard_hang_len);
}

double rctd_h5_guard_timeout(void) {
  const char *env = getenv("RCTD_HDF5_TIMEOUT");
  char *end = NULL;
  double s = env && *env ? strtod(env, &end) : 10;
  return end && (*end || !(s > 0)) ? 10 : s;
}

static void guard_install(void) {
  guard_installed = 1;
  guard_limit_s = rctd_h5_guard_timeout();
  /* An alternate stack, so that a crash from a smashed or exhausted stack still reports. */
  static char alt[1 << 16];
  stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
  sigaltstack(&ss, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = guard_on_crash;
  sa.sa_flags = SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < GUARD_N_SIGNALS; i++) sigaction(guard_signals[i], &sa, &guard_old[i]);
  sa.sa_handler = guard_on_alarm;
  sa.sa_flags = 0;
  sigaction(SIGALRM, &sa, &guard_old_alarm);
}

static void guard_arm(double seconds) {
  struct itimerval it;
  memset(&it, 0, sizeof it);
  it.it_value.tv_sec = (time_t)seconds;
  it.it_value.tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6);
  setitimer(ITIMER_REAL, &it, NULL);
}

void rctd_h5_guard_enter(const char *path) {
  if (guard_depth++ > 0) return;
  if (!guard_installed) guard_install();
  int n = snprintf(guard_prefix, sizeof guard_prefix, "%s: %s: damaged HDF5 file: ", rctd_tool(),
                   path);
  guard_prefix_len = n < 0 ? 0 : (size_t)n < sizeof guard_prefix ? (size_t)n : sizeof guard_prefix - 1;
  n = snprintf(guard_hang, sizeof guard_hang,
               "the HDF5 library made no progress reading it for %g s", guard_limit_s);
  guard_hang_len = n < 0 ? 0 : (size_t)n < sizeof guard_hang ? (size_t)n : sizeof guard_hang - 1;
  guard_arm(guard_limit_s);
}

void rctd_h5_guard_tick(void) {
  if (guard_depth > 0) guard_arm(guard_limit_s);
}

void rctd_h5_guard_leave(void) {
  if (guard_depth <= 0 || --guard_depth > 0) return;
  guard_arm(0);
}

void rctd_h5_no_teardown_at_exit(void) {
  H5dont_atexit();
}
