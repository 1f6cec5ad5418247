/* rctd-view: listing, printing every record type as TSV, stdin, errors, atomic -o. */
#include <stdlib.h>
#include <unistd.h>

#include "stream.h"
#include "test.h"
#include "test_stream_sample.h"

static char view_text[65536];

static const char *view_read(const char *path) {
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(view_text, 1, sizeof view_text - 1, f) : 0;
  view_text[n] = 0;
  if (f) fclose(f);
  return view_text;
}

/* Runs rctd-view ARGS with stdout and stderr captured; returns the exit status. */
static int view_run(const char *args, const char **out, const char **err) {
  static char err_copy[8192];
  const char *dir = test_tmp_dir();
  int rc = test_sh("cd '%s' && '%s/rctd-view' %s >view.out 2>view.err", dir, test_bin_dir(), args);
  char path[600];
  snprintf(path, sizeof path, "%s/view.err", dir);
  snprintf(err_copy, sizeof err_copy, "%s", view_read(path));
  *err = err_copy;
  snprintf(path, sizeof path, "%s/view.out", dir);
  *out = view_read(path);
  return rc;
}

static int view_sample(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/view.rctd", test_tmp_dir());
  return rctd_test_sample_write_path(path, 2);
}

TEST_E2E(view_lists_records) {
  CHECK(view_sample() == 0);
  const char *out, *err;
  CHECK(view_run("view.rctd", &out, &err) == 0);
  const char *expect =
      "name\ttype\tshape\tchunks\tdetails\n"
      "config\tmeta\t4\t2\t-\n"
      "genes\tstrings\t7\t4\t-\n"
      "types\tstrings\t3\t2\t-\n"
      "barcodes\tstrings\t5\t3\t-\n"
      "profiles\tdense f64\t7x3\t4\trow_names=genes col_names=types\n"
      "numi\tvector f32\t5\t3\trow_names=barcodes\n"
      "ints\tdense i32\t5x4\t3\trow_names=barcodes\n"
      "longs\tdense i64\t3x2\t2\t-\n"
      "flags\tdense u8\t6x1\t3\t-\n"
      "counts\tcsr i32\t5x7\t3\tnnz=9 row_names=barcodes col_names=genes unit=UMI\n"
      "norm\tcsr f64\t5x7\t3\tnnz=9\n"
      "empty\tdense f64\t0x3\t0\t-\n"
      "nothing\tstrings\t0\t0\t-\n";
  CHECK_MSG(strcmp(out, expect) == 0, "got:\n%s", out);
  CHECK(*err == 0);
  /* The same from standard input. */
  CHECK(test_sh("cd '%s' && cat view.rctd | '%s/rctd-view' - | cmp -s - view.out", test_tmp_dir(),
                test_bin_dir()) == 0);
}

