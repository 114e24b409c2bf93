/* Rules files: YAML -> rule_set_t.
 *
 * libyaml's document API gives us a node tree with line marks; we walk it at a fixed depth
 * (root -> rules -> rule -> value -> item), never recursively, so aliases, anchors and even
 * self-referencing anchors cannot make the walk loop or explode. Every problem is reported
 * with its file:line and parsing carries on, so an operator fixes a file in one round trip. */
#include "rules/rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <yaml.h>

#include "links/domain_set.h"
#include "normalize/normalize.h"
#include "util/array.h"
#include "util/hashmap.h"

static const char *const severity_names[] = {
    [RULE_SEVERITY_LOW] = "low",
    [RULE_SEVERITY_MEDIUM] = "medium",
    [RULE_SEVERITY_HIGH] = "high",
    [RULE_SEVERITY_CRITICAL] = "critical",
};

const char *rule_severity_name(rule_severity_t severity)
{
    if ((unsigned)severity >= sizeof(severity_names) / sizeof(severity_names[0]))
        return "unknown";
    return severity_names[severity];
}

int rule_severity_parse(const char *name, rule_severity_t *out)
{
    for (size_t i = 0; i < sizeof(severity_names) / sizeof(severity_names[0]); i++) {
        if (strcmp(name, severity_names[i]) == 0) {
            *out = (rule_severity_t)i;
            return 0;
        }
    }
    return TW_ERR_INVALID;
}

/* Keys a rule mapping may have; anything else is an error so a typo ("keyword:") is not a
 * rule that silently never matches. */
enum {
    KEY_ID = 1 << 0,
    KEY_CATEGORY = 1 << 1,
    KEY_SEVERITY = 1 << 2,
    KEY_KEYWORDS = 1 << 3,
    KEY_KEYWORDS_FILE = 1 << 4,
    KEY_REGEX = 1 << 5,
    KEY_MODE = 1 << 6,
    KEY_VIEWS = 1 << 7,
    KEY_SQUASH = 1 << 8,
    KEY_ALL = 1 << 9,
    KEY_EXCEPT = 1 << 10,
    KEY_MIN_MATCHES = 1 << 11,
    KEY_LANGS = 1 << 12,
    KEY_TAGS = 1 << 13,
    KEY_EXAMPLES = 1 << 14,
    KEY_WITHIN = 1 << 15,
    KEY_FIELDS = 1 << 16,
    KEY_DOMAINS_FILE = 1 << 17,
    KEY_SHADOW = 1 << 18,
    KEY_FLOOD = 1 << 19,
};

typedef struct {
    const char *name; /* rules file name for diagnostics; owned copy in rs->files */
    const char *dir;  /* prefix for relative keywords_file paths; NULL = current directory */
    yaml_document_t *doc;
    rule_set_t *rs;
    size_t rules_cap;
    size_t patterns_cap;
    size_t files_cap;
    tw_diag_t *diag;
    size_t nerrors;
    bool nomem;
    bool too_many_patterns;
    bool too_many_rules;
    size_t keywords_bytes; /* read from keywords files so far, against the total cap */
    size_t attempts;       /* keywords and regexes tried (good or bad) in the current rule */
    EVP_MD_CTX *md;
    normalized_t norm;
    u64map_t ids;       /* id_hash(rule id), bumped past collisions -> rule index */
    rule_group_t group; /* group of the patterns being added */
    bool file_shadow;   /* top-level `shadow: true`: every rule of the file defaults to it */
    uint32_t all_index;
} loader_t;

/* Appends "file:line: message" (or "file: message" for line 0) to the caller's diag. After
 * RULES_MAX_DIAGS lines only the count grows, so a million-line broken keywords file cannot
 * turn into a million-line report. */
__attribute__((format(printf, 4, 5))) static void loader_error(loader_t *ld, const char *file,
                                                               int line, const char *fmt, ...)
{
    ld->nerrors++;
    if (ld->nerrors > RULES_MAX_DIAGS)
        return;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        ld->nomem = true;
        return;
    }
    if (line > 0)
        tw_diag_add(ld->diag, "%s:%d: %s", file, line, msg);
    else
        tw_diag_add(ld->diag, "%s: %s", file, msg);
    free(msg);
}

static void *loader_grow(loader_t *ld, void *ptr, size_t *cap, size_t count, size_t elem)
{
    int rc = 0;
    void *p = tw_array_grow(ptr, cap, count + 1, elem, 16, &rc);
    if (rc != 0) {
        ld->nomem = true;
        return NULL;
    }
    return p;
}

/* Keeps one owned copy of a path and returns it; rules and patterns point into it. */
static const char *loader_file_add(loader_t *ld, const char *path)
{
    rule_set_t *rs = ld->rs;
    char **files = loader_grow(ld, rs->files, &ld->files_cap, rs->nfiles, sizeof(*files));
    if (!files)
        return NULL;
    rs->files = files;
    char *copy = strdup(path);
    if (!copy) {
        ld->nomem = true;
        return NULL;
    }
    rs->files[rs->nfiles++] = copy;
    return copy;
}

