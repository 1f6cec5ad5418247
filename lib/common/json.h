/* JSON text helpers shared by the writers of JSON summaries (rctd-merge --json, --multiqc). */
#ifndef RCTD_JSON_H
#define RCTD_JSON_H
#include <stdio.h>

/* Writes S as a JSON string literal: quotes, '"' and '\\' escaped, control bytes as \u00XX. */
void rctd_json_string(FILE *f, const char *s);

#endif
