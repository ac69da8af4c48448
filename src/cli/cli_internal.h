/* Shared by the command-line client's files (src/cli/): the call options,
 * the Connect transport, the command table and the table printer. */
#ifndef BERTH_CLI_INTERNAL_H
#define BERTH_CLI_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "berth/arena.h"
#include "berth/buf.h"
#include "berth/err.h"

#define CLI_DEFAULT_ADDR "http://127.0.0.1:8080"
/* Exit code of a command line that cannot be understood: the Connect code
 * invalid_argument, as every other failure exits with its Connect code. */
#define CLI_EXIT_USAGE 3

/* Where and how to call; filled once from the global options. Strings are
 * borrowed from argv or the environment. */
struct cli_opts {
    const char *addr;   /* http://HOST:PORT, https://HOST:PORT or unix:PATH */
    const char *token;  /* bearer token (BERTH_TOKEN), or NULL */
    const char *cacert; /* PEM files for https, or NULL */
    const char *cert;
    const char *key;
    int json;           /* -o json: print the Connect JSON as is */
    int64_t timeout_ms; /* whole call; 0: none (streams) */
    FILE *out;          /* answers */
    FILE *errout;       /* one-line errors */
};

/* One subcommand: `berthd <group> <verb> ARGS...` (verb NULL: `berthd <group>`). */
struct cli_command {
    const char *group;
    const char *verb;
    const char *usage; /* the arguments after group and verb */
    const char *help;  /* one sentence */
    int (*run)(const struct cli_opts *o, int argc, char **argv);
};

/* The command tables of each file, each ended by a row with group NULL. */
extern const struct cli_command cli_vm_commands[];
extern const struct cli_command cli_replica_commands[];
extern const struct cli_command cli_observe_commands[];

/* Call `procedure` ("/pkg.Service/Method") with `in` as JSON. On success *out
 * is the decoded answer of type out_desc in arena `a`, and `raw` (when not
 * NULL) holds the answer's JSON text. On failure -1 with err holding the
 * server's Connect code and message (or unavailable when it cannot be
 * reached). */
int cli_call(const struct cli_opts *o, const char *procedure, const ProtobufCMessage *in,
             const ProtobufCMessageDescriptor *out_desc, struct arena *a, ProtobufCMessage **out,
             struct buf *raw, struct berth_err *err) BERTH_MUST_USE;

/* A server stream: fn is called for each message as it arrives, decoded as
 * out_desc (valid during the call only) plus its JSON text. fn returning
 * nonzero ends the stream early (success). The stream's end-of-stream error
 * becomes err. */
typedef int (*cli_stream_fn)(void *arg, const ProtobufCMessage *msg, const char *json, size_t len);
int cli_stream(const struct cli_opts *o, const char *procedure, const ProtobufCMessage *in,
               const ProtobufCMessageDescriptor *out_desc, cli_stream_fn fn, void *arg,
               struct berth_err *err) BERTH_MUST_USE;

/* Print err as one line on o->errout and return its exit code. */
int cli_fail(const struct cli_opts *o, const struct berth_err *err);
/* A usage error: one line naming the problem, then the command's usage. */
int cli_usage_error(const struct cli_opts *o, const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Command-line helpers. cli_take_value: argv[*i] is `flag`; the value is the
 * next argument (or after '=' in "--flag=value"). NULL when missing. */
int cli_is_flag(const char *arg, const char *flag);
const char *cli_take_value(int argc, char **argv, int *i);

/* An enum value's name without its prefix, in lower case
 * (VM_STATE_RUNNING -> "running"), into out. */
void cli_enum_word(const ProtobufCEnumDescriptor *d, int value, const char *prefix, char *out,
                   size_t n);
/* Seconds as an age for people: 45s, 3m, 2h, 5d. */
void cli_age(int64_t seconds, char *out, size_t n);
/* Bytes for people: 512Mi, 1.5Gi, 900. */
void cli_bytes(int64_t bytes, char *out, size_t n);

/* An aligned table: a header row, then rows of the same width. */
struct cli_table {
    size_t cols;
    size_t rows; /* header included */
    char **cells;
    size_t cap;
};

int cli_table_init(struct cli_table *t, size_t cols, const char *const *header) BERTH_MUST_USE;
/* Append one row of t->cols strings (copied). */
int cli_table_add(struct cli_table *t, const char *const *row) BERTH_MUST_USE;
void cli_table_print(const struct cli_table *t, FILE *out);
void cli_table_release(struct cli_table *t);

#endif
