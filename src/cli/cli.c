/* The command line: `berthd <group> <verb> ...` is a client of a running
 * berthd. Global options, the command tables, help, errors and exit codes
 * (the Connect code of the failure), and the small formatting helpers. */
#include "berth/cli.h"

#include <ctype.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"

static const struct cli_command *const cli_tables[] = {
    cli_vm_commands,
    cli_replica_commands,
    cli_observe_commands,
};

static const struct cli_command *cli_find(const char *group, const char *verb);
static int cli_group_known(const char *group);
static void cli_help(FILE *out, const char *group);
static int cli_global_option(struct cli_opts *o, int argc, char **argv, int *i, int *bad);

int cli_is_flag(const char *arg, const char *flag)
{
    size_t n = strlen(flag);

    return strncmp(arg, flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

const char *cli_take_value(int argc, char **argv, int *i)
{
    const char *eq = strchr(argv[*i], '=');

    if (argv[*i][0] == '-' && argv[*i][1] == '-' && eq != NULL)
        return eq + 1;
    if (*i + 1 >= argc)
        return NULL;
    (*i)++;
    return argv[*i];
}

int cli_is_command(const char *arg)
{
    static const char *const globals[] = {"--addr", "-o",    "--output", "--cacert",
                                          "--cert", "--key", "--timeout"};

    if (arg == NULL)
        return 0;
    if (cli_group_known(arg) || strcmp(arg, "help") == 0)
        return 1;
    for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++)
        if (cli_is_flag(arg, globals[i]))
            return 1;
    return 0;
}

static int cli_group_known(const char *group)
{
    for (size_t t = 0; t < sizeof(cli_tables) / sizeof(cli_tables[0]); t++)
        for (const struct cli_command *c = cli_tables[t]; c->group != NULL; c++)
            if (strcmp(c->group, group) == 0)
                return 1;
    return 0;
}

static const struct cli_command *cli_find(const char *group, const char *verb)
{
    for (size_t t = 0; t < sizeof(cli_tables) / sizeof(cli_tables[0]); t++)
        for (const struct cli_command *c = cli_tables[t]; c->group != NULL; c++) {
            if (strcmp(c->group, group) != 0)
                continue;
            if (c->verb == NULL || (verb != NULL && strcmp(c->verb, verb) == 0))
                return c;
        }
    return NULL;
}

static void cli_help(FILE *out, const char *group)
{
    if (group == NULL)
        fprintf(out, "usage: berthd [global options] <command> [arguments]\n\n"
                     "A client of a running berthd. Global options:\n"
                     "  --addr URL        http://HOST:PORT, https://HOST:PORT or unix:PATH "
                     "(default " CLI_DEFAULT_ADDR ", or BERTH_ADDR)\n"
                     "  -o json           print the answers as Connect JSON\n"
                     "  --cacert FILE     CA certificate for https; --cert FILE --key FILE: a "
                     "client certificate\n"
                     "  --timeout SECONDS the whole call (default 60; streams: none)\n"
                     "  BERTH_TOKEN       environment: a bearer token to send\n\n"
                     "Commands:\n");
    for (size_t t = 0; t < sizeof(cli_tables) / sizeof(cli_tables[0]); t++)
        for (const struct cli_command *c = cli_tables[t]; c->group != NULL; c++) {
            if (group != NULL && strcmp(c->group, group) != 0)
                continue;
            fprintf(out, "  berthd %s%s%s %s\n      %s\n", c->group, c->verb ? " " : "",
                    c->verb ? c->verb : "", c->usage, c->help);
        }
    fprintf(out, "\nExit status: 0, or the Connect code of the failure (3 invalid_argument, "
                 "5 not_found, 14 unavailable, ...).\n");
}

int cli_fail(const struct cli_opts *o, const struct berth_err *err)
{
    fprintf(o->errout, "berthd: %s: %s\n", berth_code_name(err->code), err->msg);
    return err->code == BERTH_OK ? 0 : (int)err->code;
}

int cli_usage_error(const struct cli_opts *o, const struct cli_command *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("berthd: ", o->errout);
    va_start(ap, fmt);
    vfprintf(o->errout, fmt, ap);
    va_end(ap);
    fputc('\n', o->errout);
    if (cmd != NULL)
        fprintf(o->errout, "usage: berthd %s%s%s %s\n", cmd->group, cmd->verb ? " " : "",
                cmd->verb ? cmd->verb : "", cmd->usage);
    return CLI_EXIT_USAGE;
}

/* One global option at argv[*i]: 1 when it was one (consumed), 0 when not;
 * *bad is set when its value is missing or wrong. */
static int cli_global_option(struct cli_opts *o, int argc, char **argv, int *i, int *bad)
{
    const char *a = argv[*i], *v;

    if (cli_is_flag(a, "--addr") || cli_is_flag(a, "--cacert") || cli_is_flag(a, "--cert") ||
        cli_is_flag(a, "--key") || cli_is_flag(a, "-o") || cli_is_flag(a, "--output") ||
        cli_is_flag(a, "--timeout")) {
        v = cli_take_value(argc, argv, i);
        if (v == NULL || v[0] == '\0') {
            cli_usage_error(o, NULL, "%s needs a value", a);
            *bad = 1;
            return 1;
        }
        if (cli_is_flag(a, "--addr")) {
            o->addr = v;
        } else if (cli_is_flag(a, "--cacert")) {
            o->cacert = v;
        } else if (cli_is_flag(a, "--cert")) {
            o->cert = v;
        } else if (cli_is_flag(a, "--key")) {
            o->key = v;
        } else if (cli_is_flag(a, "--timeout")) {
            char *end;
            long s = strtol(v, &end, 10);
            if (*end != '\0' || s < 0 || s > 86400) {
                cli_usage_error(o, NULL, "--timeout '%s': expected seconds from 0 to 86400", v);
                *bad = 1;
            }
            o->timeout_ms = (int64_t)s * 1000;
        } else if (strcmp(v, "json") == 0) {
            o->json = 1;
        } else if (strcmp(v, "table") == 0) {
            o->json = 0;
        } else {
            cli_usage_error(o, NULL, "-o '%s': expected json or table", v);
            *bad = 1;
        }
        return 1;
    }
    return 0;
}

int cli_main(int argc, char **argv)
{
    struct cli_opts o = {.addr = CLI_DEFAULT_ADDR, .timeout_ms = 60000};
    const struct cli_command *cmd;
    char **rest;
    int n = 0, bad = 0, rc, dashdash = 0;
    const char *env;

    o.out = stdout;
    o.errout = stderr;
    env = getenv("BERTH_ADDR");
    if (env != NULL && env[0] != '\0')
        o.addr = env;
    env = getenv("BERTH_TOKEN");
    if (env != NULL && env[0] != '\0')
        o.token = env;
    rest = calloc((size_t)argc + 1, sizeof(*rest));
    if (rest == NULL) {
        fputs("berthd: out of memory\n", stderr);
        return BERTH_RESOURCE_EXHAUSTED;
    }
    /* Global options anywhere before "--"; everything else is the command's. */
    for (int i = 0; i < argc; i++) {
        if (!dashdash && strcmp(argv[i], "--") == 0)
            dashdash = 1;
        if (dashdash || !cli_global_option(&o, argc, argv, &i, &bad))
            rest[n++] = argv[i];
    }
    if (bad) {
        free(rest);
        return CLI_EXIT_USAGE;
    }
    if (n == 0 || strcmp(rest[0], "help") == 0 || strcmp(rest[0], "--help") == 0) {
        cli_help(stdout, n > 1 ? rest[1] : NULL);
        free(rest);
        return 0;
    }
    if (!cli_group_known(rest[0])) {
        rc = cli_usage_error(&o, NULL, "unknown command '%s'; see berthd help", rest[0]);
        free(rest);
        return rc;
    }
    cmd = cli_find(rest[0], n > 1 ? rest[1] : NULL);
    if (cmd == NULL || (n > 1 && (strcmp(rest[1], "--help") == 0 || strcmp(rest[1], "-h") == 0))) {
        if (cmd == NULL && n > 1 && strcmp(rest[1], "--help") != 0 && strcmp(rest[1], "-h") != 0)
            fprintf(stderr, "berthd: unknown command '%s %s'\n", rest[0], rest[1]);
        cli_help(cmd == NULL && n > 1 && strcmp(rest[1], "--help") != 0 ? stderr : stdout, rest[0]);
        rc = cmd == NULL && n > 1 && strcmp(rest[1], "--help") != 0 ? CLI_EXIT_USAGE : 0;
        free(rest);
        return rc;
    }
    {
        int skip = cmd->verb != NULL ? 2 : 1;
        for (int i = skip; i < n; i++)
            if (strcmp(rest[i], "--help") == 0 || strcmp(rest[i], "-h") == 0) {
                fprintf(stdout, "usage: berthd %s%s%s %s\n  %s\n", cmd->group, cmd->verb ? " " : "",
                        cmd->verb ? cmd->verb : "", cmd->usage, cmd->help);
                free(rest);
                return 0;
            }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = cmd->run(&o, n - skip, rest + skip);
        curl_global_cleanup();
    }
    free(rest);
    return rc;
}

void cli_enum_word(const ProtobufCEnumDescriptor *d, int value, const char *prefix, char *out,
                   size_t n)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    const char *name;
    size_t i = 0;

    if (v == NULL) {
        snprintf(out, n, "%d", value);
        return;
    }
    name = v->name;
    if (strncmp(name, prefix, strlen(prefix)) == 0)
        name += strlen(prefix);
    for (; name[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
}

void cli_age(int64_t seconds, char *out, size_t n)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds < 120)
        snprintf(out, n, "%" PRId64 "s", seconds);
    else if (seconds < 7200)
        snprintf(out, n, "%" PRId64 "m", seconds / 60);
    else if (seconds < 2 * 86400)
        snprintf(out, n, "%" PRId64 "h", seconds / 3600);
    else
        snprintf(out, n, "%" PRId64 "d", seconds / 86400);
}

