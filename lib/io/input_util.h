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
 * large block is ever copied to grow); or, once input_strings_spill is called on an empty one,
 * strings in an anonymous temporary file (input_names.c), items NULL: read them with
 * input_strings_get. */
typedef struct input_arena_block input_arena_block;
typedef struct input_spill input_spill;
typedef struct {
  int64_t n, cap;
  char **items;
  input_arena_block *blocks;
  input_spill *spill;
} input_strings;

void input_strings_init(input_strings *s);
int input_strings_reserve(input_strings *s, int64_t n);                /* -1: out of memory */
int input_strings_push(input_strings *s, const char *str, size_t len); /* -1: out of memory */
/* Makes items valid when there are no strings (items never NULL). -1: out of memory. */
int input_strings_seal(input_strings *s);
void input_strings_free(input_strings *s);

/* ---- spilled strings (input_names.c) ----
 * input_strings_spill: later pushes go to an anonymous temporary file in tmp_dir (NULL: $TMPDIR
 * or /tmp); memory is one offset per 1,024 strings and one block of them read back.  -1 (S
 * untouched, still in memory) when S is not empty or no temporary file can be made. */
int input_strings_spill(input_strings *s, const char *tmp_dir);
int input_strings_is_spilled(const input_strings *s);
/* String I, in memory or read back with its block (valid until the next get on S); NULL when I
 * is out of range or the temporary file cannot be read back (errno set). */
const char *input_strings_get(const input_strings *s, int64_t i);
/* Brings spilled strings back into memory (a no-op for strings in memory).  -1 on failure (S
 * unchanged). */
int input_strings_unspill(input_strings *s);
/* Internal to input_util.c: push and free of the spilled form. */
int input_strings_spill_push(input_strings *s, const char *str, size_t len);
void input_strings_spill_free(input_strings *s);

/* The smallest string in byte order that S holds more than once, as a malloc'd copy in *dup,
 * or NULL when every string is distinct, in memory set by RUN_ENTRIES (0: 65,536): (hash, index)
 * pairs are sorted RUN_ENTRIES at a time, runs beyond the first go to an anonymous temporary
 * file in tmp_dir and are merged; equal hashes are compared as strings, so a collision is never
 * taken for a duplicate.  HASH: NULL for 64-bit FNV-1a (tests pass a weak one).  Returns 0, -1
 * (out of memory or temporary file I/O, errno set), or -2 when no temporary file can be made. */
typedef uint64_t (*input_hash_fn)(const char *s);
int input_strings_find_duplicate(const input_strings *s, const char *tmp_dir, input_hash_fn hash,
                                 int64_t run_entries, char **dup);

/* Room for n_rows rows and nnz entries in chunk. -1: out of memory. */
int input_chunk_reserve(rctd_csr_chunk *chunk, int64_t n_rows, int64_t nnz);

#endif
