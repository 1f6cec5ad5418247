/* Messages on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_out.h"

static const char *cli_tool_name = "rctd";
static int cli_quiet_flag;

void rctd_set_tool(const char *tool) {
  cli_tool_name = tool ? tool : "rctd";
}
const char *rctd_tool(void) {
  return cli_tool_name;
}
void rctd_set_quiet(int quiet) {
  cli_quiet_flag = quiet;
}
int rctd_quiet(void) {
  return cli_quiet_flag;
}

static void cli_vlog(const char *prefix, const char *fmt, va_list ap) {
  char msg[4096];
  vsnprintf(msg, sizeof msg, fmt, ap);
  fprintf(stderr, "%s: %s%s\n", cli_tool_name, prefix, msg);
}

/* Set when a stage of rctd run kept quiet about its cut input: the exit status becomes
 * RCTD_EXIT_CUT (the tool still fails and cleans up as usual first). */
static int cli_input_cut;
static void cli_exit_cut(void) {
  if (!cli_input_cut) return;
  rctd_out_remove_all();
  _exit(RCTD_EXIT_CUT);
}

void rctd_log_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  /* A stage of rctd run whose input pipe ends early or breaks only saw the stage before it
   * fail: that stage or rctd run says why, and a line about "stdin" would be a misleading
   * follow-on.  Exit status RCTD_EXIT_CUT tells rctd run what happened. */
  if (getenv("RCTD_RUN_STAGE")) {
    char msg[16];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (strncmp(msg, "stdin: ", 7) == 0) {
      if (!cli_input_cut++) atexit(cli_exit_cut); /* runs first: before the other handlers */
      return;
    }
    va_start(ap, fmt);
  }
  cli_vlog("", fmt, ap);
  va_end(ap);
}

void rctd_log_warn(const char *fmt, ...) {
  if (cli_quiet_flag) return;
  va_list ap;
  va_start(ap, fmt);
  cli_vlog("warning: ", fmt, ap);
  va_end(ap);
}

void rctd_log_info(const char *fmt, ...) {
  if (cli_quiet_flag) return;
  va_list ap;
  va_start(ap, fmt);
  cli_vlog("", fmt, ap);
  va_end(ap);
}
