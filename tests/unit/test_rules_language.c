/* Unit tests for the rule language beyond the minimum (common/rules.c) and how match.c runs
 * it: views (skeleton, squash) and the script guard, keyword modes, all / except /
 * min_matches / langs, the global allow list, examples, and the compiled-database cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "match/match.h"
#include "normalize/normalize.h"
#include "rules/rules.h"
#include "tw_test.h"

typedef struct {
    rule_set_t *rs;
    match_db_t *db;
    match_scratch_t *scratch;
    match_set_t set;
    normalized_t norm;
    tw_diag_t diag;
} fx_t;

static int fx_load(fx_t *fx, const char *yaml, const char *cache_dir)
{
    memset(fx, 0, sizeof(*fx));
    tw_diag_init(&fx->diag);
    match_set_init(&fx->set);
    normalized_init(&fx->norm);
    int rc = rule_set_load_buffer("mem.yaml", yaml, strlen(yaml), &fx->rs, &fx->diag);
    if (rc == 0)
        rc = match_db_compile_cached(fx->rs, cache_dir, &fx->db, &fx->diag);
    if (rc == 0)
        rc = match_scratch_new(fx->db, &fx->scratch);
    for (size_t i = 0; i < fx->diag.count; i++)
        fprintf(stderr, "  diag: %s\n", fx->diag.lines[i]);
    return rc;
}

static void fx_fini(fx_t *fx)
{
    match_scratch_free(fx->scratch);
    match_db_free(fx->db);
    rule_set_free(fx->rs);
    match_set_fini(&fx->set);
    normalized_fini(&fx->norm);
    tw_diag_fini(&fx->diag);
}

/* Rule ids that hit text (post language lang), comma-separated, into out. */
static const char *fx_hits(fx_t *fx, const char *text, const char *lang, char out[256])
{
    out[0] = '\0';
    if (normalize_text(text, strlen(text), &fx->norm) != 0 ||
        match_scan_post(fx->db, fx->scratch, &fx->norm, lang, lang ? strlen(lang) : 0, &fx->set) !=
            0)
        return "<error>";
    for (size_t i = 0; i < fx->set.count; i++) {
        if (i)
            strcat(out, ",");
        strncat(out, fx->rs->rules[fx->set.hits[i].rule_index].id, 100);
    }
    return out;
}

/* The original-byte span of the first span of the first hit. */
static void fx_first_span(fx_t *fx, size_t *a, size_t *b)
{
    *a = *b = SIZE_MAX;
    if (fx->set.count && fx->set.hits[0].nspans)
        normalized_span_to_source(&fx->norm, fx->set.hits[0].spans[0].start,
                                  fx->set.hits[0].spans[0].end, a, b);
}

TW_TEST(test_default_keyword_sees_through_obfuscation)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&fx, "rules:\n  - {id: k, category: c, keywords: [paypal]}\n", NULL),
                     0);
    const char *hit[] = {"log in to PayPal now",
                         "log in to pay\xe2\x80\x8bpal now", /* ZWSP */
                         "log in to ｐａｙｐａｌ now",
                         "log in to 𝐩𝐚𝐲𝐩𝐚𝐥 now", /* math bold */
                         "log in to раураl now",
                         "log in to pαypαl now", /* Greek alpha */
                         "log in to РАУРАL now",
                         "log in to pãypál now",
                         "log in to p\xcc\x81"
                         "aypal now"};
    for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++) {
        TW_ASSERT_STR_EQ(fx_hits(&fx, hit[i], NULL, out), "k");
        size_t a, b;
        fx_first_span(&fx, &a, &b);
        TW_ASSERT_INT_EQ(a, 10);
        TW_ASSERT_INT_EQ(b, strlen(hit[i]) - 4);
    }
    const char *miss[] = {"paypals", "xpaypal", "pay pal", "p4ypal"};
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++)
        TW_ASSERT_STR_EQ(fx_hits(&fx, miss[i], NULL, out), "");
    fx_fini(&fx);
}

