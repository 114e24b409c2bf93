/* Unit tests for common/fingerprint.c: the hash, the canonical text, MinHash band behaviour
 * on near-duplicates and unrelated posts, and known answers that pin the fleet-wide keys. */
#include "fingerprint/fingerprint.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tw_test.h"

#define ASSERT_U64_EQ(a, b)                                                                        \
    do {                                                                                           \
        uint64_t tw_a_ = (a), tw_b_ = (b);                                                         \
        if (tw_a_ != tw_b_)                                                                        \
            TW_FAIL("%s == %s: 0x%016" PRIX64 " != 0x%016" PRIX64, #a, #b, tw_a_, tw_b_);          \
    } while (0)

static fingerprint_t fp_of(const char *text)
{
    fingerprint_t fp;
    fingerprint_compute(text, strlen(text), &fp);
    return fp;
}

static bool share_band(const fingerprint_t *a, const fingerprint_t *b)
{
    if (a->nbands == 0 || b->nbands == 0)
        return false;
    for (uint32_t i = 0; i < FINGERPRINT_BANDS; i++)
        if (a->bands[i] == b->bands[i])
            return true;
    return false;
}

static uint32_t shared_bands(const fingerprint_t *a, const fingerprint_t *b)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < FINGERPRINT_BANDS && a->nbands && b->nbands; i++)
        n += a->bands[i] == b->bands[i];
    return n;
}

#define ASSERT_CANONICAL(text, want)                                                               \
    do {                                                                                           \
        char got_[512];                                                                            \
        size_t n_ = fingerprint_canonical((text), strlen(text), got_, sizeof(got_));               \
        TW_ASSERT_STR_EQ(got_, (want));                                                            \
        TW_ASSERT_INT_EQ(n_, strlen(want));                                                        \
    } while (0)

TW_TEST(test_hash64_published_vectors)
{
    /* XXH64 reference values: an implementation change shows up here first. */
    ASSERT_U64_EQ(fingerprint_hash64(NULL, 0, 0), UINT64_C(0xEF46DB3751D8E999));
    ASSERT_U64_EQ(fingerprint_hash64("", 0, 1), UINT64_C(0xD5AFBA1336A3BE4B));
    ASSERT_U64_EQ(fingerprint_hash64("a", 1, 0), UINT64_C(0xD24EC4F1A98C6E5B));
    ASSERT_U64_EQ(fingerprint_hash64("abc", 3, 0), UINT64_C(0x44BC2CF5AD770999));
    ASSERT_U64_EQ(fingerprint_hash64("Call me Ishmael.", 16, 0), UINT64_C(0x6D04390FC9D61A90));
    const char *nobody = "Nobody inspects the spammish repetition"; /* 39 bytes: one stripe */
    ASSERT_U64_EQ(fingerprint_hash64(nobody, strlen(nobody), 0), UINT64_C(0xFBCEA83C8A378BF1));
}

TW_TEST(test_hash64_known_answers)
{
    /* Every length from 0 to 200 (all tail and stripe combinations) with a non-zero seed,
     * folded into one value. Computed once; a change here changes keys shared by the fleet. */
    unsigned char buf[200];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    uint64_t acc = 0;
    for (size_t len = 0; len <= sizeof(buf); len++)
        acc = acc * 31 + fingerprint_hash64(buf, len, UINT64_C(0x0123456789ABCDEF));
    ASSERT_U64_EQ(acc, UINT64_C(0xA22F05C0ECDEE46F));
    /* The seed changes the value, and the input is read byte-wise little-endian (an
     * unaligned start gives the same value). */
    TW_ASSERT(fingerprint_hash64("abc", 3, 1) != fingerprint_hash64("abc", 3, 0));
    unsigned char shifted[201];
    memcpy(shifted + 1, buf, sizeof(buf));
    ASSERT_U64_EQ(fingerprint_hash64(shifted + 1, 77, 5), fingerprint_hash64(buf, 77, 5));
}

TW_TEST(test_fingerprint_known_answers)
{
    /* Fleet-wide keys: exact and band keys of a fixed post must never change by accident. */
    fingerprint_t fp = fp_of("free bitcoin giveaway send 0.1 btc to the address below and "
                             "receive double back within one hour");
    ASSERT_U64_EQ(fp.exact, UINT64_C(0x01672A5438C415A6));
    TW_ASSERT_INT_EQ(fp.nbands, FINGERPRINT_BANDS);
    ASSERT_U64_EQ(fp.bands[0], UINT64_C(0x65AB868B897C76AB));
    ASSERT_U64_EQ(fp.bands[FINGERPRINT_BANDS - 1], UINT64_C(0xAD519FE8ADD0395B));
    fingerprint_t cjk = fp_of("今天天气很好我们去公园散步吧");
    ASSERT_U64_EQ(cjk.exact, UINT64_C(0x3A40C123E27B395E));
    ASSERT_U64_EQ(cjk.bands[0], UINT64_C(0x5D5945197B3CEF9F));
}

