/* The on-disk cache of compiled databases. */
#include "match/match_internal.h"
#include "normalize/confusables_table.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/evp.h>

/* ---- The compiled-database cache ----------------------------------------------------------
 * A rule set is fully determined by the bytes of its rules and keywords files (rs->version
 * hashes them), so the key is that hash plus everything else that changes what gets built:
 * this build of tidewatch (normalization and flag choices live in the code), the Hyperscan
 * version and the CPU features Hyperscan targets. The file holds the key, the pattern table
 * and each view's hs_serialize_database() bytes (its hs, then its hs_som groups); it is
 * written to a temporary name and renamed, so readers never see half a file. */
#define MATCH_CACHE_MAGIC "TWHSDB3"

int match_cache_key(const rule_set_t *rs, char hex[65])
{
    hs_platform_info_t plat;
    memset(&plat, 0, sizeof(plat));
    if (hs_populate_platform(&plat) != HS_SUCCESS)
        return TW_ERR_INVALID;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return TW_ERR_NOMEM;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    char platbuf[64];
    snprintf(platbuf, sizeof(platbuf), "%u/%llu/%zu", plat.tune,
             (unsigned long long)plat.cpu_features, sizeof(match_pat_t));
    const char *parts[] = {MATCH_CACHE_MAGIC, TIDEWATCH_VERSION, __DATE__ " " __TIME__,
                           hs_version(),      platbuf,           confusables_table_version,
                           rs->version};
    int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < sizeof(parts) / sizeof(parts[0]); i++)
        ok = EVP_DigestUpdate(md, parts[i], strlen(parts[i]) + 1) == 1;
    /* Keywords are stored in the database in their views' forms: a canary text through each
     * view puts the normalization code itself into the key, so a build that normalizes
     * differently never reads an old database even with the same date stamp. */
    static const char canary[] = "\xef\xbc\xa6r\xd0\x95\xd1\x91 gi\xe1\xba\xa3 "
                                 "\xd9\x85\xd9\x8e\xd8\xac\xd9\x80\xd8\xa7 f.r.3.3 $@|! "
                                 "\xd1\x80\xd0\xb0\xd1\x83 \xe1\xba\x9e\xe2\x84\xaa";
    normalized_t view;
    normalized_init(&view);
    for (int v = 0; ok && v < NORM_VIEW_COUNT; v++) {
        ok = normalize_text_view(canary, sizeof(canary) - 1, (normalize_view_t)v, &view) == 0 &&
             EVP_DigestUpdate(md, view.text, view.len + 1) == 1 &&
             EVP_DigestUpdate(md, view.src_start, (view.len + 1) * sizeof(uint32_t)) == 1;
    }
    normalized_fini(&view);
    ok = ok && EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
    EVP_MD_CTX_free(md);
    if (!ok)
        return TW_ERR_NOMEM;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

/* Opens the cache directory for this process alone, creating it (and its parent, for
 * $XDG_CACHE_HOME/tidewatch) 0700 when missing. Databases read from it are deserialized and
 * run, and the default lives under /tmp, so a directory that another user owns or can write
 * to, or a symlink (which someone else may have planted before us), is refused: the cache is
 * then off, with a warning. Every later file operation is relative to the returned fd, so
 * swapping the path afterwards cannot redirect them. Returns the fd, or -1. */
int match_cache_dir_open(const char *dir)
{
    char *parent = strdup(dir);
    if (parent) {
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            mkdir(parent, 0700);
        }
        free(parent);
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        log_warn("rules cache %s: cannot create: %s; compiling without the cache", dir,
                 strerror(errno));
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        log_warn("rules cache %s: cannot open (%s; a symlink is refused); compiling without "
                 "the cache",
                 dir, strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0)
        why = strerror(errno);
    else if (st.st_uid != geteuid())
        why = "owned by another user";
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        why = "open to group or others (needs mode 0700)";
    if (why) {
        log_warn("rules cache %s: refused, %s; compiling without the cache", dir, why);
        close(fd);
        return -1;
    }
    return fd;
}

static bool match_read_all(FILE *f, void *buf, size_t n)
{
    return fread(buf, 1, n, f) == n;
}

#define MATCH_CACHE_MAX_DBS (NORM_VIEW_COUNT * (1 + MATCH_SOM_MAX_GROUPS))

/* The places of db's databases in file order: per view its hs, then its hs_som groups. */
static size_t match_cache_slots(match_db_t *db, hs_database_t **slots[MATCH_CACHE_MAX_DBS])
{
    size_t n = 0;
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        slots[n++] = &db->hs[v];
        for (size_t g = 0; g < db->nsom[v]; g++)
            slots[n++] = &db->hs_som[v][g];
    }
    return n;
}

