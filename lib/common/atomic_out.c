/* Output files.  A regular file (or a new path) is written under a temporary sibling name and
 * renamed on success; the temporary is removed on failure, at exit() without commit, on
 * SIGINT/SIGTERM/SIGHUP and on a crash.  Anything else (character or block device, FIFO,
 * /proc/self/fd/N, "-") is never replaced: it is opened and written in place, and a run that
 * fails says that the output is incomplete.  Outputs that need a seekable file (HDF5) are
 * spooled to a temporary file and copied into a non-regular target at commit.
 * With rctd_out_defer(1), commits close and keep the temporaries, and rctd_out_finish() renames
 * them all at the end: a tool writing several outputs leaves none when a later one fails. */
#include "atomic_out.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define ATOMIC_MAX_OUTPUTS 64

typedef enum {
  OUT_RENAME,  /* temporary sibling, renamed into place */
  OUT_INPLACE, /* written in place (a device, FIFO, /proc/self/fd/N or stdout) */
  OUT_SPOOL    /* temporary in $TMPDIR, copied into the in-place target at commit */
} out_kind;

typedef struct {
  int in_use;                     /* taken by an output, from its open to its release */
  volatile sig_atomic_t active;   /* a signal or exit() removes the temporary */
  volatile sig_atomic_t finished; /* closed, rename deferred to rctd_out_finish */
  pid_t owner; /* a forked child that exits must not remove its parent's output */
  out_kind kind;
  FILE *file;
  int target_fd; /* OUT_SPOOL: the in-place target */
  char tmp_path[PATH_MAX];
  char final_path[PATH_MAX];
} atomic_slot;

static atomic_slot atomic_slots[ATOMIC_MAX_OUTPUTS];
/* Threads open and commit outputs (sigma's likelihood-table cache entries are written by the
 * threads that build them).  This lock guards the table: a slot's in_use, active, finished and
 * file (how slots are taken, found and released).  The rest of a slot belongs to the thread of
 * its output, and the I/O (creating, flushing, copying, renaming, removing files) runs outside
 * the lock, so that one thread's flush, spool copy or rename does not hold up the others. The
 * signal and exit paths do not take it (they only unlink what is active). */
static pthread_mutex_t atomic_lock = PTHREAD_MUTEX_INITIALIZER;
static int atomic_handlers_installed, atomic_deferred;
static int atomic_stdout_failed; /* a failure on stdout was already reported */

/* Async-signal-safe: only unlink(). */
void rctd_out_remove_all(void) {
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS; i++)
    if (atomic_slots[i].active && atomic_slots[i].owner == getpid()) {
      if (atomic_slots[i].kind != OUT_INPLACE) unlink(atomic_slots[i].tmp_path);
      atomic_slots[i].active = 0;
    }
}

