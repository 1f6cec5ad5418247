/* Names spilled to a temporary file (input_names.c) and the duplicate check in bounded memory
 * (input_dups.c): strings come back as written, in order and at random; the duplicate found is
 * the smallest repeated string, within a sort run, across runs, and under a hash where
 * every string collides; the reader keeps its barcodes in memory where no temporary file can
 * be made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "input_internal.h"
#include "input_util.h"
#include "test.h"

/* Name I of a set of N: varied lengths, an empty one, and one longer than the write buffer. */
static char *names_make(int64_t i, int64_t n) {
  if (i == n / 2) {
    size_t len = 100000;
    char *s = malloc(len + 1);
    for (size_t k = 0; k < len; k++) s[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
    s[len] = '\0';
    return s;
  }
  if (i == 7) return strdup("");
  char *s = malloc(64);
  snprintf(s, 64, "px%0*lld-%lld", (int)(1 + i % 9), (long long)i, (long long)(i % 3));
  return s;
}

/* Strings of names_make, spilled (or not) into S. */
static int names_fill(input_strings *s, int64_t n, int spill) {
  input_strings_init(s);
  if (spill && input_strings_spill(s, NULL) != 0) return -1;
  for (int64_t i = 0; i < n; i++) {
    char *name = names_make(i, n);
    int rc = input_strings_push(s, name, strlen(name));
    free(name);
    if (rc != 0) return -1;
  }
  return input_strings_seal(s);
}

static int names_match(const input_strings *s, int64_t i, int64_t n) {
  char *want = names_make(i, n);
  const char *got = input_strings_get(s, i);
  int same = got && strcmp(got, want) == 0;
  free(want);
  return same;
}

TEST(input_names_spill_reads_back_in_order_at_random_and_into_memory) {
  enum { N = 5000 };
  input_strings s;
  CHECK(names_fill(&s, N, 1) == 0);
  CHECK(input_strings_is_spilled(&s) && s.items == NULL && s.n == N);
  for (int64_t i = 0; i < N; i++) CHECK_MSG(names_match(&s, i, N), "name %lld", (long long)i);
  for (int64_t k = 0; k < 3 * N; k++) { /* blocks read back out of order */
    int64_t i = (k * 7919) % N;
    CHECK_MSG(names_match(&s, i, N), "name %lld", (long long)i);
  }
  CHECK(input_strings_get(&s, -1) == NULL && input_strings_get(&s, N) == NULL);
  CHECK(input_strings_unspill(&s) == 0);
  CHECK(!input_strings_is_spilled(&s) && s.items != NULL && s.n == N);
  for (int64_t i = 0; i < N; i++) CHECK(names_match(&s, i, N));
  input_strings_free(&s);
  /* only an empty array spills */
  CHECK(names_fill(&s, 3, 0) == 0);
  CHECK(input_strings_spill(&s, NULL) == -1 && !input_strings_is_spilled(&s));
  input_strings_free(&s);
}

/* The smallest repeated string of S by brute force (the reader's in-memory rule). */
static char *names_smallest_dup(const input_strings *s) {
  const char *best = NULL;
  for (int64_t i = 0; i < s->n; i++)
    for (int64_t j = i + 1; j < s->n; j++) {
      const char *a = s->items[i];
      if (strcmp(a, s->items[j]) == 0 && (!best || strcmp(a, best) < 0)) best = a;
    }
  return best ? strdup(best) : NULL;
}

static uint64_t names_hash_constant(const char *s) {
  (void)s;
  return 42; /* every string collides */
}

static uint64_t names_hash_first(const char *s) {
  return (unsigned char)s[0]; /* a few large collision groups */
}

/* Pushes LIST (NULL-terminated) into S, spilled. */
static int names_list(input_strings *s, const char *const *list) {
  input_strings_init(s);
  if (input_strings_spill(s, NULL) != 0) return -1;
  for (; *list; list++)
    if (input_strings_push(s, *list, strlen(*list)) != 0) return -1;
  return 0;
}

/* The duplicate found in LIST with HASH and RUN entries per run ("" when none; "?" on error). */
static const char *names_dup_of(const char *const *list, input_hash_fn hash, int64_t run) {
  static char out[256];
  input_strings s;
  char *dup = NULL;
  int rc = names_list(&s, list) == 0 ? input_strings_find_duplicate(&s, NULL, hash, run, &dup) : -1;
  snprintf(out, sizeof out, "%s", rc != 0 ? "?" : dup ? dup : "");
  free(dup);
  input_strings_free(&s);
  return out;
}

TEST(input_names_duplicate_within_and_across_runs_smallest_first) {
  const char *none[] = {"c", "a", "b", "e", "d", "f", "g", NULL};
  const char *across[] = {"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p2", NULL};
  const char *two[] = {"zz", "m", "zz", "k", "aa", "q", "r", "aa", "s", NULL};
  const char *triple[] = {"t", "u", "t", "v", "t", NULL};
  for (int64_t run = 1; run <= 9; run++) {
    CHECK_MSG(!strcmp(names_dup_of(none, NULL, run), ""), "run %lld", (long long)run);
    CHECK_MSG(!strcmp(names_dup_of(across, NULL, run), "p2"), "run %lld", (long long)run);
    CHECK_MSG(!strcmp(names_dup_of(two, NULL, run), "aa"), "run %lld", (long long)run);
    CHECK_MSG(!strcmp(names_dup_of(triple, NULL, run), "t"), "run %lld", (long long)run);
  }
  const char *empty[] = {NULL};
  const char *one[] = {"x", NULL};
  CHECK(!strcmp(names_dup_of(empty, NULL, 4), "") && !strcmp(names_dup_of(one, NULL, 4), ""));
}

TEST(input_names_hash_collisions_are_not_duplicates) {
  const char *distinct[] = {"ab", "ac", "ad", "b", "ba", "bb", "", NULL};
  const char *mixed[] = {"ab", "ac", "bd", "ac", "b", "ab", "bd", NULL};
  const char *later[] = {"d", "c", "b", "a", "c", NULL};
  input_hash_fn weak[2] = {names_hash_constant, names_hash_first};
  for (int h = 0; h < 2; h++)
    for (int64_t run = 1; run <= 8; run++) {
      CHECK(!strcmp(names_dup_of(distinct, weak[h], run), ""));
      CHECK(!strcmp(names_dup_of(mixed, weak[h], run), "ab"));
      CHECK(!strcmp(names_dup_of(later, weak[h], run), "c"));
    }
}

TEST(input_names_duplicates_agree_with_brute_force) {
  unsigned seed = 12345;
  for (int trial = 0; trial < 40; trial++) {
    int64_t n = 1 + trial * 37;
    input_strings mem, spilled;
    input_strings_init(&mem);
    input_strings_init(&spilled);
    CHECK(input_strings_spill(&spilled, NULL) == 0);
    for (int64_t i = 0; i < n; i++) {
      char name[32];
      seed = seed * 1103515245u + 12345u;
      /* few enough values that some trials repeat one, and others do not */
      unsigned v = (seed >> 8) % (unsigned)(trial % 2 ? 40 * n : 4 * n + 3);
      snprintf(name, sizeof name, "bc%u", v);
      CHECK(input_strings_push(&mem, name, strlen(name)) == 0);
      CHECK(input_strings_push(&spilled, name, strlen(name)) == 0);
    }
    char *want = names_smallest_dup(&mem);
    for (int where = 0; where < 2; where++) {
      char *got = NULL;
      const input_strings *s = where ? &spilled : &mem;
      CHECK(input_strings_find_duplicate(s, NULL, NULL, 16, &got) == 0);
      CHECK_MSG(want ? got && !strcmp(got, want) : !got, "trial %d: %s vs %s", trial,
                got ? got : "none", want ? want : "none");
      free(got);
    }
    free(want);
    input_strings_free(&mem);
    input_strings_free(&spilled);
  }
}

#define FIX "tests/data/input/"

/* The 10x fixture read with its names spilled and, where the temporary directory cannot be
 * written, held in memory: the same names either way. */
TEST(input_names_reader_keeps_names_in_memory_without_a_temporary_file) {
  char err[512];
  rctd_input_options options;
  rctd_input_options_init(&options);
  rctd_input *spilled = rctd_input_open(FIX "tenx_v3.h5", &options, err, sizeof err);
  CHECK_MSG(spilled, "%s", err);
  options.tmp_dir = "/nonexistent/rctd-tmp";
  rctd_input *held = rctd_input_open(FIX "tenx_v3.h5", &options, err, sizeof err);
  CHECK_MSG(held, "%s", err);
  CHECK(input_strings_is_spilled(&spilled->barcodes) && !input_strings_is_spilled(&held->barcodes));
  CHECK(rctd_input_n_rows(spilled) == rctd_input_n_rows(held));
  for (int64_t r = 0; r < rctd_input_n_rows(held); r++) {
    const char *a = rctd_input_barcode(held, r), *b = rctd_input_barcode(spilled, r);
    CHECK(a && b && !strcmp(a, b));
  }
  const char *const *all = rctd_input_barcodes(spilled);
  CHECK(all && !strcmp(all[0], rctd_input_barcode(held, 0)));
  rctd_input_close(spilled);
  rctd_input_close(held);
}