static int node_line(const yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

/* Returns the scalar's text, or NULL after reporting why it is not usable as a string. */
static const char *loader_scalar(loader_t *ld, const yaml_node_t *node, const char *what,
                                 size_t *len)
{
    if (node->type != YAML_SCALAR_NODE) {
        loader_error(ld, ld->name, node_line(node), "%s must be a string, not a %s", what,
                     node->type == YAML_MAPPING_NODE ? "mapping" : "sequence");
        return NULL;
    }
    const char *s = (const char *)node->data.scalar.value;
    size_t n = node->data.scalar.length;
    /* "\0" is legal in a double-quoted YAML string but everything downstream is C strings. */
    if (memchr(s, '\0', n)) {
        loader_error(ld, ld->name, node_line(node), "%s contains a NUL byte", what);
        return NULL;
    }
    *len = n;
    return s;
}

static rule_pattern_t *loader_pattern_add(loader_t *ld, const char *file, int line)
{
    rule_set_t *rs = ld->rs;
    if (rs->npatterns >= RULES_MAX_PATTERNS) {
        if (!ld->too_many_patterns)
            loader_error(ld, file, line, "too many keywords and regexes (limit %u)",
                         RULES_MAX_PATTERNS);
        ld->too_many_patterns = true;
        return NULL;
    }
    rule_pattern_t *pats =
        loader_grow(ld, rs->patterns, &ld->patterns_cap, rs->npatterns, sizeof(*pats));
    if (!pats)
        return NULL;
    rs->patterns = pats;
    rule_pattern_t *pat = &rs->patterns[rs->npatterns];
    memset(pat, 0, sizeof(*pat));
    pat->rule_index = ld->group == RULE_GROUP_ALLOW ? 0 : (uint32_t)(rs->nrules - 1);
    pat->group = ld->group;
    pat->all_index = ld->all_index;
    pat->file = (char *)file;
    pat->line = line;
    return pat;
}

static void loader_keyword_add(loader_t *ld, const char *s, size_t len, const char *file, int line)
{
    char q[TW_DIAG_QUOTE_SIZE];
    if (ld->group == RULE_GROUP_ANY || ld->group == RULE_GROUP_ALL)
        ld->attempts++;
    if (len > RULES_MAX_PATTERN_BYTES) {
        loader_error(ld, file, line, "keyword '%s' is longer than %u bytes",
                     tw_diag_quote(s, len, 1, q), RULES_MAX_PATTERN_BYTES);
        return;
    }
    int err = normalize_text(s, len, &ld->norm);
    if (err == TW_ERR_NOMEM) {
        ld->nomem = true;
        return;
    }
    if (err < 0) {
        loader_error(ld, file, line, "keyword '%s': %s", tw_diag_quote(s, len, 1, q),
                     tw_err_str(err));
        return;
    }
    if (ld->norm.len == 0) {
        loader_error(ld, file, line, "keyword '%s' is empty after normalization",
                     tw_diag_quote(s, len, 1, q));
        return;
    }
    if (ld->norm.len > RULES_MAX_PATTERN_BYTES) {
        loader_error(ld, file, line, "keyword '%s' is longer than %u bytes after normalization",
                     tw_diag_quote(s, len, 1, q), RULES_MAX_PATTERN_BYTES);
        return;
    }
    rule_pattern_t *pat = loader_pattern_add(ld, file, line);
    if (!pat)
        return;
    pat->kind = RULE_PATTERN_KEYWORD;
    pat->text = strndup(ld->norm.text, ld->norm.len);
    if (!pat->text) {
        ld->nomem = true;
        return;
    }
    ld->rs->npatterns++;
}

static void loader_regex_add(loader_t *ld, const char *s, size_t len, int line)
{
    char q[TW_DIAG_QUOTE_SIZE];
    ld->attempts++;
    if (len == 0) {
        loader_error(ld, ld->name, line, "empty regex");
        return;
    }
    if (len > RULES_MAX_PATTERN_BYTES) {
        loader_error(ld, ld->name, line, "regex '%s' is longer than %u bytes",
                     tw_diag_quote(s, len, 1, q), RULES_MAX_PATTERN_BYTES);
        return;
    }
    rule_pattern_t *pat = loader_pattern_add(ld, ld->name, line);
    if (!pat)
        return;
    pat->kind = RULE_PATTERN_REGEX;
    pat->text = strndup(s, len);
    if (!pat->text) {
        ld->nomem = true;
        return;
    }
    ld->rs->npatterns++;
}

/* Reads a whole regular file of at most max bytes into *data (owned by the caller, with a
 * NUL after the last byte). Returns 0, or a negative tw_err_t with errno-style detail in why. */
static int file_read(const char *path, size_t max, char **data, size_t *len, const char **why)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return errno == ENOENT ? TW_ERR_NOT_FOUND : TW_ERR_IO;
    }
    int err = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        *why = strerror(errno);
        err = TW_ERR_IO;
        goto out;
    }
    /* A FIFO, /dev/zero or a directory would block, never end or make no sense as a list. */
    if (!S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        err = TW_ERR_IO;
        goto out;
    }
    if ((unsigned long long)st.st_size > max) {
        *why = "file too large";
        err = TW_ERR_TOO_LARGE;
        goto out;
    }
    /* The size is only a hint (the file may grow while we read): read at most max + 1 bytes. */
    size_t cap = (size_t)st.st_size + 1;
    size_t n = 0;
    buf = malloc(cap + 1);
    if (!buf) {
        err = TW_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                *why = "file too large";
                err = TW_ERR_TOO_LARGE;
                goto out;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap + 1);
            if (!nbuf) {
                err = TW_ERR_NOMEM;
                goto out;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                *why = strerror(errno);
                err = TW_ERR_IO;
                goto out;
            }
            break;
        }
    }
    if (n > max) {
        *why = "file too large";
        err = TW_ERR_TOO_LARGE;
        goto out;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return err;
}

/* The path of a list file named in the rules (keywords_file, domains_file): relative ones
 * are relative to the rules file's directory. NULL after reporting an empty name, or out of
 * memory. */
static char *loader_list_path(loader_t *ld, const char *what, const char *rel, size_t rel_len,
                              int line)
{
    if (rel_len == 0) {
        loader_error(ld, ld->name, line, "%s is empty", what);
        return NULL;
    }
    char *path = NULL;
    int n = (rel[0] == '/' || !ld->dir) ? asprintf(&path, "%s", rel)
                                        : asprintf(&path, "%s/%s", ld->dir, rel);
    if (n < 0) {
        ld->nomem = true;
        return NULL;
    }
    return path;
}

/* Reads a list file a rule names (what: "keywords_file" or "domains_file") within the size caps
 * and adds its bytes to the rules version; NULL when it could not be read (reported, counted as
 * the rule's attempt so it is not also "rule has no keywords"). */
