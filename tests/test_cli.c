/* CLI conventions: option table parsing, --help/--version, YAML config precedence and errors,
 * provenance, atomic outputs (failure, exit and signals), progress reporting. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "test.h"

/* ---- capturing a file descriptor into a string ---- */

typedef struct {
  int fd, saved;
  char path[512];
} cli_capture;

static void cli_capture_start(cli_capture *c, int fd, const char *name) {
  fflush(stdout);
  fflush(stderr);
  snprintf(c->path, sizeof c->path, "%s/%s", test_tmp_dir(), name);
  c->fd = fd;
  c->saved = dup(fd);
  int f = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(f, fd);
  close(f);
}

/* Restores the descriptor; returns what was written (static buffer). */
static const char *cli_capture_end(cli_capture *c) {
  static char text[16384];
  fflush(stdout);
  fflush(stderr);
  dup2(c->saved, c->fd);
  close(c->saved);
  FILE *f = fopen(c->path, "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  text[n] = 0;
  if (f) fclose(f);
  return text;
}

/* ---- a tool's option table ---- */

static int opt_iter, opt_flag;
static int64_t opt_big;
static double opt_tol, opt_alpha;
static const char *opt_mode, *opt_label;

static rctd_opt cli_test_opts[] = {
    {"max-iter", 0, RCTD_OPT_INT, &opt_iter, "50", "iterations per fit", NULL, NULL},
    {"big", 'b', RCTD_OPT_I64, &opt_big, "5000000000", "a large count", NULL, NULL},
    {"tol", 't', RCTD_OPT_DOUBLE, &opt_tol, "1e-3", "convergence threshold", NULL, NULL},
    {"alpha", 0, RCTD_OPT_DOUBLE, &opt_alpha, "1.5", "nested in the config", "fit.alpha", NULL},
    {"mode", 'm', RCTD_OPT_STRING, &opt_mode, "full", "full, doublet or multi", NULL, "MODE"},
    {"label", 0, RCTD_OPT_STRING, &opt_label, NULL, "optional label", NULL, NULL},
    {"strict", 's', RCTD_OPT_FLAG, &opt_flag, "false", "a flag", NULL, NULL},
    {0}};

static rctd_cli cli_test_make(void) {
  return (rctd_cli){.tool = "rctd-test",
                    .args_usage = "INPUT...",
                    .summary = "Tests the option table.",
                    .opts = cli_test_opts,
                    .min_args = 1,
                    .max_args = 2,
                    .has_output = 1,
                    .stream_output = 1};
}

/* Parses a NULL-terminated argument list, capturing stderr into *err_text. */
static int cli_test_parse(rctd_cli *cli, const char **err_text, const char *const *args) {
  static char *argv[64];
  int argc = 0;
  argv[argc++] = "rctd-test";
  while (*args && argc < 63) argv[argc++] = (char *)*args++;
  argv[argc] = NULL;
  *cli = cli_test_make();
  cli_capture cap;
  cli_capture_start(&cap, STDERR_FILENO, "parse.err");
  int rc = rctd_cli_parse(cli, argc, argv);
  *err_text = cli_capture_end(&cap);
  rctd_set_quiet(0);
  return rc;
}

static void cli_write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

TEST(cli_defaults_and_command_line) {
  rctd_cli cli;
  const char *err;
  CHECK(cli_test_parse(&cli, &err, (const char *[]){"in.rctd", NULL}) == RCTD_CLI_CONTINUE);
  CHECK(opt_iter == 50 && opt_big == 5000000000LL && opt_tol == 1e-3 && opt_alpha == 1.5);
  CHECK(strcmp(opt_mode, "full") == 0 && opt_label == NULL && opt_flag == 0);
  CHECK(strcmp(cli.output, "-") == 0 && cli.quiet == 0 && cli.chunk_rows == 0);
  CHECK(cli.threads >= 1); /* 0 resolves to the CPU count */
  CHECK(cli.n_args == 1 && strcmp(cli.args[0], "in.rctd") == 0);
  rctd_cli_free(&cli);

  CHECK(cli_test_parse(&cli, &err,
                       (const char *[]){"--max-iter", "7", "--tol=0.25", "-mdoublet", "-sq", "-o",
                                        "out.rctd", "--threads", "3", "--chunk-rows=100", "-b",
                                        "-12", "-", "--", "--label", NULL}) == RCTD_CLI_CONTINUE);
  CHECK(opt_iter == 7 && opt_tol == 0.25 && strcmp(opt_mode, "doublet") == 0 && opt_flag == 1);
  CHECK(opt_big == -12 && cli.quiet == 1 && cli.threads == 3 && cli.chunk_rows == 100);
  CHECK(strcmp(cli.output, "out.rctd") == 0);
  CHECK(cli.n_args == 2 && strcmp(cli.args[0], "-") == 0 && strcmp(cli.args[1], "--label") == 0);
  CHECK(rctd_cli_writer_opts(&cli).chunk_rows == 100);
  rctd_cli_free(&cli);

  CHECK(cli_test_parse(&cli, &err, (const char *[]){"-s", "--no-strict", "x", NULL}) ==
        RCTD_CLI_CONTINUE);
  CHECK(opt_flag == 0);
  rctd_cli_free(&cli);
}

TEST(cli_usage_errors_exit_2) {
  struct {
    const char *args[4];
    const char *message;
  } cases[] = {
      {{"--bogus", "x", NULL}, "rctd-test: unknown option '--bogus'"},
      {{"-z", "x", NULL}, "unknown option '-z'"},
      {{"x", "--max-iter", NULL}, "option '--max-iter' needs a value"},
      {{"--max-iter", "many", "x", NULL}, "option --max-iter: invalid integer 'many'"},
      {{"--tol", "1e-3x", "x", NULL}, "option --tol: invalid number '1e-3x'"},
      {{"--strict=maybe", "x", NULL}, "invalid value 'maybe'"},
      {{NULL}, "missing argument"},
      {{"a", "b", "c", NULL}, "unexpected argument 'c'"},
      {{"--threads", "-2", "x", NULL}, "--threads: must be 0 or more"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rctd_cli cli;
    const char *err;
    int rc = cli_test_parse(&cli, &err, cases[i].args);
    rctd_cli_free(&cli);
    CHECK_MSG(rc == RCTD_EXIT_USAGE, "case %zu: rc %d", i, rc);
    CHECK_MSG(strstr(err, cases[i].message) && strstr(err, "Try 'rctd-test --help'"),
              "case %zu: %s", i, err);
  }
}

TEST(cli_help_lists_every_option_with_default) {
  rctd_cli cli = cli_test_make();
  char *argv[] = {"rctd-test", "--bogus-is-ignored-with-help", "--help", NULL};
  cli_capture cap;
  cli_capture_start(&cap, STDOUT_FILENO, "help.out");
  int rc = rctd_cli_parse(&cli, 3, argv);
  const char *out = cli_capture_end(&cap);
  rctd_cli_free(&cli);
  CHECK(rc == RCTD_EXIT_OK);
  const char *expect[] = {"Usage: rctd-test [OPTIONS] INPUT...",
                          "--max-iter N",
                          "[default: 50]",
                          "-b, --big N",
                          "[default: 5000000000]",
                          "-t, --tol X",
                          "[default: 1e-3]",
                          "(config key: fit.alpha)",
                          "-m, --mode MODE",
                          "[default: full]",
                          "--label STR",
                          "-s, --strict",
                          "[default: false]",
                          "-o, --output FILE",
                          "[default: -]",
                          "--chunk-rows N",
                          "--threads N",
                          "-q, --quiet",
                          "--config FILE.yaml",
                          "-h, --help",
                          "-V, --version"};
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
    CHECK_MSG(strstr(out, expect[i]), "help lacks '%s':\n%s", expect[i], out);

  cli = cli_test_make();
  char *argv2[] = {"rctd-test", "-V", NULL};
  cli_capture_start(&cap, STDOUT_FILENO, "version.out");
  rc = rctd_cli_parse(&cli, 2, argv2);
  out = cli_capture_end(&cap);
  rctd_cli_free(&cli);
  CHECK(rc == RCTD_EXIT_OK);
  CHECK_MSG(strcmp(out, "rctd-test " RCTD_VERSION "\n") == 0, "%s", out);
}

TEST(cli_config_precedence) {
  char path[512];
  snprintf(path, sizeof path, "%s/precedence.yaml", test_tmp_dir());
  cli_write_text(path,
                 "# a comment\n"
                 "max_iter: 7\n"
                 "tol: 0.5\n"
                 "mode: \"doublet\"\n"
                 "fit:\n"
                 "  alpha: 2.5\n"
                 "strict: yes\n"
                 "threads: 2\n"
                 "chunk_rows: 4096\n");
  rctd_cli cli;
  const char *err;
  /* Config over defaults, command line over config (in either order on the line). */
  CHECK(cli_test_parse(&cli, &err,
                       (const char *[]){"--tol", "0.25", "--config", path, "--no-strict", "x",
                                        NULL}) == RCTD_CLI_CONTINUE);
  CHECK_MSG(opt_iter == 7 && opt_tol == 0.25 && opt_alpha == 2.5, "%d %g %g", opt_iter, opt_tol,
            opt_alpha);
  CHECK(strcmp(opt_mode, "doublet") == 0 && opt_flag == 0 && opt_label == NULL);
  CHECK(cli.threads == 2 && cli.chunk_rows == 4096 && opt_big == 5000000000LL);
  CHECK(strcmp(cli.config_path, path) == 0);
  rctd_cli_free(&cli);

  /* A null value and a key given twice are refused, whatever the option's type. */
  char expect[1024];
  const char *nulls[] = {"label: ~\n", "max_iter:\n"};
  const char *keys[] = {"label", "max_iter"};
  for (int i = 0; i < 2; i++) {
    cli_write_text(path, nulls[i]);
    CHECK(cli_test_parse(&cli, &err, (const char *[]){"--config", path, "x", NULL}) ==
          RCTD_EXIT_USAGE);
    snprintf(expect, sizeof expect,
             "rctd-test: %s: line 1: key '%s' has no value: give one, or remove the line to keep "
             "the default\n",
             path, keys[i]);
    CHECK_MSG(strcmp(err, expect) == 0, "%s", err);
  }
  cli_write_text(path, "tol: 0.5\nmax_iter: 3\ntol: 0.25\n");
  CHECK(cli_test_parse(&cli, &err, (const char *[]){"--config", path, "x", NULL}) ==
        RCTD_EXIT_USAGE);
  snprintf(expect, sizeof expect,
           "rctd-test: %s: line 3: key 'tol' is given twice (also on line 1): keep one\n", path);
  CHECK_MSG(strcmp(err, expect) == 0, "%s", err);

  /* An empty file changes nothing. */
  cli_write_text(path, "");
  CHECK(cli_test_parse(&cli, &err, (const char *[]){"--config", path, "x", NULL}) ==
        RCTD_CLI_CONTINUE);
  CHECK(opt_iter == 50 && opt_tol == 1e-3);
  rctd_cli_free(&cli);
}

TEST(cli_config_errors_name_the_key) {
  char path[512];
  snprintf(path, sizeof path, "%s/bad.yaml", test_tmp_dir());
  struct {
    const char *yaml;
    const char *message;
  } cases[] = {
      {"max_iter: 3\nbogus: 1\n", "line 2: unknown key 'bogus' (valid keys: max_iter, big, tol"},
      {"fit:\n  beta: 1\n", "unknown key 'fit.beta'"},
      {"output: x.rctd\n", "unknown key 'output'"}, /* -o is command line only */
      {"max_iter: abc\n", "line 1: key 'max_iter': invalid integer 'abc'"},
      {"max_iter:\n", "key 'max_iter' has no value"},
      {"mode: [a, b]\n", "key 'mode': lists are not supported"},
      {"- a\n- b\n", "expected a mapping"},
      {"a: b: c\n", "invalid YAML"},
      {"tol: 1\n---\ntol: 2\n", "more than one YAML document"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cli_write_text(path, cases[i].yaml);
    rctd_cli cli;
    const char *err;
    int rc = cli_test_parse(&cli, &err, (const char *[]){"--config", path, "x", NULL});
    rctd_cli_free(&cli);
    CHECK_MSG(rc == RCTD_EXIT_USAGE, "case %zu: rc %d", i, rc);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "rctd-test: %s: ", path);
    CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0 && strstr(err, cases[i].message),
              "case %zu: %s", i, err);
  }
  rctd_cli cli;
  const char *err;
  int rc = cli_test_parse(&cli, &err, (const char *[]){"--config", "/nonexistent.yaml", "x", NULL});
  rctd_cli_free(&cli);
  CHECK(rc == RCTD_EXIT_USAGE);
  CHECK_MSG(strstr(err, "rctd-test: /nonexistent.yaml: cannot open"), "%s", err);
}

TEST(cli_messages) {
  rctd_set_tool("rctd-msg");
  cli_capture cap;
  cli_capture_start(&cap, STDERR_FILENO, "msg.err");
  rctd_log_error("%s: %s", "in.csv", "bad row 3");
  rctd_log_warn("careful");
  rctd_log_info("hello");
  rctd_set_quiet(1);
  rctd_log_warn("hidden");
  rctd_log_info("hidden");
  rctd_log_error("still shown");
  rctd_set_quiet(0);
  const char *text = cli_capture_end(&cap);
  CHECK_MSG(strcmp(text,
                   "rctd-msg: in.csv: bad row 3\nrctd-msg: warning: careful\nrctd-msg: hello\n"
                   "rctd-msg: still shown\n") == 0,
            "%s", text);
  CHECK(strcmp(rctd_tool(), "rctd-msg") == 0);
}

TEST(cli_provenance_record) {
  char out[512], yaml[512], err[RCTD_ERR_LEN];
  snprintf(out, sizeof out, "%s/prov.rctd", test_tmp_dir());
  snprintf(yaml, sizeof yaml, "%s/prov.yaml", test_tmp_dir());
  cli_write_text(yaml, "max_iter: 3\n");
  rctd_cli cli;
  const char *e;
  CHECK(cli_test_parse(&cli, &e,
                       (const char *[]){"--config", yaml, "--threads", "3", "--mode", "it's",
                                        "--quiet", "a b", "--threads=2", NULL}) ==
        RCTD_CLI_CONTINUE);
  rctd_writer *w = rctd_writer_open(out, NULL, err, sizeof err);
  CHECK(w && rctd_cli_write_provenance(&cli, w) == 0);
  CHECK(rctd_writer_close(w, err, sizeof err) == 0);
  rctd_record rec;
  CHECK_MSG(rctd_load_record(out, "provenance.rctd-test", &rec, err, sizeof err) == 0, "%s", err);
  char expect[1200];
  snprintf(expect, sizeof expect, "rctd-test --config %s --mode 'it'\\''s' 'a b'", yaml);
  int ok = rec.kind == RCTD_META && strcmp(rctd_record_meta_get(&rec, "tool"), "rctd-test") == 0 &&
           strcmp(rctd_record_meta_get(&rec, "version"), RCTD_VERSION) == 0 &&
           strcmp(rctd_record_meta_get(&rec, "config"), yaml) == 0 &&
           strcmp(rctd_record_meta_get(&rec, "command_line"), expect) == 0;
  if (!ok) fprintf(stderr, "  command_line: %s\n", rctd_record_meta_get(&rec, "command_line"));
  rctd_record_free(&rec);
  rctd_cli_free(&cli);
  CHECK(ok);
}

/* ---- atomic outputs ---- */

static int cli_dir_has_temporaries(void) {
  return test_sh("ls -A '%s' | grep -q '\\.tmp\\.'", test_tmp_dir()) == 0;
}

TEST(cli_atomic_output_commit_and_abort) {
  char path[512], err[RCTD_ERR_LEN];
  snprintf(path, sizeof path, "%s/atomic.txt", test_tmp_dir());
  FILE *f = rctd_out_open(path, err, sizeof err);
  CHECK(f != NULL);
  fputs("partial", f);
  fflush(f);
  CHECK(access(path, F_OK) != 0); /* nothing under the final name while writing */
  CHECK(cli_dir_has_temporaries());
  rctd_out_abort(f);
  CHECK(access(path, F_OK) != 0 && !cli_dir_has_temporaries());

  f = rctd_out_open(path, err, sizeof err);
  fputs("done\n", f);
  CHECK(rctd_out_commit(f, err, sizeof err) == 0);
  CHECK(test_sh("grep -qx done '%s'", path) == 0 && !cli_dir_has_temporaries());
  /* A failed rewrite leaves the previous file as it was. */
  f = rctd_out_open(path, err, sizeof err);
  fputs("half", f);
  rctd_out_abort(f);
  CHECK(test_sh("grep -qx done '%s'", path) == 0);
  CHECK(rctd_out_open("-", err, sizeof err) == stdout);
  CHECK(rctd_out_open("/nonexistent-dir/x", err, sizeof err) == NULL);
  CHECK_MSG(strstr(err, "/nonexistent-dir/x: cannot create output"), "%s", err);
}

/* Threads opening and committing outputs at once (sigma's cache entries): each file lands
 * under its name with its own content, no temporary is left. */
enum { CLI_AT_THREADS = 6, CLI_AT_FILES = 40 };
typedef struct {
  int id, failed;
} cli_at_job;

static void *cli_at_run(void *arg) {
  cli_at_job *job = arg;
  for (int i = 0; i < CLI_AT_FILES; i++) {
    char path[512], err[RCTD_ERR_LEN];
    snprintf(path, sizeof path, "%s/at-%d-%d.txt", test_tmp_dir(), job->id, i);
    FILE *f = rctd_out_open(path, err, sizeof err);
    if (!f) {
      job->failed++;
      continue;
    }
    fprintf(f, "%d %d\n", job->id, i);
    job->failed += rctd_out_commit(f, err, sizeof err) != 0;
  }
  return NULL;
}

TEST(cli_atomic_output_from_threads) {
  cli_at_job jobs[CLI_AT_THREADS];
  pthread_t threads[CLI_AT_THREADS];
  for (int t = 0; t < CLI_AT_THREADS; t++) {
    jobs[t] = (cli_at_job){t, 0};
    CHECK(pthread_create(&threads[t], NULL, cli_at_run, &jobs[t]) == 0);
  }
  int failed = 0, wrong = 0;
  for (int t = 0; t < CLI_AT_THREADS; t++) {
    pthread_join(threads[t], NULL);
    failed += jobs[t].failed;
  }
  for (int t = 0; t < CLI_AT_THREADS; t++)
    for (int i = 0; i < CLI_AT_FILES; i++)
      wrong += test_sh("grep -qx '%d %d' '%s/at-%d-%d.txt'", t, i, test_tmp_dir(), t, i) != 0;
  CHECK_MSG(failed == 0 && wrong == 0, "%d failed, %d files wrong or missing", failed, wrong);
  CHECK(!cli_dir_has_temporaries());
}

/* Child: opens an output, writes, then ends as HOW says without committing. */
static void cli_child_dies(const char *path, int how) {
  char err[RCTD_ERR_LEN];
  rctd_out_install_handlers();
  FILE *f = rctd_out_open(path, err, sizeof err);
  if (!f) _exit(3);
  fputs("partial output\n", f);
  fflush(f);
  if (how == 0) exit(1); /* a failed run: exit() without commit */
  if (how == 1) raise(SIGTERM);
  if (how == 2) raise(SIGINT);
  pause();
  _exit(4);
}

TEST(cli_atomic_output_removed_on_exit_and_signals) {
  char path[512];
  snprintf(path, sizeof path, "%s/dies.txt", test_tmp_dir());
  for (int how = 0; how < 4; how++) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) cli_child_dies(path, how);
    if (how == 3) {
      /* Killed from outside while it waits. */
      for (int i = 0; i < 200 && !cli_dir_has_temporaries(); i++) usleep(10000);
      kill(pid, SIGTERM);
    }
    int status;
    waitpid(pid, &status, 0);
    if (how == 0)
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    else
      CHECK_MSG(WIFSIGNALED(status), "case %d: status %d", how, status);
    CHECK_MSG(access(path, F_OK) != 0 && !cli_dir_has_temporaries(), "case %d left a file", how);
  }
}

