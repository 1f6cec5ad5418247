/* Input readers refuse bad files, each with its own one-line message "FILE: what and what to
 * do". */
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "input.h"
#include "test.h"

#define FIX "tests/data/input/"

static char err[1024];

static const char *tmp_file(const char *name) {
  static char path[4][1024];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, sizeof path[0], "%s/%s", test_tmp_dir(), name);
  return p;
}

static const char *write_text(const char *name, const char *text) {
  const char *path = tmp_file(name);
  FILE *f = fopen(path, "w");
  if (!f) return NULL;
  fputs(text, f);
  fclose(f);
  return path;
}

/* Opens path; if that works, streams it (count sums) and closes.  Returns 0 when everything
 * worked, else -1 with err set. */
static int open_and_stream(const char *path, const rctd_input_options *options) {
  err[0] = '\0';
  rctd_input *input = rctd_input_open(path, options, err, sizeof err);
  if (!input) return -1;
  const double *sums;
  int rc = rctd_input_count_sums(input, &sums, err, sizeof err);
  rctd_input_close(input);
  return rc;
}

/* The message starts with the file name, is one line and says `what`. */
static int says(const char *path_part, const char *what) {
  return strncmp(err, path_part, strlen(path_part)) == 0 && err[strlen(path_part)] &&
         strstr(err, what) && !strchr(err, '\n');
}

#define CHECK_REFUSED(path, options, path_part, what)                         \
  do {                                                                        \
    CHECK_MSG(open_and_stream(path, options) == -1, "%s was accepted", path); \
    CHECK_MSG(says(path_part, what), "message '%s' lacks '%s'", err, what);   \
  } while (0)

static const char counts_header[] = "gene,c1,c2,c3\n";

TEST(input_bad_missing_file) {
  CHECK_REFUSED("/nonexistent/ref.h5ad", NULL, "/nonexistent/ref.h5ad", "check the path");
  CHECK_REFUSED(FIX "no_such_dir/", NULL, FIX "no_such_dir/", "cannot open");
}

TEST(input_bad_not_hdf5_and_truncated) {
  const char *text = write_text("text.h5ad", "this is not HDF5\n");
  CHECK_REFUSED(text, NULL, text, "not an HDF5 file");
  /* a truncated copy of a good file keeps the signature but loses its end */
  const char *cut = tmp_file("cut.h5ad");
  CHECK(test_sh("cp " FIX "csr.h5ad '%s' && truncate -s 9000 '%s'", cut, cut) == 0);
  CHECK_REFUSED(cut, NULL, cut, "truncated or corrupt");
  const char *cut10x = tmp_file("cut.h5");
  CHECK(test_sh("cp " FIX "tenx_v3.h5 '%s' && truncate -s 5000 '%s'", cut10x, cut10x) == 0);
  CHECK_REFUSED(cut10x, NULL, cut10x, "truncated or corrupt");
  const char *odd = write_text("table.xyz", "a b c\n");
  CHECK_REFUSED(odd, NULL, odd, "unknown input format");
}

