/* Hostile use of the binaries (issue 15): outputs that are not regular files, write errors,
 * damaged inputs, tampered streams, interrupted runs.  Each case checks the exit status, the
 * exact message and that no output was left behind. */
#include <fnmatch.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static char hs_dir[PATH_MAX], hs_bin[PATH_MAX], hs_repo[PATH_MAX];
static int hs_ready = -1;

static int hs_setup(void) {
  if (hs_ready >= 0) return hs_ready;
  snprintf(hs_dir, sizeof hs_dir, "%s/hostile", test_tmp_dir());
  hs_ready = realpath(test_bin_dir(), hs_bin) && realpath(".", hs_repo) &&
             test_sh("mkdir -p '%s/cache'", hs_dir) == 0;
  return hs_ready;
}

/* A command in hs_dir with the binaries on PATH, a private table cache, REF and SP naming the
 * vignette's inputs and BAD the damaged fixtures; stderr to err.txt.  Returns the exit status
 * (128 + N for signal N). */
#define HS_SH(fmt, ...)                                                                      \
  test_sh(                                                                                   \
      "cd '%s' && PATH='%s':$PATH && XDG_CACHE_HOME='%s/cache' && export XDG_CACHE_HOME && " \
      "REF='%s/data/vignette/h5ad/reference.h5ad' SP='%s/data/vignette/h5ad/spatial.h5ad' "  \
      "BAD='%s/tests/data/bad-inputs' && (" fmt ") 2> err.txt",                              \
      hs_dir, hs_bin, hs_dir, hs_repo, hs_repo, hs_repo, ##__VA_ARGS__)

/* The reference stream of the vignette (REF.rctd in hs_dir). */
#define HS_REF_STREAM                                                              \
  "{ test -s REF.rctd || rctd-reference \"$REF\" --numi-col nUMI --cell-type-col " \
  "cell_type_name -q -o REF.rctd; }"
#define HS_RUN                                                               \
  "rctd run --reference \"$REF\" --reference-numi-col nUMI --cell-type-col " \
  "cell_type_name --spatial \"$SP\" -q"

/* File NAME of hs_dir is exactly TEXT. */
static int hs_file_is(const char *name, const char *text) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", hs_dir, name);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  static char got[8192];
  size_t n = fread(got, 1, sizeof got - 1, f);
  fclose(f);
  got[n] = 0;
  if (strcmp(got, text) == 0) return 1;
  fprintf(stderr, "  %s was:\n%s  expected:\n%s", name, got, text);
  return 0;
}

/* err.txt (the command's stderr) is exactly TEXT. */
static int hs_err_is(const char *text) {
  return hs_file_is("err.txt", text);
}

/* ------------------------------------------------------------------ outputs */

TEST_E2E(hostile_fifo_and_fd_outputs_written_in_place) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM) == 0);
  /* A FIFO stays a FIFO and its reader gets the bytes a regular file would hold. */
  CHECK(HS_SH("rm -f fifo && mkfifo fifo && { cat fifo > from_fifo.tsv & } && "
              "rctd-view REF.rctd -o fifo && wait && rctd-view REF.rctd -o regular.tsv && "
              "test -p fifo && cmp from_fifo.tsv regular.tsv && test -s regular.tsv") == 0);
  /* /proc/self/fd/1 and a link to it: written to the descriptor, the link kept. */
  CHECK(HS_SH("rctd-view REF.rctd -o /proc/self/fd/1 > from_fd.tsv && cmp from_fd.tsv "
              "regular.tsv && rm -f fdlink && ln -s /proc/self/fd/1 fdlink && rctd-view REF.rctd "
              "-o fdlink > from_link.tsv && test -L fdlink && cmp from_link.tsv regular.tsv") == 0);
  /* A link to a regular file: the file is replaced, the link kept. */
  CHECK(HS_SH("echo old > target.tsv && rm -f link.tsv && ln -s target.tsv link.tsv && "
              "rctd-view REF.rctd -o link.tsv && test -L link.tsv && cmp target.tsv "
              "regular.tsv") == 0);
  CHECK(hs_err_is(""));
}

TEST_E2E(hostile_h5ad_into_a_fifo) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_RUN " --no-summary -o run.h5ad") == 0);
  CHECK(HS_SH("rm -f fifo5 && mkfifo fifo5 && { cat fifo5 > from_fifo.h5ad & } && " HS_RUN
              " --no-summary -o fifo5 && wait && test -p fifo5 && cmp from_fifo.h5ad run.h5ad") ==
        0);
  CHECK(hs_err_is(""));
}