TW_TEST(test_identical_texts)
{
    const char *text = "limited offer: claim your free prize now at the link below";
    fingerprint_t a = fp_of(text), b = fp_of(text);
    /* fingerprint_compute clears the whole struct, so even padding compares equal. */
    TW_ASSERT(memcmp(&a, &b, sizeof(a)) == 0);
    TW_ASSERT_INT_EQ(a.nbands, FINGERPRINT_BANDS);
    TW_ASSERT_INT_EQ(shared_bands(&a, &b), FINGERPRINT_BANDS);
}

TW_TEST(test_canonical_text)
{
    ASSERT_CANONICAL("check this out!!! http://bit.ly/abc @bob #freemoney $1,000.00 call "
                     "555-123-4567 now \xF0\x9F\x94\xA5\xF0\x9F\x94\xA5\xF0\x9F\x94\xA5",
                     "check this out freemoney 0 call 0 now \xF0\x9F\x94\xA5");
    ASSERT_CANONICAL("RT @user: Esiste un sito https://t.co/xyz...", "rt esiste un sito");
    ASSERT_CANONICAL("Sakurako http://t.co/36CVHP6C70", "sakurako");
    ASSERT_CANONICAL("see t.co/36CVHP6C70 and www.example.com now", "see and now");
    ASSERT_CANONICAL("(https://example.com/a?b=1) ok", "ok");
    ASSERT_CANONICAL("mail me@example.com", "mail me example com"); /* not a mention */
    ASSERT_CANONICAL("@alice.b @carol@mastodon.social hi @", "hi");
    ASSERT_CANONICAL("covid19 b4 5pm 2 for 1", "covid0 b0 0pm 0 for 0");
    ASSERT_CANONICAL("e.g. u.s.a. 1.5/10", "e g u s a 0");
    ASSERT_CANONICAL("  ...  ", "");
    ASSERT_CANONICAL("", "");
    /* Arabic-Indic digits fold too; Arabic words stay. */
    ASSERT_CANONICAL("\xD8\xA7\xD8\xB1\xD8\xA8\xD8\xAD \xD9\xA5\xD9\xA0\xD9\xA0",
                     "\xD8\xA7\xD8\xB1\xD8\xA8\xD8\xAD 0");
    /* Skin tones go, distinct emoji stay, repeats collapse. */
    ASSERT_CANONICAL("ok \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\x8D \xF0\x9F\x92\xAF",
                     "ok \xF0\x9F\x91\x8D \xF0\x9F\x92\xAF");
    /* Truncation: the full length is returned, the copy is NUL-terminated. */
    char small[6];
    size_t n = fingerprint_canonical("hello wonderful world", 21, small, sizeof(small));
    TW_ASSERT_INT_EQ(n, 21);
    TW_ASSERT_STR_EQ(small, "hello");
    TW_ASSERT_INT_EQ(fingerprint_canonical("a b", 3, NULL, 0), 3);
}

TW_TEST(test_variants_share_exact)
{
    const char *base = "win a free iphone today claim at the link";
    fingerprint_t want = fp_of(base);
    static const char *variants[] = {
        "win a free iphone today claim at the link https://bit.ly/3xYz",
        "@bob @carol win a free iphone today claim at the link",
        "Win a FREE iPhone today!!! Claim at the link: www.prize.example/claim?id=77",
        "#win a free #iphone today - claim at the link...",
        "win a free iphone today, claim at the link t.co/AbCd12",
        "win   a free iphone today ... claim at the link !!!",
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        fingerprint_t got = fp_of(variants[i]);
        if (got.exact != want.exact)
            TW_FAIL("variant %zu \"%s\": exact 0x%016" PRIX64 " != 0x%016" PRIX64, i, variants[i],
                    got.exact, want.exact);
        TW_ASSERT_INT_EQ(shared_bands(&got, &want), FINGERPRINT_BANDS);
    }
    /* Amounts and phone numbers vary between campaign copies. */
    fingerprint_t a = fp_of("send 500 usd to +1 555 123 4567 to unlock 2000 usd");
    fingerprint_t b = fp_of("send 1,250 usd to 555-987-6543 to unlock 10000.00 usd");
    ASSERT_U64_EQ(a.exact, b.exact);
    /* But words matter. */
    fingerprint_t c = fp_of("win a free ipad today claim at the link");
    TW_ASSERT(c.exact != want.exact);
}

