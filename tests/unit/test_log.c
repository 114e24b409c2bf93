/* Log line formats: JSON (the default off a terminal) and text (log.format text, or auto on a
 * terminal). */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tw_test.h"
#include "util/log.h"

/* 2023-11-14 22:13:20.123 UTC */
static const struct timespec when = {1700000000, 123456789};

static char *format(log_format_t format, bool colour, log_level_t level, const char *msg,
                    const char *fields)
{
    static char text[1024];
    buf_t b;
    buf_init(&b);
    log_format_line(&b, format, colour, when, level, msg, fields);
    snprintf(text, sizeof(text), "%.*s", (int)b.len, b.data ? b.data : "");
    buf_fini(&b);
    return text;
}

TW_TEST(json_line)
{
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_JSON, false, LOG_LEVEL_WARN, "say \"hi\"", "\"n\":1"),
                     "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"warn\",\"msg\":\"say "
                     "\\\"hi\\\"\",\"n\":1}\n");
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_JSON, true, LOG_LEVEL_INFO, "m", NULL),
                     "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"info\",\"msg\":\"m\"}\n");
}

TW_TEST(text_line_time_level_message)
{
    TW_ASSERT_STR_EQ(
        format(LOG_FORMAT_TEXT, false, LOG_LEVEL_WARN, "flood guard: rule spam.free muted", NULL),
        "22:13:20 WARN  flood guard: rule spam.free muted\n");
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_TEXT, false, LOG_LEVEL_ERROR, "x", ""),
                     "22:13:20 ERROR x\n");
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_TEXT, false, LOG_LEVEL_DEBUG, "x", ""),
                     "22:13:20 DEBUG x\n");
}

TW_TEST(text_fields_as_key_value)
{
    TW_ASSERT_STR_EQ(
        format(LOG_FORMAT_TEXT, false, LOG_LEVEL_INFO, "m",
               "\"rule\":\"spam.free\",\"share\":0.2,\"why\":\"over 2% share\",\"ok\":true,"
               "\"o\":{\"a\":1,\"b\":[2,3]},\"q\":\"a\\\"b\",\"n\":null"),
        "22:13:20 INFO  m rule=spam.free share=0.2 why=\"over 2% share\" ok=true "
        "o={\"a\":1,\"b\":[2,3]} q=\"a\\\"b\" n=null\n");
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_TEXT, false, LOG_LEVEL_WARN, "again", "\"suppressed\":3"),
                     "22:13:20 WARN  again suppressed=3\n");
}

TW_TEST(text_escapes_control_characters)
{
    /* a post quoted in a message must not drive the terminal */
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_TEXT, false, LOG_LEVEL_INFO, "a\033[2Jb\nc\td", NULL),
                     "22:13:20 INFO  a\\x1b[2Jb\\nc\\td\n");
}

TW_TEST(text_colours_only_the_level)
{
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_TEXT, true, LOG_LEVEL_WARN, "m", NULL),
                     "22:13:20 \033[33mWARN \033[0m m\n");
    TW_ASSERT_STR_EQ(format(LOG_FORMAT_TEXT, true, LOG_LEVEL_ERROR, "m", NULL),
                     "22:13:20 \033[1;31mERROR\033[0m m\n");
}

TW_TEST(auto_follows_stderr)
{
    log_set_format(LOG_FORMAT_TEXT);
    TW_ASSERT_INT_EQ(log_format(), LOG_FORMAT_TEXT);
    log_set_format(LOG_FORMAT_AUTO);
    TW_ASSERT_INT_EQ(log_format(), isatty(2) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON);
    log_set_format(LOG_FORMAT_JSON);
    TW_ASSERT_INT_EQ(log_format(), LOG_FORMAT_JSON);
}

int main(void)
{
    setenv("TZ", "UTC", 1); /* text lines show local time */
    tzset();
    TW_RUN(TW_CASE(json_line), TW_CASE(text_line_time_level_message),
           TW_CASE(text_fields_as_key_value), TW_CASE(text_escapes_control_characters),
           TW_CASE(text_colours_only_the_level), TW_CASE(auto_follows_stderr));
}
