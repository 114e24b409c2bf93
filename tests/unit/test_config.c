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
    TW_ASSERT_INT_EQ(cfg.auto_offset_reset, CONFIG_OFFSET_RESET_EARLIEST);
    TW_ASSERT_INT_EQ(cfg.log_level, LOG_LEVEL_INFO);
    TW_ASSERT_INT_EQ(cfg.dedup_on_unavailable, CONFIG_UNAVAILABLE_FAIL_OPEN);
    TW_ASSERT_INT_EQ(cfg.scan_emit, CONFIG_SCAN_EMIT_ALERTS);
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

TW_TEST(enum_values_are_parsed_at_load)
{
    char *path = write_temp("log_level: warning\n"
                            "auto_offset_reset: latest\n"
                            "dedup:\n"
                            "  on_unavailable: pause\n");
    TW_ASSERT(path != NULL);
    config_t cfg;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT_INT_EQ(config_load_file(&cfg, path, &diag), 0);
    TW_ASSERT_INT_EQ(cfg.log_level, LOG_LEVEL_WARN);
    TW_ASSERT_INT_EQ(cfg.auto_offset_reset, CONFIG_OFFSET_RESET_LATEST);
    TW_ASSERT_INT_EQ(cfg.dedup_on_unavailable, CONFIG_UNAVAILABLE_PAUSE);
    char *env[] = {"TIDEWATCH_SCAN_EMIT=all", NULL};
    TW_ASSERT_INT_EQ(config_load_env(&cfg, env, &diag), 0);
    TW_ASSERT_INT_EQ(cfg.scan_emit, CONFIG_SCAN_EMIT_ALL);
    TW_ASSERT_INT_EQ(diag.count, 0);
    /* The canonical name comes back, not the alias. */
    TW_ASSERT_STR_EQ(config_enum_name("log_level", (int)cfg.log_level), "warn");
    TW_ASSERT_STR_EQ(config_enum_name("auto_offset_reset", (int)cfg.auto_offset_reset), "latest");
    TW_ASSERT(config_enum_name("group", 0) == NULL);
    TW_ASSERT(config_enum_name("scan.emit", 42) == NULL);
    tw_diag_fini(&diag);
    config_fini(&cfg);
    unlink(path);
}

TW_TEST(bad_enum_value_is_refused_with_the_allowed_list)
{
    char *path = write_temp("group: ok\n"
                            "dedup:\n"
                            "  on_unavailable: Pause\n"
                            "log_level: verbose\n");
    TW_ASSERT(path != NULL);
    config_t cfg;
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT_INT_EQ(config_load_file(&cfg, path, &diag), TW_ERR_CONFIG);
    TW_ASSERT_INT_EQ(diag.count, 2);
    char want[256];
    snprintf(want, sizeof(want),
             "%s:3: dedup.on_unavailable: 'Pause' is not one of: fail-open, pause", path);
    TW_ASSERT_STR_EQ(diag.lines[0], want);
    snprintf(want, sizeof(want),
             "%s:4: log_level: 'verbose' is not one of: debug, info, warn, warning, error, off",
             path);
    TW_ASSERT_STR_EQ(diag.lines[1], want);
    /* A refused value leaves the key as it was. */
    TW_ASSERT_INT_EQ(cfg.dedup_on_unavailable, CONFIG_UNAVAILABLE_FAIL_OPEN);
    TW_ASSERT_INT_EQ(cfg.log_level, LOG_LEVEL_INFO);

    TW_ASSERT_INT_EQ(config_set(&cfg, "scan.emit", "some", "flag --emit", &diag), TW_ERR_CONFIG);
    TW_ASSERT_STR_EQ(diag.lines[2], "flag --emit: scan.emit: 'some' is not one of: alerts, all");
    tw_diag_fini(&diag);
    config_fini(&cfg);
    unlink(path);
}

static char *dump(const config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    config_dump_json(cfg, f);
    fclose(f);
    return text;
}

