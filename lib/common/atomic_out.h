/* Atomic output files (atomic_out.c). */
#ifndef RCTD_ATOMIC_OUT_H
#define RCTD_ATOMIC_OUT_H
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- output files ----
 * rctd_out_open("-") returns stdout.  For a new path or a regular file it creates PATH's
 * temporary sibling ".NAME.tmp.XXXXXX" and registers it: rctd_out_commit flushes, closes and
 * renames it to PATH; rctd_out_abort closes and removes it.  Registered temporaries still
 * present at exit() or on SIGINT/SIGTERM/SIGHUP are removed, so a failed or interrupted run
 * leaves no output file.  A target that is not a regular file (device, FIFO, /proc/self/fd/N,
 * "-") is never replaced: it is written in place, and rctd_out_abort then says that the output
 * is incomplete.  A symbolic link to a regular file is kept; the file it names is replaced.
 * A write error on stdout, seen at exit, makes the exit status 1 and removes the outputs. */
FILE *rctd_out_open(const char *path, char *err, size_t err_len); /* main thread */
/* For writers that need to seek (HDF5): a regular file; a non-regular target gets a temporary
 * in $TMPDIR that rctd_out_commit copies into it. */
FILE *rctd_out_open_seekable(const char *path, char *err, size_t err_len);
/* With ON, rctd_out_commit keeps finished temporaries and rctd_out_finish renames them all
 * (or, with DISCARD, removes them): a tool with several outputs then leaves none when a later
 * one fails (call rctd_out_finish last, after every other output, stdout included, was
 * written).  Returns 0 or -1 with ERR set. */
void rctd_out_defer(int on);
int rctd_out_finish(int discard, char *err, size_t err_len);
/* Removes every registered temporary (async-signal-safe: for crash and signal handlers). */
void rctd_out_remove_all(void);
int rctd_out_commit(FILE *f, char *err, size_t err_len); /* 0 or -1; closes F either way */
void rctd_out_abort(FILE *f);
/* ---- anonymous temporary files ----
 * The directory of temporary files: TMP_DIR when given (not NULL or empty), else $TMPDIR when
 * set and not empty, else /tmp. */
const char *rctd_temp_dir(const char *tmp_dir);
/* A scratch file in rctd_temp_dir(TMP_DIR) named PREFIX-XXXXXX and
 * unlinked at once, so that it vanishes with the process however it ends (crash or SIGKILL
 * included).  Returns the descriptor, or -1 with errno set. */
int rctd_temp_fd(const char *tmp_dir, const char *prefix);
/* The same as a stdio stream opened "w+b"; NULL with errno set. */
FILE *rctd_temp_file(const char *tmp_dir, const char *prefix);

/* ---- whole reads and writes at an offset ----
 * pread / pwrite of all N bytes at OFFSET, retried after EINTR and short transfers.  0, or -1
 * (an error with errno set; EIO for a write that wrote nothing or a read past the file's
 * end). */
int rctd_pread_all(int fd, void *buf, size_t n, off_t offset);
int rctd_pwrite_all(int fd, const void *buf, size_t n, off_t offset);

/* Installs the cleanup handlers (done by rctd_cli_parse and rctd_out_open; idempotent). */
void rctd_out_install_handlers(void);

#endif