TW_TEST(test_one_word_change_shares_band)
{
    const char *a = "hello friends i just made five thousand dollars this week working from "
                    "home with this simple trick you can too";
    const char *b = "hello friends i just made five thousand dollars this month working from "
                    "home with this simple trick you can too";
    fingerprint_t fa = fp_of(a), fb = fp_of(b);
    TW_ASSERT(fa.exact != fb.exact);
    TW_ASSERT_INT_EQ(fa.nbands, FINGERPRINT_BANDS);
    uint32_t shared = shared_bands(&fa, &fb);
    if (shared == 0)
        TW_FAIL("a one-word change shares no band");
}

TW_TEST(test_unrelated_share_no_band)
{
    static const char *posts[] = {
        "hello friends i just made five thousand dollars this week working from home with "
        "this simple trick you can too",
        "the city council meets on tuesday to vote on the new bike lanes along the river road",
        "cannot believe how good the new album is, every track is a banger, on repeat all day",
        "our flight got delayed three hours and the airline gave us a voucher for a sandwich",
        "rain again this weekend so the football match is moved to the indoor hall at noon",
    };
    size_t n = sizeof(posts) / sizeof(posts[0]);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            fingerprint_t a = fp_of(posts[i]), b = fp_of(posts[j]);
            TW_ASSERT(a.exact != b.exact);
            if (share_band(&a, &b))
                TW_FAIL("posts %zu and %zu share %u bands", i, j, shared_bands(&a, &b));
        }
    }
}