static char *loader_read_list(loader_t *ld, const char *what, const char *path, int line,
                              size_t *len)
{
    char q[TW_DIAG_QUOTE_SIZE];
    char *data = NULL;
    const char *why = "";
    int err = file_read(path, RULES_MAX_FILE_BYTES, &data, len, &why);
    if (err == TW_ERR_NOMEM) {
        ld->nomem = true;
        return NULL;
    }
    if (err < 0)
        ld->attempts++;
    if (err == TW_ERR_TOO_LARGE) {
        loader_error(ld, ld->name, line, "%s '%s': larger than %u bytes", what,
                     tw_diag_quote(path, strlen(path), 1, q), RULES_MAX_FILE_BYTES);
        return NULL;
    }
    if (err < 0) {
        loader_error(ld, ld->name, line, "%s '%s': %s", what,
                     tw_diag_quote(path, strlen(path), 1, q), why);
        return NULL;
    }
    /* Aliases can name the same file many times; cap what one load may read in total. */
    if (*len > RULES_MAX_KEYWORDS_TOTAL_BYTES - ld->keywords_bytes) {
        loader_error(ld, ld->name, line,
                     "%s '%s': keywords and domain files add up to more than %u bytes", what,
                     tw_diag_quote(path, strlen(path), 1, q), RULES_MAX_KEYWORDS_TOTAL_BYTES);
        free(data);
        return NULL;
    }
    ld->keywords_bytes += *len;
    if (EVP_DigestUpdate(ld->md, data, *len) != 1) {
        ld->nomem = true;
        free(data);
        return NULL;
    }
    return data;
}

static void loader_keywords_file(loader_t *ld, const char *rel, size_t rel_len, int line)
{
    char *path = loader_list_path(ld, "keywords_file", rel, rel_len, line);
    if (!path)
        return;
    size_t len = 0;
    char *data = loader_read_list(ld, "keywords_file", path, line, &len);
    if (!data)
        goto out;
    const char *file = loader_file_add(ld, path);
    if (!file)
        goto out;
    int lineno = 0;
    for (const char *p = data, *end = data + len; p < end && !ld->nomem;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        lineno++;
        const char *s = p;
        size_t slen = (size_t)(eol - p);
        p = nl ? nl + 1 : end;
        if (slen > 0 && s[slen - 1] == '\r')
            slen--;
        size_t blank = 0;
        while (blank < slen && (s[blank] == ' ' || s[blank] == '\t'))
            blank++;
        if (blank == slen || s[0] == '#')
            continue;
        if (memchr(s, '\0', slen)) {
            ld->attempts++;
            loader_error(ld, file, lineno, "keyword contains a NUL byte");
            continue;
        }
        loader_keyword_add(ld, s, slen, file, lineno);
    }
out:
    free(data);
    free(path);
}

/* The index of the domain list at path in rs->domain_sets, loading it on first use (rules
 * that share a list share its memory). Returns -1 when it could not be loaded (reported). */
static long loader_domain_set(loader_t *ld, const char *path, int line)
{
    rule_set_t *rs = ld->rs;
    for (size_t i = 0; i < rs->npatterns; i++)
        if (rs->patterns[i].kind == RULE_PATTERN_DOMAINS && strcmp(rs->patterns[i].text, path) == 0)
            return (long)rs->patterns[i].domain_set;
    size_t len = 0;
    char *data = loader_read_list(ld, "domains_file", path, line, &len);
    if (!data)
        return -1;
    const char *file = loader_file_add(ld, path);
    struct domain_set **sets = realloc(rs->domain_sets, (rs->ndomain_sets + 1) * sizeof *sets);
    domain_set_t *set = domain_set_new();
    if (!file || !sets || !set) {
        if (sets)
            rs->domain_sets = sets;
        domain_set_free(set);
        free(data);
        ld->nomem = true;
        return -1;
    }
    rs->domain_sets = sets;
    rs->domain_sets[rs->ndomain_sets++] = set;
    /* Every bad line of the list is reported against the list's own file and line. */
    tw_diag_t list_diag;
    tw_diag_init(&list_diag);
    int err = domain_set_load_buffer(set, file, data, len, &list_diag);
    for (size_t i = 0; i < list_diag.count; i++)
        if (++ld->nerrors <= RULES_MAX_DIAGS) /* already "list:line: why" */
            tw_diag_add(ld->diag, "%s", list_diag.lines[i]);
    tw_diag_fini(&list_diag);
    free(data);
    if (err == TW_ERR_NOMEM)
        ld->nomem = true;
    return err == 0 ? (long)(rs->ndomain_sets - 1) : -1;
}

/* `domains_file:`: the rule hits when a host in the post is on the list (links/). */
static void loader_domains_file(loader_t *ld, const char *rel, size_t rel_len, int line)
{
    ld->attempts++; /* a rule of domains alone has patterns too */
    char *path = loader_list_path(ld, "domains_file", rel, rel_len, line);
    if (!path)
        return;
    long set = loader_domain_set(ld, path, line);
    rule_pattern_t *pat = set >= 0 ? loader_pattern_add(ld, ld->name, line) : NULL;
    if (!pat) {
        free(path);
        return;
    }
    pat->kind = RULE_PATTERN_DOMAINS;
    pat->domain_set = (uint32_t)set;
    pat->text = path;
    ld->rs->npatterns++;
}

/* Calls fn on the node if it is a scalar, or on each item if it is a sequence of scalars:
 * keywords_file and regex accept either form. */
typedef void (*loader_item_fn)(loader_t *ld, const char *s, size_t len, int line);

static void loader_each_string(loader_t *ld, const yaml_node_t *node, const char *what,
                               bool allow_scalar, loader_item_fn fn)
{
    size_t len;
    if (node->type == YAML_SCALAR_NODE && allow_scalar) {
        const char *s = loader_scalar(ld, node, what, &len);
        if (s)
            fn(ld, s, len, node_line(node));
        return;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        loader_error(ld, ld->name, node_line(node), "%s must be a %s", what,
                     allow_scalar ? "string or a sequence of strings" : "sequence of strings");
        return;
    }
    for (yaml_node_item_t *it = node->data.sequence.items.start;
         it < node->data.sequence.items.top && !ld->nomem; it++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        if (!item)
            continue;
        const char *s = loader_scalar(ld, item, what, &len);
        if (s)
            fn(ld, s, len, node_line(item));
        else
            ld->attempts++;
    }
}