TEST_E2E(hostile_write_errors_fail_and_leave_nothing) {
  CHECK(hs_setup());
  CHECK(HS_SH("rctd-reference --help > /dev/full") == 1);
  CHECK(hs_err_is("rctd-reference: stdout: write failed: No space left on device\n"));
  CHECK(HS_SH("rctd-view --version > /dev/full") == 1);
  CHECK(hs_err_is("rctd-view: stdout: write failed: No space left on device\n"));
  CHECK(HS_SH("rctd --version > /dev/full") == 1);
  CHECK(hs_err_is("rctd: stdout: write failed: No space left on device\n"));
  /* The summary on a full stdout: the run fails and its h5ad does not appear. */
  CHECK(HS_SH("rm -f full.h5ad; " HS_RUN " -o full.h5ad > /dev/full") == 1);
  CHECK(
      hs_err_is("rctd-merge: stdout: write failed: No space left on device; the output is "
                "incomplete\n"
                "rctd run: merge failed (exit status 1); the pipeline stopped, no output was "
                "written\n"));
  CHECK(HS_SH("test ! -e full.h5ad && test -z \"$(ls -A | grep tmp)\"") == 0);
  /* The JSON summary that rctd run itself writes last: the h5ad is taken back. */
  CHECK(HS_SH("rm -f j.h5ad; " HS_RUN " --no-summary -o j.h5ad --json /dev/full") == 1);
  CHECK(
      hs_err_is("rctd run: /dev/full: write failed: No space left on device; the output is "
                "incomplete\n"));
  CHECK(HS_SH("test ! -e j.h5ad") == 0);
  CHECK(HS_SH(HS_REF_STREAM " && rctd-view REF.rctd -o /dev/full") == 1);
  CHECK(
      hs_err_is("rctd-view: /dev/full: write failed: No space left on device; the output is "
                "incomplete\n"));
}

TEST_E2E(hostile_output_path_messages) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_RUN " -o ''") == 2);
  CHECK(
      hs_err_is("rctd run: option -o: the path is empty: give a file name, or - for standard "
                "output\nTry 'rctd run --help' for more information.\n"));
  CHECK(HS_SH("mkdir -p adir && " HS_REF_STREAM " && rctd-view REF.rctd -o adir/") == 1);
  CHECK(hs_err_is("rctd-view: adir/: output is a directory: give a file name\n"));
  CHECK(HS_SH("touch afile && " HS_RUN " --keep-intermediates afile -o x.h5ad") == 1);
  CHECK(
      hs_err_is("rctd run: --keep-intermediates afile: exists and is not a directory: give a "
                "directory (it is created when missing)\n"));
}

/* ------------------------------------------------------------------ damaged HDF5 */

/* AddressSanitizer intercepts libhdf5's memcpy and free and reports the damage itself before
 * the crash the guard turns into a line: these cases run in the plain build only. */
#if defined(__SANITIZE_ADDRESS__)
#define HS_UNDER_ASAN 1
#else
#define HS_UNDER_ASAN 0
#endif

/* glibc's own line before an abort ("free(): invalid pointer", "*** stack smashing detected
 * ***: terminated") may precede ours: it is printed by the C library, not by rctd. */
static int hs_glibc_line(const char *line) {
  return strstr(line, "free()") || strstr(line, "stack smashing") || strstr(line, "malloc") ||
         strstr(line, "corrupted");
}

/* Every damaged HDF5 file of tests/data/bad-inputs (hdf5.tar.xz: files that caused SIGSEGV,
 * SIGABRT and minute-long hangs inside libhdf5) ends with exactly the line recorded in
 * hdf5.expected, exit status 1, no output file, within the time limit.  A '*' in a recorded
 * line (fnmatch) stands for numbers that libhdf5 reads from outside the file (README.md). */
TEST_E2E(hostile_damaged_hdf5_one_line_each) {
  if (HS_UNDER_ASAN) return;
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM " && rm -rf bad && mkdir bad && cd bad && tar xJf "
                            "\"$BAD/hdf5.tar.xz\" && cp ../REF.rctd .") == 0);
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/tests/data/bad-inputs/hdf5.expected", hs_repo);
  FILE *f = fopen(path, "r");
  CHECK(f);
  char line[2048];
  int n = 0, bad = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *file = strtok(line, "\t"), *kind = strtok(NULL, "\t"), *status = strtok(NULL, "\t");
    char *expect = strtok(NULL, "");
    if (!file || !kind || !status || !expect) continue;
    n++;
    const char *cmd = strcmp(kind, "reference") == 0
                          ? "rctd-reference %s --numi-col nUMI --cell-type-col cell_type_name "
                            "-q -o out.rctd"
                          : "rctd-normalize %s REF.rctd -q -o out.rctd";
    char full[1024];
    snprintf(full, sizeof full, cmd, file);
    int rc = HS_SH(
        "cd bad && RCTD_HDF5_TIMEOUT=1 timeout 20 %s 2> ../err.txt; s=$?; test ! -e "
        "out.rctd && test -z \"$(ls -A | grep tmp)\" && exit $s",
        full);
    char err_path[PATH_MAX + 16], got[4096] = "", last[sizeof got] = "";
    snprintf(err_path, sizeof err_path, "%s/err.txt", hs_dir);
    FILE *e = fopen(err_path, "r");
    int lines = 0, foreign = 0;
    while (e && fgets(got, sizeof got, e)) {
      got[strcspn(got, "\n")] = 0;
      if (lines++ > 0 || !hs_glibc_line(got)) snprintf(last, sizeof last, "%s", got);
      if (lines > 1 && hs_glibc_line(last)) foreign = 1;
    }
    if (e) fclose(e);
    if (rc != atoi(status) || fnmatch(expect, last, 0) != 0 || lines > 2 || foreign) {
      fprintf(stderr, "  %s: exit %d (want %s), %d lines, last: %s\n  want: %s\n", file, rc, status,
              lines, last, expect);
      bad++;
    }
  }
  fclose(f);
  CHECK_MSG(bad == 0, "%d of %d damaged HDF5 files not handled as recorded", bad, n);
  CHECK(n >= 60);
}

