/* Duplicated strings in bounded memory (input_util.h): (hash, index) pairs sorted in runs of a
 * fixed size, runs beyond the first in an anonymous temporary file, merged through a heap.
 * Pairs of equal hash are compared as strings, read back by index: with a 64-bit hash they are
 * nearly always the duplicates themselves, and their indices come in increasing order, so
 * spilled strings are read back block by block. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_out.h"
#include "h5guard.h"
#include "input_util.h"

#define DUP_RUN_ENTRIES 65536

typedef struct {
  uint64_t hash;
  int64_t index;
} dup_pair;

static uint64_t dup_fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static int dup_pair_cmp(const dup_pair *a, const dup_pair *b) {
  if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

static int dup_pair_qsort(const void *a, const void *b) {
  return dup_pair_cmp(a, b);
}

/* ---- the strings of one hash: distinct ones kept, a repeat recorded ---- */

typedef struct {
  const input_strings *s;
  uint64_t hash;
  int64_t first, n; /* the group's first index and size */
  char **distinct;  /* the group's distinct strings (copies; one unless the hash collided) */
  int n_distinct, cap_distinct;
  char *smallest; /* the smallest repeated string so far */
} dup_group;

static void dup_group_reset(dup_group *g) {
  for (int i = 0; i < g->n_distinct; i++) free(g->distinct[i]);
  g->n_distinct = 0;
  g->n = 0;
}

static int dup_group_keep(dup_group *g, const char *str) {
  if (g->n_distinct == g->cap_distinct) {
    int cap = g->cap_distinct ? 2 * g->cap_distinct : 4;
    char **d = realloc(g->distinct, (size_t)cap * sizeof *d);
    if (!d) return -1;
    g->distinct = d;
    g->cap_distinct = cap;
  }
  if (!(g->distinct[g->n_distinct] = strdup(str))) return -1;
  g->n_distinct++;
  return 0;
}

/* Next pair in (hash, index) order.  A string is read only once its hash repeats. */
static int dup_group_add(dup_group *g, const dup_pair *p) {
  if (g->n == 0 || p->hash != g->hash) {
    dup_group_reset(g);
    g->hash = p->hash;
    g->first = p->index;
    g->n = 1;
    return 0;
  }
  if (g->n++ == 1) {
    const char *first = input_strings_get(g->s, g->first);
    if (!first || dup_group_keep(g, first) != 0) return -1;
  }
  const char *str = input_strings_get(g->s, p->index);
  if (!str) return -1;
  for (int i = 0; i < g->n_distinct; i++) {
    if (strcmp(g->distinct[i], str) != 0) continue;
    if (!g->smallest || strcmp(str, g->smallest) < 0) {
      free(g->smallest);
      if (!(g->smallest = strdup(str))) return -1;
    }
    return 0;
  }
  return dup_group_keep(g, str); /* a collision: another string of the same hash */
}

/* ---- runs on disk, merged ---- */

typedef struct {
  dup_pair *buf;
  int64_t n_buf, at; /* pairs in buf, next one */
  int64_t next, end; /* the run's pairs still on disk: [next, end) */
} dup_cursor;

static int dup_cursor_fill(dup_cursor *c, int fd, int64_t cap) {
  int64_t n = c->end - c->next < cap ? c->end - c->next : cap;
  if (rctd_pread_all(fd, c->buf, (size_t)n * sizeof(dup_pair),
                     (off_t)(c->next * (int64_t)sizeof(dup_pair))) != 0)
    return -1;
  c->next += n;
  c->n_buf = n;
  c->at = 0;
  return 0;
}

static int dup_cursor_less(const dup_cursor *a, const dup_cursor *b) {
  return dup_pair_cmp(&a->buf[a->at], &b->buf[b->at]) < 0;
}

static void dup_heap_down(dup_cursor **heap, int64_t n, int64_t i) {
  for (;;) {
    int64_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && dup_cursor_less(heap[l], heap[m])) m = l;
    if (r < n && dup_cursor_less(heap[r], heap[m])) m = r;
    if (m == i) return;
    dup_cursor *t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
}