TEST(input_bad_missing_group) {
  /* an HDF5 file with no X */
  const char *empty = tmp_file("empty.h5ad");
  hid_t file = H5Fcreate(empty, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(file >= 0);
  H5Gclose(H5Gcreate2(file, "obs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  H5Fclose(file);
  CHECK_REFUSED(empty, NULL, empty, "no X matrix");
  /* a 10x file whose matrix lost its indptr */
  const char *tenx = tmp_file("noindptr.h5");
  CHECK(test_sh("cp " FIX "tenx_v3.h5 '%s'", tenx) == 0);
  file = H5Fopen(tenx, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(file >= 0 && H5Ldelete(file, "matrix/indptr", H5P_DEFAULT) >= 0);
  H5Fclose(file);
  CHECK_REFUSED(tenx, NULL, tenx, "matrix/indptr is missing");
  /* an MTX directory without barcodes */
  CHECK(test_sh("mkdir -p '%s/mtx' && cp " FIX "mtx_v2/matrix.mtx " FIX
                "mtx_v2/genes.tsv '%s/mtx/'",
                test_tmp_dir(), test_tmp_dir()) == 0);
  const char *mtx = tmp_file("mtx");
  CHECK_REFUSED(mtx, NULL, mtx, "no barcodes.tsv");
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.layer = "spliced";
  CHECK_REFUSED(FIX "csr.h5ad", &options, FIX "csr.h5ad", "no layer 'spliced'");
}

TEST(input_bad_negative_nan_noninteger_counts) {
  const char *negative = write_text("negative.csv", "gene,c1,c2,c3\nA,1,0,2\nB,0,-3,1\n");
  CHECK_REFUSED(negative, NULL, negative, "count -3 for barcode 'c2', gene 'B' is negative");
  const char *nan = write_text("nan.csv", "gene,c1,c2,c3\nA,1,NA,2\nB,0,3,1\n");
  CHECK_REFUSED(nan, NULL, nan, "is NaN");
  const char *frac = write_text("frac.csv", "gene,c1,c2,c3\nA,1,0,2.5\nB,0,3,1\n");
  CHECK_REFUSED(frac, NULL, frac, "is not an integer (use --allow-noninteger");
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.allow_noninteger = 1;
  CHECK_MSG(open_and_stream(frac, &options) == 0, "%s", err);
  CHECK_REFUSED(negative, &options, negative, "is negative");
  const char *words = write_text("words.csv", "gene,c1,c2,c3\nA,1,zero,2\nB,0,3,1\n");
  CHECK_REFUSED(words, NULL, words, "'zero' is not a number");
  /* MTX: negative entry, and the error surfaces while streaming chunks */
  CHECK(test_sh("mkdir -p '%s/negmtx' && cp " FIX "mtx_v2/*.tsv '%s/negmtx/' && sed "
                "'s/^5 5 1000$/5 5 -1000/' " FIX "mtx_v2/matrix.mtx > '%s/negmtx/matrix.mtx'",
                test_tmp_dir(), test_tmp_dir(), test_tmp_dir()) == 0);
  const char *negmtx = tmp_file("negmtx");
  err[0] = '\0';
  rctd_input *input = rctd_input_open(negmtx, NULL, err, sizeof err);
  CHECK_MSG(input, "%s", err);
  rctd_csr_chunk chunk;
  rctd_csr_chunk_init(&chunk);
  int rc;
  while ((rc = rctd_input_next_chunk(input, 2, &chunk, err, sizeof err)) == 1) continue;
  rctd_csr_chunk_free(&chunk);
  rctd_input_close(input);
  CHECK(rc == -1 && strstr(err, "count -1000 for barcode 'ACGT-1', gene 'GeneE' is negative"));
}

TEST(input_bad_duplicated_names) {
  const char *genes = write_text("dupgenes.csv", "gene,c1,c2,c3\nA,1,0,2\nB,0,3,1\nA,1,1,1\n");
  CHECK_REFUSED(genes, NULL, genes, "gene name 'A' appears more than once");
  const char *cells = write_text("dupcells.csv", "gene,c1,c2,c1\nA,1,0,2\nB,0,3,1\n");
  CHECK_REFUSED(cells, NULL, cells, "barcode 'c1' appears more than once");
  /* Two names repeated: the smallest in byte order is the one named (genes and barcodes share
   * one duplicate finder, input_strings_find_duplicate). */
  const char *two = write_text("duptwo.csv",
                               "gene,z9,c2,z9,a1,a1\nZ,1,0,2,1,1\nB,0,3,1,1,1\nZ,1,1,1,1,1\n"
                               "B,1,1,1,1,1\n");
  CHECK_REFUSED(two, NULL, two, "gene name 'B' appears more than once");
  const char *cells2 =
      write_text("duptwocells.csv", "gene,z9,c2,z9,a1,a1\nZ,1,0,2,1,1\nB,0,3,1,1,1\n");
  CHECK_REFUSED(cells2, NULL, cells2, "barcode 'a1' appears more than once");
}

TEST(input_bad_cell_types) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.cell_types = RCTD_CELL_TYPES_REQUIRED;
  options.cell_type_col = "celltype";
  CHECK_REFUSED(FIX "csr.h5ad", &options, FIX "csr.h5ad",
                "obs has no cell type column 'celltype' (columns: cell_type, cluster, nUMI)");
  /* a side table without the column */
  options.cell_type_table = FIX "meta.csv";
  CHECK_REFUSED(FIX "counts.csv", &options, FIX "meta.csv",
                "no column 'celltype' (columns: cluster, nUMI): name it with --cell-type-col");
  /* no cell type at all for a 10x matrix */
  options.cell_type_table = NULL;
  CHECK_REFUSED(FIX "tenx_v3.h5", &options, FIX "tenx_v3.h5", "no cell type column");
  /* one cell type */
  const char *counts = write_text("one.csv", "gene,c1,c2,c3\nA,1,0,2\nB,0,3,1\n");
  const char *types = write_text("one_types.csv", "barcode,cell_type\nc1,T\nc2,T\nc3,T\n");
  options.cell_type_col = NULL;
  options.cell_type_table = types;
  CHECK_REFUSED(counts, &options, counts, "1 cell type: a reference needs at least 2");
  /* labels for none of the barcodes */
  const char *other = write_text("other_types.csv", "barcode,cell_type\nx1,T\nx2,B\n");
  options.cell_type_table = other;
  CHECK_REFUSED(counts, &options, other, "no barcode of the table is in the matrix");
  /* without REQUIRED, a spatial file needs no labels */
  options.cell_types = RCTD_CELL_TYPES_OPTIONAL;
  options.cell_type_table = NULL;
  CHECK_MSG(open_and_stream(counts, &options) == 0, "%s", err);
}

TEST(input_bad_numi_column) {
  rctd_input_options options;
  rctd_input_options_init(&options);
  options.numi_col = "n_counts";
  CHECK_REFUSED(FIX "csr.h5ad", &options, FIX "csr.h5ad", "obs has no nUMI column 'n_counts'");
  options.numi_col = "cell_type";
  CHECK_REFUSED(FIX "csr.h5ad", &options, FIX "csr.h5ad", "is not a numeric column");
  options.numi_col = "nUMI";
  CHECK_REFUSED(FIX "tenx_v3.h5", &options, FIX "tenx_v3.h5", "give a nUMI table too");
  const char *bad = write_text("numi.csv", "barcode,nUMI\nAAAC-1,-5\nAAAG-1,7\nAACT-1,7\n"
                                          "AAGG-1,7\nACGT-1,7\nAGGA-1,7\n");
  options.numi_table = bad;
  CHECK_REFUSED(FIX "tenx_v3.h5", &options, FIX "tenx_v3.h5",
                "nUMI -5 of barcode 'AAAC-1' is negative");
  /* A barcode without a line in the table: the table is named, not the matrix. */
  const char *partial = write_text("numi_part.csv", "barcode,nUMI\nAAAC-1,5\nAAAG-1,7\n");
  options.numi_table = partial;
  CHECK_REFUSED(FIX "tenx_v3.h5", &options, partial,
                "barcode 'AACT-1' of " FIX "tenx_v3.h5 has no line in this table (2 of 6 have "
                "one): give every barcode its nUMI");
}

TEST(input_bad_empty_and_ragged) {
  const char *header_only = write_text("header.csv", counts_header);
  CHECK_REFUSED(header_only, NULL, header_only, "the matrix is empty (3 rows x 0 genes)");
  const char *nothing = write_text("nothing.csv", "");
  CHECK_REFUSED(nothing, NULL, nothing, "the file is empty");
  const char *ragged = write_text("ragged.csv", "gene,c1,c2,c3\nA,1,0,2\nB,0,3\n");
  CHECK_REFUSED(ragged, NULL, ragged, "line 3 has 3 fields, expected 4");
  /* an MTX whose entries stop early */
  CHECK(test_sh("mkdir -p '%s/short' && cp " FIX "mtx_v2/*.tsv '%s/short/' && head -n 8 " FIX
                "mtx_v2/matrix.mtx > '%s/short/matrix.mtx'",
                test_tmp_dir(), test_tmp_dir(), test_tmp_dir()) == 0);
  const char *short_mtx = tmp_file("short/matrix.mtx");
  CHECK_REFUSED(short_mtx, NULL, short_mtx, "the file is truncated");
  /* an h5ad with zero cells */
  CHECK_REFUSED(FIX "empty.h5ad", NULL, FIX "empty.h5ad", "the matrix is empty (0 rows x 3 genes)");
}

/* OPTIONS refuse PATH with WHAT within 5 s, in a child (a regression that opens a FIFO nobody
 * writes to waits there: SIGALRM then ends the child). */
static int refused_in_time(const char *path, const rctd_input_options *options, const char *what) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(5);
    _exit(open_and_stream(path, options) == -1 && says(path, what) ? 0 : 1);
  }
  int status;
  return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

/* Counts that come through a pipe: '-' is refused with what to do (not "No such file"), an HDF5
 * file through a pipe is not called corrupt, and a pipe whose format cannot be seen from its
 * name is told to give --format; a FIFO with no writer is never opened (that waits forever). */
TEST(input_bad_pipes) {
  CHECK_REFUSED("-", NULL, "-", "give the file");
  const char *fifo = tmp_file("counts-fifo");
  unlink(fifo);
  CHECK(test_sh("mkfifo '%s'", fifo) == 0);
  rctd_input_options h5;
  rctd_input_options_init(&h5);
  h5.format = RCTD_INPUT_H5AD;
  CHECK(refused_in_time(fifo, &h5, "HDF5 files are read in place"));
  CHECK(refused_in_time(fifo, NULL, "--format csv"));
  const char *h5ad_fifo = tmp_file("counts-fifo.h5ad"); /* a name that says HDF5 */
  unlink(h5ad_fifo);
  CHECK(test_sh("mkfifo '%s'", h5ad_fifo) == 0);
  CHECK(refused_in_time(h5ad_fifo, NULL, "--format csv"));
  unlink(fifo);
  unlink(h5ad_fifo);
}