/* rctd validate and rctd-merge --spatial read the same files under the same guard. */
TEST_E2E(hostile_damaged_hdf5_validate_and_merge) {
  if (HS_UNDER_ASAN) return;
  CHECK(hs_setup());
  CHECK(HS_SH("test -e bad/segv_sp.h5ad || { mkdir -p bad && cd bad && tar xJf "
              "\"$BAD/hdf5.tar.xz\"; }") == 0);
  CHECK(HS_SH("RCTD_HDF5_TIMEOUT=1 rctd validate --reference \"$REF\" --reference-numi-col nUMI "
              "--cell-type-col cell_type_name --spatial bad/hang_sp.h5ad > validate.out") == 1);
  CHECK(
      hs_err_is("rctd validate: bad/hang_sp.h5ad: damaged HDF5 file: the HDF5 library made no "
                "progress reading it for 1 s; check it with h5dump, or copy or export it "
                "again\n"));
  CHECK(HS_SH("rctd validate --reference bad/segv_ref.h5ad --reference-numi-col nUMI "
              "--cell-type-col cell_type_name --spatial \"$SP\" > validate.out") == 1);
  CHECK(
      hs_err_is("rctd validate: bad/segv_ref.h5ad: damaged HDF5 file: the HDF5 library crashed "
                "reading it (segmentation fault); check it with h5dump, or copy or export it "
                "again\n"));
  CHECK(HS_SH("test -s kept/4-fit.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  CHECK(HS_SH("rctd-merge --spatial bad/segv_sp.h5ad -q -o m.h5ad kept/4-fit.rctd") == 1);
  CHECK(
      hs_err_is("rctd-merge: bad/segv_sp.h5ad: damaged HDF5 file: the HDF5 library crashed "
                "reading it (segmentation fault); check it with h5dump, or copy or export it "
                "again\n"));
  CHECK(HS_SH("test ! -e m.h5ad && test -z \"$(ls -A | grep tmp)\"") == 0);
  /* Without -o, merge only probes the spatial file's layout: under the guard too. */
  CHECK(HS_SH("rctd-merge --spatial bad/segv_sp.h5ad -q --json - kept/4-fit.rctd > m.json") == 1);
  CHECK(
      hs_err_is("rctd-merge: bad/segv_sp.h5ad: damaged HDF5 file: the HDF5 library crashed "
                "reading it (segmentation fault); check it with h5dump, or copy or export it "
                "again\n"));
}

/* ------------------------------------------------------------------ integrity */

/* Tampered streams of tests/data/bad-inputs: each refused with the line that names the damage,
 * and no output. */
TEST_E2E(hostile_tampered_streams_refused) {
  CHECK(hs_setup());
  CHECK(HS_SH("cp \"$BAD\"/*.rctd . && rctd-merge --spatial \"$SP\" -q -o t1.h5ad "
              "fit_profiles_flipped.rctd") == 1);
  CHECK(
      hs_err_is("rctd-merge: fit_profiles_flipped.rctd: record 'model.profiles': chunk 1: "
                "corrupted data (zstd: Restored data doesn't match checksum)\n"));
  CHECK(HS_SH("rctd-merge --spatial \"$SP\" -q -o t2.h5ad fit_first_type_2e31.rctd") == 1);
  CHECK(
      hs_err_is("rctd-merge: fit_first_type_2e31.rctd: pixel 0 (TTGGACGTTTCAAT): first type "
                "2147483647 is outside [0, 19): the stream is damaged or was altered\n"));
  CHECK(HS_SH("rctd-fit-doublet sigma_qtable_scaled.rctd -q -o t3.rctd") == 1);
  CHECK(
      hs_err_is("rctd-fit-doublet: sigma_qtable_scaled.rctd: likelihood table data fail their "
                "crc32 (the stream was altered): rerun rctd-sigma\n"));
  CHECK(HS_SH("rctd-fit-doublet sigma_dup_typename.rctd -q -o t4.rctd") == 1);
  CHECK(
      hs_err_is("rctd-fit-doublet: sigma_dup_typename.rctd: record 'model.type_names': cell "
                "type name 'Astrocytes' appears twice: cell type names must be unique\n"));
  CHECK(HS_SH("test ! -e t1.h5ad && test ! -e t2.h5ad && test ! -e t3.rctd && test ! -e t4.rctd "
              "&& test -z \"$(ls -A | grep tmp)\"") == 0);
}

/* Flips one bit of byte OFFSET after the first chunk block of FILE in hs_dir.  0 or -1. */
static int hs_flip_after_first_chunk(const char *file, size_t offset) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", hs_dir, file);
  FILE *f = fopen(path, "r+b");
  if (!f) return -1;
  static unsigned char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f);
  int rc = -1;
  for (size_t i = 0; i + 4 + offset < n && rc != 0; i++)
    if (memcmp(buf + i, "CHNK", 4) == 0) {
      buf[i + offset] ^= 0x40;
      rc = fseek(f, (long)(i + offset), SEEK_SET) == 0 && fputc(buf[i + offset], f) != EOF ? 0 : -1;
    }
  fclose(f);
  return rc;
}

