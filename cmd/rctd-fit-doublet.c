/* rctd-fit-doublet: RCTD doublet mode over a model stream (options and stage in lib/cli/fit_cli.c and
 * lib/stage/fit_stage.c, shared by the three fit tools). */
#include "fit_stage.h"

int main(int argc, char **argv) {
  return rctd_fit_main(RCTD_FIT_DOUBLET, argc, argv);
}
