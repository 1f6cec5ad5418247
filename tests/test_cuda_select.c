/* --device selection (kernels/cuda_select.c): runs in every build, with or without a GPU. */
#include <string.h>

#include "cuda_select.h"
#include "test.h"
#ifdef RCTD_HAVE_CUDA
#include "cuda/rctd_cuda.h"
#endif

TEST(cuda_select_cpu_and_auto) {
  char note[512], err[512];
  rctd_backend *be = rctd_backend_open("cpu", 3, note, sizeof note, err, sizeof err);
  CHECK(be != NULL);
  CHECK(strcmp(be->name, "cpu") == 0 && be->n_threads == 3);
  CHECK(strstr(note, "device cpu (3 threads)") != NULL);
  be->destroy(be);

  be = rctd_backend_open("auto", 2, note, sizeof note, err, sizeof err);
  CHECK(be != NULL);
  int have_gpu = 0;
#ifdef RCTD_HAVE_CUDA
  have_gpu = rctd_cuda_device_count() > 0;
#endif
  if (have_gpu) {
    CHECK_MSG(strncmp(be->name, "cuda:0", 6) == 0, "%s", note);
    CHECK(strncmp(note, "device cuda:0 (", 15) == 0);
  } else {
    CHECK(strcmp(be->name, "cpu") == 0);
    CHECK_MSG(strstr(note, "; device cpu (2 threads)") != NULL, "%s", note);
  }
  be->destroy(be);
  be = rctd_backend_open(NULL, 1, NULL, 0, err, sizeof err);
  CHECK(be != NULL);
  be->destroy(be);
}

TEST(cuda_select_rejects_bad_values) {
  char err[512] = "";
  const char *bad[] = {"gpu", "cuda:", "cuda:x", "cuda:0,", "cuda:-1", "CPU", "cuda0"};
  for (int i = 0; i < 7; i++) {
    err[0] = 0;
    CHECK_MSG(rctd_backend_open(bad[i], 1, NULL, 0, err, sizeof err) == NULL, "%s", bad[i]);
    CHECK_MSG(strstr(err, "--device") != NULL, "%s: %s", bad[i], err);
  }
  /* a device that does not exist (or no CUDA build / no GPU): a clear error, no fallback */
  err[0] = 0;
  CHECK(rctd_backend_open("cuda:999", 1, NULL, 0, err, sizeof err) == NULL);
  CHECK(strstr(err, "--device cuda:999") != NULL && strstr(err, "--device cpu") != NULL);
}

TEST(cuda_select_precision) {
  char note[512], err[512] = "";
  /* float64 is the default and the CPU's only precision */
  rctd_backend *be =
      rctd_backend_open_precision("cpu", "float64", 2, note, sizeof note, err, sizeof err);
  CHECK(be != NULL && strcmp(be->name, "cpu") == 0);
  be->destroy(be);
  CHECK(rctd_backend_open_precision("cpu", "float32", 2, note, sizeof note, err, sizeof err) ==
        NULL);
  CHECK_MSG(strstr(err, "--precision float32") != NULL && strstr(err, "--device cuda") != NULL,
            "%s", err);
  const char *bad[] = {"double", "float16", "FLOAT32", "f32"};
  for (int i = 0; i < 4; i++) {
    err[0] = 0;
    CHECK(rctd_backend_open_precision("auto", bad[i], 1, NULL, 0, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "--precision") != NULL && strstr(err, "float64 or float32") != NULL,
              "%s: %s", bad[i], err);
  }
  /* auto with float32: the GPU in float32, or the CPU in float64, saying so */
  be = rctd_backend_open_precision("auto", "float32", 2, note, sizeof note, err, sizeof err);
  CHECK(be != NULL);
  if (strcmp(be->name, "cpu") == 0)
    CHECK_MSG(strstr(note, "float64 (float32 is for CUDA devices only)") != NULL, "%s", note);
  else
    CHECK_MSG(strstr(note, ", float32)") != NULL, "%s", note);
  be->destroy(be);
}