void cli_bytes(int64_t bytes, char *out, size_t n)
{
    static const char *const units[] = {"Ki", "Mi", "Gi", "Ti"};
    double v = (double)bytes;
    size_t u = 0;

    if (bytes < 1024) {
        snprintf(out, n, "%" PRId64, bytes);
        return;
    }
    v /= 1024;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (v == (double)(int64_t)v)
        snprintf(out, n, "%" PRId64 "%s", (int64_t)v, units[u]);
    else
        snprintf(out, n, "%.1f%s", v, units[u]);
}

int cli_table_init(struct cli_table *t, size_t cols, const char *const *header)
{
    memset(t, 0, sizeof(*t));
    t->cols = cols;
    return cli_table_add(t, header);
}

int cli_table_add(struct cli_table *t, const char *const *row)
{
    if ((t->rows + 1) * t->cols > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : t->cols * 16;
        char **cells = realloc(t->cells, cap * sizeof(*cells));
        if (cells == NULL)
            return -1;
        t->cells = cells;
        t->cap = cap;
    }
    for (size_t c = 0; c < t->cols; c++) {
        char *s = strdup(row[c] != NULL ? row[c] : "");
        if (s == NULL) {
            for (size_t k = 0; k < c; k++)
                free(t->cells[t->rows * t->cols + k]);
            return -1;
        }
        t->cells[t->rows * t->cols + c] = s;
    }
    t->rows++;
    return 0;
}

void cli_table_print(const struct cli_table *t, FILE *out)
{
    size_t width[16] = {0};

    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols && c < 16; c++) {
            size_t w = strlen(t->cells[r * t->cols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols && c < 16; c++) {
            const char *s = t->cells[r * t->cols + c];
            if (c + 1 == t->cols)
                fprintf(out, "%s", s);
            else
                fprintf(out, "%-*s  ", (int)width[c], s);
        }
        fputc('\n', out);
    }
}

void cli_table_release(struct cli_table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
