/* Shared by the libFuzzer harnesses (tests/fuzz/README.md): the input as a file, and a full
 * pass over a reader. */
#ifndef RCTD_FUZZ_COMMON_H
#define RCTD_FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>

#include "input.h"

/* Writes DATA to a private file named NAME (in $TMPDIR or /tmp, one directory per process) and
 * returns its path (a static buffer).  NULL when it cannot be written. */
const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size);
/* The private directory of fuzz_write_file. */
const char *fuzz_dir(void);
/* Opens PATH as FORMAT with OPTIONS (NULL: defaults) and reads everything a stage would: names,
 * labels, nUMI, count sums and every chunk.  Errors are expected and ignored. */
void fuzz_read_input(const char *path, rctd_input_format format, rctd_cell_type_need need);
/* Runs $RCTD_FUZZ_READER (rctd-fuzz-read: fuzz_read_input in a plain build) on PATH with a
 * time limit: libhdf5 may crash or hang on damaged files, which the HDF5 guard turns into exit
 * status 1.  A reader killed by any signal, or one that outlives the limit, is a finding: the
 * harness aborts. */
void fuzz_read_input_isolated(const char *path, rctd_input_format format);

#endif
