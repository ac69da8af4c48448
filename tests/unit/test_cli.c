/* Unit tests for the command line's helpers (src/cli/cli.c): ages, sizes,
 * enum words, the table printer, which arguments make the binary a client. */
#include <stdlib.h>
#include <string.h>

#include "berth/cli.h"
#include "cli/cli_internal.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"
#include "testlib.h"

static void test_age_and_bytes(void)
{
    static const struct {
        const char *description;
        int64_t in;
        const char *want;
    } ages[] =
        {
            {"negative clock skew", -5, "0s"},
            {"seconds", 45, "45s"},
            {"under two minutes", 119, "119s"},
            {"minutes", 180, "3m"},
            {"hours", 7200, "2h"},
            {"under two days", 172799, "47h"},
            {"days", 5 * 86400, "5d"},
        },
      sizes[] = {
          {"bytes", 900, "900"},
          {"one KiB", 1024, "1Ki"},
          {"MiB", 512 * 1024 * 1024LL, "512Mi"},
          {"fraction", 1536 * 1024 * 1024LL, "1.5Gi"},
          {"TiB", 3LL << 40, "3Ti"},
      };
    char out[32];

    for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
        cli_age(ages[i].in, out, sizeof(out));
        CHECK_MSG(strcmp(out, ages[i].want) == 0, "%s: %s", ages[i].description, out);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cli_bytes(sizes[i].in, out, sizeof(out));
        CHECK_MSG(strcmp(out, sizes[i].want) == 0, "%s: %s", sizes[i].description, out);
    }
}

static void test_enum_word(void)
{
    const ProtobufCEnumDescriptor *d = &metal__vmprovisioner__v1__vm_state__descriptor;
    char out[32];

    cli_enum_word(d, 2, "VM_STATE_", out, sizeof(out));
    CHECK_STR(out, "running");
    cli_enum_word(d, 99, "VM_STATE_", out, sizeof(out));
    CHECK_STR(out, "99");
    cli_enum_word(d, 4, "OTHER_", out, sizeof(out));
    CHECK_STR(out, "vm_state_shutdown");
    cli_enum_word(d, 4, "VM_STATE_", out, 4);
    CHECK_STR(out, "shu");
}

static void test_table(void)
{
    static const char *const header[] = {"ID", "STATE"};
    static const char *const r1[] = {"web-1", "running"};
    static const char *const r2[] = {"a-much-longer-id", NULL};
    struct cli_table t;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    CHECK(f != NULL);
    CHECK(cli_table_init(&t, 2, header) == 0);
    CHECK(cli_table_add(&t, r1) == 0);
    CHECK(cli_table_add(&t, r2) == 0);
    for (int i = 0; i < 40; i++)
        CHECK(cli_table_add(&t, r1) == 0);
    CHECK(t.rows == 43);
    cli_table_print(&t, f);
    fclose(f);
    CHECK(text != NULL && strncmp(text,
                                  "ID                STATE\n"
                                  "web-1             running\n"
                                  "a-much-longer-id  \n",
                                  24 + 26 + 19) == 0);
    free(text);
    cli_table_release(&t);
}

static void test_is_command(void)
{
    static const struct {
        const char *description;
        const char *arg;
        int client;
    } rows[] = {
        {"a group", "vm", 1},
        {"logs", "logs", 1},
        {"help", "help", 1},
        {"a client option", "--addr", 1},
        {"a client option with =", "--addr=unix:/x", 1},
        {"the output option", "-o", 1},
        {"a daemon flag", "--listen", 0},
        {"the daemon's help", "--help", 0},
        {"a prefix is not an option", "--address", 0},
        {"nothing", NULL, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK_MSG(cli_is_command(rows[i].arg) == rows[i].client, "%s", rows[i].description);
}

int main(void)
{
    test_age_and_bytes();
    test_enum_word();
    test_table();
    test_is_command();
    return test_summary("test_cli");
}
