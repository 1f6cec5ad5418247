/* lib/common/atomic_out.c: rctd_pread_all / rctd_pwrite_all (whole transfers at an offset) and
 * outputs committed by several threads at once. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic_out.h"
#include "test.h"

TEST(pread_pwrite_all_round_trip_at_offsets) {
  int fd = rctd_temp_fd(NULL, "rctd-test-io");
  CHECK(fd >= 0);
  enum { N = 300000 }; /* 1.2 MB at an offset that is not a page multiple */
  uint32_t *out = malloc(N * sizeof *out), *in = malloc(N * sizeof *in);
  CHECK(out && in);
  for (uint32_t i = 0; i < N; i++) out[i] = i * 2654435761u;
  CHECK(rctd_pwrite_all(fd, out, N * sizeof *out, 4096 + 3) == 0);
  CHECK(rctd_pwrite_all(fd, out, 8, 0) == 0); /* a second write before the first */
  CHECK(rctd_pread_all(fd, in, N * sizeof *in, 4096 + 3) == 0);
  CHECK(memcmp(in, out, N * sizeof *in) == 0);
  CHECK(rctd_pread_all(fd, in, 8, 0) == 0 && memcmp(in, out, 8) == 0);
  /* the gap between them reads as zeros */
  unsigned char gap[16];
  CHECK(rctd_pread_all(fd, gap, sizeof gap, 100) == 0);
  for (size_t i = 0; i < sizeof gap; i++) CHECK(gap[i] == 0);
  free(out);
  free(in);
  close(fd);
}

TEST(pread_all_fails_past_the_end_and_on_errors) {
  int fd = rctd_temp_fd(NULL, "rctd-test-io");
  CHECK(fd >= 0);
  const char text[] = "0123456789";
  CHECK(rctd_pwrite_all(fd, text, 10, 0) == 0);
  char buf[16];
  errno = EINVAL;
  CHECK(rctd_pread_all(fd, buf, 11, 0) == -1); /* one byte short: the end of the file */
  CHECK(errno == EIO);
  CHECK(rctd_pread_all(fd, buf, 10, 0) == 0 && memcmp(buf, text, 10) == 0);
  CHECK(rctd_pread_all(fd, buf, 0, 1000) == 0); /* nothing asked, nothing read */
  close(fd);
  CHECK(rctd_pread_all(fd, buf, 1, 0) == -1 && errno == EBADF);
  CHECK(rctd_pwrite_all(fd, buf, 1, 0) == -1 && errno == EBADF);
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(rctd_pwrite_all(p[1], buf, 1, 0) == -1 && errno == ESPIPE); /* no offset on a pipe */
  close(p[0]);
  close(p[1]);
}

/* ---------------------------------------------------------------- outputs and threads */

typedef struct {
  FILE *f;
  const char *path;
  atomic_int started, done, rc;
} atomic_test_job;

static void *atomic_test_commit(void *arg) {
  atomic_test_job *job = arg;
  char err[256];
  job->started = 1;
  job->rc = rctd_out_commit(job->f, err, sizeof err);
  job->done = 1;
  return NULL;
}

/* Opens, writes and commits a small output. */
static void *atomic_test_small_output(void *arg) {
  atomic_test_job *job = arg;
  char err[256];
  FILE *f = rctd_out_open(job->path, err, sizeof err);
  job->rc = !f || fputs("small\n", f) < 0 ? -1 : rctd_out_commit(f, err, sizeof err);
  job->done = 1;
  return NULL;
}

static void atomic_test_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

