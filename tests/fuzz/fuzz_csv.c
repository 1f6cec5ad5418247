/* The spacexr CSV reader (genes x barcodes counts table). */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("counts.csv", data, size);
  if (path) fuzz_read_input(path, RCTD_INPUT_CSV, RCTD_CELL_TYPES_OPTIONAL);
  return 0;
}