TEST_E2E(view_prints_every_record_type) {
  CHECK(view_sample() == 0);
  struct {
    const char *args, *expect;
  } cases[] = {
      {"view.rctd profiles",
       "genes\tB\tT_CD4\tEndothelial\n"
       "Actb\t1\t0.5\t0.25\n"
       "\t1e-300\t-0\t3.1415926535897931\n"
       "Gene\\twith tab\t1.0000000000000001e+300\t2\t3\n"
       "line\\nbreak\t4\t5\t6\n"
       "back\\\\slash\t7\t8\t9\n"
       "Mt-Co1\t10\t11\t12\n"
       "\xc3\xa9t\xc3\xa9\t13\t14\t0.33333333333333331\n"},
      {"view.rctd numi", "AAAC\t100.5\nAAAG\t0\nAACT\t1e-30\nACGT\t2.99999989e+30\nTTTT\t-7\n"},
      {"view.rctd -n 2 ints", "AAAC\t0\t1\t2\t3\nAAAG\t2147483647\t-2147483648\t-1\t7\n"},
      {"view.rctd longs", "9223372036854775807\t-9223372036854775808\n0\t-1\n1234567890123\t42\n"},
      {"view.rctd flags", "0\n1\n2\n127\n128\n255\n"},
      {"view.rctd counts",
       "barcodes\tgenes\tvalue\nAAAC\tActb\t5\nAAAC\tline\\nbreak\t1\nAAAC\t\xc3\xa9t\xc3\xa9\t2\n"
       "AAAG\tMt-Co1\t100000\nACGT\t\t1\nACGT\tGene\\twith tab\t1\nACGT\tline\\nbreak\t3\n"
       "TTTT\tActb\t9\nTTTT\t\xc3\xa9t\xc3\xa9\t4\n"},
      {"--dense view.rctd counts",
       "barcodes\tActb\t\tGene\\twith tab\tline\\nbreak\tback\\\\slash\tMt-Co1\t\xc3\xa9t\xc3\xa9\n"
       "AAAC\t5\t0\t0\t1\t0\t0\t2\nAAAG\t0\t0\t0\t0\t0\t100000\t0\nAACT\t0\t0\t0\t0\t0\t0\t0\n"
       "ACGT\t0\t1\t1\t3\t0\t0\t0\nTTTT\t9\t0\t0\t0\t0\t0\t4\n"},
      {"view.rctd norm -n 2",
       "row\tcol\tvalue\n0\t0\t0.5\n0\t3\t0.10000000000000001\n0\t6\t0.20000000000000001\n"
       "1\t5\t1.0000000000000001e-09\n"},
      {"view.rctd config",
       "tool\trctd-test\nodd key\ttab\\there\\nnewline\nempty\t\nUMI_min\t100\n"},
      {"view.rctd types", "B\nT_CD4\nEndothelial\n"},
      {"view.rctd empty", ""},
      {"view.rctd nothing", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *out, *err;
    int rc = view_run(cases[i].args, &out, &err);
    CHECK_MSG(rc == 0, "%s: exit %d: %s", cases[i].args, rc, err);
    CHECK_MSG(strcmp(out, cases[i].expect) == 0, "%s: got:\n%s", cases[i].args, out);
  }
}

TEST_E2E(view_errors_and_exit_status) {
  CHECK(view_sample() == 0);
  const char *out, *err;
  CHECK(view_run("view.rctd nope", &out, &err) == 1);
  CHECK_MSG(strstr(err, "rctd-view: view.rctd: no record named 'nope'"), "%s", err);
  CHECK(view_run("missing.rctd", &out, &err) == 1);
  CHECK_MSG(strcmp(err, "rctd-view: missing.rctd: cannot open: No such file or directory\n") == 0,
            "%s", err);
  CHECK(view_run("", &out, &err) == 2);
  CHECK(strstr(err, "missing argument"));
  CHECK(view_run("--frobnicate view.rctd", &out, &err) == 2);
  CHECK(view_run("a b c", &out, &err) == 2);
  CHECK(view_run("--help", &out, &err) == 0);
  CHECK(strstr(out, "--dense") && strstr(out, "[default: false]") && strstr(out, "--head N"));
  CHECK(view_run("--version", &out, &err) == 0);
  CHECK(strcmp(out, "rctd-view " RCTD_VERSION "\n") == 0);
  /* Not a stream, a truncated one: one line naming the file (and record), exit 1. */
  CHECK(test_sh("cd '%s' && printf 'gene,count\\n' > text.csv", test_tmp_dir()) == 0);
  CHECK(view_run("text.csv", &out, &err) == 1);
  CHECK_MSG(strcmp(err, "rctd-view: text.csv: not an rctd stream (bad magic number)\n") == 0, "%s",
            err);
  CHECK(test_sh("cd '%s' && head -c 1500 view.rctd > cut.rctd", test_tmp_dir()) == 0);
  CHECK(view_run("cut.rctd", &out, &err) == 1);
  /* The cause, then what it means for what stdout already received. */
  const char *incomplete = "rctd-view: stdout: the output is incomplete (the run failed)\n";
  const char *second = strchr(err, '\n');
  CHECK_MSG(strncmp(err, "rctd-view: cut.rctd: ", 21) == 0 && strstr(err, "truncated") && second &&
                strcmp(second + 1, incomplete) == 0,
            "%s", err);
}

TEST_E2E(view_output_is_atomic) {
  CHECK(view_sample() == 0);
  const char *out, *err;
  const char *dir = test_tmp_dir();
  CHECK(view_run("-o table.tsv view.rctd profiles", &out, &err) == 0);
  CHECK(*out == 0);
  CHECK(test_sh("cd '%s' && head -1 table.tsv | grep -q '^genes'", dir) == 0);
  /* A stream damaged after the first rows: the printed part must not survive. */
  CHECK(test_sh("cd '%s' && rm -f table.tsv && head -c 3000 view.rctd > cut.rctd", dir) == 0);
  CHECK(view_run("cut.rctd counts", &out, &err) == 1);
  CHECK_MSG(strncmp(out, "barcodes\tgenes\tvalue\nAAAC\tActb\t5\n", 30) == 0, "%s", out);
  CHECK_MSG(strstr(err, "rctd-view: cut.rctd: record 'counts': truncated"), "%s", err);
  CHECK(view_run("-o table.tsv cut.rctd counts", &out, &err) == 1);
  CHECK_MSG(strstr(err, "truncated"), "%s", err);
  CHECK(test_sh("cd '%s' && test ! -e table.tsv && ! ls -A | grep -q '\\.tmp\\.'", dir) == 0);
}

/* A stream of two pixel blocks whose records repeat per block (as the fit and sigma streams'
 * are): RECORD prints every block's, each with its own block's names, the header once, --head
 * counting across blocks, unnamed rows numbered on. */
TEST_E2E(view_prints_every_block_of_a_record) {
  char path[600], err[512];
  snprintf(path, sizeof path, "%s/blocks.rctd", test_tmp_dir());
  rctd_writer *w = rctd_writer_open(path, NULL, err, sizeof err);
  CHECK(w);
  const char *types[] = {"A", "B"}, *bc1[] = {"p1", "p2"}, *bc2[] = {"p3"};
  const double wt1[] = {1, 2, 3, 4}, wt2[] = {5, 6}, n1[] = {10, 20}, n2[] = {30};
  CHECK(rctd_write_string_list(w, "types", types, 2) == 0);
  CHECK(rctd_write_string_list(w, "barcode", bc1, 2) == 0);
  CHECK(rctd_write_dense(w, "weights", RCTD_F64, 2, 2, wt1, "barcode", "types") == 0);
  CHECK(rctd_write_vector(w, "numi", RCTD_F64, 2, n1, NULL) == 0);
  CHECK(rctd_write_string_list(w, "barcode", bc2, 1) == 0);
  CHECK(rctd_write_dense(w, "weights", RCTD_F64, 1, 2, wt2, "barcode", "types") == 0);
  CHECK(rctd_write_vector(w, "numi", RCTD_F64, 1, n2, NULL) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  struct {
    const char *args, *expect;
  } cases[] = {
      {"blocks.rctd weights", "barcode\tA\tB\np1\t1\t2\np2\t3\t4\np3\t5\t6\n"},
      {"blocks.rctd barcode", "p1\np2\np3\n"},
      {"-n 1 blocks.rctd weights", "barcode\tA\tB\np1\t1\t2\n"},
      {"-n 3 blocks.rctd weights", "barcode\tA\tB\np1\t1\t2\np2\t3\t4\np3\t5\t6\n"},
      {"-n 2 blocks.rctd numi", "10\n20\n"},
      {"blocks.rctd numi", "10\n20\n30\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *out, *err_text;
    int rc = view_run(cases[i].args, &out, &err_text);
    CHECK_MSG(rc == 0, "%s: exit %d: %s", cases[i].args, rc, err_text);
    CHECK_MSG(strcmp(out, cases[i].expect) == 0, "%s: got:\n%s", cases[i].args, out);
  }
}
