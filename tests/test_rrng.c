/* rrng: R's random stream, checked against R 4.2 itself.
 * tests/data/rrng/r_stream.txt is a script of set.seed / runif / sample.int calls with R's
 * answers (doubles as hex, so equality is to the bit). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rrng.h"
#include "test.h"

#define RRNG_TEST_DATA "tests/data/rrng"

static int rrng_test_read_ints(FILE *f, int n, int *out) {
  for (int i = 0; i < n; i++)
    if (fscanf(f, "%d", &out[i]) != 1) return -1;
  return 0;
}

TEST(rrng_matches_r_stream) {
  FILE *f = fopen(RRNG_TEST_DATA "/r_stream.txt", "r");
  CHECK_MSG(f != NULL, "cannot open %s/r_stream.txt", RRNG_TEST_DATA);
  rctd_rrng rng;
  int seeded = 0, n_ops = 0, n_values = 0;
  char word[32];
  while (fscanf(f, "%31s", word) == 1) {
    if (word[0] == '#') {
      int c;
      while ((c = fgetc(f)) != EOF && c != '\n') continue;
      continue;
    }
    n_ops++;
    if (strcmp(word, "seed") == 0) {
      int seed;
      CHECK(fscanf(f, "%d", &seed) == 1);
      rctd_rrng_seed(&rng, seed);
      seeded = 1;
      continue;
    }
    CHECK(seeded);
    if (strcmp(word, "runif") == 0) {
      int n;
      CHECK(fscanf(f, "%d", &n) == 1);
      for (int i = 0; i < n; i++) {
        char hex[64];
        CHECK(fscanf(f, "%63s", hex) == 1);
        double want = strtod(hex, NULL), got = rctd_rrng_unif(&rng);
        CHECK_MSG(got == want, "runif op %d value %d: got %a want %a", n_ops, i, got, want);
        n_values++;
      }
      continue;
    }
    CHECK_MSG(strcmp(word, "sample") == 0, "unknown op '%s'", word);
    int n, k, replace;
    CHECK(fscanf(f, "%d %d %d", &n, &k, &replace) == 3);
    int *want = malloc((size_t)k * sizeof *want), *got = malloc((size_t)k * sizeof *got);
    CHECK(want && got);
    int ok = rrng_test_read_ints(f, k, want) == 0;
    if (replace)
      rctd_rrng_sample_replace(&rng, n, k, got);
    else
      ok = ok && rctd_rrng_sample(&rng, n, k, got) == 0;
    int first_bad = -1;
    for (int i = 0; ok && i < k && first_bad < 0; i++)
      if (got[i] != want[i]) first_bad = i;
    int got_bad = first_bad >= 0 ? got[first_bad] : 0,
        want_bad = first_bad >= 0 ? want[first_bad] : 0;
    free(want);
    free(got);
    CHECK_MSG(ok, "sample op %d (n=%d k=%d) could not run", n_ops, n, k);
    CHECK_MSG(first_bad < 0, "sample op %d (n=%d k=%d) draw %d: got %d want %d", n_ops, n, k,
              first_bad, got_bad, want_bad);
    n_values += k;
  }
  fclose(f);
  CHECK_MSG(n_ops > 40 && n_values > 5000, "fixture too small: %d ops, %d values", n_ops, n_values);
}

TEST(rrng_unif_never_hits_bounds_and_index_stays_below_n) {
  rctd_rrng rng;
  rctd_rrng_seed(&rng, 12345);
  for (int i = 0; i < 100000; i++) {
    double u = rctd_rrng_unif(&rng);
    CHECK(u > 0.0 && u < 1.0);
  }
  for (int n = 1; n < 300; n++) {
    double j = rctd_rrng_index(&rng, n);
    CHECK(j >= 0 && j < n && j == (double)(int)j);
  }
  CHECK(rctd_rrng_index(&rng, 0) == 0.0);
}

/* R's R_unif_index written as R writes it (ceil(log2(n)) bits, floor of each 16-bit chunk):
 * the library's integer bit count and truncation must draw the same values from the same
 * stream, at and around powers of two and at sizes sigma samples. */
