/* Unit tests for common/rules.c: the rules file contract of DESIGN.md, diagnostics with
 * file:line for every problem in one load, the version hash, and hostile YAML. */
#include "rules/rules.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "tw_test.h"

#ifndef TW_FIXTURES_DIR
#error "compile with -DTW_FIXTURES_DIR=\"<repo>/tests/fixtures\""
#endif
#define RULES_DIR TW_FIXTURES_DIR "/rules"

/* A private temporary directory per test, removed (with the files the test wrote) at the end. */
typedef struct {
    char dir[64];
    char *files[16];
    size_t nfiles;
} tmpdir_t;

static bool tmpdir_make(tmpdir_t *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/tw_test_rules.XXXXXX");
    return mkdtemp(t->dir) != NULL;
}

/* Writes data[0, len) to dir/name and returns the path (owned by t), NULL on failure. */
static char *tmpdir_write(tmpdir_t *t, const char *name, const char *data, size_t len)
{
    char *path = NULL;
    if (asprintf(&path, "%s/%s", t->dir, name) < 0)
        return NULL;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        if (f)
            fclose(f);
        free(path);
        return NULL;
    }
    fclose(f);
    for (size_t i = 0; i < t->nfiles; i++)
        if (strcmp(t->files[i], path) == 0) {
            free(path);
            return t->files[i];
        }
    if (t->nfiles == sizeof(t->files) / sizeof(t->files[0])) {
        free(path);
        return NULL;
    }
    t->files[t->nfiles++] = path;
    return path;
}

static char *tmpdir_write_str(tmpdir_t *t, const char *name, const char *text)
{
    return tmpdir_write(t, name, text, strlen(text));
}

static void tmpdir_remove(tmpdir_t *t)
{
    for (size_t i = 0; i < t->nfiles; i++) {
        unlink(t->files[i]);
        free(t->files[i]);
    }
    rmdir(t->dir);
    t->nfiles = 0;
}

/* Whether some diagnostic line contains needle. */
static bool diag_has(const tw_diag_t *diag, const char *needle)
{
    for (size_t i = 0; i < diag->count; i++)
        if (strstr(diag->lines[i], needle))
            return true;
    return false;
}

static void diag_print(const tw_diag_t *diag)
{
    for (size_t i = 0; i < diag->count; i++)
        fprintf(stderr, "    diag: %s\n", diag->lines[i]);
}

/* Loads text as a rules file named name in a fresh temp dir; returns the load's result. */
static int load_text(const char *text, rule_set_t **rs, tw_diag_t *diag)
{
    return rule_set_load_buffer("inline.yaml", text, strlen(text), rs, diag);
}

static const rule_pattern_t *pattern_find(const rule_set_t *rs, const char *text)
{
    for (size_t i = 0; i < rs->npatterns; i++)
        if (strcmp(rs->patterns[i].text, text) == 0)
            return &rs->patterns[i];
    return NULL;
}

TW_TEST(test_severity_names)
{
    rule_severity_t sev = RULE_SEVERITY_LOW;
    TW_ASSERT_INT_EQ(rule_severity_parse("critical", &sev), 0);
    TW_ASSERT_INT_EQ(sev, RULE_SEVERITY_CRITICAL);
    TW_ASSERT_INT_EQ(rule_severity_parse("low", &sev), 0);
    TW_ASSERT_INT_EQ(sev, RULE_SEVERITY_LOW);
    TW_ASSERT_INT_EQ(rule_severity_parse("High", &sev), TW_ERR_INVALID);
    TW_ASSERT_INT_EQ(rule_severity_parse("", &sev), TW_ERR_INVALID);
    TW_ASSERT_STR_EQ(rule_severity_name(RULE_SEVERITY_MEDIUM), "medium");
    TW_ASSERT_STR_EQ(rule_severity_name(RULE_SEVERITY_HIGH), "high");
}

