/* rctd: one command for the whole pipeline.
 *   rctd run       reference -> normalize -> sigma -> fit -> merge, through pipes between the
 *                  real binaries (bin/rctd-*, found next to this one); files with
 *                  --keep-intermediates DIR
 *   rctd validate  checks the inputs quickly (readable, cell types, gene overlap, pixels that
 *                  pass the filters) without fitting
 *   rctd version
 * Options of the stages are forwarded as given; an option two stages share is prefixed by its
 * input (--reference-numi-col, --spatial-numi-col). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"
#include "input_cli.h"
#include "normalize.h"
#include "report.h"
#include "sigma.h"
#include "stage_opts.h"

enum { N_STAGES = RCTD_RUN_N_STAGES };

/* The forwarded options: assembled from the stages' tables (lib/cli/stage_opts.h), with the stages'
 * values that rctd validate reads. */
static rctd_run_opts run_o;

/* Options of rctd itself. */
static const char *opt_reference, *opt_spatial, *opt_mode, *opt_format, *opt_keep, *opt_json,
    *opt_report;
static int opt_summary;

#define S RCTD_OPT_STRING

static rctd_opt run_own[] = {
    {"reference", 'r', S, &opt_reference, NULL,
     "single-cell reference (h5ad, 10x h5, MTX dir, spacexr CSV)", "reference", "FILE"},
    {"spatial", 's', S, &opt_spatial, NULL, "spatial data (h5ad, 10x h5, MTX dir, spacexr CSV)",
     "spatial", "FILE"},
    {"mode", 'm', S, &opt_mode, "doublet", "full, doublet or multi (spacexr doublet_mode)",
     "doublet_mode", "MODE"},
    {"format", 'f', S, &opt_format, "h5ad",
     "output: h5ad (-o FILE), csv (-o DIR, spacexr's layout) or h5ad,csv", "format", "FMT"},
    {"keep-intermediates", 0, S, &opt_keep, NULL, "run stage by stage through files kept in DIR",
     "keep_intermediates", "DIR"},
    {"json", 0, S, &opt_json, NULL, "JSON summary with the stage timings ('-' = stdout)", "json",
     "FILE"},
    {"summary", 0, RCTD_OPT_FLAG, &opt_summary, "true", "print the summary on standard output",
     "summary", NULL},
    {"report", 0, S, &opt_report, NULL, "also write the HTML report (rctd report) to FILE",
     "report", "FILE"},
};

#undef S

/* ------------------------------------------------------------------ helpers */

/* A growable argv. */
typedef struct {
  char **v;
  int n, cap;
} run_argv;

static void run_argv_add(run_argv *a, const char *s) {
  if (a->n + 2 > a->cap) {
    a->cap = a->cap ? 2 * a->cap : 32;
    a->v = realloc(a->v, (size_t)a->cap * sizeof *a->v);
    if (!a->v) {
      rctd_log_error("out of memory");
      exit(RCTD_EXIT_RUNTIME);
    }
  }
  a->v[a->n++] = strdup(s);
  a->v[a->n] = NULL;
}

static void run_argv_add2(run_argv *a, const char *opt, const char *value) {
  run_argv_add(a, opt);
  run_argv_add(a, value);
}

static void run_argv_free(run_argv *a) {
  for (int i = 0; i < a->n; i++) free(a->v[i]);
  free(a->v);
  memset(a, 0, sizeof *a);
}

/* Directory of this executable (the stage binaries live beside it). */
static int run_bin_dir(char *dir, size_t len) {
  ssize_t n = readlink("/proc/self/exe", dir, len - 1);
  if (n <= 0) return -1;
  dir[n] = 0;
  char *slash = strrchr(dir, '/');
  if (!slash) return -1;
  *slash = 0;
  return 0;
}

/* Parses the forwarded values into the stages' options (their own syntax checks), so that a typo
 * fails before any stage starts; a bad value is reported where it was given (the config file's
 * line, or the command-line option).  0, or 2. */