TEST(cli_progress_lines_and_quiet) {
  setenv("RCTD_PROGRESS_INTERVAL", "0", 1);
  rctd_set_tool("rctd-prog");
  cli_capture cap;
  cli_capture_start(&cap, STDERR_FILENO, "progress.err");
  rctd_progress *p = rctd_progress_start("fitting", 2000, "pixels");
  for (int i = 0; i < 4; i++) rctd_progress_add(p, 500);
  rctd_progress_finish(p);
  p = rctd_progress_start("reading", 0, "rows");
  rctd_progress_set(p, 123456);
  rctd_progress_finish(p);
  const char *text = cli_capture_end(&cap);
  CHECK_MSG(strstr(text, "rctd-prog: fitting: 500/2000 pixels (25%), ") &&
                strstr(text, "rctd-prog: fitting: 2000 pixels done in") &&
                strstr(text, "rctd-prog: reading: 123k rows"),
            "%s", text);
  rctd_set_quiet(1);
  cli_capture_start(&cap, STDERR_FILENO, "progress-quiet.err");
  p = rctd_progress_start("fitting", 10, "pixels");
  rctd_progress_add(p, 10);
  rctd_progress_finish(p);
  text = cli_capture_end(&cap);
  rctd_set_quiet(0);
  unsetenv("RCTD_PROGRESS_INTERVAL");
  CHECK_MSG(*text == 0, "quiet progress printed: %s", text);
}

TEST(cli_atomic_output_survives_a_forked_child_exit) {
  char path[512], err[RCTD_ERR_LEN];
  snprintf(path, sizeof path, "%s/parent.txt", test_tmp_dir());
  FILE *f = rctd_out_open(path, err, sizeof err);
  CHECK(f != NULL);
  fputs("parent\n", f);
  fflush(f);
  fflush(stdout);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) exit(0); /* runs the atexit cleanup in the child */
  int status;
  waitpid(pid, &status, 0);
  CHECK(cli_dir_has_temporaries());
  CHECK(rctd_out_commit(f, err, sizeof err) == 0);
  CHECK(test_sh("grep -qx parent '%s'", path) == 0);
}
