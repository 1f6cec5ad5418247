/* The cell type -> class table (class_df), for three types. */
#include <stdlib.h>

#include "common.h"
#include "reference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("classes.csv", data, size);
  if (!path) return 0;
  static const char *const types[] = {"alpha", "beta", "gamma"};
  char **classes = NULL;
  char err[1024];
  if (rctd_class_table_read(path, types, 3, &classes, err, sizeof err) == 0) {
    for (int k = 0; k < 3; k++) free(classes[k]);
    free(classes);
  }
  return 0;
}
