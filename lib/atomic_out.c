/* Atomic output files: write under a temporary sibling name, rename on success, remove the
 * temporary on failure, at exit() without commit, and on SIGINT/SIGTERM/SIGHUP. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define ATOMIC_MAX_OUTPUTS 64

typedef struct {
  volatile sig_atomic_t active;
  pid_t owner; /* a forked child that exits must not remove its parent's output */
  FILE *file;
  char tmp_path[PATH_MAX];
  char final_path[PATH_MAX];
} atomic_slot;

static atomic_slot atomic_slots[ATOMIC_MAX_OUTPUTS];
static int atomic_handlers_installed;

/* Async-signal-safe: only unlink(). */
static void atomic_remove_all(void) {
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS; i++)
    if (atomic_slots[i].active && atomic_slots[i].owner == getpid()) {
      unlink(atomic_slots[i].tmp_path);
      atomic_slots[i].active = 0;
    }
}

static void atomic_on_signal(int sig) {
  atomic_remove_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void atomic_at_exit(void) {
  atomic_remove_all();
}

void rctd_out_install_handlers(void) {
  if (atomic_handlers_installed) return;
  atomic_handlers_installed = 1;
  atexit(atomic_at_exit);
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction old;
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = atomic_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[i], &sa, NULL);
  }
}

static atomic_slot *atomic_find(FILE *f) {
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS; i++)
    if (atomic_slots[i].active && atomic_slots[i].file == f) return &atomic_slots[i];
  return NULL;
}

FILE *rctd_out_open(const char *path, char *err, size_t err_len) {
  if (strcmp(path, "-") == 0) return stdout;
  rctd_out_install_handlers();
  atomic_slot *slot = NULL;
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS && !slot; i++)
    if (!atomic_slots[i].active) slot = &atomic_slots[i];
  if (!slot) {
    snprintf(err, err_len, "%s: too many open outputs", path);
    return NULL;
  }
  const char *slash = strrchr(path, '/');
  int dir_len = slash ? (int)(slash - path) + 1 : 0;
  const char *base = slash ? slash + 1 : path;
  if (!*base) {
    snprintf(err, err_len, "%s: output is a directory", path);
    return NULL;
  }
  if (strlen(path) + 20 >= sizeof slot->tmp_path) {
    snprintf(err, err_len, "%s: path too long", path);
    return NULL;
  }
  snprintf(slot->tmp_path, sizeof slot->tmp_path, "%.*s.%s.tmp.XXXXXX", dir_len, path, base);
  snprintf(slot->final_path, sizeof slot->final_path, "%s", path);
  int fd = mkstemp(slot->tmp_path);
  if (fd < 0) {
    snprintf(err, err_len, "%s: cannot create output: %s", path, strerror(errno));
    return NULL;
  }
  slot->file = NULL;
  slot->owner = getpid();
  slot->active = 1; /* from here a signal removes the temporary */
  /* mkstemp makes 0600; give the file the mode a plain fopen would. */
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  FILE *f = fdopen(fd, "wb");
  if (!f) {
    snprintf(err, err_len, "%s: cannot open output: %s", path, strerror(errno));
    close(fd);
    unlink(slot->tmp_path);
    slot->active = 0;
    return NULL;
  }
  slot->file = f;
  return f;
}

int rctd_out_commit(FILE *f, char *err, size_t err_len) {
  if (f == stdout) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
      snprintf(err, err_len, "stdout: write failed: %s", strerror(errno ? errno : EIO));
      return -1;
    }
    return 0;
  }
  atomic_slot *slot = atomic_find(f);
  if (!slot) {
    snprintf(err, err_len, "rctd_out_commit: not an rctd_out_open file");
    fclose(f);
    return -1;
  }
  int failed = ferror(f) != 0;
  if (fclose(f) != 0) failed = 1;
  if (failed) {
    snprintf(err, err_len, "%s: write failed: %s", slot->final_path, strerror(errno ? errno : EIO));
    unlink(slot->tmp_path);
    slot->active = 0;
    return -1;
  }
  if (rename(slot->tmp_path, slot->final_path) != 0) {
    snprintf(err, err_len, "%s: cannot rename the finished output into place: %s", slot->final_path,
             strerror(errno));
    unlink(slot->tmp_path);
    slot->active = 0;
    return -1;
  }
  slot->active = 0;
  return 0;
}

void rctd_out_abort(FILE *f) {
  if (!f || f == stdout) return;
  atomic_slot *slot = atomic_find(f);
  fclose(f);
  if (!slot) return;
  unlink(slot->tmp_path);
  slot->active = 0;
}