static void atomic_on_signal(int sig) {
  rctd_out_remove_all();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void atomic_at_exit(void) {
  rctd_out_remove_all();
}

/* A write error on standard output (e.g. > /dev/full) is a failure of the run, whatever wrote
 * there (--help, --version, a summary). */
static void atomic_close_stdout(void) {
  if (atomic_stdout_failed || (fflush(stdout) == 0 && !ferror(stdout))) return;
  int e = errno ? errno : EIO;
  rctd_out_remove_all();
  fprintf(stderr, "%s: stdout: write failed: %s\n", rctd_tool(), strerror(e));
  _exit(RCTD_EXIT_RUNTIME);
}

/* The process's umask, read once: reading it sets it for a moment, and outputs may be opened
 * from several threads (the first open comes before any thread starts). */
static mode_t atomic_umask_value;
static pthread_once_t atomic_umask_once = PTHREAD_ONCE_INIT;
static void atomic_umask_read(void) {
  atomic_umask_value = umask(0);
  umask(atomic_umask_value);
}
static mode_t atomic_umask(void) {
  pthread_once(&atomic_umask_once, atomic_umask_read);
  return atomic_umask_value;
}

void rctd_out_install_handlers(void) {
  (void)atomic_umask(); /* early, on the main thread */
  if (atomic_handlers_installed) return;
  atomic_handlers_installed = 1;
  atexit(atomic_at_exit);
  atexit(atomic_close_stdout); /* runs first: a failed stdout removes the outputs */
  /* A file size limit (ulimit -f) then fails the write with EFBIG, reported and cleaned up
   * like a full disk, instead of SIGXFSZ killing the process with its temporaries left. */
  signal(SIGXFSZ, SIG_IGN);
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

void rctd_out_defer(int on) {
  pthread_mutex_lock(&atomic_lock);
  atomic_deferred = on;
  pthread_mutex_unlock(&atomic_lock);
}

/* F's slot, taken out of the lookups (its FILE is about to be closed, and a FILE opened by
 * another thread may then get the same address); it stays in use and active until released.
 * NULL when F has none. */
static atomic_slot *atomic_claim(FILE *f) {
  atomic_slot *found = NULL;
  pthread_mutex_lock(&atomic_lock);
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS && !found; i++)
    if (atomic_slots[i].in_use && !atomic_slots[i].finished && atomic_slots[i].file == f)
      found = &atomic_slots[i];
  if (found) found->file = NULL;
  pthread_mutex_unlock(&atomic_lock);
  return found;
}

static void atomic_set(atomic_slot *slot, int active, FILE *file) {
  pthread_mutex_lock(&atomic_lock);
  slot->active = active;
  slot->file = file;
  pthread_mutex_unlock(&atomic_lock);
}

/* Gives the slot back to the table (after its files are dealt with). */
static void atomic_free(atomic_slot *slot) {
  pthread_mutex_lock(&atomic_lock);
  slot->active = 0;
  slot->finished = 0;
  slot->file = NULL;
  slot->in_use = 0;
  pthread_mutex_unlock(&atomic_lock);
}

static atomic_slot *atomic_new_slot(const char *path, char *err, size_t err_len) {
  atomic_slot *slot = NULL;
  pthread_mutex_lock(&atomic_lock);
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS && !slot; i++)
    if (!atomic_slots[i].in_use) {
      slot = &atomic_slots[i];
      slot->in_use = 1;
    }
  pthread_mutex_unlock(&atomic_lock);
  if (!slot) {
    snprintf(err, err_len, "%s: too many open outputs", path);
    return NULL;
  }
  memset(slot->tmp_path, 0, sizeof slot->tmp_path);
  slot->target_fd = -1;
  slot->owner = getpid();
  snprintf(slot->final_path, sizeof slot->final_path, "%s", path);
  return slot;
}

/* How PATH is written: OUT_RENAME for a new path or a regular file (RESOLVED: the file a
 * symbolic link names), OUT_INPLACE for anything else; -1 with ERR set for what cannot be an
 * output. */
static int atomic_target_kind(const char *path, char *resolved, size_t resolved_len, char *err,
                              size_t err_len) {
  snprintf(resolved, resolved_len, "%s", path);
  if (!*path) {
    snprintf(err, err_len, "output path is empty: give -o FILE (or -o - for standard output)");
    return -1;
  }
  struct stat lsb, sb;
  if (lstat(path, &lsb) != 0) return OUT_RENAME;
  if (S_ISREG(lsb.st_mode)) return OUT_RENAME;
  if (S_ISDIR(lsb.st_mode)) {
    snprintf(err, err_len, "%s: output is a directory: give a file name", path);
    return -1;
  }
  if (!S_ISLNK(lsb.st_mode)) return S_ISSOCK(lsb.st_mode) ? -2 : OUT_INPLACE;
  if (stat(path, &sb) != 0) return OUT_RENAME; /* dangling link: replaced like a new file */
  if (S_ISDIR(sb.st_mode)) {
    snprintf(err, err_len, "%s: output is a directory: give a file name", path);
    return -1;
  }
  if (S_ISSOCK(sb.st_mode)) return -2;
  /* /proc/self/fd/N and /dev/stdout are descriptors of this process: written in place. */
  if (!S_ISREG(sb.st_mode) || strncmp(path, "/proc/", 6) == 0 || strncmp(path, "/dev/", 5) == 0)
    return OUT_INPLACE;
  /* A link to a regular file: the file is replaced, the link kept. */
  char *real = realpath(path, NULL);
  if (real) snprintf(resolved, resolved_len, "%s", real);
  free(real);
  return OUT_RENAME;
}