TW_TEST(test_skeleton_guard_spares_cyrillic_text)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(
        fx_load(&fx, "rules:\n  - {id: cop, category: c, keywords: [cop, xopa]}\n", NULL), 0);
    /* Russian "сор" (litter) and "хора" are ordinary words: not the English keywords */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "Сор и хора на улице", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "сор", NULL, out), "");
    /* mixed scripts inside the word: an evasion */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "Сор и cоp", NULL, out), "cop");
    /* an all-Cyrillic look-alike standing in English text */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "call the сор right now please", NULL, out), "cop");
    fx_fini(&fx);

    /* A Cyrillic keyword does not fire on its English look-alike, in plain English text or in
     * a post that has Cyrillic elsewhere (whose skeleton is scanned) */
    TW_ASSERT_INT_EQ(fx_load(&fx, "rules:\n  - {id: ru, category: c, keywords: [сор]}\n", NULL), 0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "call the cop", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "call the cop, это да", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "это сор", NULL, out), "ru");
    fx_fini(&fx);
}

/* Cyrillic and Greek keywords written with Latin look-alikes mixed in (the usual way past a
 * filter; perf/evasion_unicode.py, kind confusable) are found in the skeleton; words that
 * are all Latin, or all of the keyword's script but another word, are not. */
TW_TEST(test_cyrillic_greek_keywords_see_latin_lookalikes)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&fx,
                             "rules:\n"
                             "  - {id: ru, category: c, keywords: [сука]}\n"
                             "  - {id: el, category: c, keywords: [μαλάκες]}\n",
                             NULL),
                     0);
    TW_ASSERT(match_db_view_patterns(fx.db, NORM_VIEW_SKELETON) == 2);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "это сука да", NULL, out), "ru");
    /* Latin c and a among the Cyrillic letters, alone or in an English sentence */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "это cукa да", NULL, out), "ru");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "well cуkа really", NULL, out), "ru");
    /* the transliteration, all Latin, is another matter */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "cyka blyat, это да", NULL, out), "");
    /* look-alikes of a third script: Greek alpha in the Russian word; a word all of Greek
     * letters (lunate sigma, gamma, kappa, alpha read "cyka" too) is Greek text */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "это сукα да", NULL, out), "ru");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "это ϲγκα да", NULL, out), "");
    /* Greek with Latin o/k/a, accents or not */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "είναι μaλάkες ναι", NULL, out), "el");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "είναι μαλάκες ναι", NULL, out), "el");
    fx_fini(&fx);
}

/* The skeleton scan is skipped when nothing that changed can be part of a skeleton pattern;
 * check that what can matter still is scanned. */
TW_TEST(test_skeleton_skip_filter)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&fx,
                             "rules:\n"
                             "  - {id: q, category: c, keywords: [\"don't\"]}\n"
                             "  - {id: p, category: c, keywords: [paypal]}\n"
                             "  - {id: ar, category: c, keywords: [\"مدرسة\"]}\n",
                             NULL),
                     0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "I don\u2019t know", NULL, out), "q");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "it\u2019s \u0440\u0430\u0443\u0440\u0430l", NULL, out), "p");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "pa\u0301ypal", NULL, out), "p"); /* lone combining mark */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "في مدرسه اليوم", NULL, out), "ar");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "في مدرسـة اليوم", NULL, out), "ar");
    fx_fini(&fx);
    TW_ASSERT_INT_EQ(fx_load(&fx, "rules:\n  - {id: p, category: c, keywords: [paypal]}\n", NULL),
                     0);
    /* Arabic changes cannot concern a Latin keyword: still found in the Latin part */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "مدرسة \u0440\u0430\u0443\u0440\u0430l paypal", NULL, out), "p");
    fx_fini(&fx);
}

TW_TEST(test_views_key)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(
        fx_load(&fx,
                "rules:\n"
                "  - {id: exact, category: c, keywords: [paypal], views: [folded]}\n"
                "  - {id: re, category: c, regex: ['pay\\d*pal']}\n"
                "  - {id: re_skel, category: c, regex: ['paypal'], views: [folded, skeleton]}\n"
                "  - {id: sq, category: c, keywords: [butt, free money], squash: true}\n",
                NULL),
        0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "раураl", NULL, out), "re_skel");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "pay22pal", NULL, out), "re"); /* digits still digits */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "paypal", NULL, out), "exact,re,re_skel");
    /* squash: obfuscations hit, but a plain word that merely squashes alike does not */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "but why", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "b.u.t.t", NULL, out), "sq");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "buuuttt", NULL, out), "sq");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "get fr33 m0ney", NULL, out), "sq");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "get f r e e m o n e y", NULL, out), "sq");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "get free money", NULL, out), "sq");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "get fre money", NULL, out), "");
    size_t a, b;
    fx_hits(&fx, "get f.r.3.3 money!", NULL, out);
    fx_first_span(&fx, &a, &b);
    TW_ASSERT_INT_EQ(a, 4);
    TW_ASSERT_INT_EQ(b, 17);
    fx_fini(&fx);
}