/* Reads the pattern table and each view's databases; false when anything is off. */
static bool match_cache_read(FILE *f, const rule_set_t *rs, match_db_t *db)
{
    char magic[8];
    uint64_t hdr[3 + NORM_VIEW_COUNT]; /* npatterns, nrules, npats, then each view's nsom */
    if (!match_read_all(f, magic, sizeof(magic)) || memcmp(magic, MATCH_CACHE_MAGIC, 8) != 0 ||
        !match_read_all(f, hdr, sizeof(hdr)))
        return false;
    if (hdr[0] != rs->npatterns || hdr[1] != rs->nrules || hdr[2] > 4 * (uint64_t)UINT32_MAX)
        return false;
    for (int v = 0; v < NORM_VIEW_COUNT; v++) {
        if (hdr[3 + v] > MATCH_SOM_MAX_GROUPS)
            return false;
        if (hdr[3 + v] && !(db->hs_som[v] = calloc((size_t)hdr[3 + v], sizeof(*db->hs_som[v]))))
            return false;
        db->nsom[v] = (size_t)hdr[3 + v];
    }
    db->npats = (size_t)hdr[2];
    db->pats = calloc(db->npats ? db->npats : 1, sizeof(*db->pats));
    if (!db->pats || !match_read_all(f, db->pats, db->npats * sizeof(*db->pats)))
        return false;
    for (size_t i = 0; i < db->npats; i++) {
        const match_pat_t *pat = &db->pats[i];
        if (pat->rule_index >= (rs->nrules ? rs->nrules : 1) ||
            pat->pattern_index >= rs->npatterns || pat->view >= NORM_VIEW_COUNT ||
            pat->kind > PAT_REGEX_END || pat->group > RULE_GROUP_ALLOW ||
            pat->all_index >= RULES_MAX_ALL ||
            (pat->kind == PAT_REGEX_SOM && pat->som_group >= db->nsom[pat->view]))
            return false;
    }
    hs_database_t **slots[MATCH_CACHE_MAX_DBS];
    size_t n = match_cache_slots(db, slots);
    uint64_t sizes[MATCH_CACHE_MAX_DBS];
    if (!match_read_all(f, sizes, n * sizeof(sizes[0])))
        return false;
    for (size_t k = 0; k < n; k++) {
        if (sizes[k] == 0)
            continue;
        if (sizes[k] > (1ull << 32))
            return false;
        char *blob = malloc((size_t)sizes[k]);
        bool ok = blob && match_read_all(f, blob, (size_t)sizes[k]) &&
                  hs_deserialize_database(blob, (size_t)sizes[k], slots[k]) == HS_SUCCESS;
        free(blob);
        if (!ok) {
            *slots[k] = NULL;
            return false;
        }
    }
    for (size_t i = 0; i < db->npats; i++)
        db->view_count[db->pats[i].view]++;
    return true;
}

/* Returns 0 with db filled, or nonzero when the file is missing, stale or unreadable. */
int match_cache_load(int dirfd, const char *name, const rule_set_t *rs, match_db_t *db)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(f = fdopen(fd, "rb"))) {
        close(fd);
        return -1;
    }
    bool ok = match_cache_read(f, rs, db);
    fclose(f);
    if (!ok) {
        match_db_free_hs(db);
        free(db->pats);
        db->pats = NULL;
        db->npats = 0;
        memset(db->view_count, 0, sizeof(db->view_count));
        return -1;
    }
    return 0;
}

void match_cache_store(int dirfd, const char *name, const rule_set_t *rs, const match_db_t *db)
{
    hs_database_t **slots[MATCH_CACHE_MAX_DBS];
    size_t n = match_cache_slots((match_db_t *)db, slots);
    char *bytes[MATCH_CACHE_MAX_DBS] = {0};
    uint64_t sizes[MATCH_CACHE_MAX_DBS] = {0};
    char *tmp = NULL;
    FILE *f = NULL;
    for (size_t k = 0; k < n; k++) {
        size_t size = 0;
        if (*slots[k] && hs_serialize_database(*slots[k], &bytes[k], &size) != HS_SUCCESS)
            goto out;
        sizes[k] = size;
    }
    if (asprintf(&tmp, "%s.%ld.tmp", name, (long)getpid()) < 0) {
        tmp = NULL;
        goto out;
    }
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        goto out;
    f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlinkat(dirfd, tmp, 0);
        goto out;
    }
    uint64_t hdr[3 + NORM_VIEW_COUNT] = {rs->npatterns, rs->nrules, db->npats};
    for (int v = 0; v < NORM_VIEW_COUNT; v++)
        hdr[3 + v] = db->nsom[v];
    bool ok = fwrite(MATCH_CACHE_MAGIC, 1, 8, f) == 8 && fwrite(hdr, sizeof(hdr), 1, f) == 1 &&
              fwrite(db->pats, sizeof(*db->pats), db->npats, f) == db->npats &&
              fwrite(sizes, sizeof(sizes[0]), n, f) == n;
    for (size_t k = 0; ok && k < n; k++)
        ok = !sizes[k] || fwrite(bytes[k], 1, (size_t)sizes[k], f) == sizes[k];
    ok = fclose(f) == 0 && ok;
    f = NULL;
    if (!ok || renameat(dirfd, tmp, dirfd, name) != 0)
        unlinkat(dirfd, tmp, 0);
out:
    free(tmp);
    for (size_t k = 0; k < n; k++)
        free(bytes[k]);
}

int match_cache_dir_default(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    int n = xdg && *xdg ? snprintf(buf, size, "%s/tidewatch", xdg)
                        : snprintf(buf, size, "/tmp/tidewatch-cache-%ld", (long)getuid());
    return n > 0 && (size_t)n < size ? 0 : TW_ERR_TOO_LARGE;
}
