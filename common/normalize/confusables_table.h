/* The confusables table generated from Unicode's confusables.txt (scripts/gen_confusables.py):
 * non-ASCII code points that look like ASCII text, with the ASCII they look like. */
#ifndef TW_CONFUSABLES_TABLE_H
#define TW_CONFUSABLES_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t cp;
    char proto[8]; /* NUL-terminated ASCII prototype, at most 7 bytes */
} confusable_t;

extern const confusable_t confusables_table[]; /* sorted by cp */
extern const size_t confusables_table_len;
extern const char confusables_table_version[];

#endif