static void loader_keyword_item(loader_t *ld, const char *s, size_t len, int line)
{
    loader_keyword_add(ld, s, len, ld->name, line);
}

static char *loader_strdup(loader_t *ld, const char *s, size_t len)
{
    char *copy = strndup(s, len);
    if (!copy)
        ld->nomem = true;
    return copy;
}

static uint64_t id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Returns the index of an earlier rule with the same id, or SIZE_MAX after recording index.
 * Two ids whose hashes collide are told apart by moving on to the next key (hash + 1...): no
 * entry is ever removed, so lookups follow the same chain. */
static size_t loader_id_claim(loader_t *ld, const char *id, size_t index)
{
    for (uint64_t key = id_hash(id);; key++) {
        bool inserted;
        uint64_t *slot = u64map_put(&ld->ids, key, index, &inserted);
        if (!slot) {
            ld->nomem = true;
            return SIZE_MAX;
        }
        if (inserted)
            return SIZE_MAX;
        if (strcmp(ld->rs->rules[*slot].id, id) == 0)
            return (size_t)*slot;
    }
}

/* Appends the strings of a scalar or sequence node to an owned list, at most RULES_MAX_LIST. */
static void loader_string_list(loader_t *ld, const yaml_node_t *node, const char *what,
                               char ***list, size_t *n)
{
    const yaml_node_t *one = node;
    size_t count = node->type == YAML_SEQUENCE_NODE
                       ? (size_t)(node->data.sequence.items.top - node->data.sequence.items.start)
                       : 1;
    if (node->type == YAML_MAPPING_NODE) {
        loader_error(ld, ld->name, node_line(node), "%s must be a string or a list", what);
        return;
    }
    if (count > RULES_MAX_LIST) {
        loader_error(ld, ld->name, node_line(node), "%s: more than %u items", what, RULES_MAX_LIST);
        return;
    }
    char **items = calloc(count ? count : 1, sizeof(*items));
    if (!items) {
        ld->nomem = true;
        return;
    }
    size_t got = 0;
    for (size_t i = 0; i < count; i++) {
        if (node->type == YAML_SEQUENCE_NODE)
            one = yaml_document_get_node(ld->doc, node->data.sequence.items.start[i]);
        size_t len;
        const char *s = one ? loader_scalar(ld, one, what, &len) : NULL;
        if (!s)
            continue;
        if (len == 0) {
            loader_error(ld, ld->name, node_line(one), "%s: empty item", what);
            continue;
        }
        if (!(items[got] = loader_strdup(ld, s, len)))
            break;
        got++;
    }
    *list = items;
    *n = got;
}

static void loader_example(loader_t *ld, rule_t *rule, const yaml_node_t *node, int should)
{
    const char *what = should ? "examples.match" : "examples.no_match";
    if (node->type != YAML_SEQUENCE_NODE) {
        loader_error(ld, ld->name, node_line(node), "%s must be a list of texts", what);
        return;
    }
    for (yaml_node_item_t *it = node->data.sequence.items.start;
         it < node->data.sequence.items.top && !ld->nomem; it++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        size_t len;
        const char *s = item ? loader_scalar(ld, item, what, &len) : NULL;
        if (!s)
            continue;
        if (rule->nexamples >= RULES_MAX_EXAMPLES) {
            loader_error(ld, ld->name, node_line(item), "more than %u examples in one rule",
                         RULES_MAX_EXAMPLES);
            return;
        }
        rule_example_t *ex = realloc(rule->examples, (rule->nexamples + 1) * sizeof(*ex));
        if (!ex) {
            ld->nomem = true;
            return;
        }
        rule->examples = ex;
        ex = &rule->examples[rule->nexamples];
        if (!(ex->text = loader_strdup(ld, s, len)))
            return;
        ex->line = node_line(item);
        ex->should_match = should;
        rule->nexamples++;
    }
}

/* Iterates a mapping node: returns the next key that is a string (reporting those that are
 * not, named by what) with its length and both nodes, advancing *pair; NULL at the end or
 * once out of memory. Start with *pair = map->data.mapping.pairs.start. */
static const char *loader_next_pair(loader_t *ld, const yaml_node_t *map, yaml_node_pair_t **pair,
                                    const char *what, size_t *klen, yaml_node_t **key,
                                    yaml_node_t **value)
{
    while (*pair < map->data.mapping.pairs.top && !ld->nomem) {
        const yaml_node_pair_t *p = (*pair)++;
        *key = yaml_document_get_node(ld->doc, p->key);
        *value = yaml_document_get_node(ld->doc, p->value);
        if (!*key || !*value)
            continue;
        const char *k = loader_scalar(ld, *key, what, klen);
        if (k)
            return k;
    }
    return NULL;
}

/* ---- One parser per rule key (see docs/RULES.md); each reports its own errors. ---------- */

/* A non-empty string value into *out (owned). */
static void loader_key_text(loader_t *ld, const yaml_node_t *value, const char *what, char **out)
{
    size_t vlen;
    const char *v = loader_scalar(ld, value, what, &vlen);
    if (!v)
        return;
    if (vlen == 0)
        loader_error(ld, ld->name, node_line(value), "%s is empty", what);
    else
        *out = loader_strdup(ld, v, vlen);
}

static void loader_key_id(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_key_text(ld, value, "id", &rule->id);
}

static void loader_key_category(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_key_text(ld, value, "category", &rule->category);
}

static void loader_key_severity(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    size_t vlen;
    const char *v = loader_scalar(ld, value, "severity", &vlen);
    char q[TW_DIAG_QUOTE_SIZE];
    if (v && rule_severity_parse(v, &rule->severity) != 0)
        loader_error(ld, ld->name, node_line(value),
                     "unknown severity '%s' (expected low, medium, high or critical)",
                     tw_diag_quote(v, vlen, 1, q));
}

static void loader_key_keywords(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    (void)rule; /* patterns go to ld->rs, tagged with the current rule */
    loader_each_string(ld, value, "keywords", false, loader_keyword_item);
}

static void loader_key_keywords_file(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    (void)rule;
    loader_each_string(ld, value, "keywords_file", true, loader_keywords_file);
}

