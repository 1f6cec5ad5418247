/* rctd-merge --multiqc (lib/stage/merge_multiqc.c), through rctd run: two samples of the vignette, one
 * as MultiQC JSON (doublet mode) and one as TSV (full mode), read by Debian's MultiQC into one
 * General Statistics table whose values match the result h5ads (tests/report_check.py). */
#include <stdio.h>
#include <string.h>

#include "merge.h"
#include "test.h"

/* Commands run from the repository root (tests/report_check.py, data/vignette, workflows/). */
#define REPO_SH(fmt, ...) test_sh("cd '%s' && " fmt, test_repo_dir(), __VA_ARGS__)

#define MQ_RUN                                                                      \
  "%s/rctd run --quiet --no-summary --reference data/vignette/h5ad/reference.h5ad " \
  "--reference-numi-col nUMI --cell-type-col cell_type_name --spatial "             \
  "data/vignette/h5ad/spatial.h5ad"

TEST_E2E(multiqc_general_stats_of_two_samples_in_one_table) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/multiqc", test_tmp_dir());
  CHECK(REPO_SH("mkdir -p '%s'", dir) == 0);
  CHECK(REPO_SH(MQ_RUN " --mode doublet -o '%s/slideA.h5ad' --multiqc '%s/slideA_mqc.json'",
                test_bin_dir(), dir, dir) == 0);
  CHECK(REPO_SH(MQ_RUN " --mode full -o '%s/b.h5ad' --multiqc '%s/b_mqc.tsv' --multiqc-sample "
                       "'slide B'",
                test_bin_dir(), dir, dir) == 0);
  CHECK(REPO_SH("/usr/bin/python3 tests/report_check.py multiqc '%s' 'slideA=%s/slideA.h5ad' "
                "'slide B=%s/b.h5ad'",
                dir, dir, dir) == 0);
}

TEST_E2E(multiqc_file_name_must_say_json_or_tsv) {
  CHECK(rctd_multiqc_format("a_mqc.json") == 0 && rctd_multiqc_format("a_mqc.tsv") == 1);
  CHECK(rctd_multiqc_format("a_mqc.txt") == -1 && rctd_multiqc_format("json") == -1);
  char log[4200];
  snprintf(log, sizeof log, "%s/mq_bad.log", test_tmp_dir());
  CHECK(REPO_SH("%s/rctd-merge --multiqc '%s/x_mqc.txt' /dev/null 2>'%s'", test_bin_dir(),
                test_tmp_dir(), log) == 1);
  CHECK(REPO_SH("test $(wc -l <'%s') -eq 1 && grep -q '^rctd-merge: .*x_mqc.txt: --multiqc needs "
                "a NAME_mqc.json or NAME_mqc.tsv' '%s' && test ! -e '%s/x_mqc.txt'",
                log, log, test_tmp_dir()) == 0);
}
