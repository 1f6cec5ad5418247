/* Bounded-memory transpose of genes-major inputs (CSC h5ad, spacexr CSV, MTX) into a row-major
 * CSR temporary file.
 *
 * Entries are appended unsorted to a spill file while rows are counted.  finish() lays out the
 * CSR file from the row counts, distributes the spill into row blocks (each block has a small
 * write buffer) and then sorts each block by row in memory, so that any row range is one
 * contiguous read.  Memory: 8 bytes per row plus about 25 MiB of buffers, whatever the size of
 * the matrix.  Both files are unlinked at creation, so they vanish with the process. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_out.h"
#include "input_internal.h"

typedef struct {
  int32_t col;
  uint32_t row;
  double value;
} input_tx_rec;

#define INPUT_TX_SPILL_RECS 65536      /* spill write/read buffer */
#define INPUT_TX_BLOCK_NNZ (1 << 18)   /* entries per sort block (4 MiB, held twice) */
#define INPUT_TX_BUFFER_RECS (1 << 20) /* all block write buffers together (16 MiB) */

struct input_tx {
  char *path; /* input file, for messages */
  int64_t n_rows, nnz;
  int64_t *row_ptr; /* n_rows + 1; before finish, row_ptr[r + 1] counts row r */
  int spill_fd, csr_fd;
  input_tx_rec *spill_buf;
  size_t spill_len;
  int finished;
  input_tx_rec *read_buf;
  size_t read_cap;
};

input_tx *input_tx_create(const char *path, int64_t n_rows, const char *tmp_dir, char *err,
                          size_t err_size) {
  if (n_rows > (int64_t)UINT32_MAX) {
    input_fail(err, err_size, path, "%lld rows: more than this reader handles (2^32 - 1)",
               (long long)n_rows);
    return NULL;
  }
  input_tx *tx = calloc(1, sizeof *tx);
  if (!tx) {
    input_fail(err, err_size, path, "out of memory");
    return NULL;
  }
  tx->spill_fd = tx->csr_fd = -1;
  tx->n_rows = n_rows;
  tx->path = strdup(path);
  tx->row_ptr = calloc((size_t)n_rows + 1, sizeof *tx->row_ptr);
  tx->spill_buf = malloc(INPUT_TX_SPILL_RECS * sizeof *tx->spill_buf);
  if (!tx->path || !tx->row_ptr || !tx->spill_buf) {
    input_fail(err, err_size, path, "out of memory");
    input_tx_free(tx);
    return NULL;
  }
  tx->spill_fd = rctd_temp_fd(tmp_dir, "rctd-input");
  tx->csr_fd = rctd_temp_fd(tmp_dir, "rctd-input");
  if (tx->spill_fd < 0 || tx->csr_fd < 0) {
    input_fail(err, err_size, path,
               "cannot create a temporary file in %s: %s: set TMPDIR to a writable directory",
               rctd_temp_dir(tmp_dir), strerror(errno));
    input_tx_free(tx);
    return NULL;
  }
  return tx;
}

static int input_tx_flush_spill(input_tx *tx, char *err, size_t err_size) {
  if (tx->spill_len == 0) return 0;
  off_t offset = (off_t)(tx->nnz - (int64_t)tx->spill_len) * (off_t)sizeof(input_tx_rec);
  if (rctd_pwrite_all(tx->spill_fd, tx->spill_buf, tx->spill_len * sizeof(input_tx_rec), offset))
    return input_fail(err, err_size, tx->path,
                      "cannot write the temporary transpose file: %s: free disk space or set "
                      "TMPDIR",
                      strerror(errno));
  tx->spill_len = 0;
  return 0;
}

int input_tx_add(input_tx *tx, int64_t row, int32_t col, double value, char *err, size_t err_size) {
  if (row < 0 || row >= tx->n_rows)
    return input_fail(err, err_size, tx->path, "row %lld out of range: the file is corrupt",
                      (long long)row + 1);
  tx->spill_buf[tx->spill_len++] = (input_tx_rec){col, (uint32_t)row, value};
  tx->row_ptr[row + 1]++;
  tx->nnz++;
  if (tx->spill_len == INPUT_TX_SPILL_RECS) return input_tx_flush_spill(tx, err, err_size);
  return 0;
}

int64_t input_tx_nnz(const input_tx *tx) {
  return tx->nnz;
}