TW_TEST(secrets_are_masked_by_the_table_flag)
{
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "kafka.sasl.username", "svc-user", "t", NULL), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "kafka.ssl.key.pem", "-----BEGIN KEY-----", "t", NULL), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "kafka.sasl.oauthbearer.client.secret", "s3", "t", NULL), 0);
    /* Named like a secret but not one: shown (the old name guess hid it). */
    TW_ASSERT_INT_EQ(config_set(&cfg, "kafka.sasl.oauthbearer.token.endpoint.url",
                                "https://idp.example/token", "t", NULL),
                     0);
    /* No password in the URL: nothing to mask. */
    TW_ASSERT_INT_EQ(config_set(&cfg, "redis", "redis://r:6379/0", "t", NULL), 0);
    TW_ASSERT_INT_EQ(config_set(&cfg, "log_level", "error", "t", NULL), 0);
    char *text = dump(&cfg);
    TW_ASSERT(text != NULL);
    TW_ASSERT(strstr(text, "svc-user") == NULL);
    TW_ASSERT(strstr(text, "BEGIN KEY") == NULL);
    TW_ASSERT(strstr(text, "\"kafka.sasl.username\":\"***\"") != NULL);
    TW_ASSERT(strstr(text, "\"kafka.ssl.key.pem\":\"***\"") != NULL);
    TW_ASSERT(strstr(text, "\"kafka.sasl.oauthbearer.client.secret\":\"***\"") != NULL);
    TW_ASSERT(strstr(text, "\"kafka.sasl.oauthbearer.token.endpoint.url\":"
                           "\"https://idp.example/token\"") != NULL);
    TW_ASSERT(strstr(text, "\"redis\":\"redis://r:6379/0\"") != NULL);
    TW_ASSERT(strstr(text, "\"log_level\":\"error\"") != NULL);
    TW_ASSERT(strstr(text, "\"scan.emit\":\"alerts\"") != NULL);
    free(text);

    /* A password without a user, and a cluster URL: the password still never shows. */
    TW_ASSERT_INT_EQ(config_set(&cfg, "redis", "redis://:hunter2@r:6379/0", "t", NULL), 0);
    text = dump(&cfg);
    TW_ASSERT(text != NULL);
    TW_ASSERT(strstr(text, "hunter2") == NULL);
    TW_ASSERT(strstr(text, "\"redis\":\"redis://:***@r:6379/0\"") != NULL);
    free(text);
    TW_ASSERT_INT_EQ(
        config_set(&cfg, "redis", "redis+cluster://u:hunter2@a:7000,b:7001", "t", NULL), 0);
    text = dump(&cfg);
    TW_ASSERT(text != NULL);
    TW_ASSERT(strstr(text, "hunter2") == NULL);
    TW_ASSERT(strstr(text, "redis+cluster://u:***@a:7000,b:7001") != NULL);
    free(text);
    config_fini(&cfg);
}

TW_TEST(docs_list_enum_values_and_secrets)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    TW_ASSERT(f != NULL);
    config_write_docs(f);
    fclose(f);
    TW_ASSERT(strstr(text, "| `scan.emit` | one of: alerts, all | `alerts` |") != NULL);
    TW_ASSERT(strstr(text, "| `kafka.sasl.password` | librdkafka, secret | `` | "
                           "`TIDEWATCH_KAFKA__SASL_PASSWORD` |") != NULL);
    free(text);
}

TW_TEST(shares_are_fractions_from_0_to_1)
{
    config_t cfg;
    TW_ASSERT_INT_EQ(config_init(&cfg), 0);
    TW_ASSERT(cfg.flood_max_share == 0);
    tw_diag_t diag;
    tw_diag_init(&diag);
    TW_ASSERT_INT_EQ(config_set(&cfg, "flood.max_share", "0.02", "flag", &diag), 0);
    TW_ASSERT(cfg.flood_max_share == 0.02);
    TW_ASSERT_INT_EQ(config_set(&cfg, "flood.max_share", "1.5", "flag", &diag), TW_ERR_CONFIG);
    TW_ASSERT_INT_EQ(config_set(&cfg, "flood.max_share", "-0.1", "flag", &diag), TW_ERR_CONFIG);
    TW_ASSERT_INT_EQ(config_set(&cfg, "flood.max_share", "nan", "flag", &diag), TW_ERR_CONFIG);
    TW_ASSERT_INT_EQ(config_set(&cfg, "flood.max_share", "2%", "flag", &diag), TW_ERR_CONFIG);
    TW_ASSERT(cfg.flood_max_share == 0.02); /* refused values leave the key alone */
    TW_ASSERT_INT_EQ(diag.count, 4);
    TW_ASSERT(strstr(diag.lines[0], "flag: flood.max_share: '1.5' is not a share from 0 to 1"));
    tw_diag_fini(&diag);
    config_fini(&cfg);
}

int main(void)
{
    TW_RUN(TW_CASE(defaults_are_filled), TW_CASE(file_then_env_then_flags),
           TW_CASE(unknown_keys_and_bad_values_name_file_and_line),
           TW_CASE(yaml_syntax_error_is_reported), TW_CASE(dump_masks_secrets),
           TW_CASE(enum_values_are_parsed_at_load),
           TW_CASE(bad_enum_value_is_refused_with_the_allowed_list),
           TW_CASE(secrets_are_masked_by_the_table_flag),
           TW_CASE(docs_list_enum_values_and_secrets), TW_CASE(shares_are_fractions_from_0_to_1));
}
