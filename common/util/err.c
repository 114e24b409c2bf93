#include "util/err.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/array.h"
#include "util/log.h"

typedef struct {
    int code;
    const char *name;
    const char *msg;
    tw_err_class_t cls;
} err_entry_t;

static const err_entry_t err_table[] = {
#define TW_ERR_ROW(name, code, msg, cls) {code, #name, msg, TW_ERR_CLASS_##cls},
    TW_ERR_MAP(TW_ERR_ROW)
#undef TW_ERR_ROW
};

static const err_entry_t *err_lookup(int err)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
        if (err_table[i].code == err)
            return &err_table[i];
    return NULL;
}

const char *tw_err_name(int err)
{
    const err_entry_t *e = err_lookup(err);
    return e ? e->name : "UNKNOWN";
}

const char *tw_err_str(int err)
{
    const err_entry_t *e = err_lookup(err);
    return e ? e->msg : "unknown error";
}

tw_err_class_t tw_err_class(int err)
{
    const err_entry_t *e = err_lookup(err);
    return e ? e->cls : TW_ERR_CLASS_FATAL;
}

void tw_diag_init(tw_diag_t *diag)
{
    memset(diag, 0, sizeof(*diag));
}

void tw_diag_fini(tw_diag_t *diag)
{
    if (!diag)
        return;
    for (size_t i = 0; i < diag->count; i++)
        free(diag->lines[i]);
    free(diag->lines);
    memset(diag, 0, sizeof(*diag));
}

void tw_diag_add(tw_diag_t *diag, const char *fmt, ...)
{
    if (!diag)
        return;
    int rc = 0;
    diag->lines =
        tw_array_grow(diag->lines, &diag->cap, diag->count + 1, sizeof(*diag->lines), 8, &rc);
    if (rc != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    if (vasprintf(&line, fmt, ap) >= 0)
        diag->lines[diag->count++] = line;
    va_end(ap);
}

const char *tw_diag_quote(const char *s, size_t len, int escape_quoting,
                          char buf[static TW_DIAG_QUOTE_SIZE])
{
    size_t o = 0;
    size_t shown = len > 60 ? 60 : len;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (escape_quoting && (c == '\'' || c == '\\')))
            o += (size_t)snprintf(buf + o, TW_DIAG_QUOTE_SIZE - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    if (shown < len) {
        /* Do not cut a UTF-8 sequence in half: back up to its lead byte. */
        while (o > 0 && ((unsigned char)buf[o - 1] & 0xc0) == 0x80)
            o--;
        if (o > 0 && (unsigned char)buf[o - 1] >= 0xc0)
            o--;
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

void tw_diag_log_all(const tw_diag_t *diag, FILE *stream, const char *prefix)
{
    for (size_t i = 0; i < diag->count; i++) {
        if (stream)
            fprintf(stream, "%s%s\n", prefix ? prefix : "", diag->lines[i]);
        else
            log_error("%s", diag->lines[i]);
    }
}
