/* The MTX reader: the input is matrix.mtx, beside fixed barcodes.tsv and features.tsv (5 genes
 * x 6 cells, as tests/data/input/mtx_v2). */
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char barcodes[] = "AAAC-1\nACGT-1\nCCCC-1\nGGGG-1\nTTTT-1\nTGCA-1\n";
  static const char features[] =
      "g1\tGeneA\tGene Expression\ng2\tGeneB\tGene Expression\ng3\tGeneC\tGene Expression\n"
      "g4\tGeneD\tGene Expression\ng5\tGeneE\tGene Expression\n";
  if (!fuzz_write_file("barcodes.tsv", (const uint8_t *)barcodes, strlen(barcodes)) ||
      !fuzz_write_file("features.tsv", (const uint8_t *)features, strlen(features)) ||
      !fuzz_write_file("matrix.mtx", data, size))
    return 0;
  fuzz_read_input(fuzz_dir(), RCTD_INPUT_MTX, RCTD_CELL_TYPES_OPTIONAL);
  return 0;
}
