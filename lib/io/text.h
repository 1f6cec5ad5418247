/* Delimited text, line by line (plain or gzip), and the field splitter every CSV/TSV reader uses:
 * the readers (input_*.c), the reference's class table, the synthetic data's CSVs.  Implemented
 * in input_csv.c. */
#ifndef RCTD_TEXT_H
#define RCTD_TEXT_H
#include <stddef.h>
#include <stdint.h>

typedef struct input_text input_text;
input_text *input_text_open(const char *path, char *err, size_t err_size); /* plain or .gz */
/* Next line without the newline (NULL at end or error; *err set on error). */
char *input_text_line(input_text *text, size_t *len, char *err, size_t err_size);
int64_t input_text_line_no(const input_text *text);
void input_text_close(input_text *text);
/* Splits line in place on delim, handling "quoted" fields (doubled quotes inside). Returns the
 * number of fields; fields beyond max_fields are counted but not stored. */
int64_t input_split(char *line, char delim, char **fields, int64_t max_fields);
/* ',' or '\t' for a header line: tab when it has tabs and no commas. */
char input_guess_delim(const char *line);

#endif
