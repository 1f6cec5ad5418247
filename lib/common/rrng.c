/* rrng: R's Mersenne-Twister stream, unif_rand and sample.int (see rrng.h).
 * Arithmetic follows the facts of R's src/main/RNG.c and src/main/random.c. */
#include "rrng.h"

#include <math.h>
#include <stdlib.h>

#define RRNG_M 397
#define RRNG_MATRIX_A 0x9908b0dfU
#define RRNG_UPPER_MASK 0x80000000U
#define RRNG_LOWER_MASK 0x7fffffffU
#define RRNG_TEMPER_B 0x9d2c5680U
#define RRNG_TEMPER_C 0xefc60000U
/* 1 / (2^32 - 1): R keeps unif_rand strictly inside (0, 1) with half of it. */
#define RRNG_I2_32M1 2.328306437080797e-10

void rctd_rrng_seed(rctd_rrng *rng, int32_t seed) {
  uint32_t s = (uint32_t)seed;
  for (int j = 0; j < 50; j++) s = 69069U * s + 1U;
  /* R fills 625 words: word 0 is the position (mti), then the 624 state words.  The value put
   * in word 0 is then overwritten by the "initial" fixup that sets mti = 624. */
  s = 69069U * s + 1U;
  for (int j = 0; j < RCTD_RRNG_MT_N; j++) {
    s = 69069U * s + 1U;
    rng->mt[j] = s;
  }
  rng->mti = RCTD_RRNG_MT_N;
}