static int run_check_values(rctd_cli *cli) {
  char why[RCTD_ERR_LEN];
  int bad;
  if (rctd_run_opts_apply(&run_o, &bad, why, sizeof why) == 0) return 0;
  const rctd_opt *o = &run_o.run.opts[bad];
  int line = rctd_cli_config_line(cli, o->dest);
  if (line <= 0) return rctd_cli_usage_error(cli, "option --%s: %s", o->name, why);
  char key[96];
  snprintf(key, sizeof key, "%s", o->config_key ? o->config_key : o->name);
  for (char *c = key; *c; c++)
    if (*c == '-') *c = '_';
  rctd_log_error("%s: line %d: key '%s': %s", cli->config_path, line, key, why);
  return RCTD_EXIT_USAGE;
}

/* The value given for forwarded option NAME, or NULL. */
static const char *run_given(const char *name) {
  return rctd_run_opts_given(&run_o, name);
}

/* --precision float32 is for CUDA fits only: the fit tools refuse it on the CPU (their default
 * device), so it fails here before any stage runs rather than after three. */
static int run_check_precision(rctd_cli *cli) {
  const char *precision = run_given("precision"), *device = run_given("device");
  if (!precision || strcmp(precision, "float64") == 0) return 0;
  if (strcmp(precision, "float32") != 0)
    return rctd_cli_usage_error(cli, "--precision %s: expected float64 or float32", precision);
  if (!device || strcmp(device, "cpu") == 0)
    return rctd_cli_usage_error(cli,
                                "--precision float32 is for CUDA devices only: add --device "
                                "cuda (or auto), or use --precision float64");
  return 0;
}

static void run_argv_add_cb(void *a, const char *arg) {
  run_argv_add(a, arg);
}

/* The options of STAGE (RCTD_RUN_*): its own table walked, every option given passed on. */
static void run_stage_options(run_argv *a, int stage, const char *mode) {
  rctd_fit_mode fit_mode = strcmp(mode, "full") == 0    ? RCTD_FIT_FULL
                           : strcmp(mode, "multi") == 0 ? RCTD_FIT_MULTI
                                                        : RCTD_FIT_DOUBLET;
  rctd_run_opts_stage_args(&run_o, stage, fit_mode, run_argv_add_cb, a);
}

/* ------------------------------------------------------------------ run */

typedef struct {
  const char *name; /* "reference", ... */
  char binary[PATH_MAX + 80];
  run_argv argv;
  pid_t pid;
  int status; /* wait status */
  int done;
  int stopped; /* rctd run sent it SIGTERM (another stage had failed) */
  double t_start, t_end;
} run_stage;

static const char *run_stage_names[N_STAGES] = {"reference", "normalize", "sigma", "fit", "merge"};

/* Builds the five command lines.  IN[i]/OUT[i] are the stream paths of stage i ("-" = pipe). */
static int run_build(run_stage *st, const rctd_cli *cli, const char *bin_dir, const char *mode,
                     const char *const *in, const char *const *out, const char *json_tmp) {
  static const char *const bins[N_STAGES] = {"rctd-reference", "rctd-normalize", "rctd-sigma", NULL,
                                             "rctd-merge"};
  char threads[32];
  snprintf(threads, sizeof threads, "%d", cli->threads);
  for (int i = 0; i < N_STAGES; i++) {
    run_stage *s = &st[i];
    s->name = run_stage_names[i];
    char fit_bin[64];
    snprintf(fit_bin, sizeof fit_bin, "rctd-fit-%s", mode);
    snprintf(s->binary, sizeof s->binary, "%s/%s", bin_dir, bins[i] ? bins[i] : fit_bin);
    if (access(s->binary, X_OK) != 0) {
      rctd_log_error("%s: not found or not executable: build the tools (make) or install rctd",
                     s->binary);
      return -1;
    }
    run_argv *a = &s->argv;
    run_argv_add(a, s->binary);
    if (i == 0) run_argv_add(a, opt_reference);
    if (i == 1) run_argv_add(a, opt_spatial);
    if (i > 0) run_argv_add(a, in[i]);
    run_stage_options(a, i, mode);
    if (i < N_STAGES - 1) {
      run_argv_add2(a, "--threads", threads);
      run_argv_add2(a, "-o", out[i]);
    } else {
      run_argv_add2(a, "--spatial", opt_spatial);
      run_argv_add2(a, "--format", opt_format);
      run_argv_add2(a, "-o", cli->output);
      if (opt_summary) run_argv_add2(a, "--summary", "-");
      if (json_tmp) run_argv_add2(a, "--json", json_tmp);
    }
    if (cli->quiet) run_argv_add(a, "--quiet");
  }
  return 0;
}