/* A flipped byte in a chunk a stage only skips is found there: rctd-view RECORD skips the
 * records before RECORD, the first of which (reference.meta) is damaged inside its zstd frame
 * (32-byte block header, then 20 bytes in). */
TEST_E2E(hostile_skipped_chunks_are_verified) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM " && cp REF.rctd flip.rctd") == 0);
  CHECK(hs_flip_after_first_chunk("flip.rctd", 32 + 20) == 0);
  CHECK(HS_SH("rctd-view flip.rctd reference.profiles > /dev/null") == 1);
  CHECK(
      hs_err_is("rctd-view: flip.rctd: record 'reference.meta': chunk 1: corrupted data (zstd: "
                "Restored data doesn't match checksum)\n"));
}

/* An MTX entry line without its value is an error, not a dropped entry. */
TEST_E2E(hostile_mtx_entry_without_value) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM) == 0);
  CHECK(HS_SH("rm -rf novalue && mkdir novalue && cp '%s/tests/data/input/mtx_v2/'*.tsv novalue/ "
              "&& sed 's/^1 3 4$/1 3/' '%s/tests/data/input/mtx_v2/matrix.mtx' > "
              "novalue/matrix.mtx && rctd-normalize novalue REF.rctd -q -o nv.rctd",
              hs_repo, hs_repo) == 1);
  CHECK(
      hs_err_is("rctd-normalize: novalue/matrix.mtx: line 4 is not 'row col value' within 5 x "
                "6: the file is corrupt\n"));
}

/* An h5ad whose categorical cell types list a name twice (anndata cannot read that back):
 * categories of tests/data/input/csr.h5ad rewritten to gamma, beta, gamma. */
TEST_E2E(hostile_h5ad_duplicate_categories) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM " && cp '%s/tests/data/input/csr.h5ad' dupcat.h5ad", hs_repo) == 0);
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/dupcat.h5ad", hs_dir);
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  CHECK(file >= 0);
  hid_t dset = H5Dopen2(file, "obs/cell_type/categories", H5P_DEFAULT);
  hid_t type = H5Dget_type(dset);
  const char *names[3] = {"gamma", "beta", "gamma"};
  herr_t rc = H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, names);
  H5Tclose(type);
  H5Dclose(dset);
  H5Fclose(file);
  CHECK(rc >= 0);
  CHECK(HS_SH("rctd-reference dupcat.h5ad -q -o dup.rctd") == 1);
  CHECK(
      hs_err_is("rctd-reference: dupcat.h5ad: cell type 'gamma' appears twice among the "
                "categories: cell type names must be unique\n"));
  CHECK(HS_SH("rctd validate --reference dupcat.h5ad --spatial \"$SP\" > v.out") == 1);
  CHECK(HS_SH("grep -qx \"PROBLEM: reference: dupcat.h5ad: cell type 'gamma' appears twice among "
              "the categories: cell type names must be unique\" v.out") == 0);
}

/* ------------------------------------------------------------------ processes */

/* The spatial input is a FIFO nobody writes, given as a piped CSV table (a FIFO of unknown format
 * is refused at once): rctd-normalize (and rctd-merge) wait on it, so the run is still going
 * when it is killed. */
#define HS_RUN_STUCK                                                                             \
  "rm -f stuck.fifo && mkfifo stuck.fifo && rctd run --reference \"$REF\" --reference-numi-col " \
  "nUMI --cell-type-col cell_type_name --spatial \"$PWD/stuck.fifo\" --spatial-format csv -q "   \
  "-o stuck.h5ad"

/* Waits (20 s at most) until COND holds, polling every 0.1 s: a loaded or sanitizer machine
 * starts the stages later than a fixed sleep would allow. */
#define HS_WAIT_FOR(cond) "for i in $(seq 200); do " cond " && break; sleep 0.1; done; "
#define HS_STAGES "$(pgrep -f \"$PWD/stuck.fifo\" | wc -l)"

#define HS_STAGES_UP HS_WAIT_FOR("test " HS_STAGES " -ge 2")
#define HS_STAGES_GONE HS_WAIT_FOR("test " HS_STAGES " -eq 0")