static double rrng_test_index_r(rctd_rrng *rng, double n) {
  if (n <= 0) return 0.0;
  int bits = (int)ceil(log2(n));
  double dv;
  do {
    uint64_t v = 0; /* R's int_least64_t, which wraps from 48 bits on (defined unsigned) */
    for (int k = 0; k <= bits; k += 16)
      v = 65536 * v + (uint64_t)(int)floor(rctd_rrng_unif(rng) * 65536);
    dv = (double)(v & (((uint64_t)1 << bits) - 1));
  } while (n <= dv);
  return dv;
}

TEST(rrng_index_equals_r_formula) {
  const double sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 65535, 65536, 65537, 384000, 1731000, 2147483647,
                          1 << 20, 1 << 30, 2.5, 1000.75, 4294967296.0,
                          /* where log2 rounds down to the power of two below */
                          562949953421313.0, 4503599627370497.0, 4503599627370507.0};
  rctd_rrng a, b;
  rctd_rrng_seed(&a, 99);
  rctd_rrng_seed(&b, 99);
  int differ = 0;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (int i = 0; i < 200; i++)
      differ += rctd_rrng_index(&a, sizes[s]) != rrng_test_index_r(&b, sizes[s]);
  CHECK_MSG(differ == 0, "%d draws differ", differ);
}

TEST(rrng_sample_without_replacement_is_a_permutation) {
  rctd_rrng rng;
  rctd_rrng_seed(&rng, 99);
  enum { N = 1000 };
  int out[N], seen[N + 1] = {0};
  CHECK(rctd_rrng_sample(&rng, N, N, out) == 0);
  for (int i = 0; i < N; i++) {
    CHECK(out[i] >= 1 && out[i] <= N && !seen[out[i]]);
    seen[out[i]] = 1;
  }
  CHECK(rctd_rrng_sample(&rng, 3, 4, out) == -1);
  CHECK(rctd_rrng_sample(&rng, -1, 0, out) == -1);
  CHECK(rctd_rrng_sample(&rng, 5, 0, out) == 0);
}

/* R's do_sample as R writes it (a working array of n ints), against rctd_rrng_sample (a map of
 * the entries it changes when k is small against n, else the array): the same draws. */
static void rrng_test_do_sample(rctd_rrng *rng, int n, int k, int *out_k) {
  int *x = malloc((size_t)n * sizeof *x);
  for (int i = 0; i < n; i++) x[i] = i;
  for (int i = 0; i < k; i++) {
    int j = (int)rctd_rrng_index(rng, (double)n);
    out_k[i] = x[j] + 1;
    x[j] = x[--n];
  }
  free(x);
}

TEST(rrng_sample_matches_r_working_array) {
  static const int cases[][2] = {{2, 2},         {10, 3},    {10, 10},        {1000, 999},
                                 {1000, 1000},   {5000, 17}, {1000000, 1000}, {9999999, 1000},
                                 {10000000, 64}, {300000, 2}};
  enum { KMAX = 1000 };
  static int got[KMAX], want[KMAX];
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    int n = cases[c][0], k = cases[c][1];
    rctd_rrng a, b;
    rctd_rrng_seed(&a, 7 + (uint32_t)c);
    rctd_rrng_seed(&b, 7 + (uint32_t)c);
    CHECK(rctd_rrng_sample(&a, n, k, got) == 0);
    rrng_test_do_sample(&b, n, k, want);
    CHECK_MSG(memcmp(got, want, (size_t)k * sizeof *got) == 0, "n %d k %d", n, k);
    CHECK(rctd_rrng_unif(&a) == rctd_rrng_unif(&b)); /* the same draws consumed */
  }
}

TEST(rrng_streams_are_independent_structs) {
  rctd_rrng a, b;
  rctd_rrng_seed(&a, 1);
  rctd_rrng_seed(&b, 1);
  double a1 = rctd_rrng_unif(&a);
  (void)rctd_rrng_unif(&a);
  CHECK(rctd_rrng_unif(&b) == a1);
}

