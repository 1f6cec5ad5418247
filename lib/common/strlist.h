/* Arrays of N heap strings (char **, each entry malloc'd): the name and configuration lists of
 * the reference and the model. */
#ifndef RCTD_STRLIST_H
#define RCTD_STRLIST_H
#include <stddef.h>

/* Frees the N entries (NULL entries allowed) and the array; STRINGS may be NULL. */
void rctd_strlist_free(char **strings, size_t n);
/* A copy of the N strings of SRC (an array of at least one entry when N is 0), or NULL when out
 * of memory (nothing left allocated). */
char **rctd_strlist_copy(const char *const *src, size_t n);
/* The first name of the N that appears twice, or NULL (quadratic: for cell type lists). */
const char *rctd_strlist_duplicate(const char *const *names, size_t n);

#endif
