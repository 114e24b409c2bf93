/* `tidewatch rules diff OLD.yaml NEW.yaml POSTS.jsonl`: what a rules change does to alerts. */
#ifndef TW_RULES_DIFF_H
#define TW_RULES_DIFF_H

#include <stdbool.h>

/* Exit code when --fail-on-loss is given and some post lost a rule hit. */
#define RULES_DIFF_EXIT_LOSS 3

/* Scans every post of POSTS (a JSONL file or "-") with both rule sets through the worker's
 * match stage and prints each post that gains or loses a rule hit (rules are the same rule
 * when their ids are equal), the span in context, then per-rule and total counts. Returns 0,
 * RULES_DIFF_EXIT_LOSS when fail_on_loss and a hit was lost, 1 on an error. */
int rules_diff(const char *old_path, const char *new_path, const char *posts_path,
               bool fail_on_loss);

#endif