/* Merges the N_RUNS sorted runs of RUN pairs each (the last may be shorter) in FD, N pairs in
 * all, into the group.  BUF (CAP pairs) is shared out among the runs' cursors. */
static int dup_merge(int fd, int64_t n, int64_t run, dup_pair *buf, int64_t cap, dup_group *g) {
  int64_t n_runs = (n + run - 1) / run, per = cap / n_runs;
  dup_cursor *cursors = calloc((size_t)n_runs, sizeof *cursors);
  dup_cursor **heap = malloc((size_t)n_runs * sizeof *heap);
  dup_pair *extra = NULL;
  if (per < 1) { /* more runs than pairs in the buffer: one more pair each */
    per = 1;
    buf = extra = malloc((size_t)n_runs * sizeof *extra);
  }
  int rc = cursors && heap && buf ? 0 : -1;
  int64_t n_heap = 0;
  for (int64_t i = 0; rc == 0 && i < n_runs; i++) {
    dup_cursor *c = &cursors[i];
    c->buf = buf + i * per;
    c->next = i * run;
    c->end = c->next + run < n ? c->next + run : n;
    rc = dup_cursor_fill(c, fd, per);
    heap[n_heap++] = c;
  }
  for (int64_t i = n_heap / 2 - 1; rc == 0 && i >= 0; i--) dup_heap_down(heap, n_heap, i);
  for (int64_t done = 0; rc == 0 && n_heap > 0; done++) {
    if (done % run == 0) rctd_h5_guard_tick();
    dup_cursor *c = heap[0];
    rc = dup_group_add(g, &c->buf[c->at++]);
    if (rc == 0 && c->at == c->n_buf) {
      if (c->next < c->end)
        rc = dup_cursor_fill(c, fd, per);
      else
        heap[0] = heap[--n_heap];
    }
    dup_heap_down(heap, n_heap, 0);
  }
  free(cursors);
  free(heap);
  free(extra);
  return rc;
}

int input_strings_find_duplicate(const input_strings *s, const char *tmp_dir, input_hash_fn hash,
                                 int64_t run_entries, char **dup) {
  *dup = NULL;
  if (!hash) hash = dup_fnv1a;
  int64_t run = run_entries > 0 ? run_entries : DUP_RUN_ENTRIES, n = s->n;
  if (run > n) run = n > 0 ? n : 1;
  dup_pair *buf = malloc((size_t)run * sizeof *buf);
  if (!buf) return -1;
  dup_group g = {.s = s};
  int fd = -1, rc = 0;
  int64_t filled = 0;
  for (int64_t i = 0; rc == 0 && i < n; i++) {
    const char *str = input_strings_get(s, i);
    if (!str) {
      rc = -1;
      break;
    }
    buf[filled++] = (dup_pair){hash(str), i};
    if (filled < run && i + 1 < n) continue;
    rctd_h5_guard_tick(); /* progress, for the guard of an HDF5 input's open (h5guard.h) */
    qsort(buf, (size_t)filled, sizeof *buf, dup_pair_qsort);
    if (filled == n) break; /* one run: merged in memory below */
    if (fd < 0 && (fd = rctd_temp_fd(tmp_dir, "rctd-dups")) < 0) {
      rc = -2;
      break;
    }
    rc = rctd_pwrite_all(fd, buf, (size_t)filled * sizeof *buf,
                         (off_t)((i + 1 - filled) * (int64_t)sizeof *buf));
    filled = 0;
  }
  if (rc == 0 && fd < 0)
    for (int64_t i = 0; rc == 0 && i < n; i++) rc = dup_group_add(&g, &buf[i]);
  else if (rc == 0)
    rc = dup_merge(fd, n, run, buf, run, &g);
  if (fd >= 0) close(fd);
  free(buf);
  dup_group_reset(&g);
  free(g.distinct);
  if (rc == 0)
    *dup = g.smallest;
  else
    free(g.smallest);
  return rc;
}
