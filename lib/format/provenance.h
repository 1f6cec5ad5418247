/* What a stage needs to record where its output came from: the tool's name and a writer of its
 * provenance.TOOL record (lib/cli fills it from the command line: rctd_cli_provenance), so that
 * the stages need not know the command line. */
#ifndef RCTD_PROVENANCE_H
#define RCTD_PROVENANCE_H
#include "stream.h"

typedef struct rctd_provenance {
  const char *tool;                                              /* "rctd-sigma" */
  int (*write)(const struct rctd_provenance *p, rctd_writer *w); /* 0 or -1 */
  const void *ctx;
} rctd_provenance;

#endif
