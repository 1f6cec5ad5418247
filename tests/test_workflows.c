/* Workflows (workflows/snakemake, workflows/nextflow): tests/workflows/test_workflows.sh runs
 * the Snakemake workflow on the vignette as four samples (h5ad x2 with 3 shards, a CSV and an
 * MTX directory), compares it with `rctd run` byte for byte, checks what reruns (one sample's
 * input, a file inside a directory input; never cache_dir, tmp_dir or threads), refuses bad
 * configs with one line, and runs the Nextflow pipeline without a Nextflow runtime
 * (tests/workflows/nf_scripts.py interprets main.nf in order and the modules' scripts) against
 * the same bytes (and RCTD_REPORT's HTML against rctd report's), its test profile, its stubs
 * (with and without the report) and bad sample sheets.  make test-slurm runs the
 * Snakemake workflow on a real SLURM cluster (tests/slurm/run.sh). */
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