/* Opens PATH in place (it exists and is not a regular file, or is a descriptor link). */
static int atomic_open_inplace(const char *path, char *err, size_t err_len) {
  int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_len, "%s: cannot open output: %s", path, strerror(errno));
    return -1;
  }
  struct stat sb;
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) (void)ftruncate(fd, 0);
  return fd;
}

/* The output's FILE for a taken SLOT of KIND (the slot's files are this thread's: no lock
 * held).  NULL with ERR set; the slot is then not active. */
static FILE *atomic_open_file(atomic_slot *slot, int kind, int need_seek, const char *path,
                              const char *resolved, char *err, size_t err_len) {
  if (kind == OUT_INPLACE && !need_seek) {
    int fd = atomic_open_inplace(path, err, err_len);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f && fd >= 0) close(fd);
    slot->kind = OUT_INPLACE;
    return f;
  }
  if (kind == OUT_INPLACE) { /* spool: a seekable temporary, copied at commit */
    slot->target_fd =
        strcmp(path, "-") == 0 ? dup(STDOUT_FILENO) : atomic_open_inplace(path, err, err_len);
    if (slot->target_fd < 0) {
      if (strcmp(path, "-") == 0) snprintf(err, err_len, "stdout: %s", strerror(errno));
      return NULL;
    }
    snprintf(slot->tmp_path, sizeof slot->tmp_path, "%s/rctd-out.XXXXXX", rctd_temp_dir(NULL));
    if (strcmp(path, "-") == 0) snprintf(slot->final_path, sizeof slot->final_path, "stdout");
  } else {
    const char *slash = strrchr(resolved, '/');
    int dir_len = slash ? (int)(slash - resolved) + 1 : 0;
    const char *base = slash ? slash + 1 : resolved;
    if (strlen(resolved) + 20 >= sizeof slot->tmp_path) {
      snprintf(err, err_len, "%s: path too long", path);
      return NULL;
    }
    int n = snprintf(slot->tmp_path, sizeof slot->tmp_path, "%.*s.%s.tmp.XXXXXX", dir_len, resolved,
                     base);
    if (n < 0 || (size_t)n >= sizeof slot->tmp_path) return NULL;
    snprintf(slot->final_path, sizeof slot->final_path, "%s", resolved);
  }
  slot->kind = kind == OUT_INPLACE ? OUT_SPOOL : OUT_RENAME;
  int fd = mkostemp(slot->tmp_path, O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, err_len, "%s: cannot create output: %s", path, strerror(errno));
    if (slot->target_fd >= 0) close(slot->target_fd);
    return NULL;
  }
  atomic_set(slot, 1, NULL); /* from here a signal removes the temporary */
  /* mkstemp makes 0600; give the file the mode a plain fopen would. */
  if (slot->kind == OUT_RENAME) fchmod(fd, 0666 & ~atomic_umask());
  FILE *f = fdopen(fd, slot->kind == OUT_SPOOL ? "w+b" : "wb");
  if (!f) {
    snprintf(err, err_len, "%s: cannot open output: %s", path, strerror(errno));
    close(fd);
    unlink(slot->tmp_path);
    if (slot->target_fd >= 0) close(slot->target_fd);
  }
  return f;
}

