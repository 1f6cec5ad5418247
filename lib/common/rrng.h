/* rrng: R's default random number stream (R >= 3.6), so that draws match R bit for bit.
 *
 * Generator: Mersenne-Twister as R seeds it with set.seed(seed) (the seed is scrambled by the
 * LCG seed = 69069 * seed + 1, fifty times, then once per state word).  unif_rand() in (0, 1)
 * with R's fixup; sample() by "Rejection" sampling (R_unif_index: 16 random bits per uniform).
 * The whole state lives in the struct: no globals, one stream per struct. */
#ifndef RCTD_RRNG_H
#define RCTD_RRNG_H
#include <stdint.h>

#define RCTD_RRNG_MT_N 624

typedef struct {
  uint32_t mt[RCTD_RRNG_MT_N]; /* twister state words */
  int mti;                     /* next word to temper; RCTD_RRNG_MT_N means "regenerate first" */
} rctd_rrng;

/* set.seed(seed) with kind "Mersenne-Twister". */
void rctd_rrng_seed(rctd_rrng *rng, int32_t seed);

/* unif_rand(): one uniform in (0, 1) (runif(1) in R). */
double rctd_rrng_unif(rctd_rrng *rng);

/* R_unif_index(n): uniform integer in [0, n), 0-based; consumes at least one uniform even
 * when n == 1 (as R does); returns 0 without drawing when n <= 0. */
double rctd_rrng_index(rctd_rrng *rng, double n);

/* sample.int(n, k) without replacement, 1-based results like R, written to out_k[0..k).
 * Needs k <= n.  For n <= 1e7 (or k > n/2) this is R's do_sample (its working array of n ints
 * kept as a map of the k entries it changes: memory O(k));
 * for n > 1e7 and k <= n/2 it is R's hashed sample2 (redraw on duplicate), which R uses there.
 * Returns 0, or -1 when k > n, n < 0, or memory runs out. */
int rctd_rrng_sample(rctd_rrng *rng, int n, int k, int *out_k);

/* sample.int(n, k, replace = TRUE), 1-based results. */
void rctd_rrng_sample_replace(rctd_rrng *rng, int n, int k, int *out_k);

#endif