static void loader_key_regex(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    (void)rule;
    loader_each_string(ld, value, "regex", true, loader_regex_add);
}

static void loader_key_domains_file(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    (void)rule;
    loader_each_string(ld, value, "domains_file", true, loader_domains_file);
}

static void loader_key_mode(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    static const char *const modes[] = {"word", "prefix", "suffix", "substring"};
    size_t vlen;
    const char *v = loader_scalar(ld, value, "mode", &vlen);
    if (!v)
        return;
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, modes[i]) == 0) {
            rule->mode = (rule_mode_t)i;
            return;
        }
    }
    char q[TW_DIAG_QUOTE_SIZE];
    loader_error(ld, ld->name, node_line(value),
                 "unknown mode '%s' (expected word, prefix, suffix or substring)",
                 tw_diag_quote(v, vlen, 1, q));
}

static void loader_key_views(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    char **names = NULL;
    size_t n = 0;
    char q[TW_DIAG_QUOTE_SIZE];
    loader_string_list(ld, value, "views", &names, &n);
    unsigned views = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], "folded") == 0)
            views |= RULE_VIEW_FOLDED;
        else if (strcmp(names[i], "skeleton") == 0)
            views |= RULE_VIEW_SKELETON;
        else if (strcmp(names[i], "squash") == 0)
            views |= RULE_VIEW_SQUASH;
        else
            loader_error(ld, ld->name, node_line(value),
                         "unknown view '%s' (expected folded, skeleton or squash)",
                         tw_diag_quote(names[i], strlen(names[i]), 1, q));
        free(names[i]);
    }
    free(names);
    if (n && !views)
        return;
    if (!n) {
        loader_error(ld, ld->name, node_line(value), "views is empty");
        return;
    }
    rule->keyword_views = views;
    rule->regex_views = views;
}

static void loader_key_squash(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    size_t vlen;
    const char *v = loader_scalar(ld, value, "squash", &vlen);
    if (!v)
        return;
    if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
        /* squash: true = the default views plus squash */
        if (!rule->keyword_views)
            rule->keyword_views = RULE_VIEW_FOLDED | RULE_VIEW_SKELETON;
        rule->keyword_views |= RULE_VIEW_SQUASH;
    } else if (strcmp(v, "false") != 0 && strcmp(v, "no") != 0) {
        loader_error(ld, ld->name, node_line(value), "squash must be true or false");
    }
}

/* A YAML boolean (true/false/yes/no); false with an error for anything else. */
static bool loader_bool(loader_t *ld, const yaml_node_t *value, const char *what, bool *out)
{
    size_t vlen;
    const char *v = loader_scalar(ld, value, what, &vlen);
    if (!v)
        return false;
    if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0) {
        *out = false;
        return true;
    }
    loader_error(ld, ld->name, node_line(value), "%s must be true or false", what);
    return false;
}

static void loader_key_shadow(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_bool(ld, value, "shadow", &rule->shadow);
}

/* `flood: off`, or `flood: {max_share: 0.05, min_posts: 500}` (either key may be left out:
 * it then keeps the configured value, which the worker fills in; see rules.h). */
static void loader_key_flood(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    rule->flood_set = true;
    rule->flood_max_share = -1; /* -1 / 0: the configured values */
    rule->flood_min_posts = 0;
    if (value->type == YAML_SCALAR_NODE) {
        size_t vlen;
        const char *v = loader_scalar(ld, value, "flood", &vlen);
        if (v && strcmp(v, "off") != 0 && strcmp(v, "false") != 0)
            loader_error(ld, ld->name, node_line(value),
                         "flood must be off or a mapping with max_share and/or min_posts");
        rule->flood_max_share = 0;
        return;
    }
    if (value->type != YAML_MAPPING_NODE) {
        loader_error(ld, ld->name, node_line(value),
                     "flood must be off or a mapping with max_share and/or min_posts");
        return;
    }
    yaml_node_pair_t *pair = value->data.mapping.pairs.start;
    yaml_node_t *k, *val;
    size_t klen, vlen;
    const char *ks;
    while ((ks = loader_next_pair(ld, value, &pair, "a flood key", &klen, &k, &val))) {
        const char *v = loader_scalar(ld, val, ks, &vlen);
        if (!v)
            continue;
        char *end = NULL;
        if (strcmp(ks, "max_share") == 0) {
            double share = strtod(v, &end);
            if (!vlen || *end || !(share >= 0 && share <= 1))
                loader_error(ld, ld->name, node_line(val),
                             "flood.max_share must be a share from 0 (never mute) to 1");
            else
                rule->flood_max_share = share;
        } else if (strcmp(ks, "min_posts") == 0) {
            long n = strtol(v, &end, 10);
            if (!vlen || *end || n < 1 || n > 1000000000)
                loader_error(ld, ld->name, node_line(val),
                             "flood.min_posts must be an integer from 1 to 1000000000");
            else
                rule->flood_min_posts = (uint32_t)n;
        } else {
            loader_error(ld, ld->name, node_line(k),
                         "unknown key '%s' in flood (expected max_share or min_posts)", ks);
        }
    }
}

static void loader_key_all(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    if (value->type != YAML_SEQUENCE_NODE) {
        loader_error(ld, ld->name, node_line(value), "all must be a list of keywords");
        return;
    }
    ld->group = RULE_GROUP_ALL;
    for (yaml_node_item_t *it = value->data.sequence.items.start;
         it < value->data.sequence.items.top && !ld->nomem; it++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
        if (!item)
            continue;
        if (rule->nall >= RULES_MAX_ALL) {
            loader_error(ld, ld->name, node_line(item), "all: more than %u items", RULES_MAX_ALL);
            break;
        }
        ld->all_index = rule->nall++;
        /* An item is a keyword, or a list of keywords any of which satisfies it. */
        if (item->type == YAML_SEQUENCE_NODE)
            loader_each_string(ld, item, "all", false, loader_keyword_item);
        else
            loader_each_string(ld, item, "all", true, loader_keyword_item);
    }
    ld->group = RULE_GROUP_ANY;
    ld->all_index = 0;
}