/* The vignette run (set.seed(1); Reference; create.RCTD; run.RCTD) as R recorded it: every
 * sample() call in order (tests/data/r/vignette/sample_calls.csv: call,stage,n,size,replace) and
 * its draws (sample_draws.txt, one line per call).  Replaying the same calls on one stream must
 * give the same draws, in particular choose_sigma_c's fit_ind (fit_ind.csv). */
#define RRNG_TEST_VIGNETTE "tests/data/r/vignette"
enum { RRNG_TEST_MAX_CALLS = 64 };

typedef struct {
  char stage[48];
  int n, size, replace;
} rrng_test_call;

static int rrng_test_read_calls(rrng_test_call *calls, int max_calls) {
  FILE *f = fopen(RRNG_TEST_VIGNETTE "/sample_calls.csv", "r");
  if (!f) return -1;
  char line[256];
  int n_calls = 0;
  if (!fgets(line, sizeof line, f)) n_calls = -1; /* header */
  while (n_calls >= 0 && n_calls < max_calls && fgets(line, sizeof line, f)) {
    rrng_test_call *c = &calls[n_calls];
    char rep[8];
    int idx;
    if (sscanf(line, "%d,%47[^,],%d,%d,%7s", &idx, c->stage, &c->n, &c->size, rep) != 5) {
      n_calls = -1;
      break;
    }
    c->replace = strcmp(rep, "TRUE") == 0;
    n_calls++;
  }
  fclose(f);
  return n_calls;
}

TEST(rrng_replays_vignette_sample_calls_and_fit_ind) {
  rrng_test_call calls[RRNG_TEST_MAX_CALLS];
  int n_calls = rrng_test_read_calls(calls, RRNG_TEST_MAX_CALLS);
  CHECK_MSG(n_calls > 0, "cannot read %s/sample_calls.csv", RRNG_TEST_VIGNETTE);
  FILE *draws = fopen(RRNG_TEST_VIGNETTE "/sample_draws.txt", "r");
  CHECK(draws != NULL);
  rctd_rrng rng;
  rctd_rrng_seed(&rng, 1);
  int fit_ind[64], n_fit = -1, n_downsample = 0;
  for (int c = 0; c < n_calls; c++) {
    int k = calls[c].size, bad = -1;
    int *want = malloc((size_t)k * sizeof *want), *got = malloc((size_t)k * sizeof *got);
    int ok = want && got && rrng_test_read_ints(draws, k, want) == 0 &&
             rctd_rrng_sample(&rng, calls[c].n, k, got) == 0 && !calls[c].replace;
    for (int i = 0; ok && i < k && bad < 0; i++)
      if (got[i] != want[i]) bad = i;
    if (ok && strcmp(calls[c].stage, "choose_sigma_c") == 0 && k <= 64) {
      n_fit = k;
      memcpy(fit_ind, got, (size_t)k * sizeof *got);
    }
    if (strcmp(calls[c].stage, "create.RCTD") == 0) n_downsample++;
    free(want);
    free(got);
    if (!ok) fclose(draws);
    CHECK_MSG(ok, "call %d (%s n=%d k=%d) could not be replayed", c + 1, calls[c].stage, calls[c].n,
              k);
    if (bad >= 0) fclose(draws);
    CHECK_MSG(bad < 0, "call %d (%s n=%d k=%d) draw %d differs", c + 1, calls[c].stage, calls[c].n,
              k, bad);
  }
  fclose(draws);
  /* 19 types of 25 cells: create_downsampled_data draws 5 per type, then fit_ind. */
  CHECK(n_downsample == 19);
  CHECK(n_fit == 6);
  FILE *f = fopen(RRNG_TEST_VIGNETTE "/fit_ind.csv", "r");
  CHECK(f != NULL);
  char line[256];
  int rows = 0, ok = fgets(line, sizeof line, f) != NULL;
  while (ok && fgets(line, sizeof line, f)) {
    int order, cand0, pix0;
    ok = sscanf(line, "%d,%d,%d", &order, &cand0, &pix0) == 3 && order == rows && rows < n_fit &&
         fit_ind[rows] == cand0 + 1;
    rows++;
  }
  fclose(f);
  CHECK_MSG(ok && rows == n_fit, "fit_ind differs from R's at row %d", rows - 1);
}
