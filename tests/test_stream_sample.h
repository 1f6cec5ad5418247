/* A sample stream with every record type, shared by the stream, view and cli tests. */
#ifndef RCTD_TEST_STREAM_SAMPLE_H
#define RCTD_TEST_STREAM_SAMPLE_H
#include <stddef.h>

#include "stream.h"

/* Writes the sample records to W.  0 or -1 (message in rctd_writer_error). */
int rctd_test_sample_write(rctd_writer *w);
/* Writes the sample to PATH ("-" = stdout) with CHUNK_ROWS as the writer default. */
int rctd_test_sample_write_path(const char *path, unsigned chunk_rows);
/* Reads every record from R and compares with the sample.  0, or -1 with a reason in msg. */
int rctd_test_sample_check(rctd_reader *r, char *msg, size_t msg_len);
/* Number of records in the sample. */
int rctd_test_sample_records(void);

#endif
