/* The 10x HDF5 reader, isolated per input as fuzz_h5ad. */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("in.h5", data, size);
  if (path) fuzz_read_input_isolated(path, RCTD_INPUT_10X_H5);
  return 0;
}
