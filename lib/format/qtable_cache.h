/* Likelihood tables on demand: computed with the kernel (kernels/rctd_kernels.h, rows split
 * across threads) and cached on disk in the stream format, so a run pays for a sigma's table
 * once per machine.
 *
 * A table is identified by its sigma grid value (10..200, sigma_c = value / 100) and holds rows
 * k = 0..n_k-1 (a run needs n_k = min(largest count, RCTD_K_VAL) + 1; at most RCTD_N_K_FULL).
 *
 * Cache entry: DIR/qtable-v<RCTD_QTABLE_VERSION>-s<sigma>.rctd, a stream of four records
 * (the records rctd_qtable_write_records puts in a model stream, plus the blocks):
 *   qtable.meta  meta: format rctd-qtable, version, sigma, sigma_c (hex), n_k, n_x, crc32,
 *                block_rows (8), block_crc32 (per block of rows: crc32 of its q rows then its
 *                sq rows, space-separated)
 *   qtable.x     f64 439        the X grid
 *   qtable.q     f64 n_k x 439  log P(Y = k | x), floored at 1e-300; one chunk per block
 *   qtable.sq    f64 n_k x 439  spline second derivatives along x; one chunk per block
 * A reader that keeps few rows (keep_rows) decodes and checks only the blocks holding them and
 * skips the others' frames.  An entry may lack blocks (a cold run keeping few rows computes only
 * the blocks holding them: about 2.4x less CPU for chooseSigma's candidates): an absent block
 * is stored as zeros with "-" in block_crc32, and the entry's crc32 is then "-" too, so that a
 * whole-table reader (a model stream's, or an older build's) never takes it.  A get that needs
 * an absent block computes the lacking blocks holding rows it wants (rows are independent: the
 * same bits as a whole table's) and stores the entry again with them.  An entry is used only when
 * every field matches what this build computes (version, sigma, the X grid bit for bit, shapes, and
 * the crc32 of every block read); anything else (missing, unreadable, truncated, stale, corrupt,
 * fewer rows than needed) is recomputed and rewritten, atomically (temporary file + rename), so
 * concurrent runs never see a partial entry.  An entry path that is not a regular file (a FIFO,
 * a symbolic link, a directory) is neither read nor written: the table is computed, not cached.
 * An entry of the first layout (no blocks: crc32 over
 * all the data, as in a model stream) is read whole and stored again in blocks.  A cache that
 * cannot be written is not an error: the table is still returned. */
#ifndef RCTD_QTABLE_CACHE_H
#define RCTD_QTABLE_CACHE_H
#include <stddef.h>

#include "rctd_kernels.h"
#include "stream.h"

#define RCTD_QTABLE_FORMAT "rctd-qtable"
/* Bump when the tables' numbers change (quadrature, grid, spline): old entries become stale. */
#define RCTD_QTABLE_VERSION 1

#define RCTD_QTABLE_REC_META "qtable.meta"
#define RCTD_QTABLE_REC_X "qtable.x"
#define RCTD_QTABLE_REC_Q "qtable.q"
#define RCTD_QTABLE_REC_SQ "qtable.sq"

/* A table with its storage (heap arrays; the struct may be copied).  table is the view the
 * kernels take: {n_k, x_vals, q_kx, sq_kx}. */
typedef struct {
  int sigma_value;      /* grid value, e.g. 84 */
  double sigma_c;       /* sigma_value / 100 */
  double *x_vals;       /* RCTD_N_X */
  double *q_kx, *sq_kx; /* n_k x RCTD_N_X each */
  /* NULL when every row is set; else (a keep_rows read) n_k flags, 1 for the rows read: the
   * others' memory is unset, and poisoned under AddressSanitizer so that a read of one fails
   * loudly in the sanitizer build (kernels/common/poison.h) */
  unsigned char *row_loaded;
  rctd_qtable table;
} rctd_qtable_owned;

/* Whether row K (0 <= K < n_k) of T holds the table's values. */
int rctd_qtable_row_loaded(const rctd_qtable_owned *t, int k);

typedef struct {
  const char *cache_dir; /* NULL: the default (rctd_qtable_cache_dir_default); "": no cache */
  int n_threads;         /* threads computing rows; < 1 means 1 */
  rctd_backend *backend; /* optional: computes whole tables (rows 0..n_k-1) when given */
  /* optional (n_k flags): the table returned holds only these rows' values, the others'
   * memory is left unset (and, for a large table read from the cache, untouched; row_loaded
   * says which): for a caller that reads no other row (chooseSigma's candidates).  Rows not in
   * the cache are computed only in the blocks holding these rows. */
  const unsigned char *keep_rows;
} rctd_qtable_opts;

/* The default cache directory: $XDG_CACHE_HOME/rctd when XDG_CACHE_HOME is an absolute path,
 * else $HOME/.cache/rctd.  0, or -1 when neither is available (then no cache is used). */
int rctd_qtable_cache_dir_default(char *buf, size_t len);

/* The table for sigma grid value SIGMA_VALUE with rows 0..n_k-1 (n_k in 1..RCTD_N_K_FULL):
 * from the cache when a valid entry has at least n_k rows (extra rows are dropped) in blocks
 * present, else computed (only the blocks a valid entry lacks and the caller needs) and
 * written back.  The note names the rows computed ("rows 0..7, 32..39 computed").  Returns 0, or -1
 * with a message in err (sigma not on the grid, bad n_k, out of memory, computation failed).  When
 * NOTE is not NULL it receives a line about the cache (what was used, rebuilt or could not be
 * written; "" when nothing to say) for a tool to print at verbose level. */
int rctd_qtable_get(int sigma_value, int n_k, const rctd_qtable_opts *opts, rctd_qtable_owned *out,
                    char *note, size_t note_len, char *err, size_t err_len);
void rctd_qtable_owned_free(rctd_qtable_owned *t);

/* Rows [k_begin, k_end) of sigma_c's table into q_kx / sq_kx (full-size arrays, rows from 0),
 * split across n_threads threads.  The result does not depend on n_threads.  0 or -1. */
int rctd_qtable_compute(double sigma_c, int k_begin, int k_end, int n_threads, double *q_kx,
                        double *sq_kx);

/* Writes the four qtable.* records of T to W (a cache entry, or a model stream carrying the
 * chosen sigma's table).  0 or -1 (message in rctd_writer_error). */
int rctd_qtable_write_records(rctd_writer *w, const rctd_qtable_owned *t);

/* Reads the four qtable.* records from R: it must be positioned so that the next records are
 * qtable.meta, qtable.x, qtable.q, qtable.sq (in that order; when INFO is not NULL the meta
 * record's header has already been read by rctd_reader_next and *INFO describes it).  Checks
 * them as the cache does; sigma_value and n_k_min (0 = any) are further requirements.  Keeps
 * at most n_k_max rows (0 = all).  0 ok; -1 with a message in err. */
/* Checks loaded qtable.meta, qtable.q and qtable.sq records as rctd_qtable_read_records does
 * (header, shape, crc32 of the data).  0, or -1 with "LABEL: ..." in err. */
int rctd_qtable_check_loaded(const rctd_record *meta, const rctd_record *q, const rctd_record *sq,
                             int sigma_value, const char *label, char *err, size_t err_len);

int rctd_qtable_read_records(rctd_reader *r, const rctd_record_info *info, int sigma_value,
                             int n_k_min, int n_k_max, rctd_qtable_owned *out, char *err,
                             size_t err_len);

#endif
