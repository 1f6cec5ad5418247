/* rctd-fuzz-read FILE FORMAT: reads FILE as a stage would (common.c: fuzz_read_input), under
 * the HDF5 guard; exit status 0 or 1, never a signal.  Run by the HDF5 harnesses per input. */
#include <stdio.h>

#include "cli.h"
#include "common.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: rctd-fuzz-read FILE FORMAT\n");
    return 2;
  }
  rctd_set_tool("rctd-fuzz-read");
  rctd_input_format format;
  if (rctd_input_format_from_name(argv[2], &format) != 0) return 2;
  fuzz_read_input(argv[1], format, RCTD_CELL_TYPES_OPTIONAL);
  return 0;
}