TEST_E2E(hostile_stages_die_with_rctd_run) {
  CHECK(hs_setup());
  /* SIGKILL of the parent alone: the stages get SIGTERM from the kernel and leave nothing. */
  CHECK(HS_SH("{ " HS_RUN_STUCK " 2> run.err & } ; p=$!; " HS_STAGES_UP "n=" HS_STAGES
              "; kill -9 $p; " HS_STAGES_GONE "test \"$n\" -ge 2 && test " HS_STAGES
              " -eq 0 && test ! -e stuck.h5ad && test -z \"$(ls -A | grep tmp)\"") == 0);
  /* SIGTERM (or Ctrl-C): one line saying so, the signal's exit status, no output. */
  /* (rctd run's stderr to its own file: the shell may report the signal on its own.) */
  CHECK(HS_SH("{ " HS_RUN_STUCK " 2> stuck.err & } ; p=$!; " HS_STAGES_UP
              "kill -TERM $p; wait $p") == 128 + 15);
  CHECK(hs_file_is("stuck.err",
                   "rctd run: interrupted (Terminated): the pipeline stopped, no "
                   "output was written\n"));
  CHECK(HS_SH(HS_STAGES_GONE "test " HS_STAGES " -eq 0 && test ! -e stuck.h5ad") == 0);
}

/* A YAML null or a key given twice is refused alike by rctd run and by the stage; a bad value
 * reaching rctd run from the file names the file and line, not a command-line option. */
TEST_E2E(hostile_yaml_null_duplicate_and_bad_value) {
  CHECK(hs_setup());
  CHECK(HS_SH("printf 'UMI_min:\\n' > null.yaml && " HS_RUN " -o y.h5ad --config null.yaml") == 2);
  CHECK(
      hs_err_is("rctd run: null.yaml: line 1: key 'UMI_min' has no value: give one, or remove "
                "the line to keep the default\n"));
  CHECK(HS_SH(HS_REF_STREAM " && rctd-normalize --config null.yaml \"$SP\" REF.rctd -q -o "
                            "y.rctd") == 2);
  CHECK(
      hs_err_is("rctd-normalize: null.yaml: line 1: key 'UMI_min' has no value: give one, or "
                "remove the line to keep the default\n"));
  CHECK(HS_SH("printf 'UMI_min: 10\\nUMI_min: 20\\n' > twice.yaml && " HS_RUN
              " -o y.h5ad --config twice.yaml") == 2);
  CHECK(
      hs_err_is("rctd run: twice.yaml: line 2: key 'UMI_min' is given twice (also on line 1): "
                "keep one\n"));
  CHECK(HS_SH("printf 'doublet_mode: full\\nUMI_min: lots\\n' > bad.yaml && " HS_RUN
              " -o y.h5ad --config bad.yaml") == 2);
  CHECK(hs_err_is("rctd run: bad.yaml: line 2: key 'UMI_min': invalid number 'lots'\n"));
  CHECK(HS_SH("test ! -e y.h5ad && test ! -e y.rctd") == 0);
}

/* ------------------------------------------------------------------ messages */

#define HS_CSV "V=\"$(dirname \"$(dirname \"$REF\")\")/csv\"; "

