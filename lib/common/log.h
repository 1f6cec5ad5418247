/* Messages on stderr, "rctd-TOOL: message" (the tool name set by rctd_cli_parse or
 * rctd_set_tool), the informational ones silenced by --quiet.  Every layer reports through
 * these. */
#ifndef RCTD_LOG_H
#define RCTD_LOG_H

/* Exit statuses of every tool. */
#define RCTD_EXIT_OK 0
#define RCTD_EXIT_RUNTIME 1
#define RCTD_EXIT_USAGE 2
#define RCTD_EXIT_CUT 3 /* a stage of rctd run whose input stream was cut (see rctd_log_error) */

void rctd_set_tool(const char *tool);
const char *rctd_tool(void);
void rctd_set_quiet(int quiet);
int rctd_quiet(void);
/* "rctd-TOOL: " + message + newline.  Always printed.  Message convention: "FILE: what". */
void rctd_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with "warning: " after the tool name; suppressed by --quiet. */
void rctd_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Informational; suppressed by --quiet. */
void rctd_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
