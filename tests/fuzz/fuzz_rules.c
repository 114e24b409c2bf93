/* libFuzzer target for common/rules.c: arbitrary bytes as a rules YAML file
 * (rule_set_load_buffer), and when the result is a small valid rule set, its compile and a
 * scan of the input bytes (common/match.c).
 *
 * Build and run with libFuzzer (clang), from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon \
 *       tests/fuzz/fuzz_rules.c common/rules.c common/match.c common/normalize.c common/err.c \
 *       common/confusables_table.c \
 *       $(pkg-config --cflags --libs libhs yaml-0.1 libcrypto libutf8proc) -lpthread \
 *       -o fuzz_rules
 *   ./fuzz_rules -max_len=65536 -timeout=10 tests/fuzz/corpus/rules
 * Replay without libFuzzer (any compiler, e.g. gcc -fsanitize=address,undefined): add
 * tests/fuzz/fuzz_replay.c, which supplies main(), and pass files or directories:
 *   ./fuzz_rules tests/fuzz/corpus/rules
 *
 * Checks, for every input: no crash, leak or sanitizer report on any bytes (aliases, anchors,
 * deep nesting, NULs, invalid UTF-8, keywords_file paths to anything); an error always comes
 * with at least one one-line diagnostic and success always with a set; match results are
 * sorted by rule, capped, and their spans lie inside the scanned bytes.
 * -DFUZZ_RULES_NO_MATCH leaves out the Hyperscan half, which is much slower per input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"

/* Compiling is milliseconds per regex: only small rule sets go on to match.c. */
#define FUZZ_MAX_PATTERNS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    /* keywords_file paths resolve against the current directory, like a rules file there. */
    int rc = rule_set_load_buffer("fuzz.yaml", (const char *)data, size, &rs, &diag);
    if ((rc == 0) != (rs != NULL) || (rc != 0 && rc != TW_ERR_NOMEM && diag.count == 0))
        abort(); /* an error must come with a reason, and success with a set */
    for (size_t i = 0; i < diag.count; i++)
        if (!diag.lines[i] || strchr(diag.lines[i], '\n'))
            abort(); /* one line per diagnostic */
#ifndef FUZZ_RULES_NO_MATCH
    if (rs && rs->npatterns <= FUZZ_MAX_PATTERNS) {
        match_db_t *db = NULL;
        match_scratch_t *scratch = NULL;
        match_set_t set;
        match_set_init(&set);
        if (match_db_compile(rs, &db, &diag) == 0 && match_scratch_new(db, &scratch) == 0) {
            if (match_scan(db, scratch, (const char *)data, size, &set) != 0)
                abort();
            /* The input as a post too: normalized, scanned in every view its rules use, spans
             * in folded coordinates. */
            normalized_t norm;
            normalized_init(&norm);
            if (normalize_text((const char *)data, size, &norm) == 0) {
                if (match_scan_post(db, scratch, &norm, "en", 2, &set) != 0)
                    abort();
                for (size_t i = 0; i < set.count; i++)
                    for (uint32_t s = 0; s < set.hits[i].nspans; s++)
                        if (set.hits[i].spans[s].start > set.hits[i].spans[s].end ||
                            set.hits[i].spans[s].end > norm.len)
                            abort();
            }
            normalized_fini(&norm);
            if (match_scan(db, scratch, (const char *)data, size, &set) != 0)
                abort();
            for (size_t i = 0; i < set.count; i++) {
                const match_rule_hit_t *hit = &set.hits[i];
                if (hit->rule_index >= rs->nrules || hit->nspans == 0 ||
                    hit->nspans > MATCH_MAX_SPANS_PER_RULE ||
                    (i > 0 && set.hits[i - 1].rule_index >= hit->rule_index))
                    abort();
                for (uint32_t s = 0; s < hit->nspans; s++)
                    if (hit->spans[s].start > hit->spans[s].end || hit->spans[s].end > size)
                        abort();
            }
        }
        match_set_fini(&set);
        match_scratch_free(scratch);
        match_db_free(db);
    }
#endif
    rule_set_free(rs);
    tw_diag_fini(&diag);
    return 0;
}