TW_TEST(test_modes)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&fx,
                             "rules:\n"
                             "  - {id: w, category: c, keywords: [coin]}\n"
                             "  - {id: p, category: c, keywords: [coin], mode: prefix}\n"
                             "  - {id: s, category: c, keywords: [coin], mode: suffix}\n"
                             "  - {id: x, category: c, keywords: [coin], mode: substring}\n",
                             NULL),
                     0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "a coin", NULL, out), "w,p,s,x");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "coinbase", NULL, out), "p,x");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "shitcoin", NULL, out), "s,x");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "bitcoins", NULL, out), "x");
    fx_fini(&fx);
    TW_ASSERT(
        fx_load(&fx, "rules:\n  - {id: w, category: c, keywords: [a], mode: inside}\n", NULL) != 0);
    fx_fini(&fx);
}

TW_TEST(test_all_except_min_langs_allow)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(
        fx_load(&fx,
                "allow: [free shipping]\n"
                "rules:\n"
                "  - id: all\n    category: c\n    keywords: [bitcoin]\n"
                "    all: [double, [wallet, address]]\n    except: [news, 'scam alert']\n"
                "  - {id: two, category: c, keywords: [free, gift, prize], min_matches: 2}\n"
                "  - {id: fr, category: c, keywords: [arnaque], langs: [fr]}\n"
                "  - {id: free, category: c, keywords: [free]}\n"
                "  - {id: onlyall, category: c, all: [cheap, pills]}\n",
                NULL),
        0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "double your bitcoin, send to my wallet", NULL, out), "all");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "double your bitcoin address", NULL, out), "all");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "double your bitcoin", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "bitcoin wallet", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "news: double your bitcoin wallet", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "scam alert: double your bitcoin wallet", NULL, out), "");
    /* min_matches counts distinct patterns, not repeats */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "free gift", NULL, out), "two,free");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "free free free", NULL, out), "free");
    /* langs */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "une arnaque", "fr", out), "fr");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "une arnaque", "fr-CA", out), "fr");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "une arnaque", "en", out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "une arnaque", NULL, out), "");
    /* allow: a hit inside an allowed phrase does not count, one elsewhere does */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "free shipping today", NULL, out), "");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "free shipping and a free gift", NULL, out), "two,free");
    TW_ASSERT_INT_EQ(fx.set.hits[1].nspans, 1);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "cheap pills", NULL, out), "onlyall");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "cheap stuff", NULL, out), "");
    /* the old API still applies the logic */
    const char *t = "double bitcoin wallet";
    TW_ASSERT_INT_EQ(match_scan(fx.db, fx.scratch, t, strlen(t), &fx.set), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 1);
    fx_fini(&fx);
}

TW_TEST(test_within)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&fx,
                             "rules:\n"
                             "  - {id: near, category: c, all: [send, [btc, bitcoin]], within: 3}\n"
                             "  - id: near_any\n    category: c\n    keywords: [wallet]\n"
                             "    all: [empty]\n    within: 2\n",
                             NULL),
                     0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "send 2 btc now", NULL, out), "near");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "send me your btc", NULL, out), "near");    /* 3 words */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "send me all of your btc", NULL, out), ""); /* 5 words */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "btc: please send it", NULL, out), "near"); /* either order */
    /* a near pair anywhere in the post is enough */
    TW_ASSERT_STR_EQ(fx_hits(&fx, "send a b c d e f bitcoin, or send bitcoin", NULL, out), "near");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "the wallet is empty", NULL, out), "near_any");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "the wallet is now quite empty", NULL, out), "");
    fx_fini(&fx);
    TW_ASSERT(fx_load(&fx, "rules:\n  - {id: a, category: c, keywords: [x], within: 3}\n", NULL) !=
              0);
    fx_fini(&fx);
    TW_ASSERT(fx_load(&fx, "rules:\n  - {id: a, category: c, all: [x, y], within: 0}\n", NULL) !=
              0);
    fx_fini(&fx);
}

