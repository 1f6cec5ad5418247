/* The stream reader: every record read chunk by chunk, loaded whole, or skipped (each chunk's
 * checksum is verified all three ways). */
#include <stdio.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fmemopen((void *)data, size, "rb");
  if (!f) return 0;
  char err[RCTD_ERR_LEN];
  rctd_reader *r = rctd_reader_fopen(f, "fuzz", err, sizeof err);
  if (r) {
    const rctd_record_info *info;
    int i = 0;
    while (rctd_reader_next(r, &info) == 1) {
      int how = (i++ + (int)(size & 3)) % 3;
      if (how == 0) {
        rctd_chunk c;
        while (rctd_reader_chunk(r, &c) == 1) continue;
      } else if (how == 1) {
        rctd_record rec;
        if (rctd_reader_load(r, &rec) == 0) rctd_record_free(&rec);
      } else if (rctd_reader_skip(r) != 0) {
        break;
      }
    }
    rctd_reader_close(r);
  }
  fclose(f);
  return 0;
}