static const char *const words[] = {
    "account",  "after",    "again",    "airport", "always",   "amazing",   "answer",  "apple",
    "around",   "bank",     "beach",    "before",  "believe",  "better",    "bitcoin", "black",
    "bonus",    "bottle",   "bridge",   "brother", "camera",   "cash",      "center",  "chance",
    "change",   "cheap",    "children", "city",    "claim",    "click",     "coffee",  "color",
    "company",  "country",  "credit",   "dance",   "daughter", "deal",      "dinner",  "doctor",
    "dollar",   "double",   "dream",    "easy",    "energy",   "evening",   "family",  "father",
    "festival", "flower",   "follow",   "forest",  "free",     "friday",    "friend",  "garden",
    "gift",     "girl",     "golden",   "green",   "happy",    "health",    "holiday", "home",
    "hotel",    "hour",     "island",   "jacket",  "kitchen",  "ladder",    "letter",  "light",
    "limited",  "listen",   "lucky",    "market",  "million",  "minute",    "money",   "morning",
    "mother",   "mountain", "music",    "number",  "offer",    "office",    "orange",  "paper",
    "party",    "people",   "phone",    "picture", "pocket",   "prize",     "profit",  "promise",
    "purple",   "question", "quick",    "rabbit",  "reward",   "river",     "secret",  "silver",
    "simple",   "sister",   "smile",    "soccer",  "spring",   "station",   "summer",  "sunday",
    "ticket",   "today",    "tomorrow", "travel",  "trick",    "village",   "wallet",  "water",
    "weekend",  "window",   "winner",   "winter",  "yellow",   "yesterday",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static uint64_t prng_next(uint64_t *state)
{
    /* splitmix64: fixed sequence, so the rates below are reproducible. */
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void make_sentence(uint64_t *state, size_t idx[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = prng_next(state) % NWORDS;
}

static void render(const size_t idx[], size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? " " : "", words[idx[i]]);
}

TW_TEST(test_band_rates_near_duplicates_and_unrelated)
{
    enum { PAIRS = 200, LEN = 25 };
    uint64_t state = 2024;
    size_t a[LEN], b[LEN];
    char ta[LEN * 12], tb[LEN * 12];
    int near_shared = 0, unrelated_shared = 0, exact_equal = 0;
    for (int p = 0; p < PAIRS; p++) {
        make_sentence(&state, a, LEN);
        memcpy(b, a, sizeof(a));
        size_t pos = prng_next(&state) % LEN;
        size_t repl;
        do
            repl = prng_next(&state) % NWORDS;
        while (repl == a[pos]);
        b[pos] = repl;
        render(a, LEN, ta, sizeof(ta));
        render(b, LEN, tb, sizeof(tb));
        fingerprint_t fa = fp_of(ta), fb = fp_of(tb);
        near_shared += share_band(&fa, &fb);
        exact_equal += fa.exact == fb.exact;
    }
    for (int p = 0; p < PAIRS; p++) {
        make_sentence(&state, a, LEN);
        make_sentence(&state, b, LEN);
        render(a, LEN, ta, sizeof(ta));
        render(b, LEN, tb, sizeof(tb));
        fingerprint_t fa = fp_of(ta), fb = fp_of(tb);
        unrelated_shared += share_band(&fa, &fb);
    }
    double near_rate = (double)near_shared / PAIRS;
    double unrelated_rate = (double)unrelated_shared / PAIRS;
    fprintf(stderr, "  near-duplicate band sharing %.3f, unrelated %.3f\n", near_rate,
            unrelated_rate);
    TW_ASSERT_INT_EQ(exact_equal, 0);
    if (near_rate < 0.95)
        TW_FAIL("near-duplicate band-sharing rate %.3f < 0.95", near_rate);
    if (unrelated_rate > 0.02)
        TW_FAIL("unrelated band-sharing rate %.3f > 0.02", unrelated_rate);
}

TW_TEST(test_cjk_without_spaces)
{
    /* Character 3-grams sign text with no spaces; one changed character keeps a band. */
    const char *a = "今天天气很好我们一起去公园散步然后去吃晚饭吧";
    const char *b = "今天天气很好我们一起去公园跑步然后去吃晚饭吧";
    const char *c = "这家餐厅的服务太差了我再也不会来这里吃饭了";
    fingerprint_t fa = fp_of(a), fb = fp_of(b), fc = fp_of(c);
    TW_ASSERT_INT_EQ(fa.nbands, FINGERPRINT_BANDS);
    TW_ASSERT(fa.exact != fb.exact);
    TW_ASSERT(share_band(&fa, &fb));
    TW_ASSERT(!share_band(&fa, &fc));
    /* Japanese mixing kana and kanji, Thai: also signed. */
    TW_ASSERT_INT_EQ(fp_of("今日はとても良い天気ですね").nbands, FINGERPRINT_BANDS);
    TW_ASSERT_INT_EQ(fp_of("วันนี้อากาศดีมาก").nbands, FINGERPRINT_BANDS);
    /* Three ideographs are one 3-gram: too short to sign, the exact hash still works. */
    fingerprint_t tiny = fp_of("东京都");
    TW_ASSERT_INT_EQ(tiny.nbands, 0);
    TW_ASSERT(!fingerprint_is_empty(&tiny));
}

TW_TEST(test_short_and_empty)
{
    fingerprint_t e = fp_of("");
    ASSERT_U64_EQ(e.exact, fingerprint_hash64("", 0, FINGERPRINT_SEED_EXACT));
    TW_ASSERT_INT_EQ(e.nbands, 0);
    for (int i = 0; i < FINGERPRINT_BANDS; i++)
        ASSERT_U64_EQ(e.bands[i], 0);
    TW_ASSERT(fingerprint_is_empty(&e));
    fingerprint_t e2;
    fingerprint_compute(NULL, 0, &e2);
    ASSERT_U64_EQ(e2.exact, e.exact);

    /* Only links, mentions and punctuation: empty canonical text. */
    fingerprint_t links = fp_of("@user @user http://t.co/abc !!! #");
    TW_ASSERT(fingerprint_is_empty(&links));
    TW_ASSERT_INT_EQ(links.nbands, 0);

    fingerprint_t one = fp_of("hello");
    TW_ASSERT(!fingerprint_is_empty(&one));
    TW_ASSERT_INT_EQ(one.nbands, 0);                                  /* one shingle */
    TW_ASSERT_INT_EQ(fp_of("hello world").nbands, FINGERPRINT_BANDS); /* 2 words + 1 pair */
}

TW_TEST(test_exact_is_hash_of_canonical)
{
    /* The streamed exact hash equals the one-shot hash of the canonical text for every
     * length, across the 32-byte stripes and the 256-byte chunking. */
    char text[2400], canon[2400];
    size_t len = 0;
    uint64_t state = 99;
    for (int w = 0; w < 300 && len + 12 < sizeof(text); w++) {
        fingerprint_t fp;
        fingerprint_compute(text, len, &fp);
        size_t clen = fingerprint_canonical(text, len, canon, sizeof(canon));
        TW_ASSERT(clen < sizeof(canon));
        ASSERT_U64_EQ(fp.exact, fingerprint_hash64(canon, clen, FINGERPRINT_SEED_EXACT));
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s%s", len ? " " : "",
                                words[prng_next(&state) % NWORDS], w % 7 == 3 ? "!!" : "");
    }
}

TW_TEST(test_robust_inputs)
{
    /* Invalid UTF-8 and controls must not crash (the contract says normalized input, but
     * fingerprint_compute never fails). */
    const char bad[] = "ab\xFF\xC3 \xE2\x82 \xF0\x9F\x98 \xED\xA0\x80 cd\x00"
                       "ef \xC0\x80";
    fingerprint_t fp;
    fingerprint_compute(bad, sizeof(bad) - 1, &fp);
    TW_ASSERT(!fingerprint_is_empty(&fp));
    /* A long post: shingles are capped, the exact hash covers everything. */
    size_t n = 200000;
    char *big = malloc(n);
    TW_ASSERT(big != NULL);
    uint64_t state = 5;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = prng_next(&state);
        big[i] = (r & 7) == 0 ? ' ' : (char)('a' + r % 26);
    }
    fingerprint_t f1, f2;
    fingerprint_compute(big, n, &f1);
    big[n - 1] = big[n - 1] == 'q' ? 'r' : 'q';
    fingerprint_compute(big, n, &f2);
    free(big);
    TW_ASSERT_INT_EQ(f1.nbands, FINGERPRINT_BANDS);
    TW_ASSERT(f1.exact != f2.exact);
    TW_ASSERT_INT_EQ(shared_bands(&f1, &f2), FINGERPRINT_BANDS); /* past the shingle cap */
}