TW_TEST(test_fields)
{
    fx_t fx;
    TW_ASSERT_INT_EQ(
        fx_load(&fx,
                "rules:\n"
                "  - {id: author, category: c, keywords: [bot], fields: [author]}\n"
                "  - {id: tag, category: c, keywords: [freemoney], fields: [hashtags]}\n"
                "  - {id: both, category: c, keywords: [scam], fields: [text, title]}\n"
                "  - {id: text, category: c, keywords: [bot]}\n",
                NULL),
        0);
    TW_ASSERT_INT_EQ(match_db_field_count(fx.db), 2);
    TW_ASSERT_STR_EQ(match_db_field_name(fx.db, 0), "author");
    TW_ASSERT_STR_EQ(match_db_field_name(fx.db, 1), "title");
    const char *text = "get #FreeMoney, freemoney, a bot";
    TW_ASSERT_INT_EQ(normalize_text(text, strlen(text), &fx.norm), 0);
    match_field_t fields[2] = {{"Crypto B\u043ET 3000", strlen("Crypto B\u043ET 3000")},
                               {"A SCAM", 6}};
    TW_ASSERT_INT_EQ(
        match_scan_post_fields(fx.db, fx.scratch, &fx.norm, NULL, 0, fields, 2, &fx.set), 0);
    TW_ASSERT_INT_EQ(fx.set.count, 4);
    if (fx.set.count == 4) {
        /* author: hit in the author field (a homoglyph there too), no span */
        TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 0);
        /* hashtags: only the #-prefixed occurrence */
        TW_ASSERT_INT_EQ(fx.set.hits[1].nspans, 1);
        TW_ASSERT_INT_EQ(fx.set.hits[1].spans[0].start, 5);
        /* both: in the title only */
        TW_ASSERT_INT_EQ(fx.set.hits[2].nspans, 0);
        /* text: the text's "bot", not the author's */
        TW_ASSERT_INT_EQ(fx.set.hits[3].nspans, 1);
    }
    /* without the fields, only text targets */
    char out[256];
    TW_ASSERT_STR_EQ(fx_hits(&fx, "a bot with a scam", NULL, out), "both,text");
    fx_fini(&fx);
}

TW_TEST(test_parse_errors)
{
    static const char *const bad[] = {
        "rules:\n  - {id: a, category: c, keywords: [x], views: [folded, nope]}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], min_matches: 0}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], min_matches: two}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], squash: maybe}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], examples: [x]}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], examples: {maybe: [x]}}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], all: x}\n",
        "rules:\n  - {id: a, category: c, except: [x]}\n",
        "rules:\n  - {id: a, category: c, all: [x], min_matches: 2}\n",
        "allow: x\nrules:\n  - {id: a, category: c, keywords: [x]}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], langs: {en: 1}}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], shadow: maybe}\n",
        "shadow: sometimes\nrules:\n  - {id: a, category: c, keywords: [x]}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], flood: {max_share: 2}}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], flood: {min_posts: 0}}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], flood: {share: 0.1}}\n",
        "rules:\n  - {id: a, category: c, keywords: [x], flood: sometimes}\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tw_diag_t diag;
        tw_diag_init(&diag);
        rule_set_t *rs = NULL;
        int rc = rule_set_load_buffer("bad.yaml", bad[i], strlen(bad[i]), &rs, &diag);
        if (rc == 0)
            fprintf(stderr, "  accepted: %s", bad[i]);
        TW_ASSERT(rc != 0);
        TW_ASSERT(diag.count > 0 && strncmp(diag.lines[0], "bad.yaml:", 9) == 0);
        TW_ASSERT(rs == NULL);
        tw_diag_fini(&diag);
    }
}

