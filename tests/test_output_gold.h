/* R's vignette results (tests/data/gold/vignette/MODE) as rctd_results_chunk arrays, for the
 * writer tests (tests/test_output.c). */
#ifndef RCTD_TEST_OUTPUT_GOLD_H
#define RCTD_TEST_OUTPUT_GOLD_H
#include <stdint.h>

#include "output.h"

#define OG_MULTI_SLOTS 4

typedef struct {
  char mode_name[16];
  int mode;
  char dir[1024];
  int n_types, n, n_reg, n_bulk;
  char *type_names[64];
  char **barcodes, **genes_reg, **genes_bulk;
  double *weights_nk, *numi;
  int64_t *row;
  uint8_t *conv, *spot_class, *first_class, *second_class, *conv_all, *conv_doublet;
  int32_t *first_type, *second_type, *n_candidates;
  double *min_score, *singlet_score, *weights_doublet;
  uint8_t *multi_status, *conf_nm, *conv_sub;
  int32_t *n_types_n, *types_nm;
  double *sub_weights_nm;
  const char *config_values[3];
  rctd_results_info info;
} og_gold;

/* Loads MODE's gold files ("full", "doublet", "multi").  0 or -1. */
int og_gold_load(og_gold *g, const char *mode);
void og_gold_free(og_gold *g);
/* Pixels [first, first + n) as a chunk (pointers into G). */
rctd_results_chunk og_chunk(const og_gold *g, int64_t first, int64_t n);

#endif
