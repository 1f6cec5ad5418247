/* rctd_pread_all / rctd_pwrite_all (lib/common/atomic_out.c): whole transfers at an offset. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
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