/* Each message names the real cause and the real file. */
TEST_E2E(hostile_messages_name_the_cause) {
  CHECK(hs_setup());
  CHECK(HS_SH("test -s kept/4-fit.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  /* A result stream given to rctd-sigma, as a file and through a pipe. */
  CHECK(HS_SH("rctd-sigma kept/4-fit.rctd -q -o s.rctd") == 1);
  CHECK(
      hs_err_is("rctd-sigma: kept/4-fit.rctd: a result stream of rctd-fit-*, not a model stream "
                "with pixels: give the stream written by rctd-normalize (or rctd-sigma)\n"));
  CHECK(HS_SH("rctd-sigma - -q -o s.rctd < kept/4-fit.rctd") == 1);
  CHECK(
      hs_err_is("rctd-sigma: stdin: a result stream of rctd-fit-*, not a model stream with "
                "pixels: give the stream written by rctd-normalize (or rctd-sigma)\n"));
  /* A piped input and a temporary directory that does not exist. */
  CHECK(HS_SH("rctd-sigma - --tmp-dir /nonexistent/dir -q -o s.rctd < kept/2-model.rctd") == 1);
  CHECK(
      hs_err_is("rctd-sigma: /nonexistent/dir: cannot write the temporary copy of the piped "
                "input there (No such file or directory): give --tmp-dir a writable "
                "directory\n"));
  CHECK(HS_SH("test ! -e s.rctd") == 0);
  /* One pixel: every gene name matches, but few genes reach MIN_OBS. */
  CHECK(HS_SH(HS_REF_STREAM " && " HS_CSV "cut -d, -f1-2 \"$V/spatial/MappedDGEForR.csv\" > "
                            "one.csv && rctd-normalize one.csv REF.rctd -q -o one.rctd") == 1);
  CHECK(
      hs_err_is("rctd-normalize: one.csv: only 12 of the 378 genes shared with the reference "
                "are observed at least MIN_OBS = 3 times in the spatial data, fewer than 10% "
                "of 378: too few pixels or counts; give more pixels or lower --min-obs\n"));
  /* A ';'-separated counts table, and a ';'-separated side table. */
  CHECK(HS_SH(HS_CSV "sed 's/,/;/g' \"$V/spatial/MappedDGEForR.csv\" > semi.csv && "
                     "rctd-normalize semi.csv REF.rctd -q -o x.rctd") == 1);
  CHECK(
      hs_err_is("rctd-normalize: semi.csv: the header has no comma or tab but has ';': the "
                "table seems separated by ';'; give a comma- or tab-separated table (R: "
                "write.csv)\n"));
  CHECK(HS_SH(HS_CSV
              "sed 's/,/;/g' \"$V/spatial/BeadLocationsForR.csv\" > semi_xy.csv && "
              "cp \"$V/spatial/MappedDGEForR.csv\" dge.csv && rctd-normalize dge.csv REF.rctd "
              "--coords-table semi_xy.csv -q -o x.rctd") == 1);
  CHECK(
      hs_err_is("rctd-normalize: semi_xy.csv: the header has no comma or tab but has ';': the "
                "table seems separated by ';'; give a comma- or tab-separated table (R: "
                "write.csv)\n"));
  /* Coordinates for half the pixels: the coordinates table is named. */
  CHECK(HS_SH(HS_CSV
              "head -n 51 \"$V/spatial/BeadLocationsForR.csv\" > half_xy.csv && "
              "rctd-normalize dge.csv REF.rctd --coords-table half_xy.csv -q -o x.rctd") == 1);
  CHECK(
      hs_err_is("rctd-normalize: half_xy.csv: barcode 'CTTGCACCTAGAAC' of dge.csv has no line "
                "in this table (50 of 100 have one): give every barcode its x and y\n"));
  /* A cell missing from meta_data.csv used as the nUMI table. */
  CHECK(HS_SH(HS_CSV "cp \"$V/reference/dge.csv\" ref_dge.csv && sed 2d "
                     "\"$V/reference/meta_data.csv\" > meta.csv && rctd-reference ref_dge.csv "
                     "--cell-type-table meta.csv --cell-type-col cluster --numi-table meta.csv "
                     "--numi-col nUMI -q -o r.rctd") == 1);
  CHECK(
      hs_err_is("rctd-reference: meta.csv: barcode 'Ib_M001_ATGCATGGTATCGTAC' of ref_dge.csv "
                "has no line in this table (474 of 475 have one): give every barcode its "
                "nUMI\n"));
  CHECK(HS_SH("test ! -e x.rctd && test ! -e r.rctd && test ! -e one.rctd") == 0);
}

/* A stage failing inside rctd run: its line, then rctd run's, and no follow-on line from the
 * stages after it about their cut input. */
TEST_E2E(hostile_run_reports_the_first_failure_only) {
  if (HS_UNDER_ASAN) return;
  CHECK(hs_setup());
  CHECK(HS_SH("test -e bad/segv_sp.h5ad || { mkdir -p bad && cd bad && tar xJf "
              "\"$BAD/hdf5.tar.xz\"; }") == 0);
  CHECK(HS_SH("rctd run --reference \"$REF\" --reference-numi-col nUMI --cell-type-col "
              "cell_type_name --spatial bad/segv_sp.h5ad -q -o f.h5ad") == 1);
  CHECK(
      hs_err_is("rctd-normalize: bad/segv_sp.h5ad: damaged HDF5 file: the HDF5 library crashed "
                "reading it (segmentation fault); check it with h5dump, or copy or export it "
                "again\n"
                "rctd run: normalize failed (exit status 1); the pipeline stopped, no output "
                "was written\n"));
  CHECK(HS_SH("test ! -e f.h5ad") == 0);
}

/* A file size limit (ulimit -f: a quota, a full disk alike): the write fails with one line
 * naming the file, exit status 1 and nothing left behind, whether it hits the temporary file
 * of pixels or the output (not SIGXFSZ's silent death with the temporary output left). */
TEST_E2E(hostile_file_size_limit) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM " && rm -rf fsz && mkdir fsz") == 0);
  /* (dash counts ulimit -f in blocks of 512 bytes) */
  CHECK(HS_SH("ulimit -f 5 && rctd-normalize \"$SP\" REF.rctd -q --tmp-dir fsz -o fsz/m.rctd") ==
        1);
  CHECK(
      hs_err_is("rctd-normalize: fsz: the temporary file of pixels: record 'pixels.counts': "
                "write failed: File too large: free some space or give another directory with "
                "--tmp-dir\n"));
  CHECK(HS_SH("test -z \"$(ls -A fsz)\"") == 0);
  CHECK(HS_SH("ulimit -f 200 && rctd-normalize \"$SP\" REF.rctd -q --tmp-dir fsz -o fsz/m.rctd") ==
        1);
  CHECK(hs_err_is("rctd-normalize: fsz/m.rctd: write failed: File too large\n"));
  CHECK(HS_SH("test -z \"$(ls -A fsz)\"") == 0);
  /* an h5ad: libhdf5 fails the write when a dataset is closed (not a crash in its teardown at
   * exit with an empty message) */
  CHECK(HS_SH("test -s kept/4-fit.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  CHECK(HS_SH("ulimit -f 40 && rctd-merge -q -o fsz/m.h5ad kept/4-fit.rctd") == 1);
  CHECK(hs_err_is("rctd-merge: fsz/m.h5ad: cannot finish the h5ad file: File too large\n"));
  CHECK(HS_SH("test -z \"$(ls -A fsz)\"") == 0);
  /* (here the file's own close fails: its reason too, not "HDF5 error") */
  CHECK(HS_SH("ulimit -f 240 && rctd-merge -q -o fsz/m.h5ad kept/4-fit.rctd") == 1);
  CHECK(hs_err_is("rctd-merge: fsz/m.h5ad: cannot finish the h5ad file: File too large\n"));
  CHECK(HS_SH("test -z \"$(ls -A fsz)\"") == 0);
  /* the CSV layout: its directory, made by the run, goes too */
  CHECK(HS_SH("ulimit -f 2 && rctd-merge -q -f csv -o fsz/csv kept/4-fit.rctd") == 1);
  CHECK(HS_SH("test -z \"$(ls -A fsz)\"") == 0);
}

/* A stage failing in the middle of rctd run's pipe: the stage before it then dies of SIGPIPE
 * (its reader is gone) and the stages rctd run stops get SIGTERM; neither is the cause, the
 * failing stage is (here sigma, whose copy of the piped model hits the file size limit). */
TEST_E2E(hostile_run_names_the_failing_stage_not_its_upstream) {
  CHECK(hs_setup());
  CHECK(HS_SH("rm -rf fsz-run && mkdir fsz-run && ulimit -f 40 && TMPDIR=$PWD/fsz-run " HS_RUN
              " -o fsz-run/r.h5ad 2> run.err; s=$?; tail -n 1 run.err > last.txt; exit $s") == 1);
  CHECK(hs_file_is("last.txt",
                   "rctd run: sigma failed (exit status 1); the pipeline stopped, no "
                   "output was written\n"));
  CHECK(HS_SH("test -z \"$(ls -A fsz-run)\"") == 0);
  /* rctd run started with SIGPIPE ignored: its stages get it back (normalize, writing to a sigma
   * that had closed its input, failed with EPIPE instead, and was named).  Here sigma is a
   * script that closes its input, outlives rctd run's SIGTERM and fails. */
  CHECK(HS_SH("rm -rf fakebin && mkdir fakebin && cp '%s/rctd' fakebin/ && for f in '%s'/rctd-*; "
              "do ln -s \"$f\" fakebin/; done && rm fakebin/rctd-sigma && printf '#!/bin/sh\\ntrap "
              "\"\" TERM\\nexec <&-\\nsleep 2\\nexit 1\\n' > fakebin/rctd-sigma && chmod +x "
              "fakebin/rctd-sigma",
              hs_bin, hs_bin) == 0);
  CHECK(HS_SH("trap '' PIPE && fakebin/" HS_RUN " -o fake.h5ad 2> run.err; s=$?; tail -n 1 "
              "run.err > last.txt; exit $s") == 1);
  CHECK(hs_file_is("last.txt",
                   "rctd run: sigma failed (exit status 1); the pipeline stopped, no "
                   "output was written\n"));
}

/* rctd-sigma copies a piped input to --tmp-dir: killed (SIGKILL: an OOM kill, a scheduler's
 * kill -9) while the copy is being written, it leaves nothing there; a full --tmp-dir says
 * so in one line with what to do. */
TEST_E2E(hostile_sigma_spool_leaves_nothing) {
  CHECK(hs_setup());
  CHECK(HS_SH("test -s kept/2-model.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  CHECK(HS_SH("rm -rf spool in.fifo && mkdir spool && mkfifo in.fifo && { rctd-sigma - --tmp-dir "
              "spool -q -o spool.rctd < in.fifo & } && p=$! && exec 3> in.fifo && head -c 60000 "
              "kept/2-model.rctd >&3 && sleep 1 && kill -0 $p && kill -9 $p && exec 3>&- && { wait "
              "$p; test $? = 137; } && test -z \"$(ls -A spool)\" && test ! -e spool.rctd") == 0);
  CHECK(HS_SH("ulimit -f 40 && rctd-sigma - --tmp-dir spool -q -o spool.rctd < "
              "kept/2-model.rctd") == 1);
  CHECK(
      hs_err_is("rctd-sigma: spool: the temporary copy of the piped input: write failed: File "
                "too large: free some space or give --tmp-dir another directory\n"));
  CHECK(HS_SH("test -z \"$(ls -A spool)\" && test ! -e spool.rctd") == 0);
}

/* Whether the binaries (built like this runner) carry a sanitizer, whose runtime needs /proc
 * (for its options, and the leak check for the threads). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HS_SANITIZED 1
#else
#define HS_SANITIZED 0
#endif

/* Without /proc (a chroot, a sandbox; here a mount namespace with an empty /proc) the copy of a
 * piped input cannot be reopened through /proc/self/fd: it is then a named file, removed once
 * read back (was "stdin: cannot open: No such file or directory"). */
TEST_E2E(hostile_sigma_spool_without_proc) {
  CHECK(hs_setup());
  CHECK(HS_SH("test -s kept/3-sigma.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  if (HS_SANITIZED ||
      HS_SH("unshare -m sh -c 'mount -t tmpfs none /proc && test ! -e /proc/self'") != 0) {
    fprintf(stderr, "  (not checked: a sanitizer build, or no mount namespace to hide /proc)\n");
    return;
  }
  CHECK(HS_SH("rm -rf spool-np && mkdir spool-np && unshare -m sh -c 'mount -t tmpfs none /proc "
              "&& exec rctd-sigma - --tmp-dir spool-np -q -o np.rctd' < kept/2-model.rctd") == 0);
  CHECK(HS_SH("test -z \"$(ls -A spool-np)\" && '%s/bench/compare_streams.sh' np.rctd "
              "kept/3-sigma.rctd '%s/rctd-view' > /dev/null",
              hs_repo, hs_bin) == 0);
}

/* An out-of-range count is named for what it is (--n-epoch 2000000 was "must be >= 1"). */
TEST_E2E(hostile_sigma_count_limits_named) {
  CHECK(hs_setup());
  CHECK(HS_SH("rctd-sigma --n-epoch 2000000 -o x.rctd /dev/null") == 2);
  CHECK(
      hs_err_is("rctd-sigma: --n-fit must be >= 1 and --n-epoch 1..1000000\nTry 'rctd-sigma "
                "--help' for more information.\n"));
}

/* Entries that cannot be written each for its own path (here FIFOs in place of two entries of a
 * copy of the warm cache): one warning, not one per table, and the same result.  (A cache
 * directory that is a file: qtable_cache_rebuilds_bad_entries.) */
TEST_E2E(hostile_sigma_unwritable_entries_warn_once) {
  CHECK(hs_setup());
  CHECK(HS_SH("test -s kept/3-sigma.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  CHECK(HS_SH("rm -rf fifo-cache && cp -r cache/rctd fifo-cache && ls fifo-cache | grep "
              "'\\.rctd$' | head -n 2 > two.txt && test \"$(wc -l < two.txt)\" = 2 && for e in "
              "$(cat two.txt); do rm fifo-cache/$e && mkfifo fifo-cache/$e; done && rctd-sigma "
              "kept/2-model.rctd --cache-dir fifo-cache -o fc.rctd 2> fc.err; s=$?; grep warning "
              "fc.err > warn.txt; exit $s") == 0);
  CHECK(HS_SH("test \"$(wc -l < warn.txt)\" = 1 && grep -q 'not a regular file' warn.txt") == 0);
  CHECK(HS_SH("'%s/bench/compare_streams.sh' fc.rctd kept/3-sigma.rctd '%s/rctd-view' > "
              "/dev/null",
              hs_repo, hs_bin) == 0);
}

/* A stream to a full standard output: the write failure, in one line (not followed or preceded
 * by "the output is incomplete", which is for a run that fails after writing some of it). */
TEST_E2E(hostile_stream_to_full_stdout_one_line) {
  CHECK(hs_setup());
  CHECK(HS_SH(HS_REF_STREAM " && rctd-normalize \"$SP\" REF.rctd -q > /dev/full") == 1);
  CHECK(
      hs_err_is("rctd-normalize: stdout: record 'model.genes_bulk': write failed: No space left "
                "on device\n"));
  CHECK(HS_SH("rctd-reference \"$REF\" --numi-col nUMI --cell-type-col cell_type_name -q > "
              "/dev/full") == 1);
  CHECK(
      hs_err_is("rctd-reference: stdout: record 'reference.profiles': write failed: No space "
                "left on device\n"));
}

/* Result streams through pipes (FIFOs, /dev/fd/N of a process substitution) are read once,
 * kept open like '-': merge reopened every named input in chunk order, so a pipe's second
 * open waited for a writer that was gone, or read its middle ("not an rctd stream"). */
TEST_E2E(hostile_merge_piped_inputs) {
  CHECK(hs_setup());
  CHECK(HS_SH("test -s kept/4-fit.rctd || " HS_RUN " --no-summary --keep-intermediates kept -o "
              "kept.h5ad") == 0);
  CHECK(HS_SH("rm -rf r1.fifo piped-csv file-csv && mkfifo r1.fifo && { cat kept/4-fit.rctd > "
              "r1.fifo & } && timeout 20 rctd-merge r1.fifo -q -f csv -o piped-csv && rctd-merge "
              "kept/4-fit.rctd -q -f csv -o file-csv && test -s piped-csv/weights.csv && diff -r "
              "piped-csv file-csv") == 0);
}