static void rrng_twist(rctd_rrng *rng) {
  static const uint32_t mag01[2] = {0x0U, RRNG_MATRIX_A};
  uint32_t *mt = rng->mt;
  int kk;
  uint32_t y;
  for (kk = 0; kk < RCTD_RRNG_MT_N - RRNG_M; kk++) {
    y = (mt[kk] & RRNG_UPPER_MASK) | (mt[kk + 1] & RRNG_LOWER_MASK);
    mt[kk] = mt[kk + RRNG_M] ^ (y >> 1) ^ mag01[y & 0x1U];
  }
  for (; kk < RCTD_RRNG_MT_N - 1; kk++) {
    y = (mt[kk] & RRNG_UPPER_MASK) | (mt[kk + 1] & RRNG_LOWER_MASK);
    mt[kk] = mt[kk + (RRNG_M - RCTD_RRNG_MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
  }
  y = (mt[RCTD_RRNG_MT_N - 1] & RRNG_UPPER_MASK) | (mt[0] & RRNG_LOWER_MASK);
  mt[RCTD_RRNG_MT_N - 1] = mt[RRNG_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
  rng->mti = 0;
}

/* MT_genrand: [0, 1) with 32-bit resolution. */
static double rrng_genrand(rctd_rrng *rng) {
  if (rng->mti >= RCTD_RRNG_MT_N) rrng_twist(rng);
  uint32_t y = rng->mt[rng->mti++];
  y ^= (y >> 11);
  y ^= (y << 7) & RRNG_TEMPER_B;
  y ^= (y << 15) & RRNG_TEMPER_C;
  y ^= (y >> 18);
  return (double)y * 2.3283064365386963e-10;
}

double rctd_rrng_unif(rctd_rrng *rng) {
  double x = rrng_genrand(rng);
  if (x <= 0.0) return 0.5 * RRNG_I2_32M1;
  if ((1.0 - x) <= 0.0) return 1.0 - 0.5 * RRNG_I2_32M1;
  return x;
}

/* A random integer below 2^bits, built 16 bits per uniform, high chunks first (the product is
 * in (0, 65536): truncation is R's floor).  From 48 bits on, four chunks make 64 bits: R's
 * 64-bit integer wraps there, which is defined for an unsigned one (the kept low bits are the
 * same). */
static double rrng_bits(rctd_rrng *rng, int bits) {
  uint64_t v = 0;
  for (int n = 0; n <= bits; n += 16) {
    const int v1 = (int)(rctd_rrng_unif(rng) * 65536);
    v = 65536 * v + (uint64_t)v1;
  }
  return (double)(v & (((uint64_t)1 << bits) - 1));
}

/* ceil(log2(n)) for n > 0, as R computes it, without the libm call that a draw would otherwise
 * pay: for a whole n in [1, 2^32] (every sample size), the bit length of n - 1: log2 is exact
 * at powers of two, and for n in (2^k, 2^(k+1)], k < 32, log2(n) is at least 2^-k / ln 2 above
 * k, over 10^5 ulps.  Not for larger n: log2(2^49 + 1) rounds to 49 (as 2^52 + 11 does to 52),
 * and R then draws one bit fewer than the bit length says. */
static int rrng_ceil_log2(double n) {
  if (n >= 1 && n <= 4294967296.0 && n == (double)(int64_t)n) {
    const uint64_t m = (uint64_t)n - 1;
    return m ? 64 - __builtin_clzll(m) : 0;
  }
  return (int)ceil(log2(n));
}

double rctd_rrng_index(rctd_rrng *rng, double n) {
  if (n <= 0) return 0.0;
  int bits = rrng_ceil_log2(n);
  double dv;
  do {
    dv = rrng_bits(rng, bits);
  } while (n <= dv);
  return dv;
}

void rctd_rrng_sample_replace(rctd_rrng *rng, int n, int k, int *out_k) {
  for (int i = 0; i < k; i++) out_k[i] = (int)(rctd_rrng_index(rng, (double)n) + 1);
}

/* R's sample2 (n > 1e7, k <= n/2): draw, redraw while the value was already drawn.  An open
 * addressing set of the values so far keeps it O(k). */
static int rrng_sample_hashed(rctd_rrng *rng, int n, int k, int *out_k) {
  size_t cap = 16;
  while (cap < 2 * (size_t)k) cap <<= 1;
  int *set = calloc(cap, sizeof *set); /* 0 = empty; values are 1-based */
  if (!set) return -1;
  for (int i = 0; i < k;) {
    int v = (int)(rctd_rrng_index(rng, (double)n) + 1);
    size_t h = ((uint32_t)v * 2654435761U) & (cap - 1);
    while (set[h] != 0 && set[h] != v) h = (h + 1) & (cap - 1);
    if (set[h] == v) continue;
    set[h] = v;
    out_k[i++] = v;
  }
  free(set);
  return 0;
}

/* R's do_sample works on a pool 0..n-1: draw j among the `left` first entries, take pool[j],
 * move the last entry into j.  Only the k entries it writes differ from pool[i] = i, so a map of
 * those (open addressing, keys 1-based: 0 = empty) gives the same draws in O(k) memory, however
 * large n is (sigma draws N_fit = 1000 of up to 10^6 pixels); the array itself serves when it is
 * no larger (k close to n). */
typedef struct {
  int *key, *value;
  size_t mask;
} rrng_pool;

static int *rrng_pool_slot(rrng_pool *p, int i) {
  size_t h = ((uint32_t)(i + 1) * 2654435761U) & p->mask;
  while (p->key[h] != 0 && p->key[h] != i + 1) h = (h + 1) & p->mask;
  return &p->key[h];
}

static int rrng_pool_get(rrng_pool *p, int i) {
  int *slot = rrng_pool_slot(p, i);
  return *slot ? p->value[slot - p->key] : i;
}

static void rrng_pool_set(rrng_pool *p, int i, int v) {
  int *slot = rrng_pool_slot(p, i);
  *slot = i + 1;
  p->value[slot - p->key] = v;
}

/* The same with the working array itself (when it is no larger than the map). */
static int rrng_sample_array(rctd_rrng *rng, int n, int k, int *out_k) {
  int *pool_n = malloc((size_t)n * sizeof *pool_n);
  if (!pool_n) return -1;
  for (int i = 0; i < n; i++) pool_n[i] = i;
  int left = n;
  for (int i = 0; i < k; i++) {
    int j = (int)rctd_rrng_index(rng, (double)left);
    out_k[i] = pool_n[j] + 1;
    pool_n[j] = pool_n[--left];
  }
  free(pool_n);
  return 0;
}

int rctd_rrng_sample(rctd_rrng *rng, int n, int k, int *out_k) {
  if (n < 0 || k < 0 || k > n) return -1;
  if (n > 10000000 && k <= n / 2) return rrng_sample_hashed(rng, n, k, out_k);
  if (k < 2) { /* R draws these directly, as with replacement: same result, no work array */
    rctd_rrng_sample_replace(rng, n, k, out_k);
    return 0;
  }
  size_t cap = 16;
  while (cap < 2 * (size_t)k) cap <<= 1;
  if ((size_t)n <= 2 * cap) return rrng_sample_array(rng, n, k, out_k); /* no larger than the map */
  rrng_pool pool = {calloc(cap, sizeof(int)), malloc(cap * sizeof(int)), cap - 1};
  if (!pool.key || !pool.value) {
    free(pool.key), free(pool.value);
    return -1;
  }
  int left = n;
  for (int i = 0; i < k; i++) {
    int j = (int)rctd_rrng_index(rng, (double)left);
    out_k[i] = rrng_pool_get(&pool, j) + 1;
    left--;
    rrng_pool_set(&pool, j, rrng_pool_get(&pool, left));
  }
  free(pool.key);
  free(pool.value);
  return 0;
}
