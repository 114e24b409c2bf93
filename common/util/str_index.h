/* A sorted index of strings (rule ids) to their positions: built once, looked up by binary
 * search. Used where two generations of a rule set meet (metrics carried over a reload, rules
 * diff), which must agree on what "the same rule" means: equal ids. */
#ifndef TW_STR_INDEX_H
#define TW_STR_INDEX_H

#include <stddef.h>

typedef struct {
    const char *key;
    size_t position;
} str_index_entry_t;

typedef struct {
    str_index_entry_t *entries; /* sorted by key */
    size_t count;
} str_index_t;

/* Indexes keys[0, n) (borrowed: they must outlive the index). Returns 0 or TW_ERR_NOMEM (the
 * index is then empty). */
int str_index_build(str_index_t *ix, const char *const *keys, size_t n);
/* The position of key, or SIZE_MAX when absent (the first position for repeated keys is not
 * promised). */
size_t str_index_find(const str_index_t *ix, const char *key);
void str_index_fini(str_index_t *ix);

#endif
