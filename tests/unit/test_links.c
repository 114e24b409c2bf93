/* Links as evidence: host canonicalization, the domain set, extraction from post text. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "links/domain_set.h"
#include "links/extract.h"
#include "links/host.h"
#include "tw_test.h"

static const char *idna_key(const char *raw, host_keys_t *keys)
{
    if (host_canonicalize(raw, strlen(raw), keys) != 0)
        return "(invalid)";
    return keys->idna;
}

TW_TEST(canonical_ascii_names)
{
    host_keys_t k;
    TW_ASSERT_STR_EQ(idna_key("PayPal.COM.", &k), "paypal.com");
    TW_ASSERT_STR_EQ(k.skeleton, "");
    TW_ASSERT_STR_EQ(idna_key("paypal\xE3\x80\x82"
                              "com",
                              &k),
                     "paypal.com"); /* U+3002 */
    TW_ASSERT_STR_EQ(idna_key("paypal\xEF\xBC\x8E"
                              "com",
                              &k),
                     "paypal.com"); /* U+FF0E */
    TW_ASSERT_STR_EQ(idna_key("10.0.0.1", &k), "10.0.0.1");
    TW_ASSERT_STR_EQ(idna_key("a..b", &k), "(invalid)");
    TW_ASSERT_STR_EQ(idna_key(".", &k), "(invalid)");
    TW_ASSERT_STR_EQ(idna_key("exa mple.com", &k), "(invalid)");
    TW_ASSERT_STR_EQ(idna_key("example.com/x", &k), "(invalid)");
}

TW_TEST(idna_both_ways)
{
    host_keys_t k;
    /* Unicode to punycode, and a punycode spelling of the same name meets it. */
    TW_ASSERT_STR_EQ(idna_key("b\xC3\xBC"
                              "cher.DE",
                              &k),
                     "xn--bcher-kva.de");
    TW_ASSERT_STR_EQ(idna_key("xn--bcher-kva.de", &k), "xn--bcher-kva.de");
    TW_ASSERT_STR_EQ(
        idna_key("\xD0\xBF\xD1\x80\xD0\xB8\xD0\xBC\xD0\xB5\xD1\x80.\xD1\x80\xD1\x84", &k),
        "xn--e1afmkfd.xn--p1ai");     /* пример.рф */
    TW_ASSERT_STR_EQ(k.skeleton, ""); /* Cyrillic that looks like no ASCII word */
}

TW_TEST(confusable_host_gets_the_ascii_skeleton)
{
    host_keys_t k;
    /* p + Cyrillic а (U+0430) + ypal.com: a registrable name of its own, and a look-alike. */
    TW_ASSERT_INT_EQ(host_canonicalize("p\xD0\xB0ypal.com", strlen("p\xD0\xB0ypal.com"), &k), 0);
    TW_ASSERT(strncmp(k.idna, "xn--", 4) == 0);
    TW_ASSERT_STR_EQ(k.skeleton, "paypal.com");
    /* Its punycode spelling leads to the same skeleton. */
    char ace[HOST_MAX_LEN + 1];
    snprintf(ace, sizeof ace, "%s", k.idna);
    TW_ASSERT_INT_EQ(host_canonicalize(ace, strlen(ace), &k), 0);
    TW_ASSERT_STR_EQ(k.skeleton, "paypal.com");
}

TW_TEST(ipv4_and_parents)
{
    TW_ASSERT(host_is_ipv4("192.168.1.10"));
    TW_ASSERT(!host_is_ipv4("192.168.1"));
    TW_ASSERT(!host_is_ipv4("192.168.1.256"));
    TW_ASSERT(!host_is_ipv4("1.2.3.4.5"));
    TW_ASSERT_STR_EQ(host_parent("a.b.c"), "b.c");
    TW_ASSERT(host_parent("c") == NULL);
}

TW_TEST(domain_set_exact_or_parent_never_substring)
{
    domain_set_t *set = domain_set_new();
    TW_ASSERT(set);
    TW_ASSERT_INT_EQ(domain_set_add(set, "Example.com", 11), 0);
    TW_ASSERT_INT_EQ(domain_set_add(set, "evil.example.org.", 17), 0);
    TW_ASSERT_INT_EQ(domain_set_add(set, "example.com", 11), 0); /* present: no second copy */
    TW_ASSERT_INT_EQ(domain_set_count(set), 2);
    TW_ASSERT_STR_EQ(domain_set_match(set, "example.com"), "example.com");
    TW_ASSERT_STR_EQ(domain_set_match(set, "login.secure.example.com"), "example.com");
    TW_ASSERT(domain_set_match(set, "notexample.com") == NULL);
    TW_ASSERT(domain_set_match(set, "example.com.au") == NULL);
    TW_ASSERT(domain_set_match(set, "example.org") == NULL);
    TW_ASSERT_STR_EQ(domain_set_match(set, "x.evil.example.org"), "evil.example.org");
    TW_ASSERT_INT_EQ(domain_set_add(set, "bad host", 8), TW_ERR_INVALID);
    domain_set_free(set);
}

