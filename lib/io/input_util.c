/* Helpers of every input reader (input_util.h): messages, string arenas, chunk storage. */
#include "input_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int input_fail(char *err, size_t err_size, const char *path, const char *fmt, ...) {
  if (!err || err_size == 0) return -1;
  int used = snprintf(err, err_size, "%s: ", path ? path : "input");
  if (used < 0 || (size_t)used >= err_size) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + used, err_size - (size_t)used, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- string arrays ---- */

struct input_arena_block {
  input_arena_block *next;
  size_t used, cap;
  char data[];
};

#define INPUT_ARENA_BLOCK (1 << 20)

void input_strings_init(input_strings *s) {
  memset(s, 0, sizeof *s);
}

int input_strings_reserve(input_strings *s, int64_t n) {
  if (s->spill || n <= s->cap) return 0; /* spilled strings need no pointers */
  char **items = realloc(s->items, (size_t)n * sizeof *items);
  if (!items) return -1;
  s->items = items;
  s->cap = n;
  return 0;
}

int input_strings_push(input_strings *s, const char *str, size_t len) {
  if (s->spill) return input_strings_spill_push(s, str, len);
  if (s->n == s->cap && input_strings_reserve(s, s->cap ? 2 * s->cap : 64) != 0) return -1;
  input_arena_block *block = s->blocks;
  if (!block || block->used + len + 1 > block->cap) {
    size_t cap = len + 1 > INPUT_ARENA_BLOCK ? len + 1 : INPUT_ARENA_BLOCK;
    block = malloc(sizeof *block + cap);
    if (!block) return -1;
    block->next = s->blocks;
    block->used = 0;
    block->cap = cap;
    s->blocks = block;
  }
  char *copy = block->data + block->used;
  memcpy(copy, str, len);
  copy[len] = '\0';
  block->used += len + 1;
  s->items[s->n++] = copy;
  return 0;
}

int input_strings_seal(input_strings *s) {
  return input_strings_reserve(s, 1);
}

void input_strings_free(input_strings *s) {
  input_strings_spill_free(s);
  free(s->items);
  while (s->blocks) {
    input_arena_block *next = s->blocks->next;
    free(s->blocks);
    s->blocks = next;
  }
  memset(s, 0, sizeof *s);
}

int input_chunk_reserve(rctd_csr_chunk *chunk, int64_t n_rows, int64_t nnz) {
  if (n_rows + 1 > chunk->cap_rows) {
    int64_t *row_ptr = realloc(chunk->row_ptr, (size_t)(n_rows + 1) * sizeof *row_ptr);
    if (!row_ptr) return -1;
    chunk->row_ptr = row_ptr;
    chunk->cap_rows = n_rows + 1;
  }
  if (nnz > chunk->cap_nnz) {
    int64_t cap = nnz < 1024 ? 1024 : nnz;
    int32_t *gene_idx = realloc(chunk->gene_idx, (size_t)cap * sizeof *gene_idx);
    if (!gene_idx) return -1;
    chunk->gene_idx = gene_idx;
    double *values = realloc(chunk->values, (size_t)cap * sizeof *values);
    if (!values) return -1;
    chunk->values = values;
    chunk->cap_nnz = cap;
  }
  return 0;
}
