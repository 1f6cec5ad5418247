/* Cell type labels to factor levels in R's factor() order (input_internal.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "input_internal.h"

static int input_parse_number(const char *s, double *value) {
  if (!*s) return 0;
  char *end;
  errno = 0;
  *value = strtod(s, &end);
  while (*end == ' ') end++;
  return *end == '\0' && errno == 0 && isfinite(*value);
}

typedef struct {
  const char *label;
  double number;
} input_level;

static int input_cmp_level_number(const void *a, const void *b) {
  const input_level *x = a, *y = b;
  if (x->number != y->number) return x->number < y->number ? -1 : 1;
  return strcmp(x->label, y->label);
}

static int input_cmp_level_label(const void *a, const void *b) {
  const input_level *x = a, *y = b;
  return strcmp(x->label, y->label);
}

static int64_t input_find_level(const input_level *levels, int64_t n, const char *label,
                                int numeric) {
  input_level key = {label, 0};
  if (numeric) input_parse_number(label, &key.number);
  const input_level *hit = bsearch(&key, levels, (size_t)n, sizeof *levels,
                                   numeric ? input_cmp_level_number : input_cmp_level_label);
  return hit ? hit - levels : -1;
}

int input_labels_to_factor(rctd_input *input, const char *const *labels_n, int64_t n, char *err,
                           size_t err_size) {
  input_level *levels = malloc((size_t)(n ? n : 1) * sizeof *levels);
  input->type_codes = malloc((size_t)(n ? n : 1) * sizeof *input->type_codes);
  if (!levels || !input->type_codes) {
    free(levels);
    return input_fail(err, err_size, input->path, "out of memory");
  }
  int64_t n_levels = 0;
  int numeric = 1;
  for (int64_t i = 0; i < n; i++) {
    if (!labels_n[i]) continue;
    levels[n_levels].label = labels_n[i];
    if (!input_parse_number(labels_n[i], &levels[n_levels].number)) numeric = 0;
    n_levels++;
  }
  int (*cmp)(const void *, const void *) = numeric ? input_cmp_level_number : input_cmp_level_label;
  qsort(levels, (size_t)n_levels, sizeof *levels, cmp);
  int64_t unique = 0;
  for (int64_t i = 0; i < n_levels; i++)
    if (unique == 0 || strcmp(levels[unique - 1].label, levels[i].label) != 0)
      levels[unique++] = levels[i];
  input_strings_init(&input->type_names);
  for (int64_t k = 0; k < unique; k++)
    if (input_strings_push(&input->type_names, levels[k].label, strlen(levels[k].label)) != 0) {
      free(levels);
      return input_fail(err, err_size, input->path, "out of memory");
    }
  for (int64_t i = 0; i < n; i++)
    input->type_codes[i] =
        labels_n[i] ? (int32_t)input_find_level(levels, unique, labels_n[i], numeric) : -1;
  free(levels);
  if (input_strings_seal(&input->type_names) != 0)
    return input_fail(err, err_size, input->path, "out of memory");
  return 0;
}