static FILE *atomic_open(const char *path, int need_seek, char *err, size_t err_len) {
  pthread_mutex_lock(&atomic_lock);
  rctd_out_install_handlers();
  pthread_mutex_unlock(&atomic_lock);
  char resolved[PATH_MAX];
  int kind = strcmp(path, "-") == 0
                 ? OUT_INPLACE
                 : atomic_target_kind(path, resolved, sizeof resolved, err, err_len);
  if (kind == -2)
    snprintf(err, err_len, "%s: output is a socket: give a file, a FIFO or '-'", path);
  if (kind < 0) return NULL;
  int is_stdout = kind == OUT_INPLACE && !need_seek && strcmp(path, "-") == 0;
  atomic_slot *slot = atomic_new_slot(is_stdout ? "stdout" : path, err, err_len);
  if (!slot) return NULL;
  slot->kind = OUT_INPLACE;
  FILE *f =
      is_stdout ? stdout : atomic_open_file(slot, kind, need_seek, path, resolved, err, err_len);
  if (f)
    atomic_set(slot, 1, f);
  else
    atomic_free(slot);
  return f;
}

FILE *rctd_out_open(const char *path, char *err, size_t err_len) {
  return atomic_open(path, 0, err, err_len);
}

FILE *rctd_out_open_seekable(const char *path, char *err, size_t err_len) {
  return atomic_open(path, 1, err, err_len);
}

/* Removes the slot's temporary, closes its target and gives the slot back. */
static void atomic_release(atomic_slot *slot) {
  if (slot->kind != OUT_INPLACE) unlink(slot->tmp_path);
  if (slot->target_fd >= 0) close(slot->target_fd);
  slot->target_fd = -1;
  atomic_free(slot);
}

int rctd_pread_all(int fd, void *buf, size_t n, off_t offset) {
  for (char *p = buf; n > 0;) {
    ssize_t got = pread(fd, p, n, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = EIO; /* shorter than asked: the file is not what was written */
      return -1;
    }
    p += got, n -= (size_t)got, offset += got;
  }
  return 0;
}

int rctd_pwrite_all(int fd, const void *buf, size_t n, off_t offset) {
  for (const char *p = buf; n > 0;) {
    ssize_t put = pwrite(fd, p, n, offset);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      if (put == 0) errno = EIO; /* nothing written and no error: callers print errno */
      return -1;
    }
    p += put, n -= (size_t)put, offset += put;
  }
  return 0;
}

