/* The h5ad reader, isolated per input (libhdf5 itself crashes on some damaged files: the HDF5
 * guard must turn that into exit status 1, never a signal or a hang). */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("in.h5ad", data, size);
  if (path) fuzz_read_input_isolated(path, RCTD_INPUT_H5AD);
  return 0;
}
