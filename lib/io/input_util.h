/* Helpers shared by the input readers and the HDF5 readers above them: "PATH: message"
 * errors, string arrays in arenas, CSR chunk storage.  Depends on input.h only. */
#ifndef RCTD_INPUT_UTIL_H
#define RCTD_INPUT_UTIL_H
#include <stddef.h>
#include <stdint.h>

#include "input.h"

/* Writes "PATH: message" into err; returns -1 so callers can `return input_fail(...)`. */
int input_fail(char *err, size_t err_size, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* String arrays: a pointer array into a list of fixed arena blocks (strings never move, and no
 * large block is ever copied to grow). */
typedef struct input_arena_block input_arena_block;
typedef struct {
  int64_t n, cap;
  char **items;
  input_arena_block *blocks;
} input_strings;

void input_strings_init(input_strings *s);
int input_strings_reserve(input_strings *s, int64_t n);                /* -1: out of memory */
int input_strings_push(input_strings *s, const char *str, size_t len); /* -1: out of memory */
/* Makes items valid when there are no strings (items never NULL). -1: out of memory. */
int input_strings_seal(input_strings *s);
void input_strings_free(input_strings *s);

/* Room for n_rows rows and nnz entries in chunk. -1: out of memory. */
int input_chunk_reserve(rctd_csr_chunk *chunk, int64_t n_rows, int64_t nnz);

#endif