/* Starts stage S with the given stdin/stdout (-1 = inherit); CLOSE_FDS are closed in the
 * child. */
static int run_spawn(run_stage *s, int fd_in, int fd_out, const int *close_fds, int n_close) {
  s->t_start = rctd_now();
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    rctd_log_error("cannot start %s: %s", s->binary, strerror(errno));
    return -1;
  }
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    /* A stage whose reader failed dies of SIGPIPE, which names the reader as the cause; ignored
     * (inherited so), it would fail with EPIPE and be blamed itself. */
    signal(SIGPIPE, SIG_DFL);
    /* The stage dies with rctd run, however rctd run ends (SIGKILL included): SIGTERM removes
     * its temporary output.  A parent gone before prctl took effect is seen by getppid. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(127);
    setenv("RCTD_RUN_STAGE", "1", 1);
    if (fd_in >= 0 && dup2(fd_in, STDIN_FILENO) < 0) _exit(127);
    if (fd_out >= 0 && dup2(fd_out, STDOUT_FILENO) < 0) _exit(127);
    for (int i = 0; i < n_close; i++)
      if (close_fds[i] > STDERR_FILENO) close(close_fds[i]);
    execv(s->binary, s->argv.v);
    fprintf(stderr, "rctd run: cannot run %s: %s\n", s->binary, strerror(errno));
    _exit(127);
  }
  s->pid = pid;
  return 0;
}

static const char *run_describe_status(int status, char *buf, size_t len) {
  if (WIFEXITED(status))
    snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
  else
    snprintf(buf, len, "status %d", status);
  return buf;
}

static int run_ok(const run_stage *s) {
  return s->done && WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0;
}

/* Stops the stages still running (ours, by pid). */
static void run_stop_all(run_stage *st, int n) {
  for (int i = 0; i < n; i++)
    if (st[i].pid > 0 && !st[i].done && kill(st[i].pid, SIGTERM) == 0) st[i].stopped = 1;
}

/* Whether S failed only because another stage did: its input was cut (RCTD_EXIT_CUT), its
 * reader was gone (SIGPIPE), or rctd run stopped it. */
static int run_failed_after_another(const run_stage *s) {
  if (WIFEXITED(s->status)) return WEXITSTATUS(s->status) == RCTD_EXIT_CUT;
  return WIFSIGNALED(s->status) &&
         (WTERMSIG(s->status) == SIGPIPE || (s->stopped && WTERMSIG(s->status) == SIGTERM));
}

/* Set by SIGINT/SIGTERM in the parent: the stages are stopped, then we exit. */
static volatile sig_atomic_t run_interrupted;
static void run_on_signal(int sig) {
  run_interrupted = sig;
}