/* The stores keep a signature as its entries' low bytes; records written before that kept the
 * 16-bit entries little-endian, and must count the same. A post without a signature matches
 * nothing; a stored signature of another length cannot be checked. */
TW_TEST(test_sig_matches_stored_short_and_old_form)
{
    fingerprint_t a = fp_of("free crypto giveaway send one coin get two back today only");
    fingerprint_t b = fp_of("free crypto giveaway send one coin get two back today");
    fingerprint_t none = fp_of("hi");
    TW_ASSERT(a.nbands && b.nbands);
    TW_ASSERT_INT_EQ(none.nbands, 0);
    unsigned char stored[FINGERPRINT_SIG_BYTES];
    fingerprint_sig_store(&b, stored);
    TW_ASSERT_INT_EQ(stored[1], b.sig[1] & 0xFF);
    uint32_t expected = 0; /* low bytes equal, counted independently */
    for (size_t j = 0; j < FINGERPRINT_SIG_LEN; j++)
        expected += (a.sig[j] & 0xFF) == (b.sig[j] & 0xFF);
    TW_ASSERT(expected > 0 && expected < FINGERPRINT_SIG_LEN);
    TW_ASSERT_INT_EQ(fingerprint_sig_matches_stored(&a, stored, sizeof(stored)), expected);
    unsigned char old[2 * FINGERPRINT_SIG_LEN];
    for (size_t j = 0; j < FINGERPRINT_SIG_LEN; j++) {
        old[2 * j] = (unsigned char)(b.sig[j] & 0xFF);
        old[2 * j + 1] = (unsigned char)(b.sig[j] >> 8);
    }
    TW_ASSERT_INT_EQ(fingerprint_sig_matches_stored(&a, old, sizeof(old)), expected);
    fingerprint_sig_store(&a, stored);
    TW_ASSERT_INT_EQ(fingerprint_sig_matches_stored(&a, stored, sizeof(stored)),
                     FINGERPRINT_SIG_LEN);
    TW_ASSERT_INT_EQ(fingerprint_sig_matches_stored(&none, stored, sizeof(stored)), 0);
    TW_ASSERT(fingerprint_sig_matches_stored(&a, stored, 7) == FINGERPRINT_SIG_UNCHECKABLE);
}

int main(void)
{
    TW_RUN(TW_CASE(test_hash64_published_vectors), TW_CASE(test_hash64_known_answers),
           TW_CASE(test_fingerprint_known_answers), TW_CASE(test_identical_texts),
           TW_CASE(test_canonical_text), TW_CASE(test_variants_share_exact),
           TW_CASE(test_one_word_change_shares_band), TW_CASE(test_unrelated_share_no_band),
           TW_CASE(test_band_rates_near_duplicates_and_unrelated), TW_CASE(test_cjk_without_spaces),
           TW_CASE(test_short_and_empty), TW_CASE(test_exact_is_hash_of_canonical),
           TW_CASE(test_robust_inputs), TW_CASE(test_sig_matches_stored_short_and_old_form));
}