TEST(out_commit_does_not_block_other_outputs) {
  /* One thread's commit stuck in its I/O (a FIFO nobody reads, its flush blocked) while another
   * thread opens, writes and commits an output of its own: the second must not wait for the
   * first (the table's lock is not held through the I/O). */
  char fifo[512], small[512];
  snprintf(fifo, sizeof fifo, "%s/atomic_fifo", test_tmp_dir());
  snprintf(small, sizeof small, "%s/atomic_small.txt", test_tmp_dir());
  CHECK(mkfifo(fifo, 0600) == 0);
  int reader = open(fifo, O_RDONLY | O_NONBLOCK); /* so that the writer's open returns */
  CHECK(reader >= 0);
  char err[256];
  FILE *f = rctd_out_open(fifo, err, sizeof err);
  CHECK(f != NULL);
  enum { BIG = 1 << 20 }; /* far more than a pipe holds */
  char *buf = calloc(BIG, 1);
  char *stdio_buf = malloc(2 * BIG); /* glibc ignores the size without a buffer */
  CHECK(buf && stdio_buf && setvbuf(f, stdio_buf, _IOFBF, 2 * BIG) == 0);
  /* in small pieces, which stay in the stdio buffer (a large fwrite goes straight out) */
  for (size_t at = 0; at < BIG; at += 4096) CHECK(fwrite(buf + at, 1, 4096, f) == 4096);
  atomic_test_job stuck = {.f = f}, other = {.path = small};
  pthread_t t1, t2;
  CHECK(pthread_create(&t1, NULL, atomic_test_commit, &stuck) == 0);
  while (!stuck.started) atomic_test_sleep_ms(1);
  atomic_test_sleep_ms(100); /* into its flush, which the full pipe blocks */
  CHECK(pthread_create(&t2, NULL, atomic_test_small_output, &other) == 0);
  for (int i = 0; i < 5000 && !other.done; i++) atomic_test_sleep_ms(1);
  /* what is checked is read now, but checked only after both threads are joined: a failing
   * check must not leave a thread blocked (holding the lock, had it come back) */
  const int other_done_first = other.done, stuck_done_first = stuck.done;
  /* Drain the FIFO: the stuck commit then ends too. */
  int fl = fcntl(reader, F_GETFL);
  const int blocking = fcntl(reader, F_SETFL, fl & ~O_NONBLOCK) == 0;
  size_t got = 0;
  for (ssize_t n; (n = read(reader, buf, BIG)) > 0;) got += (size_t)n;
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  CHECK_MSG(other_done_first, "an output waited for another thread's blocked commit");
  CHECK(!stuck_done_first && blocking);
  CHECK(got == BIG && stuck.rc == 0 && other.rc == 0);
  CHECK(test_sh("test \"$(cat %s)\" = small", small) == 0);
  close(reader);
  free(buf);
  free(stdio_buf);
}

static void *atomic_test_many_outputs(void *arg) {
  const char *dir = arg;
  char path[512], err[256];
  int rc = 0;
  for (int i = 0; i < 50 && rc == 0; i++) {
    snprintf(path, sizeof path, "%s/out-%lx-%d", dir, (unsigned long)pthread_self(), i);
    FILE *f = rctd_out_open(path, err, sizeof err);
    if (!f) return (void *)1;
    fprintf(f, "%s\n", path);
    rc = i % 5 == 4 ? (rctd_out_abort(f), 0) : rctd_out_commit(f, err, sizeof err);
  }
  return rc == 0 ? NULL : (void *)1;
}

TEST(out_open_commit_from_many_threads) {
  /* 4 threads x 50 outputs, every fifth aborted: 160 files, each holding its own name, and no
   * temporary left. */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/atomic_many", test_tmp_dir());
  CHECK(mkdir(dir, 0700) == 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    CHECK(pthread_create(&t[i], NULL, atomic_test_many_outputs, dir) == 0);
  for (int i = 0; i < 4; i++) {
    void *res;
    pthread_join(t[i], &res);
    CHECK(res == NULL);
  }
  CHECK(test_sh("test $(ls -A %s | wc -l) -eq 160", dir) == 0);
  CHECK(test_sh("for f in %s/*; do test \"$(cat $f)\" = $f || exit 1; done", dir) == 0);
}