/* Waits for every started stage; on the first failure stops the rest.  0 when all succeeded. */
static int run_wait(run_stage *st, int n) {
  int running = 0, failed = 0, stopped = 0;
  for (int i = 0; i < n; i++) running += st[i].pid > 0 && !st[i].done;
  while (running > 0) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        if (run_interrupted && !stopped) run_stop_all(st, n), stopped = 1;
        continue;
      }
      break;
    }
    for (int i = 0; i < n; i++) {
      if (st[i].pid != pid) continue;
      st[i].done = 1;
      st[i].status = status;
      st[i].t_end = rctd_now();
      running--;
      if (run_ok(&st[i])) {
        rctd_log_info("%s done (%.1f s)", st[i].name, st[i].t_end - st[i].t_start);
      } else {
        failed = 1;
        if (!stopped) run_stop_all(st, n), stopped = 1;
      }
    }
  }
  if (!failed && !run_interrupted) return 0;
  if (run_interrupted) {
    rctd_log_error("interrupted (%s): the pipeline stopped, no output was written",
                   strsignal(run_interrupted));
    return -1;
  }
  /* The most upstream failure of its own is the cause (else the most upstream failure): later
   * stages only saw a cut stream, earlier ones a closed pipe or rctd run's SIGTERM. */
  int cause = -1;
  for (int i = 0; i < n && cause < 0; i++)
    if (st[i].done && !run_ok(&st[i]) && !run_failed_after_another(&st[i])) cause = i;
  for (int i = cause < 0 ? 0 : cause; i < n; i++) {
    if (!st[i].done || run_ok(&st[i])) continue;
    char why[64];
    if (WIFEXITED(st[i].status) && WEXITSTATUS(st[i].status) == RCTD_EXIT_CUT)
      rctd_log_error(
          "%s failed: its input stream from %s ended early or was damaged; the "
          "pipeline stopped, no output was written",
          st[i].name, i > 0 ? st[i - 1].name : "standard input");
    else
      rctd_log_error("%s failed (%s); the pipeline stopped, no output was written", st[i].name,
                     run_describe_status(st[i].status, why, sizeof why));
    break;
  }
  return -1;
}

/* Every stage at once, connected by pipes. */
static int run_piped(run_stage *st) {
  int fds[2 * (N_STAGES - 1)];
  for (int i = 0; i < N_STAGES - 1; i++)
    if (pipe(fds + 2 * i) != 0) {
      rctd_log_error("cannot create a pipe: %s", strerror(errno));
      return -1;
    }
  int rc = 0;
  for (int i = 0; i < N_STAGES && rc == 0; i++) {
    int fd_in = i > 0 ? fds[2 * (i - 1)] : -1;
    int fd_out = i < N_STAGES - 1 ? fds[2 * i + 1] : -1;
    rc = run_spawn(&st[i], fd_in, fd_out, fds, 2 * (N_STAGES - 1));
  }
  for (int i = 0; i < 2 * (N_STAGES - 1); i++) close(fds[i]);
  if (rc != 0) run_stop_all(st, N_STAGES);
  return run_wait(st, N_STAGES) == 0 && rc == 0 ? 0 : -1;
}

/* Stage by stage through files in DIR. */
static int run_sequential(run_stage *st) {
  for (int i = 0; i < N_STAGES; i++) {
    rctd_log_info("[%d/%d] %s", i + 1, N_STAGES, st[i].name);
    if (run_spawn(&st[i], -1, -1, NULL, 0) != 0 || run_wait(&st[i], 1) != 0) return -1;
  }
  return 0;
}