TW_TEST(test_shadow_and_flood_keys)
{
    const char *yaml = "rules:\n"
                       "  - {id: live, category: c, keywords: [a]}\n"
                       "  - {id: trial, category: c, keywords: [b], shadow: true}\n"
                       "  - {id: quiet, category: c, keywords: [c], flood: off}\n"
                       "  - {id: own, category: c, keywords: [d], flood: {max_share: 0.25}}\n"
                       "  - {id: both, category: c, keywords: [e],\n"
                       "     flood: {max_share: 0.5, min_posts: 20}}\n"
                       "shadow: false\n";
    tw_diag_t diag;
    tw_diag_init(&diag);
    rule_set_t *rs = NULL;
    TW_ASSERT_INT_EQ(rule_set_load_buffer("mem.yaml", yaml, strlen(yaml), &rs, &diag), 0);
    TW_ASSERT(!rs->rules[0].shadow && !rs->rules[0].flood_set);
    TW_ASSERT(rs->rules[1].shadow);
    TW_ASSERT(rs->rules[2].flood_set && rs->rules[2].flood_max_share == 0);
    TW_ASSERT(rs->rules[3].flood_set && rs->rules[3].flood_max_share == 0.25 &&
              rs->rules[3].flood_min_posts == 0);
    TW_ASSERT(rs->rules[4].flood_max_share == 0.5 && rs->rules[4].flood_min_posts == 20);
    rule_set_free(rs);
    /* a whole file in shadow, written after its rules; a rule may still opt out */
    const char *file = "rules:\n"
                       "  - {id: a, category: c, keywords: [a]}\n"
                       "  - {id: b, category: c, keywords: [b], shadow: false}\n"
                       "shadow: true\n";
    TW_ASSERT_INT_EQ(rule_set_load_buffer("mem.yaml", file, strlen(file), &rs, &diag), 0);
    TW_ASSERT(rs->rules[0].shadow);
    TW_ASSERT(!rs->rules[1].shadow);
    rule_set_free(rs);
    tw_diag_fini(&diag);
}

TW_TEST(test_examples)
{
    fx_t fx;
    TW_ASSERT_INT_EQ(
        fx_load(&fx,
                "rules:\n"
                "  - id: ok\n    category: c\n    keywords: [free giveaway]\n"
                "    examples:\n      match: ['FREE GIVEAWAY!', 'free give\u200baway']\n"
                "      no_match: [freegiveaway]\n"
                "  - id: bad\n    category: c\n    keywords: [scam]\n    langs: [en]\n"
                "    examples:\n      match: [scam, 'sc am']\n"
                "      no_match: [a scam]\n",
                NULL),
        0);
    tw_diag_t diag;
    tw_diag_init(&diag);
    size_t passed = 0, failed = 0;
    TW_ASSERT_INT_EQ(match_db_check_examples(fx.db, &diag, &passed, &failed), 0);
    TW_ASSERT_INT_EQ(passed, 4);
    TW_ASSERT_INT_EQ(failed, 2);
    TW_ASSERT_INT_EQ(diag.count, 2);
    for (size_t i = 0; i < diag.count; i++)
        fprintf(stderr, "  diag: %s\n", diag.lines[i]);
    TW_ASSERT(diag.count == 2 && strstr(diag.lines[0], "mem.yaml:13: rule bad: example 'sc am' "
                                                       "should match but does not"));
    TW_ASSERT(diag.count == 2 && strstr(diag.lines[1], "should not match but does"));
    tw_diag_fini(&diag);
    fx_fini(&fx);
}

TW_TEST(test_cache)
{
    char dir[] = "/tmp/tw-test-cache-XXXXXX";
    TW_ASSERT(mkdtemp(dir) != NULL);
    const char *yaml =
        "rules:\n"
        "  - {id: k, category: c, keywords: [paypal, free money], squash: true}\n"
        "  - {id: r, category: c, regex: ['send\\s+\\d+\\s*btc', '(a|b){0,300}c']}\n";
    fx_t a, b;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&a, yaml, dir), 0);
    TW_ASSERT(!match_db_from_cache(a.db));
    TW_ASSERT_INT_EQ(fx_load(&b, yaml, dir), 0);
    TW_ASSERT(match_db_from_cache(b.db));
    TW_ASSERT_INT_EQ(match_db_view_patterns(a.db, NORM_VIEW_SQUASH),
                     match_db_view_patterns(b.db, NORM_VIEW_SQUASH));
    const char *texts[] = {"раураl: send 5 btc", "fr33 m0ney", "aaab c", "nothing"};
    for (size_t i = 0; i < 4; i++) {
        char out2[256];
        TW_ASSERT_STR_EQ(fx_hits(&a, texts[i], NULL, out), fx_hits(&b, texts[i], NULL, out2));
        TW_ASSERT_INT_EQ(a.set.count, b.set.count);
        for (size_t h = 0; h < a.set.count && h < b.set.count; h++)
            TW_ASSERT(a.set.hits[h].rule_index == b.set.hits[h].rule_index &&
                      a.set.hits[h].nspans == b.set.hits[h].nspans &&
                      memcmp(a.set.hits[h].spans, b.set.hits[h].spans,
                             a.set.hits[h].nspans * sizeof(match_span_t)) == 0);
    }
    fx_fini(&b);
    /* A corrupt cache file is ignored and rewritten. */
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "for f in %s/*.hsdb; do head -c 100 \"$f\" > \"$f.x\" && mv \"$f.x\" "
             "\"$f\"; done",
             dir);
    TW_ASSERT_INT_EQ(system(cmd), 0);
    TW_ASSERT_INT_EQ(fx_load(&b, yaml, dir), 0);
    TW_ASSERT(!match_db_from_cache(b.db));
    TW_ASSERT_STR_EQ(fx_hits(&b, "send 5 btc", NULL, out), "r");
    fx_fini(&b);
    /* A different rule set does not pick up the other's database. */
    TW_ASSERT_INT_EQ(fx_load(&b, "rules:\n  - {id: k, category: c, keywords: [paypal]}\n", dir), 0);
    TW_ASSERT(!match_db_from_cache(b.db));
    fx_fini(&b);
    fx_fini(&a);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    TW_ASSERT_INT_EQ(system(cmd), 0);
}

