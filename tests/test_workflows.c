/* Workflows (workflows/snakemake, workflows/nextflow): tests/workflows/test_workflows.sh runs
 * the Snakemake workflow on the vignette as two samples of 3 shards, compares it with `rctd run`
 * byte for byte, checks that a rerun after touching one sample's input redoes only that sample,
 * and runs the Nextflow modules' scripts (no Nextflow runtime here) against the same bytes. */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

TEST_E2E(workflows_snakemake_nextflow_vignette) {
  if (test_sh("command -v snakemake >/dev/null 2>&1") != 0) {
    printf(
        "  note: snakemake is not installed (scripts/setup.sh installs it); workflow test "
        "skipped\n");
    return;
  }
  char work[512];
  snprintf(work, sizeof work, "%s/workflows", test_tmp_dir());
  int rc = test_sh("sh tests/workflows/test_workflows.sh '%s' '%s' >'%s.log' 2>&1", test_bin_dir(),
                   work, work);
  if (rc != 0) test_sh("cat '%s.log' >&2", work);
  CHECK_MSG(rc == 0, "tests/workflows/test_workflows.sh exited with %d (output above)", rc);
}
