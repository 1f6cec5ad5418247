#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *fuzz_dir(void) {
  static char dir[512];
  if (!dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rctd-fuzz-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    mkdir(dir, 0700);
  }
  return dir;
}

const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) return NULL;
  int ok = fwrite(data, 1, size, f) == size;
  if (fclose(f) != 0) ok = 0;
  return ok ? path : NULL;
}

void fuzz_read_input(const char *path, rctd_input_format format, rctd_cell_type_need need) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.format = format;
  options.cell_types = need;
  char err[1024];
  rctd_input *in = rctd_input_open(path, &options, err, sizeof err);
  if (!in) return;
  const double *sums = NULL, *numi = NULL;
  if (rctd_input_count_sums(in, &sums, err, sizeof err) == 0)
    (void)rctd_input_numi(in, &numi, err, sizeof err);
  rctd_input_rewind(in);
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  while (rctd_input_next_chunk(in, 3, &chunk, err, sizeof err) == 1) continue;
  rctd_csr_chunk_free(&chunk);
  rctd_input_close(in);
}

/* The format's name for rctd-fuzz-read. */
static const char *fuzz_format_arg(rctd_input_format format) {
  return rctd_input_format_name(format);
}

void fuzz_read_input_isolated(const char *path, rctd_input_format format) {
  /* A plain build of the reader (no sanitizer): AddressSanitizer would report libhdf5's own
   * overflows before the guard can turn them into a line. */
  const char *reader = getenv("RCTD_FUZZ_READER");
  if (!reader) {
    fprintf(stderr, "fuzz: set RCTD_FUZZ_READER to build/release/rctd-fuzz-read (make fuzz)\n");
    abort();
  }
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDERR_FILENO); /* the guard's line */
    execl(reader, reader, path, fuzz_format_arg(format), (char *)NULL);
    _exit(127);
  }
  /* 20 s at most: the guard's no-progress limit is 10 s. */
  int status = 0;
  for (int waited_ms = 0;; waited_ms += 5) {
    pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid) break;
    if (got < 0 && errno != EINTR) return;
    if (waited_ms > 20000) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      fprintf(stderr, "fuzz: the reader hung on this input\n");
      abort();
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "fuzz: the reader died by signal %d on this input\n", WTERMSIG(status));
    abort();
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    fprintf(stderr, "fuzz: cannot run %s\n", reader);
    abort();
  }
}