TW_TEST(test_load_basic)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = rule_set_load(RULES_DIR "/basic.yaml", &rs, &diag);
    if (rc != 0)
        diag_print(&diag);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT(rs != NULL);
    TW_ASSERT_INT_EQ(diag.count, 0);
    TW_ASSERT_INT_EQ(rs->nrules, 3);

    TW_ASSERT_STR_EQ(rs->rules[0].id, "scam.giveaway");
    TW_ASSERT_STR_EQ(rs->rules[0].category, "scam");
    TW_ASSERT_INT_EQ(rs->rules[0].severity, RULE_SEVERITY_HIGH);
    TW_ASSERT_INT_EQ(rs->rules[0].line, 3);
    TW_ASSERT_STR_EQ(rs->rules[0].file, RULES_DIR "/basic.yaml");
    TW_ASSERT_STR_EQ(rs->rules[1].id, "phishing.account");
    TW_ASSERT_INT_EQ(rs->rules[1].severity, RULE_SEVERITY_MEDIUM); /* the default */
    TW_ASSERT_INT_EQ(rs->rules[1].line, 10);
    TW_ASSERT_INT_EQ(rs->rules[2].severity, RULE_SEVERITY_LOW);

    /* 2 inline + 3 from the file + 1 regex; 2 keywords + 1 regex; 2 keywords */
    TW_ASSERT_INT_EQ(rs->npatterns, 11);

    /* Inline keywords are normalized (case folded) and keep the line they were written on. */
    const rule_pattern_t *p = pattern_find(rs, "double your bitcoin");
    TW_ASSERT(p != NULL);
    TW_ASSERT_INT_EQ(p->kind, RULE_PATTERN_KEYWORD);
    TW_ASSERT_INT_EQ(p->rule_index, 0);
    TW_ASSERT_INT_EQ(p->line, 6);
    TW_ASSERT_STR_EQ(p->file, RULES_DIR "/basic.yaml");

    /* keywords_file: relative to the rules file, comments and blank lines skipped, CR
     * stripped, each keyword with its own line in that file. */
    p = pattern_find(rs, "claim your prize");
    TW_ASSERT(p != NULL);
    TW_ASSERT_STR_EQ(p->file, RULES_DIR "/lists/scam.txt");
    TW_ASSERT_INT_EQ(p->line, 2);
    p = pattern_find(rs, "crypto doubler");
    TW_ASSERT(p != NULL);
    TW_ASSERT_INT_EQ(p->line, 4);
    p = pattern_find(rs, "wire transfer fee");
    TW_ASSERT(p != NULL);
    TW_ASSERT_INT_EQ(p->line, 6);
    TW_ASSERT_INT_EQ(p->rule_index, 0);
    TW_ASSERT(pattern_find(rs, "# wire fraud") == NULL);

    /* Regexes are kept as written, on their own line. */
    p = pattern_find(rs, "send\\s+\\d+\\s*(btc|eth)\\b");
    TW_ASSERT(p != NULL);
    TW_ASSERT_INT_EQ(p->kind, RULE_PATTERN_REGEX);
    TW_ASSERT_INT_EQ(p->line, 8);
    p = pattern_find(rs, "log\\s*in\\s+to\\s+claim");
    TW_ASSERT(p != NULL);
    TW_ASSERT_INT_EQ(p->rule_index, 1);
    TW_ASSERT_INT_EQ(p->line, 16);
    p = pattern_find(rs, "password expired");
    TW_ASSERT(p != NULL);
    TW_ASSERT_INT_EQ(p->line, 14);
    TW_ASSERT(pattern_find(rs, "$$$") != NULL);

    TW_ASSERT_INT_EQ(strlen(rs->version), 71);
    TW_ASSERT(strncmp(rs->version, "sha256:", 7) == 0);
    rule_set_free(rs);
    tw_diag_fini(&diag);
}

