/* Files built into the binary (the example rules and posts) for `tidewatch demo`. */
#ifndef TW_EMBEDDED_H
#define TW_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *path; /* relative to examples/ */
    const unsigned char *data;
    size_t len;
} embedded_file_t;

extern const embedded_file_t embedded_files[];
extern const size_t embedded_nfiles;

/* Returns the file with this relative path, or NULL. */
const embedded_file_t *embedded_find(const char *path);

/* Writes every embedded file under dir (created as needed). Returns 0 or TW_ERR_IO. */
int embedded_write_all(const char *dir);

#endif