static void loader_key_except(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    (void)rule;
    ld->group = RULE_GROUP_NONE;
    loader_each_string(ld, value, "except", true, loader_keyword_item);
    ld->group = RULE_GROUP_ANY;
}

/* An integer from 1 to 1000 into *out; otherwise the error message must. */
static void loader_key_count(loader_t *ld, const yaml_node_t *value, const char *what,
                             const char *must, uint32_t *out)
{
    size_t vlen;
    const char *v = loader_scalar(ld, value, what, &vlen);
    if (!v)
        return;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!vlen || *end || n < 1 || n > 1000)
        loader_error(ld, ld->name, node_line(value), "%s", must);
    else
        *out = (uint32_t)n;
}

static void loader_key_within(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_key_count(ld, value, "within", "within must be a number of words from 1 to 1000",
                     &rule->within);
}

static void loader_key_min_matches(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_key_count(ld, value, "min_matches", "min_matches must be an integer from 1 to 1000",
                     &rule->min_matches);
}

static void loader_key_langs(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_string_list(ld, value, "langs", &rule->langs, &rule->nlangs);
}

static void loader_key_tags(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_string_list(ld, value, "tags", &rule->tags, &rule->ntags);
}

static void loader_key_fields(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    loader_string_list(ld, value, "fields", &rule->fields, &rule->nfields);
}

static void loader_key_examples(loader_t *ld, rule_t *rule, const yaml_node_t *value)
{
    if (value->type != YAML_MAPPING_NODE) {
        loader_error(ld, ld->name, node_line(value),
                     "examples must be a mapping with match and/or no_match lists");
        return;
    }
    char q[TW_DIAG_QUOTE_SIZE];
    yaml_node_pair_t *pair = value->data.mapping.pairs.start;
    yaml_node_t *k, *val;
    size_t klen;
    const char *ks;
    while ((ks = loader_next_pair(ld, value, &pair, "an examples key", &klen, &k, &val))) {
        if (strcmp(ks, "match") == 0)
            loader_example(ld, rule, val, 1);
        else if (strcmp(ks, "no_match") == 0)
            loader_example(ld, rule, val, 0);
        else
            loader_error(ld, ld->name, node_line(k),
                         "unknown key '%s' in examples (expected match or no_match)",
                         tw_diag_quote(ks, klen, 1, q));
    }
}

typedef void (*loader_key_fn)(loader_t *ld, rule_t *rule, const yaml_node_t *value);

static const struct {
    const char *name;
    unsigned bit;
    loader_key_fn parse;
} rule_keys[] = {
    {"id", KEY_ID, loader_key_id},
    {"category", KEY_CATEGORY, loader_key_category},
    {"severity", KEY_SEVERITY, loader_key_severity},
    {"keywords", KEY_KEYWORDS, loader_key_keywords},
    {"keywords_file", KEY_KEYWORDS_FILE, loader_key_keywords_file},
    {"regex", KEY_REGEX, loader_key_regex},
    {"mode", KEY_MODE, loader_key_mode},
    {"views", KEY_VIEWS, loader_key_views},
    {"squash", KEY_SQUASH, loader_key_squash},
    {"all", KEY_ALL, loader_key_all},
    {"except", KEY_EXCEPT, loader_key_except},
    {"min_matches", KEY_MIN_MATCHES, loader_key_min_matches},
    {"langs", KEY_LANGS, loader_key_langs},
    {"tags", KEY_TAGS, loader_key_tags},
    {"examples", KEY_EXAMPLES, loader_key_examples},
    {"within", KEY_WITHIN, loader_key_within},
    {"fields", KEY_FIELDS, loader_key_fields},
    {"domains_file", KEY_DOMAINS_FILE, loader_key_domains_file},
    {"shadow", KEY_SHADOW, loader_key_shadow},
    {"flood", KEY_FLOOD, loader_key_flood},
};

/* Appends an empty rule (severity medium) and returns its index, or SIZE_MAX. The rule is
 * appended before its patterns so they can refer to its index; on any error the whole set is
 * discarded, so a half-filled rule never escapes. */
static size_t loader_rule_new(loader_t *ld, const yaml_node_t *node)
{
    rule_set_t *rs = ld->rs;
    int line = node_line(node);
    if (node->type != YAML_MAPPING_NODE) {
        loader_error(ld, ld->name, line, "a rule must be a mapping (id, category, ...)");
        return SIZE_MAX;
    }
    if (rs->nrules >= RULES_MAX_RULES) {
        if (!ld->too_many_rules)
            loader_error(ld, ld->name, line, "too many rules (limit %u)", RULES_MAX_RULES);
        ld->too_many_rules = true;
        return SIZE_MAX;
    }
    rule_t *rules = loader_grow(ld, rs->rules, &ld->rules_cap, rs->nrules, sizeof(*rules));
    if (!rules)
        return SIZE_MAX;
    rs->rules = rules;
    rule_t *rule = &rs->rules[rs->nrules++];
    memset(rule, 0, sizeof(*rule));
    rule->severity = RULE_SEVERITY_MEDIUM;
    rule->shadow = ld->file_shadow;
    rule->file = (char *)ld->name;
    rule->line = line;
    return rs->nrules - 1;
}

/* Parses each key of the rule at index; returns the KEY_* bits seen. */
static unsigned loader_rule_keys(loader_t *ld, const yaml_node_t *node, size_t index)
{
    unsigned seen = 0;
    char q[TW_DIAG_QUOTE_SIZE];
    yaml_node_pair_t *pair = node->data.mapping.pairs.start;
    yaml_node_t *key, *value;
    size_t klen;
    const char *k;
    while ((k = loader_next_pair(ld, node, &pair, "a rule key", &klen, &key, &value))) {
        size_t ki = 0, nkeys = sizeof(rule_keys) / sizeof(rule_keys[0]);
        while (ki < nkeys && strcmp(k, rule_keys[ki].name) != 0)
            ki++;
        if (ki == nkeys) {
            loader_error(ld, ld->name, node_line(key),
                         "unknown key '%s' in rule (expected id, category, severity, keywords, "
                         "keywords_file, regex, mode, views, squash, all, except, min_matches, "
                         "langs, tags, examples, within, fields, domains_file, shadow or flood)",
                         tw_diag_quote(k, klen, 1, q));
            continue;
        }
        if (seen & rule_keys[ki].bit) {
            loader_error(ld, ld->name, node_line(key), "duplicate key '%s' in rule", k);
            continue;
        }
        seen |= rule_keys[ki].bit;
        /* Re-fetched for each key: keyword files cannot move rules, but stay safe. */
        rule_keys[ki].parse(ld, &ld->rs->rules[index], value);
    }
    return seen;
}

