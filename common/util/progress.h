/* A progress line for the commands an analyst runs by hand on a file of posts (scan, rules
 * test, rules diff): posts done, posts per second, bytes read of the file's size and the
 * time left. Shown only when stderr is a terminal, so pipelines, tests and log collectors
 * see exactly the output they always did; never on stdout, which carries the data. Drawn
 * as the log's status line (log_status), so log lines scroll above it. */
#ifndef TW_PROGRESS_H
#define TW_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

typedef struct {
    bool active;           /* stderr is a terminal: updates draw */
    uint64_t total_bytes;  /* the input's size when it is a regular file, else 0 */
    uint64_t start_offset; /* where in that file reading started (stdin redirected mid-file) */
    struct timespec start;
    struct timespec last_draw;
    bool ever_drawn;
    bool shown;      /* the line is on the screen now */
    bool stdout_tty; /* stdout writes to a terminal too, likely the same one */
} progress_t;

/* Redraws at most this often: enough to look alive, too rarely to cost anything. */
#define PROGRESS_INTERVAL_MS 250

/* Starts the display for posts read from input. Inactive (every call a no-op) unless stderr
 * is a terminal. */
void progress_start(progress_t *p, FILE *input);

/* Reports posts done and bytes of the input consumed so far; redraws when the last drawing is
 * PROGRESS_INTERVAL_MS old (the first update draws at once). */
void progress_update(progress_t *p, uint64_t posts, uint64_t bytes);

/* Call before writing to stdout: when stdout is a terminal as well, the line is taken off the
 * screen so the output does not land after it; the next update draws it again below. */
void progress_before_stdout(progress_t *p);

/* Removes the line, leaving the terminal as it was: call before printing the summary. */
void progress_finish(progress_t *p);

/* Writes the line for these figures into out (always NUL-terminated) and returns its length:
 * "12,345 posts  4,567 posts/s  12.3 MiB / 100.0 MiB (12%)  ETA 0:19". total_bytes 0 (a
 * pipe) leaves out the size, the percentage and the ETA; the rate and the ETA need
 * elapsed_s of at least 0.1 s. */
size_t progress_format(char *out, size_t cap, uint64_t posts, uint64_t bytes, uint64_t total_bytes,
                       double elapsed_s);

#endif
