#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "tw_test.h"

static char *write_temp(const char *content)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/tw-config-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    if (write(fd, content, strlen(content)) != (ssize_t)strlen(content)) {
        close(fd);
        return NULL;
    }
    close(fd);
    return path;
}

TW_TEST(defaults_are_filled)
{
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT_STR_EQ(cfg.input_topic, "posts");
    TW_ASSERT_STR_EQ(cfg.field_text, "text");
    TW_ASSERT_STR_EQ(cfg.auto_offset_reset, "earliest");
    TW_ASSERT_INT_EQ(cfg.batch_size, 500);
    TW_ASSERT_INT_EQ(cfg.max_post_bytes, 65536);
    config_fini(&cfg);
}

TW_TEST(file_then_env_then_flags)
{
    char *path = write_temp("group: from-file\n"
                            "batch_size: 64\n"
                            "fields:\n"
                            "  text: body\n"
                            "kafka:\n"
                            "  security.protocol: SASL_SSL\n");
    TW_ASSERT(path != NULL);
    config_t cfg;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT_INT_EQ(config_load_file(&cfg, path, &diag), 0);
    TW_ASSERT_STR_EQ(cfg.group, "from-file");
    TW_ASSERT_STR_EQ(cfg.field_text, "body");
    TW_ASSERT_INT_EQ(cfg.batch_size, 64);
    TW_ASSERT_INT_EQ(cfg.nkafka, 1);
    TW_ASSERT_STR_EQ(cfg.kafka[0].key, "security.protocol");

    char *env[] = {"TIDEWATCH_GROUP=from-env",
                   "TIDEWATCH_FIELDS_AUTHOR=user",
                   "TIDEWATCH_KAFKA__SASL_MECHANISMS=PLAIN",
                   "TIDEWATCH_BIN=/not/a/key",
                   "PATH=/bin",
                   NULL};
    TW_ASSERT_INT_EQ(config_load_env(&cfg, env, &diag), 0);
    TW_ASSERT_STR_EQ(cfg.group, "from-env");
    TW_ASSERT_STR_EQ(cfg.field_author, "user");
    TW_ASSERT_INT_EQ(cfg.nkafka, 2);
    TW_ASSERT_STR_EQ(cfg.kafka[1].key, "sasl.mechanisms");
    TW_ASSERT_STR_EQ(cfg.kafka[1].value, "PLAIN");

    TW_ASSERT_INT_EQ(config_set(&cfg, "group", "from-flag", "flag", &diag), 0);
    TW_ASSERT_STR_EQ(cfg.group, "from-flag");
    TW_ASSERT_INT_EQ(diag.count, 0);
    tw_diag_fini(&diag);
    config_fini(&cfg);
    unlink(path);
}

TW_TEST(unknown_keys_and_bad_values_name_file_and_line)
{
    char *path = write_temp("group: ok\n"
                            "batch_sise: 10\n"
                            "fields:\n"
                            "  txt: body\n"
                            "batch_size: many\n"
                            "max_post_bytes: 1\n");
    TW_ASSERT(path != NULL);
    config_t cfg;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT(config_load_file(&cfg, path, &diag) != 0);
    TW_ASSERT_INT_EQ(diag.count, 4);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: unknown configuration key 'batch_sise'", path);
    TW_ASSERT_STR_EQ(diag.lines[0], want);
    snprintf(want, sizeof(want), "%s:4: unknown configuration key 'fields.txt'", path);
    TW_ASSERT_STR_EQ(diag.lines[1], want);
    TW_ASSERT(strstr(diag.lines[2], ":5: batch_size: 'many' is not an integer") != NULL);
    TW_ASSERT(strstr(diag.lines[3], ":6: max_post_bytes: 1 is outside") != NULL);
    tw_diag_fini(&diag);
    config_fini(&cfg);
    unlink(path);
}

TW_TEST(yaml_syntax_error_is_reported)
{
    char *path = write_temp("group: [unclosed\n");
    config_t cfg;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT(config_load_file(&cfg, path, &diag) != 0);
    TW_ASSERT_INT_EQ(diag.count, 1);
    TW_ASSERT(strncmp(diag.lines[0], path, strlen(path)) == 0);
    tw_diag_fini(&diag);
    config_fini(&cfg);
    unlink(path);
}

TW_TEST(dump_masks_secrets)
{
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "redis", "redis://user:hunter2@r:6379/0", "t", NULL), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "kafka.sasl.password", "hunter2", "t", NULL), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_dump_json(&cfg, f);
    fclose(f);
    TW_ASSERT(strstr(text, "hunter2") == NULL);
    TW_ASSERT(strstr(text, "redis://user:***@r:6379/0") != NULL);
    free(text);
    config_fini(&cfg);
}

int main(void)
{
    TW_RUN(TW_CASE(defaults_are_filled), TW_CASE(file_then_env_then_flags),
           TW_CASE(unknown_keys_and_bad_values_name_file_and_line),
           TW_CASE(yaml_syntax_error_is_reported), TW_CASE(dump_masks_secrets));
}
