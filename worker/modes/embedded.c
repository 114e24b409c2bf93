#include "modes/embedded.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util/err.h"
#include "util/log.h"

const embedded_file_t *embedded_find(const char *path)
{
    for (size_t i = 0; i < embedded_nfiles; i++)
        if (strcmp(embedded_files[i].path, path) == 0)
            return &embedded_files[i];
    return NULL;
}

static int make_parents(char *path)
{
    for (char *s = path + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        int rc = mkdir(path, 0700);
        *s = '/';
        if (rc != 0 && errno != EEXIST)
            return TW_ERR_IO;
    }
    return 0;
}

int embedded_write_all(const char *dir)
{
    for (size_t i = 0; i < embedded_nfiles; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, embedded_files[i].path);
        if (make_parents(path) != 0)
            return TW_ERR_IO;
        FILE *f = fopen(path, "wb");
        if (!f ||
            fwrite(embedded_files[i].data, 1, embedded_files[i].len, f) != embedded_files[i].len) {
            log_error("%s: cannot write: %s", path, strerror(errno));
            if (f)
                fclose(f);
            return TW_ERR_IO;
        }
        if (fclose(f) != 0)
            return TW_ERR_IO;
    }
    return 0;
}
