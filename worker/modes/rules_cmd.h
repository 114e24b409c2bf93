/* `tidewatch rules check FILE` and `tidewatch rules test FILE POSTS.jsonl`. */
#ifndef TW_RULES_CMD_H
#define TW_RULES_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "decode/post.h"

/* Compiles FILE, runs its examples, prints counts per view, compile time and whether the
 * compiled database came from the cache. Returns the process exit code. */
int rules_cmd_check(const char *path);

/* Scans every post of a JSONL file (or "-") with FILE and prints which rules hit, each span
 * in context, then the number of posts each rule hit. Returns the process exit code. */
int rules_cmd_test(const char *rules_path, const char *posts_path);

/* Prints text[start, end) with up to 30 bytes of context each side, the span in [ ], on one
 * line of stdout (controls shown as spaces), cut only at UTF-8 character boundaries. */
void rules_cmd_print_context(const char *text, size_t len, size_t start, size_t end);

/* Reads the next non-blank line of a JSONL posts file and decodes it with the default field
 * names. Returns 1 with *post filled, 0 for a line that does not decode (reported on stderr
 * as path:line), -1 at the end of f. *line / *line_cap are getline's buffer; the bytes read
 * are added to *bytes (for the progress line). */
int rules_cmd_next_post(FILE *f, const char *path, char **line, size_t *line_cap, size_t *lineno,
                        uint64_t *bytes, post_t *post);

#endif