TW_TEST(domain_set_grows_and_finds_everything)
{
    domain_set_t *set = domain_set_new();
    char name[64];
    for (int i = 0; i < 50000; i++) {
        int n = snprintf(name, sizeof name, "host%d.example%d.net", i, i % 97);
        TW_ASSERT_INT_EQ(domain_set_add(set, name, (size_t)n), 0);
    }
    TW_ASSERT_INT_EQ(domain_set_count(set), 50000);
    for (int i = 0; i < 50000; i++) {
        snprintf(name, sizeof name, "www.host%d.example%d.net", i, i % 97);
        const char *hit = domain_set_match(set, name);
        TW_ASSERT(hit && strcmp(hit, name + 4) == 0);
    }
    TW_ASSERT(domain_set_match(set, "host50000.example0.net") == NULL);
    /* 100 MB for 1,000,000 names is the budget: 100 bytes a name, index included. */
    domain_set_compact(set);
    TW_ASSERT(domain_set_memory_bytes(set) < 50000u * 100u);
    domain_set_free(set);
}

TW_TEST(domain_list_file_formats_and_errors)
{
    char path[] = "/tmp/tw-domains-XXXXXX";
    int fd = mkstemp(path);
    TW_ASSERT(fd >= 0);
    const char *list = "# a comment\n"
                       "plain.example\n"
                       "\n"
                       "0.0.0.0 hosts-file.example\n"
                       "http://user@url.example:8080/path?q=1\n"
                       "||adblock.example^\n"
                       "  spaced.example  # trailing comment\n"
                       "not a host\n"
                       "bad..dots\n";
    TW_ASSERT_INT_EQ(write(fd, list, strlen(list)), (long long)strlen(list));
    close(fd);
    domain_set_t *set = domain_set_new();
    tw_diag_t diag;
    tw_diag_init(&diag);
    int err = domain_set_load_file(set, path, &diag);
    unlink(path);
    TW_ASSERT_INT_EQ(err, TW_ERR_PARSE);
    TW_ASSERT_INT_EQ(diag.count, 2);
    TW_ASSERT(strstr(diag.lines[0], ":8: not a host name: 'not a host'") != NULL);
    TW_ASSERT(strstr(diag.lines[1], ":9:") != NULL);
    TW_ASSERT_INT_EQ(domain_set_count(set), 5);
    TW_ASSERT(domain_set_match(set, "plain.example"));
    TW_ASSERT(domain_set_match(set, "hosts-file.example"));
    TW_ASSERT(domain_set_match(set, "url.example"));
    TW_ASSERT(domain_set_match(set, "adblock.example"));
    TW_ASSERT(domain_set_match(set, "spaced.example"));
    tw_diag_fini(&diag);
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(domain_set_load_file(set, "/nonexistent/list.txt", &diag), TW_ERR_IO);
    TW_ASSERT_INT_EQ(diag.count, 1);
    tw_diag_fini(&diag);
    domain_set_free(set);
}

/* Every host links_next_host finds in text, as "host@start-end" joined by spaces. */
static void hosts_in(const char *text, char *out, size_t cap)
{
    size_t pos = 0, used = 0;
    link_host_t h;
    out[0] = '\0';
    while (links_next_host(text, strlen(text), &pos, &h) && used < cap)
        used += (size_t)snprintf(out + used, cap - used, "%s%s%s@%zu-%zu", used ? " " : "",
                                 h.has_scheme ? "^" : "", h.host, h.start, h.end);
}

TW_TEST(extracts_plain_schemeless_and_defanged_hosts)
{
    char got[512];
    hosts_in("see https://Example.com/login now", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "^Example.com@12-23");
    hosts_in("go to example.com/x or www.test.org.", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "example.com@6-17 www.test.org@23-35");
    hosts_in("hxxp://evil[.]example(.)net/a", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "^evil.example.net@7-27");
    hosts_in("evil [dot] example [.] com", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "evil.example.com@0-26");
    hosts_in("paypal\xE3\x80\x82"
             "com",
             got, sizeof got);
    TW_ASSERT_STR_EQ(got, "paypal.com@0-12");
    hosts_in("mail me: first.last@mail.example.com", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "mail.example.com@20-36");
    hosts_in("http://192.168.0.1:8080/bin.sh", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "^192.168.0.1@7-18");
}

TW_TEST(ignores_what_is_not_a_host)
{
    char got[512];
    hosts_in("e.g. the U.S.A. costs 3.50 in v1.2 ... wait...what", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "");
    hosts_in("a sentence (.) ends", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "");
    hosts_in("1.2.3", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "");
}

TW_TEST(extracts_unicode_hosts)
{
    char got[512];
    hosts_in("\xD0\xBF\xD1\x80\xD0\xB8\xD0\xBC\xD0\xB5\xD1\x80.\xD1\x80\xD1\x84!", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xBC\xD0\xB5\xD1\x80.\xD1\x80\xD1\x84@0-17");
    hosts_in("login at p\xD0\xB0ypal.com today", got, sizeof got);
    TW_ASSERT_STR_EQ(got, "p\xD0\xB0ypal.com@9-20");
}

int main(void)
{
    TW_RUN(TW_CASE(canonical_ascii_names), TW_CASE(idna_both_ways),
           TW_CASE(confusable_host_gets_the_ascii_skeleton), TW_CASE(ipv4_and_parents),
           TW_CASE(domain_set_exact_or_parent_never_substring),
           TW_CASE(domain_set_grows_and_finds_everything),
           TW_CASE(domain_list_file_formats_and_errors),
           TW_CASE(extracts_plain_schemeless_and_defanged_hosts),
           TW_CASE(ignores_what_is_not_a_host), TW_CASE(extracts_unicode_hosts));
}