/* Block of a row: blocks are row ranges [block_rows[b], block_rows[b + 1]). */
static int64_t input_tx_block_of(const int64_t *block_rows, int64_t n_blocks, int64_t row) {
  int64_t lo = 0, hi = n_blocks - 1;
  while (lo < hi) {
    int64_t mid = (lo + hi + 1) / 2;
    if (block_rows[mid] <= row)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

static int input_tx_distribute(input_tx *tx, const int64_t *block_rows, int64_t n_blocks, char *err,
                               size_t err_size) {
  int64_t per_block = INPUT_TX_BUFFER_RECS / n_blocks;
  if (per_block < 64) per_block = 64;
  if (per_block > 16384) per_block = 16384;
  input_tx_rec *buffers = malloc((size_t)(n_blocks * per_block) * sizeof *buffers);
  int64_t *fill = calloc((size_t)n_blocks, sizeof *fill);
  int64_t *cursor = malloc((size_t)n_blocks * sizeof *cursor);
  int rc = 0;
  if (!buffers || !fill || !cursor) rc = input_fail(err, err_size, tx->path, "out of memory");
  for (int64_t b = 0; rc == 0 && b < n_blocks; b++) cursor[b] = tx->row_ptr[block_rows[b]];
  for (int64_t done = 0; rc == 0 && done < tx->nnz;) {
    int64_t count = tx->nnz - done < INPUT_TX_SPILL_RECS ? tx->nnz - done : INPUT_TX_SPILL_RECS;
    if (rctd_pread_all(tx->spill_fd, tx->spill_buf, (size_t)count * sizeof(input_tx_rec),
                       (off_t)done * (off_t)sizeof(input_tx_rec))) {
      rc = input_fail(err, err_size, tx->path, "cannot read the temporary transpose file");
      break;
    }
    for (int64_t i = 0; i < count && rc == 0; i++) {
      int64_t b = input_tx_block_of(block_rows, n_blocks, tx->spill_buf[i].row);
      buffers[b * per_block + fill[b]++] = tx->spill_buf[i];
      if (fill[b] < per_block) continue;
      if (rctd_pwrite_all(tx->csr_fd, buffers + b * per_block,
                          (size_t)fill[b] * sizeof(input_tx_rec),
                          (off_t)cursor[b] * (off_t)sizeof(input_tx_rec)))
        rc = input_fail(err, err_size, tx->path,
                        "cannot write the temporary transpose file: %s: free disk space or set "
                        "TMPDIR",
                        strerror(errno));
      cursor[b] += fill[b];
      fill[b] = 0;
    }
    done += count;
  }
  for (int64_t b = 0; rc == 0 && b < n_blocks; b++) {
    if (fill[b] == 0) continue;
    if (rctd_pwrite_all(tx->csr_fd, buffers + b * per_block, (size_t)fill[b] * sizeof(input_tx_rec),
                        (off_t)cursor[b] * (off_t)sizeof(input_tx_rec)))
      rc = input_fail(err, err_size, tx->path, "cannot write the temporary transpose file: %s",
                      strerror(errno));
  }
  free(buffers);
  free(fill);
  free(cursor);
  return rc;
}

/* Sorts each block's entries by row (stable: arrival order kept within a row). */
static int input_tx_sort_blocks(input_tx *tx, const int64_t *block_rows, int64_t n_blocks,
                                char *err, size_t err_size) {
  int64_t max_nnz = 0, max_rows = 0;
  for (int64_t b = 0; b < n_blocks; b++) {
    int64_t nnz = tx->row_ptr[block_rows[b + 1]] - tx->row_ptr[block_rows[b]];
    if (nnz > max_nnz) max_nnz = nnz;
    if (block_rows[b + 1] - block_rows[b] > max_rows) max_rows = block_rows[b + 1] - block_rows[b];
  }
  input_tx_rec *in = malloc((size_t)(max_nnz ? max_nnz : 1) * sizeof *in);
  input_tx_rec *out = malloc((size_t)(max_nnz ? max_nnz : 1) * sizeof *out);
  int64_t *next = malloc((size_t)(max_rows ? max_rows : 1) * sizeof *next);
  int rc = 0;
  if (!in || !out || !next) rc = input_fail(err, err_size, tx->path, "out of memory");
  for (int64_t b = 0; rc == 0 && b < n_blocks; b++) {
    int64_t row0 = block_rows[b], base = tx->row_ptr[row0];
    int64_t nnz = tx->row_ptr[block_rows[b + 1]] - base;
    if (nnz == 0) continue;
    off_t offset = (off_t)base * (off_t)sizeof(input_tx_rec);
    if (rctd_pread_all(tx->csr_fd, in, (size_t)nnz * sizeof *in, offset)) {
      rc = input_fail(err, err_size, tx->path, "cannot read the temporary transpose file");
      break;
    }
    for (int64_t r = row0; r < block_rows[b + 1]; r++) next[r - row0] = tx->row_ptr[r] - base;
    for (int64_t i = 0; i < nnz; i++) out[next[in[i].row - row0]++] = in[i];
    if (rctd_pwrite_all(tx->csr_fd, out, (size_t)nnz * sizeof *out, offset))
      rc = input_fail(err, err_size, tx->path, "cannot write the temporary transpose file: %s",
                      strerror(errno));
  }
  free(in);
  free(out);
  free(next);
  return rc;
}

int input_tx_finish(input_tx *tx, char *err, size_t err_size) {
  if (input_tx_flush_spill(tx, err, err_size)) return -1;
  for (int64_t r = 0; r < tx->n_rows; r++) tx->row_ptr[r + 1] += tx->row_ptr[r];
  /* Row blocks of at most INPUT_TX_BLOCK_NNZ entries and rows (a longer row is its own block). */
  int64_t n_blocks = 0, cap = 16;
  int64_t *block_rows = malloc((size_t)cap * sizeof *block_rows);
  if (!block_rows) return input_fail(err, err_size, tx->path, "out of memory");
  block_rows[n_blocks++] = 0;
  for (int64_t r = 0; r < tx->n_rows; r++) {
    int64_t start = block_rows[n_blocks - 1];
    int full = tx->row_ptr[r + 1] - tx->row_ptr[start] > INPUT_TX_BLOCK_NNZ ||
               r + 1 - start > INPUT_TX_BLOCK_NNZ;
    if (!full || r == start) continue;
    if (n_blocks + 1 >= cap) {
      cap *= 2;
      int64_t *grown = realloc(block_rows, (size_t)cap * sizeof *grown);
      if (!grown) {
        free(block_rows);
        return input_fail(err, err_size, tx->path, "out of memory");
      }
      block_rows = grown;
    }
    block_rows[n_blocks++] = r;
  }
  block_rows[n_blocks] = tx->n_rows;
  int rc = input_tx_distribute(tx, block_rows, n_blocks, err, err_size);
  if (rc == 0) rc = input_tx_sort_blocks(tx, block_rows, n_blocks, err, err_size);
  free(block_rows);
  close(tx->spill_fd);
  tx->spill_fd = -1;
  free(tx->spill_buf);
  tx->spill_buf = NULL;
  tx->finished = rc == 0;
  return rc;
}

int input_tx_read_rows(void *state, int64_t row_begin, int64_t row_end, rctd_csr_chunk *chunk,
                       char *err, size_t err_size) {
  input_tx *tx = state;
  if (!tx->finished) return input_fail(err, err_size, tx->path, "internal: transpose unfinished");
  int64_t base = tx->row_ptr[row_begin], nnz = tx->row_ptr[row_end] - base;
  if (input_chunk_reserve(chunk, row_end - row_begin, nnz) != 0)
    return input_fail(err, err_size, tx->path, "out of memory");
  if ((size_t)nnz > tx->read_cap) {
    input_tx_rec *buf = realloc(tx->read_buf, (size_t)nnz * sizeof *buf);
    if (!buf) return input_fail(err, err_size, tx->path, "out of memory");
    tx->read_buf = buf;
    tx->read_cap = (size_t)nnz;
  }
  if (nnz > 0 && rctd_pread_all(tx->csr_fd, tx->read_buf, (size_t)nnz * sizeof(input_tx_rec),
                                (off_t)base * (off_t)sizeof(input_tx_rec)))
    return input_fail(err, err_size, tx->path, "cannot read the temporary transpose file");
  for (int64_t r = row_begin; r <= row_end; r++)
    chunk->row_ptr[r - row_begin] = tx->row_ptr[r] - base;
  for (int64_t i = 0; i < nnz; i++) {
    chunk->gene_idx[i] = tx->read_buf[i].col;
    chunk->values[i] = tx->read_buf[i].value;
  }
  chunk->nnz = nnz;
  return 0;
}

void input_tx_free(void *state) {
  input_tx *tx = state;
  if (!tx) return;
  if (tx->spill_fd >= 0) close(tx->spill_fd);
  if (tx->csr_fd >= 0) close(tx->csr_fd);
  free(tx->path);
  free(tx->row_ptr);
  free(tx->spill_buf);
  free(tx->read_buf);
  free(tx);
}
