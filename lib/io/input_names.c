/* Names spilled to an anonymous temporary file, and the duplicate check over them
 * (input_util.h).  A million barcodes held in memory cost about 22 bytes each (the string and
 * its pointer); spilled, memory is one file offset per block of INPUT_SPILL_STRIDE names, one
 * cached block and the sort runs' buffer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_out.h"
#include "input_util.h"

#define INPUT_SPILL_STRIDE 1024      /* names per block: the unit read back */
#define INPUT_SPILL_WRITE (64 << 10) /* bytes buffered before a write */

struct input_spill {
  int fd;
  int64_t bytes; /* names written (buffered ones included), each with its NUL */
  char *pending; /* bytes not yet written: the last `n_pending` of `bytes` */
  size_t n_pending;
  int64_t *block_at; /* file offset of name b * INPUT_SPILL_STRIDE */
  int64_t n_blocks, cap_blocks;
  int64_t cached; /* block held in `block`, -1 none */
  char *block;
  size_t block_cap;
  uint32_t *start; /* offsets of the cached block's names in `block` */
};

static int spill_flush(struct input_spill *sp) {
  if (sp->n_pending == 0) return 0;
  if (rctd_pwrite_all(sp->fd, sp->pending, sp->n_pending, sp->bytes - (int64_t)sp->n_pending))
    return -1;
  sp->n_pending = 0;
  return 0;
}

static void spill_free(struct input_spill *sp) {
  if (!sp) return;
  if (sp->fd >= 0) close(sp->fd);
  free(sp->pending);
  free(sp->block_at);
  free(sp->block);
  free(sp->start);
  free(sp);
}

int input_strings_spill(input_strings *s, const char *tmp_dir) {
  if (s->n != 0 || s->spill) return -1;
  struct input_spill *sp = calloc(1, sizeof *sp);
  if (!sp) return -1;
  sp->cached = -1;
  sp->pending = malloc(INPUT_SPILL_WRITE);
  sp->start = malloc(INPUT_SPILL_STRIDE * sizeof *sp->start);
  sp->fd = sp->pending && sp->start ? rctd_temp_fd(tmp_dir, "rctd-names") : -1;
  if (sp->fd < 0) {
    spill_free(sp);
    return -1;
  }
  s->spill = sp;
  return 0;
}

int input_strings_is_spilled(const input_strings *s) {
  return s->spill != NULL;
}

int input_strings_spill_push(input_strings *s, const char *str, size_t len) {
  struct input_spill *sp = s->spill;
  if (s->n % INPUT_SPILL_STRIDE == 0) {
    if (sp->n_blocks == sp->cap_blocks) {
      int64_t cap = sp->cap_blocks ? 2 * sp->cap_blocks : 64;
      int64_t *at = realloc(sp->block_at, (size_t)cap * sizeof *at);
      if (!at) return -1;
      sp->block_at = at;
      sp->cap_blocks = cap;
    }
    sp->block_at[sp->n_blocks++] = sp->bytes;
  }
  if (sp->n_pending + len + 1 > INPUT_SPILL_WRITE && spill_flush(sp) != 0) return -1;
  if (len + 1 > INPUT_SPILL_WRITE) { /* a name longer than the buffer goes straight out */
    if (rctd_pwrite_all(sp->fd, str, len, sp->bytes) ||
        rctd_pwrite_all(sp->fd, "", 1, sp->bytes + (int64_t)len))
      return -1;
  } else {
    memcpy(sp->pending + sp->n_pending, str, len);
    sp->pending[sp->n_pending + len] = '\0';
    sp->n_pending += len + 1;
  }
  sp->bytes += (int64_t)len + 1;
  s->n++;
  return 0;
}

/* Reads block B into the cache: its names are read back together, so rows in order read each
 * block once. */
static int spill_load_block(struct input_spill *sp, int64_t n_names, int64_t b) {
  if (spill_flush(sp) != 0) return -1;
  int64_t end = b + 1 < sp->n_blocks ? sp->block_at[b + 1] : sp->bytes;
  size_t len = (size_t)(end - sp->block_at[b]);
  if (len > sp->block_cap) {
    char *block = realloc(sp->block, len);
    if (!block) return -1;
    sp->block = block;
    sp->block_cap = len;
  }
  sp->cached = -1;
  if (rctd_pread_all(sp->fd, sp->block, len, sp->block_at[b]) != 0) return -1;
  int64_t count = n_names - b * INPUT_SPILL_STRIDE;
  if (count > INPUT_SPILL_STRIDE) count = INPUT_SPILL_STRIDE;
  size_t at = 0;
  for (int64_t i = 0; i < count; i++) {
    const char *nul = at < len ? memchr(sp->block + at, '\0', len - at) : NULL;
    if (!nul) {
      errno = EIO; /* the file is not what was written */
      return -1;
    }
    sp->start[i] = (uint32_t)at;
    at = (size_t)(nul - sp->block) + 1;
  }
  sp->cached = b;
  return 0;
}

const char *input_strings_get(const input_strings *s, int64_t i) {
  if (i < 0 || i >= s->n) return NULL;
  if (!s->spill) return s->items[i];
  struct input_spill *sp = s->spill;
  int64_t b = i / INPUT_SPILL_STRIDE;
  if (b != sp->cached && spill_load_block(sp, s->n, b) != 0) return NULL;
  return sp->block + sp->start[i % INPUT_SPILL_STRIDE];
}

int input_strings_unspill(input_strings *s) {
  if (!s->spill) return 0;
  input_strings mem;
  input_strings_init(&mem);
  int rc = input_strings_reserve(&mem, s->n > 0 ? s->n : 1);
  for (int64_t i = 0; rc == 0 && i < s->n; i++) {
    const char *name = input_strings_get(s, i);
    rc = name ? input_strings_push(&mem, name, strlen(name)) : -1;
  }
  if (rc != 0) {
    input_strings_free(&mem);
    return -1;
  }
  input_strings_free(s);
  *s = mem;
  return 0;
}

void input_strings_spill_free(input_strings *s) {
  spill_free(s->spill);
  s->spill = NULL;
}