/* Copies the spooled temporary into the in-place target. */
static int atomic_copy_spool(atomic_slot *slot) {
  int in = open(slot->tmp_path, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -1;
  char buf[1 << 16];
  ssize_t got;
  int rc = 0;
  while (rc == 0 && (got = read(in, buf, sizeof buf)) != 0) {
    if (got < 0) {
      if (errno == EINTR) continue;
      rc = -1;
      break;
    }
    for (ssize_t off = 0; off < got && rc == 0;) {
      ssize_t put = write(slot->target_fd, buf + off, (size_t)(got - off));
      if (put < 0 && errno == EINTR) continue;
      if (put <= 0) rc = -1;
      off += put > 0 ? put : 0;
    }
  }
  int e = errno;
  close(in);
  errno = e;
  return rc;
}

static int atomic_rename(atomic_slot *slot, char *err, size_t err_len) {
  if (rename(slot->tmp_path, slot->final_path) != 0) {
    snprintf(err, err_len, "%s: cannot rename the finished output into place: %s", slot->final_path,
             strerror(errno));
    atomic_release(slot);
    return -1;
  }
  atomic_free(slot);
  return 0;
}

int rctd_out_commit(FILE *f, char *err, size_t err_len) {
  atomic_slot *slot = atomic_claim(f);
  if (!slot && f == stdout) { /* stdout written without rctd_out_open */
    if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
    snprintf(err, err_len, "stdout: write failed: %s", strerror(errno ? errno : EIO));
    return -1;
  }
  if (!slot) {
    snprintf(err, err_len, "rctd_out_commit: not an rctd_out_open file");
    fclose(f);
    return -1;
  }
  errno = 0;
  int failed = fflush(f) != 0 || ferror(f) != 0;
  int e = errno;
  if (f != stdout && fclose(f) != 0 && !failed) failed = 1, e = errno;
  if (!failed && slot->kind == OUT_SPOOL && atomic_copy_spool(slot) != 0) failed = 1, e = errno;
  if (failed) {
    if (f == stdout) atomic_stdout_failed = 1; /* only the main thread writes stdout */
    snprintf(err, err_len, "%s: write failed: %s%s", slot->final_path, strerror(e ? e : EIO),
             slot->kind == OUT_RENAME ? "" : "; the output is incomplete");
    atomic_release(slot);
    return -1;
  }
  if (slot->kind != OUT_RENAME) {
    atomic_release(slot);
    return 0;
  }
  pthread_mutex_lock(&atomic_lock);
  int deferred = atomic_deferred;
  if (deferred) slot->finished = 1;
  pthread_mutex_unlock(&atomic_lock);
  return deferred ? 0 : atomic_rename(slot, err, err_len);
}

/* Slot I if it holds a finished output of this process, taken out of the finished ones. */
static atomic_slot *atomic_claim_finished(int i) {
  atomic_slot *slot = &atomic_slots[i];
  pthread_mutex_lock(&atomic_lock);
  int mine = slot->in_use && slot->finished && slot->owner == getpid();
  if (mine) slot->finished = 0;
  pthread_mutex_unlock(&atomic_lock);
  return mine ? slot : NULL;
}

int rctd_out_finish(int discard, char *err, size_t err_len) {
  /* Deferral ends before the scan: a commit that still saw it on has marked its slot finished
   * under the lock already (the scan finds it); a later one renames its own file. */
  pthread_mutex_lock(&atomic_lock);
  atomic_deferred = 0;
  pthread_mutex_unlock(&atomic_lock);
  int rc = discard ? -1 : 0;
  for (int i = 0; i < ATOMIC_MAX_OUTPUTS; i++) {
    atomic_slot *slot = atomic_claim_finished(i);
    if (!slot) continue;
    if (rc != 0)
      atomic_release(slot);
    else if (atomic_rename(slot, err, err_len) != 0)
      rc = -1;
  }
  return discard ? 0 : rc;
}

/* Whether anything was written to F (stdout: its buffer exists once something was). */
static int atomic_started(FILE *f) {
  if (f == stdout) return stdout->_IO_write_base != NULL;
  return ftello(f) != 0; /* -1 (a FIFO, a device): assume so */
}

void rctd_out_abort(FILE *f) {
  if (!f) return;
  atomic_slot *slot = atomic_claim(f);
  if (!slot) {
    if (f != stdout) fclose(f);
    return;
  }
  /* A spooled output never reached its target; one written in place did, in part (unless a
   * write to it failed: the caller reports that failure, which says as much). */
  if (slot->kind == OUT_INPLACE && atomic_started(f) && !ferror(f))
    rctd_log_error("%s: the output is incomplete (the run failed)", slot->final_path);
  if (f == stdout)
    atomic_stdout_failed = 1; /* the run failed and says so: no second line at exit */
  else
    fclose(f);
  atomic_release(slot);
}

/* ---- anonymous temporary files ---- */

const char *rctd_temp_dir(const char *tmp_dir) {
  if (!tmp_dir || !*tmp_dir) tmp_dir = getenv("TMPDIR");
  return tmp_dir && *tmp_dir ? tmp_dir : "/tmp";
}

int rctd_temp_fd(const char *tmp_dir, const char *prefix) {
  tmp_dir = rctd_temp_dir(tmp_dir);
  char name[PATH_MAX];
  int len = snprintf(name, sizeof name, "%s/%s-XXXXXX", tmp_dir, prefix);
  if (len < 0 || (size_t)len >= sizeof name) {
    errno = ENAMETOOLONG;
    return -1;
  }
  int fd = mkstemp(name);
  if (fd >= 0) unlink(name);
  return fd;
}

FILE *rctd_temp_file(const char *tmp_dir, const char *prefix) {
  int fd = rctd_temp_fd(tmp_dir, prefix);
  if (fd < 0) return NULL;
  FILE *f = fdopen(fd, "w+b");
  if (!f) {
    int saved = errno;
    close(fd);
    errno = saved;
  }
  return f;
}