/* What a rule needs as a whole: an id and a category, something to match, the keys that
 * need others, and an id no earlier rule has. */
static void loader_rule_check(loader_t *ld, size_t index, unsigned seen)
{
    rule_set_t *rs = ld->rs;
    const rule_t *rule = &rs->rules[index];
    int line = rule->line;
    char q[TW_DIAG_QUOTE_SIZE];
    const char *shown = rule->id ? tw_diag_quote(rule->id, strlen(rule->id), 1, q) : NULL;
    if (!(seen & KEY_ID))
        loader_error(ld, ld->name, line, "rule has no 'id'");
    if (!(seen & KEY_CATEGORY))
        loader_error(ld, ld->name, line, "rule '%s' has no 'category'", shown ? shown : "?");
    /* A pattern that failed was already reported; only say "nothing to match" when the rule
     * really had nothing (no pattern key, an empty list, a comment-only keywords file). */
    if (ld->attempts == 0 && !ld->too_many_patterns)
        loader_error(ld, ld->name, line, "rule '%s' has no keywords or regex", shown ? shown : "?");
    if (rule->min_matches > 1 &&
        !(seen & (KEY_KEYWORDS | KEY_KEYWORDS_FILE | KEY_REGEX | KEY_DOMAINS_FILE)))
        loader_error(ld, ld->name, line, "rule '%s': min_matches needs keywords or regex",
                     shown ? shown : "?");
    if ((seen & KEY_WITHIN) && !(seen & KEY_ALL))
        loader_error(ld, ld->name, line,
                     "rule '%s': within needs an all: list (the terms to find near each other)",
                     shown ? shown : "?");
    if (rule->id) {
        size_t other = loader_id_claim(ld, rule->id, index);
        if (other != SIZE_MAX)
            loader_error(ld, ld->name, line, "duplicate rule id '%s' (first defined at %s:%d)",
                         shown, rs->rules[other].file, rs->rules[other].line);
    }
}

static void loader_rule(loader_t *ld, const yaml_node_t *node)
{
    size_t index = loader_rule_new(ld, node);
    if (index == SIZE_MAX)
        return;
    ld->attempts = 0;
    unsigned seen = loader_rule_keys(ld, node, index);
    if (!ld->nomem)
        loader_rule_check(ld, index, seen);
}

static void loader_document(loader_t *ld)
{
    yaml_node_t *root = yaml_document_get_root_node(ld->doc);
    /* "---" alone is a document holding one empty scalar: as empty as an empty file. */
    if (!root || (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0)) {
        loader_error(ld, ld->name, 1, "empty rules file: expected a mapping with a 'rules' list");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        loader_error(ld, ld->name, node_line(root),
                     "the top level must be a mapping with a 'rules' list");
        return;
    }
    bool have_rules = false;
    char q[TW_DIAG_QUOTE_SIZE];
    yaml_node_pair_t *pair = root->data.mapping.pairs.start;
    yaml_node_t *key, *value;
    size_t klen;
    const char *k;
    /* `shadow:` first, wherever it is written: it is the default of every rule below. */
    while ((k = loader_next_pair(ld, root, &pair, "a top-level key", &klen, &key, &value)))
        if (strcmp(k, "shadow") == 0)
            loader_bool(ld, value, "shadow", &ld->file_shadow);
    pair = root->data.mapping.pairs.start;
    while ((k = loader_next_pair(ld, root, &pair, "a top-level key", &klen, &key, &value))) {
        if (strcmp(k, "shadow") == 0)
            continue;
        if (strcmp(k, "allow") == 0) {
            /* Global allow list: keyword phrases inside which no rule's hit counts. */
            ld->group = RULE_GROUP_ALLOW;
            loader_each_string(ld, value, "allow", false, loader_keyword_item);
            ld->group = RULE_GROUP_ANY;
            continue;
        }
        if (strcmp(k, "rules") != 0) {
            loader_error(ld, ld->name, node_line(key),
                         "unknown top-level key '%s' (expected rules, allow or shadow)",
                         tw_diag_quote(k, klen, 1, q));
            continue;
        }
        if (have_rules) {
            loader_error(ld, ld->name, node_line(key), "duplicate key 'rules'");
            continue;
        }
        have_rules = true;
        if (value->type == YAML_SCALAR_NODE && value->data.scalar.length == 0)
            continue; /* "rules:" with nothing under it: an empty rule set */
        if (value->type != YAML_SEQUENCE_NODE) {
            loader_error(ld, ld->name, node_line(value), "'rules' must be a sequence of rules");
            continue;
        }
        for (yaml_node_item_t *it = value->data.sequence.items.start;
             it < value->data.sequence.items.top && !ld->nomem; it++) {
            yaml_node_t *item = yaml_document_get_node(ld->doc, *it);
            if (item)
                loader_rule(ld, item);
        }
    }
    if (!have_rules)
        loader_error(ld, ld->name, node_line(root), "no 'rules' list");
}

static void loader_yaml_error(loader_t *ld, const yaml_parser_t *parser)
{
    if (parser->error == YAML_MEMORY_ERROR) {
        ld->nomem = true;
        return;
    }
    const char *problem = parser->problem ? parser->problem : "malformed YAML";
    if (parser->context)
        loader_error(ld, ld->name, (int)parser->problem_mark.line + 1, "YAML: %s %s",
                     parser->context, problem);
    else
        loader_error(ld, ld->name, (int)parser->problem_mark.line + 1, "YAML: %s", problem);
}