/* Regexes are scanned without start of match first and with it only in the group of the
 * ones that hit (match_internal.h, MATCH_SOM_GROUP): with regexes in three groups, hits in
 * each give the spans a single SOM database gave, compiled and from the cache alike. */
TW_TEST(test_som_groups_give_every_span)
{
    char dir[] = "/tmp/tw-test-som-XXXXXX";
    TW_ASSERT(mkdtemp(dir) != NULL);
    char yaml[8192] = "rules:\n";
    for (int i = 0; i < 70; i++)
        snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml),
                 "  - {id: r%02d, category: c, regex: ['z%02dq+z']}\n", i, i);
    const char *text = "aa z05qqqz bb z40qz cc z69qqqqz z69qz dd z41z";
    const char *want[] = {"z05qqqz", "z40qz", "z69qqqqz", "z69qz"};
    size_t want_at[4];
    for (int k = 0; k < 4; k++)
        want_at[k] = (size_t)(strstr(text, want[k]) - text);
    for (int pass = 0; pass < 2; pass++) {
        fx_t fx;
        char out[256];
        TW_ASSERT_INT_EQ(fx_load(&fx, yaml, dir), 0);
        TW_ASSERT(match_db_from_cache(fx.db) == (pass == 1));
        TW_ASSERT_STR_EQ(fx_hits(&fx, text, NULL, out), "r05,r40,r69");
        TW_ASSERT_INT_EQ(fx.set.hits[0].nspans, 1);
        TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].start, want_at[0]);
        TW_ASSERT_INT_EQ(fx.set.hits[0].spans[0].end, want_at[0] + strlen(want[0]));
        TW_ASSERT_INT_EQ(fx.set.hits[1].spans[0].start, want_at[1]);
        TW_ASSERT_INT_EQ(fx.set.hits[1].spans[0].end, want_at[1] + strlen(want[1]));
        TW_ASSERT_INT_EQ(fx.set.hits[2].nspans, 2);
        TW_ASSERT_INT_EQ(fx.set.hits[2].spans[0].start, want_at[2]);
        TW_ASSERT_INT_EQ(fx.set.hits[2].spans[0].end, want_at[2] + strlen(want[2]));
        TW_ASSERT_INT_EQ(fx.set.hits[2].spans[1].start, want_at[3]);
        TW_ASSERT_INT_EQ(fx.set.hits[2].spans[1].end, want_at[3] + strlen(want[3]));
        /* a group whose regexes did not hit adds nothing on a later post */
        TW_ASSERT_STR_EQ(fx_hits(&fx, "z12qz", NULL, out), "r12");
        TW_ASSERT_STR_EQ(fx_hits(&fx, "nothing", NULL, out), "");
        fx_fini(&fx);
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    TW_ASSERT_INT_EQ(system(cmd), 0);
}

/* Bopomofo and Tai Tham are written without spaces like Han and Thai: a keyword inside a run
 * of them needs no word boundary. (match used to miss Bopomofo, fingerprint Tai Tham.) */