TW_TEST(test_rule_errors_all_reported)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = (rule_set_t *)1;
    int rc = rule_set_load(RULES_DIR "/bad_rules.yaml", &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(rs == NULL);
    const char *f = RULES_DIR "/bad_rules.yaml";
    char want[512];
    snprintf(want, sizeof(want), "%s:6: duplicate rule id 'spam.dup' (first defined at %s:3)", f,
             f);
    if (!diag_has(&diag, want))
        diag_print(&diag);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s:11: unknown severity 'urgent'", f);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s:15: unknown key 'keyword' in rule", f);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s:17: rule has no 'id'", f);
    TW_ASSERT(diag_has(&diag, want));
    /* Exactly those four: the typo rule still has a regex, so no "no keywords" noise. */
    TW_ASSERT_INT_EQ(diag.count, 4);
    tw_diag_fini(&diag);
}

TW_TEST(test_rule_without_patterns)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = load_text("rules:\n"
                       "  - id: spam.empty\n"
                       "    category: spam\n"
                       "  - id: spam.emptylist\n"
                       "    category: spam\n"
                       "    keywords: []\n"
                       "    regex: []\n",
                       &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(diag_has(&diag, "inline.yaml:2: rule 'spam.empty' has no keywords or regex"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:4: rule 'spam.emptylist' has no keywords or regex"));
    TW_ASSERT_INT_EQ(diag.count, 2);
    tw_diag_fini(&diag);
}

TW_TEST(test_missing_category_and_bad_types)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = load_text("rules:\n"
                       "  - id: a\n"
                       "    keywords: [spam]\n"
                       "  - id: b\n"
                       "    category: [scam]\n"
                       "    keywords: cheap pills\n"
                       "    regex: {x: y}\n"
                       "  - just a string\n"
                       "  - id: c\n"
                       "    category: c\n"
                       "    severity: high\n"
                       "    severity: low\n"
                       "    keywords: [[nested], ok]\n",
                       &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(rs == NULL);
    TW_ASSERT(diag_has(&diag, "inline.yaml:2: rule 'a' has no 'category'"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:5: category must be a string, not a sequence"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:6: keywords must be a sequence of strings"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:7: regex must be a string or a sequence of strings"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:8: a rule must be a mapping"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:12: duplicate key 'severity' in rule"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:13: keywords must be a string, not a sequence"));
    tw_diag_fini(&diag);
}

TW_TEST(test_keywords_normalized_and_empty)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    /* U+200B ZERO WIDTH SPACE alone normalizes to nothing; fullwidth letters fold to ASCII. */
    int rc = load_text("rules:\n"
                       "  - id: a\n"
                       "    category: spam\n"
                       "    keywords: [\"\\u200B\", \"   \", \"\\uFF26REE  Money\"]\n",
                       &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(
        diag_has(&diag, "inline.yaml:4: keyword '\xe2\x80\x8b' is empty after normalization"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:4: keyword '   ' is empty after normalization"));
    TW_ASSERT_INT_EQ(diag.count, 2);
    tw_diag_fini(&diag);

    tw_diag_init(&diag);
    rc = load_text("rules:\n"
                   "  - id: a\n"
                   "    category: spam\n"
                   "    keywords: [\"\\uFF26REE  Money\", \"\\u00C9T\\u00C9\"]\n",
                   &rs, &diag);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_STR_EQ(rs->patterns[0].text, "free money");
    TW_ASSERT_STR_EQ(rs->patterns[1].text, "\xc3\xa9t\xc3\xa9"); /* "été" */
    rule_set_free(rs);
    tw_diag_fini(&diag);
}

TW_TEST(test_keywords_file_paths_and_errors)
{
    tmpdir_t t;
    TW_ASSERT(tmpdir_make(&t));
    TW_ASSERT(tmpdir_write_str(&t, "kw.txt", "# comment\n\nfirst one\n  \t\nSecond\r\nthird"));
    TW_ASSERT(tmpdir_write_str(&t, "comments.txt", "# nothing here\n\n"));
    static const char nul[] = "ok\nbad\0byte\n\xff\xfe\n";
    TW_ASSERT(tmpdir_write(&t, "nul.txt", nul, sizeof(nul) - 1));
    char *rules = tmpdir_write_str(&t, "rules.yaml",
                                   "rules:\n"
                                   "  - id: a\n"
                                   "    category: spam\n"
                                   "    keywords_file: [kw.txt]\n"
                                   "  - id: b\n"
                                   "    category: spam\n"
                                   "    keywords_file: comments.txt\n"
                                   "  - id: c\n"
                                   "    category: spam\n"
                                   "    keywords_file: missing.txt\n"
                                   "  - id: d\n"
                                   "    category: spam\n"
                                   "    keywords_file: nul.txt\n"
                                   "  - id: e\n"
                                   "    category: spam\n"
                                   "    keywords_file: /dev/null\n");
    TW_ASSERT(rules);
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = rule_set_load(rules, &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    char want[256];
    snprintf(want, sizeof(want), "%s:5: rule 'b' has no keywords or regex", rules);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s:10: keywords_file '%s/missing.txt': No such file", rules,
             t.dir);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s/nul.txt:2: keyword contains a NUL byte", t.dir);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s/nul.txt:3: keyword '\xff\xfe': invalid UTF-8", t.dir);
    if (!diag_has(&diag, want))
        diag_print(&diag);
    TW_ASSERT(diag_has(&diag, want));
    snprintf(want, sizeof(want), "%s:16: keywords_file '/dev/null': not a regular file", rules);
    TW_ASSERT(diag_has(&diag, want));
    TW_ASSERT_INT_EQ(diag.count, 5);
    tw_diag_fini(&diag);

    /* The good file alone: lines as in the file, whitespace-only lines skipped. */
    rules = tmpdir_write_str(&t, "rules.yaml",
                             "rules:\n"
                             "  - id: a\n"
                             "    category: spam\n"
                             "    keywords_file: kw.txt\n");
    tw_diag_init(&diag);
    rc = rule_set_load(rules, &rs, &diag);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_INT_EQ(rs->npatterns, 3);
    TW_ASSERT_STR_EQ(rs->patterns[0].text, "first one");
    TW_ASSERT_INT_EQ(rs->patterns[0].line, 3);
    TW_ASSERT_STR_EQ(rs->patterns[1].text, "second");
    TW_ASSERT_INT_EQ(rs->patterns[1].line, 5);
    TW_ASSERT_STR_EQ(rs->patterns[2].text, "third"); /* no final newline */
    TW_ASSERT_INT_EQ(rs->patterns[2].line, 6);
    snprintf(want, sizeof(want), "%s/kw.txt", t.dir);
    TW_ASSERT_STR_EQ(rs->patterns[2].file, want);
    rule_set_free(rs);
    tw_diag_fini(&diag);
    tmpdir_remove(&t);
}

TW_TEST(test_keywords_file_too_large)
{
    tmpdir_t t;
    TW_ASSERT(tmpdir_make(&t));
    char *big = tmpdir_write_str(&t, "big.txt", "");
    TW_ASSERT(big);
    /* Sparse: the size check must reject it before reading 64 MiB. */
    TW_ASSERT_INT_EQ(truncate(big, (off_t)RULES_MAX_FILE_BYTES + 1), 0);
    char *rules = tmpdir_write_str(&t, "rules.yaml",
                                   "rules:\n"
                                   "  - id: a\n"
                                   "    category: spam\n"
                                   "    keywords_file: big.txt\n");
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    TW_ASSERT_INT_EQ(rule_set_load(rules, &rs, &diag), TW_ERR_PARSE);
    TW_ASSERT(diag_has(&diag, ":4: keywords_file '"));
    TW_ASSERT(diag_has(&diag, "big.txt': larger than 67108864 bytes"));
    TW_ASSERT_INT_EQ(diag.count, 1);
    tw_diag_fini(&diag);
    tmpdir_remove(&t);
}

TW_TEST(test_pattern_too_long)
{
    size_t n = RULES_MAX_PATTERN_BYTES + 1;
    const char *head = "rules:\n  - id: a\n    category: spam\n    regex: ['";
    const char *mid = "']\n    keywords: ['";
    const char *tail = "']\n";
    size_t len = strlen(head) + n + strlen(mid) + n + strlen(tail);
    char *text = malloc(len + 1);
    TW_ASSERT(text);
    char *o = text;
    o = stpcpy(o, head);
    memset(o, 'a', n);
    o += n;
    o = stpcpy(o, mid);
    memset(o, 'b', n);
    o += n;
    stpcpy(o, tail);
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = rule_set_load_buffer("long.yaml", text, len, &rs, &diag);
    free(text);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(diag_has(&diag, "long.yaml:4: regex 'aaaa"));
    TW_ASSERT(diag_has(&diag, "...' is longer than 65536 bytes"));
    TW_ASSERT(diag_has(&diag, "long.yaml:5: keyword 'bbbb"));
    TW_ASSERT_INT_EQ(diag.count, 2);
    tw_diag_fini(&diag);
}

static void version_of(const char *path, char out[72])
{
    rule_set_t *rs = NULL;
    out[0] = '\0';
    if (rule_set_load(path, &rs, NULL) == 0)
        memcpy(out, rs->version, 72);
    rule_set_free(rs);
}

TW_TEST(test_version)
{
    tmpdir_t t;
    TW_ASSERT(tmpdir_make(&t));
    const char *yaml = "rules:\n"
                       "  - id: a\n"
                       "    category: spam\n"
                       "    keywords_file: [one.txt, two.txt]\n";
    char *rules = tmpdir_write_str(&t, "rules.yaml", yaml);
    TW_ASSERT(tmpdir_write_str(&t, "one.txt", "cheap pills\n"));
    TW_ASSERT(tmpdir_write_str(&t, "two.txt", "fake watches\n"));
    char v1[72], v2[72], v3[72], v4[72];
    version_of(rules, v1);
    version_of(rules, v2);
    TW_ASSERT_STR_EQ(v1, v2); /* stable */

    /* sha256 over the rules file then each keywords file, in load order. */
    char all[256];
    snprintf(all, sizeof(all), "%s%s%s", yaml, "cheap pills\n", "fake watches\n");
    unsigned char md[32];
    unsigned int mdlen = 0;
    TW_ASSERT(EVP_Digest(all, strlen(all), md, &mdlen, EVP_sha256(), NULL) == 1);
    char want[72] = "sha256:";
    for (int i = 0; i < 32; i++)
        snprintf(want + 7 + 2 * i, 3, "%02x", md[i]);
    TW_ASSERT_STR_EQ(v1, want);

    /* A keywords file change is a new version, though the rules file is the same. */
    TW_ASSERT(tmpdir_write_str(&t, "two.txt", "fake watches\nfake bags\n"));
    version_of(rules, v3);
    TW_ASSERT(v3[0] != '\0');
    TW_ASSERT(strcmp(v1, v3) != 0);
    /* So is a change of order. */
    rules = tmpdir_write_str(&t, "rules.yaml",
                             "rules:\n"
                             "  - id: a\n"
                             "    category: spam\n"
                             "    keywords_file: [two.txt, one.txt]\n");
    version_of(rules, v4);
    TW_ASSERT(v4[0] != '\0');
    TW_ASSERT(strcmp(v3, v4) != 0);
    tmpdir_remove(&t);
}

TW_TEST(test_yaml_anchors_and_aliases)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    /* Shared keyword lists through anchors are fine. */
    int rc = load_text("rules:\n"
                       "  - id: a\n"
                       "    category: &cat spam\n"
                       "    keywords: &kw [cheap pills, fake watches]\n"
                       "  - id: b\n"
                       "    category: *cat\n"
                       "    keywords: *kw\n",
                       &rs, &diag);
    TW_ASSERT_INT_EQ(rc, 0);
    TW_ASSERT_INT_EQ(rs->nrules, 2);
    TW_ASSERT_INT_EQ(rs->npatterns, 4);
    TW_ASSERT_STR_EQ(rs->rules[1].category, "spam");
    TW_ASSERT_INT_EQ(rs->patterns[3].rule_index, 1);
    rule_set_free(rs);

    /* A rule aliased twice is a duplicate id, not a crash; a self-referencing anchor and an
     * undefined alias are errors. */
    rc = load_text("rules: &r\n"
                   "  - &one {id: a, category: spam, keywords: [x]}\n"
                   "  - *one\n"
                   "  - *r\n",
                   &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(diag_has(&diag, "duplicate rule id 'a'"));
    TW_ASSERT(diag_has(&diag, "inline.yaml:1: a rule must be a mapping"));
    rc = load_text("rules: [*nowhere]\n", &rs, &diag);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(diag_has(&diag, "YAML: found undefined alias"));
    tw_diag_fini(&diag);
}

TW_TEST(test_yaml_odd_documents)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"", "inline.yaml:1: empty rules file"},
        {"# only a comment\n", "inline.yaml:1: empty rules file"},
        {"---\n...\n", "inline.yaml:1: empty rules file"},
        {"- a\n- b\n", "inline.yaml:1: the top level must be a mapping"},
        {"rules: 3\n", "inline.yaml:1: 'rules' must be a sequence of rules"},
        {"rule:\n  - id: a\n", "inline.yaml:1: unknown top-level key 'rule'"},
        {"version: 2\n", "inline.yaml:1: no 'rules' list"},
        {"rules: []\nrules: []\n", "inline.yaml:2: duplicate key 'rules'"},
        {"rules: []\n---\nrules: []\n", "inline.yaml:3: more than one YAML document"},
        {"rules:\n  - id: a\n    category: b\n   keywords: [x]\n", "inline.yaml:4: YAML: "},
        {"rules: [\n", "YAML: "},
        {"rules: [{id: \"a\\0b\", category: c, keywords: [x]}]\n", "id contains a NUL byte"},
        {"[a]: b\n", "a top-level key must be a string, not a sequence"},
        {"rules:\n  - {? [x] : y}\n", "inline.yaml:2: a rule key must be a string"},
        {"\xff\xfe\n", "YAML: "},
        {"rules: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
         "inline.yaml:1: YAML nested deeper than 64 levels"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tw_diag_t diag;
        tw_diag_init(&diag);
        rule_set_t *rs = (rule_set_t *)1;
        int rc = load_text(cases[i].text, &rs, &diag);
        if (rc != TW_ERR_PARSE || !diag_has(&diag, cases[i].want)) {
            fprintf(stderr, "  case %zu: rc %d, want '%s'\n", i, rc, cases[i].want);
            diag_print(&diag);
        }
        TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
        TW_ASSERT(rs == NULL);
        TW_ASSERT(diag_has(&diag, cases[i].want));
        tw_diag_fini(&diag);
    }

    /* 60 KB of '[' must fail fast: libyaml alone is quadratic in flow depth (seconds). */
    size_t deep = 60000;
    char *text = malloc(deep + 8);
    TW_ASSERT(text);
    memcpy(text, "rules: ", 7);
    memset(text + 7, '[', deep);
    clock_t c0 = clock();
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = rule_set_load_buffer("deep.yaml", text, deep + 7, &rs, &diag);
    double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    free(text);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT(diag_has(&diag, "deep.yaml:1: YAML nested deeper than 64 levels"));
    TW_ASSERT(cpu < 0.5);
    tw_diag_fini(&diag);

    /* An empty list and "rules:" with nothing under it are an empty, valid rule set. */
    const char *empty[] = {"rules: []\n", "rules:\n"};
    for (size_t i = 0; i < 2; i++) {
        rs = NULL;
        TW_ASSERT_INT_EQ(load_text(empty[i], &rs, NULL), 0);
        TW_ASSERT_INT_EQ(rs->nrules, 0);
        TW_ASSERT_INT_EQ(rs->npatterns, 0);
        rule_set_free(rs);
    }
}

TW_TEST(test_missing_rules_file)
{
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = (rule_set_t *)1;
    TW_ASSERT_INT_EQ(rule_set_load(RULES_DIR "/does-not-exist.yaml", &rs, &diag), TW_ERR_NOT_FOUND);
    TW_ASSERT(rs == NULL);
    TW_ASSERT(diag_has(&diag, "does-not-exist.yaml: No such file or directory"));
    tw_diag_fini(&diag);
}

TW_TEST(test_many_errors_capped)
{
    /* 3,000 broken rules: every one counted, RULES_MAX_DIAGS shown plus a summary line. */
    size_t n = 3000;
    size_t cap = n * 32 + 16;
    char *text = malloc(cap);
    TW_ASSERT(text);
    size_t o = (size_t)snprintf(text, cap, "rules:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "  - {id: r%zu, category: c}\n", i);
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    int rc = rule_set_load_buffer("many.yaml", text, o, &rs, &diag);
    free(text);
    TW_ASSERT_INT_EQ(rc, TW_ERR_PARSE);
    TW_ASSERT_INT_EQ(diag.count, RULES_MAX_DIAGS + 1);
    TW_ASSERT_STR_EQ(diag.lines[RULES_MAX_DIAGS], "many.yaml: 2000 more errors not shown");
    tw_diag_fini(&diag);
}

TW_TEST(test_many_rules_unique_ids)
{
    /* 20,000 rules: the id table must grow and still catch the one duplicate at the end. */
    size_t n = 20000;
    size_t cap = n * 64 + 128;
    char *text = malloc(cap);
    TW_ASSERT(text);
    size_t o = (size_t)snprintf(text, cap, "rules:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "  - {id: r%zu, category: c, keywords: [w%zu]}\n",
                              i, i);
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    TW_ASSERT_INT_EQ(rule_set_load_buffer("many.yaml", text, o, &rs, &diag), 0);
    TW_ASSERT_INT_EQ(rs->nrules, n);
    TW_ASSERT_INT_EQ(rs->npatterns, n);
    TW_ASSERT_STR_EQ(rs->rules[n - 1].id, "r19999");
    rule_set_free(rs);
    o += (size_t)snprintf(text + o, cap - o, "  - {id: r777, category: c, keywords: [x]}\n");
    TW_ASSERT_INT_EQ(rule_set_load_buffer("many.yaml", text, o, &rs, &diag), TW_ERR_PARSE);
    TW_ASSERT_INT_EQ(diag.count, 1);
    TW_ASSERT(diag_has(&diag, "many.yaml:20002: duplicate rule id 'r777' (first defined at "
                              "many.yaml:779)"));
    free(text);
    tw_diag_fini(&diag);
}

int main(void)
{
    TW_RUN(TW_CASE(test_severity_names), TW_CASE(test_load_basic),
           TW_CASE(test_rule_errors_all_reported), TW_CASE(test_rule_without_patterns),
           TW_CASE(test_missing_category_and_bad_types),
           TW_CASE(test_keywords_normalized_and_empty),
           TW_CASE(test_keywords_file_paths_and_errors), TW_CASE(test_keywords_file_too_large),
           TW_CASE(test_pattern_too_long), TW_CASE(test_version),
           TW_CASE(test_yaml_anchors_and_aliases), TW_CASE(test_yaml_odd_documents),
           TW_CASE(test_missing_rules_file), TW_CASE(test_many_errors_capped),
           TW_CASE(test_many_rules_unique_ids));
}