/* Adds the stage timings to the JSON summary merge wrote (an object ending in "}\n"). */
static int run_write_json(const char *tmp, const char *path, const run_stage *st, double t_total) {
  FILE *f = fopen(tmp, "r");
  if (!f) return -1;
  char *text = NULL;
  size_t cap = 0;
  ssize_t len = getdelim(&text, &cap, '\0', f);
  fclose(f);
  unlink(tmp);
  if (len <= 0) {
    free(text);
    return -1;
  }
  char *end = strrchr(text, '}');
  if (!end) {
    free(text);
    return -1;
  }
  *end = 0;
  while (end > text && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
  char err[RCTD_ERR_LEN];
  FILE *out = rctd_out_open(path, err, sizeof err);
  if (!out) {
    rctd_log_error("%s", err);
    free(text);
    return -1;
  }
  fprintf(out, "%s,\n  \"stage_timings\": {", text);
  for (int i = 0; i < N_STAGES; i++)
    fprintf(out, "%s\"%s_s\": %.3f", i ? ", " : "", st[i].name, st[i].t_end - st[i].t_start);
  fprintf(out, ", \"total_s\": %.3f}\n}\n", t_total);
  free(text);
  if (rctd_out_commit(out, err, sizeof err) != 0) {
    rctd_log_error("%s", err);
    return -1;
  }
  return 0;
}

static int run_mkdir(const char *dir) {
  struct stat sb;
  if (stat(dir, &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return 0;
    errno = ENOTDIR;
    return -1;
  }
  return mkdir(dir, 0777);
}

/* --report FILE: the HTML report of the h5ad just written, with this command line and the
 * stage timings (lib/stage/report.h). */
static int run_report(const rctd_cli *cli, const run_stage *st, double t_total) {
  char command[8192] = "rctd";
  size_t used = strlen(command);
  for (int i = 0; i < cli->argc && used + 4 < sizeof command; i++)
    used += (size_t)snprintf(command + used, sizeof command - used,
                             strpbrk(cli->argv[i], " '\"$") ? " '%s'" : " %s", cli->argv[i]);
  const char *names[N_STAGES + 1];
  double secs[N_STAGES + 1];
  for (int i = 0; i < N_STAGES; i++) names[i] = st[i].name, secs[i] = st[i].t_end - st[i].t_start;
  names[N_STAGES] = "total", secs[N_STAGES] = t_total;
  rctd_report_opts o = {.result = cli->output,
                        .html = opt_report,
                        .command = command,
                        .n_timings = N_STAGES + 1,
                        .timing_names = names,
                        .timing_s = secs};
  char err[RCTD_ERR_LEN];
  if (rctd_report_write(&o, err, sizeof err) != 0) {
    rctd_log_error("%s", err);
    return -1;
  }
  rctd_log_info("wrote %s", opt_report);
  return 0;
}

static int cmd_run(rctd_cli *cli) {
  if (!opt_reference || !opt_spatial)
    return rctd_cli_usage_error(cli, "give --reference FILE and --spatial FILE");
  if (strcmp(opt_mode, "full") != 0 && strcmp(opt_mode, "doublet") != 0 &&
      strcmp(opt_mode, "multi") != 0)
    return rctd_cli_usage_error(cli, "--mode %s: expected full, doublet or multi", opt_mode);
  if (strcmp(cli->output, "-") == 0)
    return rctd_cli_usage_error(cli, "give -o OUT.h5ad (or -o DIR with --format csv)");
  if (opt_report && !strstr(opt_format, "h5ad"))
    return rctd_cli_usage_error(cli, "--report needs the h5ad output (--format h5ad or h5ad,csv)");
  int rc = run_check_values(cli);
  if (!rc) rc = run_check_precision(cli);
  if (rc) return rc;
  char bin_dir[PATH_MAX];
  if (run_bin_dir(bin_dir, sizeof bin_dir) != 0) {
    rctd_log_error("cannot find the directory of the rctd binary");
    return RCTD_EXIT_RUNTIME;
  }
  /* Stream paths: pipes, or the kept files. */
  char files[N_STAGES - 1][PATH_MAX + 32];
  const char *in[N_STAGES] = {NULL, "-", "-", "-", "-"};
  const char *out[N_STAGES] = {"-", "-", "-", "-", NULL};
  if (opt_keep) {
    if (run_mkdir(opt_keep) != 0) {
      if (errno == ENOTDIR)
        rctd_log_error(
            "--keep-intermediates %s: exists and is not a directory: give a "
            "directory (it is created when missing)",
            opt_keep);
      else
        rctd_log_error("%s: cannot create the directory for intermediates: %s", opt_keep,
                       strerror(errno));
      return RCTD_EXIT_RUNTIME;
    }
    static const char *const names[N_STAGES - 1] = {"1-reference", "2-model", "3-sigma", "4-fit"};
    for (int i = 0; i < N_STAGES - 1; i++) {
      snprintf(files[i], sizeof files[i], "%s/%s.rctd", opt_keep, names[i]);
      out[i] = files[i];
      in[i + 1] = files[i];
    }
  }
  char json_tmp[PATH_MAX + 32];
  const char *json_arg = NULL;
  if (opt_json) {
    snprintf(json_tmp, sizeof json_tmp, "%s/rctd-run-%d.json", rctd_temp_dir(NULL), (int)getpid());
    json_arg = json_tmp;
  }
  run_stage st[N_STAGES];
  memset(st, 0, sizeof st);
  if (run_build(st, cli, bin_dir, opt_mode, in, out, json_arg) != 0) {
    for (int i = 0; i < N_STAGES; i++) run_argv_free(&st[i].argv);
    return RCTD_EXIT_RUNTIME;
  }
  struct sigaction sa, old_int, old_term, old_hup;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = run_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  double t0 = rctd_now();
  rctd_log_info("%s mode: reference -> normalize -> sigma -> fit-%s -> merge%s%s", opt_mode,
                opt_mode, opt_keep ? ", intermediates in " : " (pipes)", opt_keep ? opt_keep : "");
  rc = opt_keep ? run_sequential(st) : run_piped(st);
  double t_total = rctd_now() - t0;
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGHUP, &old_hup, NULL);
  if (rc == 0) {
    if (opt_json && run_write_json(json_tmp, opt_json, st, t_total) != 0) rc = -1;
    if (rc == 0 && opt_report) rc = run_report(cli, st, t_total);
    if (rc != 0) {
      /* The run failed after merge renamed its output: take it back (a regular file only). */
      struct stat sb;
      if (strcmp(opt_format, "h5ad") == 0 && lstat(cli->output, &sb) == 0 && S_ISREG(sb.st_mode))
        unlink(cli->output);
    }
    if (rc == 0) rctd_log_info("finished in %.1f s", t_total);
  } else if (opt_json) {
    unlink(json_tmp);
  }
  for (int i = 0; i < N_STAGES; i++) run_argv_free(&st[i].argv);
  if (run_interrupted) {
    signal(run_interrupted, SIG_DFL);
    raise(run_interrupted);
  }
  return rc == 0 ? RCTD_EXIT_OK : RCTD_EXIT_RUNTIME;
}

/* ------------------------------------------------------------------ validate */

typedef struct {
  int problems;
} val_report;

static void val_problem(val_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void val_problem(val_report *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("PROBLEM: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  r->problems++;
}

/* Opens WHAT ("reference" or "spatial") at PATH with the reader options V, as rctd run's stage
 * would, and reads its count sums and nUMI; NULL after reporting a problem.  FORMAT_OPT names
 * the run option that gave V's format. */
static rctd_input *val_open(val_report *r, const char *what, const char *path,
                            const rctd_input_cli *v, rctd_cell_type_need need,
                            const char *format_opt, const double **numi, const double **sums) {
  rctd_input_options o;
  if (rctd_input_cli_options(v, need, &o) < 0) {
    val_problem(r, "--%s %s: unknown format", format_opt, v->format);
    return NULL;
  }
  char err[RCTD_ERR_LEN * 2];
  rctd_input *in = rctd_input_open(path, &o, err, sizeof err);
  if (!in) {
    val_problem(r, "%s: %s", what, err);
    return NULL;
  }
  if (rctd_input_count_sums(in, sums, err, sizeof err) < 0 ||
      rctd_input_numi(in, numi, err, sizeof err) < 0) {
    val_problem(r, "%s: %s", what, err);
    rctd_input_close(in);
    return NULL;
  }
  return in;
}

/* The reference: readable, cell types, cells per type after the nUMI filter. */
static rctd_input *val_reference(val_report *r) {
  const rctd_reference_opts *o = &run_o.ref.select;
  const double *numi = NULL, *sums = NULL;
  rctd_input *in = val_open(r, "reference", opt_reference, &run_o.ref.in, RCTD_CELL_TYPES_REQUIRED,
                            "reference-format", &numi, &sums);
  if (!in) return NULL;
  const int K = rctd_input_n_cell_types(in);
  const char *const *names = rctd_input_cell_type_names(in);
  const int32_t *codes = rctd_input_cell_type_codes(in);
  const double min_umi = o->min_umi;
  const int64_t cell_min = o->cell_min;
  int64_t *cells = calloc((size_t)K, sizeof *cells), kept = 0;
  for (int64_t i = 0; cells && i < rctd_input_n_rows(in); i++)
    if (codes[i] >= 0 && numi[i] >= min_umi) cells[codes[i]]++, kept++;
  printf("reference: %s (%s): %" PRId64 " cells x %" PRId64 " genes, %d cell types; %" PRId64
         " cells with a type and nUMI >= %g\n",
         opt_reference, rctd_input_format_name(rctd_input_get_format(in)), rctd_input_n_rows(in),
         rctd_input_n_genes(in), K, kept, min_umi);
  int small = 0;
  for (int k = 0; cells && k < K; k++)
    if (cells[k] < cell_min) {
      small++;
      if (o->drop_small_types)
        printf("note: cell type %s has %" PRId64 " cells (< %" PRId64 "): it will be dropped\n",
               names[k], cells[k], cell_min);
      else
        val_problem(r,
                    "cell type %s has %" PRId64 " cells with nUMI >= %g, fewer than %" PRId64
                    " (CELL_MIN_INSTANCE): drop it (--drop-small-types) or lower --cell-min",
                    names[k], cells[k], min_umi, cell_min);
    }
  if (K - (o->drop_small_types ? small : 0) < 2)
    val_problem(r, "fewer than 2 cell types remain in the reference");
  free(cells);
  return in;
}

/* The spatial data: readable, pixels passing the filters, pixels for sigma. */
static rctd_input *val_spatial(val_report *r) {
  const double *numi = NULL, *sums = NULL;
  rctd_input *in = val_open(r, "spatial", opt_spatial, &run_o.norm.in, RCTD_CELL_TYPES_IGNORE,
                            "spatial-format", &numi, &sums);
  if (!in) return NULL;
  const rctd_normalize_opts *filter = &run_o.norm.o;
  const double umi_min = filter->umi_min, umi_max = filter->umi_max,
               counts_min = filter->counts_min;
  const double umi_sigma = run_o.sigma.o.sigma.umi_min_sigma;
  int64_t pass = 0, for_sigma = 0;
  for (int64_t i = 0; i < rctd_input_n_rows(in); i++) {
    if (rctd_normalize_keeps_pixel(filter, numi[i], sums[i])) {
      pass++;
      for_sigma += numi[i] > umi_sigma;
    }
  }
  printf("spatial: %s (%s): %" PRId64 " pixels x %" PRId64 " genes%s; %" PRId64
         " pixels pass the filters (%g <= nUMI <= %g, counts >= %g), %" PRId64
         " of them with nUMI > %g for sigma\n",
         opt_spatial, rctd_input_format_name(rctd_input_get_format(in)), rctd_input_n_rows(in),
         rctd_input_n_genes(in), rctd_input_coords(in) ? ", coordinates" : "", pass, umi_min,
         umi_max, counts_min, for_sigma, umi_sigma);
  if (pass == 0)
    val_problem(r, "no pixel passes the filters: lower --umi-min or --counts-min");
  else if (for_sigma == 0 && !run_given("sigma"))
    val_problem(r,
                "no pixel has nUMI > %g to estimate sigma: lower --umi-min-sigma or give --sigma",
                umi_sigma);
  return in;
}

static int cmd_validate(rctd_cli *cli) {
  if (!opt_reference || !opt_spatial)
    return rctd_cli_usage_error(cli, "give --reference FILE and --spatial FILE");
  int rc = run_check_values(cli);
  if (rc) return rc;
  val_report r = {0};
  rctd_input *ref = val_reference(&r);
  rctd_input *sp = val_spatial(&r);
  if (ref && sp) {
    int64_t n_ref = rctd_input_n_genes(ref), n_sp = rctd_input_n_genes(sp);
    int64_t shared =
        rctd_gene_overlap(rctd_input_gene_names(ref), n_ref, rctd_input_gene_names(sp), n_sp);
    int64_t smaller = n_ref < n_sp ? n_ref : n_sp;
    printf("genes: %" PRId64 " shared of %" PRId64 " (reference) and %" PRId64 " (spatial)\n",
           shared, n_ref, n_sp);
    if (shared * 10 < smaller)
      val_problem(&r,
                  "only %" PRId64 " genes are shared, fewer than 10%% of %" PRId64
                  ": are both gene name columns of the same kind (--*-gene-names)?",
                  shared, smaller);
  }
  if (ref) rctd_input_close(ref);
  if (sp) rctd_input_close(sp);
  if (r.problems) {
    printf("%d problem%s found\n", r.problems, r.problems > 1 ? "s" : "");
    return RCTD_EXIT_RUNTIME;
  }
  printf("ok: the inputs look usable for rctd run\n");
  return RCTD_EXIT_OK;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
  fprintf(f,
          "Usage: rctd COMMAND [OPTIONS]\n"
          "RCTD (spacexr) cell type decomposition of spatial transcriptomics data.\n\n"
          "Commands:\n"
          "  run       the whole pipeline: rctd run --reference REF --spatial SPATIAL "
          "[--mode doublet] -o OUT.h5ad\n"
          "  validate  check the inputs quickly (readable, cell types, gene overlap, pixels "
          "that pass the filters)\n"
          "  report    HTML report (maps, bars, summary) of a result: rctd report OUT.h5ad -o "
          "REPORT.html\n"
          "  version   print the version\n\n"
          "'rctd COMMAND --help' lists a command's options.  The stages are separate tools: "
          "rctd-reference, rctd-normalize, rctd-sigma, rctd-fit-{full,doublet,multi}, "
          "rctd-merge (see their man pages).\n");
}

int main(int argc, char **argv) {
  rctd_set_tool("rctd");
  rctd_out_install_handlers(); /* also: a write error on stdout (rctd --help > /dev/full) fails */
  if (argc < 2) {
    usage(stderr);
    return RCTD_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return RCTD_EXIT_OK;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("rctd %s\n", RCTD_VERSION);
    return RCTD_EXIT_OK;
  }
  if (strcmp(cmd, "report") == 0) return rctd_report_main(argc - 1, argv + 1);
  int is_run = strcmp(cmd, "run") == 0, is_validate = strcmp(cmd, "validate") == 0;
  if (!is_run && !is_validate) {
    fprintf(stderr, "rctd: unknown command '%s' (run, validate, report, version; rctd --help)\n",
            cmd);
    return RCTD_EXIT_USAGE;
  }
  /* One option table: rctd's own options, then the forwarded ones. */
  const int n_own = (int)(sizeof run_own / sizeof *run_own);
  const size_t n_opts = (size_t)n_own + RCTD_OPT_TABLE_MAX + 1;
  rctd_opt *opts = calloc(n_opts, sizeof *opts);
  if (!opts) return RCTD_EXIT_RUNTIME;
  memcpy(opts, run_own, sizeof run_own);
  if (rctd_run_opts_init(&run_o) < 0 || rctd_run_opts_append(&run_o, opts, n_opts) < 0) {
    fprintf(stderr, "rctd: option table too small\n");
    free(opts);
    return RCTD_EXIT_RUNTIME;
  }
  rctd_cli cli = {
      .tool = is_run ? "rctd run" : "rctd validate",
      .args_usage = "",
      .summary = is_run ? "run reference -> normalize -> sigma -> fit -> merge in one command"
                        : "check the inputs of rctd run quickly, without fitting",
      .description =
          is_run ? "Runs the real stage binaries (rctd-reference, rctd-normalize, rctd-sigma, "
                   "rctd-fit-MODE, rctd-merge, found next to rctd) connected by pipes, or one "
                   "after the other through files with --keep-intermediates DIR, and writes an "
                   "h5ad (a copy of the spatial h5ad with the results added; a fresh one for "
                   "other formats) or spacexr's CSV layout (--format csv, -o DIR).  Stage "
                   "options are forwarded as given (in parentheses: the stage and its "
                   "default); "
                   "options two stages share are prefixed by their input.  --config FILE.yaml "
                   "takes the same names with '_' (or the R names shown as config keys).  See "
                   "rctd(1)."
                 : "Opens the reference and the spatial data with the options rctd run would "
                   "use and reports: sizes, cell types and their cells after the nUMI filter, "
                   "genes shared, pixels that pass the filters and pixels usable for sigma.  "
                   "Exit status 0 when the inputs look usable, 1 when a problem was found.",
      .opts = opts,
      .min_args = 0,
      .max_args = 0,
      .has_output = is_run};
  int rc = rctd_cli_parse(&cli, argc - 1, argv + 1);
  if (rc == RCTD_CLI_CONTINUE) rc = is_run ? cmd_run(&cli) : cmd_validate(&cli);
  rctd_cli_free(&cli);
  free(opts);
  return rc;
}