/* libyaml's scanner does work proportional to the flow nesting depth for every token, so 60 KB
 * of "[[[[..." takes seconds, and yaml_parser_load has no depth limit. A first pass over the
 * events stops at RULES_MAX_DEPTH (a rules file needs 4 levels) before the real load; parsing
 * is cheap next to compiling, so reading the bytes twice costs nothing that matters. Returns
 * false after reporting a YAML error or too deep a nesting. */
#define RULES_MAX_DEPTH 64

static bool loader_check_depth(loader_t *ld, const char *data, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        ld->nomem = true;
        return false;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    bool ok = true;
    int depth = 0;
    for (;;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            loader_yaml_error(ld, &parser);
            ok = false;
            break;
        }
        yaml_event_type_t type = event.type;
        int line = (int)event.start_mark.line + 1;
        yaml_event_delete(&event);
        if (type == YAML_STREAM_END_EVENT)
            break;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > RULES_MAX_DEPTH) {
                loader_error(ld, ld->name, line, "YAML nested deeper than %d levels",
                             RULES_MAX_DEPTH);
                ok = false;
                break;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
    }
    yaml_parser_delete(&parser);
    return ok;
}

void rule_set_free(rule_set_t *rs)
{
    if (!rs)
        return;
    for (size_t i = 0; i < rs->nrules; i++) {
        rule_t *r = &rs->rules[i];
        free(r->id);
        free(r->category);
        for (size_t j = 0; j < r->nlangs; j++)
            free(r->langs[j]);
        free(r->langs);
        for (size_t j = 0; j < r->ntags; j++)
            free(r->tags[j]);
        free(r->tags);
        for (size_t j = 0; j < r->nfields; j++)
            free(r->fields[j]);
        free(r->fields);
        for (size_t j = 0; j < r->nexamples; j++)
            free(r->examples[j].text);
        free(r->examples);
    }
    for (size_t i = 0; i < rs->npatterns; i++)
        free(rs->patterns[i].text);
    for (size_t i = 0; i < rs->ndomain_sets; i++)
        domain_set_free(rs->domain_sets[i]);
    free(rs->domain_sets);
    for (size_t i = 0; i < rs->nfiles; i++)
        free(rs->files[i]);
    free(rs->rules);
    free(rs->patterns);
    free(rs->files);
    free(rs);
}

/* Parses data as one YAML document of rules into ld; a second document is an error (the
 * parser would silently ignore it). */
static void loader_parse(loader_t *ld, const char *data, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        ld->nomem = true;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        loader_yaml_error(ld, &parser);
        yaml_parser_delete(&parser);
        return;
    }
    ld->doc = &doc;
    loader_document(ld);
    ld->doc = NULL;
    yaml_document_delete(&doc);
    if (!ld->nomem) {
        if (!yaml_parser_load(&parser, &doc)) {
            loader_yaml_error(ld, &parser);
        } else {
            yaml_node_t *root = yaml_document_get_root_node(&doc);
            if (root)
                loader_error(ld, ld->name, node_line(root),
                             "more than one YAML document; put all rules in one");
            yaml_document_delete(&doc);
        }
    }
    yaml_parser_delete(&parser);
}

/* rs->version: "sha256:" and the hex digest of the rules and keywords files' bytes. */
static void loader_set_version(loader_t *ld)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_DigestFinal_ex(ld->md, digest, &dlen) != 1 || dlen != 32) {
        ld->nomem = true;
        return;
    }
    char *v = ld->rs->version;
    memcpy(v, "sha256:", 7);
    for (unsigned i = 0; i < dlen; i++)
        snprintf(v + 7 + 2 * i, 3, "%02x", digest[i]);
}

int rule_set_load_buffer(const char *name, const char *data, size_t len, rule_set_t **out,
                         tw_diag_t *diag)
{
    *out = NULL;
    loader_t ld = {.diag = diag};
    normalized_init(&ld.norm);
    char *dir = NULL;
    ld.rs = calloc(1, sizeof(*ld.rs));
    ld.md = EVP_MD_CTX_new();
    if (!ld.rs || !ld.md)
        ld.nomem = true;
    else
        ld.name = loader_file_add(&ld, name);
    const char *slash = strrchr(name, '/');
    if (ld.name && slash) {
        /* "/rules.yaml" lives in "/", which joins as "" + "/" + rel. */
        if (!(dir = strndup(name, (size_t)(slash - name))))
            ld.nomem = true;
        ld.dir = dir;
    }
    if (ld.name && !ld.nomem &&
        (EVP_DigestInit_ex(ld.md, EVP_sha256(), NULL) != 1 ||
         EVP_DigestUpdate(ld.md, data, len) != 1))
        ld.nomem = true;
    bool parsed = false;
    if (ld.name && !ld.nomem && loader_check_depth(&ld, data, len)) {
        loader_parse(&ld, data, len);
        parsed = true;
    }
    if (parsed && !ld.nomem && !ld.nerrors)
        loader_set_version(&ld);
    int err = 0;
    if (ld.nerrors > RULES_MAX_DIAGS)
        tw_diag_add(diag, "%s: %zu more errors not shown", name, ld.nerrors - RULES_MAX_DIAGS);
    if (ld.nomem)
        err = TW_ERR_NOMEM;
    else if (ld.nerrors)
        err = TW_ERR_PARSE;
    else if (parsed) {
        *out = ld.rs;
        ld.rs = NULL;
    }
    rule_set_free(ld.rs);
    EVP_MD_CTX_free(ld.md);
    normalized_fini(&ld.norm);
    u64map_fini(&ld.ids);
    free(dir);
    return err;
}

int rule_set_load(const char *path, rule_set_t **out, tw_diag_t *diag)
{
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    const char *why = "";
    int err = file_read(path, RULES_MAX_FILE_BYTES, &data, &len, &why);
    if (err == TW_ERR_TOO_LARGE) {
        tw_diag_add(diag, "%s: larger than %u bytes", path, RULES_MAX_FILE_BYTES);
        return err;
    }
    if (err == TW_ERR_NOMEM)
        return err;
    if (err < 0) {
        tw_diag_add(diag, "%s: %s", path, why);
        return err;
    }
    err = rule_set_load_buffer(path, data, len, out, diag);
    free(data);
    return err;
}