TW_TEST(test_unspaced_scripts_need_no_word_boundary)
{
    fx_t fx;
    char out[256];
    TW_ASSERT_INT_EQ(fx_load(&fx,
                             "rules:\n"
                             "  - {id: bpmf, category: c, keywords: [\"\u3106\u3107\"]}\n"
                             "  - {id: lana, category: c, keywords: [\"\u1A20\u1A21\"]}\n"
                             "  - {id: latin, category: c, keywords: [ab]}\n",
                             NULL),
                     0);
    TW_ASSERT_STR_EQ(fx_hits(&fx, "\u3105\u3106\u3107\u3108", NULL, out), "bpmf");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "\u1A22\u1A20\u1A21\u1A23", NULL, out), "lana");
    TW_ASSERT_STR_EQ(fx_hits(&fx, "xaby", NULL, out), ""); /* Latin still needs boundaries */
    fx_fini(&fx);
}

/* Counts the cache files in dir (-1 if it cannot be read). */
static int cache_files(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c hsdb", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

/* The cache directory may default to /tmp: databases in it are deserialized, so one that
 * others can write to (or that is a symlink someone else planted) must not be used. */
TW_TEST(test_cache_refuses_a_shared_dir)
{
    char base[] = "/tmp/tw-test-cache-XXXXXX";
    TW_ASSERT(mkdtemp(base) != NULL);
    const char *yaml = "rules:\n  - {id: k, category: c, keywords: [paypal]}\n";
    char dir[600], cmd[1300];
    fx_t a;

    /* A missing directory is created for the owner alone. */
    snprintf(dir, sizeof(dir), "%s/new", base);
    TW_ASSERT_INT_EQ(fx_load(&a, yaml, dir), 0);
    fx_fini(&a);
    struct stat st;
    TW_ASSERT(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    TW_ASSERT_INT_EQ(st.st_mode & 0777, 0700);
    TW_ASSERT_INT_EQ(cache_files(dir), 1);

    /* World-writable (then group-readable): neither read nor written. */
    const mode_t shared[] = {0777, 0750, 0703};
    for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
        TW_ASSERT_INT_EQ(chmod(dir, shared[i]), 0);
        TW_ASSERT_INT_EQ(fx_load(&a, yaml, dir), 0);
        TW_ASSERT(!match_db_from_cache(a.db));
        fx_fini(&a);
    }
    snprintf(cmd, sizeof(cmd), "rm -f %s/*.hsdb", dir);
    TW_ASSERT_INT_EQ(system(cmd), 0);
    TW_ASSERT_INT_EQ(fx_load(&a, yaml, dir), 0);
    fx_fini(&a);
    TW_ASSERT_INT_EQ(cache_files(dir), 0);

    /* A symlink to a good directory is refused too: the link's target is not ours to trust. */
    TW_ASSERT_INT_EQ(chmod(dir, 0700), 0);
    TW_ASSERT_INT_EQ(fx_load(&a, yaml, dir), 0); /* fills dir again */
    fx_fini(&a);
    char link[700];
    snprintf(link, sizeof(link), "%s/link", base);
    TW_ASSERT_INT_EQ(symlink(dir, link), 0);
    TW_ASSERT_INT_EQ(fx_load(&a, yaml, link), 0);
    TW_ASSERT(!match_db_from_cache(a.db));
    fx_fini(&a);
    /* and the good directory itself still serves. */
    TW_ASSERT_INT_EQ(fx_load(&a, yaml, dir), 0);
    TW_ASSERT(match_db_from_cache(a.db));
    fx_fini(&a);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
    TW_ASSERT_INT_EQ(system(cmd), 0);
}

int main(void)
{
    TW_RUN(TW_CASE(test_default_keyword_sees_through_obfuscation),
           TW_CASE(test_skeleton_guard_spares_cyrillic_text),
           TW_CASE(test_cyrillic_greek_keywords_see_latin_lookalikes),
           TW_CASE(test_skeleton_skip_filter), TW_CASE(test_views_key), TW_CASE(test_modes),
           TW_CASE(test_all_except_min_langs_allow), TW_CASE(test_within), TW_CASE(test_fields),
           TW_CASE(test_parse_errors), TW_CASE(test_examples), TW_CASE(test_cache),
           TW_CASE(test_som_groups_give_every_span), TW_CASE(test_cache_refuses_a_shared_dir),
           TW_CASE(test_unspaced_scripts_need_no_word_boundary),
           TW_CASE(test_shadow_and_flood_keys));
}
